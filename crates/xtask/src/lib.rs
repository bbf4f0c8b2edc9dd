//! Development tasks for the workspace, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`).
//!
//! - `man [--out-dir DIR]`: writes the daemons' man pages (default `target/man`), generated
//!   from the same clap definitions the daemons parse their command lines with.
//! - `deb [--arch amd64|arm64]...`: builds the daemons' Debian packages into
//!   `<target dir>/debian` (see [`deb`]).

pub mod deb;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The output directory could not be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A page could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The page.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The commands that get a man page: each daemon's `Args`.
pub fn commands() -> Vec<clap::Command> {
    vec![
        vhost_device_i2c::args::Args::command(),
        vhost_device_gpio::args::Args::command(),
    ]
}

/// Writes `NAME.1` for every daemon into `out_dir` (created if missing) and returns the
/// paths written.
pub fn man_pages(out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    fs::create_dir_all(out_dir).map_err(|source| Error::CreateDir {
        path: out_dir.to_owned(),
        source,
    })?;
    commands()
        .into_iter()
        .map(|cmd| write_page(cmd, out_dir))
        .collect()
}

fn write_page(cmd: clap::Command, out_dir: &Path) -> Result<PathBuf, Error> {
    let man = clap_mangen::Man::new(cmd);
    let path = out_dir.join(man.get_filename());
    let write = || -> io::Result<()> {
        let mut out = BufWriter::new(File::create(&path)?);
        man.render(&mut out)?;
        out.flush()
    };
    write().map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The workspace's target directory: `$CARGO_TARGET_DIR` if set, else `target` at the
/// workspace root.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/xtask -> the workspace root.
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .join("target")
}
