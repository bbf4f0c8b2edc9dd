//! A deliberately broken stand-in for a vhost-user daemon, so that each after-check of the
//! hostile-frontend suite (`dut::Dut::check_after`) can be seen to fail
//! (tests/after_checks.rs). It speaks just enough vhost-user for a raw frontend without
//! protocol features: GET_FEATURES (no features), GET_VRING_BASE, and an ack of 0 for
//! anything sent with NEED_REPLY; everything else is read and dropped.
//!
//! ```text
//! broken-backend --misbehave none|spin|flood|ignore-get-vring-base|leak-fds \
//!     [--only-connection N] -s BASE
//! ```
//!
//! It listens on `BASE0` (as the daemons do) and serves one connection at a time.
//! `spin` burns a core from the start; `flood` writes 50 log lines per connection;
//! `ignore-get-vring-base` never answers GET_VRING_BASE; `leak-fds` keeps every descriptor
//! it receives. With `--only-connection N` the misbehaviour (but `spin`) hits only the Nth
//! connection (1-based), to show that a check runs after every round of an attack.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;

const GET_FEATURES: u32 = 1;
const GET_VRING_BASE: u32 = 11;
const FLAG_VERSION: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;
/// Largest payload read; a bigger one ends the connection.
const MAX_PAYLOAD: usize = 1 << 16;
/// Most descriptors taken with one message.
const MAX_FDS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    None,
    Spin,
    Flood,
    IgnoreGetVringBase,
    LeakFds,
}

#[derive(Debug, thiserror::Error)]
enum StandInError {
    #[error(
        "usage: broken-backend --misbehave none|spin|flood|ignore-get-vring-base|leak-fds [--only-connection N] -s BASE ({0})"
    )]
    Usage(String),
    #[error("cannot listen on {path}")]
    Listen {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("accept failed")]
    Accept(#[source] std::io::Error),
}

#[derive(Debug)]
struct Options {
    misbehave: Misbehaviour,
    only: Option<u64>,
    base: String,
}

fn parse() -> Result<Options, StandInError> {
    let mut misbehave = None;
    let mut only = None;
    let mut base = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| StandInError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--misbehave" => {
                misbehave = Some(match value()?.as_str() {
                    "none" => Misbehaviour::None,
                    "spin" => Misbehaviour::Spin,
                    "flood" => Misbehaviour::Flood,
                    "ignore-get-vring-base" => Misbehaviour::IgnoreGetVringBase,
                    "leak-fds" => Misbehaviour::LeakFds,
                    other => return Err(StandInError::Usage(format!("no misbehaviour {other}"))),
                });
            }
            "--only-connection" => {
                let v = value()?;
                only = Some(
                    v.parse()
                        .map_err(|e| StandInError::Usage(format!("--only-connection {v}: {e}")))?,
                );
            }
            "-s" => base = Some(value()?),
            other => return Err(StandInError::Usage(format!("unknown argument {other}"))),
        }
    }
    Ok(Options {
        misbehave: misbehave.ok_or_else(|| StandInError::Usage("no --misbehave".to_owned()))?,
        only,
        base: base.ok_or_else(|| StandInError::Usage("no -s".to_owned()))?,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("broken-backend: {text}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), StandInError> {
    let opts = parse()?;
    let path = format!("{}0", opts.base);
    let listener = UnixListener::bind(&path).map_err(|source| StandInError::Listen {
        path: path.clone(),
        source,
    })?;
    if opts.misbehave == Misbehaviour::Spin {
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
    }
    eprintln!(
        "broken-backend: listening on {path}, misbehaving: {:?}",
        opts.misbehave
    );
    let mut kept: Vec<OwnedFd> = Vec::new();
    let mut number = 0u64;
    loop {
        let (conn, _) = listener.accept().map_err(StandInError::Accept)?;
        number = number.saturating_add(1);
        let now = opts.only.is_none_or(|n| n == number);
        let misbehave = if now {
            opts.misbehave
        } else {
            Misbehaviour::None
        };
        if misbehave == Misbehaviour::Flood {
            for i in 0..50 {
                eprintln!("broken-backend: flooding the log, line {i} of connection {number}");
            }
        }
        serve(&conn, misbehave, &mut kept);
    }
}

/// Serves one connection until it closes or breaks the little protocol this speaks.
fn serve(conn: &UnixStream, misbehave: Misbehaviour, kept: &mut Vec<OwnedFd>) {
    loop {
        let mut header = [0u8; 12];
        let Some(fds) = recv_with_fds(conn, &mut header) else {
            return;
        };
        if misbehave == Misbehaviour::LeakFds {
            kept.extend(fds);
        } else {
            drop(fds);
        }
        let word = |i: usize| {
            header
                .get(i..i.saturating_add(4))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (request, flags, size) = (word(0), word(4), word(8));
        let Ok(size) = usize::try_from(size) else {
            return;
        };
        if size > MAX_PAYLOAD {
            return;
        }
        let mut payload = vec![0u8; size];
        if (&*conn).read_exact(&mut payload).is_err() {
            return;
        }
        let reply = match request {
            GET_FEATURES => Some(0u64.to_le_bytes().to_vec()),
            GET_VRING_BASE if misbehave == Misbehaviour::IgnoreGetVringBase => None,
            GET_VRING_BASE => {
                let mut state = payload.get(..4).unwrap_or(&[0; 4]).to_vec();
                state.extend_from_slice(&0u32.to_le_bytes());
                Some(state)
            }
            _ if flags & FLAG_NEED_REPLY != 0 => Some(0u64.to_le_bytes().to_vec()),
            _ => None,
        };
        if let Some(body) = reply {
            let mut msg = request.to_le_bytes().to_vec();
            msg.extend_from_slice(&(FLAG_VERSION | FLAG_REPLY).to_le_bytes());
            msg.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_le_bytes());
            msg.extend_from_slice(&body);
            if (&*conn).write_all(&msg).is_err() {
                return;
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes, taking the descriptors sent with the first of them;
/// `None` at end of file or on an error.
fn recv_with_fds(conn: &UnixStream, buf: &mut [u8]) -> Option<Vec<OwnedFd>> {
    let mut control = [0u64; MAX_FDS.div_ceil(2).saturating_add(4)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: `msg` describes buffers that outlive the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let n = usize::try_from(n).ok().filter(|n| *n > 0)?;
    let mut fds = Vec::new();
    // SAFETY: `msg` holds the control messages recvmsg wrote.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` points at a control message header inside `control`.
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) only computes a size.
            let header = usize::try_from(unsafe { libc::CMSG_LEN(0) }).unwrap_or(0);
            let count = len
                .saturating_sub(header)
                .checked_div(size_of::<RawFd>())
                .unwrap_or(0);
            // SAFETY: CMSG_DATA points at `count` descriptors inside this message.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count`, inside the message; read unaligned as CMSG_DATA may
                // not be aligned for RawFd.
                let fd = unsafe { data.add(i).read_unaligned() };
                // SAFETY: the kernel installed `fd` in this process for us alone.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        // SAFETY: `msg` and `cmsg` are valid; CMSG_NXTHDR returns null after the last.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let rest = buf.get_mut(n..)?;
    if !rest.is_empty() && (&*conn).read_exact(rest).is_err() {
        return None;
    }
    Some(fds)
}
