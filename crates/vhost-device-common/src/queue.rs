//! The virtqueue drain loop with EVENT_IDX, and the worker-thread exit events.
//!
//! Devices implement [`ChainSink`]: they receive every available descriptor chain and complete
//! it (now, or later for held buffers) through [`UsedRing`]. The loop here owns notification
//! suppression, the one signal to the guest at the end of a batch, and the checks of what the
//! driver wrote into the available ring, so no device repeats them:
//!
//! - an available index more than a queue's worth ahead of the device's position stops the
//!   queue (one warning) instead of being chased for ever (virtio-queue's check, made once
//!   per read of the index);
//! - a ring outside guest memory never runs ([`Vring::lock_running`] checks its layout);
//! - a head index beyond the queue is skipped (it cannot be returned), reported once;
//! - one call handles at most a few queues' worth of chains, then re-kicks itself, so the
//!   vring lock is never held for ever by a driver that keeps posting.
//!
//! What it costs per kick: one vring lock; the available index read (Acquire) and checked
//! once per run of available chains; one read of each ring entry, one head comparison and one
//! copy of each descriptor per chain ([`crate::split`]); one used element per chain and one
//! store of the used index per batch; with EVENT_IDX, one write of `avail_event`, one more
//! read of the index (after a fence) and one read of `used_event` per batch.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError, RwLockWriteGuard};

use log::error;
use vhost_user_backend::VringState;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::GuestMemory;
use crate::chain::{ChainError, ChainLayout};
use crate::ram::Ram;
use crate::split::SplitRing;
use crate::vring::{Vring, signal};

/// The guest memory every chain handed to a [`ChainSink`] is read and written through.
pub type ChainMemory<'a> = &'a Ram;

/// A chain as handed to a [`ChainSink`]: its layout, or why it has none (with its head, to
/// return it).
pub type Chain<'c> = Result<&'c ChainLayout, (u16, ChainError)>;

/// The head index of `chain`, for the used ring.
pub fn head(chain: &Chain<'_>) -> u16 {
    match chain {
        Ok(layout) => layout.head,
        Err((head, _)) => *head,
    }
}

/// Chains one drain call handles per queue entry before it yields to other work.
const ROUNDS_PER_CALL: usize = 4;

/// Completion side of a running queue, handed to [`ChainSink`] while a batch is drained.
///
/// It holds the ring's lock and the ring's positions; the used index is published once, when
/// the batch is finished (or the value dropped), and the positions are written back into the
/// library's queue state then.
pub struct UsedRing<'a> {
    state: RwLockWriteGuard<'a, VringState<GuestMemory>>,
    ram: Ram,
    ring: SplitRing,
    vring: &'a Vring,
    /// The used index when the batch began (for EVENT_IDX's notification check).
    since: u16,
}

impl std::fmt::Debug for UsedRing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsedRing")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<'a> UsedRing<'a> {
    /// Locks `vring` for completing chains, if it runs (started, not stopped, in a checked
    /// memory table). Call [`UsedRing::finish`] to signal the guest if needed.
    pub fn lock(vring: &'a Vring) -> Option<Self> {
        let (state, memory) = vring.lock_running()?;
        let ring = SplitRing::of(state.get_queue());
        Some(UsedRing {
            state,
            ram: Ram::new(memory),
            since: ring.next_used(),
            ring,
            vring,
        })
    }

    /// The guest memory the queue runs in.
    pub fn memory(&self) -> &Ram {
        &self.ram
    }

    /// Puts the chain `head` into the used ring with `len` bytes written.
    ///
    /// Returns false if it could not: a head the driver never could have posted (reported on
    /// the ring's warning budget).
    #[inline]
    pub fn add(&mut self, head: u16, len: u32) -> bool {
        let size = self.ring.size();
        if head >= size {
            self.vring.reports().warn(format_args!(
                "descriptor {head} is beyond the {size}-entry queue; not returned"
            ));
            return false;
        }
        match self.ring.add_used(&self.ram, head, len) {
            Ok(()) => true,
            Err(e) => {
                // The used ring was checked to lie in guest memory: this cannot happen.
                self.vring
                    .reports()
                    .warn(format_args!("cannot return descriptor {head}: {e}"));
                false
            }
        }
    }

    /// Publishes the used elements and writes the positions back into the queue state.
    fn settle(&mut self) {
        if let Err(e) = self.ring.publish_used(&self.ram) {
            self.vring
                .reports()
                .warn(format_args!("cannot publish the used index: {e}"));
        }
        self.ring.store_positions(self.state.get_queue_mut());
    }

    /// Publishes what was completed and signals the guest once if anything was and the guest
    /// wants to know.
    pub fn finish(mut self) {
        self.settle();
        if self.ring.next_used() == self.since {
            return;
        }
        let wanted = match self.ring.needs_notification(&self.ram, self.since) {
            Ok(w) => w,
            Err(e) => {
                self.vring
                    .reports()
                    .warn(format_args!("cannot read the used event index: {e}"));
                true
            }
        };
        if wanted && let Err(e) = signal(&self.state) {
            self.vring
                .reports()
                .warn(format_args!("cannot signal the guest: {e}"));
        }
    }
}

