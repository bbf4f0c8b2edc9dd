//! The serve loop: one thread per socket, a fresh backend per connection, signals.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use log::{info, warn};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringEpollHandler};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::Vring;
use crate::listener::{BoundSocket, unlink_paths};

/// Consecutive accept failures after which a listener is considered broken.
const MAX_ACCEPT_FAILURES: u32 = 50;
/// Pause between accept attempts after a failure.
const ACCEPT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// A vhost-user backend that the serve loop can run.
pub trait DaemonBackend:
    VhostUserBackend<Bitmap = (), Vring = Vring> + Clone + Send + Sync + 'static
{
    /// Called once per connection, after the vring worker threads exist and before the
    /// frontend is accepted: register extra event sources (e.g. a device's own epoll fd)
    /// with `handlers`. Event numbers must be above the queue count.
    fn register_listeners(&self, _handlers: &[Arc<VringEpollHandler<Self>>]) -> io::Result<()> {
        Ok(())
    }
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(#[source] io::Error),
    /// A socket thread could not be started.
    #[error("cannot start the thread for socket {socket}: {source}")]
    Thread {
        /// The socket's description.
        socket: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A backend could not be created for a new connection.
    #[error("socket {socket}: cannot create the device backend: {source}")]
    Backend {
        /// The socket's description.
        socket: String,
        /// The device's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// vhost-user-backend failed to set up a daemon.
    #[error("socket {socket}: {source}")]
    Daemon {
        /// The socket's description.
        socket: String,
        /// The library's error.
        #[source]
        source: DaemonError,
    },
    /// Registering the device's own event sources failed.
    #[error("socket {socket}: cannot register device event sources: {source}")]
    Listeners {
        /// The socket's description.
        socket: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// vhost-user-backend's error, which implements `Display` but not `std::error::Error`.
#[derive(Debug)]
pub struct DaemonError(pub vhost_user_backend::Error);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DaemonError {}

/// SIGTERM, SIGINT and SIGHUP, blocked in every thread so that one thread can wait for them.
#[derive(Debug)]
pub struct TerminationSignals {
    set: libc::sigset_t,
}

/// Blocks the termination signals in the calling thread and every thread it starts later.
/// Call it first in `main`, before any thread exists.
pub fn block_termination_signals() -> Result<TerminationSignals, ServeError> {
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
        return Err(ServeError::Signals(io::Error::from_raw_os_error(rc)));
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

enum Event {
    Signal(libc::c_int),
    Fatal(ServeError),
}

/// Serves every socket until a termination signal arrives (then returns `Ok` after unlinking
/// the socket files) or a host fault makes serving impossible.
///
/// `factory(socket_index)` makes a fresh backend for each connection: nothing of a previous
/// frontend survives into the next one.
pub fn run<B, F, E>(
    name: &str,
    sockets: Vec<BoundSocket>,
    signals: TerminationSignals,
    factory: F,
) -> Result<(), ServeError>
where
    B: DaemonBackend,
    F: Fn(usize) -> Result<B, E> + Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>();
    let factory = Arc::new(factory);
    let mut to_unlink: Vec<PathBuf> = Vec::new();

    for (index, socket) in sockets.into_iter().enumerate() {
        let tx = tx.clone();
        let factory = Arc::clone(&factory);
        let name = name.to_owned();
        let describe = socket.describe();
        to_unlink.extend(socket.path.clone());
        thread::Builder::new()
            .name(format!("socket{index}"))
            .spawn(move || {
                let err = serve_socket(&name, index, socket, &*factory);
                let _ = tx.send(Event::Fatal(err));
            })
            .map_err(|source| ServeError::Thread {
                socket: describe,
                source,
            })?;
    }

    let signal_tx = tx.clone();
    thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            loop {
                match signals.wait() {
                    Ok(sig) => {
                        let _ = signal_tx.send(Event::Signal(sig));
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = signal_tx.send(Event::Fatal(ServeError::Signals(e)));
                        return;
                    }
                }
            }
        })
        .map_err(ServeError::Signals)?;
    drop(tx);

    let outcome = match rx.recv() {
        Ok(Event::Signal(sig)) => {
            info!("signal {sig} received, exiting");
            Ok(())
        }
        Ok(Event::Fatal(e)) => Err(e),
        // Every sender gone without a word cannot happen: the signal thread only ends after
        // sending. Treat it as a normal exit.
        Err(mpsc::RecvError) => Ok(()),
    };
    unlink_paths(&to_unlink);
    outcome
}

/// Serves one socket forever; returns only the error that made serving impossible.
fn serve_socket<B, F, E>(
    name: &str,
    index: usize,
    mut socket: BoundSocket,
    factory: &F,
) -> ServeError
where
    B: DaemonBackend,
    F: Fn(usize) -> Result<B, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let describe = socket.describe();
    let mut accept_failures = 0u32;
    loop {
        let backend = match factory(index) {
            Ok(b) => b,
            Err(e) => {
                return ServeError::Backend {
                    socket: describe,
                    source: Box::new(e),
                };
            }
        };
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let mut daemon = match VhostUserDaemon::new(name.to_owned(), backend.clone(), mem) {
            Ok(d) => d,
            Err(e) => {
                return ServeError::Daemon {
                    socket: describe,
                    source: DaemonError(e),
                };
            }
        };
        if let Err(source) = backend.register_listeners(&daemon.get_epoll_handlers()) {
            return ServeError::Listeners {
                socket: describe,
                source,
            };
        }
        if let Err(e) = daemon.start(&mut socket.listener) {
            // accept() can fail for passing reasons (a peer that hung up at once, no free
            // descriptors for a moment): keep listening, but give up on a listener that
            // keeps failing.
            accept_failures = accept_failures.saturating_add(1);
            if accept_failures >= MAX_ACCEPT_FAILURES {
                return ServeError::Daemon {
                    socket: describe,
                    source: DaemonError(e),
                };
            }
            warn!("{describe}: cannot accept a frontend: {e}; retrying");
            thread::sleep(ACCEPT_RETRY_DELAY);
            continue;
        }
        accept_failures = 0;
        info!("{describe}: frontend connected");
        match daemon.wait() {
            Ok(()) => info!("{describe}: frontend disconnected; waiting for the next one"),
            Err(e) => warn!("{describe}: connection ended: {e}; waiting for the next one"),
        }
        // Dropping the daemon stops its vring workers (through the backend's exit event)
        // and drops the backend: the next frontend starts from a clean device.
        drop(daemon);
        drop(backend);
    }
}
