//! Request load on a daemon's sockets, every answer checked: the soak's request stream and
//! the multi-guest load (one frontend thread per socket, all sending at once, as several
//! busy VMs do).
//!
//! The request stream works on a simulated device and on real ones alike:
//! - I2C, the device at [`I2C_ADDR`] (the simulated 24c02, or an i2c-stub chip): even
//!   requests write one byte at offset 0x10 (SMBus write byte data), odd ones read one byte
//!   (SMBus receive byte); only the status is checked, since other guests write the same
//!   device at the same time.
//! - GPIO, line 0 made an output at connection time: even requests drive it to the index's
//!   level, odd ones read it back and must see that level (the chip belongs to this socket
//!   alone, so nothing else drives it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::{Desc, FrontendOptions, TestFrontend};

/// How long one batch may take to come back before the load fails.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The I2C device the stream addresses (the 24c02 of the quick start, i2c-stub's chip).
pub const I2C_ADDR: u8 = 0x50;

const GPIO_SET_DIRECTION: u16 = 3;
const GPIO_GET_VALUE: u16 = 4;
const GPIO_SET_VALUE: u16 = 5;
const GPIO_DIRECTION_OUT: u32 = 1;

/// Which device the daemon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// virtio-i2c (one queue).
    I2c,
    /// virtio-gpio (request and event queues).
    Gpio,
}

impl Kind {
    /// `i2c` or `gpio`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "i2c" => Some(Kind::I2c),
            "gpio" => Some(Kind::Gpio),
            _ => None,
        }
    }
}

/// Why the load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The frontend failed (connection, handshake, a request not answered in time).
    #[error("socket {socket}")]
    Frontend {
        /// The socket's path.
        socket: PathBuf,
        /// The frontend's error.
        #[source]
        source: crate::Error,
    },
    /// An answer was wrong.
    #[error("socket {socket}: request {index}: answer {got:?}, expected {want:?}")]
    BadAnswer {
        /// The socket's path.
        socket: PathBuf,
        /// The request's index in the stream.
        index: u64,
        /// The bytes the daemon wrote.
        got: Vec<u8>,
        /// The bytes expected.
        want: Vec<u8>,
    },
    /// A load thread panicked.
    #[error("the load thread of socket {0} panicked")]
    Panicked(PathBuf),
}

/// The frontend options for `kind`: its queues, 256 entries, 1 MiB of guest memory.
pub fn options(kind: Kind) -> FrontendOptions {
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

/// virtio-i2c request header for [`I2C_ADDR`] (the core crate's encoder).
fn i2c_header(read: bool) -> Vec<u8> {
    virtio_i2c_core::request::encode_header(I2C_ADDR, read, false).to_vec()
}

/// virtio-gpio request `{ le16 type; le16 gpio; le32 value }` (the core crate's encoder).
fn gpio_request(msg_type: u16, line: u16, value: u32) -> Vec<u8> {
    virtio_gpio_core::msg::encode_request(msg_type, line, value).to_vec()
}

/// The level request `index` drives (even) or expects (odd) on GPIO line 0.
fn gpio_level(index: u64) -> bool {
    (index / 2).is_multiple_of(2)
}

/// Request `index` of the stream and the bytes its answer must have: for I2C the status
/// (the last writable byte), for GPIO the whole `{ status, value }` answer.
pub fn request(kind: Kind, index: u64) -> (Vec<Desc>, Vec<u8>) {
    let odd = index % 2 == 1;
    let byte = u8::try_from(index % 251).unwrap_or(0);
    match kind {
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
        Kind::Gpio if !odd => (
            vec![
                Desc::Out(gpio_request(
                    GPIO_SET_VALUE,
                    0,
                    u32::from(gpio_level(index)),
                )),
                Desc::In(2),
            ],
            vec![0, 0],
        ),
        Kind::Gpio => (
            vec![Desc::Out(gpio_request(GPIO_GET_VALUE, 0, 0)), Desc::In(2)],
            vec![0, u8::from(gpio_level(index))],
        ),
    }
}

/// Whether the daemon's answer (`written`: the writable buffers) matches `want`.
pub fn answer_matches(written: &[Vec<u8>], want: &[u8]) -> bool {
    let got: Vec<u8> = written.iter().flatten().copied().collect();
    match want.len() {
        1 => got.last() == want.first(),
        _ => got == want,
    }
}

/// One guest's connection: the frontend and the socket it talks to.
#[derive(Debug)]
pub struct Guest {
    fe: TestFrontend,
    socket: PathBuf,
    kind: Kind,
}

impl Guest {
    /// Connects to `socket` and prepares the device (GPIO: line 0 becomes an output).
    pub fn connect(socket: &Path, kind: Kind) -> Result<Guest, LoadError> {
        let fe_err = |source| LoadError::Frontend {
            socket: socket.to_owned(),
            source,
        };
        let mut fe = TestFrontend::connect(socket, options(kind)).map_err(fe_err)?;
        if kind == Kind::Gpio {
            let c = fe
                .queue(0)
                .transact(
                    &[
                        Desc::Out(gpio_request(GPIO_SET_DIRECTION, 0, GPIO_DIRECTION_OUT)),
                        Desc::In(2),
                    ],
                    true,
                    ANSWER_TIMEOUT,
                )
                .map_err(fe_err)?;
            if !answer_matches(&c.written, &[0, 0]) {
                return Err(LoadError::BadAnswer {
                    socket: socket.to_owned(),
                    index: 0,
                    got: c.written.concat(),
                    want: vec![0, 0],
                });
            }
        }
        Ok(Guest {
            fe,
            socket: socket.to_owned(),
            kind,
        })
    }

    /// Sends requests `first..first + count` in batches of `batch` chains per kick and
    /// checks every answer.
    pub fn requests(&mut self, first: u64, count: u64, batch: usize) -> Result<(), LoadError> {
        let socket = &self.socket;
        let fe_err = |source| LoadError::Frontend {
            socket: socket.clone(),
            source,
        };
        let batch = batch.max(1);
        let q = self.fe.queue(0);
        let mut index = first;
        let end = first.saturating_add(count);
        let mut heads = Vec::with_capacity(batch);
        while index < end {
            let n = end
                .saturating_sub(index)
                .min(u64::try_from(batch).unwrap_or(u64::MAX));
            heads.clear();
            for i in index..index.saturating_add(n) {
                let (descs, want) = request(self.kind, i);
                heads.push((q.post(&descs, true).map_err(fe_err)?, i, want));
            }
            q.kick().map_err(fe_err)?;
            for (head, i, want) in heads.drain(..) {
                let c = q.wait_head(head, ANSWER_TIMEOUT).map_err(fe_err)?;
                if !answer_matches(&c.written, &want) {
                    return Err(LoadError::BadAnswer {
                        socket: socket.clone(),
                        index: i,
                        got: c.written.concat(),
                        want,
                    });
                }
            }
            index = index.saturating_add(n);
        }
        Ok(())
    }

    /// The frontend (for more checks on the same connection).
    pub fn frontend(&mut self) -> &mut TestFrontend {
        &mut self.fe
    }

    /// Closes the connection.
    pub fn disconnect(self) {
        self.fe.disconnect();
    }
}

/// What one guest of [`concurrent`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLoad {
    /// The socket it used.
    pub socket: PathBuf,
    /// Requests answered (and checked).
    pub requests: u64,
    /// Connections made (1 plus the reconnects).
    pub connections: u64,
    /// How long it sent.
    pub elapsed: Duration,
}

