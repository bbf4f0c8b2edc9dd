#!/usr/bin/env bash
# Build the peer daemon the benchmark compares against: rust-vmm's vhost-device-gpio with
# its `mock_gpio` feature (a simulated chip, like our `-l s8`). Optional, not part of CI.
#
#   tests/bench/peer.sh [CHECKOUT]      (run as root: it installs build dependencies)
#
# CHECKOUT (or $VHOST_DEVICE_PEER_SRC) is a rust-vmm/vhost-device git checkout, e.g. from
#   git clone https://github.com/rust-vmm/vhost-device
# The crates.io release 0.1.0 predates `mock_gpio`, hence a checkout. Its HEAD is exported
# (uncommitted changes are ignored), the workspace is trimmed to the gpio and i2c crates
# (other members pull git dependencies) and built in
# ${VHOST_DEVICE_PEER_DIR:-/var/cache/vhost-device-peer}/<commit>/. libgpiod-sys needs
# libgpiod v2 headers (bookworm-backports: libgpiod-dev 2.1, unpacked privately, see below)
# and libclang for bindgen.
# stdout: the daemon's path, and nothing else; the commit is in COMMIT beside the build.
# The peer's i2c daemon is not built: it needs a real /dev/i2c-N, so the I2C benchmark
# measures ours only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../guest/lib.sh"

SRC="${1:-${VHOST_DEVICE_PEER_SRC:-}}"
[[ -n "$SRC" ]] || die "usage: $0 CHECKOUT (a rust-vmm/vhost-device git checkout; or set VHOST_DEVICE_PEER_SRC)"
commit="$(git -C "$SRC" rev-parse HEAD)" || die "$SRC is not a git checkout"
OUT="${VHOST_DEVICE_PEER_DIR:-/var/cache/vhost-device-peer}/$commit"
BIN="$OUT/target/release/vhost-device-gpio"

# ---- build dependencies ------------------------------------------------------------------
# libgpiod v2 is unpacked into a private prefix, never installed: bookworm-backports'
# libgpiod3 breaks libgpiod2, so installing it replaces the gpiod 1.6 tools the guest suites
# run (their v2 replacements take other arguments). The peer finds the library by rpath.
LIBGPIOD="${VHOST_DEVICE_PEER_DIR:-/var/cache/vhost-device-peer}/libgpiod-2"
if [[ ! -f "$LIBGPIOD/.unpacked" ]]; then
    [[ $EUID -eq 0 ]] || die "libgpiod v2 is not unpacked in $LIBGPIOD yet, and fetching it needs root (apt sources)"
    export DEBIAN_FRONTEND=noninteractive
    ensure_bookworm_backports
    log "apt-get update"
    apt-get update -q >/tmp/vhost-device-peer-apt.log 2>&1 || { cat /tmp/vhost-device-peer-apt.log >&2; die "apt-get update failed"; }
    debs="$(mktemp -d)"
    log "downloading libgpiod-dev libgpiod3 (bookworm-backports) into $LIBGPIOD (not installed)"
    (cd "$debs" && apt-get download -q libgpiod-dev/bookworm-backports libgpiod3/bookworm-backports) \
        >>/tmp/vhost-device-peer-apt.log 2>&1 || { tail -40 /tmp/vhost-device-peer-apt.log >&2; die "downloading libgpiod v2 failed"; }
    rm -rf "$LIBGPIOD" && mkdir -p "$LIBGPIOD"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$LIBGPIOD"; done
    rm -rf "$debs"
    touch "$LIBGPIOD/.unpacked"
fi
if ! compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null || ! command -v pkg-config >/dev/null; then
    [[ $EUID -eq 0 ]] || die "libclang or pkg-config missing, and installing them needs root"
    export DEBIAN_FRONTEND=noninteractive
    log "installing clang libclang-dev pkg-config"
    apt-get install -y -q --no-install-recommends clang libclang-dev pkg-config \
        >>/tmp/vhost-device-peer-apt.log 2>&1 || { tail -40 /tmp/vhost-device-peer-apt.log >&2; die "installing clang failed"; }
fi
pc="$(find "$LIBGPIOD" -name libgpiod.pc -print -quit)"
[[ -n "$pc" ]] || die "no libgpiod.pc in $LIBGPIOD"
libdir="$LIBGPIOD$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --variable=libdir libgpiod)"
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$LIBGPIOD"
export RUSTFLAGS="-C link-arg=-Wl,-rpath,$libdir"
pkg-config --atleast-version=2 libgpiod || die "libgpiod >= 2 not found by pkg-config in $LIBGPIOD"

# ---- source ------------------------------------------------------------------------------
if [[ ! -f "$OUT/Cargo.toml" ]]; then
    log "exporting $commit from $SRC to $OUT"
    rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
    git -C "$SRC" archive HEAD | tar -x -C "$OUT.tmp"
    # Only the two crates we replace: the other members need dependencies from git hosts.
    sed -i -z 's/members = \[[^]]*\]/members = ["vhost-device-gpio", "vhost-device-i2c"]/' "$OUT.tmp/Cargo.toml"
    grep -q 'members = \["vhost-device-gpio", "vhost-device-i2c"\]' "$OUT.tmp/Cargo.toml" \
        || die "could not trim the workspace members in $OUT.tmp/Cargo.toml"
    git -C "$SRC" log -1 --format='%H %cs %s' > "$OUT.tmp/COMMIT"
    mv "$OUT.tmp" "$OUT"
fi

# ---- build -------------------------------------------------------------------------------
log "cargo build --release -p vhost-device-gpio --features mock_gpio in $OUT"
(cd "$OUT" && cargo build --release -p vhost-device-gpio --features mock_gpio) >&2
[[ -x "$BIN" ]] || die "no $BIN after the build"
log "peer: $(cat "$OUT/COMMIT")"
echo "$BIN"
