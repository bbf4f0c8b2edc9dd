#!/usr/bin/env bash
# The Debian packages, end to end, on a Debian 12 machine as root:
#   1. `cargo xtask deb` builds vhost-device-{i2c,gpio} for amd64 and arm64 (it installs
#      cargo-deb, the rustup target and the cross toolchain itself);
#   2. each .deb's metadata and contents: exactly the expected files, the conffile, the
#      architecture of the binary, Depends covering its glibc symbol versions, units that
#      run /usr/bin and read /etc/default, maintainer scripts that (run with stub systemd
#      tools) never enable, start or restart the daemon and stop it only on removal, a
#      binary without the sandbox test trigger, a copyright file naming every statically
#      linked crate;
#   3. lintian (every tag, down to pedantic; overrides are explained in the packages);
#   4. the amd64 packages installed with dpkg -i (no unit enabled: no *.wants link): the
#      installed binaries against their
#      capability files and a simulated device through the test frontend (the smoke tests),
#      systemd-analyze verify of the installed units, an administrator's edit of the
#      conffile surviving upgrades (to repacked newer versions);
#   5. dpkg --purge, then nothing of the packages is left on the system.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive

PACKAGES=(vhost-device-i2c vhost-device-gpio)
ARCHES=(amd64 arm64)
T_ALL=$(date +%s)
T_STEP=$T_ALL
WORK=$(mktemp -d /tmp/vhost-device-packaging.XXXXXX)

log() { printf 'packaging: %s\n' "$*"; }
die() { printf 'packaging: FAIL: %s\n' "$*" >&2; exit 1; }
step_done() {
    local now
    now=$(date +%s)
    log "step $1: $((now - T_STEP)) s"
    T_STEP=$now
}

[[ $EUID -eq 0 ]] || die "run as root (it installs packages with apt-get and dpkg)"

purge_all() {
    local p
    for p in "${PACKAGES[@]}"; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
            dpkg --purge "$p" >/dev/null
        fi
    done
}
cleanup() {
    purge_all || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# A previous, interrupted run may have left them installed.
purge_all

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

# Runs the maintainer script SCRIPT with ARGS as dpkg would, but with stub
# deb-systemd-helper, deb-systemd-invoke and systemctl first on PATH: they log their
# arguments and answer the helper's queries as DEBIAN_INSTALLED and WAS_ENABLED say (0 yes,
# 1 no; default no). The script's test for a running systemd (/run/systemd/system) is
# pointed at a directory that exists. Prints the calls, one a line. This checks what the
# scripts do, not how their text reads.
run_with_stubs() { # SCRIPT ARGS...
    local script=$1 stub="$WORK/stub" tool
    shift
    rm -rf "$stub"
    mkdir -p "$stub/bin" "$stub/run-systemd"
    for tool in deb-systemd-helper deb-systemd-invoke systemctl; do
        cat >"$stub/bin/$tool" <<EOF
#!/bin/sh
echo "$tool \$*" >>"$stub/calls"
case "\$*" in
    *debian-installed*) exit \${DEBIAN_INSTALLED:-1} ;;
    *was-enabled*) exit \${WAS_ENABLED:-1} ;;
esac
exit 0
EOF
        chmod 755 "$stub/bin/$tool"
    done
    : >"$stub/calls"
    sed "s#/run/systemd/system#$stub/run-systemd#g" "$script" >"$stub/script"
    PATH="$stub/bin:$PATH" sh -e "$stub/script" "$@" >/dev/null
    cat "$stub/calls"
}