impl Drop for UsedRing<'_> {
    fn drop(&mut self) {
        // After `finish` this finds nothing left to publish; without it, the elements
        // written are still published and the positions kept.
        self.settle();
    }
}

/// A device's handling of the chains of one queue.
pub trait ChainSink {
    /// Handles one available chain (its head is below the queue size); it completes it with
    /// `used.add` now or keeps its head to complete it later.
    fn chain(&mut self, chain: Chain<'_>, mem: ChainMemory<'_>, used: &mut UsedRing<'_>);

    /// Called when the available ring has no more chains (before notifications are
    /// re-enabled), e.g. to execute a request group cut by the end of the ring.
    fn batch_end(&mut self, _mem: ChainMemory<'_>, _used: &mut UsedRing<'_>) {}
}

/// Drains every available chain of `vring` into `sink`, with EVENT_IDX notification
/// suppression when the driver negotiated it, then signals the guest once if needed.
///
/// Nothing the driver or frontend does makes this fail or spin: a broken ring is stopped
/// (see the module documentation) and the worker goes on serving the other queues and the
/// frontend's messages.
pub fn drain<S: ChainSink>(vring: &Vring, sink: &mut S) {
    let Some(mut used) = UsedRing::lock(vring) else {
        return;
    };
    let ram = used.ram.clone();
    let size = used.ring.size();
    if used.ring.avail_addr() == 0 {
        // virtio-queue's rule, kept: an available ring at 0 was never set up.
        vring.stop(format_args!("available ring unusable: not set up"));
        return;
    }
    let mut budget = usize::from(size).saturating_mul(ROUNDS_PER_CALL);
    let mut layout = ChainLayout::default();
    loop {
        // With EVENT_IDX the driver notifies only when the device asks (avail_event), so
        // notifications need no disabling while the batch runs.
        loop {
            let next = used.ring.next_avail();
            let pending = match used.ring.pending(&ram) {
                Ok(0) => break,
                Ok(n) => usize::from(n).min(budget),
                Err(e) => {
                    vring.stop(format_args!(
                        "available ring unusable at {next} in a {size}-entry queue: {e}"
                    ));
                    sink.batch_end(&ram, &mut used);
                    used.finish();
                    return;
                }
            };
            for _ in 0..pending {
                let head = match used.ring.pop(&ram) {
                    Ok(h) => h,
                    Err(e) => {
                        // The ring was checked to lie in guest memory: this cannot happen.
                        vring.stop(format_args!("cannot read the available ring: {e}"));
                        sink.batch_end(&ram, &mut used);
                        used.finish();
                        return;
                    }
                };
                if head >= size {
                    vring.reports().warn(format_args!(
                        "chain head {head} is beyond the {size}-entry queue; skipped"
                    ));
                    continue;
                }
                let chain = match used.ring.walk(&ram, head, &mut layout) {
                    Ok(()) => Ok(&layout),
                    Err(e) => Err((head, e)),
                };
                sink.chain(chain, &ram, &mut used);
            }
            budget = budget.saturating_sub(pending);
            if budget == 0 {
                // Let the frontend's messages and other queues in; come back at once.
                sink.batch_end(&ram, &mut used);
                used.finish();
                vring.rekick();
                return;
            }
        }
        sink.batch_end(&ram, &mut used);
        // Publish before asking for the next notification, so that the driver sees the
        // used elements no later than it sees the device waiting.
        used.settle();
        // Re-reads the available index after a full fence, so that a chain posted while
        // notifications were off is not missed.
        match used.ring.enable_notification(&ram) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                vring.stop(format_args!("cannot update the notification area: {e}"));
                break;
            }
        }
    }
    used.finish();
}

