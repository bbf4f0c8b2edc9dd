#!/usr/bin/env bash
# host-devices: our daemons inside a guest on real kernel devices (i2c-stub, gpio-sim,
# and the guest's own i2c-virtio adapter, a full I2C adapter served from the host by
# vhost-device-i2c with a simulated 24c02), driven by vhost-device-guest-tests.
#
# usage: run-host-devices.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR] [--kernel-dir DIR]
# Prints one PASS/FAIL line per check and "host-devices: N passed, M failed"; exits
# non-zero if anything failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=host-devices
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
[[ -n "$INITRD" ]] || die "usage: run-host-devices.sh --initrd FILE [--bin-dir DIR] [--log-dir DIR]"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$(mktemp -d /tmp/vhost-device-host-devices.XXXXXX)"
mkdir -p "$LOG_DIR"
RUN="$(mktemp -d /tmp/vhost-device-sock.XXXXXX)"
trap 'stop_all_daemons; rm -rf "$RUN"' EXIT

# The guest's i2c-virtio adapter: a 24c02 at 0x54 (0x50 and 0x51 are i2c-stub chips in
# the guest; one daemon in the guest serves both adapters, so addresses must differ).
# QEMU's vhost-user-i2c-pci has a fixed 4-entry queue, so the guest's i2c-virtio driver
# carries at most 4 messages per transfer (the generic vhost-user-device-pci, whose queue
# size can be set, is not user-creatable in Debian's QEMU).
# The guest asks on its results line for the daemon to be stopped and resumed
# ("HOST-REQUEST: stop-i2c" / "cont-i2c"): with the host side stopped, a transfer on the
# i2c-virtio adapter stays in progress while the guest shows the other adapter is served.
serve_requests() {
    local results="$LOG_DIR/host-devices.results.log" pid="$1" stopped=0 resumed=0
    while :; do
        if (( !stopped )) && grep -q '^HOST-REQUEST: stop-i2c' "$results" 2>/dev/null; then
            kill -STOP "$pid"; stopped=1; log "host-devices: host i2c daemon stopped"
        fi
        if (( stopped && !resumed )) && grep -q '^HOST-REQUEST: cont-i2c' "$results" 2>/dev/null; then
            kill -CONT "$pid"; resumed=1; log "host-devices: host i2c daemon resumed"
        fi
        sleep 0.05
    done
}
if start_daemon i2c "$RUN/i2c.sock" "$BIN_DIR/vhost-device-i2c" -s "$RUN/i2c.sock" --simulate 24c02@0x54; then
    rm -f "$LOG_DIR/host-devices.results.log"
    serve_requests "${PIDS[i2c]}" & watcher=$!
    run_guest --test host-devices --i2c-sock "$SOCK_i2c" --timeout 240
    kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null || true
    kill -CONT "${PIDS[i2c]}" 2>/dev/null || true
    alive i2c host-devices
else
    fail host-devices.infra "the host I2C daemon did not start: host-devices checks not run"
fi
sigterm_all
summary
(( failed == 0 ))
