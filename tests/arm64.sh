#!/usr/bin/env bash
# arm64, on an x86-64 Debian 12 machine as root (it installs what it needs):
#   1. cross-builds both daemons for aarch64-unknown-linux-gnu with Debian's
#      gcc-aarch64-linux-gnu as the linker (.cargo/config.toml; host builds do not use it);
#   2. runs the unit tests of the core crates, the shared crate and both daemons under
#      qemu-aarch64 (qemu-user-static, the target's cargo `runner`);
#   3. runs each arm64 daemon under qemu-aarch64 with a simulated device and drives it from
#      the host with the test frontend over its socket (memfd guest memory and eventfds
#      cross the emulator boundary): the smoke tests, which assert the same answers as on
#      amd64 (EEPROM write and read back, an absent address, GPIO values through a wired
#      pair, an edge interrupt). Without the seccomp filter, which qemu-user cannot apply.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive

TARGET=aarch64-unknown-linux-gnu
# The same runner as .cargo/config.toml's, for the daemons the host-side tests start.
RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
# qemu-user does not implement seccomp(2) for its guest (a filter would apply to the
# emulator's own host system calls), so the daemons run without their seccomp filter here;
# the rest of the sandbox stays on. The arm64 allowlist needs real arm64 (or a system VM).
EXTRA_ARGS="--seccomp none"
T_ALL=$(date +%s)
T_STEP=$T_ALL
WORK=$(mktemp -d /tmp/vhost-device-arm64.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

log() { printf 'arm64: %s\n' "$*"; }
die() { printf 'arm64: FAIL: %s\n' "$*" >&2; exit 1; }
step_done() {
    local now
    now=$(date +%s)
    log "step $1: $((now - T_STEP)) s"
    T_STEP=$now
}
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

[[ $EUID -eq 0 ]] || die "run as root (it installs packages with apt-get)"

# ---- tools ---------------------------------------------------------------------------------
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binutils; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1 \
        || { tail -40 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
fi
if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ]]; then
    log "rustup target add $TARGET"
    rustup target add "$TARGET"
fi
log "$(qemu-aarch64-static --version | head -1)"
step_done tools

# ---- 1. cross-build ------------------------------------------------------------------------
cargo build --release --locked --target "$TARGET" -p vhost-device-i2c -p vhost-device-gpio
BIN_DIR=${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/release
for p in vhost-device-i2c vhost-device-gpio; do
    readelf -h "$BIN_DIR/$p" | grep -q 'Machine:.*AArch64' || die "$BIN_DIR/$p is not an AArch64 binary"
done
step_done cross-build

# ---- 2. unit tests under qemu-aarch64 --------------------------------------------------------
# --lib --bins: the unit tests. The integration tests start the daemon binary from the test
# process, which the emulator cannot do for a foreign binary; step 3 covers that path from
# the host instead.
cargo test --locked --target "$TARGET" -p virtio-i2c-core -p virtio-gpio-core \
    -p vhost-device-common -p vhost-device-i2c -p vhost-device-gpio --lib --bins \
    2>&1 | tee "$WORK/unit.log" || die "unit tests under qemu-aarch64 failed"
grep -q "Running unittests.*$TARGET" "$WORK/unit.log" || die "no $TARGET unit test binary ran"
passed=$(awk '/^test result:/ {n += $4} END {print n + 0}' "$WORK/unit.log")
ignored=$(awk '/^test result:/ {n += $8} END {print n + 0}' "$WORK/unit.log")
suites=$(grep -c '^test result:' "$WORK/unit.log" || true)
# Counted against the tests the arm64 binaries contain (listed by the same binaries under
# the emulator), not just "more than none": a binary or a test that silently did not run
# shows as a shortfall.
cargo test --locked --target "$TARGET" -p virtio-i2c-core -p virtio-gpio-core \
    -p vhost-device-common -p vhost-device-i2c -p vhost-device-gpio --lib --bins \
    -- --list >"$WORK/unit-list.log" 2>&1 || die "listing the unit tests under qemu-aarch64 failed"
expected=$(grep -c ': test$' "$WORK/unit-list.log" || true)
((expected > 0)) || die "the arm64 unit test binaries list no test"
((passed + ignored == expected)) \
    || die "unit tests under qemu-aarch64: $passed passed + $ignored ignored, but the binaries hold $expected"
log "unit tests under qemu-aarch64: $passed passed in $suites test binaries"
step_done unit-tests

# ---- 3. the arm64 daemons under qemu-aarch64, driven from the host ----------------------------
for p in vhost-device-i2c vhost-device-gpio; do
    var="$(echo "${p#vhost-device-}" | tr a-z A-Z)"
    log "smoke test of $BIN_DIR/$p under qemu-aarch64"
    env "VHOST_DEVICE_${var}_BIN=$BIN_DIR/$p" VHOST_DEVICE_RUNNER="$RUNNER" VHOST_DEVICE_EXTRA_ARGS="$EXTRA_ARGS" \
        cargo test --locked -q -p "$p" --test smoke -- --nocapture 2>&1 | tee "$WORK/smoke-$p.log" \
        || die "smoke test of the arm64 $p"
    grep -qF "testing $BIN_DIR/$p (from VHOST_DEVICE_${var}_BIN) run by \`$RUNNER\` with \`$EXTRA_ARGS\`" "$WORK/smoke-$p.log" \
        || die "the smoke test of $p did not run the arm64 binary under qemu-aarch64"
    grep -q '^test result: ok. 2 passed' "$WORK/smoke-$p.log" || die "smoke test of the arm64 $p"
done
step_done smoke

log "all checks passed in $(($(date +%s) - T_ALL)) s"
