#!/usr/bin/env bash
# Build the guest initramfs (newc cpio, gzip).
#
# usage: mkinitramfs.sh OUT.cpio.gz [--kernel-dir DIR] [BINARY...]
#
#   - busybox-static with its applets installed as symlinks;
#   - gpiodetect gpioinfo gpioget gpioset gpiomon (Debian's gpiod) with the libraries
#     ldd lists, at the same paths;
#   - each BINARY (e.g. target/release/vhost-device-i2c) in /usr/local/bin, with its
#     ldd libraries (none when statically linked);
#   - i2c-stub.ko from the guest kernel cache (default: the one setup.sh built) in
#     /lib/modules/i2c-stub.ko;
#   - the guest test scripts tests/guest/vtests/*.sh in /tests;
#   - /init: mounts proc, sys, devtmpfs, configfs, tmpfs; runs /tests/$vtest.sh where
#     vtest=NAME is on the kernel command line; prints VTEST-BEGIN / VTEST-END lines;
#     `reboot -f`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || die "usage: mkinitramfs.sh OUT.cpio.gz [--kernel-dir DIR] [BINARY...]"
OUT="$1"; shift
KDIR=""
BINS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kernel-dir) KDIR="$2"; shift 2 ;;
        -*) die "unknown option $1" ;;
        *) BINS+=("$1"); shift ;;
    esac
done
[[ -n "$KDIR" ]] || KDIR="$(kernel_cache_dir)"
[[ -f "$KDIR/i2c-stub.ko" ]] || die "no i2c-stub.ko in $KDIR: run tests/guest/setup.sh"

t0="$(now_s)"
ROOT="$(mktemp -d /tmp/vhost-device-initramfs.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib/modules,proc,sys,dev,tmp,run,tests,etc,root,mnt}

# Copy a dynamically linked program and the libraries ldd lists, at the same paths.
copy_with_libs() {
    local src="$1" dst="$2" lib
    [[ -f "$src" && -x "$src" ]] || die "not an executable file: $src"
    mkdir -p "$ROOT$(dirname "$dst")"
    cp -L "$src" "$ROOT$dst"
    if ldd "$src" >/dev/null 2>&1; then
        while read -r lib; do
            [[ -f "$ROOT$lib" ]] && continue
            mkdir -p "$ROOT$(dirname "$lib")"
            cp -L "$lib" "$ROOT$lib"
        done < <(ldd "$src" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }')
    fi
}

# busybox and its applets.
BB="$(command -v busybox)" || die "busybox not found: run tests/guest/setup.sh"
file_out="$(ldd "$BB" 2>&1 || true)"
[[ "$file_out" == *"not a dynamic executable"* || "$file_out" == *"statically linked"* ]] \
    || die "$BB is not static (install busybox-static)"
cp "$BB" "$ROOT/bin/busybox"
while read -r applet; do
    [[ -z "$applet" || -e "$ROOT/$applet" ]] && continue
    mkdir -p "$ROOT/$(dirname "$applet")"
    ln -s /bin/busybox "$ROOT/$applet"
done < <("$BB" --list-full)
# The list is read once: `busybox --list | grep -q` fails under pipefail when grep stops
# reading before busybox has written its last line (SIGPIPE).
applets="$("$BB" --list)"
for a in i2cdetect i2cget i2cset i2ctransfer hwclock insmod mount reboot sh timeout; do
    grep -qx "$a" <<<"$applets" || die "busybox lacks the applet $a"
done

# gpiod tools. The guest scripts speak libgpiod 1.x's command lines (Debian 12's gpiod 1.6);
# 2.x tools (bookworm-backports, pulled in by its libgpiod3) take other arguments.
gpiod_version="$(gpioinfo --version 2>/dev/null | head -n1)" || true
[[ "$gpiod_version" == *" v1."* ]] \
    || die "gpioinfo is '${gpiod_version:-missing}', the guest tests need libgpiod 1.x tools: apt-get install gpiod/bookworm (2.x comes with bookworm-backports' libgpiod3)"
for tool in gpiodetect gpioinfo gpioget gpioset gpiomon; do
    p="$(command -v "$tool")" || die "$tool not found: run tests/guest/setup.sh (gpiod)"
    copy_with_libs "$p" "$p"
done

# Project binaries.
for b in "${BINS[@]}"; do
    copy_with_libs "$b" "/usr/local/bin/$(basename "$b")"
done

cp "$KDIR/i2c-stub.ko" "$ROOT/lib/modules/i2c-stub.ko"
cp "$GUEST_DIR"/vtests/*.sh "$ROOT/tests/"
chmod +x "$ROOT"/tests/*.sh

cat > "$ROOT/init" <<'INIT'
#!/bin/sh
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t configfs configfs /sys/kernel/config
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
hostname guest
vtest=""
for w in $(cat /proc/cmdline); do
    case "$w" in vtest=*) vtest="${w#vtest=}" ;; esac
done
# Result lines go to the console and, when present, to the second serial port, which
# carries nothing else (no kernel messages interleaved).
if [ -c /dev/ttyS1 ]; then VTEST_RESULTS=/dev/ttyS1; else VTEST_RESULTS=/dev/null; fi
export VTEST_RESULTS
out() { echo "$*"; echo "$*" > "$VTEST_RESULTS"; }
if [ -z "$vtest" ]; then
    out "VTEST-ERROR no vtest=NAME on the kernel command line"
elif [ ! -f "/tests/$vtest.sh" ]; then
    out "VTEST-ERROR no such guest test script: $vtest"
else
    out "VTEST-BEGIN $vtest"
    sh "/tests/$vtest.sh"
    rc=$?
    out "VTEST-END $vtest rc=$rc"
fi
sync
reboot -f
INIT
chmod +x "$ROOT/init"

mkdir -p "$(dirname "$OUT")"
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | gzip -1) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "initramfs $OUT: $(du -h "$OUT" | cut -f1), built in $(elapsed "$t0") s"
