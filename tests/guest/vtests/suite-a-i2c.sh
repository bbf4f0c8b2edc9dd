# Suite A, I2C: the guest's virtio-i2c driver talks to vhost-device-i2c on the host,
# started with --simulate 24c02@0x50 --simulate ds1338@0x68.
. /tests/lib.sh

if wait_for 50 i2c_bus_by_name i2c_virtio; then
    bus="$(i2c_bus_by_name i2c_virtio)"
    pass i2c.adapter
else
    fail i2c.adapter "no i2c_virtio adapter: $(cat /sys/bus/i2c/devices/i2c-*/name 2>/dev/null | tr '\n' ';')"
    exit 1
fi

expect_eq i2c.detect-r "50 68" "$(i2c_scan "$bus" -r)"
expect_eq i2c.detect-q "50 68" "$(i2c_scan "$bus" -q)"

# Raw transfers: write 3 bytes at word address 0x10, then write address + read 3.
if o="$(i2ctransfer -y "$bus" w4@0x50 0x10 0xaa 0x55 0x0f 2>&1)" && ! echo "$o" | grep -q 'warning: only'; then
    pass i2c.transfer-write
else
    fail i2c.transfer-write "$o"
fi
expect_eq i2c.transfer-write-read "0xaa 0x55 0x0f" "$(i2ctransfer -y "$bus" w1@0x50 0x10 r3 2>&1)"
# A write+read group of 2 messages to the RTC too (register 0x08 is RAM on a ds1338).
i2ctransfer -y "$bus" w3@0x68 0x08 0x12 0x34 >/dev/null 2>&1
expect_eq i2c.transfer-rtc-ram "0x12 0x34" "$(i2ctransfer -y "$bus" w1@0x68 0x08 r2 2>&1)"

# SMBus byte data.
if o="$(i2cset -y "$bus" 0x50 0x20 0x5a 2>&1)"; then pass i2c.set-byte-data; else fail i2c.set-byte-data "$o"; fi
expect_eq i2c.get-byte-data "0x5a" "$(i2cget -y "$bus" 0x50 0x20 2>&1)"
i2cset -y "$bus" 0x50 0x21 0xa5 >/dev/null 2>&1
expect_eq i2c.get-byte-data-2 "0xa5" "$(i2cget -y "$bus" 0x50 0x21 2>&1)"

# Absent address: every access fails.
if o="$(i2cget -y "$bus" 0x51 0x00 2>&1)"; then fail i2c.absent-get "i2cget 0x51 succeeded: $o"; else pass i2c.absent-get; fi
# i2c-virtio reports a failed message as "0 messages done", which i2ctransfer prints as
# "warning: only 0/N messages sent" (exit status 0); an error exit counts as failed too.
xfer_ok() { o="$(i2ctransfer -y "$bus" "$@" 2>&1)" && ! echo "$o" | grep -q 'warning: only 0/'; }
if xfer_ok r1@0x51; then fail i2c.absent-read "read from 0x51 succeeded: $o"; else pass i2c.absent-read; fi
if xfer_ok w2@0x51 0x00 0x00; then fail i2c.absent-write "write to 0x51 succeeded: $o"; else pass i2c.absent-write; fi
# A two-message transfer whose first message fails: nothing is done.
if xfer_ok w1@0x51 0x00 r1@0x50; then fail i2c.absent-group "group starting at 0x51 succeeded: $o"; else pass i2c.absent-group; fi
# The bus still works after the failures.
expect_eq i2c.after-absent "0x5a" "$(i2cget -y "$bus" 0x50 0x20 2>&1)"

