# guest-drivers, I2C: the guest's virtio-i2c driver talks to vhost-device-i2c on the host,
# started with --simulate 24c02@0x50 --simulate ds1338@0x68.
. /tests/lib.sh

if wait_for 50 i2c_bus_by_name i2c_virtio; then
    bus="$(i2c_bus_by_name i2c_virtio)"
    pass guest-drivers.i2c.adapter
else
    fail guest-drivers.i2c.adapter "no i2c_virtio adapter: $(cat /sys/bus/i2c/devices/i2c-*/name 2>/dev/null | tr '\n' ';')"
    exit 1
fi

expect_eq guest-drivers.i2c.detect-r "50 68" "$(i2c_scan "$bus" -r)"
expect_eq guest-drivers.i2c.detect-q "50 68" "$(i2c_scan "$bus" -q)"

# Raw transfers: write 3 bytes at word address 0x10, then write address + read 3.
if o="$(i2ctransfer -y "$bus" w4@0x50 0x10 0xaa 0x55 0x0f 2>&1)" && ! echo "$o" | grep -q 'warning: only'; then
    pass guest-drivers.i2c.transfer-write
else
    fail guest-drivers.i2c.transfer-write "$o"
fi
expect_eq guest-drivers.i2c.transfer-write-read "0xaa 0x55 0x0f" "$(i2ctransfer -y "$bus" w1@0x50 0x10 r3 2>&1)"
# A write+read group of 2 messages to the RTC too (register 0x08 is RAM on a ds1338).
i2ctransfer -y "$bus" w3@0x68 0x08 0x12 0x34 >/dev/null 2>&1
expect_eq guest-drivers.i2c.transfer-rtc-ram "0x12 0x34" "$(i2ctransfer -y "$bus" w1@0x68 0x08 r2 2>&1)"

# SMBus byte data.
if o="$(i2cset -y "$bus" 0x50 0x20 0x5a 2>&1)"; then pass guest-drivers.i2c.set-byte-data; else fail guest-drivers.i2c.set-byte-data "$o"; fi
expect_eq guest-drivers.i2c.get-byte-data "0x5a" "$(i2cget -y "$bus" 0x50 0x20 2>&1)"
i2cset -y "$bus" 0x50 0x21 0xa5 >/dev/null 2>&1
expect_eq guest-drivers.i2c.get-byte-data-2 "0xa5" "$(i2cget -y "$bus" 0x50 0x21 2>&1)"

# Absent address 0x51: each access is checked beside the same access to 0x50, and must
# fail in the one way i2c-virtio reports a message the device answered with ERR:
# - SMBus (i2cget): the driver transfers 0 of its messages, i2c-core's SMBus emulation
#   turns that into EIO, busybox i2cget exits 1 with "read failed: Input/output error";
# - I2C_RDWR (i2ctransfer): the ioctl returns 0 messages done, busybox prints
#   "warning: only 0/N messages sent" and exits 0.
# A missing tool (127) or any other error is a FAIL.
# expect_err NAME RC TEXT CMD...: CMD exits with RC and its output contains TEXT.
expect_err() {
    n="$1"; want_rc="$2"; want="$3"; shift 3
    o="$("$@" 2>&1)"; rc=$?
    if [ "$rc" = "$want_rc" ] && echo "$o" | grep -qF "$want"; then
        pass "$n"
    else
        fail "$n" "'$*': exit $rc, output '$o'; expected exit $want_rc and '$want'"
    fi
}
# expect_xfer NAME WANT ARGS...: i2ctransfer succeeds, all messages sent, prints WANT.
expect_xfer() {
    n="$1"; want="$2"; shift 2
    o="$(i2ctransfer -y "$bus" "$@" 2>&1)"; rc=$?
    if [ "$rc" = 0 ] && [ "$o" = "$want" ]; then pass "$n"; else fail "$n" "i2ctransfer $*: exit $rc, output '$o', expected '$want'"; fi
}
expect_eq guest-drivers.i2c.present-get "0x5a" "$(i2cget -y "$bus" 0x50 0x20 2>&1)"
expect_err guest-drivers.i2c.absent-get 1 "read failed: Input/output error" i2cget -y "$bus" 0x51 0x20
i2ctransfer -y "$bus" w1@0x50 0x21 >/dev/null 2>&1
expect_xfer guest-drivers.i2c.present-read "0xa5" r1@0x50
expect_err guest-drivers.i2c.absent-read 0 "warning: only 0/1 messages sent" i2ctransfer -y "$bus" r1@0x51
expect_xfer guest-drivers.i2c.present-write "" w2@0x50 0x30 0x31
expect_err guest-drivers.i2c.absent-write 0 "warning: only 0/1 messages sent" i2ctransfer -y "$bus" w2@0x51 0x00 0x00
# A two-message transfer whose first message fails: nothing is done.
expect_xfer guest-drivers.i2c.present-group "0x5a" w1@0x50 0x20 r1@0x50
expect_err guest-drivers.i2c.absent-group 0 "warning: only 0/2 messages sent" i2ctransfer -y "$bus" w1@0x51 0x20 r1@0x50
# The bus still works after the failures.
expect_eq guest-drivers.i2c.after-absent "0x5a" "$(i2cget -y "$bus" 0x50 0x20 2>&1)"

