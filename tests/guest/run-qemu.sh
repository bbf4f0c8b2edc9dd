#!/usr/bin/env bash
# Boot one QEMU TCG guest with the test kernel and an initramfs, run one guest test
# script (vtest=NAME), and report its checks.
#
# usage: run-qemu.sh --initrd FILE --test NAME [--kernel-dir DIR] [--timeout SECONDS]
#                    [--i2c-sock PATH] [--gpio-sock PATH] [--append ARGS] [--log-dir DIR]
#
# --i2c-sock / --gpio-sock attach vhost-user-i2c-pci / vhost-user-gpio-pci to a daemon
# already listening on PATH (QEMU is the client). Guest RAM is a shared memfd.
# Output: the guest's "PASS: name" / "FAIL: name: reason" lines, one per check, plus
# FAIL lines for infrastructure failures, then "NAME: N passed, M failed".
# Exit status: 0 only when the guest finished its script and no check failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INITRD="" TEST="" KDIR="" TIMEOUT=120 I2C_SOCK="" GPIO_SOCK="" APPEND="" LOG_DIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --initrd) INITRD="$2"; shift 2 ;;
        --test) TEST="$2"; shift 2 ;;
        --kernel-dir) KDIR="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --i2c-sock) I2C_SOCK="$2"; shift 2 ;;
        --gpio-sock) GPIO_SOCK="$2"; shift 2 ;;
        --append) APPEND="$2"; shift 2 ;;
        --log-dir) LOG_DIR="$2"; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ -n "$INITRD" && -n "$TEST" ]] || die "usage: run-qemu.sh --initrd FILE --test NAME [...]"

passed=0 failed=0
report_fail() { echo "FAIL: $1: $2"; failed=$((failed + 1)); }
summary() { echo "$TEST: $passed passed, $failed failed"; }

# Infrastructure problems are failures with a reason, never skips.
infra_fail() { report_fail "$TEST.infra" "$1"; summary; exit 1; }
QEMU_BIN="$(qemu_binary 2>&1)" || infra_fail "$QEMU_BIN"
[[ -n "$KDIR" ]] || KDIR="$(kernel_cache_dir 2>&1)" || infra_fail "$KDIR"
[[ -f "$KDIR/bzImage" ]] || infra_fail "no guest kernel $KDIR/bzImage: run tests/guest/setup.sh"
[[ -f "$INITRD" ]] || infra_fail "no initramfs $INITRD"
for s in "$I2C_SOCK" "$GPIO_SOCK"; do
    [[ -z "$s" || -S "$s" ]] || infra_fail "vhost-user socket $s does not exist (daemon not listening)"
done

[[ -n "$LOG_DIR" ]] || LOG_DIR="$(mktemp -d /tmp/vhost-device-qemu.XXXXXX)"
mkdir -p "$LOG_DIR"
CONSOLE="$LOG_DIR/$TEST.console.log"
RESULTS="$LOG_DIR/$TEST.results.log"
: > "$CONSOLE"; : > "$RESULTS"

args=(
    -M q35 -accel tcg -cpu max -m 512M -smp 1
    -nodefaults -no-user-config -display none -monitor none -no-reboot
    -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem
    -kernel "$KDIR/bzImage" -initrd "$INITRD"
    -append "console=ttyS0 quiet panic=-1 vtest=$TEST $APPEND"
    -serial "file:$CONSOLE" -serial "file:$RESULTS"
)
if [[ -n "$I2C_SOCK" ]]; then
    args+=(-chardev "socket,id=i2c0,path=$I2C_SOCK" -device vhost-user-i2c-pci,chardev=i2c0)
fi
if [[ -n "$GPIO_SOCK" ]]; then
    args+=(-chardev "socket,id=gpio0,path=$GPIO_SOCK" -device vhost-user-gpio-pci,chardev=gpio0)
fi

t0="$(now_s)"
set +e
timeout -k 5 "$TIMEOUT" "$QEMU_BIN" "${args[@]}" </dev/null >"$LOG_DIR/$TEST.qemu.log" 2>&1
qrc=$?
set -e
log "$TEST: QEMU ran $(elapsed "$t0") s (exit $qrc); console: $CONSOLE"

complete=0
while IFS= read -r line; do
    line="${line%$'\r'}"
    case "$line" in
        "PASS: "*) echo "$line"; passed=$((passed + 1)) ;;
        "FAIL: "*) echo "$line"; failed=$((failed + 1)) ;;
        "VTEST-END $TEST rc="*) complete=1; grc="${line##*rc=}" ;;
        "VTEST-ERROR "*) report_fail "$TEST.init" "${line#VTEST-ERROR }" ;;
    esac
done < "$RESULTS"

if (( qrc == 124 || qrc == 137 )); then
    report_fail "$TEST.timeout" "guest did not finish within $TIMEOUT s"
elif (( qrc != 0 )); then
    report_fail "$TEST.qemu" "QEMU exited with $qrc: $(tail -n 3 "$LOG_DIR/$TEST.qemu.log" | tr '\n' ' ')"
fi
if (( complete == 0 )); then
    report_fail "$TEST.complete" "the guest script did not run to its end (see $CONSOLE)"
elif [[ "${grc:-}" != 0 ]] && (( failed == 0 )); then
    report_fail "$TEST.exit" "guest script exited with status $grc"
fi
if (( passed + failed == 0 )); then
    report_fail "$TEST.checks" "the guest reported no check at all"
fi
if (( failed > 0 )) || [[ -n "${VERBOSE:-}" ]]; then
    {
        echo "---- last lines of the guest console ($CONSOLE) ----"
        tail -n 40 "$CONSOLE" | tr -d '\r' | sed 's/^/  | /'
        echo "----"
    } >&2
fi
summary
(( failed == 0 ))