# Guest driver at24 on the simulated 24c02.
dev="/sys/bus/i2c/devices/$bus-0050"
echo 24c02 0x50 > "/sys/bus/i2c/devices/i2c-$bus/new_device" 2>/dev/null
if wait_for 50 test -f "$dev/eeprom"; then
    pass at24.bind
    expect_eq at24.size 256 "$(wc -c < "$dev/eeprom" | tr -d ' ')"
    # What the raw writes above left at 0x10..0x12 and 0x20.
    expect_eq at24.read-raw-bytes "aa 55 0f" "$(od -An -tx1 -j16 -N3 "$dev/eeprom" | sed 's/^ *//')"
    expect_eq at24.read-raw-byte-data "5a" "$(od -An -tx1 -j32 -N1 "$dev/eeprom" | sed 's/^ *//')"
    head -c 256 /dev/urandom > /tmp/pattern
    if o="$(dd if=/tmp/pattern of="$dev/eeprom" bs=256 count=1 2>&1)"; then
        pass at24.write-all
    else
        fail at24.write-all "$o"
    fi
    if cmp /tmp/pattern "$dev/eeprom" >/tmp/cmp.out 2>&1; then
        pass at24.read-back
    else
        fail at24.read-back "$(cat /tmp/cmp.out)"
    fi
    # A partial write in the middle, read back through the driver.
    printf 'vhost-device' | dd of="$dev/eeprom" bs=1 seek=100 conv=notrunc 2>/dev/null
    expect_eq at24.partial-write "vhost-device" "$(dd if="$dev/eeprom" bs=1 skip=100 count=12 2>/dev/null)"
    echo 0x50 > "/sys/bus/i2c/devices/i2c-$bus/delete_device" 2>/dev/null
else
    fail at24.bind "no $dev/eeprom after new_device (at24 did not bind)"
fi

# Guest driver rtc-ds1307 on the simulated ds1338.
echo ds1338 0x68 > "/sys/bus/i2c/devices/i2c-$bus/new_device" 2>/dev/null
rtcdir=""
find_rtc() { for r in /sys/bus/i2c/devices/"$bus"-0068/rtc/rtc*; do [ -d "$r" ] && { rtcdir="$r"; return 0; }; done; return 1; }
if wait_for 50 find_rtc && find_rtc; then
    pass rtc.bind
    rtc="/dev/${rtcdir##*/}"
    wait_for 30 test -c "$rtc"
    date -u -s "2024-05-06 07:08:09" >/dev/null 2>&1
    if o="$(hwclock -u -w -f "$rtc" 2>&1)"; then pass rtc.hwclock-w; else fail rtc.hwclock-w "$o"; fi
    o="$(hwclock -u -r -f "$rtc" 2>&1)"
    if echo "$o" | grep -qE 'May +6 07:08:(09|1[0-4]) 2024'; then pass rtc.hwclock-r; else fail rtc.hwclock-r "expected May 6 07:08:09 2024, got: $o"; fi
    s1="$(cat "$rtcdir/since_epoch" 2>/dev/null || echo x)"
    sleep 3
    s2="$(cat "$rtcdir/since_epoch" 2>/dev/null || echo x)"
    if [ "$s1" != x ] && [ "$s2" != x ] && [ $((s2 - s1)) -ge 2 ] && [ $((s2 - s1)) -le 5 ]; then
        pass rtc.ticks
    else
        fail rtc.ticks "since_epoch went from $s1 to $s2 over 3 s"
    fi
    # Calendar rollover on the device: 2031-12-31 23:59:58 + 3 s.
    date -u -s "2031-12-31 23:59:58" >/dev/null 2>&1
    hwclock -u -w -f "$rtc" >/dev/null 2>&1
    sleep 3
    o="$(hwclock -u -r -f "$rtc" 2>&1)"
    if echo "$o" | grep -qE 'Jan +1 00:00:0[0-9] 2032'; then pass rtc.rollover; else fail rtc.rollover "expected Jan 1 00:00:0x 2032, got: $o"; fi
    echo 0x68 > "/sys/bus/i2c/devices/i2c-$bus/delete_device" 2>/dev/null
else
    fail rtc.bind "no rtc under /sys/bus/i2c/devices/$bus-0068/rtc/ after new_device"
fi
exit 0
