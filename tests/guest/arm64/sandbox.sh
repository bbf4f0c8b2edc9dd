# arm64-guest: the arm64 part after host-devices (busybox sh, sourced by the generated
# /tests/arm64-guest.sh after /tests/lib.sh): the machine is arm64, the daemons are the
# packaged ones, each runs confined in every thread under its default sandbox, and the
# aarch64 filter kills (SIGSYS) on a syscall off its list, numbered as on aarch64.

expect_eq arm64-guest.boot.machine aarch64 "$(uname -m)"
if sha256sum -c /tests/packaged.sha256 > /tmp/sha.out 2>&1; then
    pass arm64-guest.boot.packaged-binaries
else
    fail arm64-guest.boot.packaged-binaries "$(cat /tmp/sha.out)"
fi

# confined_threads NAME PID MIN: every thread of PID (MIN or more) has Seccomp 2 (filter),
# NoNewPrivs 1 and no capability (effective, permitted, inheritable, ambient).
confined_threads() {
    n=0; bad=""
    for t in /proc/$2/task/*; do
        [ -f "$t/status" ] || continue
        n=$((n + 1))
        st="$(awk '$1 ~ /^(Seccomp|NoNewPrivs|CapInh|CapPrm|CapEff|CapAmb):$/ { printf "%s%s ", $1, $2 }' "$t/status")"
        case "$st" in
            "CapInh:0000000000000000 CapPrm:0000000000000000 CapEff:0000000000000000 CapAmb:0000000000000000 NoNewPrivs:1 Seccomp:2 ") ;;
            *) bad="$bad ${t##*/}: $st;" ;;
        esac
    done
    if [ "$n" -ge "$3" ] && [ -z "$bad" ]; then
        pass "arm64-guest.confinement.$1-every-thread"
        echo "arm64-guest: $1: $n threads, all confined"
    else
        fail "arm64-guest.confinement.$1-every-thread" "$n threads ($3 or more expected):$bad"
    fi
}

# confine_check NAME SOCKBASE FRONTEND-ARGS -- DAEMON-CMD...: start the daemon with its
# default sandbox, run a frontend session in the background and look at every thread of
# the daemon while it serves, then after it.
confine_check() {
    name="$1"; base="$2"; shift 2
    fargs=""
    while [ "$1" != "--" ]; do fargs="$fargs $1"; shift; done
    shift
    RUST_LOG=info "$@" > "/tmp/$name-confine.log" 2>&1 &
    cpid=$!
    wait_for 100 test -S "${base}0" || wait_for 1 test -S "$base"
    s="${base}0"; [ -S "$s" ] || s="$base"
    if ! [ -S "$s" ]; then
        fail "arm64-guest.confinement.$name-start" "no socket: $(tail -n 3 "/tmp/$name-confine.log" | tr '\n' ' ')"
        kill "$cpid" 2>/dev/null
        return
    fi
    pass "arm64-guest.confinement.$name-start"
    # shellcheck disable=SC2086
    timeout 120 vhost-device-guest-tests $fargs --socket "$s" > /tmp/confine-front.out 2>&1 &
    fpid=$!
    # While the frontend is connected (the daemon serves with its worker threads).
    wait_for 100 grep -q "frontend connected" "/tmp/$name-confine.log"
    sleep 0.2
    # Serving: the main thread and the vring worker thread(s) at least.
    confined_threads "$name-serving" "$cpid" 2
    wait "$fpid"; frc=$?
    if [ "$frc" -ne 0 ] || grep -q "^FAIL" /tmp/confine-front.out || ! grep -q "^PASS" /tmp/confine-front.out; then
        fail "arm64-guest.confinement.$name-session" "exit $frc: $(grep -v '^PASS' /tmp/confine-front.out | tail -n 3 | tr '\n' ' ')"
    else
        pass "arm64-guest.confinement.$name-session"
    fi
    confined_threads "$name-idle" "$cpid" 1
    if grep -q "sandbox: Landlock enforced" "/tmp/$name-confine.log" && grep -q "seccomp (Kill on other calls" "/tmp/$name-confine.log"; then
        pass "arm64-guest.confinement.$name-sandbox-log"
    else
        fail "arm64-guest.confinement.$name-sandbox-log" "$(grep -i sandbox "/tmp/$name-confine.log" | tr '\n' ' ')"
    fi
    kill -TERM "$cpid"; wait "$cpid" 2>/dev/null
    echo "---- $name confinement log ----"; cat "/tmp/$name-confine.log"
}

