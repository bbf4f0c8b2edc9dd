#!/bin/bash
# backend-vm: runs as root inside the backend VM (Debian 12, systemd as PID 1, Debian's
# kernel), started by backend-vm-test.service of the image from the payload disk mounted on
# /payload (run-backend-vm.sh writes it: this script, the packages under test, their
# repacked newer version, vhost-device-guest-tests). The packages' socket-activated,
# sandboxed units under the real systemd, on i2c-stub and gpio-sim:
#   install (nothing starts) -> /etc/default + enable the sockets (nothing runs) -> first
#   connection starts the service, which serves and is confined -> SIGKILL: the socket
#   stays, Restart= brings it back, it serves -> a refused configuration fails the unit
#   at once with the daemon's one-line error, fixed it serves -> upgrade while frontends
#   are connected (the daemons are left alone, the conffile edits kept), restart afterwards
#   runs the new binary -> purge leaves nothing.
# Result lines ("PASS: name" / "FAIL: name: reason", exactly one per check; "INFO: ..." for
# times; "VTEST-END backend-vm rc=N" last) go to ttyS1, everything else to the console.
set -uo pipefail # not -e: every check reports, a failed one does not end the run
P=/payload
exec 3>/dev/ttyS1
export DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
FAILED=0
pass() { echo "PASS: $1" >&3; echo "PASS: $1"; }
fail() { local l; l="FAIL: $1: $(tr '\n' ' ' <<<"${*:2}")"; echo "$l" >&3; echo "$l"; FAILED=$((FAILED + 1)); }
info() { echo "INFO: $*" >&3; echo "INFO: $*"; }
# check NAME REASON-IF-FALSE CMD...: PASS if CMD succeeds.
check() { local n=$1 r=$2; shift 2; if "$@"; then pass "$n"; else fail "$n" "$r"; fi; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# wait_until TENTHS CMD...: poll CMD until it succeeds (false after the deadline).
wait_until() { local t=$1; shift; while ((t-- > 0)); do "$@" && return 0; sleep 0.1; done; "$@"; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }
GT=$P/bin/vhost-device-guest-tests
VERSION="$(cat $P/version)" UP_VERSION="$(cat $P/up-version)"
trap 'echo "VTEST-END backend-vm rc=$FAILED" >&3' EXIT

# relay NAME CMD...: run the frontend, relay its PASS/FAIL lines; a non-zero exit without a
# FAIL line is a failure of its own (NAME.exit).
relay() {
    local name=$1 rc nfail
    shift
    "$@" >/tmp/gt.out 2>/tmp/gt.err
    rc=$?
    nfail="$(grep -c '^FAIL: ' /tmp/gt.out)"
    grep -E '^(PASS|FAIL): ' /tmp/gt.out >&3
    cat /tmp/gt.out
    if ((rc != 0 && nfail == 0)); then
        fail "$name.exit" "frontend exited $rc: $(tail -n 3 /tmp/gt.err)"
    fi
}
# serves NAME CMD...: one check for a whole frontend run (exit 0, no FAIL line).
serves() {
    local name=$1
    shift
    if timeout 120 "$@" >/tmp/gt.out 2>/tmp/gt.err && ! grep -q '^FAIL: ' /tmp/gt.out; then
        pass "$name"
    else
        fail "$name" "frontend: $(grep '^FAIL: ' /tmp/gt.out | head -n 3) $(tail -n 2 /tmp/gt.err)"
    fi
}

# ---- boot -------------------------------------------------------------------------------
state="$(systemctl is-system-running --wait 2>&1)"
if [[ "$(cat /proc/1/comm)" == systemd && "$state" == running ]]; then
    pass backend-vm.boot.systemd
else
    fail backend-vm.boot.systemd "PID 1 is $(cat /proc/1/comm), system state '$state'; failed units: $(systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
fi
info "boot: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r) ($(cat $P/kernel-package)), systemd $(systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p')"
info "boot: $(systemd-analyze time 2>&1 | head -n 1)"
lsm="$(cat /sys/kernel/security/lsm 2>/dev/null)"
check backend-vm.boot.kernel "kernel $(uname -r), expected $(cat $P/kernel-version); LSMs '$lsm'" \
    test "$(uname -r)" = "$(cat $P/kernel-version)" -a -n "$(grep -o landlock <<<"$lsm")"

# ---- devices: i2c-stub (0x50 served, 0x51 present but not listed) and a gpio-sim chip ---
modprobe i2c-dev && modprobe i2c-stub chip_addr=0x50,0x51
bus=""
for d in /sys/bus/i2c/devices/i2c-*; do
    [[ "$(cat "$d/name" 2>/dev/null)" == "SMBus stub driver"* ]] && bus="${d##*/i2c-}"
done
udevadm settle
if [[ -n "$bus" && -c /dev/i2c-$bus ]] && i2cset -y "$bus" 0x50 0x60 0x77 && i2cset -y "$bus" 0x51 0x00 0x11 \
    && i2cset -y "$bus" 0x51 0x10 0x22; then
    pass backend-vm.setup.i2c-stub
else
    fail backend-vm.setup.i2c-stub "no /dev/i2c-N of i2c-stub (bus '$bus'): $(ls /dev/i2c-* 2>&1)"
fi
modprobe gpio-sim
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
sim=/sys/kernel/config/gpio-sim/bvm
names="bvm-line0,bvm-line1,bvm-line2,bvm-line3,bvm-line4,bvm-line5,bvm-line6,bvm-line7"
ok=1
mkdir "$sim" && mkdir "$sim/bank0" && echo 8 >"$sim/bank0/num_lines" || ok=0
for i in 0 1 2 3 4 5 6 7; do
    mkdir "$sim/bank0/line$i" && echo "bvm-line$i" >"$sim/bank0/line$i/name" || ok=0
done
echo 1 >"$sim/live" || ok=0
chip="$(cat "$sim/bank0/chip_name" 2>/dev/null)"
simdir="/sys/devices/platform/$(cat "$sim/dev_name" 2>/dev/null)/$chip"
udevadm settle
check backend-vm.setup.gpio-sim "gpio-sim chip '$chip' ($(modinfo -F filename gpio-sim 2>&1))" \
    test "$ok" = 1 -a -d "$simdir/sim_gpio0" -a -c "/dev/$chip"

# ---- install: nothing enabled, nothing started ---------------------------------------------
if apt-get install -y -q "$P"/debs/vhost-device-{i2c,gpio}_"$VERSION"_amd64.deb >/tmp/apt.log 2>&1; then
    pass backend-vm.install.apt
else
    fail backend-vm.install.apt "$(tail -n 5 /tmp/apt.log)"
fi
st=""
for d in i2c gpio; do
    st+="$d: socket $(systemctl is-enabled vhost-device-$d.socket 2>&1)/$(prop vhost-device-$d.socket ActiveState) service $(prop vhost-device-$d.service ActiveState); "
done
check backend-vm.install.nothing-started "$st" \
    test "$st" = "i2c: socket disabled/inactive service inactive; gpio: socket disabled/inactive service inactive; "

# ---- configure, enable the sockets (not the services) ---------------------------------------
I2C_ARGS="-l $bus:0x50" GPIO_ARGS="-l ${chip#gpiochip}"
sed -i "s|^VHOST_DEVICE_I2C_ARGS=.*|VHOST_DEVICE_I2C_ARGS=\"$I2C_ARGS\"|" /etc/default/vhost-device-i2c
sed -i "s|^VHOST_DEVICE_GPIO_ARGS=.*|VHOST_DEVICE_GPIO_ARGS=\"$GPIO_ARGS\"|" /etc/default/vhost-device-gpio
cp /etc/default/vhost-device-i2c /tmp/i2c.conf
cp /etc/default/vhost-device-gpio /tmp/gpio.conf
systemctl enable --now vhost-device-i2c.socket vhost-device-gpio.socket >/tmp/enable.log 2>&1 || cat /tmp/enable.log
listening() { [[ "$(prop "vhost-device-$1.socket" ActiveState)/$(prop "vhost-device-$1.socket" SubState)" == active/listening && -S /run/vhost-device-$1.sock ]]; }
# socket_up DEV: the socket unit active (listening, or running while its service runs), the
# socket file there.
socket_up() { [[ "$(prop "vhost-device-$1.socket" ActiveState)" == active && -S /run/vhost-device-$1.sock ]]; }
service_active() { [[ "$(prop "vhost-device-$1.service" ActiveState)/$(prop "vhost-device-$1.service" SubState)" == active/running ]]; }
for d in i2c gpio; do
    check "backend-vm.$d.socket-listening" "socket $(prop vhost-device-$d.socket ActiveState)/$(prop vhost-device-$d.socket SubState), $(ls -l /run/vhost-device-$d.sock 2>&1)" \
        listening $d
    check "backend-vm.$d.idle-before-connect" "service $(prop vhost-device-$d.service ActiveState), processes: $(pgrep -a -x vhost-device-$d)" \
        test "$(prop vhost-device-$d.service ActiveState)" = inactive -a -z "$(pgrep -x vhost-device-$d)"
done

# ---- the first connection starts the service: it serves, confined ----------------------
# confined DEV: the serving daemon under its own sandbox (seccomp filter, no_new_privs, no
# capability) and the unit's (empty bounding set, its own network and mount namespaces,
# the root read-only: ProtectSystem=strict).
confined() {
    local d=$1 pid st ll
    pid="$(prop "vhost-device-$d.service" MainPID)"
    st="$(awk '$1 ~ /^(Seccomp|NoNewPrivs|CapEff|CapBnd):$/ { printf "%s%s ", $1, $2 }' "/proc/$pid/status" 2>&1)"
    st+="netns:$([[ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/1/ns/net)" ]] && echo own || echo host) "
    st+="mntns:$([[ "$(readlink /proc/$pid/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ]] && echo own || echo host) "
    st+="root:$(awk '$5 == "/" { split($6, o, ","); print o[1]; exit }' "/proc/$pid/mountinfo" 2>&1)"
    ll="$(journalctl -q "_PID=$pid" -o cat | grep -o 'sandbox: Landlock [a-z ]*enforced' | head -n 1)"
    info "$d: pid $pid: $st; $ll"
    if [[ "$st" == "CapEff:0000000000000000 CapBnd:0000000000000000 NoNewPrivs:1 Seccomp:2 netns:own mntns:own root:ro" \
        && -n "$ll" ]]; then
        pass "backend-vm.$d.confined"
    else
        fail "backend-vm.$d.confined" "pid $pid: $st; journal: '$ll'"
    fi
}
# first_answer DEV CMD...: start the frontend, time its first answered check, then relay.
first_answer() {
    local d=$1 t0 i
    shift
    t0="$(now)"
    "$@" >/tmp/gt.out 2>/tmp/gt.err &
    local fpid=$!
    for ((i = 0; i < 1200; i++)); do
        grep -qE '^(PASS|FAIL): ' /tmp/gt.out 2>/dev/null && break
        sleep 0.05
    done
    info "$d: first answer $(since "$t0") s after the frontend hit /run/vhost-device-$d.sock (socket activation included)"
    wait "$fpid"
    local rc=$? nfail
    nfail="$(grep -c '^FAIL: ' /tmp/gt.out)"
    grep -E '^(PASS|FAIL): ' /tmp/gt.out >&3
    cat /tmp/gt.out
    ((rc == 0 || nfail > 0)) || fail "backend-vm.$d.serve.exit" "frontend exited $rc: $(tail -n 3 /tmp/gt.err)"
}
first_answer i2c "$GT" i2c --socket /run/vhost-device-i2c.sock --addr 0x50 --absent 0x51 --preset 0x60=0x77 --prefix backend-vm.i2c.serve
check backend-vm.i2c.activated "service $(prop vhost-device-i2c.service ActiveState)/$(prop vhost-device-i2c.service SubState), exe $(readlink /proc/"$(prop vhost-device-i2c.service MainPID)"/exe)" \
    test "$(service_active i2c && readlink /proc/"$(prop vhost-device-i2c.service MainPID)"/exe)" = /usr/bin/vhost-device-i2c
