#!/usr/bin/env bash
# systemd-analyze verify of contrib/systemd (installs the systemd package if missing; root).
# The units name /usr/bin/vhost-device-* (the packaged path; tests/packaging.sh verifies the
# installed units); verify needs an executable there, so the
# units are checked from a scratch copy whose ExecStart points at BIN_DIR (default: the
# release build, ${CARGO_TARGET_DIR:-target}/release; built if absent).
# Prints PASS/FAIL lines; exits non-zero on any finding.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
if ! command -v systemd-analyze >/dev/null; then
    [[ $EUID -eq 0 ]] || { echo "FAIL: systemd.verify: systemd-analyze missing and not root"; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null \
        || { echo "FAIL: systemd.verify: cannot install systemd"; exit 1; }
fi
for d in i2c gpio; do
    if [[ ! -x "$BIN_DIR/vhost-device-$d" ]]; then
        (cd "$ROOT" && cargo build --release --locked -p "vhost-device-$d" >/dev/null 2>&1) \
            || { echo "FAIL: systemd.verify: cannot build vhost-device-$d"; exit 1; }
    fi
done
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for d in i2c gpio; do
    for unit in "$ROOT/contrib/systemd/vhost-device-$d".{service,socket}; do
        sed "s|/usr/bin/vhost-device-$d|$BIN_DIR/vhost-device-$d|" "$unit" > "$scratch/$(basename "$unit")"
    done
    out="$(cd "$scratch" && systemd-analyze verify --man=no "vhost-device-$d.socket" "vhost-device-$d.service" 2>&1)" || true
    if [[ -z "$out" ]]; then
        echo "PASS: systemd.verify.$d"
    else
        printf '%s\n' "$out" | sed 's/^/  /' >&2
        echo "FAIL: systemd.verify.$d: systemd-analyze verify reported the lines above"
        failed=1
    fi
done
exit "$failed"
