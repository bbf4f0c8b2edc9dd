# guest-drivers, GPIO: the guest's virtio-gpio driver talks to vhost-device-gpio on the host,
# started with -l s8 (8 simulated lines wired in pairs 0-1, 2-3, 4-5, 6-7).
. /tests/lib.sh

if wait_for 50 gpio_chip_by_label 'virtio[0-9]*' && chip="$(gpio_chip_by_label 'virtio[0-9]*')" && [ -n "$chip" ]; then
    pass guest-drivers.gpio.detect
else
    fail guest-drivers.gpio.detect "no virtio gpiochip in gpiodetect: $(gpiodetect 2>&1 | tr '\n' ';')"
    exit 1
fi
n="$(gpiodetect | grep "^$chip " | sed -n 's/.*(\([0-9]*\) lines).*/\1/p')"
expect_eq guest-drivers.gpio.num-lines 8 "$n"

names="$(gpioinfo "$chip" 2>&1 | sed -n 's/^[[:space:]]*line[[:space:]]*[0-9]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
count="$(echo "$names" | grep -c . || true)"
uniq_count="$(echo "$names" | sort -u | grep -c . || true)"
if [ "$count" = 8 ] && [ "$uniq_count" = 8 ]; then
    pass guest-drivers.gpio.line-names
else
    fail guest-drivers.gpio.line-names "expected 8 unique names, got: $(gpioinfo "$chip" 2>&1 | tr '\n' ';')"
fi

# held_by LINE CONSUMER: gpioinfo shows LINE of $chip requested by CONSUMER; with a third
# argument, also in that direction (input/output).
held_by() {
    gpioinfo "$chip" 2>/dev/null | grep -qE "^[[:space:]]*line[[:space:]]+$1:.*\"$2\" +${3:-}"
}
# drive LINE VALUE: gpioset holds LINE at VALUE (background, pid in $sp); waits (3 s
# deadline) until the guest kernel shows the line requested as an output by gpioset.
drive() {
    gpioset --mode=signal "$chip" "$1=$2" 2>/tmp/gpioset.err & sp=$!
    wait_for 30 held_by "$1" gpioset output
}
undrive() { kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null; wait_for 30 sh -c "! gpioinfo $chip | grep -qE '^[[:space:]]*line[[:space:]]+$1:.*\"gpioset\"'"; }
# read_until LINE VALUE: gpioget LINE until it reads VALUE (3 s deadline); sets $got.
read_until() {
    got=""; i=0
    while [ $i -lt 30 ]; do
        got="$(gpioget "$chip" "$1" 2>&1)"
        [ "$got" = "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# pair OUT IN: OUT driven high, IN reads 1 (the positive check); then OUT driven low, IN
# reads 0. Undriven lines of the simulator read 0 too, so the low check passes only while
# gpioset holds OUT as an output (guest kernel's gpioinfo) before and after the read, and
# right after IN read 1 on the same path.
pair() {
    out="$1"; in="$2"; n="guest-drivers.gpio.pair$out-$in"
    if ! drive "$out" 1; then
        fail "$n.high" "gpioset $out=1 never held the line: $(cat /tmp/gpioset.err)"
        undrive "$out"; fail "$n.low" "not run: driving high failed"; return
    fi
    if read_until "$in" 1; then pass "$n.high"; else fail "$n.high" "line $in read '$got' while line $out drove 1"; fi
    undrive "$out"
    if ! drive "$out" 0; then
        fail "$n.low" "gpioset $out=0 never held the line: $(cat /tmp/gpioset.err)"
    elif ! read_until "$in" 0; then
        fail "$n.low" "line $in read '$got' while line $out drove 0"
    elif exited "$sp" || ! held_by "$out" gpioset output; then
        fail "$n.low" "line $in read 0, but gpioset no longer held line $out: $(cat /tmp/gpioset.err)"
    else
        pass "$n.low"
    fi
    undrive "$out"
}
for p in "0 1" "2 3" "4 5" "6 7"; do
    set -- $p
    pair "$1" "$2"
    pair "$2" "$1"
done

# first_edge OUT IN NAME WANT ACTION: gpiomon -n 1 on IN (both edges) is started and seen
# holding the line, then ACTION runs; the first edge gpiomon reports (10 s deadline) must
# be WANT. gpiomon exits after that one event, which also flushes its output.
first_edge() {
    out="$1"; in="$2"; n="$3"; want="$4"; shift 4
    gpiomon -n 1 "$chip" "$in" > /tmp/mon.out 2>&1 & mp=$!
    if ! wait_for 30 held_by "$in" gpiomon; then
        kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null
        fail "$n" "gpiomon never requested line $in: $(tr '\n' ';' < /tmp/mon.out)"
        return
    fi
    "$@"
    if wait_for 100 exited "$mp"; then
        wait "$mp" 2>/dev/null
        if grep -q "^event: *$want EDGE offset: $in " /tmp/mon.out; then pass "$n"; else fail "$n" "first edge on line $in: $(tr '\n' ';' < /tmp/mon.out), expected $want"; fi
    else
        kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null
        fail "$n" "no edge on line $in within 10 s of line $out changing"
    fi
}
# edges OUT IN: OUT held low (no edge: the level IN sees is already low), released (still
# low), then driven high: the first edge is RISING, so nothing spurious came before it.
# Released again, the level falls: the first edge is FALLING.
to_high() { undrive "$out"; drive "$out" 1; }
edges() {
    drive "$1" 0
    first_edge "$1" "$2" "guest-drivers.gpio.edge-rising.$1-$2" RISING to_high
    first_edge "$1" "$2" "guest-drivers.gpio.edge-falling.$1-$2" FALLING undrive "$1"
}
edges 0 1
edges 7 6
exit 0
