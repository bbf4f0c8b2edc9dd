#!/usr/bin/env bash
# Suite A: the guest kernel's own virtio-i2c / virtio-gpio drivers (and at24, rtc-ds1307)
# against vhost-device-i2c and vhost-device-gpio running on the host.
#
# usage: run-suite-a.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR] [--kernel-dir DIR]
# Prints one PASS/FAIL line per check and "suite-a: N passed, M failed"; exits non-zero
# if anything failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INITRD="" BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release" LOG_DIR="" KDIR_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --initrd) INITRD="$2"; shift 2 ;;
        --bin-dir) BIN_DIR="$2"; shift 2 ;;
        --log-dir) LOG_DIR="$2"; shift 2 ;;
        --kernel-dir) KDIR_ARGS=(--kernel-dir "$2"); shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ -n "$INITRD" ]] || die "usage: run-suite-a.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR]"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$(mktemp -d /tmp/vhost-device-suite-a.XXXXXX)"
mkdir -p "$LOG_DIR"
RUN="$(mktemp -d /tmp/vhost-device-sock.XXXXXX)"

passed=0 failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1: $2"; failed=$((failed + 1)); }
summary() { echo "suite-a: $passed passed, $failed failed"; }

declare -A PIDS=()
cleanup() {
    local name pid
    for name in "${!PIDS[@]}"; do
        pid="${PIDS[$name]}"
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$RUN"
}
trap cleanup EXIT

# start_daemon NAME SOCKET_BASE CMD...: start a daemon, wait for its socket (BASE0, or
# BASE itself). Sets SOCK_<NAME>.
start_daemon() {
    local name="$1" base="$2" i
    shift 2
    [[ -x "$1" ]] || { fail "host.$name-start" "no executable $1 (build: cargo build --release --workspace)"; return 1; }
    RUST_LOG="${RUST_LOG:-info}" "$@" >"$LOG_DIR/$name-daemon.log" 2>&1 &
    PIDS[$name]=$!
    for ((i = 0; i < 100; i++)); do
        for s in "${base}0" "$base"; do
            if [[ -S "$s" ]]; then
                printf -v "SOCK_$name" '%s' "$s"
                pass "host.$name-start"
                return 0
            fi
        done
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            fail "host.$name-start" "daemon exited: $(tail -n 3 "$LOG_DIR/$name-daemon.log" | tr '\n' ' ')"
            unset "PIDS[$name]"
            return 1
        fi
        sleep 0.1
    done
    fail "host.$name-start" "no socket ${base}0 after 10 s"
    return 1
}

alive() {
    if [[ -n "${PIDS[$1]:-}" ]] && kill -0 "${PIDS[$1]}" 2>/dev/null; then
        pass "host.$1-alive-after-$2"
    else
        fail "host.$1-alive-after-$2" "daemon is gone (log: $LOG_DIR/$1-daemon.log)"
    fi
}

# run_guest ARGS...: run-qemu.sh, its PASS/FAIL lines counted here.
run_guest() {
    local out line
    out="$("$GUEST_DIR/run-qemu.sh" --initrd "$INITRD" --log-dir "$LOG_DIR" ${KDIR_ARGS[@]+"${KDIR_ARGS[@]}"} "$@")" || true
    while IFS= read -r line; do
        case "$line" in
            "PASS: "*) echo "$line"; passed=$((passed + 1)) ;;
            "FAIL: "*) echo "$line"; failed=$((failed + 1)) ;;
        esac
    done <<< "$out"
}

i2c_ok=0 gpio_ok=0
start_daemon i2c "$RUN/i2c.sock" "$BIN_DIR/vhost-device-i2c" -s "$RUN/i2c.sock" \
    --simulate 24c02@0x50 --simulate ds1338@0x68 && i2c_ok=1
start_daemon gpio "$RUN/gpio.sock" "$BIN_DIR/vhost-device-gpio" -s "$RUN/gpio.sock" -l s8 && gpio_ok=1

if (( i2c_ok )); then
    run_guest --test suite-a-i2c --i2c-sock "$SOCK_i2c" --timeout 180
    alive i2c suite-a-i2c
else
    fail suite-a-i2c.infra "the I2C daemon did not start: guest I2C checks not run"
fi
if (( gpio_ok )); then
    run_guest --test suite-a-gpio --gpio-sock "$SOCK_gpio" --timeout 180
    alive gpio suite-a-gpio
else
    fail suite-a-gpio.infra "the GPIO daemon did not start: guest GPIO checks not run"
fi
if (( i2c_ok && gpio_ok )); then
    run_guest --test suite-a-reconnect --i2c-sock "$SOCK_i2c" --gpio-sock "$SOCK_gpio" --timeout 120
    alive i2c suite-a-reconnect
    alive gpio suite-a-reconnect
fi

# After all that, each daemon still runs under its sandbox (seccomp filter, no_new_privs,
# no capabilities) and SIGTERM ends it promptly, removing its socket (Landlock allows that).
for name in "${!PIDS[@]}"; do
    pid="${PIDS[$name]}"
    st="$(awk '$1 ~ /^(Seccomp|NoNewPrivs|CapEff):$/ { printf "%s%s ", $1, $2 }' "/proc/$pid/status" 2>/dev/null)"
    if [[ "$st" == "CapEff:0000000000000000 NoNewPrivs:1 Seccomp:2 " ]]; then
        pass "host.$name-confined"
    else
        fail "host.$name-confined" "/proc/$pid/status: $st"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        fail "host.$name-sigterm" "still running 5 s after SIGTERM"
        kill -KILL "$pid" 2>/dev/null || true
    else
        pass "host.$name-sigterm"
    fi
    if [[ -e "$RUN/$name.sock0" ]]; then
        fail "host.$name-socket-removed" "$RUN/$name.sock0 still exists after SIGTERM"
    else
        pass "host.$name-socket-removed"
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
done
summary
(( failed == 0 ))
