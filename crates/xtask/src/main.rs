//! `cargo xtask`: development tasks; see the library documentation.

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask man [--out-dir DIR]\n\n\
    man    write the daemons' man pages (default: target/man) and print their paths";

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
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
