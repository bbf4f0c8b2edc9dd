# shellcheck shell=bash
# repack_deb SRC OUT VERSION [LINE]: the package SRC rebuilt as OUT with Version VERSION
# (a "newer version" for upgrade tests) and, if LINE is given, LINE appended to its
# conffile (a packaged conffile that changed). Source it (tests/packaging.sh,
# tests/guest/run-backend-vm.sh).
repack_deb() {
    local src=$1 out=$2 version=$3 line=${4:-} dir conf
    dir=$(mktemp -d /tmp/vhost-device-repack.XXXXXX)
    dpkg-deb -R "$src" "$dir/pkg"
    sed -i "s/^Version: .*/Version: $version/" "$dir/pkg/DEBIAN/control"
    if [[ -n $line ]]; then
        conf=$(head -n 1 "$dir/pkg/DEBIAN/conffiles")
        echo "$line" >>"$dir/pkg$conf"
    fi
    dpkg-deb --root-owner-group -b "$dir/pkg" "$out" >/dev/null
    rm -rf "$dir"
}
