//! The driver's half of a split queue, as a guest's `virtio_ring.c` does it: a free list of
//! descriptors, chains (direct or through an indirect table) made available with a Release
//! store of the index, used elements read after an Acquire load of the used index, and
//! notification suppression from the driver's side.
//!
//! For tests, fuzzing and the bare-metal demonstration, where this crate's device side
//! needs a driver to talk to. It trusts the device's used ids only as far as checking them.

use core::sync::atomic::{Ordering, fence};

use crate::memory::{GuestMemory, MemoryError};
use crate::ring::{
    DESC_SIZE, Descriptor, LayoutError, QueueLayout, VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY,
    avail_bytes, used_bytes,
};

/// A buffer to add: guest address, length, device-writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Guest address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// Device-writable.
    pub writable: bool,
}

/// Why the driver could not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Not enough free descriptors.
    #[error("no free descriptors")]
    Full,
    /// An empty chain.
    #[error("a chain needs at least one buffer")]
    Empty,
    /// Bad layout.
    #[error("layout")]
    Layout(#[from] LayoutError),
    /// Memory.
    #[error("memory")]
    Memory(#[from] MemoryError),
    /// The device returned an id that is not an outstanding head.
    #[error("the device returned descriptor {0}, which is not in flight")]
    BadUsedId(u32),
}

/// The driver side of one queue of at most `N` entries.
#[derive(Debug)]
pub struct DriverQueue<const N: usize> {
    layout: QueueLayout,
    free_head: u16,
    num_free: u16,
    next_avail: u16,
    last_used: u16,
    /// Descriptors each outstanding head holds (0: not in flight).
    held: [u16; N],
}

impl<const N: usize> DriverQueue<N> {
    /// Initialises the rings in `mem` (zeroed, free list linked).
    pub fn new(mem: &GuestMemory<'_>, layout: QueueLayout) -> Result<Self, DriverError> {
        layout.validate(mem)?;
        if usize::from(layout.size) > N {
            return Err(DriverError::Layout(LayoutError::BadSize(layout.size)));
        }
        let zero = |addr, len: u64| -> Result<(), DriverError> {
            let len = usize::try_from(len).map_err(|_| MemoryError::OutOfRange { addr, len })?;
            Ok(mem.fill(addr, len, 0)?)
        };
        zero(layout.avail_ring, avail_bytes(layout.size))?;
        zero(layout.used_ring, used_bytes(layout.size))?;
        for i in 0..layout.size {
            Descriptor {
                addr: 0,
                len: 0,
                flags: 0,
                next: i.wrapping_add(1),
            }
            .write(mem, layout.desc_addr(i))?;
        }
        Ok(Self {
            layout,
            free_head: 0,
            num_free: layout.size,
            next_avail: 0,
            last_used: 0,
            held: [0; N],
        })
    }

    /// The layout.
    pub fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// Free descriptors.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    fn take_descriptors(&mut self, count: u16) -> Result<u16, DriverError> {
        if count == 0 {
            return Err(DriverError::Empty);
        }
        if count > self.num_free {
            return Err(DriverError::Full);
        }
        Ok(self.free_head)
    }

    /// Adds a chain of direct descriptors and makes it available; returns its head.
    pub fn add(&mut self, mem: &GuestMemory<'_>, bufs: &[Buffer]) -> Result<u16, DriverError> {
        let count = u16::try_from(bufs.len()).map_err(|_| DriverError::Full)?;
        let head = self.take_descriptors(count)?;
        let mut index = head;
        for (i, b) in bufs.iter().enumerate() {
            let at = self.layout.desc_addr(index);
            // The free list continues through `next` of free descriptors.
            let next_free = Descriptor::read(mem, at)?.next;
            let last = i.saturating_add(1) == bufs.len();
            let mut flags = if b.writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if !last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            Descriptor {
                addr: b.addr,
                len: b.len,
                flags,
                next: next_free,
            }
            .write(mem, at)?;
            if last {
                self.free_head = next_free;
            }
            index = next_free;
        }
        self.num_free = self.num_free.saturating_sub(count);
        self.publish(mem, head, count)
    }

    /// Adds a chain through an indirect table written at guest address `table` (16-byte
    /// aligned, `16 * bufs.len()` bytes the driver owns); one ring descriptor.
    pub fn add_indirect(
        &mut self,
        mem: &GuestMemory<'_>,
        table: u64,
        bufs: &[Buffer],
    ) -> Result<u16, DriverError> {
        let count = u16::try_from(bufs.len()).map_err(|_| DriverError::Full)?;
        if count == 0 {
            return Err(DriverError::Empty);
        }
        let head = self.take_descriptors(1)?;
        for (i, (b, at)) in bufs.iter().zip((table..).step_by(16)).enumerate() {
            let next = u16::try_from(i.saturating_add(1)).map_err(|_| DriverError::Full)?;
            let mut flags = if b.writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if next < count {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            Descriptor {
                addr: b.addr,
                len: b.len,
                flags,
                next,
            }
            .write(mem, at)?;
        }
        let at = self.layout.desc_addr(head);
        let next_free = Descriptor::read(mem, at)?.next;
        Descriptor {
            addr: table,
            len: u32::from(count).saturating_mul(16),
            flags: VIRTQ_DESC_F_INDIRECT,
            next: next_free,
        }
        .write(mem, at)?;
        self.free_head = next_free;
        self.num_free = self.num_free.saturating_sub(1);
        self.publish(mem, head, 1)
    }

    /// Writes the ring entry, then the index with Release (the device's Acquire load pairs).
    fn publish(
        &mut self,
        mem: &GuestMemory<'_>,
        head: u16,
        count: u16,
    ) -> Result<u16, DriverError> {
        if let Some(h) = self.held.get_mut(usize::from(head)) {
            *h = count;
        }
        mem.atomic_u16(self.layout.avail_entry(self.next_avail))?
            .store(head.to_le(), Ordering::Relaxed);
        self.next_avail = self.next_avail.wrapping_add(1);
        mem.atomic_u16(self.layout.avail_idx())?
            .store(self.next_avail.to_le(), Ordering::Release);
        Ok(head)
    }

    /// Whether the device wants a kick for what was made available since `since` (the
    /// available index before the batch): its NO_NOTIFY flag, or with EVENT_IDX its
    /// `avail_event`.
    pub fn needs_kick(&self, mem: &GuestMemory<'_>, since: u16) -> Result<bool, DriverError> {
        // Our index store before the device's fields are read.
        fence(Ordering::SeqCst);
        if self.layout.event_idx {
            let event = u16::from_le(
                mem.atomic_u16(self.layout.avail_event())?
                    .load(Ordering::Relaxed),
            );
            let new = self.next_avail;
            Ok(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(since))
        } else {
            let flags = u16::from_le(
                mem.atomic_u16(self.layout.used_flags())?
                    .load(Ordering::Relaxed),
            );
            Ok(flags & VIRTQ_USED_F_NO_NOTIFY == 0)
        }
    }

    /// The available index (for [`DriverQueue::needs_kick`]'s `since`).
    pub fn avail_index(&self) -> u16 {
        self.next_avail
    }

    /// Takes the next used element (Acquire on the used index): `(head, len)`, and frees
    /// its descriptors.
    pub fn pop_used(&mut self, mem: &GuestMemory<'_>) -> Result<Option<(u16, u32)>, DriverError> {
        let used = u16::from_le(
            mem.atomic_u16(self.layout.used_idx())?
                .load(Ordering::Acquire),
        );
        if used == self.last_used {
            return Ok(None);
        }
        let at = self.layout.used_entry(self.last_used);
        let id = u32::from_le(mem.atomic_u32(at)?.load(Ordering::Relaxed));
        let len = u32::from_le(
            mem.atomic_u32(at.saturating_add(4))?
                .load(Ordering::Relaxed),
        );
        let head = u16::try_from(id)
            .ok()
            .filter(|h| *h < self.layout.size)
            .ok_or(DriverError::BadUsedId(id))?;
        let count = self
            .held
            .get_mut(usize::from(head))
            .map(core::mem::take)
            .filter(|c| *c > 0)
            .ok_or(DriverError::BadUsedId(id))?;
        self.last_used = self.last_used.wrapping_add(1);
        // Return the chain's descriptors to the free list: walk to its tail.
        let mut tail = head;
        for _ in 1..count {
            tail = Descriptor::read(mem, self.layout.desc_addr(tail))?.next;
        }
        let at = self.layout.desc_addr(tail);
        let mut d = Descriptor::read(mem, at)?;
        d.next = self.free_head;
        d.write(mem, at)?;
        self.free_head = head;
        self.num_free = self.num_free.saturating_add(count);
        Ok(Some((head, len)))
    }

    /// Asks for an interrupt only once the used index passes `index` (EVENT_IDX), or turns
    /// interrupts on or off with the NO_INTERRUPT flag.
    pub fn set_interrupts(
        &mut self,
        mem: &GuestMemory<'_>,
        enabled: bool,
    ) -> Result<(), DriverError> {
        if self.layout.event_idx {
            // Interrupt for the next used element (as Linux's virtqueue_enable_cb).
            let event = if enabled {
                self.last_used
            } else {
                self.last_used.wrapping_sub(1)
            };
            mem.atomic_u16(self.layout.used_event())?
                .store(event.to_le(), Ordering::Relaxed);
        } else {
            let flags = if enabled {
                0
            } else {
                VIRTQ_AVAIL_F_NO_INTERRUPT
            };
            mem.atomic_u16(self.layout.avail_flags())?
                .store(flags.to_le(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        Ok(())
    }
}

/// Bytes of descriptor table a queue of `size` needs (for laying out memory).
pub fn table_bytes(size: u16) -> u64 {
    u64::from(size).saturating_mul(DESC_SIZE)
}
