#!/usr/bin/env bash
# `cargo test --workspace` as an unprivileged user (nobody, 65534), run by root:
# every test passes, and exactly the root-only tests (EXPECTED_SKIPS) are skipped, each
# with one "SKIP <test>: needs root (...)" line on stderr.
#
# It tests the committed HEAD (a `git clone`, like .ci/run), not uncommitted changes. The
# user gets its own 0700 directory with a clone, a target directory, a HOME, a CARGO_HOME
# holding a copy of root's crate registry (--offline: no network) and a copy of the pinned
# toolchain's bin/ and lib/ (hard links where possible): root's ~/.rustup and ~/.cargo sit
# under /root (0700), which that user cannot reach. No user is created.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

UID_GID=65534
# The tests that need root, by name (as many lines as test binaries holding them).
EXPECTED_SKIPS=(
    confined_while_serving_as_an_unprivileged_user # vhost-device-gpio --test sandbox
    confined_while_serving_as_an_unprivileged_user # vhost-device-i2c --test sandbox
    log_mode_calls_are_audited_in_dmesg # vhost-device-gpio --test sandbox
    log_mode_calls_are_audited_in_dmesg # vhost-device-i2c --test sandbox
    deb_prints_only_package_paths_while_installing_debian_packages # xtask --test deb_stdout
)
T_ALL=$(date +%s)

log() { printf 'unprivileged: %s\n' "$*"; }
die() { printf 'unprivileged: FAIL: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (it runs the tests as user $UID_GID)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The pinned toolchain (rust-toolchain.toml through rustup) and every crate of the lock file.
sysroot=$(rustc --print sysroot)
cargo fetch --locked >/dev/null
cargo_home=${CARGO_HOME:-$HOME/.cargo}
[[ -d $cargo_home/registry ]] || die "no crate registry in $cargo_home after cargo fetch"

mkdir "$WORK/toolchain" "$WORK/cargo-home" "$WORK/home"
for d in bin lib; do
    cp -al "$sysroot/$d" "$WORK/toolchain/" 2>/dev/null || cp -a "$sysroot/$d" "$WORK/toolchain/"
done
cp -a "$cargo_home/registry" "$WORK/cargo-home/"
git clone -q "$PWD" "$WORK/repo"
# The user owns all but the toolchain (root's, read-only to it).
chown -R "$UID_GID:$UID_GID" "$WORK/cargo-home" "$WORK/home" "$WORK/repo"
chown "$UID_GID:$UID_GID" "$WORK"
want=$(rustc --version)
got=$("$WORK/toolchain/bin/rustc" --version)
[[ $got == "$want" ]] || die "the copied toolchain is $got, the pinned one $want"
log "$want, as uid $UID_GID in $WORK (mode $(stat -c %a "$WORK")): $(($(date +%s) - T_ALL)) s to set up"

status=0
setpriv --reuid="$UID_GID" --regid="$UID_GID" --clear-groups \
    env -i PATH="$WORK/toolchain/bin:/usr/bin:/bin" HOME="$WORK/home" \
    CARGO_HOME="$WORK/cargo-home" CARGO_TARGET_DIR="$WORK/target" CARGO_TERM_COLOR=never \
    RUSTC="$WORK/toolchain/bin/rustc" RUSTDOC="$WORK/toolchain/bin/rustdoc" \
    bash -c 'cd "$1" && [[ $(id -u) != 0 ]] && cargo test --workspace --locked --offline' _ "$WORK/repo" \
    >"$WORK/test.log" 2>&1 || status=$?
((status == 0)) || { tail -150 "$WORK/test.log"; die "cargo test --workspace as uid $UID_GID failed ($status)"; }

# A SKIP line may follow libtest's "test NAME ... " on the same line of the merged log.
grep -o 'SKIP .*' "$WORK/test.log" || true
diff -u <(printf '%s\n' "${EXPECTED_SKIPS[@]}" | sort) \
    <(grep -o 'SKIP [^ :]*: needs root (.*)' "$WORK/test.log" | sed 's/^SKIP \([^:]*\):.*/\1/' | sort) \
    || die "the skipped tests (+) are not the root-only tests (-)"
[[ $(grep -c 'SKIP ' "$WORK/test.log") -eq ${#EXPECTED_SKIPS[@]} ]] \
    || die "a SKIP line is not 'SKIP <test>: needs root (<why>)'"
passed=$(awk '/^test result: ok\./ {n += $4} END {print n + 0}' "$WORK/test.log")
((passed > 0)) || die "no test passed"
log "cargo test --workspace as uid $UID_GID: $passed passed, ${#EXPECTED_SKIPS[@]} root-only skipped, in $(($(date +%s) - T_ALL)) s"
