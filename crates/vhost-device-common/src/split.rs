//! The split virtqueue as the request path reads and writes it: the available ring, the
//! descriptor table (direct and indirect) walked straight into a [`ChainLayout`], the used
//! ring and the EVENT_IDX fields, over [`Ram`].
//!
//! It follows virtio-queue 0.18 exactly (the differential test `tests/split_vs_virtio_queue.rs`
//! compares both on random rings), so that replacing its generic path changed no result:
//!
//! - the driver's available index may be at most a queue's worth ahead of the device's
//!   position ([`SplitRing::pending`] refuses more, and the caller stops the ring);
//! - a chain ends at a descriptor without NEXT, at a `next` beyond its table, after as many
//!   descriptors as its table holds (a loop cannot run for ever), at an unreadable indirect
//!   descriptor, at an indirect descriptor inside an indirect table or one whose length is
//!   not a multiple of 16 (or describes more than 65535 entries), or where the chain's total
//!   length would pass 4 GiB;
//! - an INDIRECT descriptor switches to its table, whose length bounds the rest of the chain.
//!
//! What it does differently: one read of each descriptor (16 bytes, one copy), no iterator
//! state beyond a few integers, the used index published once per batch
//! ([`SplitRing::publish_used`]) instead of once per element, and no per-access re-lookup of
//! the region (see [`Ram`]).

use std::num::Wrapping;
use std::sync::atomic::{Ordering, fence};

use virtio_queue::{Queue, QueueT};

use crate::chain::{ChainError, ChainLayout, Segment};
use crate::ram::{Ram, RamError};

const DESC_SIZE: u64 = 16;

/// A descriptor as the driver lays it out (little-endian fields).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}
const _: () = assert!(size_of::<RawDesc>() as u64 == DESC_SIZE);
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

/// The driver's available index is more than a queue's worth ahead of the device.
#[derive(Debug, thiserror::Error)]
pub enum AvailError {
    /// More entries than the queue holds.
    #[error(
        "the driver's available index {avail} is {ahead} entries ahead of {next} in a {size}-entry queue"
    )]
    TooFarAhead {
        /// The driver's index.
        avail: u16,
        /// The device's position.
        next: u16,
        /// Entries ahead.
        ahead: u16,
        /// Queue size.
        size: u16,
    },
    /// The ring could not be read.
    #[error("the available ring is unreadable")]
    Ram(#[from] RamError),
}

/// One split virtqueue's addresses and the device's positions in it, copied out of
/// virtio-queue's `Queue` while the ring's lock is held and written back by
/// [`SplitRing::store_positions`].
#[derive(Debug, Clone, Copy)]
pub struct SplitRing {
    desc_table: u64,
    avail: u64,
    used: u64,
    size: u16,
    /// `size - 1`: virtio-queue accepts only power-of-two sizes, so a position's slot is
    /// `position & mask` (`slot` falls back to a remainder should that ever change).
    mask: u16,
    event_idx: bool,
    next_avail: Wrapping<u16>,
    next_used: Wrapping<u16>,
    /// The used index the driver has been shown (published) last.
    published: Wrapping<u16>,
}

impl SplitRing {
    /// The ring `queue` describes, at the device's current positions.
    pub fn of(queue: &Queue) -> Self {
        let next_used = Wrapping(queue.next_used());
        SplitRing {
            desc_table: queue.desc_table(),
            avail: queue.avail_ring(),
            used: queue.used_ring(),
            size: queue.size(),
            mask: queue.size().wrapping_sub(1),
            event_idx: queue.event_idx_enabled(),
            next_avail: Wrapping(queue.next_avail()),
            next_used,
            published: next_used,
        }
    }

    /// Writes the device's positions back into `queue` (GET_VRING_BASE reads them there).
    pub fn store_positions(&self, queue: &mut Queue) {
        queue.set_next_avail(self.next_avail.0);
        queue.set_next_used(self.next_used.0);
    }

    /// The ring slot of position `position`.
    #[inline]
    fn slot(&self, position: Wrapping<u16>) -> u64 {
        let slot = if self.size.is_power_of_two() {
            position.0 & self.mask
        } else {
            position.0.checked_rem(self.size).unwrap_or(0)
        };
        u64::from(slot)
    }

    /// Entries in the queue.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Whether EVENT_IDX was negotiated.
    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// The device's position in the available ring.
    pub fn next_avail(&self) -> u16 {
        self.next_avail.0
    }

    /// The next used-ring position.
    pub fn next_used(&self) -> u16 {
        self.next_used.0
    }

    /// The guest address of the available ring (0 is refused as not set up, as virtio-queue
    /// does).
    pub fn avail_addr(&self) -> u64 {
        self.avail
    }

    /// Reads the driver's available index (Acquire: the entries and descriptors it covers
    /// are visible after it) and returns how many chains are available.
    pub fn pending(&self, ram: &Ram) -> Result<u16, AvailError> {
        let avail = ram.load_u16(self.avail.wrapping_add(2), Ordering::Acquire)?;
        let ahead = (Wrapping(avail) - self.next_avail).0;
        if ahead > self.size {
            return Err(AvailError::TooFarAhead {
                avail,
                next: self.next_avail.0,
                ahead,
                size: self.size,
            });
        }
        Ok(ahead)
    }

