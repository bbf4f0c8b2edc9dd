#!/usr/bin/env bash
# The allowlist derivation under load: each daemon (release build, simulated devices,
# default sandbox) under `strace -f`, with 8 sockets loaded at once by the `load` frontend
# (batches, reconnects, then a reconnect storm), then SIGTERM. Prints, per daemon, every
# system call (and fcntl/prctl/ioctl command) made after the seccomp filter was installed,
# and the file opens that were refused. Not part of the test command (strace and timing
# make it a tool, not a check); tests/*/busy_guests.rs is the check.
#
#   bash tests/sandbox/syscalls-under-load.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >&2; }
cargo build --release --locked -p vhost-device-i2c -p vhost-device-gpio \
    -p vhost-user-test-frontend --bin vhost-device-i2c --bin vhost-device-gpio --bin load >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run() { # NAME KIND DAEMON-ARGS...
    local name="$1" kind="$2"
    shift 2
    local trace="$work/$name.trace"
    strace -f -qq -o "$trace" target/release/"$name" -s "$work/$name.sock" -c 8 "$@" \
        2>"$work/$name.log" &
    local pid=$!
    for _ in $(seq 100); do [ -S "$work/$name.sock7" ] && break; sleep 0.1; done
    target/release/load --kind "$kind" --socket "$work/$name.sock" --count 8 \
        --seconds "$secs" --batch 8 --reconnect-every 100 >&2
    target/release/load --kind "$kind" --socket "$work/$name.sock" --count 8 \
        --seconds 3 --batch 1 --reconnect-every 1 >&2
    # SIGTERM to the daemon, not to strace (which would detach and leave it running);
    # strace exits with the daemon's status.
    kill -TERM "$(pgrep -P "$pid")"
    wait "$pid" || { echo "$name: exit status $?" >&2; cat "$work/$name.log" >&2; return 1; }
    echo "== $name: system calls after seccomp()"
    # Everything after the last seccomp() line (the filter is installed once, before any
    # serving thread starts), names from plain and resumed lines.
    awk '/seccomp\(SECCOMP_SET_MODE_FILTER/ { after = 1; next }
         after { if (match($0, /^[0-9]+ +(<\.\.\. )?[a-z0-9_]+/)) {
                   s = substr($0, RSTART, RLENGTH); sub(/^[0-9]+ +(<\.\.\. )?/, "", s); print s } }' \
        "$trace" | sort | uniq -c | sort -rn
    echo "== $name: fcntl/prctl/ioctl commands after seccomp()"
    awk '/seccomp\(SECCOMP_SET_MODE_FILTER/ { after = 1; next }
         after && /(fcntl|prctl|ioctl)\(/ { if (match($0, /(fcntl|prctl|ioctl)\([^,]*, [A-Z_0-9]+/)) print substr($0, RSTART, RLENGTH) }' \
        "$trace" | sed 's/([0-9]*, /(/' | sort | uniq -c | sort -rn
    echo "== $name: file opens after seccomp()"
    awk '/seccomp\(SECCOMP_SET_MODE_FILTER/ { after = 1; next } after && /open(at)?2?\(/' "$trace" \
        | sed 's/^[0-9]* *//' | sort | uniq -c
}
run vhost-device-i2c i2c --simulate 24c02@0x50 --simulate ds1338@0x68
run vhost-device-gpio gpio -l s8:s8:s8:s8:s8:s8:s8:s8