# The daemons run with no sandbox option at all: the packaged default (--seccomp kill).
bus="$(i2c_bus_by_name "SMBus stub driver")"
confine_check i2c /run/ci2c.sock i2c --addr 0x50 --absent 0x51 --prefix arm64-guest.confinement.i2c-frontend -- \
    vhost-device-i2c -s /run/ci2c.sock -l "$bus:0x50"
chip="$(cat /sys/kernel/config/gpio-sim/hd/bank0/chip_name 2>/dev/null)"
devname="$(cat /sys/kernel/config/gpio-sim/hd/dev_name 2>/dev/null)"
confine_check gpio /run/cgpio.sock gpio --sim-dir "/sys/devices/platform/$devname/$chip" \
    --names "hd-line0,hd-line1,hd-line2,hd-line3,hd-line4,hd-line5,hd-line6,hd-line7" \
    --prefix arm64-guest.confinement.gpio-frontend -- \
    vhost-device-gpio -s /run/cgpio.sock -l "${chip#gpiochip}"

# ---- SIGSYS: socket(2) after serving began (the same release build with the test trigger) --
# aarch64 numbers socket 198 (x86-64: 41): the audit record names it as the kernel saw it.
trig=/usr/local/libexec/vhost-device-i2c-trigger
sigsys_run() {
    mode="$1"; shift
    dmesg -c > /dev/null 2>&1
    VHOST_DEVICE_SANDBOX_TEST_TRIGGER=socket RUST_LOG=info "$trig" -s "/run/sys-$mode.sock" -l "$bus:0x50" "$@" \
        > "/tmp/sigsys-$mode.log" 2>&1 &
    spid=$!
    wait_for 100 test -S "/run/sys-$mode.sock0"
    timeout 60 vhost-device-guest-tests i2c --socket "/run/sys-$mode.sock0" --addr 0x50 --absent 0x51 --prefix sigsys > /dev/null 2>&1
    wait_for 100 grep -q "socket: calling after serving began" "/tmp/sigsys-$mode.log"
}
sigsys_run kill
i=0
while [ $i -lt 100 ] && ! exited "$spid"; do sleep 0.1; i=$((i + 1)); done
wait "$spid" 2>/dev/null; rc=$?
if [ "$rc" -eq 159 ] && ! grep -q "socket: returned" /tmp/sigsys-kill.log; then
    pass arm64-guest.sigsys.socket-killed
else
    fail arm64-guest.sigsys.socket-killed "exit status $rc (159 = SIGSYS expected): $(tail -n 3 /tmp/sigsys-kill.log | tr '\n' ' ')"
fi
if dmesg | grep "type=1326" | grep -q "sig=31 arch=c00000b7 syscall=198 "; then
    pass arm64-guest.sigsys.kill-audit-aarch64-nr
else
    fail arm64-guest.sigsys.kill-audit-aarch64-nr "no type=1326 sig=31 arch=c00000b7 (AUDIT_ARCH_AARCH64) syscall=198 record: $(dmesg | grep 1326 | tail -n 2 | tr '\n' ' ')"
fi
sigsys_run log --seccomp log
wait_for 50 grep -q "socket: returned" /tmp/sigsys-log.log
# socket(AF_INET) passes the filter (its record, sig=0) and then fails with EAFNOSUPPORT:
# the guest kernel has no IPv4. The daemon lives on.
if ! exited "$spid" && grep -q "socket: returned" /tmp/sigsys-log.log \
    && dmesg | grep "type=1326" | grep -q "sig=0 arch=c00000b7 syscall=198 "; then
    pass arm64-guest.sigsys.log-mode-audit
else
    fail arm64-guest.sigsys.log-mode-audit "$(tail -n 2 /tmp/sigsys-log.log | tr '\n' ' ') dmesg: $(dmesg | grep 1326 | tail -n 2 | tr '\n' ' ')"
fi
kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
echo "---- dmesg (audit) ----"; dmesg | grep -i 'audit\|seccomp' | tail -n 20