# Guest driver at24 on the simulated 24c02.
dev="/sys/bus/i2c/devices/$bus-0050"
echo 24c02 0x50 > "/sys/bus/i2c/devices/i2c-$bus/new_device" 2>/dev/null
if wait_for 50 test -f "$dev/eeprom"; then
    pass guest-drivers.at24.bind
    expect_eq guest-drivers.at24.size 256 "$(wc -c < "$dev/eeprom" | tr -d ' ')"
    # What the raw writes above left at 0x10..0x12 and 0x20.
    expect_eq guest-drivers.at24.read-raw-bytes "aa 55 0f" "$(od -An -tx1 -j16 -N3 "$dev/eeprom" | sed 's/^ *//')"
    expect_eq guest-drivers.at24.read-raw-byte-data "5a" "$(od -An -tx1 -j32 -N1 "$dev/eeprom" | sed 's/^ *//')"
    head -c 256 /dev/urandom > /tmp/pattern
    if o="$(dd if=/tmp/pattern of="$dev/eeprom" bs=256 count=1 2>&1)"; then
        pass guest-drivers.at24.write-all
    else
        fail guest-drivers.at24.write-all "$o"
    fi
    if cmp /tmp/pattern "$dev/eeprom" >/tmp/cmp.out 2>&1; then
        pass guest-drivers.at24.read-back
    else
        fail guest-drivers.at24.read-back "$(cat /tmp/cmp.out)"
    fi
    # A partial write in the middle, read back through the driver.
    printf 'vhost-device' | dd of="$dev/eeprom" bs=1 seek=100 conv=notrunc 2>/dev/null
    expect_eq guest-drivers.at24.partial-write "vhost-device" "$(dd if="$dev/eeprom" bs=1 skip=100 count=12 2>/dev/null)"
    echo 0x50 > "/sys/bus/i2c/devices/i2c-$bus/delete_device" 2>/dev/null
else
    fail guest-drivers.at24.bind "no $dev/eeprom after new_device (at24 did not bind)"
fi

# Guest driver rtc-ds1307 on the simulated ds1338.
echo ds1338 0x68 > "/sys/bus/i2c/devices/i2c-$bus/new_device" 2>/dev/null
rtcdir=""
find_rtc() { for r in /sys/bus/i2c/devices/"$bus"-0068/rtc/rtc*; do [ -d "$r" ] && { rtcdir="$r"; return 0; }; done; return 1; }
if wait_for 50 find_rtc && find_rtc; then
    pass guest-drivers.rtc.bind
    rtc="/dev/${rtcdir##*/}"
    wait_for 30 test -c "$rtc"
    date -u -s "2024-05-06 07:08:09" >/dev/null 2>&1
    if o="$(hwclock -u -w -f "$rtc" 2>&1)"; then pass guest-drivers.rtc.hwclock-w; else fail guest-drivers.rtc.hwclock-w "$o"; fi
    o="$(hwclock -u -r -f "$rtc" 2>&1)"
    if echo "$o" | grep -qE 'May +6 07:08:(09|1[0-4]) 2024'; then pass guest-drivers.rtc.hwclock-r; else fail guest-drivers.rtc.hwclock-r "expected May 6 07:08:09 2024, got: $o"; fi
    # Ticking: since_epoch advances by 2 s within a 10 s deadline, and by no more than the
    # guest's own uptime advanced meanwhile (+1 for the reads' rounding).
    s1="$(cat "$rtcdir/since_epoch" 2>/dev/null || echo x)"; u1="$(cut -d. -f1 /proc/uptime)"
    ticks2() { s2="$(cat "$rtcdir/since_epoch" 2>/dev/null || echo x)"; [ "$s2" != x ] && [ $((s2 - s1)) -ge 2 ]; }
    if [ "$s1" != x ] && wait_for 100 ticks2 && ticks2; then
        u2="$(cut -d. -f1 /proc/uptime)"
        if [ $((s2 - s1)) -le $((u2 - u1 + 1)) ]; then pass guest-drivers.rtc.ticks; else fail guest-drivers.rtc.ticks "since_epoch went from $s1 to $s2 while uptime went from $u1 to $u2"; fi
    else
        fail guest-drivers.rtc.ticks "since_epoch did not advance 2 s within 10 s (from $s1, now ${s2:-x})"
    fi
    # Calendar rollover on the device: 2031-12-31 23:59:58, read until it shows 2032.
    date -u -s "2031-12-31 23:59:58" >/dev/null 2>&1
    hwclock -u -w -f "$rtc" >/dev/null 2>&1
    rolled() { o="$(hwclock -u -r -f "$rtc" 2>&1)"; echo "$o" | grep -qE 'Jan +1 00:00:0[0-9] 2032'; }
    if wait_for 100 rolled && rolled; then pass guest-drivers.rtc.rollover; else fail guest-drivers.rtc.rollover "expected Jan 1 00:00:0x 2032 within 10 s, got: $o"; fi
    echo 0x68 > "/sys/bus/i2c/devices/i2c-$bus/delete_device" 2>/dev/null
else
    fail guest-drivers.rtc.bind "no rtc under /sys/bus/i2c/devices/$bus-0068/rtc/ after new_device"
fi
exit 0
