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
//! once per [`TAKE`] chains (once per kick for QEMU's queues unless the guest posts more); one
//! read of each ring entry and one head comparison per chain; with EVENT_IDX, two writes of
//! the notification area and one more read of the index (after a fence) per batch.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError, RwLockWriteGuard};

use log::error;
use vhost_user_backend::VringState;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::GuestMemory;
use crate::vring::{Vring, signal};

/// The memory handle every chain handed to a [`ChainSink`] carries.
pub type ChainMemory<'a> = &'a GuestMemoryMmap;

/// Chains one drain call handles per queue entry before it yields to other work.
const ROUNDS_PER_CALL: usize = 4;

/// Completion side of a running queue, handed to [`ChainSink`] while a batch is drained.
pub struct UsedRing<'a> {
    state: RwLockWriteGuard<'a, VringState<GuestMemory>>,
    memory: Arc<GuestMemoryMmap>,
    vring: &'a Vring,
    added: usize,
}

impl std::fmt::Debug for UsedRing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsedRing")
            .field("added", &self.added)
            .finish_non_exhaustive()
    }
}

impl<'a> UsedRing<'a> {
    /// Locks `vring` for completing chains, if it runs (started, not stopped, in a checked
    /// memory table). Call [`UsedRing::finish`] to signal the guest if needed.
    pub fn lock(vring: &'a Vring) -> Option<Self> {
        let (state, memory) = vring.lock_running()?;
        Some(UsedRing {
            state,
            memory,
            vring,
            added: 0,
        })
    }

    /// The guest memory the queue runs in.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    fn queue(&mut self) -> &mut Queue {
        self.state.get_queue_mut()
    }

    /// Puts the chain `head` into the used ring with `len` bytes written.
    ///
    /// Returns false if it could not: a head the driver never could have posted (reported on
    /// the ring's warning budget).
    pub fn add(&mut self, head: u16, len: u32) -> bool {
        let size = self.state.get_queue().size();
        if head >= size {
            self.vring.reports().warn(format_args!(
                "descriptor {head} is beyond the {size}-entry queue; not returned"
            ));
            return false;
        }
        match self
            .state
            .get_queue_mut()
            .add_used(&*self.memory, head, len)
        {
            Ok(()) => {
                self.added = self.added.saturating_add(1);
                true
            }
            Err(e) => {
                // The used ring was checked to lie in guest memory: this cannot happen.
                self.vring
                    .reports()
                    .warn(format_args!("cannot return descriptor {head}: {e}"));
                false
            }
        }
    }

    /// Signals the guest once if anything was completed and the guest wants to know.
    pub fn finish(mut self) {
        if self.added == 0 {
            return;
        }
        let wanted = match self.state.get_queue_mut().needs_notification(&*self.memory) {
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

/// A device's handling of the chains of one queue.
pub trait ChainSink {
    /// Handles one available chain; it completes it with `used.add` now or keeps its head to
    /// complete it later.
    fn chain(&mut self, chain: DescriptorChain<ChainMemory<'_>>, used: &mut UsedRing<'_>);

    /// Called when the available ring has no more chains (before notifications are
    /// re-enabled), e.g. to execute a request group cut by the end of the ring.
    fn batch_end(&mut self, _mem: ChainMemory<'_>, _used: &mut UsedRing<'_>) {}
}

/// Chains taken from the available ring at a time (a stack array of them): the available
/// index is read and checked once per take.
const TAKE: usize = 32;

/// Chains taken from the available ring, to hand to the sink one by one.
type Taken<'m> = [Option<DescriptorChain<ChainMemory<'m>>>; TAKE];

/// Takes up to `limit` (at most [`TAKE`]) available chains into `out`; returns how many.
///
/// virtio-queue's `iter()` reads the available index (Acquire) once and refuses one more
/// than a queue's worth ahead of the device (`InvalidAvailRingIndex`); each `next()` then
/// reads one ring entry (Acquire). The iterator borrows the whole queue, which the sink needs
/// for completing chains, hence the chains are taken first and handed over after. A `None`
/// from `next()` is the end of what was available: it also stands for an unreadable entry,
/// which cannot happen here because the ring's layout was checked to lie in this memory
/// ([`Vring::lock_running`]).
fn take<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemoryMmap,
    limit: usize,
    out: &mut Taken<'m>,
) -> Result<usize, virtio_queue::Error> {
    let mut chains = queue.iter(mem)?;
    let mut taken = 0usize;
    for slot in out.iter_mut().take(limit) {
        let Some(chain) = chains.next() else { break };
        *slot = Some(chain);
        taken = taken.saturating_add(1);
    }
    Ok(taken)
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
    let memory = Arc::clone(&used.memory);
    let mem: &GuestMemoryMmap = &memory;
    let event_idx = used.state.get_queue().event_idx_enabled();
    let size = used.state.get_queue().size();
    let mut budget = usize::from(size).saturating_mul(ROUNDS_PER_CALL);
    let mut taken: Taken<'_> = std::array::from_fn(|_| None);
    loop {
        if event_idx && let Err(e) = used.queue().disable_notification(mem) {
            vring.stop(format_args!("cannot update the notification area: {e}"));
            break;
        }
        loop {
            let next = used.queue().next_avail();
            let count = match take(used.queue(), mem, budget.min(TAKE), &mut taken) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    vring.stop(format_args!(
                        "available ring unusable at {next} in a {size}-entry queue: {e}"
                    ));
                    sink.batch_end(mem, &mut used);
                    used.finish();
                    return;
                }
            };
            for chain in taken.iter_mut().take(count).filter_map(Option::take) {
                let head = chain.head_index();
                if head >= size {
                    vring.reports().warn(format_args!(
                        "chain head {head} is beyond the {size}-entry queue; skipped"
                    ));
                } else {
                    sink.chain(chain, &mut used);
                }
            }
            budget = budget.saturating_sub(count);
            if budget == 0 {
                // Let the frontend's messages and other queues in; come back at once.
                sink.batch_end(mem, &mut used);
                used.finish();
                vring.rekick();
                return;
            }
        }
        sink.batch_end(mem, &mut used);
        if !event_idx {
            break;
        }
        // Re-reads the available index after a full fence, so that a chain posted while
        // notifications were off is not missed.
        match used.queue().enable_notification(mem) {
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
