#!/usr/bin/env bash
# All guest suites, from a fresh Debian 12 machine (as root):
#   1. setup.sh: packages (QEMU >= 9 from bookworm-backports, busybox, gpiod, kernel source)
#      and the cached guest kernel;
#   2. cargo build --release of the daemons and the host-devices test binary (into
#      $CARGO_TARGET_DIR if set, else target/);
#   3. the initramfs;
#   4. smoke (the guest kernel's i2c-stub, gpio-sim and tools), guest-drivers (the guest's
#      Linux drivers against our daemons on the host), host-devices (our daemons inside the
#      guest on i2c-stub, gpio-sim and an i2c-virtio adapter, driven by
#      vhost-device-guest-tests);
#   5. backend-vm (run-backend-vm.sh): the amd64 Debian packages installed in a Debian 12
#      VM with systemd as init and Debian's own kernel (image built once with mmdebstrap
#      and cached): socket activation, the units' confinement, restart after a crash, a
#      refused configuration, upgrade and purge, under the real systemd.
# Prints one PASS/FAIL line per check and, last, "N passed, M failed, K missing,
# U unexpected (E expected)": the checks reported are counted against expected-checks.txt.
# Exits non-zero if any check failed, an expected check is missing, an unexpected one
# appeared, a runner exited non-zero, or anything needed could not be had.
# Logs: $VHOST_DEVICE_GUEST_LOGS (default: a new /tmp/vhost-device-guest-logs.XXXXXX).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T_ALL="$(now_s)"
LOGS="${VHOST_DEVICE_GUEST_LOGS:-$(mktemp -d /tmp/vhost-device-guest-logs.XXXXXX)}"
mkdir -p "$LOGS"
OUT="$LOGS/results.txt"
EXPECTED="$GUEST_DIR/expected-checks.txt"
: > "$OUT"
log "logs in $LOGS"
RUNNER_ERRORS=()

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
# run_step NAME CMD...: run a runner, relay its checks, remember a non-zero exit status.
run_step() {
    local name="$1" t rc
    shift
    t="$(now_s)"
    set +e
    "$@" 2>&1 | relay
    rc="${PIPESTATUS[0]}"
    set -e
    (( rc == 0 )) || RUNNER_ERRORS+=("$name exited with status $rc")
    log "step $name: $(elapsed "$t") s (exit $rc)"
}
# The check name of a PASS/FAIL line.
check_names() { sed -n -e 's/^PASS: //p' -e 's/^FAIL: \([^:]*\):.*/\1/p' "$1"; }
finish() {
    local p f e missing unexpected dups ok=1
    p="$(grep -c '^PASS: ' "$OUT" || true)"
    f="$(grep -c '^FAIL: ' "$OUT" || true)"
    e="$(grep -cv '^[[:space:]]*\(#\|$\)' "$EXPECTED" || true)"
    missing="$(comm -23 <(grep -v '^[[:space:]]*\(#\|$\)' "$EXPECTED" | sort -u) <(check_names "$OUT" | sort -u))"
    unexpected="$(comm -13 <(grep -v '^[[:space:]]*\(#\|$\)' "$EXPECTED" | sort -u) <(check_names "$OUT" | sort -u))"
    dups="$(check_names "$OUT" | sort | uniq -d)"
    [[ -z "$missing" ]] || { echo "missing (expected, never reported):" >&2; sed 's/^/  /' <<< "$missing" >&2; ok=0; }
    [[ -z "$unexpected" ]] || { echo "unexpected (reported, not in $EXPECTED):" >&2; sed 's/^/  /' <<< "$unexpected" >&2; ok=0; }
    [[ -z "$dups" ]] || { echo "reported more than once:" >&2; sed 's/^/  /' <<< "$dups" >&2; ok=0; }
    if (( ${#RUNNER_ERRORS[@]} > 0 )); then
        printf 'runner failed: %s\n' "${RUNNER_ERRORS[@]}" >&2
        ok=0
    fi
    log "guest suites: $(elapsed "$T_ALL") s in all"
    echo "$p passed, $f failed, $(grep -c . <<< "$missing" || true) missing, $(grep -c . <<< "$unexpected" || true) unexpected ($e expected)"
    (( ok && f == 0 && p == e ))
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

run_step smoke "$GUEST_DIR/run-qemu.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --test smoke --log-dir "$LOGS" --timeout 60
run_step guest-drivers "$GUEST_DIR/run-guest-drivers.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --bin-dir "$BIN_DIR" --log-dir "$LOGS"
run_step host-devices "$GUEST_DIR/run-host-devices.sh" --initrd "$INITRD" --kernel-dir "$KDIR" --bin-dir "$BIN_DIR" --log-dir "$LOGS"
# The packages under systemd in a Debian 12 VM: its own cached image (backend-vm/image.sh,
# mmdebstrap) and the amd64 packages (cargo xtask deb --arch amd64).
run_step backend-vm "$GUEST_DIR/run-backend-vm.sh" --bin-dir "$BIN_DIR" --log-dir "$LOGS"

finish
