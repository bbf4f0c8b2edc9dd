//! Soak test of a daemon: many requests and many reconnects against simulated devices,
//! with the daemon's resident memory and open descriptors measured before and after.
//!
//! ```text
//! cargo run --release -p vhost-user-test-frontend --bin soak -- \
//!     --daemon target/release/vhost-device-i2c --kind i2c
//! cargo run --release -p vhost-user-test-frontend --bin soak -- \
//!     --daemon target/release/vhost-device-gpio --kind gpio
//! ```
//!
//! The daemon is started with a simulated device (`--simulate 24c02@0x50` or `-l s8`) on a
//! socket in a temporary directory. After a warm-up (one connection with 10,000 requests,
//! 20 reconnects) the baseline is taken: `VmRSS` from `/proc/PID/status` and the entries of
//! `/proc/PID/fd`, read while a fresh connection is up and has answered a request (a state
//! that is the same every time; a daemon between connections is mid-teardown for a while). Then one connection sends `--requests` requests (default 1,000,000) in
//! batches, and `--reconnects` connections (default 1,000) each do the handshake, one
//! request, and disconnect. Every answer is checked. The process fails (exit 1) if the
//! descriptors grew by more than `--fd-tolerance` (default 0) or the resident memory by
//! more than `--rss-tolerance-kib` (default 1024), and exit 2 on any other failure.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend};
use vmm_sys_util::tempdir::TempDir;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Chains posted before one kick.
const BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    I2c,
    Gpio,
}

#[derive(Debug)]
struct Options {
    daemon: PathBuf,
    kind: Kind,
    requests: u64,
    reconnects: u64,
    rss_tolerance_kib: u64,
    fd_tolerance: u64,
}

