//! Waiting for a descriptor to become readable: the one `poll(2)` wrapper of this crate.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Waits until `fd` is readable or `timeout` passes (`None`: no timeout). Returns whether it
/// is readable; an interrupted wait returns `false` (the caller checks its deadline).
pub fn readable(fd: &impl AsRawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so a sub-millisecond remainder still sleeps.
    let ms = match timeout {
        Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        None => -1,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and the count is 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ret > 0 && pfd.revents & libc::POLLIN != 0)
}
