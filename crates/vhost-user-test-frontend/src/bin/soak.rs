//! Soak test of a daemon: many requests and many reconnects against simulated devices,
//! with the daemon's resident memory and open descriptors measured before and after.
//!
//! ```text
//! cargo run --release -p vhost-user-test-frontend --bin soak -- \
//!     --daemon target/release/vhost-device-i2c --kind i2c [--sockets 8]
//! cargo run --release -p vhost-user-test-frontend --bin soak -- \
//!     --daemon target/release/vhost-device-gpio --kind gpio [--sockets 8]
//! ```
//!
//! The daemon is started with a simulated device (`--simulate 24c02@0x50`, or `-l s8` per
//! socket) on `--sockets N` sockets (default 1, `-c N`) in a temporary directory; every
//! phase below runs on all of them at once, one guest per socket, the requests and
//! reconnects shared out between them (the request stream is the library's `load`
//! module's). After a warm-up (one connection with 10,000 requests,
//! 20 reconnects) the baseline is taken: `VmRSS` from `/proc/PID/status` and the entries of
//! `/proc/PID/fd`, read while a fresh connection on every socket is up and has answered a
//! request (a state
//! that is the same every time; a daemon between connections is mid-teardown for a while). Then one connection sends `--requests` requests (default 1,000,000) in
//! batches, and `--reconnects` connections (default 1,000) each do the handshake, one
//! request, and disconnect. Every answer is checked. The process fails (exit 1) if the
//! descriptors grew by more than `--fd-tolerance` (default 0) or the resident memory by
//! more than `--rss-tolerance-kib` (default 1024), and exit 2 on any other failure.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use vhost_user_test_frontend::binary::{BinaryError, DaemonBinary};
use vhost_user_test_frontend::daemon::{Daemon, LaunchError};
use vhost_user_test_frontend::load::{self, Guest, Kind, Usage};

/// Chains posted before one kick.
const BATCH: usize = 64;

#[derive(Debug)]
struct Options {
    daemon: PathBuf,
    kind: Kind,
    requests: u64,
    reconnects: u64,
    rss_tolerance_kib: u64,
    fd_tolerance: u64,
    sockets: usize,
}

#[derive(Debug, thiserror::Error)]
enum SoakError {
    #[error(
        "usage: soak --daemon PATH --kind i2c|gpio [--sockets N] [--requests N] [--reconnects N] [--rss-tolerance-kib N] [--fd-tolerance N] ({0})"
    )]
    Usage(String),
    #[error("cannot choose the daemon binary")]
    Binary(#[from] BinaryError),
    #[error("cannot start the daemon")]
    Launch(#[from] LaunchError),
    #[error("pid {0} out of range")]
    Pid(libc::pid_t),
    #[error("the daemon exited: {0}")]
    Exited(std::process::ExitStatus),
    #[error("load")]
    Load(#[from] load::LoadError),
    #[error("measuring the daemon with every socket connected")]
    Probe(#[from] load::BusyGuestsError),
    #[error("a load thread panicked")]
    Panicked,
}

fn parse_args() -> Result<Options, SoakError> {
    let mut args = std::env::args().skip(1);
    let mut daemon = None;
    let mut kind = None;
    let mut o = Options {
        daemon: PathBuf::new(),
        kind: Kind::I2c,
        requests: 1_000_000,
        reconnects: 1_000,
        rss_tolerance_kib: 1024,
        fd_tolerance: 0,
        sockets: 1,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| SoakError::Usage(format!("{flag} needs a value")))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| SoakError::Usage(format!("{flag} {value}: {e}")))
        };
        match flag.as_str() {
            "--daemon" => daemon = Some(PathBuf::from(&value)),
            "--kind" => {
                kind = Some(
                    Kind::parse(&value)
                        .ok_or_else(|| SoakError::Usage(format!("unknown kind {value}")))?,
                )
            }
            "--sockets" => {
                o.sockets = usize::try_from(number()?)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| SoakError::Usage(format!("--sockets {value}")))?
            }
            "--requests" => o.requests = number()?,
            "--reconnects" => o.reconnects = number()?,
            "--rss-tolerance-kib" => o.rss_tolerance_kib = number()?,
            "--fd-tolerance" => o.fd_tolerance = number()?,
            other => return Err(SoakError::Usage(format!("unknown option {other}"))),
        }
    }
    o.daemon = daemon.ok_or_else(|| SoakError::Usage("--daemon is required".into()))?;
    o.kind = kind.ok_or_else(|| SoakError::Usage("--kind is required".into()))?;
    Ok(o)
}

