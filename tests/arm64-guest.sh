#!/usr/bin/env bash
# arm64-guest: the packaged arm64 daemons, confined under their default sandbox
# (--seccomp kill: the aarch64 allowlist), on a real arm64 kernel. As root on the x86-64
# Debian 12 CI machine (it installs what it needs):
#   1. tests/guest/setup.sh (bookworm-backports, linux-source-6.12; the x86 guest kernel is
#      cached by the guest suites that run before) and tests/guest/setup-arm64.sh: the arm64
#      guest kernel cross-built from the same source (cached, arm64-<key>);
#   2. the arm64 .debs of `cargo xtask deb --arch arm64` (warm after tests/packaging.sh),
#      extracted with dpkg-deb: their /usr/bin binaries are what runs in the guest, with the
#      arm64 glibc of libc6-arm64-cross (the .debs are dynamic); the arm64 build of
#      vhost-device-guest-tests (the frontend) and, for the SIGSYS checks only, the same
#      release build of vhost-device-i2c with the sandbox-test-trigger feature;
#   3. an initramfs with arm64 busybox (busybox-static:arm64 downloaded, not installed);
#   4. qemu-system-aarch64 -M virt -cpu max (TCG): in the guest, tests/guest/vtests/
#      host-devices.sh (checks renamed arm64-guest.host-devices.*) with i2c-stub, gpio-sim
#      and the guest's own i2c-virtio adapter on virtio-mmio (vhost-user-i2c-device, served
#      by the host's x86 daemon), then tests/guest/arm64/sandbox.sh: every thread confined,
#      the default sandbox, SIGSYS with the aarch64 syscall number in the audit record.
# Every check prints one PASS/FAIL line; they are counted against
# tests/guest/arm64/expected-checks.txt (missing, unexpected or repeated ones fail).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/guest/lib.sh
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive
SUITE=arm64-guest
TARGET=aarch64-unknown-linux-gnu
T_ALL=$(now_s)
T_STEP=$T_ALL
LOG_DIR="${VHOST_DEVICE_ARM64_GUEST_LOGS:-$(mktemp -d /tmp/vhost-device-arm64-guest.XXXXXX)}"
mkdir -p "$LOG_DIR"
WORK=$(mktemp -d /tmp/vhost-device-arm64-guest-work.XXXXXX)
RUN=$(mktemp -d /tmp/vhost-device-arm64-sock.XXXXXX)
watcher=""
cleanup() {
    [[ -n $watcher ]] && kill "$watcher" 2>/dev/null
    stop_all_daemons
    rm -rf "$WORK" "$RUN"
}
trap cleanup EXIT
EXPECTED=tests/guest/arm64/expected-checks.txt
OUT="$LOG_DIR/results.txt"
: >"$OUT"
step_done() { log "arm64-guest: step $1: $(elapsed "$T_STEP") s"; T_STEP=$(now_s); }
[[ $EUID -eq 0 ]] || die "run as root (it installs packages with apt-get)"
log "arm64-guest: logs in $LOG_DIR"

# ---- 1. kernels, tools ----------------------------------------------------------------------
tests/guest/setup.sh >"$LOG_DIR/setup.out" 2>"$LOG_DIR/setup.log" \
    || { tail -20 "$LOG_DIR/setup.log" >&2; die "tests/guest/setup.sh failed"; }
tests/guest/setup-arm64.sh >"$LOG_DIR/setup-arm64.out" 2>"$LOG_DIR/setup-arm64.log" \
    || { tail -20 "$LOG_DIR/setup-arm64.log" >&2; die "tests/guest/setup-arm64.sh failed"; }
KDIR=$(tail -n 1 "$LOG_DIR/setup-arm64.out")
[[ -f $KDIR/Image && -f $KDIR/i2c-stub.ko ]] || die "no arm64 kernel in '$KDIR'"
grep -E 'kernel-build|cached' "$LOG_DIR/setup-arm64.log" >&2 || true
QEMU_BIN=$(QEMU=qemu-system-aarch64 qemu_binary)
log "arm64-guest: kernel $(cat "$KDIR/kernelrelease") in $KDIR; $("$QEMU_BIN" --version | head -1)"
step_done kernels

