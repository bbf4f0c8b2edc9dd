#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   1. cargo test --workspace: unit tests and integration tests that start the real daemons
#      and drive them through the test frontend (no system packages needed);
#   2. the guest suites (tests/guest/run-all.sh): real Linux drivers against our daemons,
#      and our daemons against real kernel devices, in QEMU guests. That step installs
#      what it needs (QEMU >= 9, busybox, gpiod, linux-source-6.12) and builds/caches a
#      guest kernel outside the repository; and the backend-vm suite: the amd64 Debian
#      packages (cargo xtask deb --arch amd64) under systemd in a Debian 12 VM, whose image
#      (mmdebstrap, Debian 12's kernel) is built once and cached there too;
#   3. the cores without an OS (tests/cortex-m.sh): the Cortex-M firmware under
#      qemu-system-arm with its footprint, and the no_std crates' tests on a 32-bit target.
#      Run after the guest suites, so its qemu-system-arm matches their QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
echo "== cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee /tmp/vhost-device-cargo-test.log
cargo_end=$(date +%s)
echo "== cargo test took $((cargo_end - start)) s"

echo "== guest suites"
bash tests/guest/run-all.sh

echo "== the cores without an OS (Cortex-M firmware, 32-bit tests)"
bash tests/cortex-m.sh
