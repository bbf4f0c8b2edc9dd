#!/bin/sh
# mmdebstrap --customize-hook of image.sh: runs on the host with $1 = the new root, after
# the packages are installed. Builds gpio-sim.ko for the image's Debian kernel, configures
# the boot (fstab, no getty or timers) and installs the launcher unit that runs the test
# script from the payload disk. Every command must succeed (set -e): a half-made image is
# never cached.
set -eu
R="$1"
KVER="$(ls "$R/lib/modules")"
[ "$(echo "$KVER" | wc -w)" -eq 1 ] || { echo "customize: expected one kernel, got: $KVER" >&2; exit 1; }

# ---- gpio-sim.ko: Debian's kernels do not build it (CONFIG_GPIO_SIM unset, 6.1 and
# backports' 6.12 alike). Built out of tree from the same Debian source version as the
# kernel (linux-source-6.1 pinned to the image kernel's version), with the kernel's own
# headers. It needs the irq_sim helpers (CONFIG_IRQ_SIM, a hidden option only gpio-sim and
# gpio-mockup select): compiled into the module when the kernel lacks them. Unsigned: the
# kernel taints itself but loads it (no MODULE_SIG_FORCE, no lockdown without Secure Boot).
chroot "$R" sh -eu -c "
    mkdir -p /tmp/gpio-sim && cd /tmp/gpio-sim
    # gpio-sim.c includes drivers/gpio/gpiolib.h (gpiolib's internal structures).
    tar -xJf /usr/src/linux-source-6.1.tar.xz --strip-components=3 --wildcards \
        'linux-source-6.1/drivers/gpio/gpio-sim.c' 'linux-source-6.1/drivers/gpio/*.h' \
        linux-source-6.1/kernel/irq/irq_sim.c
    mv gpio-sim.c gpio-sim-main.c
    # 6.1's irq_sim.c calls handle_simple_irq(irq_to_desc(irq)); irq_to_desc is not
    # exported to modules. generic_handle_irq(irq) is, and runs the same handler (the
    # sim domain maps every irq to handle_simple_irq), as later kernels' irq_sim does.
    sed -i 's/handle_simple_irq(irq_to_desc(\([a-z_]*\)))/generic_handle_irq(\1)/' irq_sim.c
    if grep -n irq_to_desc irq_sim.c gpio-sim-main.c; then echo unexported irq_to_desc left >&2; exit 1; fi
    if grep -q '^CONFIG_IRQ_SIM=y' /boot/config-$KVER; then extra=''; else extra='irq_sim.o'; fi
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o %s\n' \"\$extra\" > Kbuild
    make -s -C /lib/modules/$KVER/build M=/tmp/gpio-sim modules
    mkdir -p /lib/modules/$KVER/updates
    cp gpio-sim.ko /lib/modules/$KVER/updates/
    depmod $KVER
    cd / && rm -rf /tmp/gpio-sim
"
# The build tools go again (the test installs its packages offline, nothing else needs them).
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove \
    linux-source-6.1 "linux-headers-$KVER" gcc make xz-utils >/dev/null
chroot "$R" modinfo -k "$KVER" -F filename gpio-sim # -k: not the host's running kernel

# ---- boot ------------------------------------------------------------------------------
echo backend-vm > "$R/etc/hostname"
printf '/dev/vda / ext4 rw,relatime 0 1\n' > "$R/etc/fstab"
echo 'root:backend-vm' | chroot "$R" chpasswd
# No login prompts, no timers, no waiting for a network that is not there.
for u in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer systemd-networkd-wait-online.service; do
    chroot "$R" systemctl mask "$u" >/dev/null 2>&1 || true
done
chroot "$R" systemctl mask getty.target >/dev/null

# ---- the launcher: runs /payload/vm-test.sh from the second disk (vdb), then powers off.
# The test script is not in the image: changing it (or the packages) needs no rebuild.
cat > "$R/etc/systemd/system/backend-vm-test.service" <<'UNIT'
[Unit]
Description=vhost-device backend-VM test (script from the payload disk)
After=local-fs.target

[Service]
Type=simple
ExecStartPre=/bin/mkdir -p /payload
ExecStartPre=/bin/mount -o ro /dev/vdb /payload
ExecStart=/bin/bash /payload/vm-test.sh
StandardOutput=journal+console
StandardError=journal+console
ExecStopPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
UNIT
chroot "$R" systemctl enable backend-vm-test.service >/dev/null
chroot "$R" apt-get clean
rm -rf "$R/var/lib/apt/lists/"* "$R/var/log/"*.log
