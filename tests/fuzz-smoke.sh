#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ briefly (FUZZ_SECONDS, default 30 s each) from its
# committed seed corpus, on a fresh Debian 12 machine as root: installs a C++ compiler
# (libFuzzer), the nightly toolchain and cargo-fuzz when absent. Fails, naming the target and
# the input, on the first crash, check failure or timeout. Long runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}

if ! command -v c++ >/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends g++
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
# Without a sanitizer: the code under test is safe Rust (vm-memory's guest memory access is
# the only unsafe code on the path), and the runs are several times faster.
cargo +nightly fuzz build -s none
failed=()
# Counted against fuzz/Cargo.toml's [[bin]] targets: an empty or short list fails instead of
# passing with nothing fuzzed.
expected=$(grep -c '^\[\[bin\]\]' Cargo.toml || true)
((expected > 0)) || { echo "fuzz smoke: fuzz/Cargo.toml declares no target"; exit 1; }
ran=0
for target in $(cargo +nightly fuzz list); do
    ran=$((ran + 1))
    work=$(mktemp -d)
    log="$work/log"
    echo "== fuzz $target (${seconds} s)"
    if cargo +nightly fuzz run -s none "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -max_len=1024 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units' "$log" || true
        # The guest-script targets' count of what their checks skipped (self-modifying).
        grep -E 'events unchecked$' "$log" | tail -n 1 || true
        # A run that executed no input fuzzed nothing, whatever its exit status.
        units=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
        if ! [[ "${units:-0}" =~ ^[0-9]+$ ]] || ((${units:-0} == 0)); then
            echo "!! $target executed no input (stat::number_of_executed_units: ${units:-absent})"
            failed+=("$target")
        fi
    else
        tail -n 40 "$log"
        echo "!! $target failed; the input is under fuzz/artifacts/$target/"
        failed+=("$target")
    fi
    rm -rf "$work"
done
if ((ran != expected)); then
    echo "fuzz smoke: $ran targets ran, fuzz/Cargo.toml declares $expected"
    exit 1
fi
if ((${#failed[@]})); then
    echo "fuzz smoke failed: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke: every target ran ${seconds} s without a finding"
