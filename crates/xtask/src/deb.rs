//! `cargo xtask deb`: the Debian packages of both daemons for amd64 and arm64, built by
//! cargo-deb from `[package.metadata.deb]` in each daemon's Cargo.toml, written to
//! `<target dir>/debian/<package>_<version>_<arch>.deb` (`$CARGO_TARGET_DIR/debian` when
//! that is set, else `target/debian`).
//!
//! Before building it installs what is missing, as tests/run.sh does: cargo-deb
//! [`CARGO_DEB_VERSION`] (`cargo install --locked`), the rustup target, and the Debian
//! packages of [`Arch::apt_packages`] (only as root; otherwise it says what to install).
//!
//! Its stdout carries the package paths and nothing else (scripts read it): every
//! sub-command's stdout (apt-get, rustup, cargo install, cargo build, gzip, cargo deb) goes
//! to stderr (tests/deb_stdout.rs runs stand-ins that print on stdout).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

/// The cargo-deb release the packaging is written for (`cargo install` pins it).
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// The Debian revision of every package: `<crate version>-<revision>`.
pub const DEB_REVISION: &str = "1";
/// The packaged daemons: crate, package and binary share the name.
pub const PACKAGES: [&str; 2] = ["vhost-device-i2c", "vhost-device-gpio"];

/// A Debian architecture the packages are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit Arm, cross-built with Debian's gcc-aarch64-linux-gnu.
    Arm64,
}

impl Arch {
    /// Every architecture, in build order.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The Debian name (the package's Architecture field).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The `[package.metadata.deb.variants.*]` section used, if any.
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Arch::Amd64 => None,
            // Its Depends cannot come from dpkg-shlibdeps: see the crates' Cargo.toml.
            Arch::Arm64 => Some("arm64"),
        }
    }

    /// The Debian packages a build needs: dpkg-shlibdeps, and for arm64 the cross linker
    /// (which brings the cross binutils cargo-deb strips with) and the cross libc.
    pub fn apt_packages(self) -> &'static [&'static str] {
        match self {
            Arch::Amd64 => &["dpkg-dev"],
            Arch::Arm64 => &["dpkg-dev", "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        }
    }

    /// Parses a Debian architecture name.
    pub fn from_debian(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.debian() == name)
    }
}

/// Why `cargo xtask deb` failed.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// Our stderr could not be duplicated for a sub-command's stdout.
    #[error("cannot duplicate stderr for a sub-command's output")]
    Stderr(#[source] io::Error),
    /// A command could not be started.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// Debian packages are missing and this process may not install them.
    #[error(
        "missing Debian packages; as root `cargo xtask deb` installs them, else run: apt-get install {packages}"
    )]
    MissingPackages {
        /// The packages, space-separated.
        packages: String,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A changelog's latest entry is not this package at this version.
    #[error(
        "{}: the latest entry is `{found}`, expected `{expected}`: add a changelog entry",
        path.display()
    )]
    Changelog {
        /// The changelog.
        path: PathBuf,
        /// `name (version)` of its first line.
        found: String,
        /// `name (version)` of the package being built.
        expected: String,
    },
    /// The man pages could not be written.
    #[error("cannot write the man pages")]
    Man(#[source] crate::Error),
    /// A release binary carries the sandbox test trigger (built with the
    /// `sandbox-test-trigger` feature, which only the daemons' dev-dependencies enable).
    #[error(
        "{} holds the sandbox test trigger ({TEST_TRIGGER}): a test build, not for a package",
        path.display()
    )]
    TestTrigger {
        /// The binary.
        path: PathBuf,
    },
    /// cargo-deb did not report a package file it wrote.
    #[error("`{command}` reported no .deb file (stdout: {stdout:?})")]
    NoPackage {
        /// The command line.
        command: String,
        /// What it printed.
        stdout: String,
    },
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest).to_owned()
}

/// Where the packages go: `<target dir>/debian`.
pub fn output_dir() -> PathBuf {
    crate::target_dir().join("debian")
}

/// The Debian version of every package: `<crate version>-<revision>`.
pub fn deb_version() -> String {
    format!("{}-{DEB_REVISION}", env!("CARGO_PKG_VERSION"))
}

/// `name (version)` of a Debian changelog's first line, e.g. `vhost-device-i2c (0.1.0-1)`.
pub fn changelog_head(text: &str) -> Option<&str> {
    let first = text.lines().next()?;
    let end = first.find(')')?;
    first.get(..=end)
}

