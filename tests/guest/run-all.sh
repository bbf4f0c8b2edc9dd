#!/usr/bin/env bash
# All guest suites, from a fresh Debian 12 machine (as root):
#   1. setup.sh: packages (QEMU >= 9 from bookworm-backports, busybox, gpiod, kernel source)
#      and the cached guest kernel;
#   2. cargo build --release of the daemons and the Suite B test binary;
#   3. the initramfs;
#   4. smoke (the guest kernel's i2c-stub, gpio-sim and tools), Suite A (guest drivers
#      against our daemons on the host), Suite B (our daemons inside the guest on
#      i2c-stub and gpio-sim, driven by vhost-device-guest-tests).
# Prints one PASS/FAIL line per check and, last, "N passed, M failed". Exits non-zero
# if any check failed or anything needed could not be had.
# Logs: $VHOST_DEVICE_GUEST_LOGS (default: a new /tmp/vhost-device-guest-logs.XXXXXX).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T_ALL="$(now_s)"
LOGS="${VHOST_DEVICE_GUEST_LOGS:-$(mktemp -d /tmp/vhost-device-guest-logs.XXXXXX)}"
mkdir -p "$LOGS"
OUT="$LOGS/results.txt"
: > "$OUT"
log "logs in $LOGS"

# Relay a command's PASS/FAIL lines (also into $OUT); other output goes to stderr.
relay() {
    local line
    while IFS= read -r line; do
        case "$line" in
            "PASS: "*|"FAIL: "*) echo "$line"; echo "$line" >> "$OUT" ;;
            *) echo "$line" >&2 ;;
        esac
    done
}
finish() {
    local p f
    p="$(grep -c '^PASS: ' "$OUT" || true)"
    f="$(grep -c '^FAIL: ' "$OUT" || true)"
    log "guest suites: $(elapsed "$T_ALL") s in all"
    echo "$p passed, $f failed"
    (( f == 0 && p > 0 ))
}
fatal() {
    echo "FAIL: $1: $2" | relay
    finish || true
    exit 1
}

t="$(now_s)"
if ! "$GUEST_DIR/setup.sh" > "$LOGS/setup.out" 2> "$LOGS/setup.log"; then
    tail -n 20 "$LOGS/setup.log" >&2
    fatal guest.setup "tests/guest/setup.sh failed (log: $LOGS/setup.log)"
fi
KDIR="$(tail -n 1 "$LOGS/setup.out")"
[[ -f "$KDIR/bzImage" ]] || fatal guest.setup "setup.sh did not give a kernel directory"
log "step setup: $(elapsed "$t") s (kernel: $KDIR)"

t="$(now_s)"
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
if ! (cd "$REPO_ROOT" && cargo build --release --locked -p vhost-device-i2c -p vhost-device-gpio -p vhost-device-guest-tests) \
    > "$LOGS/cargo-build.log" 2>&1; then
    tail -n 30 "$LOGS/cargo-build.log" >&2
    fatal guest.build "cargo build --release failed (log: $LOGS/cargo-build.log)"
fi
BINS=("$BIN_DIR/vhost-device-i2c" "$BIN_DIR/vhost-device-gpio" "$BIN_DIR/vhost-device-guest-tests")
for b in "${BINS[@]}"; do [[ -x "$b" ]] || fatal guest.build "no $b after cargo build"; done
log "step cargo-build: $(elapsed "$t") s"

t="$(now_s)"
INITRD="$LOGS/initrd.cpio.gz"
"$GUEST_DIR/mkinitramfs.sh" "$INITRD" --kernel-dir "$KDIR" "${BINS[@]}" 2> "$LOGS/mkinitramfs.log" \
    || { cat "$LOGS/mkinitramfs.log" >&2; fatal guest.initramfs "mkinitramfs.sh failed"; }
log "step initramfs: $(elapsed "$t") s"

t="$(now_s)"
"$GUEST_DIR/run-qemu.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --test smoke --log-dir "$LOGS" --timeout 60 2>&1 | relay || true
log "step smoke: $(elapsed "$t") s"

t="$(now_s)"
"$GUEST_DIR/run-suite-a.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --bin-dir "$BIN_DIR" --log-dir "$LOGS" 2>&1 | relay || true
log "step suite-a: $(elapsed "$t") s"

t="$(now_s)"
"$GUEST_DIR/run-qemu.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --test suite-b --log-dir "$LOGS" --timeout 240 2>&1 | relay || true
log "step suite-b: $(elapsed "$t") s"

finish