kc="$(i2cget -y "$bus" 0x50 0x10 2>&1) $(i2cget -y "$bus" 0x50 0x20 w 2>&1) $(i2cget -y "$bus" 0x51 0x00 2>&1) $(i2cget -y "$bus" 0x51 0x10 2>&1)"
check backend-vm.i2c.kernel-cross-check "i2c-stub holds '$kc', expected '0xab 0x1234 0x11 0x22'" test "$kc" = "0xab 0x1234 0x11 0x22"
confined i2c
first_answer gpio "$GT" gpio --socket /run/vhost-device-gpio.sock --sim-dir "$simdir" --names "$names" --prefix backend-vm.gpio.serve
check backend-vm.gpio.activated "service $(prop vhost-device-gpio.service ActiveState)/$(prop vhost-device-gpio.service SubState)" \
    test "$(service_active gpio && readlink /proc/"$(prop vhost-device-gpio.service MainPID)"/exe)" = /usr/bin/vhost-device-gpio
confined gpio

# The frontends of the later checks (serves: one check each), append --prefix NAME.
i2c_frontend=("$GT" i2c --socket /run/vhost-device-i2c.sock --addr 0x50 --absent 0x51)
gpio_frontend=("$GT" gpio --socket /run/vhost-device-gpio.sock --sim-dir "$simdir" --names "$names")

