//! The split ring's layout (virtio 1.2, 2.7): where each field of a queue of `size` entries
//! lives, and the checks a layout must pass before a queue runs.

use core::sync::atomic::Ordering;

use crate::memory::{GuestMemory, MemoryError};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver wants no used-buffer interrupts (without EVENT_IDX).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device wants no kicks (without EVENT_IDX).
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;
/// Feature bit: indirect descriptors.
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
/// Feature bit: `used_event`/`avail_event` notification suppression.
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
/// Largest split queue (the spec's maximum Queue Size).
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Size of one descriptor.
pub const DESC_SIZE: u64 = 16;

/// Why a queue layout was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The size is 0, above 32768 or not a power of two.
    #[error("queue size {0} is not a power of two in 1..=32768")]
    BadSize(u16),
    /// A ring part is misaligned or not inside guest memory.
    #[error("the {part} is not inside guest memory or misaligned")]
    Ring {
        /// Which part.
        part: &'static str,
        /// What is wrong with it.
        #[source]
        source: MemoryError,
    },
}

/// Where a queue's three parts are, and what the driver negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLayout {
    /// Number of entries (a power of two).
    pub size: u16,
    /// Guest address of the descriptor table (16-byte aligned).
    pub desc_table: u64,
    /// Guest address of the available ring (2-byte aligned).
    pub avail_ring: u64,
    /// Guest address of the used ring (4-byte aligned).
    pub used_ring: u64,
    /// VIRTIO_F_EVENT_IDX negotiated.
    pub event_idx: bool,
    /// VIRTIO_F_INDIRECT_DESC negotiated.
    pub indirect: bool,
}

impl QueueLayout {
    /// A packed layout at `base` (descriptors, then available ring, then used ring at the next
    /// 4-byte boundary), as a driver with contiguous memory lays it out.
    pub fn packed_at(base: u64, size: u16, event_idx: bool, indirect: bool) -> Option<Self> {
        let desc_bytes = u64::from(size).checked_mul(DESC_SIZE)?;
        let avail_ring = base.checked_add(desc_bytes)?;
        let avail_bytes = avail_bytes(size);
        let used_ring = avail_ring.checked_add(avail_bytes)?.checked_add(3)? & !3;
        Some(Self {
            size,
            desc_table: base,
            avail_ring,
            used_ring,
            event_idx,
            indirect,
        })
    }

    /// The first guest address after the used ring.
    pub fn end(&self) -> Option<u64> {
        self.used_ring.checked_add(used_bytes(self.size))
    }

    /// Checks the size and that every part is aligned and inside `mem`.
    pub fn validate(&self, mem: &GuestMemory<'_>) -> Result<(), LayoutError> {
        if self.size == 0 || self.size > MAX_QUEUE_SIZE || !self.size.is_power_of_two() {
            return Err(LayoutError::BadSize(self.size));
        }
        let parts = [
            (
                "descriptor table",
                self.desc_table,
                u64::from(self.size).saturating_mul(DESC_SIZE),
                16,
            ),
            ("available ring", self.avail_ring, avail_bytes(self.size), 2),
            ("used ring", self.used_ring, used_bytes(self.size), 4),
        ];
        for (part, addr, len, align) in parts {
            let check = if !addr.is_multiple_of(align) {
                Err(MemoryError::Misaligned(addr))
            } else {
                mem.check(addr, len)
            };
            check.map_err(|source| LayoutError::Ring { part, source })?;
            // The host side must be as aligned as the guest address (atomics need it).
            mem.atomic_u16(addr)
                .map_err(|source| LayoutError::Ring { part, source })?;
        }
        Ok(())
    }

    /// Ring slot of a free-running index.
    pub(crate) fn slot(&self, index: u16) -> u64 {
        // `size` is a power of two (validated), so this is `index % size`.
        u64::from(index & self.size.wrapping_sub(1))
    }

