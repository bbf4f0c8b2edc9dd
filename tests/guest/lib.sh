# shellcheck shell=bash
# Shared helpers for the guest test scripts. Source it; it defines functions and
# variables only.

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$GUEST_DIR/../.." && pwd)"
GUEST_CACHE_ROOT="${VHOST_DEVICE_GUEST_CACHE:-/var/cache/vhost-device-guest}"
KERNEL_SOURCE_PKG="linux-source-6.12"
KERNEL_FRAGMENT="$GUEST_DIR/kernel.fragment"
# Bump when the build recipe in setup.sh changes in a way that changes the output.
KERNEL_RECIPE_VERSION=1

log() { printf '[guest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[guest] ERROR: %s\n' "$*" >&2; exit 1; }

# Monotonic seconds with one decimal, for step timings.
now_s() { awk '{print $1}' /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN{printf "%.1f", b-a}'; }

# Installed version of the kernel source package, or fail.
kernel_source_version() {
    local v
    v="$(dpkg-query -W -f='${Version}' "$KERNEL_SOURCE_PKG" 2>/dev/null || true)"
    [[ -n "$v" ]] || die "$KERNEL_SOURCE_PKG is not installed: run tests/guest/setup.sh"
    printf '%s' "$v"
}

# Cache key: hash of the config fragment, the source version and the recipe version.
kernel_cache_key() {
    {
        grep -v '^[[:space:]]*#' "$KERNEL_FRAGMENT" | grep -v '^[[:space:]]*$'
        printf 'source=%s %s\nrecipe=%s\n' "$KERNEL_SOURCE_PKG" "$(kernel_source_version)" "$KERNEL_RECIPE_VERSION"
    } | sha256sum | cut -c1-16
}

kernel_cache_dir() { printf '%s/%s' "$GUEST_CACHE_ROOT" "$(kernel_cache_key)"; }

# QEMU binary, checked to be version >= 9 (vhost-user feature pass-through).
qemu_binary() {
    local q="${QEMU:-qemu-system-x86_64}" ver major
    command -v "$q" >/dev/null 2>&1 || die "QEMU ($q) not found: run tests/guest/setup.sh"
    ver="$("$q" --version | sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p')"
    major="${ver%%.*}"
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot read the version of $q"
    (( major >= 9 )) || die "$q is version $ver; QEMU >= 9 is required (bookworm-backports)"
    printf '%s' "$q"
}
