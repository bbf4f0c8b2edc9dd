//! `cargo xtask deb` prints the package paths on stdout and nothing else (tests/packaging.sh
//! reads them), even when it installs tools first: here every tool it runs is a stand-in
//! that prints on stdout (apt-get's "Get:1 ..." lines broke packaging.sh once), and stdout
//! must still be exactly the four packages. Nothing on the machine is installed or built.
// The whole file is test code: its helpers may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What every stand-in prints on stdout: it must reach stderr, never stdout.
const NOISE: &str = "stand-in stdout noise";

/// Stand-ins of the tools `cargo xtask deb` runs. Each logs its command line to `$LOG` and
/// prints `NOISE` on stdout.
const STAND_INS: &[(&str, &str)] = &[
    (
        "cargo",
        r#"echo "cargo $*" >>"$LOG"; echo "stand-in stdout noise from cargo $1"
case $1 in
build)
    # The release binaries, with $STAND_IN_BINARY as their content.
    triple=; pkgs=
    while [ $# -gt 0 ]; do
        case $1 in
        -p) pkgs="$pkgs $2"; shift ;;
        --target) triple=$2; shift ;;
        esac
        shift
    done
    mkdir -p "$CARGO_TARGET_DIR/$triple/release" || exit 3
    for pkg in $pkgs; do
        printf '%s' "$STAND_IN_BINARY" >"$CARGO_TARGET_DIR/$triple/release/$pkg" || exit 3
    done ;;
deb)
    [ "$2" = --version ] && exit 1 # not installed: xtask runs cargo install
    pkg=; triple=; out=
    while [ $# -gt 0 ]; do
        case $1 in
        -p) pkg=$2; shift ;;
        --target) triple=$2; shift ;;
        --output) out=$2; shift ;;
        esac
        shift
    done
    case $triple in x86_64-*) arch=amd64 ;; aarch64-*) arch=arm64 ;; *) exit 2 ;; esac
    mkdir -p "$out" && : >"$out/${pkg}_${DEB_VERSION}_$arch.deb" || exit 3
    echo "$out/${pkg}_${DEB_VERSION}_$arch.deb" ;;
esac"#,
    ),
    (
        "rustc",
        // A sysroot without the target: xtask runs rustup target add.
        r#"echo "rustc $*" >>"$LOG"; [ "$1 $2" = "--print sysroot" ] && echo "$STAND_IN_DIR/sysroot""#,
    ),
    (
        "rustup",
        r#"echo "rustup $*" >>"$LOG"; echo "stand-in stdout noise: info: downloading component""#,
    ),
    (
        "dpkg-query",
        r#"echo "dpkg-query $*" >>"$LOG"; [ "$APT_INSTALLED" = yes ] && printf 'install ok installed'; [ "$APT_INSTALLED" = yes ]"#,
    ),
    (
        "apt-get",
        r#"echo "apt-get $*" >>"$LOG"; echo "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB] (stand-in stdout noise)""#,
    ),
    (
        "gzip",
        r#"echo "gzip $*" >>"$LOG"; echo "stand-in stdout noise from gzip""#,
    ),
];

fn deb_version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

/// Runs `xtask deb` with the stand-ins first on PATH; returns (stdout, stderr, log, target).
fn run_with_stand_ins(name: &str, apt_installed: bool) -> (String, String, String, PathBuf) {
    let (out, log, target) = run_xtask_deb(name, apt_installed, "a release binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "xtask deb failed ({}); stdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr, log, target)
}

/// Runs `xtask deb` with the stand-ins first on PATH, the stand-in build writing `binary`
/// as each daemon's release binary; returns its output, the stand-ins' log and the target
/// directory.
fn run_xtask_deb(
    name: &str,
    apt_installed: bool,
    binary: &str,
) -> (std::process::Output, String, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for (tool, body) in STAND_INS {
        let path = bin.join(tool);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = dir.join("log");
    let target = dir.join("target");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deb")
        .env("PATH", path)
        .env("CARGO", bin.join("cargo"))
        .env("CARGO_TARGET_DIR", &target)
        .env("LOG", &log)
        .env("STAND_IN_DIR", &dir)
        .env("DEB_VERSION", deb_version())
        .env("APT_INSTALLED", if apt_installed { "yes" } else { "no" })
        .env("STAND_IN_BINARY", binary)
        .output()
        .unwrap();
    let log = fs::read_to_string(&log).unwrap_or_default();
    (out, log, target)
}

/// stdout is exactly the four packages, in build order, and the stand-ins' stdout went to
/// stderr (so it was not swallowed either).
fn check_only_paths_on_stdout(stdout: &str, stderr: &str, target: &Path) {
    let expected: Vec<String> = ["amd64", "arm64"]
        .iter()
        .flat_map(|arch| {
            ["vhost-device-i2c", "vhost-device-gpio"].map(|p| {
                target
                    .join("debian")
                    .join(format!("{p}_{}_{arch}.deb", deb_version()))
                    .display()
                    .to_string()
            })
        })
        .collect();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines, expected,
        "stdout must be the package paths and nothing else; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(NOISE),
        "the sub-commands' stdout did not reach stderr:\n{stderr}"
    );
}

fn ran(log: &str, prefix: &str) -> usize {
    log.lines().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn deb_prints_only_package_paths_while_installing_cargo_deb_and_the_target() {
    let (stdout, stderr, log, target) = run_with_stand_ins("deb-stdout", true);
    check_only_paths_on_stdout(&stdout, &stderr, &target);
    // Every kind of sub-command ran, so each one's stdout was tested.
    assert_eq!(ran(&log, "apt-get"), 0, "{log}");
    assert_eq!(ran(&log, "rustup target add"), 2, "{log}");
    assert_eq!(ran(&log, "cargo install cargo-deb"), 1, "{log}");
    assert_eq!(ran(&log, "cargo build --release"), 2, "{log}");
    assert_eq!(ran(&log, "gzip"), 2, "{log}");
    assert_eq!(ran(&log, "cargo deb --no-build"), 4, "{log}");
}

#[test]
fn deb_prints_only_package_paths_while_installing_debian_packages() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Not eprintln!, which libtest captures: the skip must show in a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP deb_prints_only_package_paths_while_installing_debian_packages: needs root \
             (xtask deb runs apt-get only as root)"
        );
        return;
    }
    let (stdout, stderr, log, target) = run_with_stand_ins("deb-stdout-apt", false);
    check_only_paths_on_stdout(&stdout, &stderr, &target);
    assert_eq!(ran(&log, "apt-get update"), 1, "{log}");
    assert!(
        log.lines().any(|l| l.starts_with("apt-get install")
            && l.contains("gcc-aarch64-linux-gnu")
            && l.contains("libc6-dev-arm64-cross")),
        "{log}"
    );
    assert_eq!(ran(&log, "cargo deb --no-build"), 4, "{log}");
}

/// A release binary built with the sandbox test trigger (as `cargo test --release` would
/// leave it) is refused before anything is packaged.
#[test]
fn deb_refuses_a_release_binary_with_the_sandbox_test_trigger() {
    let (out, log, target) = run_xtask_deb(
        "deb-trigger",
        true,
        "code ... VHOST_DEVICE_SANDBOX_TEST_TRIGGER ... code",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds the sandbox test trigger"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no package path: {:?}", out.stdout);
    assert_eq!(ran(&log, "cargo deb --no-build"), 0, "{log}");
    assert!(!target.join("debian").exists());
}