# ---- crash: SIGKILL; the socket stays, Restart= brings the service back, it serves --------
for d in i2c gpio; do
    pid="$(prop "vhost-device-$d.service" MainPID)"
    kill -KILL "$pid"
    sleep 0.3
    sock_during="$(socket_up $d && echo up || echo "$(prop vhost-device-$d.socket ActiveState)/$(prop vhost-device-$d.socket SubState)")"
    restarted() { service_active "$1" && [[ "$(prop "vhost-device-$1.service" MainPID)" != "$2" && "$(prop "vhost-device-$1.service" NRestarts)" == 1 ]]; }
    wait_until 200 restarted $d "$pid"
    check "backend-vm.$d.sigkill-socket-stays" "socket after the kill: $sock_during, now $(prop vhost-device-$d.socket ActiveState)/$(prop vhost-device-$d.socket SubState)" \
        test "$sock_during" = up -a "$(socket_up $d && echo up)" = up
    check "backend-vm.$d.sigkill-restarted" "service $(prop vhost-device-$d.service ActiveState)/$(prop vhost-device-$d.service SubState), MainPID $(prop vhost-device-$d.service MainPID) (killed $pid), NRestarts $(prop vhost-device-$d.service NRestarts)" \
        restarted $d "$pid"
    fe="${d}_frontend[@]"
    serves "backend-vm.$d.sigkill-serves" "${!fe}" --prefix "backend-vm.$d.after-kill"
