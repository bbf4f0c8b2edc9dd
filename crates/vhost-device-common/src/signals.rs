//! Termination signals (SIGTERM, SIGINT, SIGHUP): blocked in every thread before any thread
//! exists, then waited for by one thread of the serve loop ([`crate::serve::run`]), which
//! removes the socket files and ends the process with status 0.

use std::io;

/// SIGTERM, SIGINT and SIGHUP, blocked in every thread so that one thread can wait for them.
#[derive(Debug)]
pub struct TerminationSignals {
    set: libc::sigset_t,
}

/// Blocks the termination signals in the calling thread and every thread it starts later.
/// Call it first in `main`, before any thread exists.
pub fn block_termination_signals() -> io::Result<TerminationSignals> {
    // SAFETY: sigemptyset initialises the set we own; a zeroed sigset_t is valid storage.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid, writable storage for a signal set.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `set` was initialised by sigemptyset; `sig` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    // SAFETY: `set` is initialised; the old mask is not requested (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(TerminationSignals { set })
}

impl TerminationSignals {
    /// Waits for one of the termination signals and returns its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        let mut sig: libc::c_int = 0;
        // SAFETY: `self.set` is an initialised signal set and `sig` is writable.
        let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
        if rc == 0 {
            Ok(sig)
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}
