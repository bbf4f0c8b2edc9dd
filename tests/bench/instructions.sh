#!/usr/bin/env bash
# Instructions per request of a daemon, counted by callgrind (no hardware counters needed):
#
#   tests/bench/instructions.sh --kind gpio|i2c --daemon 'CMD with {socket}' [--requests N] [--top K]
#
# The daemon runs under `valgrind --tool=callgrind` twice; `bench drive` (build it first:
# cargo build --release -p vhost-user-test-frontend --bin bench, or set BENCH) sends N and
# then 6N checked requests (gpio: GET_VALUE, 64 per kick; i2c: write+read groups, 32 per
# kick, N counting chains: a group is two), and each counter of the second run minus the
# first, divided by 5N, is the cost of one request: start-up, connection and teardown
# cancel. Our daemons need `--seccomp none` on the command line (valgrind's own system
# calls are outside their allowlist). stdout: the per-request totals and the top K
# functions (default 15), inclusive and exclusive.
set -euo pipefail

KIND="" CMD="" N=50000 TOP=15
while (($#)); do
    case "$1" in
        --kind) KIND="$2"; shift 2 ;;
        --daemon) CMD="$2"; shift 2 ;;
        --requests) N="$2"; shift 2 ;;
        --top) TOP="$2"; shift 2 ;;
        *) echo "usage: $0 --kind gpio|i2c --daemon 'CMD with {socket}' [--requests N] [--top K]" >&2; exit 2 ;;
    esac
done
[[ -n "$KIND" && "$CMD" == *"{socket}"* ]] || { echo "$0: --kind and a --daemon with {socket} are required" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${BENCH:-$ROOT/target/release/bench}"
[[ -x "$BENCH" ]] || { echo "$0: no $BENCH (cargo build --release -p vhost-user-test-frontend --bin bench)" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null \
    || { echo "$0: valgrind (with callgrind_annotate) is required" >&2; exit 1; }

WORK="$(mktemp -d /tmp/vhost-device-instructions-XXXXXX)"
DAEMON_PID=""
cleanup() { [[ -n "$DAEMON_PID" ]] && kill "$DAEMON_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# run NAME REQUESTS: the daemon under callgrind, REQUESTS sent, callgrind's output in $WORK/NAME.out.
run() {
    local name="$1" requests="$2" dir="$WORK/$1" sock i
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # the command line is split at whitespace, as bench does.
    valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.out" ${CMD//\{socket\}/$dir/dev.sock} \
        >"$WORK/$name.log" 2>&1 &
    DAEMON_PID=$!
    sock=""
    for ((i = 0; i < 600; i++)); do
        for s in "$dir/dev.sock" "$dir/dev.sock0"; do [[ -S "$s" ]] && sock="$s"; done
        [[ -n "$sock" ]] && break
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "$0: the daemon exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$sock" ]] || { echo "$0: no socket within 60 s" >&2; exit 1; }
    "$BENCH" drive --kind "$KIND" --socket "$sock" --requests "$requests" >&2
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=""
    [[ -s "$WORK/$name.out" ]] || { cat "$WORK/$name.log" >&2; echo "$0: callgrind wrote nothing" >&2; exit 1; }
}

total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# per_function OUT1 OUT2 INCLUSIVE: "instructions-per-request<TAB>function", largest first.
per_function() {
    local a b
    a="$(callgrind_annotate --inclusive="$3" --threshold=100 "$1")"
    b="$(callgrind_annotate --inclusive="$3" --threshold=100 "$2")"
    awk -v n="$DELTA" '
        function parse(line,   num, fn) {
            if (line !~ /^ *[0-9][0-9,]* /) return 0
            num = line; sub(/^ */, "", num); sub(/ .*/, "", num); gsub(/,/, "", num)
            fn = line; sub(/^ *[0-9,]+ +(\([ 0-9.]+%\) +)?/, "", fn)
            if (fn ~ /PROGRAM TOTALS/) return 0
            sub(/ \[[^]]*\]$/, "", fn); sub(/^\?\?\?:/, "", fn)
            VAL = num; FN = fn; return 1
        }
        FNR == 1 { file++ }
        { if (parse($0)) { if (file == 1) first[FN] = VAL; else second[FN] = VAL } }
        END { for (f in second) { d = (second[f] - first[f]) / n; if (d >= 1) printf "%.0f\t%s\n", d, f } }
    ' <(printf '%s\n' "$a") <(printf '%s\n' "$b") | sort -t$'\t' -k1,1nr
}

N2=$((6 * N))
DELTA=$((N2 - N))
echo "callgrind: $CMD, $N then $N2 requests" >&2
run small "$N"
run large "$N2"
t1="$(total "$WORK/small.out")" t2="$(total "$WORK/large.out")"
echo "daemon: $CMD"
echo "requests: $KIND $( [[ $KIND == gpio ]] && echo 'GET_VALUE, 64 per kick' || echo 'write+read groups (2 chains each), 32 groups per kick'), $N and $N2 requests"
awk -v a="$t1" -v b="$t2" -v n="$DELTA" 'BEGIN { printf "instructions per request: %.0f (Ir %s and %s)\n", (b - a) / n, a, b }'
echo
echo "top $TOP functions, instructions per request, inclusive:"
per_function "$WORK/small.out" "$WORK/large.out" yes | head -n "$TOP"
echo
echo "top $TOP functions, instructions per request, exclusive (self):"
per_function "$WORK/small.out" "$WORK/large.out" no | head -n "$TOP"