done

# ---- a refused configuration fails the unit at once; fixed, it serves ---------------------
# No /dev/i2c-9, no gpiochip9: the daemon refuses (exit 1, one line on stderr). The unit's
# RestartPreventExitStatus= stops it there (no restart loop into the start limit, which
# would also fail the socket); the socket keeps listening.
declare -A BAD=([i2c]='-l 9:0x50' [gpio]='-l 9')
for d in i2c gpio; do
    var="VHOST_DEVICE_${d^^}_ARGS"
    sed -i "s|^$var=.*|$var=\"${BAD[$d]}\"|" "/etc/default/vhost-device-$d"
    sleep 1 # journalctl --since has a one-second resolution: nothing of before in it
    since_ts="$(date '+%Y-%m-%d %H:%M:%S')"
    systemctl restart "vhost-device-$d.service"
    failed() { [[ "$(prop "vhost-device-$1.service" ActiveState)" == failed ]]; }
    wait_until 150 failed $d
    n1="$(prop vhost-device-$d.service NRestarts)"
    sleep 3 # a restart loop would show here
    n2="$(prop vhost-device-$d.service NRestarts)"
    st="$(prop vhost-device-$d.service ActiveState) Result=$(prop vhost-device-$d.service Result) status=$(prop vhost-device-$d.service ExecMainStatus) restarts=$([[ $n1 == "$n2" ]] && echo none || echo "$n1->$n2")"
    check "backend-vm.$d.refused-config-fails" "$st (expected: failed, exit-code, 1, no restart)" \
        test "$st" = "failed Result=exit-code status=1 restarts=none"
    journalctl -q -u "vhost-device-$d.service" --since "$since_ts" -o cat >/tmp/journal.txt 2>&1
    errs="$(grep -c "^vhost-device-$d: error: " /tmp/journal.txt)"
    info "$d: refused configuration '${BAD[$d]}': $(grep "^vhost-device-$d: error: " /tmp/journal.txt | head -n 1)"
    check "backend-vm.$d.refused-config-journal" "$errs error lines in journalctl -u: $(tr '\n' '|' </tmp/journal.txt)" \
        test "$errs" = 1
    check "backend-vm.$d.refused-config-socket-stays" "socket $(prop vhost-device-$d.socket ActiveState)/$(prop vhost-device-$d.socket SubState)" \
        listening $d
    cp "/tmp/$d.conf" "/etc/default/vhost-device-$d"
    systemctl restart "vhost-device-$d.service"
    wait_until 100 service_active $d
    fe="${d}_frontend[@]"
    serves "backend-vm.$d.fixed-config-serves" "${!fe}" --prefix "backend-vm.$d.fixed"