/// Checks that each package's `debian/changelog` starts with an entry for the version
/// being built (Debian requires the changelog to describe the package's version).
pub fn check_changelogs() -> Result<(), DebError> {
    for package in PACKAGES {
        let path = workspace_root()
            .join("crates")
            .join(package)
            .join("debian/changelog");
        let text = fs::read_to_string(&path).map_err(|source| DebError::Read {
            path: path.clone(),
            source,
        })?;
        let expected = format!("{package} ({})", deb_version());
        let found = changelog_head(&text).unwrap_or_default();
        if found != expected {
            return Err(DebError::Changelog {
                found: found.to_owned(),
                path,
                expected,
            });
        }
    }
    Ok(())
}

fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s
}

/// A handle on this process's stderr for a child's stdout: `cargo xtask deb` prints only
/// the package paths on stdout (scripts read them), so sub-commands' chatter goes to stderr.
fn stderr_for_child() -> Result<Stdio, DebError> {
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .map_err(DebError::Stderr)
}

/// Runs `cmd` with its stdout sent to our stderr and stderr inherited; fails unless it
/// exits 0.
fn run(cmd: &mut Command) -> Result<(), DebError> {
    let command = command_line(cmd);
    eprintln!("xtask deb: {command}");
    let started = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(stderr_for_child()?)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|source| DebError::Spawn {
            command: command.clone(),
            source,
        })?;
    // The times of installs and builds, for the README's table of what a cold run costs.
    eprintln!("xtask deb: {command}: {} s", started.elapsed().as_secs());
    if status.success() {
        Ok(())
    } else {
        Err(DebError::Failed { command, status })
    }
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it cannot start or fails.
fn query(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Installs the Debian packages `arches` need that dpkg does not list as installed.
fn ensure_apt_packages(arches: &[Arch]) -> Result<(), DebError> {
    let mut missing: Vec<&str> = Vec::new();
    for package in arches.iter().flat_map(|a| a.apt_packages()) {
        let status = query(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]));
        if status.as_deref() != Some("install ok installed") && !missing.contains(package) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(DebError::MissingPackages {
            packages: missing.join(" "),
        });
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    run(install.args(&missing))
}

/// Adds the Rust standard library for `arch` (`rustup target add`) if the toolchain lacks it.
fn ensure_rust_target(arch: Arch) -> Result<(), DebError> {
    let sysroot = query(
        Command::new("rustc")
            .current_dir(workspace_root())
            .args(["--print", "sysroot"]),
    );
    let installed = sysroot.is_some_and(|s| {
        Path::new(s.trim())
            .join("lib/rustlib")
            .join(arch.triple())
            .is_dir()
    });
    if installed {
        return Ok(());
    }
    run(Command::new("rustup")
        .current_dir(workspace_root())
        .args(["target", "add", arch.triple()]))
}

/// Installs cargo-deb [`CARGO_DEB_VERSION`] unless `cargo deb --version` reports it.
fn ensure_cargo_deb() -> Result<(), DebError> {
    let version = query(cargo().args(["deb", "--version"]));
    if version.is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_DEB_VERSION)) {
        return Ok(());
    }
    let exact = format!("={CARGO_DEB_VERSION}");
    // Built in a temporary directory of cargo's, not in the workspace's target directory.
    run(cargo().env_remove("CARGO_TARGET_DIR").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        &exact,
    ]))
}

/// The environment variable the sandbox test trigger reads (vhost-device-common's
/// `sandbox.rs`, `trigger::ENV`): a binary built with the trigger holds this string.
pub const TEST_TRIGGER: &str = "VHOST_DEVICE_SANDBOX_TEST_TRIGGER";

/// Whether `binary` (its bytes) holds [`TEST_TRIGGER`].
pub fn holds_test_trigger(binary: &[u8]) -> bool {
    binary
        .windows(TEST_TRIGGER.len())
        .any(|w| w == TEST_TRIGGER.as_bytes())
}

