#!/usr/bin/env bash
# The backend VM's image, built once and cached: Debian 12 (minbase + systemd as init,
# udev, i2c-tools) with Debian 12's own kernel package (linux-image-amd64 of bookworm /
# bookworm-security, 6.1) and a gpio-sim.ko built for it (customize.sh), made with
# mmdebstrap from the machine's Debian apt source (the URIs of
# /etc/apt/sources.list.d/debian.sources, never a host name written here).
#
# Cache: ${VHOST_DEVICE_GUEST_CACHE:-/var/cache/vhost-device-guest}/debian-vm-<key>/ with
# rootfs.raw (ext4, the base of each run's qcow2 overlay: never written), vmlinuz,
# initrd.img, kernel-version; key = hash of this script, customize.sh, the package list and
# the kernel version apt resolves. Cached: nothing is built. Last stdout line = the cache
# directory. Each step's time on stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${VHOST_DEVICE_GUEST_CACHE:-/var/cache/vhost-device-guest}"
export DEBIAN_FRONTEND=noninteractive
log() { printf '[backend-vm image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (mmdebstrap --mode=root, apt-get)"

# The image's packages (the kernel and its module build tools are added below).
PACKAGES=(systemd systemd-sysv udev kmod initramfs-tools i2c-tools gpiod procps)
IMAGE_SIZE=2G

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
missing=()
for p in mmdebstrap e2fsprogs qemu-utils; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# Debian 12's kernel: what linux-image-amd64 resolves to outside backports (priority 500).
resolve_kernel() {
    KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)"
    KVERSION="$(apt-cache policy "$KPKG" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    [[ -n "$KPKG" && -n "$KVERSION" && "$KVERSION" != "(none)" ]]
}
resolve_kernel || { apt-get update -q >&2; resolve_kernel; } || die "apt cannot resolve linux-image-amd64"
case "$KVERSION" in 6.1.*) ;; *) die "linux-image-amd64 resolves to $KPKG $KVERSION, expected Debian 12's 6.1 (is backports pinned?)" ;; esac
KHDR="${KPKG/linux-image-/linux-headers-}"

key="$(
    cat "$0" "$HERE/customize.sh"
    printf '%s\n' "${PACKAGES[@]}" "$KPKG=$KVERSION" "size=$IMAGE_SIZE"
)"
key="$(sha256sum <<<"$key" | cut -c1-16)"
DIR="$CACHE_ROOT/debian-vm-$key"
if [[ -f "$DIR/complete" ]]; then
    log "cached: $DIR ($KPKG $KVERSION)"
    echo "$DIR"
    exit 0
fi

# The apt lines for mmdebstrap, from the machine's deb822 source (main + security).
sources_file=/etc/apt/sources.list.d/debian.sources
mirror="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' "$sources_file")"
security="$(awk '/^URIs:/ {u=$2} /^Suites:/ && /bookworm-security/ {print u; exit}' "$sources_file")"
[[ -n "$mirror" && -n "$security" ]] || die "no bookworm / bookworm-security URIs in $sources_file"

t0=$SECONDS
WORK="$(mktemp -d "$CACHE_ROOT/.debian-vm-build.XXXXXX")"
# mmdebstrap unmounts what it mounted in the chroot, even on failure; never follow a
# mount out of the build directory anyway.
trap 'rm -rf --one-file-system "$WORK"' EXIT
log "building $DIR: $KPKG $KVERSION from $mirror and $security"
# The headers, source and compiler are for gpio-sim.ko only: customize.sh purges them.
includes="$(IFS=,; echo "${PACKAGES[*]}"),$KPKG=$KVERSION,$KHDR=$KVERSION,linux-source-6.1=$KVERSION,gcc,make,xz-utils"
nice mmdebstrap --mode=root --format=directory --variant=minbase \
    --include="$includes" \
    --customize-hook="$HERE/customize.sh" \
    bookworm "$WORK/root" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" >&2
log "mmdebstrap: $((SECONDS - t0)) s"

t1=$SECONDS
KVER="$(ls "$WORK/root/lib/modules")"
cp "$WORK/root/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$WORK/root/boot/initrd.img-$KVER" "$WORK/initrd.img"
echo "$KVER" > "$WORK/kernel-version"
echo "$KPKG $KVERSION" > "$WORK/kernel-package"
nice mkfs.ext4 -q -F -L backend-vm -d "$WORK/root" "$WORK/rootfs.raw" "$IMAGE_SIZE" >&2
rm -rf "$WORK/root"
log "rootfs.raw: $((SECONDS - t1)) s ($(du -h --apparent-size "$WORK/rootfs.raw" | cut -f1) apparent, $(du -h "$WORK/rootfs.raw" | cut -f1) used)"
touch "$WORK/complete"
rm -rf "$DIR"
mv "$WORK" "$DIR"
trap - EXIT
log "image built in $((SECONDS - t0)) s"
echo "$DIR"
