# Guest-side helpers for the test scripts (busybox sh). Source it.
# Every check prints exactly one line: "PASS: name" or "FAIL: name: reason".
VTEST_RESULTS="${VTEST_RESULTS:-/dev/null}"
vt_out() { echo "$*"; echo "$*" > "$VTEST_RESULTS"; }
pass() { vt_out "PASS: $1"; }
fail() { n="$1"; shift; r="$(echo "$*" | tr '\n' ' ')"; vt_out "FAIL: $n: $r"; }
# check NAME CMD...: PASS if CMD exits 0, else FAIL with its output's last line.
check() {
    n="$1"; shift
    if o="$("$@" 2>&1)"; then pass "$n"; else fail "$n" "'$*' failed: $(echo "$o" | tail -n 1)"; fi
}
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}
# wait_for TIMEOUT_TENTHS CMD...: poll until CMD succeeds.
wait_for() {
    t="$1"; shift
    while [ "$t" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1; t=$((t - 1))
    done
    return 1
}
# exited PID: the process is gone or a zombie (kill -0 succeeds on an unreaped child).
exited() {
    [ ! -e "/proc/$1/stat" ] && return 0
    case "$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null)" in " Z"*|"") return 0 ;; esac
    return 1
}
# i2c_bus_by_name NAME: the N of the i2c-N adapter whose name starts with NAME.
i2c_bus_by_name() {
    for d in /sys/bus/i2c/devices/i2c-*; do
        [ -f "$d/name" ] || continue
        case "$(cat "$d/name")" in "$1"*) echo "${d##*/i2c-}"; return 0 ;; esac
    done
    return 1
}
# i2c_scan BUS -r|-q: the addresses i2cdetect lists as present, space separated.
i2c_scan() {
    i2cdetect -y "$2" "$1" 2>&1 | sed -n 's/^[0-7]0: //p' | tr ' ' '\n' \
        | grep -E '^[0-9a-f]{2}$' | tr '\n' ' ' | sed 's/ $//'
}
# gpio_chip_by_label PATTERN: the gpiochipN whose label matches PATTERN (grep -E).
gpio_chip_by_label() {
    c="$(gpiodetect 2>/dev/null | grep -E "\[$1\]" | head -n 1 | cut -d' ' -f1)"
    [ -n "$c" ] && echo "$c"
}
