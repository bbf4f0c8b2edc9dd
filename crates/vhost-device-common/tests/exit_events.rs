//! The vring workers' exit events: what vhost-user-backend (pinned `=0.24.0`) does with them,
//! and that [`WorkerExitEvents`] closes exactly the descriptors the library leaked, once no
//! worker can use them, also when the library's set-up fails part way.
//!
//! The canary: if a vhost-user-backend release stops leaking the exit event's consumer
//! descriptor (closes it itself), `the_library_leaks_each_exit_event_consumer` fails here,
//! instead of `WorkerExitEvents` closing a number that may belong to another guest.
//!
//! The tests check descriptor numbers, so they run one at a time (`SERIAL`): a descriptor
//! closed by one must not be reused by another's before it has been looked at.

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_device_common::queue::WorkerExitEvents;
use vhost_device_common::{GuestMemory, Vring};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

static SERIAL: Mutex<()> = Mutex::new(());
const DEADLINE: Duration = Duration::from_secs(10);

struct Shared {
    events: WorkerExitEvents,
    /// Consumer descriptor numbers handed to the library, by worker.
    handed_out: Mutex<Vec<RawFd>>,
    /// The worker whose exit event is a descriptor epoll refuses (a regular file), so that
    /// the library's set-up fails there; the descriptor given.
    refused: Option<(usize, Mutex<Option<RawFd>>)>,
    workers: usize,
    /// Dropped with the last clone of the backend.
    _gone: mpsc::Sender<()>,
}

/// A device with one queue per worker that does nothing with its queues.
#[derive(Clone)]
struct Toy(Arc<Shared>);

impl Toy {
    fn new(workers: usize, refused: Option<usize>) -> (Self, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let toy = Toy(Arc::new(Shared {
            events: WorkerExitEvents::default(),
            handed_out: Mutex::new(Vec::new()),
            refused: refused.map(|w| (w, Mutex::new(None))),
            workers,
            _gone: tx,
        }));
        (toy, rx)
    }

    fn handed_out(&self) -> Vec<RawFd> {
        self.0
            .handed_out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn regular_file() -> EventConsumer {
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"not-pollable".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: a new descriptor that only the consumer owns.
    unsafe { EventConsumer::from_raw_fd(fd) }
}

impl VhostUserBackend for Toy {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.0.workers
    }
    fn max_queue_size(&self) -> usize {
        8
    }
    fn features(&self) -> u64 {
        vhost_device_common::TRANSPORT_FEATURES
    }
    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
    }
    fn set_event_idx(&self, _enabled: bool) {}
    fn update_memory(&self, _mem: GuestMemory) -> io::Result<()> {
        Ok(())
    }
    fn queues_per_thread(&self) -> Vec<u64> {
        (0..self.0.workers).map(|w| 1u64 << w).collect()
    }
    fn exit_event(&self, worker: usize) -> Option<(EventConsumer, EventNotifier)> {
        use std::os::fd::AsRawFd;
        if let Some((w, given)) = &self.0.refused
            && *w == worker
        {
            let consumer = regular_file();
            *given.lock().unwrap() = Some(consumer.as_raw_fd());
            // The notifier is never used: the set-up fails when the consumer is registered.
            let (_, notifier) = new_event_consumer_and_notifier(EventFlag::NONBLOCK).ok()?;
            return Some((consumer, notifier));
        }
        let pair = self.0.events.create(worker)?;
        self.0.handed_out.lock().unwrap().push(pair.0.as_raw_fd());
        Some(pair)
    }
    fn handle_event(&self, _: u16, _: EventSet, _: &[Vring], _: usize) -> io::Result<()> {
        Ok(())
    }
}

fn memory() -> GuestMemory {
    GuestMemoryAtomic::new(GuestMemoryMmap::new())
}

