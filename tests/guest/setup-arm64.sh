#!/usr/bin/env bash
# The arm64 guest kernel (Image + i2c-stub.ko), cross-built from the same linux-source-6.12
# as the x86 guest kernel (setup.sh) with Debian's gcc-aarch64-linux-gnu, from tinyconfig +
# kernel.fragment + kernel-arm64.fragment, every option checked after olddefconfig; cached
# in ${VHOST_DEVICE_GUEST_CACHE:-/var/cache/vhost-device-guest}/arm64-<key>/. Run as root
# (it installs gcc-aarch64-linux-gnu, qemu-system-arm and the kernel build dependencies).
# Prints the cache directory as its last line of stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $EUID -eq 0 ]] || die "setup-arm64.sh must run as root (apt-get install)"
export DEBIAN_FRONTEND=noninteractive
T_ALL="$(now_s)"
ARM64_FRAGMENT="$GUEST_DIR/kernel-arm64.fragment"
ARM64_RECIPE_VERSION=1

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross "$KERNEL_SOURCE_PKG" bc bison flex \
    libssl-dev cpio gzip xz-utils make gcc perl kmod; do
    installed "$p" || missing+=("$p")
done
# qemu-system-aarch64 from bookworm-backports (QEMU >= 9, like the x86 one): setup.sh adds
# that source, so run it first (tests/arm64-guest.sh does).
installed qemu-system-arm || missing+=(qemu-system-arm)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends -t bookworm-backports "${missing[@]}" \
        >/tmp/vhost-device-arm64-apt.log 2>&1 \
        || { tail -40 /tmp/vhost-device-arm64-apt.log >&2; die "apt-get install ${missing[*]} failed"; }
fi
QEMU=qemu-system-aarch64 qemu_binary >/dev/null

arm64_key() {
    {
        cat "$KERNEL_FRAGMENT" "$ARM64_FRAGMENT" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$'
        printf 'source=%s %s\nrecipe=%s\ncc=%s\n' "$KERNEL_SOURCE_PKG" "$(kernel_source_version)" \
            "$ARM64_RECIPE_VERSION" "$(dpkg-query -W -f='${Version}' gcc-aarch64-linux-gnu)"
    } | sha256sum | cut -c1-16
}
mkdir -p "$GUEST_CACHE_ROOT"
exec 9> "$GUEST_CACHE_ROOT/.lock-arm64"
flock 9
KDIR="$GUEST_CACHE_ROOT/arm64-$(arm64_key)"
if [[ -f "$KDIR/Image" && -f "$KDIR/i2c-stub.ko" && -f "$KDIR/config" ]]; then
    log "arm64 guest kernel cached in $KDIR: build skipped"
    echo "$KDIR"
    exit 0
fi

t="$(now_s)"
BUILD="$GUEST_CACHE_ROOT/build-arm64-$(arm64_key)"
rm -rf "$BUILD"; mkdir -p "$BUILD"
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
K=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
make -s "${K[@]}" tinyconfig >/dev/null
grep -rhoE '^[[:space:]]*(menu)?config[[:space:]]+[A-Za-z0-9_]+' --include='Kconfig*' . \
    | awk '{print $2}' | sort -u > "$BUILD/kconfig-symbols"
# kernel.fragment's x86-only lines (the 8250 UART's console) do not apply to the virt machine.
frag_lines() { cat "$KERNEL_FRAGMENT" "$ARM64_FRAGMENT" | sed 's/#.*//; s/[[:space:]]//g' | grep -v '^$' \
    | grep -vE '^CONFIG_(SERIAL_8250|SERIAL_8250_CONSOLE)='; }
args=()
while IFS= read -r line; do
    [[ "$line" =~ ^CONFIG_([A-Za-z0-9_]+)=([ym]|\"[^\"]*\")$ ]] || die "bad fragment line: $line"
    sym="${BASH_REMATCH[1]}"; val="${BASH_REMATCH[2]}"
    grep -qx "$sym" "$BUILD/kconfig-symbols" || die "CONFIG_$sym does not exist in this kernel source"
    case "$val" in
        y) args+=(--enable "$sym") ;;
        m) args+=(--module "$sym") ;;
        *) val="${val#\"}"; args+=(--set-str "$sym" "${val%\"}") ;;
    esac
done < <(frag_lines)
./scripts/config "${args[@]}"
make -s "${K[@]}" olddefconfig >/dev/null
./scripts/config "${args[@]}"
make -s "${K[@]}" olddefconfig >/dev/null
missing=0
while IFS= read -r line; do
    if ! grep -qx "$line" .config; then
        log "required $line but .config has: $(grep -E "^(# )?${line%%=*}[= ]" .config || echo absent)"
        missing=1
    fi
done < <(frag_lines)
((missing == 0)) || die "arm64 guest kernel config is missing required options (see above)"
log "step configure: $(elapsed "$t") s"

t="$(now_s)"
log "building Image and modules (ARCH=arm64, make -j2, nice 10)"
nice -n 10 make "${K[@]}" -j2 Image modules >"$BUILD/build.log" 2>&1 \
    || { tail -40 "$BUILD/build.log" >&2; die "arm64 kernel build failed"; }
log "step kernel-build: $(elapsed "$t") s"
stub="$(find . -name i2c-stub.ko | head -1)"
[[ -f arch/arm64/boot/Image && -f "$stub" ]] || die "build produced no Image or i2c-stub.ko"
tmp="$KDIR.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
cp arch/arm64/boot/Image "$tmp/Image"
cp "$stub" "$tmp/i2c-stub.ko"
cp .config "$tmp/config"
make -s "${K[@]}" kernelrelease > "$tmp/kernelrelease"
rm -rf "$KDIR"; mv "$tmp" "$KDIR"
cd /
log "arm64 guest kernel $(cat "$KDIR/kernelrelease") cached in $KDIR"
log "total: $(elapsed "$T_ALL") s"
echo "$KDIR"
