# host-devices: everything in one guest. vhost-device-i2c serves i2c-stub chips through
# /dev/i2c-N (SMBus only), and the guest's own i2c-virtio adapter (a full I2C adapter,
# served from the host by vhost-device-i2c with a simulated 24c02 at 0x54: the daemon's
# I2C_RDWR path); vhost-device-gpio serves a gpio-sim chip through /dev/gpiochipN; the
# test binary vhost-device-guest-tests (built on vhost-user-test-frontend) is the frontend.
. /tests/lib.sh

missing=""
for b in vhost-device-i2c vhost-device-gpio vhost-device-guest-tests; do
    command -v "$b" >/dev/null 2>&1 || missing="$missing $b"
done
if [ -n "$missing" ]; then
    fail host-devices.binaries "not in the initramfs:$missing"
    exit 1
fi
pass host-devices.binaries

# run_bin NAME ARGS...: run the test binary, relay its PASS/FAIL lines; a crash or a
# non-zero exit without any FAIL line is a failure of its own.
run_bin() {
    name="$1"; shift
    vhost-device-guest-tests "$@" > /tmp/bin.out 2> /tmp/bin.err
    rc=$?
    nfail=0
    while IFS= read -r l; do
        case "$l" in
            "PASS: "*|"FAIL: "*) vt_out "$l" ;;
        esac
        case "$l" in "FAIL: "*) nfail=$((nfail + 1)) ;; esac
    done < /tmp/bin.out
    if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        fail "$name.exit" "test binary exited with $rc: $(tail -n 3 /tmp/bin.err | tr '\n' ' ')"
    fi
}

# start_daemon NAME SOCKBASE CMD...: start a daemon in the background, wait for its
# socket; sets $sock and $dpid.
start_daemon() {
    name="$1"; base="$2"; shift 2
    RUST_LOG="${RUST_LOG:-info}" "$@" > "/tmp/$name-daemon.log" 2>&1 &
    dpid=$!
    sock=""
    i=0
    while [ $i -lt 100 ]; do
        for s in "${base}0" "$base"; do [ -S "$s" ] && { sock="$s"; break 2; }; done
        exited "$dpid" && break
        sleep 0.1; i=$((i + 1))
    done
    if [ -n "$sock" ]; then
        pass "host-devices.$name-daemon-start"
        return 0
    fi
    fail "host-devices.$name-daemon-start" "no socket ${base}0: $(tail -n 3 "/tmp/$name-daemon.log" | tr '\n' ' ')"
    return 1
}

# check_confined NAME PID: the serving daemon runs under its own sandbox in the guest
# kernel too (seccomp filter, no_new_privs, no capabilities, Landlock enforced).
check_confined() {
    name="$1"; pid="$2"
    field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null; }
    sc="$(field Seccomp)"; nnp="$(field NoNewPrivs)"; cap="$(field CapEff)"
    st="Seccomp=$sc NoNewPrivs=$nnp CapEff=$cap"
    if [ "$sc" = 2 ] && [ "$nnp" = 1 ] && [ "$cap" = 0000000000000000 ] \
        && grep -q "sandbox: Landlock enforced" "/tmp/$name-daemon.log"; then
        pass "host-devices.$name-daemon-confined"
    else
        fail "host-devices.$name-daemon-confined" "status: $st log: $(grep sandbox "/tmp/$name-daemon.log" | tr '\n' ' ')"
    fi
}

stop_daemon() {
    name="$1"; pid="$2"
    if ! exited "$pid"; then pass "host-devices.$name-daemon-alive"; else fail "host-devices.$name-daemon-alive" "the daemon died: $(tail -n 3 "/tmp/$name-daemon.log" | tr '\n' ' ')"; fi
    check_confined "$name" "$pid"
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt 50 ] && ! exited "$pid"; do sleep 0.1; i=$((i + 1)); done
    if ! exited "$pid"; then
        fail "host-devices.$name-daemon-sigterm" "still running 5 s after SIGTERM"
        kill -KILL "$pid" 2>/dev/null
    else
        wait "$pid" 2>/dev/null
        pass "host-devices.$name-daemon-sigterm"
    fi
    echo "---- $name daemon log (tail) ----"; tail -n 20 "/tmp/$name-daemon.log"
}

# ---- I2C over i2c-stub (SMBus only) ---------------------------------------------------
# Two chips: 0x50 is served (-l BUS:0x50), 0x51 answers on the bus but is not listed.
insmod /lib/modules/i2c-stub.ko chip_addr=0x50,0x51
bus=""
wait_for 30 i2c_bus_by_name "SMBus stub driver" && bus="$(i2c_bus_by_name "SMBus stub driver")"
if [ -z "$bus" ]; then
    fail host-devices.i2c-stub "no i2c-stub adapter after insmod"