/// The daemon under test, started through the shared launcher (so `VHOST_DEVICE_RUNNER`
/// and `VHOST_DEVICE_EXTRA_ARGS` apply as in every test); killed when dropped.
struct Soaked {
    daemon: Daemon,
    pid: u32,
}

impl Soaked {
    fn start(o: &Options) -> Result<Self, SoakError> {
        let device = match o.kind {
            Kind::I2c => vec!["--simulate".to_owned(), "24c02@0x50".to_owned()],
            Kind::Gpio => vec!["-l".to_owned(), vec!["s8"; o.sockets].join(":")],
        };
        let device: Vec<&str> = device.iter().map(String::as_str).collect();
        let daemon = DaemonBinary::given(o.daemon.clone(), "--daemon")?
            .launch()
            .args(&["-c", &o.sockets.to_string()])
            .args(&device)
            .sockets(o.sockets)
            .rust_log(Some("warn"))
            .try_start()?;
        let pid = u32::try_from(daemon.pid()).map_err(|_| SoakError::Pid(daemon.pid()))?;
        Ok(Soaked { daemon, pid })
    }

    fn sockets(&self) -> &[PathBuf] {
        self.daemon.sockets()
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn index_of(&self, socket: &Path) -> usize {
        self.sockets().iter().position(|s| s == socket).unwrap_or(0)
    }

    fn alive(&mut self) -> Result<(), SoakError> {
        match self.daemon.exited() {
            Some(status) => Err(SoakError::Exited(status)),
            None => Ok(()),
        }
    }
}

/// Usage in a state that is the same every time: a fresh connection on every socket,
/// handshake done, one request answered. (The serve loop runs one connection per socket at
/// a time, so the previous connections are torn down by then; an idle daemon is
/// mid-teardown for a while.)
fn probe(d: &Soaked, kind: Kind) -> Result<Usage, SoakError> {
    Ok(load::usage_all_connected(d.pid(), d.sockets(), kind)?)
}

/// Runs `work(guest_index, socket)` on every socket at once, one thread each.
fn on_every_socket(
    d: &Soaked,
    work: impl Fn(&Path) -> Result<(), SoakError> + Sync,
) -> Result<(), SoakError> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = d
            .sockets()
            .iter()
            .map(|s| scope.spawn(|| work(s)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or(Err(SoakError::Panicked)))
            .collect::<Result<Vec<()>, _>>()
            .map(drop)
    })
}

/// `total` shared out between `n` guests (the first ones take the remainder).
fn share(total: u64, n: usize, socket_index: usize) -> u64 {
    let n = std::num::NonZeroU64::new(u64::try_from(n).unwrap_or(1))
        .unwrap_or(std::num::NonZeroU64::MIN);
    let i = u64::try_from(socket_index).unwrap_or(0);
    (total / n).saturating_add(u64::from(i < total % n))
}

/// Sends `count` requests on one connection per socket, `count` shared out between them.
fn requests(d: &Soaked, kind: Kind, count: u64) -> Result<(), SoakError> {
    on_every_socket(d, |s| {
        let mut g = Guest::connect(s, kind)?;
        g.requests(0, share(count, d.sockets().len(), d.index_of(s)), BATCH)?;
        g.disconnect();
        Ok(())
    })
}

/// `count` connections shared out between the sockets, each doing the handshake and two
/// requests.
fn reconnects(d: &mut Soaked, kind: Kind, count: u64) -> Result<(), SoakError> {
    let per_round = u64::try_from(d.sockets().len()).unwrap_or(1).max(1);
    let mut done = 0;
    while done < count {
        let this_round = count
            .saturating_sub(done)
            .min(per_round.saturating_mul(100));
        on_every_socket(d, |s| {
            for _ in 0..share(this_round, d.sockets().len(), d.index_of(s)) {
                let mut g = Guest::connect(s, kind)?;
                g.requests(0, 2, 2)?;
                g.disconnect();
            }
            Ok(())
        })?;
        done = done.saturating_add(this_round);
        d.alive()?;
    }
    Ok(())
}

