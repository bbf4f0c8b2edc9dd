//! The serve loop: one thread per socket, a fresh device and backend per connection, until
//! a termination signal ([`crate::signals`]) arrives.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use log::{debug, error, info, warn};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::backend::{Backend, VirtioDevice};
use crate::listener::{BoundSocket, unlink_paths};
use crate::report::ErrorChain;
use crate::signals::TerminationSignals;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Signal handling could not be set up, or waiting for a signal failed.
    #[error("cannot set up signal handling")]
    Signals(#[source] io::Error),
    /// A socket thread could not be started.
    #[error("cannot start the thread for socket {socket}")]
    Thread {
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

enum Event {
    Signal(libc::c_int),
    Fatal(ServeError),
}

/// Serves every socket until a termination signal arrives (then returns `Ok` after unlinking
/// the socket files) or a host fault makes serving impossible.
///
/// `factory(socket_index)` makes a fresh device for each connection (served by a fresh
/// [`Backend`]): nothing of a previous frontend survives into the next one.
pub fn run<D, F, E>(
    name: &str,
    sockets: Vec<BoundSocket>,
    signals: TerminationSignals,
    factory: F,
) -> Result<(), ServeError>
where
    D: VirtioDevice,
    F: Fn(usize) -> Result<D, E> + Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>();
    let factory = Arc::new(factory);
    let mut to_unlink: Vec<PathBuf> = Vec::new();

    for (index, socket) in sockets.into_iter().enumerate() {
        let factory = Arc::clone(&factory);
        let name = name.to_owned();
        let describe = socket.describe();
        to_unlink.extend(socket.path.clone());
        thread::Builder::new()
            .name(format!("socket{index}"))
            .spawn(move || serve_socket(&name, index, socket, &*factory))
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

/// Pause after a connection could not be set up, doubled up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest pause between attempts to set up a connection.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Why one connection could not be set up or served; the socket keeps listening.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The device's factory failed.
    #[error("cannot create the device")]
    Device(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No descriptors for the exit events (see [`crate::queue::WorkerExitEvents::prepare`]).
    #[error("cannot create the vring workers' exit events")]
    ExitEvents(#[source] io::Error),
    /// vhost-user-backend could not set the connection up.
    #[error("cannot set up the vhost-user connection")]
    Daemon(#[source] DaemonError),
    /// The device's event sources could not be registered.
    #[error("cannot register device event sources")]
    Listeners(#[source] io::Error),
    /// No frontend could be accepted.
    #[error("cannot accept a frontend")]
    Accept(#[source] DaemonError),
}

/// Whether the library's error is an ordinary hang-up of the frontend.
fn is_hang_up(e: &vhost_user_backend::Error) -> bool {
    use vhost::vhost_user::Error as Wire;
    matches!(
        e,
        vhost_user_backend::Error::HandleRequest(
            Wire::Disconnected | Wire::PartialMessage | Wire::SocketBroken(_)
        )
    )
}

/// Serves one socket for ever. A connection that cannot be set up (no descriptors left, a
/// frontend that hangs up at once) is logged and the socket keeps listening, pausing a
/// little longer after each failure in a row.
fn serve_socket<D, F, E>(name: &str, index: usize, mut socket: BoundSocket, factory: &F)
where
    D: VirtioDevice,
    F: Fn(usize) -> Result<D, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let describe = socket.describe();
    let mut delay = RETRY_DELAY;
    let mut failing = false;
    loop {
        match serve_connection(name, index, &mut socket, factory) {
            Ok(()) => {
                if failing {
                    info!("{describe}: serving again");
                }
                failing = false;
                delay = RETRY_DELAY;
            }
            Err(e) => {
                // One error line per run of failures, not one per attempt.
                if failing {
                    debug!("{describe}: {}", ErrorChain(&e));
                } else {
                    error!("{describe}: {}; retrying", ErrorChain(&e));
                }
                failing = true;
                thread::sleep(delay);
                delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// Sets up one connection on `socket` (number `index`), serves it until the frontend
/// leaves, and releases everything it held. The serve loop calls it for ever on each socket.
pub fn serve_connection<D, F, E>(
    name: &str,
    index: usize,
    socket: &mut BoundSocket,
    factory: &F,
) -> Result<(), ConnectionError>
where
    D: VirtioDevice,
    F: Fn(usize) -> Result<D, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let device = factory(index).map_err(|e| ConnectionError::Device(Box::new(e)))?;
    let backend = Backend::new(device);
    backend
        .exit_events()
        .prepare(backend.queues_per_thread().len())
        .map_err(ConnectionError::ExitEvents)?;
    let result = run_daemon(name, socket, &backend);
    // Normally the library joined every worker when `run_daemon` dropped its daemon; after a
    // set-up that failed part way it detached those it had spawned: this ends them. The exit
    // descriptors are closed when the last clone of the backend (the workers' included) goes.
    backend.exit_events().end_workers();
    result
}

fn run_daemon<D: VirtioDevice>(
    name: &str,
    socket: &mut BoundSocket,
    backend: &Backend<D>,
) -> Result<(), ConnectionError> {
    let describe = socket.describe();
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let mut daemon = VhostUserDaemon::new(name.to_owned(), backend.clone(), mem)
        .map_err(|e| ConnectionError::Daemon(DaemonError(e)))?;
    backend
        .register_event_sources(&daemon.get_epoll_handlers())
        .map_err(ConnectionError::Listeners)?;
    daemon
        .start(&mut socket.listener)
        .map_err(|e| ConnectionError::Accept(DaemonError(e)))?;
    info!("{describe}: frontend connected");
    #[cfg(feature = "sandbox-test-trigger")]
    crate::sandbox::serving_began();
    match daemon.wait() {
        Ok(()) => info!("{describe}: frontend disconnected; waiting for the next one"),
        Err(e) if is_hang_up(&e) => {
            info!("{describe}: frontend disconnected; waiting for the next one")
        }
        // A frontend that breaks the protocol: one line per connection.
        Err(e) => warn!(
            "{describe}: connection ended: {}; waiting for the next one",
            DaemonError(e)
        ),
    }
    // Dropping the daemon stops its vring workers (through the backend's exit event) and
    // joins them: the next frontend starts from a clean device.
    drop(daemon);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vhost_user_backend_error_names_its_cause_once() {
        let errno = io::Error::from_raw_os_error(libc::EPIPE);
        let e = ConnectionError::Accept(DaemonError(vhost_user_backend::Error::HandleRequest(
            vhost::vhost_user::Error::SocketBroken(io::Error::from_raw_os_error(libc::EPIPE)),
        )));
        let line = ErrorChain(&e).to_string();
        assert_eq!(line.matches(&errno.to_string()).count(), 1, "{line}");
        assert!(line.starts_with("cannot accept a frontend: "), "{line}");
    }
}