done

# ---- upgrade while frontends are connected ------------------------------------------------
# The packages never restart a running daemon on upgrade (README "Upgrades": QEMU >= 9
# does not redo the handshake, so its VM would lose the device): a connected frontend keeps
# being served by the old process throughout; the administrator's restart afterwards
# (no frontend connected) runs the new binary. The edits of /etc/default survive.
# The frontends send for LOAD_SECONDS (niced; apt still took 46 to 81 s next to them: its
# dpkg and systemd work crawls under TCG, not only under their load). That they outlived it is
# checked below, not assumed.
LOAD_SECONDS=150
declare -A OLD
for d in i2c gpio; do
    OLD[$d]="$(prop "vhost-device-$d.service" MainPID)"
    ln -sf "/run/vhost-device-$d.sock" "/run/bvm-$d-load0" # load's socket naming: BASE0
    nice -n 19 "$GT" load --kind "$d" --socket "/run/bvm-$d-load" --count 1 --seconds "$LOAD_SECONDS" --daemon-pid "${OLD[$d]}" \
        --prefix "backend-vm.upgrade.$d" >"/tmp/load-$d.out" 2>"/tmp/load-$d.err" &
    eval "LOAD_$d=\$!"
done
sleep 3
t0="$(now)"
if apt-get install -y -q -o Dpkg::Options::=--force-confold \
    "$P"/up/vhost-device-{i2c,gpio}_"$UP_VERSION"_amd64.deb >/tmp/apt-up.log 2>&1; then
    pass backend-vm.upgrade.apt
else
    fail backend-vm.upgrade.apt "$(tail -n 5 /tmp/apt-up.log)"
fi
info "upgrade: apt-get install of the newer packages took $(since "$t0") s with both frontends connected"
check backend-vm.upgrade.frontends-throughout "a frontend ended before the upgrade did (LOAD_SECONDS=$LOAD_SECONDS too short): i2c $(kill -0 "$LOAD_i2c" 2>&1 && echo running), gpio $(kill -0 "$LOAD_gpio" 2>&1 && echo running)" \
    kill -0 "$LOAD_i2c" "$LOAD_gpio"
v="$(dpkg-query -W -f='${Version} ' vhost-device-i2c vhost-device-gpio)"
check backend-vm.upgrade.installed "installed versions: $v" test "$v" = "$UP_VERSION $UP_VERSION "
st=""
for d in i2c gpio; do
    pid="$(prop "vhost-device-$d.service" MainPID)"
    st+="$d: pid ${OLD[$d]}->$pid $(prop vhost-device-$d.service ActiveState) exe $(readlink /proc/"$pid"/exe); "
done
check backend-vm.upgrade.daemons-untouched "$st" \
    test "$st" = "i2c: pid ${OLD[i2c]}->${OLD[i2c]} active exe /usr/bin/vhost-device-i2c (deleted); gpio: pid ${OLD[gpio]}->${OLD[gpio]} active exe /usr/bin/vhost-device-gpio (deleted); "
for d in i2c gpio; do
    pid_var="LOAD_$d"
    wait "${!pid_var}"
    rc=$?
    grep -E '^(PASS|FAIL): ' "/tmp/load-$d.out" >&3
    cat "/tmp/load-$d.out"
    grep -qE '^(PASS|FAIL): ' "/tmp/load-$d.out" || fail "backend-vm.upgrade.$d.busy-guests" "frontend exited $rc without a result: $(tail -n 3 "/tmp/load-$d.err")"