    /// Guest address of descriptor `index` of the table.
    pub(crate) fn desc_addr(&self, index: u16) -> u64 {
        self.desc_table
            .saturating_add(u64::from(index).saturating_mul(DESC_SIZE))
    }

    pub(crate) fn avail_flags(&self) -> u64 {
        self.avail_ring
    }

    pub(crate) fn avail_idx(&self) -> u64 {
        self.avail_ring.saturating_add(2)
    }

    pub(crate) fn avail_entry(&self, index: u16) -> u64 {
        self.avail_ring
            .saturating_add(4)
            .saturating_add(self.slot(index).saturating_mul(2))
    }

    pub(crate) fn used_event(&self) -> u64 {
        self.avail_ring
            .saturating_add(4)
            .saturating_add(u64::from(self.size).saturating_mul(2))
    }

    pub(crate) fn used_flags(&self) -> u64 {
        self.used_ring
    }

    pub(crate) fn used_idx(&self) -> u64 {
        self.used_ring.saturating_add(2)
    }

    pub(crate) fn used_entry(&self, index: u16) -> u64 {
        self.used_ring
            .saturating_add(4)
            .saturating_add(self.slot(index).saturating_mul(8))
    }

    pub(crate) fn avail_event(&self) -> u64 {
        self.used_ring
            .saturating_add(4)
            .saturating_add(u64::from(self.size).saturating_mul(8))
    }
}

/// Bytes of an available ring: flags, idx, ring[size], used_event.
pub fn avail_bytes(size: u16) -> u64 {
    u64::from(size).saturating_mul(2).saturating_add(6)
}

/// Bytes of a used ring: flags, idx, ring[size] of {id, len}, avail_event.
pub fn used_bytes(size: u16) -> u64 {
    u64::from(size).saturating_mul(8).saturating_add(6)
}

/// One descriptor, each field read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Buffer guest address.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// `VIRTQ_DESC_F_*`.
    pub flags: u16,
    /// Next descriptor when `flags & NEXT`.
    pub next: u16,
}

impl Descriptor {
    /// Reads the descriptor at guest address `at` (16-byte aligned), each field once.
    pub fn read(mem: &GuestMemory<'_>, at: u64) -> Result<Self, MemoryError> {
        if !at.is_multiple_of(DESC_SIZE) {
            return Err(MemoryError::Misaligned(at));
        }
        mem.check(at, DESC_SIZE)?;
        let word = |off: u64| -> Result<u32, MemoryError> {
            Ok(u32::from_le(
                mem.atomic_u32(at.saturating_add(off))?
                    .load(Ordering::Relaxed),
            ))
        };
        let lo = word(0)?;
        let hi = word(4)?;
        let len = word(8)?;
        let flags_next = word(12)?;
        let [f0, f1, n0, n1] = flags_next.to_le_bytes();
        Ok(Self {
            addr: u64::from(hi) << 32 | u64::from(lo),
            len,
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        })
    }

    /// Writes the descriptor at `at` (the driver's side).
    pub fn write(&self, mem: &GuestMemory<'_>, at: u64) -> Result<(), MemoryError> {
        if !at.is_multiple_of(DESC_SIZE) {
            return Err(MemoryError::Misaligned(at));
        }
        mem.check(at, DESC_SIZE)?;
        let [a0, a1, a2, a3, a4, a5, a6, a7] = self.addr.to_le_bytes();
        let [f0, f1] = self.flags.to_le_bytes();
        let [n0, n1] = self.next.to_le_bytes();
        let words = [
            u32::from_le_bytes([a0, a1, a2, a3]),
            u32::from_le_bytes([a4, a5, a6, a7]),
            self.len,
            u32::from_le_bytes([f0, f1, n0, n1]),
        ];
        for (off, w) in (0u64..).step_by(4).zip(words) {
            mem.atomic_u32(at.saturating_add(off))?
                .store(w.to_le(), Ordering::Relaxed);
        }
        Ok(())
    }
}
