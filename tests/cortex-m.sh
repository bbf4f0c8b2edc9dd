#!/usr/bin/env bash
# The cores without an OS, on a fresh Debian 12 machine as root:
#   1. the Cortex-M firmware (firmware/cortex-m) built for thumbv7m-none-eabi and run under
#      qemu-system-arm (mps2-an385, semihosting): every expected `cortex-m.<area>.<check>`
#      line must say PASS, none FAIL, and the firmware must exit 0;
#   2. its flash and RAM footprint from the ELF's sections (arm-none-eabi-size);
#   3. the unit and property tests of the no_std crates (virtio-i2c-core,
#      virtio-gpio-core, virtqueue-device) on a 32-bit target, i686-unknown-linux-gnu
#      (gcc-multilib links it), so no usize arithmetic silently assumes 64 bits.
# Installs what it lacks: qemu-system-arm (the version of an installed qemu-system-common,
# e.g. bookworm-backports' next to the guest suites' qemu-system-x86), binutils-arm-none-eabi,
# gcc-multilib, and the two rustup targets. Progress goes to stderr, results to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
log() { echo "cortex-m.sh: $*" >&2; }
die() { echo "cortex-m.sh: FAIL: $*"; exit 1; }

need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null || need+=(binutils-arm-none-eabi)
[[ -e /usr/lib/gcc/x86_64-linux-gnu/12/32/libgcc.a ]] || need+=(gcc-multilib)
if ((${#need[@]})); then
    [[ $EUID -eq 0 ]] || die "needs root to install ${need[*]}"
    # qemu-system-arm must match an installed qemu-system-common (the guest suites install
    # QEMU from bookworm-backports); otherwise Debian 12's own.
    pkgs=()
    common=$(dpkg-query -W -f='${Version}' qemu-system-common 2>/dev/null || true)
    for p in "${need[@]}"; do
        if [[ $p == qemu-system-arm && -n $common ]]; then pkgs+=("qemu-system-arm=$common"); else pkgs+=("$p"); fi
    done
    log "apt-get install ${pkgs[*]}"
    apt-get update -q >/tmp/cortex-m-apt.log 2>&1 || { tail -20 /tmp/cortex-m-apt.log >&2; die "apt-get update"; }
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>/tmp/cortex-m-apt.log 2>&1 \
        || { tail -30 /tmp/cortex-m-apt.log >&2; die "apt-get install ${pkgs[*]}"; }
fi
installed=$(rustup target list --installed)
for t in thumbv7m-none-eabi i686-unknown-linux-gnu; do
    grep -qx "$t" <<<"$installed" || { log "rustup target add $t"; rustup target add "$t" >&2; }
done
setup_end=$(date +%s)

# 1. The firmware.
expected=(
    gpio.config
    i2c.write i2c.write_read_repeated_start i2c.zero_length_quick i2c.absent_address
    i2c.fail_next_group_fails_as_unit i2c.rtc_ticks_with_platform_clock
    gpio.get_line_names gpio.set_value_before_direction gpio.set_direction
    gpio.get_direction gpio.get_value_wired_pair gpio.set_irq_type
    gpio.irq_edge_on_wired_pair gpio.irq_none_returns_invalid gpio.bad_line_and_type_err
    virtqueue.looping_chain_returned_queue_serves virtqueue.no_allocation_in_request_path
)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
log "building and running the firmware under qemu-system-arm"
(cd firmware/cortex-m && nice cargo build --release --locked >&2)
set +e
(cd firmware/cortex-m && timeout 120 cargo run --release --locked 2>/dev/null) >"$out"
status=$?
set -e
cat "$out"
failed=0
grep -q '^FAIL ' "$out" && failed=1
for c in "${expected[@]}"; do
    grep -qx "PASS cortex-m.$c" "$out" || { echo "cortex-m.sh: missing or failed: cortex-m.$c"; failed=1; }
done
ran=$(grep -cE '^(PASS|FAIL) cortex-m\.' "$out" || true)
((ran == ${#expected[@]})) || { echo "cortex-m.sh: $ran checks ran, ${#expected[@]} expected"; failed=1; }
((status == 0)) || { echo "cortex-m.sh: the firmware exited with $status"; failed=1; }
((failed == 0)) || die "firmware checks"
run_end=$(date +%s)

# 2. Footprint.
elf=firmware/cortex-m/target/thumbv7m-none-eabi/release/vhost-device-cortex-m
section() { arm-none-eabi-size -A "$elf" | awk -v s="$1" '$1 == s { print $2 }'; }
vt=$(section .vector_table); text=$(section .text); ro=$(section .rodata)
data=$(section .data); bss=$(section .bss)
heap_total=$(grep -o 'const HEAP_SIZE: usize = [0-9 *]*' firmware/cortex-m/src/heap.rs | sed 's/.*= //')
heap_total=$((heap_total))
heap_used=$(sed -n 's/^cortex-m footprint: heap \([0-9]*\) bytes.*/\1/p' "$out")
[[ -n $heap_used ]] || die "the firmware printed no heap figure"
flash=$((vt + text + ro + data))
ram=$((data + bss))
echo "cortex-m footprint: flash $flash bytes (.vector_table $vt + .text $text + .rodata $ro + .data $data)"
echo "cortex-m footprint: static RAM $ram bytes (.data $data + .bss $bss, of which heap $heap_total reserved, $heap_used used; shared queue region 16384), plus the stack"
echo "cortex-m footprint: RAM actually needed about $((ram - heap_total + heap_used)) bytes + stack"

# 3. 32-bit hosts.
log "unit and property tests on i686-unknown-linux-gnu"
nice cargo test --locked --target i686-unknown-linux-gnu \
    -p virtio-i2c-core -p virtio-gpio-core -p virtqueue-device 2>&1 | tee /tmp/cortex-m-i686.log \
    | grep -E '^test result|FAILED|panicked' || true
grep -q 'FAILED\|panicked\|error\[' /tmp/cortex-m-i686.log && die "32-bit tests"
results=$(grep -c '^test result: ok' /tmp/cortex-m-i686.log || true)
((results >= 6)) || die "32-bit tests: only $results test binaries reported ok"
end=$(date +%s)
echo "cortex-m.sh: PASS (setup $((setup_end - start)) s, firmware build+run $((run_end - setup_end)) s, 32-bit tests $((end - run_end)) s, total $((end - start)) s)"
