//! Many busy guests at once on a running daemon: one frontend thread per socket, all
//! sending checked requests at the same time (see the library's `load` module), then a
//! table of each guest's throughput.
//!
//! ```text
//! vhost-device-i2c -s /tmp/vi2c.sock -c 8 --simulate 24c02@0x50 &
//! cargo run --release -p vhost-user-test-frontend --bin load -- \
//!     --kind i2c --socket /tmp/vi2c.sock --count 8 --seconds 5
//! ```
//!
//! `--socket BASE --count N` loads `BASE0` ... `BASE{N-1}` (the daemons' `-s BASE -c N`);
//! `--batch B` chains per kick (default 8), `--reconnect-every K` reconnects after every K
//! batches (default 0: never), `--seconds S` (default 5). Exits 0 when every answer was
//! right, 1 on a wrong answer or a failed connection, 2 on a usage error.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vhost_user_test_frontend::load::{self, Kind, LoadPlan};

const USAGE: &str = "usage: load --kind i2c|gpio --socket BASE [--count N] [--seconds S] [--batch B] [--reconnect-every K]";

fn parse() -> Result<(Vec<PathBuf>, LoadPlan), String> {
    let mut args = std::env::args().skip(1);
    let mut kind = None;
    let mut base = None;
    let mut count = 1usize;
    let mut plan = LoadPlan {
        kind: Kind::I2c,
        batch: 8,
        duration: Duration::from_secs(5),
        reconnect_every: 0,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--kind" => kind = Some(Kind::parse(&value).ok_or(format!("unknown kind {value}"))?),
            "--socket" => base = Some(value.clone()),
            "--count" => count = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--seconds" => plan.duration = Duration::from_secs(number()?),
            "--batch" => plan.batch = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--reconnect-every" => plan.reconnect_every = number()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    plan.kind = kind.ok_or("--kind is required")?;
    let base = base.ok_or("--socket is required")?;
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    let sockets = (0..count)
        .map(|i| PathBuf::from(format!("{base}{i}")))
        .collect();
    Ok((sockets, plan))
}

fn main() -> ExitCode {
    let (sockets, plan) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match load::concurrent(&sockets, plan) {
        Ok(guests) => {
            println!(
                "{} guests, batch {}, {:?} each; every answer checked",
                guests.len(),
                plan.batch,
                plan.duration
            );
            println!(
                "{:<40}{:>12}{:>14}{:>13}",
                "socket", "requests", "requests/s", "connections"
            );
            let mut total = 0.0;
            for g in &guests {
                total += g.rate();
                println!(
                    "{:<40}{:>12}{:>14.0}{:>13}",
                    g.socket.display(),
                    g.requests,
                    g.rate(),
                    g.connections
                );
            }
            println!("total {total:.0} requests/s");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {}", load::error_chain(&e));
            ExitCode::from(1)
        }
    }
}
