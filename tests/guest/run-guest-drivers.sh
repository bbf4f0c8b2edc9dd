#!/usr/bin/env bash
# guest-drivers: the guest kernel's own virtio-i2c / virtio-gpio drivers (and at24,
# rtc-ds1307) against vhost-device-i2c and vhost-device-gpio running on the host.
#
# usage: run-guest-drivers.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR] [--kernel-dir DIR]
# Prints one PASS/FAIL line per check and "guest-drivers: N passed, M failed"; exits
# non-zero if anything failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=guest-drivers
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
[[ -n "$INITRD" ]] || die "usage: run-guest-drivers.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR]"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$(mktemp -d /tmp/vhost-device-guest-drivers.XXXXXX)"
mkdir -p "$LOG_DIR"
RUN="$(mktemp -d /tmp/vhost-device-sock.XXXXXX)"
trap 'stop_all_daemons; rm -rf "$RUN"' EXIT

i2c_ok=0 gpio_ok=0
# --trace: the real guest's requests are checked in the daemons' logs below.
start_daemon i2c "$RUN/i2c.sock" "$BIN_DIR/vhost-device-i2c" -s "$RUN/i2c.sock" \
    --simulate 24c02@0x50 --simulate ds1338@0x68 --trace && i2c_ok=1
start_daemon gpio "$RUN/gpio.sock" "$BIN_DIR/vhost-device-gpio" -s "$RUN/gpio.sock" -l s8 --trace \
    && gpio_ok=1

if (( i2c_ok )); then
    run_guest --test guest-drivers-i2c --i2c-sock "$SOCK_i2c" --timeout 180
    alive i2c guest-drivers-i2c
else
    fail guest-drivers-i2c.infra "the I2C daemon did not start: guest I2C checks not run"
fi
if (( gpio_ok )); then
    run_guest --test guest-drivers-gpio --gpio-sock "$SOCK_gpio" --timeout 180
    alive gpio guest-drivers-gpio
else
    fail guest-drivers-gpio.infra "the GPIO daemon did not start: guest GPIO checks not run"
fi
if (( i2c_ok && gpio_ok )); then
    run_guest --test guest-drivers-reconnect --i2c-sock "$SOCK_i2c" --gpio-sock "$SOCK_gpio" --timeout 120
    alive i2c guest-drivers-reconnect
    alive gpio guest-drivers-reconnect
fi
# --trace shows what the guest's tools asked: i2cdetect -q probes with zero-length writes
# (0x50 answers, 0x51 does not), gpiomon's edges come back as delivered interrupts.
# expect_trace NAME DAEMON PATTERN...: every extended regex appears in DAEMON's trace lines.
expect_trace() {
    local name="$1" daemon="$2" p missing=()
    shift 2
    for p in "$@"; do
        # One grep, no pipe: with pipefail, `grep | grep -q` fails when -q stops reading early.
        grep -qE -- "vhost_device_trace$p" "$LOG_DIR/$daemon-daemon.log" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        pass "$SUITE.host.$name"
    else
        fail "$SUITE.host.$name" "no trace line matching: ${missing[*]} (log: $LOG_DIR/$daemon-daemon.log)"
    fi
}
expect_trace i2c-trace i2c '\] w0@0x50 -> OK$' '\] w0@0x51 -> ERR \(no device\)$' '\] w1@0x50 0x21 r1@0x50 -> 0xa5$'
expect_trace gpio-trace gpio '\] GET_LINE_NAMES -> OK \([0-9]+ bytes\)$' '\] SET_IRQ_TYPE [0-9]+ \(sim-[0-9]+\) edge-both -> OK$' '\] IRQ [0-9]+ \(sim-[0-9]+\) edge-both delivered$'
sigterm_all
summary
(( failed == 0 ))
