//! Binding the listening sockets, all of them before anything is served.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use log::info;
use vhost::vhost_user::Listener;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketConfig {
    /// `count` sockets named `base` followed by their index.
    Paths {
        /// The path given with `--socket-path`.
        base: PathBuf,
        /// The value of `--socket-count`.
        count: NonZeroUsize,
    },
    /// One inherited listening socket.
    Fd(RawFd),
}

impl SocketConfig {
    /// How many sockets (and so frontends at once) this configuration serves.
    pub fn count(&self) -> usize {
        match self {
            SocketConfig::Paths { count, .. } => count.get(),
            SocketConfig::Fd(_) => 1,
        }
    }

    /// The socket paths, in index order (empty for an inherited socket).
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            SocketConfig::Paths { base, count } => (0..count.get())
                .map(|i| {
                    let mut p = base.clone().into_os_string();
                    p.push(i.to_string());
                    PathBuf::from(p)
                })
                .collect(),
            SocketConfig::Fd(_) => Vec::new(),
        }
    }
}

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A live daemon answers on the path already.
    #[error("{0}: another backend is already listening on this socket")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0}: exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// Removing a stale socket failed.
    #[error("{path}: cannot remove stale socket")]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// bind/listen failed.
    #[error("{path}: cannot listen")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The inherited descriptor is unusable.
    #[error("--fd {fd}: {reason}")]
    BadFd {
        /// The descriptor number.
        fd: RawFd,
        /// What is wrong with it.
        reason: String,
    },
    /// The inherited descriptor could not be inspected.
    #[error("--fd {fd}: cannot inspect the descriptor")]
    InspectFd {
        /// The descriptor number.
        fd: RawFd,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// One listening socket, ready to accept frontends.
pub struct BoundSocket {
    /// The listener handed to vhost-user-backend.
    pub listener: Listener,
    /// The path, unlinked at exit; `None` for an inherited socket, which is not ours to remove.
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSocket")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BoundSocket {
    /// A human-readable name for logs.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "inherited socket".to_owned(),
        }
    }
}

/// Binds every socket of `config`, or none: on error the sockets already bound are removed.
pub fn bind(config: &SocketConfig) -> Result<Vec<BoundSocket>, ListenerError> {
    match config {
        SocketConfig::Fd(fd) => {
            let listener = adopt_fd(*fd)?;
            info!("serving inherited listening socket fd {fd}");
            Ok(vec![BoundSocket {
                listener,
                path: None,
            }])
        }
        SocketConfig::Paths { .. } => {
            let mut bound = Vec::with_capacity(config.count());
            for path in config.paths() {
                match bind_path(&path) {
                    Ok(listener) => {
                        info!("listening on {}", path.display());
                        bound.push(BoundSocket {
                            listener: Listener::from(listener),
                            path: Some(path),
                        });
                    }
                    Err(e) => {
                        unlink_all(&bound);
                        return Err(e);
                    }
                }
            }
            Ok(bound)
        }
    }
}

/// Removes the socket files of `sockets` (inherited sockets are left alone).
pub fn unlink_all(sockets: &[BoundSocket]) {
    sockets
        .iter()
        .filter_map(|s| s.path.as_deref())
        .for_each(remove_socket_file);
}

/// Removes socket files by path.
pub fn unlink_paths(paths: &[PathBuf]) {
    paths
        .iter()
        .map(PathBuf::as_path)
        .for_each(remove_socket_file);
}

/// Errors are ignored: the file may be gone already, and nothing better can be done at exit.
fn remove_socket_file(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn bind_path(path: &Path) -> Result<UnixListener, ListenerError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket nobody answers on is left over from a daemon that died: reuse the path.
            if UnixStream::connect(path).is_ok() {
                return Err(ListenerError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(|source| ListenerError::RemoveStale {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(_) => return Err(ListenerError::NotASocket(path.to_owned())),
        Err(_) => {}
    }
    UnixListener::bind(path).map_err(|source| ListenerError::Bind {
        path: path.to_owned(),
        source,
    })
}

/// `sizeof(int)` as a `socklen_t`, checked at compile time.
const INT_LEN: libc::socklen_t = {
    assert!(size_of::<libc::c_int>() == 4);
    4
};

fn adopt_fd(fd: RawFd) -> Result<Listener, ListenerError> {
    let bad = |reason: &str| ListenerError::BadFd {
        fd,
        reason: reason.to_owned(),
    };
    // SAFETY: fstat only writes into the zeroed stat buffer we own; an invalid fd is reported
    // as EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(ListenerError::InspectFd {
            fd,
            source: io::Error::last_os_error(),
        });
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(bad("not a socket"));
    }
    let mut accepting: libc::c_int = 0;
    let mut len = INT_LEN;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut accepting).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(ListenerError::InspectFd {
            fd,
            source: io::Error::last_os_error(),
        });
    }
    if accepting == 0 {
        return Err(bad("socket is not listening"));
    }
    // SAFETY: F_SETFD on a descriptor we just checked is open only changes its flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(ListenerError::InspectFd {
            fd,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: the descriptor is an open listening socket inherited by this process and handed
    // to us on the command line; from here on the listener owns it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    Ok(Listener::from(listener))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vdc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn binds_all_paths_and_replaces_stale_sockets() {
        let d = tmpdir("bind");
        let base = d.join("s.sock");
        // A stale socket: bound then its listener dropped, file left behind.
        drop(UnixListener::bind(d.join("s.sock1")).unwrap());
        let cfg = SocketConfig::Paths {
            base,
            count: NonZeroUsize::new(2).unwrap(),
        };
        let socks = bind(&cfg).unwrap();
        assert_eq!(socks.len(), 2);
        assert!(UnixStream::connect(d.join("s.sock0")).is_ok());
        assert!(UnixStream::connect(d.join("s.sock1")).is_ok());
        // A second daemon on the same paths is refused, and leaves the first one's sockets.
        let err = bind(&cfg).unwrap_err();
        assert!(matches!(err, ListenerError::InUse(_)), "{err}");
        assert!(d.join("s.sock0").exists());
        unlink_all(&socks);
        assert!(!d.join("s.sock0").exists());
    }

    #[test]
    fn refuses_to_remove_regular_file() {
        let d = tmpdir("file");
        std::fs::write(d.join("f0"), b"x").unwrap();
        let cfg = SocketConfig::Paths {
            base: d.join("f"),
            count: NonZeroUsize::MIN,
        };
        assert!(matches!(bind(&cfg), Err(ListenerError::NotASocket(_))));
        assert!(d.join("f0").exists());
    }

    #[test]
    fn inherited_fd_must_be_a_listening_socket() {
        let d = tmpdir("fd");
        let file = std::fs::File::create(d.join("plain")).unwrap();
        let fd = file.into_raw_fd();
        assert!(matches!(adopt_fd(fd), Err(ListenerError::BadFd { .. })));
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(adopt_fd(a.into_raw_fd()).is_err());
        let l = UnixListener::bind(d.join("l")).unwrap();
        assert!(adopt_fd(l.into_raw_fd()).is_ok());
    }
}