/// What descriptor `fd` is, as /proc names it; `None` if it is not open.
fn what_is(fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Waits until every clone of the backend is gone (the receiver's sender with it).
fn wait_gone(gone: &mpsc::Receiver<()>, what: &str) {
    match gone.recv_timeout(DEADLINE) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("{what}: the backend was not dropped within {DEADLINE:?}: {other:?}"),
    }
}

#[test]
fn the_library_leaks_each_exit_event_consumer() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let (toy, gone) = Toy::new(1, None);
    toy.0.events.prepare(1).unwrap();
    let daemon = VhostUserDaemon::new("canary".into(), toy.clone(), memory()).unwrap();
    let [consumer] = toy.handed_out()[..] else {
        panic!("one exit event per worker: {:?}", toy.handed_out());
    };
    // A second descriptor of the same eventfd, to recognise it later.
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor the library holds open (its worker runs).
    let witness = unsafe { libc::fcntl(consumer, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(witness >= 0, "dup: {}", io::Error::last_os_error());
    // SAFETY: a new descriptor only this test owns.
    let witness = unsafe { EventNotifier::from_raw_fd(witness) };

    // Dropping the daemon sends the exit event and joins the worker.
    drop(daemon);

    // The canary: after its worker was joined and its handler dropped, vhost-user-backend
    // 0.24.0 has not closed the consumer. If this fails, the library closes it itself now:
    // WorkerExitEvents must stop closing it (or it closes someone else's descriptor).
    assert_eq!(
        what_is(consumer).as_deref(),
        Some("anon_inode:[eventfd]"),
        "vhost-user-backend closed the exit event consumer {consumer} itself: see the \
         vhost-user-backend pin in the workspace Cargo.toml and queue::WorkerExitEvents"
    );
    witness.notify().unwrap();
    let mut count = 0u64;
    // SAFETY: reads 8 bytes into `count`, which lives across the call; non-blocking eventfd.
    let n = unsafe { libc::read(consumer, (&raw mut count).cast(), size_of::<u64>()) };
    assert_eq!(n, 8, "read: {}", io::Error::last_os_error());
    assert_eq!(
        count, 2,
        "descriptor {consumer} is still the exit event: the library's exit write and ours"
    );

    // Closed once the last clone of the backend goes.
    drop(toy);
    wait_gone(&gone, "after a normal connection");
    assert_eq!(what_is(consumer), None, "exit event consumer closed");
    assert!(what_is(std::os::fd::AsRawFd::as_raw_fd(&witness)).is_some());
}

#[test]
fn a_set_up_that_fails_part_way_ends_its_workers_and_closes_what_was_leaked() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Worker 0 starts; worker 1's exit event cannot be registered, so the set-up fails.
    let (toy, gone) = Toy::new(2, Some(1));
    toy.0.events.prepare(2).unwrap();
    let Err(e) = VhostUserDaemon::new("part-way".into(), toy.clone(), memory()) else {
        panic!("set-up with an exit event epoll refuses succeeded");
    };
    let refused = toy.0.refused.as_ref().unwrap().1.lock().unwrap().unwrap();
    let [consumer] = toy.handed_out()[..] else {
        panic!("worker 0 got one exit event: {:?}", toy.handed_out());
    };
    // The library leaked the refused consumer too (never registered, never closed); it is
    // this test's, not WorkerExitEvents', to close.
    assert!(
        what_is(refused).is_some(),
        "set-up error {e}: refused consumer leaked"
    );
    // SAFETY: the library made `refused` a bare number and forgot it; this test created it.
    drop(unsafe { OwnedFd::from_raw_fd(refused) });

    // The library detached worker 0: it still runs, holding a clone of the backend, and its
    // exit event is open.
    drop(toy.clone());
    assert_eq!(
        gone.recv_timeout(Duration::from_millis(100)),
        Err(RecvTimeoutError::Timeout),
        "worker 0 still holds the backend"
    );
    assert_eq!(what_is(consumer).as_deref(), Some("anon_inode:[eventfd]"));

    // What the serve loop does after any connection: end the workers, drop its backend.
    toy.0.events.end_workers();
    drop(toy);
    wait_gone(&gone, "after a failed set-up");
    assert_eq!(what_is(consumer), None, "worker 0's exit event closed");
}

/// The open descriptors of this process that are eventfds.
fn eventfds() -> std::collections::BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| what_is(fd).as_deref() == Some("anon_inode:[eventfd]"))
        .collect()
}

#[test]
fn events_prepared_but_never_handed_out_are_closed_with_their_owner() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Compared as sets of descriptors, not counts: a worker detached by an earlier test may
    // still be closing its own descriptors meanwhile.
    let before = eventfds();
    let events = WorkerExitEvents::default();
    events.prepare(2).unwrap();
    let new: Vec<RawFd> = eventfds().difference(&before).copied().collect();
    assert_eq!(new.len(), 4, "two eventfds, two descriptors each: {new:?}");
    drop(events);
    for fd in new {
        assert_eq!(what_is(fd), None, "descriptor {fd} closed with its owner");
    }
}