#[derive(Debug, thiserror::Error)]
enum SoakError {
    #[error(
        "usage: soak --daemon PATH --kind i2c|gpio [--requests N] [--reconnects N] [--rss-tolerance-kib N] [--fd-tolerance N] ({0})"
    )]
    Usage(String),
    #[error("cannot start {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read /proc/{pid}")]
    Proc {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("no VmRSS line in /proc/{0}/status")]
    NoRss(u32),
    #[error("the daemon exited: {0}")]
    Exited(std::process::ExitStatus),
    #[error("frontend")]
    Frontend(#[from] vhost_user_test_frontend::Error),
    #[error("request {index}: {what}")]
    BadAnswer { index: u64, what: String },
    #[error("cannot create the socket directory")]
    TempDir(#[source] vmm_sys_util::errno::Error),
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
                kind = Some(match value.as_str() {
                    "i2c" => Kind::I2c,
                    "gpio" => Kind::Gpio,
                    other => return Err(SoakError::Usage(format!("unknown kind {other}"))),
                })
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

/// The daemon under test; killed when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    fn start(o: &Options) -> Result<Self, SoakError> {
        let dir = TempDir::new_with_prefix("/tmp/soak-").map_err(SoakError::TempDir)?;
        let base = dir.as_path().join("dev.sock");
        let device: &[&str] = match o.kind {
            Kind::I2c => &["--simulate", "24c02@0x50"],
            Kind::Gpio => &["-l", "s8"],
        };
        let child = Command::new(&o.daemon)
            .arg("-s")
            .arg(&base)
            .args(device)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| SoakError::Spawn {
                path: o.daemon.clone(),
                source,
            })?;
        let mut socket = base.into_os_string();
        socket.push("0");
        Ok(Daemon {
            child,
            socket: socket.into(),
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> Result<(), SoakError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(SoakError::Exited(status)),
            _ => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory (KiB) and open descriptors of `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    rss_kib: u64,
    fds: u64,
}

fn usage(pid: u32) -> Result<Usage, SoakError> {
    let proc_err = |source| SoakError::Proc { pid, source };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(proc_err)?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(SoakError::NoRss(pid))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(proc_err)?
        .count();
    Ok(Usage {
        rss_kib,
        fds: u64::try_from(fds).unwrap_or(u64::MAX),
    })
}

/// Usage in a state that is the same every time: a fresh connection, handshake done, one
/// request answered. (The serve loop runs one connection per socket at a time, so the
/// previous connection is torn down by then; an idle daemon is mid-teardown for a while.)
fn probe(d: &Daemon, kind: Kind) -> Result<Usage, SoakError> {
    let mut fe = connect(d, kind)?;
    requests(&mut fe, kind, 0, 2)?;
    let u = usage(d.pid())?;
    fe.disconnect();
    Ok(u)
}

fn options(kind: Kind) -> FrontendOptions {
    FrontendOptions {
        num_queues: match kind {
            Kind::I2c => 1,
            Kind::Gpio => 2,
        },
        queue_size: 256,
        mem_size: 1 << 20,
        ..FrontendOptions::default()
    }
}

/// virtio-i2c request header for the EEPROM at 0x50 (`addr << 1`, flags: bit 1 = read).
fn i2c_header(read: bool) -> Vec<u8> {
    let mut h = vec![0xa0, 0, 0, 0];
    h.extend_from_slice(&u32::from(read).wrapping_shl(1).to_le_bytes());
    h
}

/// virtio-gpio request `{ le16 type; le16 gpio; le32 value }`.
fn gpio_request(msg_type: u16, line: u16, value: u32) -> Vec<u8> {
    let mut r = msg_type.to_le_bytes().to_vec();
    r.extend_from_slice(&line.to_le_bytes());
    r.extend_from_slice(&value.to_le_bytes());
    r
}

const GPIO_SET_DIRECTION: u16 = 3;
const GPIO_GET_VALUE: u16 = 4;
const GPIO_SET_VALUE: u16 = 5;

/// Request `index` of the soak and the bytes its answer must have (status, then data).
fn request(kind: Kind, index: u64) -> (Vec<Desc>, Vec<u8>) {
    let odd = index % 2 == 1;
    let byte = u8::try_from(index % 251).unwrap_or(0);
    match kind {
        // Even: write `byte` at EEPROM offset 0x10. Odd: read one byte at the current
        // pointer (any value), status OK.
        Kind::I2c if !odd => (
            vec![
                Desc::Out(i2c_header(false)),
                Desc::Out(vec![0x10, byte]),
                Desc::In(1),
            ],
            vec![0],
        ),
        Kind::I2c => (
            vec![Desc::Out(i2c_header(true)), Desc::In(1), Desc::In(1)],
            vec![0],
        ),
        // Even: drive line 0 (an output) to the index's low bit... alternating levels.
        // Odd: read line 1, wired to line 0 in the simulator: it reads what 0 drives.
        Kind::Gpio if !odd => (
            vec![
                Desc::Out(gpio_request(
                    GPIO_SET_VALUE,
                    0,
                    u32::from(index.is_multiple_of(4)),
                )),
                Desc::In(2),
            ],
            vec![0, 0],
        ),
        Kind::Gpio => (
            vec![Desc::Out(gpio_request(GPIO_GET_VALUE, 1, 0)), Desc::In(2)],
            vec![0, u8::from(index % 4 == 1)],
        ),
    }
}

/// Checks a completion's status (and for GPIO the value) against `want`.
fn check(index: u64, written: &[Vec<u8>], want: &[u8]) -> Result<(), SoakError> {
    let got: Vec<u8> = written.iter().flatten().copied().collect();
    // The status byte is the last writable byte for I2C, the first for GPIO.
    let ok = match want.len() {
        1 => got.last() == want.first(),
        _ => got == want,
    };
    if ok {
        Ok(())
    } else {
        Err(SoakError::BadAnswer {
            index,
            what: format!("answer {got:?}, expected {want:?}"),
        })
    }
}

/// Sends `count` requests on `fe` in batches of [`BATCH`], checking every answer.
fn requests(fe: &mut TestFrontend, kind: Kind, first: u64, count: u64) -> Result<(), SoakError> {
    let q = fe.queue(0);
    let mut index = first;
    let end = first.saturating_add(count);
    while index < end {
        let n = end.saturating_sub(index).min(BATCH as u64);
        let mut heads = Vec::with_capacity(BATCH);
        for i in index..index.saturating_add(n) {
            let (descs, want) = request(kind, i);
            heads.push((q.post(&descs, true)?, i, want));
        }
        q.kick()?;
        for (head, i, want) in heads {
            let c = q.wait_head(head, TIMEOUT)?;
            check(i, &c.written, &want)?;
        }
        index = index.saturating_add(n);
    }
    Ok(())
}

fn connect(d: &Daemon, kind: Kind) -> Result<TestFrontend, SoakError> {
    let mut fe = TestFrontend::connect(&d.socket, options(kind))?;
    if kind == Kind::Gpio {
        let c = fe.queue(0).transact(
            &[
                Desc::Out(gpio_request(GPIO_SET_DIRECTION, 0, 1)),
                Desc::In(2),
            ],
            true,
            TIMEOUT,
        )?;
        check(0, &c.written, &[0, 0])?;
    }
    Ok(fe)
}

fn reconnects(d: &mut Daemon, kind: Kind, count: u64) -> Result<(), SoakError> {
    for i in 0..count {
        let mut fe = connect(d, kind)?;
        requests(&mut fe, kind, i.saturating_mul(2), 2)?;
        fe.disconnect();
        if i % 100 == 0 {
            d.alive()?;
        }
    }
    Ok(())
}

fn soak(o: &Options) -> Result<bool, SoakError> {
    let mut d = Daemon::start(o)?;
    let pid = d.pid();
    let started = Instant::now();
    // Warm-up: whatever is allocated once (thread stacks, allocator arenas, lazy statics).
    let first = probe(&d, o.kind)?;
    let mut fe = connect(&d, o.kind)?;
    requests(&mut fe, o.kind, 0, 10_000)?;
    fe.disconnect();
    reconnects(&mut d, o.kind, 20)?;
    let before = probe(&d, o.kind)?;

    let t = Instant::now();
    let mut fe = connect(&d, o.kind)?;
    requests(&mut fe, o.kind, 0, o.requests)?;
    fe.disconnect();
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
        "{} (pid {pid}), {:?} in all",
        name.display(),
        started.elapsed()
    );
    println!("measured with one fresh connection that answered a request");
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
    let rss_growth = after.rss_kib.saturating_sub(before.rss_kib);
    let fd_growth = after.fds.saturating_sub(before.fds);
    let flat = rss_growth <= o.rss_tolerance_kib && fd_growth <= o.fd_tolerance;
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
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            eprintln!("soak: {msg}");
            ExitCode::from(2)
        }
    }
}