# arm64 busybox-static, and gpiod + libgpiod2 (vhost-device-guest-tests runs gpioinfo),
# downloaded (apt-get download) and extracted into a cache, never installed.
ARM64_DEBS=(busybox-static gpiod libgpiod2)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "arm64-guest: dpkg --add-architecture arm64 (to download arm64 packages; nothing arm64 is installed)"
    dpkg --add-architecture arm64
    apt-get update -q >"$LOG_DIR/apt.log" 2>&1 || { tail -20 "$LOG_DIR/apt.log" >&2; die "apt-get update failed"; }
fi
versions() { local p; for p in "${ARM64_DEBS[@]}"; do apt-cache policy "$p:arm64" | awk -v p="$p" '/Candidate:/ {print p "=" $2}'; done; }
vers=$(versions)
if grep -q '(none)' <<<"$vers" || (($(grep -c . <<<"$vers") != ${#ARM64_DEBS[@]})); then
    apt-get update -q >"$LOG_DIR/apt.log" 2>&1 || { tail -20 "$LOG_DIR/apt.log" >&2; die "apt-get update failed"; }
    vers=$(versions)
fi
grep -q '(none)' <<<"$vers" && die "not in the apt sources for arm64: $vers"
ARM64_TOOLS="$GUEST_CACHE_ROOT/arm64-tools-$(sha256sum <<<"$vers" | cut -c1-16)"
if [[ ! -f $ARM64_TOOLS/done ]]; then
    rm -rf "$ARM64_TOOLS" "$WORK/debs"; mkdir -p "$WORK/debs" "$ARM64_TOOLS"
    # shellcheck disable=SC2046
    (cd "$WORK/debs" && apt-get download -q $(sed 's/=/:arm64=/' <<<"$vers") >"$LOG_DIR/apt-download.log" 2>&1) \
        || { cat "$LOG_DIR/apt-download.log" >&2; die "apt-get download of the arm64 tools failed"; }
    for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$ARM64_TOOLS"; done
    touch "$ARM64_TOOLS/done"
fi
BB="$ARM64_TOOLS/bin/busybox"
readelf -h "$BB" | grep -q 'Machine:.*AArch64' || die "$BB is not an AArch64 binary"
log "arm64-guest: $(tr '\n' ' ' <<<"$vers")in $ARM64_TOOLS"
step_done busybox

# ---- 2. the packaged daemons, the frontend, the trigger build ---------------------------------
debs=$(nice -n 10 cargo xtask deb --arch arm64 2>"$LOG_DIR/deb.log") \
    || { tail -30 "$LOG_DIR/deb.log" >&2; die "cargo xtask deb --arch arm64 failed"; }
PKG="$WORK/pkg"
mkdir -p "$PKG"
for p in vhost-device-i2c vhost-device-gpio; do
    deb=$(grep -E "/${p}_[^/]*_arm64\.deb$" <<<"$debs" | tail -n 1)
    [[ -f $deb ]] || die "cargo xtask deb gave no arm64 package of $p: $debs"
    log "arm64-guest: $p from $deb"
    dpkg-deb -x "$deb" "$PKG"
    readelf -h "$PKG/usr/bin/$p" | grep -q 'Machine:.*AArch64' || die "$deb: /usr/bin/$p is not AArch64"
    ! grep -q "sandbox test trigger" "$PKG/usr/bin/$p" || die "$deb: /usr/bin/$p contains the sandbox test trigger"
done
step_done packages
BIN_DIR=${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/release
nice -n 10 cargo build --release --locked --target "$TARGET" -p vhost-device-guest-tests >"$LOG_DIR/build.log" 2>&1 \
    || { tail -30 "$LOG_DIR/build.log" >&2; die "arm64 build of vhost-device-guest-tests failed"; }
cp "$BIN_DIR/vhost-device-guest-tests" "$WORK/vhost-device-guest-tests"
# Built after the packages were extracted: it replaces target/.../vhost-device-i2c.
nice -n 10 cargo build --release --locked --target "$TARGET" -p vhost-device-i2c \
    --features vhost-device-common/sandbox-test-trigger >>"$LOG_DIR/build.log" 2>&1 \
    || { tail -30 "$LOG_DIR/build.log" >&2; die "arm64 trigger build of vhost-device-i2c failed"; }
cp "$BIN_DIR/vhost-device-i2c" "$WORK/vhost-device-i2c-trigger"
grep -q "sandbox test trigger" "$WORK/vhost-device-i2c-trigger" || die "the trigger build has no sandbox test trigger"
# The host side of the guest's virtio-mmio devices: the x86 daemons.
nice -n 10 cargo build --release --locked -p vhost-device-i2c -p vhost-device-gpio >>"$LOG_DIR/build.log" 2>&1 \
    || { tail -30 "$LOG_DIR/build.log" >&2; die "host build of the daemons failed"; }
HOST_BIN_DIR=${CARGO_TARGET_DIR:-$PWD/target}/release
step_done build

# ---- 3. initramfs ---------------------------------------------------------------------------
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/local/libexec,lib/modules,proc,sys,dev,tmp,run,tests,etc,root}
cp "$BB" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
install -m 0755 "$PKG/usr/bin/vhost-device-i2c" "$PKG/usr/bin/vhost-device-gpio" "$WORK/vhost-device-guest-tests" "$ROOT/usr/local/bin/"
install -m 0755 "$WORK/vhost-device-i2c-trigger" "$ROOT/usr/local/libexec/"
for tool in gpiodetect gpioinfo gpioget gpioset gpiomon; do
    install -m 0755 "$ARM64_TOOLS/usr/bin/$tool" "$ROOT/usr/bin/"
done
cp -a "$ARM64_TOOLS"/usr/lib/aarch64-linux-gnu/libgpiod.so.* "$ROOT/lib/"
(cd "$PKG/usr/bin" && sha256sum vhost-device-i2c vhost-device-gpio) | sed 's|  |  /usr/local/bin/|' >"$ROOT/tests/packaged.sha256"
# The arm64 glibc the binaries need (from libc6-arm64-cross, not installed system-wide as
# arm64), by their NEEDED entries, with the dynamic loader at its ELF interpreter path.
CROSS_LIB=/usr/aarch64-linux-gnu/lib
for b in "$ROOT"/usr/local/bin/* "$ROOT"/usr/local/libexec/* "$ROOT"/usr/bin/gpio* "$ROOT"/lib/libgpiod.so.*; do
    readelf -d "$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'
done | sort -u >"$WORK/needed"
log "arm64-guest: libraries needed: $(tr '\n' ' ' <"$WORK/needed")"
while read -r lib; do
    [[ -e $ROOT/lib/$lib ]] && continue
    [[ -f $CROSS_LIB/$lib ]] || die "$lib not in $CROSS_LIB (libc6-arm64-cross)"
    cp -L "$CROSS_LIB/$lib" "$ROOT/lib/$lib"
done <"$WORK/needed"
interp=$(readelf -l "$ROOT/usr/local/bin/vhost-device-i2c" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[[ $interp == /lib/ld-linux-aarch64.so.1 ]] || die "unexpected ELF interpreter '$interp'"
cp -L "$CROSS_LIB/ld-linux-aarch64.so.1" "$ROOT/lib/"
cp "$KDIR/i2c-stub.ko" "$ROOT/lib/modules/i2c-stub.ko"
cp tests/guest/vtests/lib.sh "$ROOT/tests/lib.sh"
cp tests/guest/arm64/sandbox.sh "$ROOT/tests/arm64-sandbox.sh"
{
    # host-devices.sh as it is, its checks renamed, then the arm64 checks.
    sed -e 's/host-devices\./arm64-guest.host-devices./g' -e '$ { /^exit 0$/d }' tests/guest/vtests/host-devices.sh
    echo '. /tests/arm64-sandbox.sh'
    echo 'exit 0'
} >"$ROOT/tests/arm64-guest.sh"
# The guest's own virtio drivers over virtio-mmio: guest-drivers-{i2c,gpio}.sh as they are,
# their checks renamed.
for t in i2c gpio; do
    sed 's/guest-drivers\./arm64-guest.guest-drivers./g' "tests/guest/vtests/guest-drivers-$t.sh" >"$ROOT/tests/gd-$t.sh"
done
printf 'sh /tests/gd-i2c.sh\nsh /tests/gd-gpio.sh\nexit 0\n' >"$ROOT/tests/arm64-guest-drivers.sh"
cat >"$ROOT/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t configfs configfs /sys/kernel/config
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
hostname arm64-guest
# Results on the virtio console (hvc0, virtio-mmio), apart from the kernel console.
VTEST_RESULTS=/dev/null
[ -c /dev/hvc0 ] && VTEST_RESULTS=/dev/hvc0
export VTEST_RESULTS
out() { echo "$*"; echo "$*" > "$VTEST_RESULTS"; }
vtest=""
for w in $(cat /proc/cmdline); do
    case "$w" in vtest=*) vtest="${w#vtest=}" ;; esac
done
out "VTEST-BEGIN $vtest"
sh "/tests/$vtest.sh"
out "VTEST-END $vtest rc=$?"
sync
reboot -f
INIT
chmod +x "$ROOT/init"
INITRD="$LOG_DIR/initrd-arm64.cpio.gz"
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | gzip -1) >"$INITRD"
log "arm64-guest: initramfs $(du -h "$INITRD" | cut -f1)"
step_done initramfs

# ---- 4. the guest -----------------------------------------------------------------------------
record() { echo "$1"; echo "$1" >>"$OUT"; }
# lib.sh's pass/fail, recorded for the count.
pass() { record "PASS: $1"; passed=$((passed + 1)); }
fail() { record "FAIL: $1: $2"; failed=$((failed + 1)); }
# The guest asks (HOST-REQUEST on its results port) to stop and resume the host's daemon
# (the i2c-virtio timeout check of host-devices.sh), as run-host-devices.sh does.
serve_requests() {
    local pid="$1" results="$2" stopped=0 resumed=0
    while :; do
        if ((!stopped)) && grep -q '^HOST-REQUEST: stop-i2c' "$results"; then kill -STOP "$pid"; stopped=1; fi
        if ((stopped && !resumed)) && grep -q '^HOST-REQUEST: cont-i2c' "$results"; then kill -CONT "$pid"; resumed=1; fi
        sleep 0.05
    done
}
# boot TEST TIMEOUT [QEMU ARGS...]: qemu-system-aarch64 running /tests/TEST.sh; its PASS/FAIL
# lines (on the virtio console, hvc0) recorded here.
boot() {
    local test="$1" tmo="$2" t qrc=0 complete=0 line
    shift 2
    local results="$LOG_DIR/$test.results.log" console="$LOG_DIR/$test.console.log"
    : >"$results"; : >"$console"
    if [[ -n ${PIDS[i2c]:-} ]]; then
        serve_requests "${PIDS[i2c]}" "$results" &
        watcher=$!
    fi
    local qargs=(
        -M virt,memory-backend=mem -accel tcg -cpu max,pauth-impdef=on -m 512M -smp 1
        -object memory-backend-memfd,id=mem,size=512M,share=on
        -nodefaults -no-user-config -display none -monitor none -no-reboot
        -kernel "$KDIR/Image" -initrd "$INITRD"
        -append "console=ttyAMA0 quiet panic=-1 vtest=$test"
        -serial "file:$console"
        -device virtio-serial-device -chardev "file,id=res,path=$results" -device virtconsole,chardev=res
        "$@"
    )
    t=$(now_s)
    timeout -k 5 "$tmo" "$QEMU_BIN" "${qargs[@]}" </dev/null >"$LOG_DIR/$test.qemu.log" 2>&1 || qrc=$?
    log "arm64-guest: $test: QEMU ran $(elapsed "$t") s (exit $qrc); console $console"
    if [[ -n $watcher ]]; then kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null || true; watcher=""; fi
    [[ -n ${PIDS[i2c]:-} ]] && kill -CONT "${PIDS[i2c]}" 2>/dev/null
    while IFS= read -r line; do
        line="${line%$'\r'}"
        case "$line" in
            "PASS: "*) record "$line"; passed=$((passed + 1)) ;;
            "FAIL: "*) record "$line"; failed=$((failed + 1)) ;;
            "VTEST-END $test rc="*) complete=1 ;;
        esac
    done <"$results"
    ((qrc == 0)) || fail "$test.qemu" "QEMU exited with $qrc: $(tail -n 3 "$LOG_DIR/$test.qemu.log" | tr '\n' ' ')"
    ((complete)) || fail "$test.complete" "the guest script did not run to its end (see $console)"
    if ((failed > 0)); then
        echo "---- last lines of the guest console ($console) ----" >&2
        tail -n 60 "$console" | tr -d '\r' | sed 's/^/  | /' >&2
    fi
}

# 4a. The packaged daemons confined in the arm64 guest; the host's x86 daemon behind the
# guest's i2c-virtio adapter.
if start_daemon i2c "$RUN/i2c.sock" "$HOST_BIN_DIR/vhost-device-i2c" -s "$RUN/i2c.sock" --simulate 24c02@0x54; then
    boot arm64-guest "${VHOST_DEVICE_ARM64_GUEST_TIMEOUT:-900}" \
        -chardev "socket,id=i2c0,path=$SOCK_i2c" -device vhost-user-i2c-device,chardev=i2c0
    alive i2c arm64-guest
else
    fail arm64-guest.infra "the host I2C daemon did not start"
fi
sigterm_all
step_done guest-packaged

# 4b. The arm64 guest's own i2c-virtio and gpio-virtio drivers over virtio-mmio against the
# host's daemons (vhost-user-{i2c,gpio}-device), as guest-drivers does on x86 over PCI.
# (Host daemon names drivers_*: their check names differ from 4a's.)
if start_daemon drivers_i2c "$RUN/gd-i2c.sock" "$HOST_BIN_DIR/vhost-device-i2c" -s "$RUN/gd-i2c.sock" \
    --simulate 24c02@0x50 --simulate ds1338@0x68 \
    && start_daemon drivers_gpio "$RUN/gd-gpio.sock" "$HOST_BIN_DIR/vhost-device-gpio" -s "$RUN/gd-gpio.sock" -l s8; then
    boot arm64-guest-drivers "${VHOST_DEVICE_ARM64_GUEST_TIMEOUT:-900}" \
        -chardev "socket,id=i2c0,path=$SOCK_drivers_i2c" -device vhost-user-i2c-device,chardev=i2c0 \
        -chardev "socket,id=gpio0,path=$SOCK_drivers_gpio" -device vhost-user-gpio-device,chardev=gpio0
    alive drivers_i2c arm64-guest-drivers
    alive drivers_gpio arm64-guest-drivers
else
    fail arm64-guest.infra "the host daemons for the guest drivers did not start"
fi
sigterm_all
step_done guest-drivers

check_names() { sed -n -e 's/^PASS: //p' -e 's/^FAIL: \([^:]*\):.*/\1/p' "$1"; }
exp() { grep -v '^[[:space:]]*\(#\|$\)' "$EXPECTED"; }
missing=$(comm -23 <(exp | sort -u) <(check_names "$OUT" | sort -u))
unexpected=$(comm -13 <(exp | sort -u) <(check_names "$OUT" | sort -u))
dups=$(check_names "$OUT" | sort | uniq -d)
ok=1
[[ -z $missing ]] || { echo "missing (expected, never reported):" >&2; sed 's/^/  /' <<<"$missing" >&2; ok=0; }
[[ -z $unexpected ]] || { echo "unexpected (reported, not in $EXPECTED):" >&2; sed 's/^/  /' <<<"$unexpected" >&2; ok=0; }
[[ -z $dups ]] || { echo "reported more than once:" >&2; sed 's/^/  /' <<<"$dups" >&2; ok=0; }
log "arm64-guest: total $(elapsed "$T_ALL") s"
echo "arm64-guest: $passed passed, $failed failed, $(grep -c . <<<"$missing" || true) missing, $(grep -c . <<<"$unexpected" || true) unexpected ($(exp | wc -l) expected)"
((ok && failed == 0 && passed == $(exp | wc -l)))
