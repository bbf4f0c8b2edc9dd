# Infrastructure smoke test: the guest kernel has i2c-stub, i2c-dev, gpio-sim and the
# gpiod tools work.
. /tests/lib.sh

if insmod /lib/modules/i2c-stub.ko chip_addr=0x50 2>/tmp/insmod.err; then
    pass smoke.insmod-i2c-stub
else
    fail smoke.insmod-i2c-stub "$(cat /tmp/insmod.err)"
fi
if wait_for 30 ls /dev/i2c-0; then pass smoke.dev-i2c; else fail smoke.dev-i2c "no /dev/i2c-* after insmod: $(ls /dev | tr '\n' ' ')"; fi
bus="$(i2c_bus_by_name "SMBus stub driver" || true)"
if [ -n "$bus" ]; then pass smoke.i2c-stub-adapter; else fail smoke.i2c-stub-adapter "no adapter named 'SMBus stub driver'"; fi
if [ -n "$bus" ]; then
    found="$(i2cdetect -y -q "$bus" 2>&1 | sed -n 's/^[0-7]0: //p' | tr ' ' '\n' | grep -E '^[0-9a-f]{2}$' | tr '\n' ' ')"
    expect_eq smoke.i2cdetect-stub "50 " "$found"
fi

sim=/sys/kernel/config/gpio-sim/smoke
if mkdir "$sim" && mkdir "$sim/bank0" && echo 8 > "$sim/bank0/num_lines" \
    && mkdir "$sim/bank0/line0" && echo line-a > "$sim/bank0/line0/name" \
    && echo 1 > "$sim/live"; then
    pass smoke.gpio-sim-live
else
    fail smoke.gpio-sim-live "configfs gpio-sim setup failed"
fi
chip="$(cat "$sim/bank0/chip_name" 2>/dev/null || true)"
if [ -n "$chip" ] && gpiodetect 2>&1 | grep -q "^$chip .*(8 lines)"; then
    pass smoke.gpiodetect-sim
else
    fail smoke.gpiodetect-sim "chip '$chip' not in gpiodetect: $(gpiodetect 2>&1)"
fi
if [ -n "$chip" ] && gpioinfo "$chip" 2>&1 | grep -q '"line-a"'; then
    pass smoke.gpioinfo-name
else
    fail smoke.gpioinfo-name "$(gpioinfo "$chip" 2>&1 | head -3)"
fi