else
    i2cset -y "$bus" 0x50 0x60 0x77
    i2cset -y "$bus" 0x51 0x00 0x11
    i2cset -y "$bus" 0x51 0x10 0x22
    # The unlisted chip does answer (so a refusal below is the daemon's, not the bus's).
    expect_eq host-devices.i2c.unlisted-answers "0x11 0x22" "$(i2cget -y "$bus" 0x51 0x00 2>&1) $(i2cget -y "$bus" 0x51 0x10 2>&1)"
    if start_daemon i2c /run/i2c.sock vhost-device-i2c -s /run/i2c.sock -l "$bus:0x50"; then
        i2c_pid=$dpid
        run_bin host-devices.i2c i2c --socket "$sock" --addr 0x50 --absent 0x51 --preset 0x60=0x77 --prefix host-devices.i2c
        # What the frontend wrote is in the kernel device.
        expect_eq host-devices.i2c.kernel-byte-data "0xab" "$(i2cget -y "$bus" 0x50 0x10 2>&1)"
        expect_eq host-devices.i2c.kernel-word-data "0x1234" "$(i2cget -y "$bus" 0x50 0x20 w 2>&1)"
        expect_eq host-devices.i2c.kernel-block "0x08" "$(i2cget -y "$bus" 0x50 0x47 2>&1)"
        # The refused writes to the unlisted chip (0x00 <- 0x00, 0x10 <- 0x99) never reached it.
        expect_eq host-devices.i2c.unlisted-unchanged "0x11 0x22" "$(i2cget -y "$bus" 0x51 0x00 2>&1) $(i2cget -y "$bus" 0x51 0x10 2>&1)"
        # The daemon accepts a second connection after the first frontend left.
        run_bin host-devices.i2c.reconnect i2c --socket "$sock" --addr 0x50 --absent 0x51 --prefix host-devices.i2c.reconnect
        stop_daemon i2c "$i2c_pid"
    fi
    # The adapter can be named instead of numbered (-l NAME:ADDR).
    if start_daemon i2c-byname /run/i2cn.sock vhost-device-i2c -s /run/i2cn.sock -l "SMBus stub driver:0x50"; then
        run_bin host-devices.i2c.by-name i2c --socket "$sock" --addr 0x50 --absent 0x51 --prefix host-devices.i2c.by-name
        stop_daemon i2c-byname "$dpid"
    fi
    # Eight busy guests at once (-c 8) on the one i2c-stub adapter, under the default
    # sandbox: every answer checked, then every socket answers, nothing grew, still alive.
    if start_daemon i2c-load /run/i2cl.sock vhost-device-i2c -s /run/i2cl.sock -c 8 -l "$bus:0x50"; then
        run_bin host-devices.i2c-load load --kind i2c --socket /run/i2cl.sock --count 8 --daemon-pid "$dpid" --prefix host-devices.i2c-load
        stop_daemon i2c-load "$dpid"
    fi
    # An address a host driver owns is refused before any socket exists, naming the driver
    # and the command that unbinds it.
    if echo 24c02 0x50 > "/sys/bus/i2c/devices/i2c-$bus/new_device" \
        && wait_for 30 test -e "/sys/bus/i2c/devices/$bus-0050/driver"; then
        # In the foreground, so bounded: a daemon that wrongly accepts the address would
        # serve for ever (timeout's status 124 then fails the check below, naming it).
        out="$(timeout 10 vhost-device-i2c -s /run/bound.sock -l "$bus:0x50" 2>&1)"; rc=$?
        [ "$rc" -eq 124 ] && out="still running after 10 s (not refused): $out"
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo "$out" | grep -q at24 && echo "$out" | grep -q "unbind" \
            && [ ! -e /run/bound.sock0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ]; then
            pass host-devices.i2c.driver-bound-refused
        else
            fail host-devices.i2c.driver-bound-refused "rc=$rc socket=$(ls /run/bound.sock0 2>&1) out: $out"
        fi
        echo 0x50 > "/sys/bus/i2c/devices/i2c-$bus/delete_device"
    else
        fail host-devices.i2c.driver-bound-refused "could not bind at24 to $bus-0050"
    fi
fi

# ---- I2C over the guest's i2c-virtio adapter (I2C_RDWR) ---------------------------------
# The host serves a 24c02 at 0x54 on it (run-host-devices.sh).
vbus=""
wait_for 50 i2c_bus_by_name i2c_virtio && vbus="$(i2c_bus_by_name i2c_virtio)"
if [ -z "$vbus" ]; then
    fail host-devices.i2c-virtio "no i2c_virtio adapter (is the host daemon attached?): $(cat /sys/bus/i2c/devices/i2c-*/name 2>/dev/null | tr '\n' ';')"
