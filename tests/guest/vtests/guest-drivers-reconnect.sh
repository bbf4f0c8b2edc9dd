# guest-drivers, second connection: both daemons accept a new VM after the previous one exited.
. /tests/lib.sh
if wait_for 50 i2c_bus_by_name i2c_virtio; then
    bus="$(i2c_bus_by_name i2c_virtio)"
    expect_eq guest-drivers.reconnect.i2c-detect "50 68" "$(i2c_scan "$bus" -r)"
else
    fail guest-drivers.reconnect.i2c-detect "no i2c_virtio adapter on the second connection"
fi
if wait_for 50 gpio_chip_by_label 'virtio[0-9]*'; then
    chip="$(gpio_chip_by_label 'virtio[0-9]*')"
    n="$(gpiodetect | grep "^$chip " | sed -n 's/.*(\([0-9]*\) lines).*/\1/p')"
    expect_eq guest-drivers.reconnect.gpio-detect 8 "$n"
else
    fail guest-drivers.reconnect.gpio-detect "no virtio gpiochip on the second connection"
fi
exit 0
