#!/usr/bin/env bash
# Prepare a Debian 12 machine for the guest tests (run as root; idempotent):
#   - bookworm-backports apt source (derived from the existing Debian source, no host
#     name written here), QEMU >= 9 from it, busybox-static, gpiod, linux-source-6.12 and
#     the kernel build dependencies;
#   - a guest kernel (bzImage + i2c-stub.ko) built from linux-source-6.12 with
#     tests/guest/kernel.fragment, cached outside the repo in
#     ${VHOST_DEVICE_GUEST_CACHE:-/var/cache/vhost-device-guest}/<key>/.
# On success it prints the cache directory as its last line of stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $EUID -eq 0 ]] || die "setup.sh must run as root (apt-get install)"
export DEBIAN_FRONTEND=noninteractive
T_ALL="$(now_s)"

# ---- apt sources -----------------------------------------------------------------
t="$(now_s)"
ensure_bookworm_backports
log "apt-get update"
apt-get update -q >/tmp/vhost-device-guest-apt-update.log 2>&1 \
    || { cat /tmp/vhost-device-guest-apt-update.log >&2; die "apt-get update failed"; }
log "step apt-sources: $(elapsed "$t") s"

# ---- packages ----------------------------------------------------------------------
t="$(now_s)"
apt_install() {
    apt-get install -y -q --no-install-recommends "$@" >/tmp/vhost-device-guest-apt-install.log 2>&1 \
        || { tail -40 /tmp/vhost-device-guest-apt-install.log >&2; die "apt-get install $* failed"; }
}
log "installing qemu-system-x86 from bookworm-backports"
apt_install -t bookworm-backports qemu-system-x86
log "installing busybox-static gpiod $KERNEL_SOURCE_PKG and the kernel build dependencies"
apt_install busybox-static gpiod "$KERNEL_SOURCE_PKG" \
    bc bison flex libelf-dev libssl-dev cpio gzip xz-utils make gcc libc6-dev perl kmod
QEMU_BIN="$(qemu_binary)"
log "QEMU: $("$QEMU_BIN" --version | head -1)"
for tool in busybox gpiodetect gpioinfo gpioget gpioset gpiomon; do
    command -v "$tool" >/dev/null || die "$tool missing after installing its package"
done
log "step packages: $(elapsed "$t") s"

# ---- guest kernel ------------------------------------------------------------------
# One build at a time: a second setup (another checkout, a parallel run) waits for the
# first and then finds its kernel in the cache, instead of building into the same place.
mkdir -p "$GUEST_CACHE_ROOT"
exec 9> "$GUEST_CACHE_ROOT/.lock"
flock 9
KDIR="$(kernel_cache_dir)"
if [[ -f "$KDIR/bzImage" && -f "$KDIR/i2c-stub.ko" && -f "$KDIR/config" ]]; then
    log "guest kernel cached in $KDIR: build skipped"
    log "total: $(elapsed "$T_ALL") s"
    echo "$KDIR"
    exit 0
fi

t="$(now_s)"
mkdir -p "$GUEST_CACHE_ROOT"
BUILD="$GUEST_CACHE_ROOT/build-$(kernel_cache_key)"
rm -rf "$BUILD"
mkdir -p "$BUILD"
trap 'rm -rf "$BUILD"' EXIT
tarball="$(dpkg -L "$KERNEL_SOURCE_PKG" | grep -E '/usr/src/linux-source-.*\.tar\.(xz|bz2|gz)$' | head -1)"
[[ -f "$tarball" ]] || die "kernel source tarball of $KERNEL_SOURCE_PKG not found"
log "extracting $tarball"
tar -C "$BUILD" -xf "$tarball"
SRC="$(find "$BUILD" -mindepth 1 -maxdepth 1 -type d | head -1)"
[[ -f "$SRC/Makefile" ]] || die "no kernel tree in $BUILD"
log "step extract: $(elapsed "$t") s"

t="$(now_s)"
cd "$SRC"
make -s ARCH=x86_64 tinyconfig >/dev/null
grep -rhoE '^[[:space:]]*(menu)?config[[:space:]]+[A-Za-z0-9_]+' --include='Kconfig*' . \
    | awk '{print $2}' | sort -u > "$BUILD/kconfig-symbols"
args=()
while IFS= read -r line; do
    line="${line%%#*}"; line="${line//[[:space:]]/}"
    [[ -z "$line" ]] && continue
    [[ "$line" =~ ^CONFIG_([A-Za-z0-9_]+)=([ym]|\"[^\"]*\")$ ]] || die "bad line in kernel.fragment: $line"
    sym="${BASH_REMATCH[1]}"; val="${BASH_REMATCH[2]}"
    grep -qx "$sym" "$BUILD/kconfig-symbols" \
        || die "kernel.fragment: CONFIG_$sym does not exist in this kernel source"
    case "$val" in
        y) args+=(--enable "$sym") ;;
        m) args+=(--module "$sym") ;;
        *) val="${val#\"}"; args+=(--set-str "$sym" "${val%\"}") ;;
    esac
done < "$KERNEL_FRAGMENT"
./scripts/config "${args[@]}"
make -s ARCH=x86_64 olddefconfig >/dev/null
# Some options depend on ones enabled in the same pass: apply once more and re-resolve.
./scripts/config "${args[@]}"
make -s ARCH=x86_64 olddefconfig >/dev/null
missing=0
while IFS= read -r line; do
    line="${line%%#*}"; line="${line//[[:space:]]/}"
    [[ -z "$line" ]] && continue
    if ! grep -qx "$line" .config; then
        got="$(grep -E "^(# )?${line%%=*}[= ]" .config || echo "absent")"
        log "required $line but .config has: $got"
        missing=1
    fi
done < "$KERNEL_FRAGMENT"
(( missing == 0 )) || die "guest kernel config is missing required options (see above)"
log "step configure: $(elapsed "$t") s"

t="$(now_s)"
log "building bzImage and modules (make -j2, nice 10)"
nice -n 10 make ARCH=x86_64 -j2 bzImage modules >"$BUILD/build.log" 2>&1 \
    || { tail -40 "$BUILD/build.log" >&2; die "kernel build failed (log: $BUILD/build.log)"; }
log "step kernel-build: $(elapsed "$t") s"

stub="$(find . -name i2c-stub.ko | head -1)"
[[ -f arch/x86/boot/bzImage && -f "$stub" ]] || die "build produced no bzImage or i2c-stub.ko"
tmp="$KDIR.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
cp arch/x86/boot/bzImage "$tmp/bzImage"
cp "$stub" "$tmp/i2c-stub.ko"
cp .config "$tmp/config"
make -s kernelrelease > "$tmp/kernelrelease"
rm -rf "$KDIR"; mv "$tmp" "$KDIR"
cd /
rm -rf "$BUILD"
log "guest kernel $(cat "$KDIR/kernelrelease") cached in $KDIR"
log "total: $(elapsed "$T_ALL") s"
echo "$KDIR"