    /// Takes the next available entry: the head index of a chain (possibly beyond the
    /// queue: the caller checks). Call only after [`SplitRing::pending`] said there is one.
    #[inline]
    pub fn pop(&mut self, ram: &Ram) -> Result<u16, RamError> {
        let at = self
            .avail
            .wrapping_add(4)
            .wrapping_add(self.slot(self.next_avail).wrapping_mul(2));
        // SAFETY: any two bytes are a valid `u16`.
        let entry = unsafe { ram.read_plain::<u16>(at) }?;
        self.next_avail += Wrapping(1);
        Ok(u16::from_le(entry))
    }

    /// Walks the chain at `head` into `out`'s readable and writable segments (`out` is
    /// reused from chain to chain: no 500-byte layout is built and moved per chain); see the
    /// module documentation for where a chain ends.
    #[inline]
    pub fn walk(&self, ram: &Ram, head: u16, out: &mut ChainLayout) -> Result<(), ChainError> {
        out.head = head;
        out.readable.clear();
        out.writable.clear();
        let ChainLayout {
            readable, writable, ..
        } = out;
        let mut table = self.desc_table;
        let mut table_len = self.size;
        let mut indirect = false;
        let mut next = head;
        let mut ttl = self.size;
        let mut total: u32 = 0;
        while ttl != 0 && next < table_len {
            let Some(at) = table.checked_add(u64::from(next).wrapping_mul(DESC_SIZE)) else {
                break;
            };
            // SAFETY: `RawDesc` is four integers with no padding: any bytes are a valid one.
            let Ok(raw) = (unsafe { ram.read_plain::<RawDesc>(at) }) else {
                break;
            };
            let addr = u64::from_le(raw.addr);
            let len = u32::from_le(raw.len);
            let flags = u16::from_le(raw.flags);
            if flags & F_INDIRECT != 0 {
                let entries = len / 16;
                if indirect || len % 16 != 0 || entries > u32::from(u16::MAX) {
                    break;
                }
                table = addr;
                table_len = u16::try_from(entries).unwrap_or(0);
                ttl = table_len;
                next = 0;
                indirect = true;
                continue;
            }
            let Some(t) = total.checked_add(len) else {
                break;
            };
            total = t;
            if flags & F_NEXT != 0 {
                next = u16::from_le(raw.next);
                ttl = ttl.saturating_sub(1);
            } else {
                ttl = 0;
            }
            let seg = Segment {
                addr: vm_memory::GuestAddress(addr),
                len,
            };
            if flags & F_WRITE != 0 {
                writable.push(seg)?;
            } else if !writable.as_slice().is_empty() {
                return Err(ChainError::Misordered);
            } else {
                readable.push(seg)?;
            }
        }
        Ok(())
    }

    /// Writes the used element for `head` with `len` bytes written (the caller checked that
    /// `head` is below the queue size). Published by [`SplitRing::publish_used`].
    #[inline]
    pub fn add_used(&mut self, ram: &Ram, head: u16, len: u32) -> Result<(), RamError> {
        let at = self
            .used
            .wrapping_add(4)
            .wrapping_add(self.slot(self.next_used).wrapping_mul(8));
        let mut elem = [0u8; 8];
        let (id, l) = elem.split_at_mut(4);
        id.copy_from_slice(&u32::from(head).to_le_bytes());
        l.copy_from_slice(&len.to_le_bytes());
        ram.write(at, &elem)?;
        self.next_used += Wrapping(1);
        Ok(())
    }

    /// Makes the used elements written so far visible to the driver (one Release store of
    /// the used index).
    pub fn publish_used(&mut self, ram: &Ram) -> Result<(), RamError> {
        if self.published == self.next_used {
            return Ok(());
        }
        ram.store_u16(
            self.used.wrapping_add(2),
            self.next_used.0,
            Ordering::Release,
        )?;
        self.published = self.next_used;
        Ok(())
    }

    /// With EVENT_IDX: asks the driver to notify at the next available entry, then re-reads
    /// the available index after a full fence; true if chains arrived meanwhile. Without
    /// EVENT_IDX the driver always notifies (the device never sets NO_NOTIFY): false.
    pub fn enable_notification(&self, ram: &Ram) -> Result<bool, RamError> {
        if !self.event_idx {
            return Ok(false);
        }
        let avail_event = self
            .used
            .wrapping_add(4)
            .wrapping_add(u64::from(self.size).wrapping_mul(8));
        ram.store_u16(avail_event, self.next_avail.0, Ordering::Relaxed)?;
        fence(Ordering::SeqCst);
        let avail = ram.load_u16(self.avail.wrapping_add(2), Ordering::Relaxed)?;
        Ok(avail != self.next_avail.0)
    }

    /// Whether the driver wants an interrupt for the elements used since `since` (the used
    /// index when the batch began): with EVENT_IDX, whether its `used_event` lies in
    /// `[since, next_used)`; otherwise always. The caller published the elements first.
    pub fn needs_notification(&self, ram: &Ram, since: u16) -> Result<bool, RamError> {
        fence(Ordering::SeqCst);
        if !self.event_idx {
            return Ok(true);
        }
        let used_event_at = self
            .avail
            .wrapping_add(4)
            .wrapping_add(u64::from(self.size).wrapping_mul(2));
        let used_event = Wrapping(ram.load_u16(used_event_at, Ordering::Relaxed)?);
        let used = self.next_used;
        Ok(used - used_event - Wrapping(1) < used - Wrapping(since))
    }
}