/// Refuses a release binary of `package` for `arch` that holds the sandbox test trigger
/// (a `cargo test --release` builds the daemons with it into the same directory).
fn check_no_test_trigger(package: &str, arch: Arch) -> Result<(), DebError> {
    let path = crate::target_dir()
        .join(arch.triple())
        .join("release")
        .join(package);
    let bytes = fs::read(&path).map_err(|source| DebError::Read {
        path: path.clone(),
        source,
    })?;
    if holds_test_trigger(&bytes) {
        return Err(DebError::TestTrigger { path });
    }
    Ok(())
}

/// Release-builds both daemons for `arch` and writes their gzipped man pages where the
/// package metadata expects them (`<target dir>/<triple>/release/man`).
fn build(arch: Arch) -> Result<(), DebError> {
    let mut build = cargo();
    build.current_dir(workspace_root()).args([
        "build",
        "--release",
        "--locked",
        "--target",
        arch.triple(),
    ]);
    for package in PACKAGES {
        build.args(["-p", package]);
    }
    run(&mut build)?;
    let man_dir = crate::target_dir()
        .join(arch.triple())
        .join("release")
        .join("man");
    let pages = crate::man_pages(&man_dir).map_err(DebError::Man)?;
    // Debian policy: man pages compressed with `gzip -9n` (no name or timestamp inside).
    let mut gzip = Command::new("gzip");
    gzip.args(["-9nf"]).args(&pages);
    run(&mut gzip)
}

/// Packages `package` for `arch` from the build of [`build`]; returns the .deb's path.
fn package_deb(package: &str, arch: Arch, out_dir: &Path) -> Result<PathBuf, DebError> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["deb", "--no-build", "--locked", "-p", package])
        .args(["--target", arch.triple(), "--deb-revision", DEB_REVISION])
        .arg("--output")
        .arg(out_dir);
    if let Some(variant) = arch.variant() {
        cmd.args(["--variant", variant]);
    }
    let command = command_line(&cmd);
    eprintln!("xtask deb: {command}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| DebError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(DebError::Failed {
            command,
            status: out.status,
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // cargo-deb's own stdout is chatter too, apart from the path it wrote: to stderr.
    eprint!("{stdout}");
    let written = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .filter(|p| p.is_file() && p.extension() == Some(OsStr::new("deb")));
    written.ok_or(DebError::NoPackage { command, stdout })
}

/// Builds every package for each of `arches`, installing missing tools first; returns the
/// .deb files written.
pub fn build_packages(arches: &[Arch]) -> Result<Vec<PathBuf>, DebError> {
    check_changelogs()?;
    ensure_apt_packages(arches)?;
    for &arch in arches {
        ensure_rust_target(arch)?;
    }
    ensure_cargo_deb()?;
    let out_dir = output_dir();
    let mut written = Vec::new();
    for &arch in arches {
        build(arch)?;
        for name in PACKAGES {
            check_no_test_trigger(name, arch)?;
            written.push(package_deb(name, arch, &out_dir)?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_heads() {
        let text = "vhost-device-i2c (0.1.0-1) unstable; urgency=medium\n\n  * x\n";
        assert_eq!(changelog_head(text), Some("vhost-device-i2c (0.1.0-1)"));
        assert_eq!(changelog_head("no version here\n"), None);
        assert_eq!(changelog_head(""), None);
    }

    #[test]
    fn checked_in_changelogs_describe_this_version() {
        check_changelogs().unwrap();
    }

    #[test]
    fn the_test_trigger_is_found_and_named_as_the_sandbox_names_it() {
        assert!(holds_test_trigger(
            b"\0\0VHOST_DEVICE_SANDBOX_TEST_TRIGGER\0"
        ));
        assert!(!holds_test_trigger(b"VHOST_DEVICE_SANDBOX_TEST_TRIGGE"));
        assert!(!holds_test_trigger(b""));
        // The name this check looks for is the one the trigger reads.
        let sandbox = workspace_root().join("crates/vhost-device-common/src/sandbox.rs");
        let text = fs::read_to_string(&sandbox).unwrap();
        assert!(
            text.contains(&format!("pub const ENV: &str = \"{TEST_TRIGGER}\";")),
            "{}: the trigger's variable is no longer {TEST_TRIGGER}",
            sandbox.display()
        );
    }

    #[test]
    fn arches() {
        assert_eq!(Arch::from_debian("arm64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_debian("amd64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_debian("armhf"), None);
        assert!(
            Arch::Arm64
                .apt_packages()
                .contains(&"gcc-aarch64-linux-gnu")
        );
    }
}
