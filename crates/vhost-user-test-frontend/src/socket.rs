//! The sockets of the test frontend, every wait on them bounded: a connect that gives up
//! when the listener's backlog stays full, read and write timeouts on every stream, and a
//! [`Watchdog`] for the waits inside the vhost library (which retries `EAGAIN` for ever, so
//! a socket timeout alone does not end them).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One connection attempt to the stream socket at `path`, waiting at most `timeout` for room
/// in the listener's backlog (a listener that stops accepting fills it); the stream gets
/// `timeout` as its read and write timeouts.
///
/// Linux bounds a blocking `connect(2)` of an `AF_UNIX` socket by its `SO_SNDTIMEO`
/// (`EAGAIN` once it expires); the self-test `a_listener_that_never_accepts_...` in
/// tests/deadlines.rs fails the day it no longer does.
pub fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    // SAFETY: socket(2) has no memory-safety preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    set_timeouts(&stream, timeout)?;
    // SAFETY: an all-zero sockaddr_un is valid (family set below).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let bytes = path.as_os_str().as_bytes();
    // Room for the terminating NUL.
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long for sockaddr_un",
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_un>())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes for the duration of the call.
        let rc = unsafe {
            libc::connect(
                stream.as_raw_fd(),
                std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc == 0 {
            return Ok(stream);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sets `timeout` as the read and write timeout of `stream` (a zero timeout would mean
/// none: it is raised to a millisecond).
pub fn set_timeouts(stream: &UnixStream, timeout: Duration) -> io::Result<()> {
    let t = Some(timeout.max(Duration::from_millis(1)));
    stream.set_read_timeout(t)?;
    stream.set_write_timeout(t)
}

/// What the watchdog thread and its owner share.
#[derive(Debug, Default)]
struct State {
    /// The current wait: its deadline and what it waits for.
    armed: Option<(Instant, &'static str)>,
    /// The wait that expired (the socket was shut down then).
    fired: Option<&'static str>,
    /// The owner is gone.
    quit: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic elsewhere cannot leave `State` inconsistent (plain assignments only).
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shuts a socket down (both directions) when a wait on it outlasts its deadline, which
/// ends any read or write blocked on it, in whatever code: a request that the vhost library
/// would otherwise retry for ever then fails, and [`Watchdog::disarm`] says which wait
/// expired.
#[derive(Debug)]
pub struct Watchdog {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// A watchdog over `socket` (a duplicate of the descriptor is kept for the shutdown).
    pub fn new(socket: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller keeps open during the call.
        let dup = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let shared: Shared = Arc::default();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("test-frontend-watchdog".to_owned())
            .spawn(move || watch(&theirs, &fd))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Starts a wait for `what` of at most `timeout`.
    pub fn arm(&self, what: &'static str, timeout: Duration) {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.shared);
        state.armed = deadline.map(|d| (d, what));
        drop(state);
        self.shared.1.notify_all();
    }

    /// Ends the current wait; returns what the watchdog shut the socket down for, if it did
    /// (then and for ever after: the connection is gone).
    pub fn disarm(&self) -> Option<&'static str> {
        let mut state = lock(&self.shared);
        state.armed = None;
        state.fired
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        lock(&self.shared).quit = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            // The thread only waits and calls shutdown(2): it cannot panic but through a
            // bug of this module, which the join then reports as an ignored error.
            let _ = t.join();
        }
    }
}

fn watch(shared: &Shared, fd: &OwnedFd) {
    let mut state = lock(shared);
    loop {
        if state.quit {
            return;
        }
        match state.armed {
            None => {
                state = shared.1.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            Some((deadline, what)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // SAFETY: shutdown(2) on a descriptor this thread owns.
                    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
                    state.fired = state.fired.or(Some(what));
                    state.armed = None;
                } else {
                    state = shared
                        .1
                        .wait_timeout(state, left)
                        .map_or_else(|e| e.into_inner().0, |(s, _)| s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn the_watchdog_ends_a_blocked_read_and_names_the_wait() {
        let (a, _b) = UnixStream::pair().unwrap();
        let dog = Watchdog::new(&a).unwrap();
        dog.arm("a reply", Duration::from_millis(100));
        let start = Instant::now();
        let n = (&a).read(&mut [0u8; 4]).unwrap();
        assert_eq!(n, 0, "the shutdown ends the read as end of file");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(dog.disarm(), Some("a reply"));
    }

    #[test]
    fn a_disarmed_watchdog_leaves_the_socket_alone() {
        let (a, b) = UnixStream::pair().unwrap();
        let dog = Watchdog::new(&a).unwrap();
        dog.arm("a reply", Duration::from_millis(50));
        assert_eq!(dog.disarm(), None);
        std::thread::sleep(Duration::from_millis(150));
        (&b).write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
        assert_eq!(dog.disarm(), None);
    }
}
