//! The virtqueue drain loop with EVENT_IDX, and the worker-thread exit event.
//!
//! Devices implement [`ChainSink`]: they receive every available descriptor chain and complete
//! it (now, or later for held buffers) through [`UsedRing`]. The loop here owns notification
//! suppression and the one signal to the guest at the end of a batch, so no device repeats it.

use std::io;
use std::ops::Deref;

use log::error;
use vhost_user_backend::{VringRwLock, VringState, VringT};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::bitmap::Bitmap;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

/// The memory handle every chain handed to a [`ChainSink`] carries.
pub type ChainMemory<'a, B> = &'a GuestMemoryMmap<B>;

/// Why draining a queue failed (host-side faults only: guest mistakes never get here).
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The queue's notification area is not accessible.
    #[error("cannot update queue notification state: {0}")]
    Notification(#[source] virtio_queue::Error),
    /// The call eventfd could not be written.
    #[error("cannot signal the guest: {0}")]
    Signal(#[source] io::Error),
}

/// Completion side of a queue, handed to [`ChainSink`] while a batch is drained.
pub struct UsedRing<'a, M: GuestAddressSpace> {
    state: &'a mut VringState<M>,
    added: usize,
}

impl<M: GuestAddressSpace> std::fmt::Debug for UsedRing<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsedRing")
            .field("added", &self.added)
            .finish_non_exhaustive()
    }
}

impl<'a, M: GuestAddressSpace> UsedRing<'a, M> {
    /// Wraps a locked vring; call [`UsedRing::finish`] to signal the guest if needed.
    pub fn new(state: &'a mut VringState<M>) -> Self {
        UsedRing { state, added: 0 }
    }

    /// Puts the chain `head` into the used ring with `len` bytes written.
    ///
    /// Returns false (and logs) if the used ring is not writable, which only a broken
    /// frontend causes; the caller has nothing better to do with the chain then.
    pub fn add(&mut self, head: u16, len: u32) -> bool {
        match self.state.add_used(head, len) {
            Ok(()) => {
                self.added = self.added.saturating_add(1);
                true
            }
            Err(e) => {
                error!("cannot add descriptor {head} to the used ring: {e}");
                false
            }
        }
    }

    /// Signals the guest once if anything was completed and the guest wants to know.
    pub fn finish(self) -> Result<(), DrainError> {
        if self.added > 0
            && self
                .state
                .needs_notification()
                .map_err(DrainError::Notification)?
        {
            self.state.signal_used_queue().map_err(DrainError::Signal)?;
        }
        Ok(())
    }

    fn state(&mut self) -> &mut VringState<M> {
        self.state
    }
}

/// A device's handling of the chains of one queue.
pub trait ChainSink<B: Bitmap + 'static, M: GuestAddressSpace> {
    /// Handles one available chain; it completes it with `used.add` now or keeps its head to
    /// complete it later.
    fn chain(&mut self, chain: DescriptorChain<ChainMemory<'_, B>>, used: &mut UsedRing<'_, M>);

    /// Called when the available ring has no more chains (before notifications are
    /// re-enabled), e.g. to execute a request group cut by the end of the ring.
    fn batch_end(&mut self, _mem: ChainMemory<'_, B>, _used: &mut UsedRing<'_, M>) {}
}

/// Drains every available chain of `vring` into `sink`, with EVENT_IDX notification
/// suppression when `event_idx` is on, then signals the guest once if needed.
pub fn drain<B, S>(
    vring: &VringRwLock<GuestMemoryAtomic<GuestMemoryMmap<B>>>,
    mem: &GuestMemoryAtomic<GuestMemoryMmap<B>>,
    event_idx: bool,
    sink: &mut S,
) -> Result<(), DrainError>
where
    B: Bitmap + 'static,
    S: ChainSink<B, GuestMemoryAtomic<GuestMemoryMmap<B>>>,
{
    let guard = mem.memory();
    let memory: &GuestMemoryMmap<B> = guard.deref();
    let mut state = vring.get_mut();
    let mut used = UsedRing::new(&mut state);
    loop {
        if event_idx {
            used.state()
                .disable_notification()
                .map_err(DrainError::Notification)?;
        }
        while let Some(chain) = used.state().get_queue_mut().pop_descriptor_chain(memory) {
            sink.chain(chain, &mut used);
        }
        sink.batch_end(memory, &mut used);
        if !event_idx
            || !used
                .state()
                .enable_notification()
                .map_err(DrainError::Notification)?
        {
            break;
        }
    }
    used.finish()
}

/// Creates the exit event of a vring worker thread; return it from
/// `VhostUserBackend::exit_event` so worker threads end with their connection.
pub fn worker_exit_event() -> Option<(EventConsumer, EventNotifier)> {
    match new_event_consumer_and_notifier(EventFlag::NONBLOCK) {
        Ok(pair) => Some(pair),
        Err(e) => {
            error!("cannot create worker exit event: {e}");
            None
        }
    }
}