else
    # i2c-dev reports the adapter as a full I2C adapter (I2C_FUNC_I2C), so the daemon
    # uses I2C_RDWR on it.
    if i2cdetect -F "$vbus" 2>&1 | grep -qE '^I2C +yes'; then pass host-devices.i2c-virtio.func-i2c; else fail host-devices.i2c-virtio.func-i2c "$(i2cdetect -F "$vbus" 2>&1 | tr '\n' ';')"; fi
    # A byte written through i2c-dev is read by the daemon (preset), and what the daemon
    # writes is read back through i2c-dev below.
    i2ctransfer -y "$vbus" w2@0x54 0xc0 0x42 >/dev/null 2>&1
    if start_daemon i2c-rdwr /run/rdwr.sock vhost-device-i2c -s /run/rdwr.sock -c 2 -l "$vbus:0x54,$bus:0x50"; then
        rdwr_pid=$dpid
        run_bin host-devices.i2c-rdwr i2c-rdwr --socket /run/rdwr.sock0 --addr 0x54 --preset 0xc0=0x42 --prefix host-devices.i2c-rdwr
        # "vhost-rw" at 0xb0 and page 0 = 0x5a ^ (0..7) from the 4 x 8192-byte group.
        expect_eq host-devices.i2c-rdwr.kernel-page "0x76 0x68 0x6f 0x73 0x74 0x2d 0x72 0x77" "$(i2ctransfer -y "$vbus" w1@0x54 0xb0 r8 2>&1)"
        expect_eq host-devices.i2c-rdwr.kernel-byte-data "0x76" "$(i2cget -y "$vbus" 0x54 0xb0 2>&1)"
        expect_eq host-devices.i2c-rdwr.kernel-group-page "0x5a 0x5b 0x58 0x59 0x5e 0x5f 0x5c 0x5d" "$(i2ctransfer -y "$vbus" w1@0x54 0x00 r8 2>&1)"
        run_bin host-devices.i2c-two i2c-two-adapters --socket0 /run/rdwr.sock0 --socket1 /run/rdwr.sock1 \
            --smbus-addr 0x50 --i2c-addr 0x54 --daemon-pid "$rdwr_pid" --i2c-bus "$vbus" --prefix host-devices.i2c-two
        stop_daemon i2c-rdwr "$rdwr_pid"
    fi
fi

# ---- GPIO over gpio-sim ----------------------------------------------------------------
sim=/sys/kernel/config/gpio-sim/hd
names="hd-line0,hd-line1,hd-line2,hd-line3,hd-line4,hd-line5,hd-line6,hd-line7"
ok=1
mkdir "$sim" && mkdir "$sim/bank0" && echo 8 > "$sim/bank0/num_lines" || ok=0
i=0
for n in $(echo "$names" | tr ',' ' '); do
    mkdir "$sim/bank0/line$i" && echo "$n" > "$sim/bank0/line$i/name" || ok=0
    i=$((i + 1))
done
echo 1 > "$sim/live" || ok=0
chip="$(cat "$sim/bank0/chip_name" 2>/dev/null)"
devname="$(cat "$sim/dev_name" 2>/dev/null)"
simdir="/sys/devices/platform/$devname/$chip"
if [ "$ok" = 1 ] && [ -d "$simdir/sim_gpio0" ]; then
    pass host-devices.gpio-sim
    if start_daemon gpio /run/gpio.sock vhost-device-gpio -s /run/gpio.sock -l "${chip#gpiochip}"; then
        gpio_pid=$dpid
        run_bin host-devices.gpio gpio --socket "$sock" --sim-dir "$simdir" --names "$names" --prefix host-devices.gpio
        run_bin host-devices.gpio.reconnect gpio --socket "$sock" --sim-dir "$simdir" --names "$names" --prefix host-devices.gpio.reconnect
        stop_daemon gpio "$gpio_pid"
    fi
else
    fail host-devices.gpio-sim "gpio-sim chip setup failed (chip '$chip', dev '$devname')"
fi

# ---- Eight busy guests at once on eight gpio-sim chips (-c 8) ------------------------------
lsim=/sys/kernel/config/gpio-sim/load
ok=1
mkdir "$lsim" || ok=0
for b in 0 1 2 3 4 5 6 7; do
    mkdir "$lsim/bank$b" && echo 2 > "$lsim/bank$b/num_lines" || ok=0
done
echo 1 > "$lsim/live" || ok=0
chips=""
for b in 0 1 2 3 4 5 6 7; do
    c="$(cat "$lsim/bank$b/chip_name" 2>/dev/null)"
    chips="$chips${chips:+:}${c#gpiochip}"
done
if [ "$ok" = 1 ] && [ "$(echo "$chips" | tr ':' '\n' | grep -c .)" = 8 ]; then
    if start_daemon gpio-load /run/gpiol.sock vhost-device-gpio -s /run/gpiol.sock -c 8 -l "$chips"; then
        run_bin host-devices.gpio-load load --kind gpio --socket /run/gpiol.sock --count 8 --daemon-pid "$dpid" --prefix host-devices.gpio-load
        stop_daemon gpio-load "$dpid"
    fi
else
    fail host-devices.gpio-load-sim "gpio-sim: eight banks not live (chips '$chips')"
fi
exit 0