impl GuestLoad {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How [`concurrent`] loads each socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    /// The device kind.
    pub kind: Kind,
    /// Chains posted per kick.
    pub batch: usize,
    /// How long every guest sends.
    pub duration: Duration,
    /// Reconnect after this many batches (0: one connection for the whole run).
    pub reconnect_every: u64,
}

/// Loads every socket at once, one thread (one guest) per socket, all starting together,
/// for `plan.duration`; every answer is checked. Returns each guest's count, or the first
/// failure.
pub fn concurrent(sockets: &[PathBuf], plan: LoadPlan) -> Result<Vec<GuestLoad>, LoadError> {
    let start = Arc::new(Barrier::new(sockets.len()));
    let threads: Vec<_> = sockets
        .iter()
        .map(|socket| {
            let socket = socket.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || one_guest(&socket, plan, &start))
        })
        .collect();
    let mut results = Vec::with_capacity(sockets.len());
    let mut first_err = None;
    for (thread, socket) in threads.into_iter().zip(sockets) {
        match thread.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(LoadError::Panicked(socket.clone()));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

fn one_guest(socket: &Path, plan: LoadPlan, start: &Barrier) -> Result<GuestLoad, LoadError> {
    // Connect before the barrier so every guest starts sending at the same moment; a
    // failed connection must still reach the barrier or the others wait for ever.
    let guest = Guest::connect(socket, plan.kind);
    start.wait();
    let mut guest = guest?;
    let batch = u64::try_from(plan.batch.max(1)).unwrap_or(1);
    let t = Instant::now();
    let mut index = 0u64;
    let mut batches = 0u64;
    let mut connections = 1u64;
    while t.elapsed() < plan.duration {
        guest.requests(index, batch, plan.batch)?;
        index = index.saturating_add(batch);
        batches = batches.saturating_add(1);
        // A GPIO read checks the level the request before it set on the same connection
        // (a new connection starts from a reset device): reconnect between pairs only.
        if plan.reconnect_every > 0
            && batches.is_multiple_of(plan.reconnect_every)
            && index.is_multiple_of(2)
        {
            guest.disconnect();
            guest = Guest::connect(socket, plan.kind)?;
            connections = connections.saturating_add(1);
        }
    }
    let elapsed = t.elapsed();
    guest.disconnect();
    Ok(GuestLoad {
        socket: socket.to_owned(),
        requests: index,
        connections,
        elapsed,
    })
}

/// Resident memory (KiB) and open descriptors of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
    /// Entries of `/proc/PID/task` (threads).
    pub threads: u64,
}