# The maintainer scripts of package P (control files in DIR, from F): installing or
# upgrading never enables or starts a unit (an administrator's own enabling is kept: the
# helper re-enables a unit that was enabled, which shows the stubs are reached); an
# upgrade never stops one; removal stops both.
check_maintainer_scripts() { # DIR P F
    local dir=$1 p=$2 f=$3 calls starts='^(deb-systemd-helper (--quiet )?enable|deb-systemd-invoke|systemctl)'
    calls=$(run_with_stubs "$dir/postinst" configure)
    grep -qE "$starts" <<<"$calls" && die "$f: postinst on a fresh install enables or starts a unit: $calls"
    grep -qF "deb-systemd-helper update-state $p.service" <<<"$calls" || die "$f: postinst never reached the helper: $calls"
    calls=$(DEBIAN_INSTALLED=0 WAS_ENABLED=1 run_with_stubs "$dir/postinst" configure "$VERSION")
    grep -qE "$starts" <<<"$calls" && die "$f: postinst on an upgrade enables or starts a unit: $calls"
    calls=$(DEBIAN_INSTALLED=0 WAS_ENABLED=0 run_with_stubs "$dir/postinst" configure "$VERSION")
    grep -qxF "deb-systemd-helper enable $p.service" <<<"$calls" \
        || die "$f: postinst drops an administrator's enabling on upgrade (or the stubs were not reached): $calls"
    calls=$(run_with_stubs "$dir/prerm" upgrade "$VERSION")
    grep -qE 'deb-systemd-invoke|systemctl' <<<"$calls" && die "$f: prerm stops or restarts units on upgrade: $calls"
    calls=$(run_with_stubs "$dir/prerm" remove)
    grep -qxF "deb-systemd-invoke stop $p.service $p.socket" <<<"$calls" \
        || die "$f: prerm does not stop the units on removal: $calls"
    return 0
}

