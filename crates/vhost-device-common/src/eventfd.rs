//! Checks of the kick, call and error descriptors a frontend sends: each must be an eventfd,
//! and is made non-blocking before vhost-user-backend uses it (a pipe, or a blocking eventfd
//! whose counter the frontend drained or saturated, would otherwise hang a vring worker with
//! the vring lock held).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Why a descriptor from the frontend was refused.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    /// The descriptor could not be inspected.
    #[error("cannot inspect descriptor {fd}")]
    Inspect {
        /// The descriptor.
        fd: RawFd,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The descriptor is something other than an eventfd.
    #[error("descriptor {fd} is {kind}, not an eventfd")]
    NotAnEventfd {
        /// The descriptor.
        fd: RawFd,
        /// What it is, as /proc names it.
        kind: String,
    },
    /// The descriptor could not be made non-blocking.
    #[error("cannot make descriptor {fd} non-blocking")]
    NonBlocking {
        /// The descriptor.
        fd: RawFd,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Checks that `fd` is an eventfd and sets `O_NONBLOCK` on it.
///
/// The flag is set on the open file description the frontend shares; frontends (QEMU among
/// them) create their eventfds non-blocking anyway.
pub fn check_eventfd(fd: BorrowedFd<'_>) -> Result<(), FdError> {
    let raw = fd.as_raw_fd();
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .map_err(|source| FdError::Inspect { fd: raw, source })?;
    if link.as_os_str() != "anon_inode:[eventfd]" {
        return Err(FdError::NotAnEventfd {
            fd: raw,
            kind: link.display().to_string(),
        });
    }
    // SAFETY: F_GETFL on a descriptor we borrow reads its flags and touches no memory.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(FdError::NonBlocking {
            fd: raw,
            source: io::Error::last_os_error(),
        });
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_SETFL with valid flags on a descriptor we borrow touches no memory.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(FdError::NonBlocking {
                fd: raw,
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use vmm_sys_util::eventfd::EventFd;

    fn blocking_eventfd() -> File {
        let fd = EventFd::new(0).unwrap();
        // SAFETY: dup gives a new descriptor that only the File owns.
        unsafe { File::from_raw_fd(libc::dup(fd.as_raw_fd())) }
    }

    #[test]
    fn eventfd_is_accepted_and_made_non_blocking() {
        let f = blocking_eventfd();
        check_eventfd(f.as_fd()).unwrap();
        // SAFETY: F_GETFL reads the flags of a descriptor we own.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0, "O_NONBLOCK set");
    }

    #[test]
    fn pipe_is_refused() {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are new and owned only here.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut w = File::from(w);
        w.write_all(&[1]).unwrap();
        let e = check_eventfd(r.as_fd()).unwrap_err();
        assert!(matches!(e, FdError::NotAnEventfd { ref kind, .. } if kind.starts_with("pipe:")));
    }

    #[test]
    fn regular_file_is_refused() {
        let f = File::open("/proc/self/status").unwrap();
        assert!(matches!(
            check_eventfd(f.as_fd()),
            Err(FdError::NotAnEventfd { .. })
        ));
    }
}
