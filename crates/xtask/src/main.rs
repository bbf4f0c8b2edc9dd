//! `cargo xtask`: development tasks; see the library documentation.

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask man [--out-dir DIR]\n       \
    cargo xtask deb [--arch amd64|arm64]...\n\n\
    man    write the daemons' man pages (default: target/man) and print their paths\n\
    deb    build the daemons' Debian packages (default: amd64 and arm64) into\n       \
    $CARGO_TARGET_DIR/debian (default: target/debian) and print their paths;\n       \
    installs cargo-deb, the rustup target and (as root) the Debian build tools if missing";

fn run(args: &[String]) -> Result<(), Box<dyn Error>> {
    match args {
        [task, rest @ ..] if task == "man" => {
            let out_dir = match rest {
                [] => xtask::target_dir().join("man"),
                [flag, dir] if flag == "--out-dir" => PathBuf::from(dir),
                _ => return Err(format!("bad arguments for `man`\n{USAGE}").into()),
            };
            let mut stdout = std::io::stdout().lock();
            for page in xtask::man_pages(&out_dir)? {
                writeln!(stdout, "{}", page.display())?;
            }
            Ok(())
        }
        [task, rest @ ..] if task == "deb" => {
            let arches = parse_arches(rest)?;
            let debs = xtask::deb::build_packages(&arches)?;
            let mut stdout = std::io::stdout().lock();
            for deb in debs {
                writeln!(stdout, "{}", deb.display())?;
            }
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

/// `--arch NAME` options; none means every architecture.
fn parse_arches(args: &[String]) -> Result<Vec<xtask::deb::Arch>, Box<dyn Error>> {
    let mut arches = Vec::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let name = match (flag.as_str(), rest.next()) {
            ("--arch", Some(name)) => name,
            _ => return Err(format!("bad arguments for `deb`\n{USAGE}").into()),
        };
        let arch = xtask::deb::Arch::from_debian(name)
            .ok_or_else(|| format!("unknown architecture {name:?} (amd64 or arm64)"))?;
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    if arches.is_empty() {
        arches.extend(xtask::deb::Arch::ALL);
    }
    Ok(arches)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: "cannot run `cargo deb`: No such file or directory".
            let mut line = format!("xtask: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
