#!/usr/bin/env bash
# backend-vm: the Debian packages in a real backend VM. Debian 12 with systemd as init and
# Debian 12's kernel (backend-vm/image.sh, cached), booted under QEMU TCG with a per-run
# qcow2 overlay (the cached image is never written) and a payload disk carrying the
# freshly built amd64 packages, a repacked newer version of them, the test frontend and
# backend-vm/vm-test.sh, which the image's launcher unit runs; its result lines come back
# on ttyS1 (see vm-test.sh for what it checks).
#
# usage: run-backend-vm.sh --bin-dir DIR [--log-dir DIR] [--timeout SECONDS]
#   --bin-dir: where vhost-device-guest-tests was built (cargo build --release).
# Builds the packages with `cargo xtask deb --arch amd64` (only amd64: the VM's). Prints
# one PASS/FAIL line per check ("backend-vm.*"), INFO lines (boot time, time to first
# answer) on stderr, last "backend-vm: N passed, M failed". Exit 0 only if all passed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$REPO_ROOT/tests/deb-repack.sh"
SUITE=backend-vm

BIN_DIR="" LOG_DIR="" TIMEOUT=900
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin-dir) BIN_DIR="$2"; shift 2 ;;
        --log-dir) LOG_DIR="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ -n "$BIN_DIR" ]] || die "usage: run-backend-vm.sh --bin-dir DIR [--log-dir DIR] [--timeout SECONDS]"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$(mktemp -d /tmp/vhost-device-backend-vm.XXXXXX)"
mkdir -p "$LOG_DIR"
L="$LOG_DIR/backend-vm"
T_ALL="$(now_s)"
abort() { fail "$1" "$2"; summary; exit 1; }

# ---- the cached image -----------------------------------------------------------------------
t="$(now_s)"
if "$GUEST_DIR/backend-vm/image.sh" >"$L-image.out" 2>"$L-image.log"; then
    IMG="$(tail -n 1 "$L-image.out")"
    pass backend-vm.host.image
else
    tail -n 20 "$L-image.log" >&2
    abort backend-vm.host.image "backend-vm/image.sh failed (log: $L-image.log)"
fi
log "backend-vm: image $IMG ($(elapsed "$t") s)"

# ---- the packages under test, and a newer version of them -------------------------------------
t="$(now_s)"
if (cd "$REPO_ROOT" && nice cargo xtask deb --arch amd64) >"$L-debs.out" 2>"$L-debs.log"; then
    mapfile -t DEBS <"$L-debs.out"
else
    tail -n 20 "$L-debs.log" >&2
    abort backend-vm.host.debs "cargo xtask deb --arch amd64 failed (log: $L-debs.log)"
fi
i2c_deb="$(grep '/vhost-device-i2c_[^/]*_amd64\.deb$' "$L-debs.out" || true)"
gpio_deb="$(grep '/vhost-device-gpio_[^/]*_amd64\.deb$' "$L-debs.out" || true)"
if [[ ${#DEBS[@]} -ne 2 || ! -f "$i2c_deb" || ! -f "$gpio_deb" ]]; then
    abort backend-vm.host.debs "expected the two amd64 packages, cargo xtask deb printed: $(tr '\n' ' ' <"$L-debs.out")"
fi
VERSION="$(dpkg-deb -f "$i2c_deb" Version)"
UP_VERSION="$VERSION+bvm1"
PAYLOAD="$L-payload"
rm -rf "$PAYLOAD"
mkdir -p "$PAYLOAD/debs" "$PAYLOAD/up" "$PAYLOAD/bin"
cp "$i2c_deb" "$gpio_deb" "$PAYLOAD/debs/"
for p in vhost-device-i2c vhost-device-gpio; do
    repack_deb "$PAYLOAD/debs/${p}_${VERSION}_amd64.deb" "$PAYLOAD/up/${p}_${UP_VERSION}_amd64.deb" "$UP_VERSION"
done
[[ -x "$BIN_DIR/vhost-device-guest-tests" ]] \
    || abort backend-vm.host.debs "no $BIN_DIR/vhost-device-guest-tests (cargo build --release -p vhost-device-guest-tests)"
cp "$BIN_DIR/vhost-device-guest-tests" "$PAYLOAD/bin/"
cp "$GUEST_DIR/backend-vm/vm-test.sh" "$PAYLOAD/"
echo "$VERSION" >"$PAYLOAD/version"
echo "$UP_VERSION" >"$PAYLOAD/up-version"
cp "$IMG/kernel-version" "$IMG/kernel-package" "$PAYLOAD/"
rm -f "$L-payload.img" "$L-root.qcow2"
mkfs.ext4 -q -F -L payload -d "$PAYLOAD" "$L-payload.img" 128M >&2
qemu-img create -q -f qcow2 -b "$IMG/rootfs.raw" -F raw "$L-root.qcow2"
pass backend-vm.host.debs
log "backend-vm: packages $VERSION and $UP_VERSION, payload ($(elapsed "$t") s)"

# ---- boot, run, collect ---------------------------------------------------------------------
QEMU_BIN="$(qemu_binary 2>&1)" || abort backend-vm.vm.complete "$QEMU_BIN"
CONSOLE="$L.console.log" RESULTS="$L.results.log"
: >"$CONSOLE"
: >"$RESULTS"
args=(
    -M q35 -accel tcg -cpu max -m 1G -smp 2
    -nodefaults -no-user-config -display none -monitor none -no-reboot
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 panic=-1"
    -drive "file=$L-root.qcow2,if=virtio,format=qcow2"
    -drive "file=$L-payload.img,if=virtio,format=raw,readonly=on"
    -serial "file:$CONSOLE" -serial "file:$RESULTS"
)
t0="$(now_s)"
set +e
nice timeout -k 5 "$TIMEOUT" "$QEMU_BIN" "${args[@]}" </dev/null >"$L.qemu.log" 2>&1
qrc=$?
set -e
log "backend-vm: QEMU ran $(elapsed "$t0") s (exit $qrc); console: $CONSOLE"

complete=0
while IFS= read -r line; do
    line="${line%$'\r'}"
    case "$line" in
        "PASS: "*) echo "$line"; passed=$((passed + 1)) ;;
        "FAIL: "*) echo "$line"; failed=$((failed + 1)) ;;
        "INFO: "*) log "backend-vm: ${line#INFO: }" ;;
        "VTEST-END backend-vm rc="*) complete=1 ;;
    esac
done <"$RESULTS"
if ((qrc == 124 || qrc == 137)); then
    fail backend-vm.vm.complete "timeout: the VM did not finish within $TIMEOUT s (console: $CONSOLE)"
elif ((qrc != 0)); then
    fail backend-vm.vm.complete "QEMU exited with $qrc: $(tail -n 3 "$L.qemu.log" | tr '\n' ' ')"
elif ((complete == 0)); then
    fail backend-vm.vm.complete "the VM's test script did not run to its end (console: $CONSOLE)"
else
    pass backend-vm.vm.complete
fi
if ((failed > 0)) || [[ -n "${VERBOSE:-}" ]]; then
    {
        echo "---- last lines of the backend VM's console ($CONSOLE) ----"
        tail -n 60 "$CONSOLE" | tr -d '\r' | sed 's/^/  | /'
        echo "----"
    } >&2
fi
rm -f "$L-root.qcow2" "$L-payload.img"
log "backend-vm: $(elapsed "$T_ALL") s in all"
summary
((failed == 0))
