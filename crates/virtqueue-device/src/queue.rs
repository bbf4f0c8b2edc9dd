//! The device side of one split virtqueue: take available chains, return used ones, and
//! decide when the driver needs an interrupt.
//!
//! Ordering, for a driver on another (weakly ordered) core:
//! - the available index is loaded with Acquire, then the ring entries and descriptors it
//!   covers are read: the driver's Release store of the index (or its write barrier)
//!   made them visible first;
//! - used elements (and the bytes written into buffers) are stored, then the used index is
//!   stored with Release: the driver that reads the index with Acquire sees them;
//! - notification suppression needs a store to be visible before a load (the used index
//!   before reading `used_event`/the driver's flags; `avail_event`/our flags before re-reading
//!   the available index): a SeqCst fence between them, as the Linux driver has `virtio_mb`.

use core::sync::atomic::{Ordering, fence};

use crate::chain::{Chain, ChainError};
use crate::memory::{GuestMemory, MemoryError};
use crate::ring::{LayoutError, QueueLayout, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY};

/// Why a queue stopped. A stopped queue takes no more chains until it is set up again; the
/// driver's ring is broken (or hostile) in a way no single chain's answer can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The layout was refused.
    #[error("bad queue layout")]
    Layout(#[from] LayoutError),
    /// The available index claims more new entries than the queue has.
    #[error("available index {avail} is more than a queue ({size}) ahead of {next}")]
    AvailTooFar {
        /// Index read.
        avail: u16,
        /// The device's next index.
        next: u16,
        /// Queue size.
        size: u16,
    },
    /// An available ring entry names a head outside the descriptor table.
    #[error("available head {head} outside a table of {size}")]
    HeadOutOfRange {
        /// Head read.
        head: u16,
        /// Queue size.
        size: u16,
    },
    /// The driver made a chain available while every entry of the queue was still in
    /// flight: it reused descriptors the device owns.
    #[error("a chain made available while the whole queue is in flight")]
    InFlightFull,
    /// More used elements than chains taken: a caller bug, refused rather than
    /// overwriting an element the driver has not consumed.
    #[error("more used elements than available chains taken")]
    UsedOverflow,
    /// A ring field could not be accessed (cannot happen after validation; kept explicit).
    #[error("ring access")]
    Memory(#[from] MemoryError),
    /// The queue stopped earlier for this reason.
    #[error("the queue is stopped")]
    Stopped,
}

/// A chain taken from the available ring: its head, and its buffers or why they are unusable
/// (then return it with [`SplitQueue::add_used`] and a length of 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped {
    /// Head descriptor index.
    pub head: u16,
    /// The walked chain.
    pub chain: Result<Chain, ChainError>,
}

/// One split virtqueue, device side. Holds no reference to guest memory: each call is
/// given the memory, so a platform can keep the queue in a static and the memory in the
/// interrupt handler.
#[derive(Debug, Clone)]
pub struct SplitQueue {
    layout: QueueLayout,
    /// Next available entry to take.
    next_avail: u16,
    /// Available index as last read (entries up to it need no new read of the index).
    avail_seen: u16,
    /// Next used entry to fill.
    next_used: u16,
    /// Used index at the last interrupt decision (0 at start: nothing to signal yet).
    signalled_used: u16,
    stopped: Option<QueueError>,
}