done
check backend-vm.upgrade.conffiles-kept "$(diff /tmp/i2c.conf /etc/default/vhost-device-i2c; diff /tmp/gpio.conf /etc/default/vhost-device-gpio; ls /etc/default/vhost-device-* | tr '\n' ' ')" \
    bash -c 'cmp -s /tmp/i2c.conf /etc/default/vhost-device-i2c && cmp -s /tmp/gpio.conf /etc/default/vhost-device-gpio && ! ls /etc/default/vhost-device-*.dpkg-* >/dev/null 2>&1'
sockets_kept() { [[ "$(systemctl is-enabled vhost-device-i2c.socket vhost-device-gpio.socket | tr '\n' ' ')" == "enabled enabled " ]] && socket_up i2c && socket_up gpio; }
check backend-vm.upgrade.sockets-kept "i2c $(systemctl is-enabled vhost-device-i2c.socket)/$(prop vhost-device-i2c.socket SubState), gpio $(systemctl is-enabled vhost-device-gpio.socket)/$(prop vhost-device-gpio.socket SubState)" \
    sockets_kept
sleep 1 # journalctl --since: only what the restart logs
since_ts="$(date '+%Y-%m-%d %H:%M:%S')"
systemctl restart vhost-device-i2c.service vhost-device-gpio.service
st=""
for d in i2c gpio; do
    wait_until 100 service_active $d
    pid="$(prop "vhost-device-$d.service" MainPID)"
    st+="$d: $(prop vhost-device-$d.service ActiveState) new-pid $([[ $pid != "${OLD[$d]}" ]] && echo yes || echo no) exe $(readlink /proc/"$pid"/exe); "
done
jerr="$(journalctl -q -u vhost-device-i2c -u vhost-device-gpio --since "$since_ts" -o cat | grep -iE 'error|fail' | head -n 3 | tr '\n' '|')"
check backend-vm.upgrade.restart-runs-new-binary "$st; journal: $jerr" \
    test "$st|$jerr" = "i2c: active new-pid yes exe /usr/bin/vhost-device-i2c; gpio: active new-pid yes exe /usr/bin/vhost-device-gpio; |"
serves backend-vm.upgrade.i2c-serves "${i2c_frontend[@]}" --prefix backend-vm.upgrade.i2c-after
serves backend-vm.upgrade.gpio-serves "${gpio_frontend[@]}" --prefix backend-vm.upgrade.gpio-after

# ---- purge: nothing left --------------------------------------------------------------------
dpkg -L vhost-device-i2c vhost-device-gpio | sort -u >/tmp/owned
if apt-get purge -y -q vhost-device-i2c vhost-device-gpio >/tmp/apt-purge.log 2>&1; then
    pass backend-vm.purge.apt
else
    fail backend-vm.purge.apt "$(tail -n 5 /tmp/apt-purge.log)"
fi
st=""
for d in i2c gpio; do
    st+="$d: procs[$(pgrep -x vhost-device-$d)] units[$(prop vhost-device-$d.socket LoadState)/$(prop vhost-device-$d.service LoadState)] socket[$(ls /run/vhost-device-$d.sock 2>/dev/null)]; "
done
check backend-vm.purge.stopped "$st" \
    test "$st" = "i2c: procs[] units[not-found/not-found] socket[]; gpio: procs[] units[not-found/not-found] socket[]; "
left=""
while read -r path; do
    [[ "$path" == /. ]] && continue # dpkg -L's first line: the root itself
    if [[ -d "$path" && ! -L "$path" ]]; then
        dpkg -S "$path" >/dev/null 2>&1 || left+="$path "
    elif [[ -e "$path" || -L "$path" ]]; then
        left+="$path "
    fi
done </tmp/owned
for f in /etc/default/vhost-device-* /etc/systemd/system/*/vhost-device-* /var/lib/dpkg/info/vhost-device-* \
    /var/lib/systemd/deb-systemd-helper-enabled/vhost-device-* /var/lib/systemd/deb-systemd-helper-enabled/*/vhost-device-* \
    /var/lib/systemd/deb-systemd-helper-masked/vhost-device-*; do
    [[ -e "$f" || -L "$f" ]] && left+="$f "
done
known="$(dpkg-query -W vhost-device-i2c vhost-device-gpio 2>/dev/null)"
check backend-vm.purge.nothing-left "left: '$left'; dpkg still knows: '$known'" test -z "$left$known"

info "done after $(awk '{print $1}' /proc/uptime) s of VM uptime"