/// Reads [`Usage`] of `pid` from `/proc`.
pub fn usage(pid: u32) -> std::io::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS line in /proc/{pid}/status")))?;
    let count = |dir: &str| -> std::io::Result<u64> {
        let n = std::fs::read_dir(format!("/proc/{pid}/{dir}"))?.count();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    };
    Ok(Usage {
        rss_kib,
        fds: count("fd")?,
        threads: count("task")?,
    })
}

/// What [`check_busy_guests`] measured.
#[derive(Debug, Clone)]
pub struct BusyGuestsReport {
    /// Usage with every guest connected, after a warm-up load.
    pub before: Usage,
    /// Usage in the same state after the load.
    pub after: Usage,
    /// Each guest's load.
    pub guests: Vec<GuestLoad>,
}

/// Why [`check_busy_guests`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BusyGuestsError {
    /// The load failed (a wrong answer, a connection refused or not answered).
    #[error("load")]
    Load(#[from] LoadError),
    /// The daemon's `/proc` entries could not be read (it died?).
    #[error("cannot read the daemon's /proc entries")]
    Proc(#[source] std::io::Error),
    /// Descriptors or memory grew past the bound.
    #[error(
        "the daemon grew: before {before:?}, after {after:?} (RSS may grow {rss_slack_kib} KiB, descriptors not at all)"
    )]
    Grew {
        /// Usage before the load.
        before: Usage,
        /// Usage after it.
        after: Usage,
        /// The RSS growth allowed.
        rss_slack_kib: u64,
    },
}

/// RSS growth [`check_busy_guests`] tolerates between two measurements in the same state
/// (allocator arenas settle; a leak per request or connection would be far larger).
pub const RSS_SLACK_KIB: u64 = 2048;

/// Usage with a connection up and answered on every socket: a state that is the same every
/// time (between connections a daemon is mid-teardown for a while).
pub fn usage_all_connected(
    pid: u32,
    sockets: &[PathBuf],
    kind: Kind,
) -> Result<Usage, BusyGuestsError> {
    let mut guests = Vec::with_capacity(sockets.len());
    for s in sockets {
        let mut g = Guest::connect(s, kind)?;
        g.requests(0, 2, 2)?;
        guests.push(g);
    }
    let u = usage(pid).map_err(BusyGuestsError::Proc)?;
    for g in guests {
        g.disconnect();
    }
    Ok(u)
}

/// Many busy guests at once on a daemon serving `sockets` (pid `pid`): a warm-up load of
/// one second, then `plan` on every socket at once, then every socket must still answer
/// and the descriptors and memory must not have grown (measured with every guest
/// connected, before and after). The caller checks that the process is still alive.
pub fn check_busy_guests(
    pid: u32,
    sockets: &[PathBuf],
    plan: LoadPlan,
) -> Result<BusyGuestsReport, BusyGuestsError> {
    let warm_up = LoadPlan {
        duration: Duration::from_secs(1),
        ..plan
    };
    concurrent(sockets, warm_up)?;
    let before = usage_all_connected(pid, sockets, plan.kind)?;
    let guests = concurrent(sockets, plan)?;
    let after = usage_all_connected(pid, sockets, plan.kind)?;
    if after.fds > before.fds || after.rss_kib > before.rss_kib.saturating_add(RSS_SLACK_KIB) {
        return Err(BusyGuestsError::Grew {
            before,
            after,
            rss_slack_kib: RSS_SLACK_KIB,
        });
    }
    Ok(BusyGuestsReport {
        before,
        after,
        guests,
    })
}

/// The test form of [`check_busy_guests`] on a daemon of the harness: runs it on all the
/// daemon's sockets, then checks the daemon is still running and exits 0 on SIGTERM at
/// once. Panics with the whole error chain and the daemon's log on any failure.
#[allow(clippy::panic)]
pub fn assert_serves_busy_guests(
    d: &mut crate::daemon::Daemon,
    plan: LoadPlan,
) -> BusyGuestsReport {
    let pid = u32::try_from(d.pid()).unwrap_or(0);
    let sockets = d.sockets().to_vec();
    let report = match check_busy_guests(pid, &sockets, plan) {
        Ok(r) => r,
        Err(e) => {
            let alive = d.is_running();
            panic!(
                "{} busy guests: {} (daemon {}); log:\n{}",
                sockets.len(),
                error_chain(&e),
                if alive { "still running" } else { "dead" },
                d.log()
            )
        }
    };
    d.assert_running();
    for g in &report.guests {
        assert!(
            g.requests > 0,
            "the guest on {} got no request answered",
            g.socket.display()
        );
    }
    d.stop_at_once(libc::SIGTERM);
    report
}

/// `e` and each of its sources, joined with ": " (the harness's [`crate::daemon::chain`]).
pub use crate::daemon::chain as error_chain;