fn soak(o: &Options) -> Result<bool, SoakError> {
    let mut d = Soaked::start(o)?;
    let pid = d.pid();
    let started = Instant::now();
    // Warm-up: whatever is allocated once (thread stacks, allocator arenas, lazy statics).
    let first = probe(&d, o.kind)?;
    requests(&d, o.kind, 10_000)?;
    reconnects(&mut d, o.kind, 20)?;
    let before = probe(&d, o.kind)?;

    let t = Instant::now();
    requests(&d, o.kind, o.requests)?;
    let request_time = t.elapsed();
    d.alive()?;
    let after_requests = probe(&d, o.kind)?;

    let t = Instant::now();
    reconnects(&mut d, o.kind, o.reconnects)?;
    let reconnect_time = t.elapsed();
    d.alive()?;
    let after = probe(&d, o.kind)?;

    let name = o.daemon.file_name().map(Path::new).unwrap_or(&o.daemon);
    println!(
        "{} (pid {pid}, {} socket(s), one busy guest each), {:?} in all",
        name.display(),
        o.sockets,
        started.elapsed()
    );
    println!("measured with a fresh connection on every socket that answered a request");
    println!("                        VmRSS (KiB)   open fds");
    let row = |label: &str, u: Usage| println!("{label:<24}{:>11}{:>11}", u.rss_kib, u.fds);
    row("first connection", first);
    row("before (after warm-up)", before);
    row(&format!("after {} requests", o.requests), after_requests);
    row(&format!("after {} reconnects", o.reconnects), after);
    println!(
        "{} requests in {:.1} s ({:.0}/s); {} reconnects in {:.1} s",
        o.requests,
        request_time.as_secs_f64(),
        o.requests as f64 / request_time.as_secs_f64().max(1e-9),
        o.reconnects,
        reconnect_time.as_secs_f64(),
    );
    let Growth {
        rss_kib: rss_growth,
        fds: fd_growth,
        flat,
    } = growth(before, after, o.rss_tolerance_kib, o.fd_tolerance);
    println!(
        "growth: {rss_growth} KiB (tolerance {}), {fd_growth} fds (tolerance {}): {}",
        o.rss_tolerance_kib,
        o.fd_tolerance,
        if flat { "flat" } else { "GROWING" }
    );
    if fd_growth > 0 {
        println!("open descriptors now (no connection):");
        for (fd, target) in fd_targets(pid) {
            println!("  {fd:>4} -> {target}");
        }
    }
    Ok(flat)
}

/// What grew between two measurements, and whether within the tolerances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Growth {
    rss_kib: u64,
    fds: u64,
    flat: bool,
}

/// The verdict: flat if resident memory grew by at most `rss_tolerance_kib` and the open
/// descriptors by at most `fd_tolerance` (shrinking is flat).
fn growth(before: Usage, after: Usage, rss_tolerance_kib: u64, fd_tolerance: u64) -> Growth {
    let rss_kib = after.rss_kib.saturating_sub(before.rss_kib);
    let fds = after.fds.saturating_sub(before.fds);
    Growth {
        rss_kib,
        fds,
        flat: rss_kib <= rss_tolerance_kib && fds <= fd_tolerance,
    }
}

/// The exit status: 0 flat, 1 growing, 2 any other failure.
fn status(result: &Result<bool, SoakError>) -> u8 {
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(_) => 2,
    }
}

/// `/proc/PID/fd` as (fd, link target), sorted.
fn fd_targets(pid: u32) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    v.sort();
    v
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|o| soak(&o));
    if let Err(e) = &result {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        eprintln!("soak: {msg}");
    }
    ExitCode::from(status(&result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(rss_kib: u64, fds: u64) -> Usage {
        Usage {
            rss_kib,
            fds,
            threads: 4,
        }
    }

    #[test]
    fn growth_beyond_a_tolerance_fails_the_soak_with_status_1() {
        let before = usage(1000, 20);
        // Flat at the edge of both tolerances, and when shrinking.
        let g = growth(before, usage(2024, 20), 1024, 0);
        assert_eq!((g.rss_kib, g.fds, g.flat), (1024, 0, true));
        assert!(growth(before, usage(900, 19), 0, 0).flat);
        // One KiB or one descriptor over: growing.
        assert!(!growth(before, usage(2025, 20), 1024, 0).flat);
        let g = growth(before, usage(1000, 21), 1024, 0);
        assert_eq!((g.fds, g.flat), (1, false));
        assert!(growth(before, usage(1000, 21), 1024, 1).flat);
        assert_eq!(status(&Ok(true)), 0);
        assert_eq!(status(&Ok(false)), 1);
        assert_eq!(status(&Err(SoakError::Panicked)), 2);
    }
}
