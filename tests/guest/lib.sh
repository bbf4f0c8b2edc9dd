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

# ---- Host-side runner helpers (run-guest-drivers.sh, run-host-devices.sh) ----------------
# The runner sets SUITE, LOG_DIR, INITRD, KDIR_ARGS; counters `passed`/`failed`.
passed=0 failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1: $2"; failed=$((failed + 1)); }
summary() { echo "$SUITE: $passed passed, $failed failed"; }
declare -A PIDS=()
stop_all_daemons() {
    local name
    for name in "${!PIDS[@]}"; do kill "${PIDS[$name]}" 2>/dev/null || true; done
}

# start_daemon NAME SOCKET_BASE CMD...: start a daemon, wait (10 s deadline) for its socket
# (BASE0, or BASE itself). Sets SOCK_<NAME>.
start_daemon() {
    local name="$1" base="$2" i s
    shift 2
    [[ -x "$1" ]] || { fail "$SUITE.host.$name-start" "no executable $1 (build: cargo build --release --workspace)"; return 1; }
    RUST_LOG="${RUST_LOG:-info}" "$@" >"$LOG_DIR/$name-daemon.log" 2>&1 &
    PIDS[$name]=$!
    for ((i = 0; i < 100; i++)); do
        for s in "${base}0" "$base"; do
            if [[ -S "$s" ]]; then
                printf -v "SOCK_$name" '%s' "$s"
                pass "$SUITE.host.$name-start"
                return 0
            fi
        done
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            fail "$SUITE.host.$name-start" "daemon exited: $(tail -n 3 "$LOG_DIR/$name-daemon.log" | tr '\n' ' ')"
            unset "PIDS[$name]"
            return 1
        fi
        sleep 0.1
    done
    fail "$SUITE.host.$name-start" "no socket ${base}0 after 10 s"
    return 1
}

# alive NAME AFTER: the daemon NAME still runs after the guest AFTER.
alive() {
    if [[ -n "${PIDS[$1]:-}" ]] && kill -0 "${PIDS[$1]}" 2>/dev/null; then
        pass "$SUITE.host.$1-alive-after-$2"
    else
        fail "$SUITE.host.$1-alive-after-$2" "daemon is gone (log: $LOG_DIR/$1-daemon.log)"
    fi
}

# run_guest ARGS...: run-qemu.sh, its PASS/FAIL lines counted here.
run_guest() {
    local out line
    out="$("$GUEST_DIR/run-qemu.sh" --initrd "$INITRD" --log-dir "$LOG_DIR" ${KDIR_ARGS[@]+"${KDIR_ARGS[@]}"} "$@")" || true
    while IFS= read -r line; do
        case "$line" in
            "PASS: "*) echo "$line"; passed=$((passed + 1)) ;;
            "FAIL: "*) echo "$line"; failed=$((failed + 1)) ;;
        esac
    done <<< "$out"
}

# sigterm_all: after all that, each daemon still runs under its sandbox (seccomp filter,
# no_new_privs, no capabilities); SIGTERM ends it within 5 s and removes its socket
# (Landlock allows that). Three checks per daemon.
sigterm_all() {
    local name pid i st sockvar sock
    for name in $(printf '%s\n' "${!PIDS[@]}" | sort); do
        pid="${PIDS[$name]}"
        st="$(awk '$1 ~ /^(Seccomp|NoNewPrivs|CapEff):$/ { printf "%s%s ", $1, $2 }' "/proc/$pid/status" 2>/dev/null)"
        if [[ "$st" == "CapEff:0000000000000000 NoNewPrivs:1 Seccomp:2 " ]]; then
            pass "$SUITE.host.$name-confined"
        else
            fail "$SUITE.host.$name-confined" "/proc/$pid/status: $st"
        fi
        sockvar="SOCK_$name"
        sock="${!sockvar:-}"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            fail "$SUITE.host.$name-sigterm" "still running 5 s after SIGTERM"
            kill -KILL "$pid" 2>/dev/null || true
        else
            pass "$SUITE.host.$name-sigterm"
        fi
        if [[ -z "$sock" ]]; then
            fail "$SUITE.host.$name-socket-removed" "no socket was recorded for $name"
        elif [[ -e "$sock" ]]; then
            fail "$SUITE.host.$name-socket-removed" "$sock still exists after SIGTERM"
        else
            pass "$SUITE.host.$name-socket-removed"
        fi
        wait "$pid" 2>/dev/null || true
        unset "PIDS[$name]"
    done
}

# ---- apt: bookworm-backports (setup.sh, tests/bench/peer.sh) ------------------------
backports_uri() {
    # deb822 sources: the URIs of the stanza whose Suites list the plain 'bookworm'.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri="$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                uris=""; suites=""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)   { uris = $i;   sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, " ", suites) }
                }
                if (uris != "" && suites ~ /[ \t]bookworm[ \t]/) { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")"
        [[ -n "$uri" ]] && { printf '%s' "$uri"; return 0; }
    done
    # One-line format.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i+1) == "bookworm") { print $i; exit } ; break } }' "$f")"
        [[ -n "$uri" ]] && { printf '%s' "$uri"; return 0; }
    done
    return 1
}

# Add a bookworm-backports apt source derived from the machine's own Debian source (no host
# name written here), unless one is configured. The caller runs apt-get update.
ensure_bookworm_backports() {
    local uri keyring
    local BPO_FILE=/etc/apt/sources.list.d/vhost-device-bookworm-backports.sources
    if grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
        log "a bookworm-backports source is already configured"
    else
        uri="$(backports_uri)" || die "no Debian 'bookworm' apt source found in /etc/apt to derive bookworm-backports from"
        log "adding bookworm-backports from $uri"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        {
            echo "Types: deb"
            echo "URIs: $uri"
            echo "Suites: bookworm-backports"
            echo "Components: main"
            [[ -f "$keyring" ]] && echo "Signed-By: $keyring"
        } > "$BPO_FILE"
    fi
}