# ---- tools of the checks (the build's own tools are installed by cargo xtask deb) -------
missing=()
for p in lintian systemd binutils; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1 \
        || { tail -40 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
fi
step_done tools

# ---- 1. build ----------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
DEB_DIR=$TARGET_DIR/debian
pkgid=$(cargo pkgid --locked -p vhost-device-i2c)
VERSION="${pkgid##*[#@]}-1"
rm -f "$DEB_DIR"/vhost-device-*.deb
cargo xtask deb >"$WORK/debs" || die "cargo xtask deb failed"
for p in "${PACKAGES[@]}"; do
    for a in "${ARCHES[@]}"; do
        f="$DEB_DIR/${p}_${VERSION}_${a}.deb"
        grep -qxF "$f" "$WORK/debs" || die "cargo xtask deb did not report $f; it reported: $(cat "$WORK/debs")"
        [[ -f "$f" ]] || die "$f missing"
    done
done
[[ $(wc -l <"$WORK/debs") -eq 4 ]] || die "expected 4 packages, got: $(cat "$WORK/debs")"
step_done build

# ---- 2. contents and metadata ---------------------------------------------------------------
expected_files() {
    local p=$1
    printf '%s\n' \
        "./etc/default/$p" \
        "./usr/bin/$p" \
        "./usr/lib/systemd/system/$p.service" \
        "./usr/lib/systemd/system/$p.socket" \
        "./usr/share/doc/$p/README.md" \
        "./usr/share/doc/$p/changelog.Debian.gz" \
        "./usr/share/doc/$p/copyright" \
        "./usr/share/lintian/overrides/$p" \
        "./usr/share/man/man1/$p.1.gz" \
        "./usr/share/qemu/vhost-user/50-$p.json" | sort
}

# The crates linked into the daemons (no build-time-only proc-macros, no workspace crates).
cargo tree --locked -e normal,no-proc-macro --prefix none -f '{p}' -p vhost-device-i2c \
    -p vhost-device-gpio | grep -v '(/' | awk '{print $1}' | sort -u >"$WORK/crates"
[[ -s "$WORK/crates" ]] || die "cargo tree listed no linked crates"

for a in "${ARCHES[@]}"; do
    case $a in
        amd64) machine="X86-64" ;;
        arm64) machine="AArch64" ;;
    esac
    for p in "${PACKAGES[@]}"; do
        f="$DEB_DIR/${p}_${VERSION}_${a}.deb"
        x="$WORK/$p-$a"
        mkdir -p "$x"
        dpkg-deb -x "$f" "$x/root"
        dpkg-deb -e "$f" "$x/DEBIAN"
        field() { dpkg-deb -f "$f" "$1"; }

        [[ $(field Package) == "$p" ]] || die "$f: Package $(field Package)"
        [[ $(field Version) == "$VERSION" ]] || die "$f: Version $(field Version)"
        [[ $(field Architecture) == "$a" ]] || die "$f: Architecture $(field Architecture)"
        [[ -n $(field Maintainer) && -n $(field Description) ]] || die "$f: no Maintainer or Description"

        # Exactly the expected files (directories aside), with the right modes.
        dpkg-deb -c "$f" | awk '$1 !~ /^d/ {print $6}' | sort >"$x/files"
        diff -u <(expected_files "$p") "$x/files" >"$x/files.diff" \
            || { cat "$x/files.diff"; die "$f: unexpected file list (diff above: - expected, + packaged)"; }
        dpkg-deb -c "$f" | awk -v b="./usr/bin/$p" '$6 == b {print $1}' | grep -qx -- '-rwxr-xr-x' \
            || die "$f: /usr/bin/$p is not mode 755"
        [[ $(cat "$x/DEBIAN/conffiles") == "/etc/default/$p" ]] \
            || die "$f: conffiles is '$(cat "$x/DEBIAN/conffiles")', expected /etc/default/$p"

        # The binary: this architecture, only libc (and libgcc_s, always present), and a
        # Depends on a libc6 version that has every GLIBC_ symbol version it uses.
        bin="$x/root/usr/bin/$p"
        readelf -h "$bin" | grep -q "Machine:.*$machine" || die "$f: binary is not $machine: $(readelf -h "$bin" | grep Machine)"
        readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort >"$x/needed"
        grep -vxE 'libc\.so\.6|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12]' "$x/needed" \
            && die "$f: links libraries beyond libc and libgcc_s"
        depends=$(field Depends)
        [[ $depends =~ ^libc6\ \(\>=\ ([0-9.]+)\)$ ]] || die "$f: Depends '$depends' is not 'libc6 (>= X)'"
        dep_version=${BASH_REMATCH[1]}
        needs=$(readelf -V --wide "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
        dpkg --compare-versions "$dep_version" ge "$needs" \
            || die "$f: Depends libc6 (>= $dep_version) but the binary needs GLIBC_$needs"
        # A release build: without the sandbox test trigger (a `cargo test --release` build
        # would carry it; `cargo xtask deb` refuses to package one, this checks the result).
        grep -qF VHOST_DEVICE_SANDBOX_TEST_TRIGGER "$bin" && die "$f: the binary holds the sandbox test trigger"

        # Units from contrib/systemd: the installed binary, the conffile, fd 3 from the socket.
        svc="$x/root/usr/lib/systemd/system/$p.service"
        var="$(echo "${p#vhost-device-}" | tr a-z A-Z)"
        grep -qxF "ExecStart=/usr/bin/$p --fd 3 \$VHOST_DEVICE_${var}_ARGS" "$svc" || die "$f: ExecStart in $p.service"
        grep -qxF "EnvironmentFile=-/etc/default/$p" "$svc" || die "$f: EnvironmentFile in $p.service"
        grep -q "^VHOST_DEVICE_${var}_ARGS=" "$x/root/etc/default/$p" || die "$f: /etc/default/$p sets no VHOST_DEVICE_${var}_ARGS"
        grep -q "^\"binary\": \"/usr/bin/$p\"" <(sed 's/^ *//' "$x/root/usr/share/qemu/vhost-user/50-$p.json") \
            || die "$f: capability file's binary is not /usr/bin/$p"

        # Installing neither enables nor starts the units, and an upgrade leaves a running
        # daemon alone (QEMU would lose the device); removal stops it.
        for s in postinst prerm postrm; do [[ -x "$x/DEBIAN/$s" ]] || die "$f: no $s"; done
        check_maintainer_scripts "$x/DEBIAN" "$p" "$f"

        grep -q "^\.TH $p 1" <<<"$(zcat "$x/root/usr/share/man/man1/$p.1.gz")" || die "$f: man page has no .TH $p 1"
        head -1 <<<"$(zcat "$x/root/usr/share/doc/$p/changelog.Debian.gz")" | grep -qF "$p ($VERSION)" \
            || die "$f: changelog does not start with $p ($VERSION)"
        while read -r crate; do
            grep -qw -- "$crate" "$x/root/usr/share/doc/$p/copyright" \
                || die "$f: copyright does not name the linked crate $crate"
        done <"$WORK/crates"
        log "$(basename "$f"): $(stat -c %s "$f") bytes, Installed-Size $(field Installed-Size) KiB, Depends $depends, needs GLIBC_$needs"
    done
done
step_done contents

# ---- 3. lintian -------------------------------------------------------------------------------
# As an unprivileged user (lintian unpacks untrusted archives), on copies it can surely
# read (the target directory may sit in a private home); every level fails the run.
mkdir -m 755 "$WORK/lint"
cp "$DEB_DIR"/vhost-device-*_"$VERSION"_*.deb "$WORK/lint/"
chmod 755 "$WORK" && chmod 644 "$WORK"/lint/*.deb
(cd / && runuser -u nobody -- lintian --info --pedantic --fail-on error,warning,info,pedantic \
    "$WORK"/lint/*.deb) >"$WORK/lintian.log" 2>&1 || { cat "$WORK/lintian.log"; die "lintian"; }
log "lintian: $(grep -c . "$WORK/lintian.log" || true) lines of output"
cat "$WORK/lintian.log"
step_done lintian

# ---- 4. install and run -----------------------------------------------------------------------
dpkg -i "$DEB_DIR"/vhost-device-{i2c,gpio}_"$VERSION"_amd64.deb >"$WORK/dpkg-i.log" 2>&1 \
    || { cat "$WORK/dpkg-i.log"; die "dpkg -i"; }
for p in "${PACKAGES[@]}"; do
    installed "$p" || die "$p is not installed after dpkg -i"
    dpkg -L "$p" | sort >"$WORK/$p.installed"
    while read -r path; do
        [[ -e "$path" ]] || die "$p: $path listed by dpkg -L but missing"
    done <"$WORK/$p.installed"
    caps=$("/usr/bin/$p" --print-capabilities) || die "/usr/bin/$p --print-capabilities failed"
    log "/usr/bin/$p --print-capabilities: $(echo "$caps" | tr -d '\n ')"
    # Installed, not enabled: no target wants a unit, no enabled link is recorded for purge,
    # and (where systemd runs) neither unit is active.
    wants=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
        -path '*.wants/*' -name "$p.*" 2>/dev/null || true)
    [[ -z $wants ]] || die "$p: installing enabled a unit: $wants"
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$p.socket" "$p.service"; then
        die "$p: a unit runs after installing"
    fi
done
step_done install

for p in "${PACKAGES[@]}"; do
    var="$(echo "${p#vhost-device-}" | tr a-z A-Z)"
    log "smoke test of the installed /usr/bin/$p"
    env "VHOST_DEVICE_${var}_BIN=/usr/bin/$p" VHOST_DEVICE_QEMU_JSON_DIR=/usr/share/qemu/vhost-user \
        cargo test --locked -q -p "$p" --test smoke -- --nocapture 2>&1 | tee "$WORK/smoke-$p.log" \
        || die "smoke test of the installed $p"
    grep -q "testing /usr/bin/$p (from VHOST_DEVICE_${var}_BIN)" "$WORK/smoke-$p.log" \
        || die "the smoke test of $p did not run the installed binary"
    grep -q '^test result: ok. 2 passed' "$WORK/smoke-$p.log" || die "smoke test of $p"
done
step_done smoke

# Documentation=man:... is checked too, unless dpkg is configured to drop man pages.
man_check=yes
if grep -rqs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/; then
    man_check=no
    log "dpkg excludes /usr/share/man here: systemd-analyze verify --man=no"
fi
for p in "${PACKAGES[@]}"; do
    systemd-analyze verify --man="$man_check" "/usr/lib/systemd/system/$p.socket" \
        "/usr/lib/systemd/system/$p.service" >"$WORK/verify-$p.log" 2>&1 \
        || { cat "$WORK/verify-$p.log"; die "systemd-analyze verify $p"; }
    [[ ! -s "$WORK/verify-$p.log" ]] || { cat "$WORK/verify-$p.log"; die "systemd-analyze verify $p printed warnings"; }
done
log "systemd-analyze verify: both units clean"

step_done verify

# Upgrades keep an administrator's edit of the conffile. Two newer versions of the i2c
# package, repacked from the real one: the first ships the same /etc/default file (dpkg
# keeps the edited one without asking), the second changes it (with --force-confold dpkg
# keeps the edited one and puts the new one beside it as .dpkg-dist, as the README says).
CONF=/etc/default/vhost-device-i2c
EDIT='VHOST_DEVICE_I2C_ARGS="--simulate 24c02@0x50"  # edited by tests/packaging.sh'
source tests/deb-repack.sh
upgrade_deb() { # NAME VERSION [LINE to append to the packaged conffile, $CONF]
    repack_deb "$DEB_DIR/vhost-device-i2c_${VERSION}_amd64.deb" "$WORK/$1.deb" "$2" "${3:-}"
}
upgrade_to() { # DEB VERSION [dpkg options]
    local deb=$1 version=$2
    shift 2
    dpkg "$@" -i "$deb" </dev/null >"$WORK/upgrade.log" 2>&1 || { cat "$WORK/upgrade.log"; die "upgrade to $version"; }
    [[ $(dpkg-query -W -f='${Version}' vhost-device-i2c) == "$version" ]] || die "not upgraded to $version"
}
echo "$EDIT" >>"$CONF"
upgrade_deb up1 "${VERSION}+up1"
upgrade_to "$WORK/up1.deb" "${VERSION}+up1"
grep -qxF "$EDIT" "$CONF" || die "the upgrade dropped the edit of $CONF"
[[ ! -e $CONF.dpkg-dist && ! -e $CONF.dpkg-old ]] || die "an upgrade with an unchanged conffile left a .dpkg-dist/.dpkg-old"
upgrade_deb up2 "${VERSION}+up2" "# a line added by a newer version"
upgrade_to "$WORK/up2.deb" "${VERSION}+up2" --force-confold
grep -qxF "$EDIT" "$CONF" || die "--force-confold dropped the edit of $CONF"
grep -qxF "# a line added by a newer version" "$CONF.dpkg-dist" || die "the new conffile is not in $CONF.dpkg-dist"
log "upgrades: the edit of $CONF survived an unchanged and a changed packaged conffile"
step_done upgrade

# ---- 5. purge: nothing left --------------------------------------------------------------------
dpkg --purge "${PACKAGES[@]}" >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; die "dpkg --purge"; }
for p in "${PACKAGES[@]}"; do
    ! installed "$p" || die "$p still installed after purge"
    dpkg-query -W "$p" >/dev/null 2>&1 && die "dpkg still knows $p after purge"
    while read -r path; do
        if [[ -d "$path" && ! -L "$path" ]]; then
            # Shared directories may stay, but only if another package owns them.
            [[ -e "$path" ]] && ! dpkg -S "$path" >/dev/null 2>&1 && die "$p: directory $path left, owned by no package"
        elif [[ -e "$path" || -L "$path" ]]; then
            die "$p: $path left after purge"
        fi
    done <"$WORK/$p.installed"
    for left in /etc/default/"$p"{,.dpkg-old,.dpkg-dist,.dpkg-new} \
        /usr/share/qemu/vhost-user/50-"$p".json /var/lib/dpkg/info/"$p".* \
        /etc/systemd/system/*/"$p".* /var/lib/systemd/deb-systemd-helper-enabled/"$p".* \
        /var/lib/systemd/deb-systemd-helper-masked/"$p".*; do
        [[ -e "$left" || -L "$left" ]] && die "$p: $left left after purge"
    done
done
log "purge: no file, conffile, unit link or capability file left"
step_done purge

log "all checks passed in $(($(date +%s) - T_ALL)) s"
