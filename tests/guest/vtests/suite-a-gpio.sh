# Suite A, GPIO: the guest's virtio-gpio driver talks to vhost-device-gpio on the host,
# started with -l s8 (8 simulated lines wired in pairs 0-1, 2-3, 4-5, 6-7).
. /tests/lib.sh

if wait_for 50 gpio_chip_by_label 'virtio[0-9]*' && chip="$(gpio_chip_by_label 'virtio[0-9]*')" && [ -n "$chip" ]; then
    pass gpio.detect
else
    fail gpio.detect "no virtio gpiochip in gpiodetect: $(gpiodetect 2>&1 | tr '\n' ';')"
    exit 1
fi
n="$(gpiodetect | grep "^$chip " | sed -n 's/.*(\([0-9]*\) lines).*/\1/p')"
expect_eq gpio.num-lines 8 "$n"

names="$(gpioinfo "$chip" 2>&1 | sed -n 's/^[[:space:]]*line[[:space:]]*[0-9]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
count="$(echo "$names" | grep -c . || true)"
uniq_count="$(echo "$names" | sort -u | grep -c . || true)"
if [ "$count" = 8 ] && [ "$uniq_count" = 8 ]; then
    pass gpio.line-names
else
    fail gpio.line-names "expected 8 unique names, got: $(gpioinfo "$chip" 2>&1 | tr '\n' ';')"
fi

# drive_read NAME OUT IN VALUE: drive line OUT to VALUE, expect line IN to read VALUE.
drive_read() {
    gpioset --mode=signal "$chip" "$2=$4" 2>/tmp/gpioset.err &
    sp=$!
    got=""; i=0
    while [ $i -lt 30 ]; do
        got="$(gpioget "$chip" "$3" 2>&1)"
        [ "$got" = "$4" ] && break
        sleep 0.1; i=$((i + 1))
    done
    kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    if [ "$got" = "$4" ]; then pass "$1"; else fail "$1" "line $3 read '$got' while line $2 drove $4 ($(cat /tmp/gpioset.err))"; fi
}
for pair in "0 1" "2 3" "4 5" "6 7"; do
    set -- $pair
    a="$1"; b="$2"
    drive_read "gpio.pair$a-$b.high" "$a" "$b" 1
    drive_read "gpio.pair$a-$b.low" "$a" "$b" 0
    drive_read "gpio.pair$b-$a.high" "$b" "$a" 1
    drive_read "gpio.pair$b-$a.low" "$b" "$a" 0
done

# edges OUT IN: gpiomon on IN sees a rising and a falling edge when OUT toggles.
edges() {
    out="$1"; in="$2"
    gpioset --mode=signal "$chip" "$out=0" & sp=$!
    sleep 0.3
    gpiomon "$chip" "$in" > /tmp/mon.out 2>&1 & mp=$!
    wait_for 30 sh -c "gpioinfo $chip | grep -E 'line +$in:.*\"gpiomon\"'"
    sleep 0.2
    kill "$sp"; wait "$sp" 2>/dev/null
    gpioset --mode=signal "$chip" "$out=1" & sp=$!
    sleep 0.5
    kill "$sp"; wait "$sp" 2>/dev/null
    gpioset --mode=signal "$chip" "$out=0" & sp=$!
    sleep 0.5
    kill "$sp"; wait "$sp" 2>/dev/null
    sleep 0.3
    kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null
    if grep -q 'RISING EDGE' /tmp/mon.out; then pass "gpio.edge-rising.$out-$in"; else fail "gpio.edge-rising.$out-$in" "gpiomon saw: $(tr '\n' ';' < /tmp/mon.out)"; fi
    if grep -q 'FALLING EDGE' /tmp/mon.out; then pass "gpio.edge-falling.$out-$in"; else fail "gpio.edge-falling.$out-$in" "gpiomon saw: $(tr '\n' ';' < /tmp/mon.out)"; fi
}
edges 0 1
edges 7 6
exit 0