impl SplitQueue {
    /// A queue over `layout`, both indices at 0 (a freshly initialised driver ring).
    pub fn new(mem: &GuestMemory<'_>, layout: QueueLayout) -> Result<Self, QueueError> {
        layout.validate(mem)?;
        Ok(Self {
            layout,
            next_avail: 0,
            avail_seen: 0,
            next_used: 0,
            signalled_used: 0,
            stopped: None,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// Why the queue stopped, if it did.
    pub fn stopped(&self) -> Option<QueueError> {
        self.stopped
    }

    /// Chains taken and not yet returned.
    pub fn in_flight(&self) -> u16 {
        self.next_avail.wrapping_sub(self.next_used)
    }

    fn stop(&mut self, e: QueueError) -> QueueError {
        self.stopped = Some(e);
        e
    }

    fn check_running(&self) -> Result<(), QueueError> {
        match self.stopped {
            Some(_) => Err(QueueError::Stopped),
            None => Ok(()),
        }
    }

    /// Loads the available index (Acquire) and checks it against the queue size.
    fn load_avail(&mut self, mem: &GuestMemory<'_>) -> Result<u16, QueueError> {
        let avail = u16::from_le(
            mem.atomic_u16(self.layout.avail_idx())?
                .load(Ordering::Acquire),
        );
        if avail.wrapping_sub(self.next_avail) > self.layout.size {
            return Err(self.stop(QueueError::AvailTooFar {
                avail,
                next: self.next_avail,
                size: self.layout.size,
            }));
        }
        self.avail_seen = avail;
        Ok(avail)
    }

    /// Takes the next available chain, if any. A hostile ring stops the queue (the error);
    /// a hostile chain is returned as [`Popped::chain`]'s error for the caller to answer.
    pub fn pop(&mut self, mem: &GuestMemory<'_>) -> Result<Option<Popped>, QueueError> {
        self.check_running()?;
        if self.next_avail == self.avail_seen && self.load_avail(mem)? == self.next_avail {
            return Ok(None);
        }
        // Never more chains out than the ring has room to return.
        if self.in_flight() >= self.layout.size {
            return Err(self.stop(QueueError::InFlightFull));
        }
        let entry = mem.atomic_u16(self.layout.avail_entry(self.next_avail))?;
        let head = u16::from_le(entry.load(Ordering::Relaxed));
        if head >= self.layout.size {
            return Err(self.stop(QueueError::HeadOutOfRange {
                head,
                size: self.layout.size,
            }));
        }
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(Popped {
            head,
            chain: Chain::walk(mem, &self.layout, head),
        }))
    }

    /// Returns chain `head` to the driver with `len` bytes written, then publishes the used
    /// index (Release).
    pub fn add_used(
        &mut self,
        mem: &GuestMemory<'_>,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        if self.in_flight() == 0 {
            return Err(QueueError::UsedOverflow);
        }
        let at = self.layout.used_entry(self.next_used);
        mem.atomic_u32(at)?
            .store(u32::from(head).to_le(), Ordering::Relaxed);
        mem.atomic_u32(at.saturating_add(4))?
            .store(len.to_le(), Ordering::Relaxed);
        self.next_used = self.next_used.wrapping_add(1);
        mem.atomic_u16(self.layout.used_idx())?
            .store(self.next_used.to_le(), Ordering::Release);
        Ok(())
    }

    /// Whether the driver wants an interrupt for the used elements added since the last
    /// call (its flags, or with EVENT_IDX its `used_event`). Call once per batch.
    pub fn needs_interrupt(&mut self, mem: &GuestMemory<'_>) -> Result<bool, QueueError> {
        let new = self.next_used;
        let old = core::mem::replace(&mut self.signalled_used, new);
        if old == new {
            return Ok(false);
        }
        // The used index store must be visible before the driver's fields are read.
        fence(Ordering::SeqCst);
        if self.layout.event_idx {
            let event = u16::from_le(
                mem.atomic_u16(self.layout.used_event())?
                    .load(Ordering::Relaxed),
            );
            // vring_need_event: the driver asked for an interrupt once the used index passes
            // `event`, and `event` lies in [old, new).
            Ok(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old))
        } else {
            let flags = u16::from_le(
                mem.atomic_u16(self.layout.avail_flags())?
                    .load(Ordering::Relaxed),
            );
            Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Asks the driver not to kick (without EVENT_IDX: the used ring's NO_NOTIFY flag; with
    /// it, `avail_event` is simply left behind).
    pub fn disable_kicks(&mut self, mem: &GuestMemory<'_>) -> Result<(), QueueError> {
        if !self.layout.event_idx {
            mem.atomic_u16(self.layout.used_flags())?
                .store(VIRTQ_USED_F_NO_NOTIFY.to_le(), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Asks the driver to kick for the next chain, then checks (after a full fence) whether
    /// one arrived meanwhile: `true` means drain again, its kick may never come.
    pub fn enable_kicks(&mut self, mem: &GuestMemory<'_>) -> Result<bool, QueueError> {
        self.check_running()?;
        if self.layout.event_idx {
            mem.atomic_u16(self.layout.avail_event())?
                .store(self.next_avail.to_le(), Ordering::Relaxed);
        } else {
            mem.atomic_u16(self.layout.used_flags())?
                .store(0, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        Ok(self.load_avail(mem)? != self.next_avail)
    }

    /// Drains the queue: every available chain goes to `handle`, which returns its used
    /// length, or `None` to keep it (complete it later with [`SplitQueue::add_used`]).
    /// Kicks are disabled while draining and re-enabled, with the race re-check, at the end.
    /// Returns whether the driver needs a used-buffer interrupt.
    pub fn drain(
        &mut self,
        mem: &GuestMemory<'_>,
        mut handle: impl FnMut(Popped) -> Option<u32>,
    ) -> Result<bool, QueueError> {
        loop {
            self.disable_kicks(mem)?;
            while let Some(popped) = self.pop(mem)? {
                let head = popped.head;
                if let Some(len) = handle(popped) {
                    self.add_used(mem, head, len)?;
                }
            }
            if !self.enable_kicks(mem)? {
                break;
            }
        }
        self.needs_interrupt(mem)
    }
}