/// The exit events of one connection's vring worker threads.
///
/// vhost-user-backend 0.24.0 (pinned exactly in the workspace `Cargo.toml` for this) takes
/// the consumer side of each exit event with `into_raw_fd`, registers it in the worker's
/// epoll set, never reads it and never closes it: one descriptor leaked per worker and
/// connection. This records the descriptor numbers it took and closes them when dropped.
///
/// Which descriptors exist when (all in `VhostUserHandler::new` of 0.24.0, one worker at a
/// time): the backend's `exit_event` is called once per worker, right after that worker's
/// epoll instance was created; the consumer is turned into a bare number before anything
/// else can fail, so every consumer handed out is leaked, whatever fails next (registering
/// it, the worker's other eventfd, spawning the thread). If a later worker fails, the workers
/// already spawned are detached, not joined, and keep waiting for their exit event:
/// [`WorkerExitEvents::end_workers`] writes it. Keep this in the state every clone of the
/// backend shares: each worker holds a clone until its thread ends, so the last clone goes
/// (and the descriptors are closed) only when no worker is left that was given one.
/// `tests/exit_events.rs` is the canary that fails when a vhost-user-backend release stops
/// leaking the descriptor (closing it here would then close a number that may by then belong
/// to another guest's connection).
#[derive(Debug, Default)]
pub struct WorkerExitEvents {
    inner: Mutex<ExitEventsInner>,
}

#[derive(Debug, Default)]
struct ExitEventsInner {
    /// Created ahead (where an error can still end the connection's set-up), not yet taken.
    ready: Vec<Option<(EventConsumer, EventNotifier)>>,
    /// Consumer descriptors handed to the library, which made them bare numbers it never
    /// closes; owned by nobody until [`Drop`] closes them.
    leaked: Vec<RawFd>,
}

impl WorkerExitEvents {
    fn inner(&self) -> std::sync::MutexGuard<'_, ExitEventsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the exit events of `workers` worker threads ahead of time, so that running out
    /// of descriptors fails the connection's set-up instead of leaving a worker without an
    /// exit event (vhost-user-backend would then wait for it for ever when the connection
    /// ends). The serve loop calls it with the length of `queues_per_thread()`.
    pub fn prepare(&self, workers: usize) -> std::io::Result<()> {
        let mut inner = self.inner();
        while inner.ready.len() < workers {
            let pair = new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)?;
            inner.ready.push(Some(pair));
        }
        Ok(())
    }

    /// The exit event of vring worker `worker`; return it from
    /// `VhostUserBackend::exit_event`, which the library calls once per worker.
    ///
    /// An event created by [`WorkerExitEvents::prepare`] if there is one, else a new one
    /// (`None`, logged, if that fails).
    pub fn create(&self, worker: usize) -> Option<(EventConsumer, EventNotifier)> {
        let mut inner = self.inner();
        let pair = match inner.ready.get_mut(worker).and_then(Option::take) {
            Some(pair) => pair,
            None => match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
            {
                Ok(pair) => pair,
                Err(e) => {
                    error!("cannot create the exit event of vring worker {worker}: {e}");
                    return None;
                }
            },
        };
        inner.leaked.push(pair.0.as_raw_fd());
        Some(pair)
    }

    /// Writes every exit event handed out, so that every worker thread still running ends.
    ///
    /// After a connection ends normally the library has joined its workers already and this
    /// does nothing; after a set-up that failed part way, it ends the workers the library
    /// spawned and detached.
    pub fn end_workers(&self) {
        let inner = self.inner();
        for &fd in &inner.leaked {
            let one: u64 = 1;
            // SAFETY: `fd` is open: the library never closes it (see the type's documentation)
            // and only `Drop` of `self`, borrowed here, does. The write reads 8 bytes from
            // `one`, which lives across the call; an eventfd write cannot block (non-blocking
            // descriptor) and a full counter (EAGAIN) means the worker was told already.
            let _ = unsafe {
                libc::write(
                    fd,
                    (&raw const one).cast::<libc::c_void>(),
                    size_of::<u64>(),
                )
            };
        }
    }
}

impl Drop for WorkerExitEvents {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        for fd in inner.leaked.drain(..) {
            // SAFETY: vhost-user-backend 0.24.0 (pinned) made `fd` a bare number with
            // `into_raw_fd` and never closes it; its only use of the number was registering
            // it in a worker's epoll set, while the worker's handler held a clone of the
            // backend that owns `self`. `self` is being dropped, so no clone and no worker
            // given this event is left: the descriptor is open and owned by nobody. The
            // OwnedFd closes it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}
