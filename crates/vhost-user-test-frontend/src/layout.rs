//! Where things live in guest memory: split-ring placement, the per-queue data
//! areas, and the two allocators (descriptor slots, data buffers) a queue uses.
//!
//! Nothing here touches memory or sockets, so it is unit-tested on its own.

use std::collections::BTreeMap;

/// Alignment of each queue's ring area and of the data area.
const PAGE: u64 = 4096;
/// Alignment of every data buffer (and indirect table, which needs 16).
pub(crate) const BUF_ALIGN: u64 = 16;
/// Size of one split-ring descriptor.
pub(crate) const DESC_SIZE: u64 = 16;
/// Size of one used-ring element (`id: u32, len: u32`).
pub(crate) const USED_ELEM_SIZE: u64 = 8;
/// Largest split-ring size the virtio spec allows.
pub(crate) const MAX_QUEUE_SIZE: u16 = 32768;

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
pub(crate) fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(value.checked_add(mask)? & !mask)
}

/// Guest-physical placement of one split virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Descriptor table: `16 * size` bytes, 16-aligned.
    pub desc: u64,
    /// Available ring: `flags, idx, ring[size], used_event` (`6 + 2 * size` bytes), 2-aligned.
    pub avail: u64,
    /// Used ring: `flags, idx, ring[size], avail_event` (`6 + 8 * size` bytes), 4-aligned.
    pub used: u64,
    /// First byte after the used ring.
    pub end: u64,
}

impl RingLayout {
    /// Places a ring of `size` entries at `base` (which must be 16-aligned).
    pub(crate) fn new(base: u64, size: u16) -> Option<Self> {
        let n = u64::from(size);
        let desc = base;
        let avail = desc.checked_add(DESC_SIZE.checked_mul(n)?)?;
        let avail_len = n.checked_mul(2)?.checked_add(6)?;
        let used = align_up(avail.checked_add(avail_len)?, 4)?;
        let used_len = n.checked_mul(USED_ELEM_SIZE)?.checked_add(6)?;
        let end = used.checked_add(used_len)?;
        Some(Self {
            desc,
            avail,
            used,
            end,
        })
    }

    /// Address of descriptor `index` in the table.
    pub fn desc_addr(&self, index: u16) -> Option<u64> {
        self.desc
            .checked_add(DESC_SIZE.checked_mul(u64::from(index))?)
    }

    /// Address of the available ring's `idx` field.
    pub fn avail_idx_addr(&self) -> Option<u64> {
        self.avail.checked_add(2)
    }

    /// Address of available-ring slot `slot`.
    pub fn avail_slot_addr(&self, slot: u16) -> Option<u64> {
        self.avail
            .checked_add(4)?
            .checked_add(u64::from(slot).checked_mul(2)?)
    }

    /// Address of `used_event` (the trailer after `size` avail-ring slots).
    pub fn used_event_addr(&self, size: u16) -> Option<u64> {
        self.avail_slot_addr(size)
    }

    /// Address of the used ring's `idx` field.
    pub fn used_idx_addr(&self) -> Option<u64> {
        self.used.checked_add(2)
    }

    /// Address of used-ring element `slot`.
    pub fn used_elem_addr(&self, slot: u16) -> Option<u64> {
        self.used
            .checked_add(4)?
            .checked_add(u64::from(slot).checked_mul(USED_ELEM_SIZE)?)
    }
}

/// Placement of every queue's ring and data area in one guest memory region at 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    /// One entry per queue: its ring placement and its `[start, end)` data area.
    pub queues: Vec<(RingLayout, u64, u64)>,
}

impl MemoryLayout {
    /// Lays out `num_queues` rings of `queue_size` entries, each page-aligned from
    /// guest address 0, then splits the rest of `mem_size` evenly into data areas.
    /// `None` if it does not fit or leaves less than a page of data per queue.
    pub(crate) fn new(num_queues: usize, queue_size: u16, mem_size: u64) -> Option<Self> {
        if num_queues == 0 {
            return None;
        }
        let mut rings = Vec::with_capacity(num_queues);
        let mut next = 0u64;
        for _ in 0..num_queues {
            let ring = RingLayout::new(next, queue_size)?;
            next = align_up(ring.end, PAGE)?;
            rings.push(ring);
        }
        let data_len = mem_size.checked_sub(next)?;
        let per_queue = data_len.checked_div(u64::try_from(num_queues).ok()?)? & !(BUF_ALIGN - 1);
        if per_queue < PAGE {
            return None;
        }
        let mut queues = Vec::with_capacity(num_queues);
        for ring in rings {
            let end = next.checked_add(per_queue)?;
            queues.push((ring, next, end));
            next = end;
        }
        Some(Self { queues })
    }
}

/// First-fit allocator of 16-aligned data buffers inside one `[start, end)` range.
#[derive(Clone, Debug)]
pub(crate) struct BufferPool {
    /// Free ranges: start -> length. Adjacent ranges are always merged.
    free: BTreeMap<u64, u64>,
    /// Allocated ranges: start -> length (rounded).
    used: BTreeMap<u64, u64>,
}

impl BufferPool {
    /// A pool owning `[start, end)`; `start` must be 16-aligned.
    pub(crate) fn new(start: u64, end: u64) -> Self {
        let mut free = BTreeMap::new();
        if let Some(len) = end.checked_sub(start).filter(|len| *len > 0) {
            free.insert(start, len);
        }
        Self {
            free,
            used: BTreeMap::new(),
        }
    }

    /// Allocates `len` bytes (at least one alignment unit so every buffer has its
    /// own address); returns the start address or `None` when no range is big enough.
    pub(crate) fn alloc(&mut self, len: u64) -> Option<u64> {
        let size = align_up(len.max(1), BUF_ALIGN)?;
        let (&start, &free_len) = self.free.iter().find(|(_, l)| **l >= size)?;
        self.free.remove(&start);
        if free_len > size {
            self.free
                .insert(start.checked_add(size)?, free_len.checked_sub(size)?);
        }
        self.used.insert(start, size);
        Some(start)
    }

    /// Returns the buffer starting at `addr` to the pool; `false` if it was not allocated.
    pub(crate) fn free(&mut self, addr: u64) -> bool {
        let Some(mut len) = self.used.remove(&addr) else {
            return false;
        };
        let mut start = addr;
        // Merge with the following free range.
        if let Some(next_len) = start
            .checked_add(len)
            .and_then(|end| self.free.remove(&end))
        {
            len = len.saturating_add(next_len);
        }
        // Merge with the preceding free range.
        if let Some((&prev, &prev_len)) = self.free.range(..start).next_back()
            && prev.checked_add(prev_len) == Some(start)
        {
            self.free.remove(&prev);
            start = prev;
            len = len.saturating_add(prev_len);
        }
        self.free.insert(start, len);
        true
    }

    /// Bytes currently free (for tests and diagnostics).
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free
            .values()
            .fold(0u64, |acc, l| acc.saturating_add(*l))
    }
}

/// Free list of descriptor-table slots.
#[derive(Clone, Debug)]
pub(crate) struct DescSlots {
    free: Vec<u16>,
}

impl DescSlots {
    /// All `size` slots free; lower ids are handed out first.
    pub(crate) fn new(size: u16) -> Self {
        Self {
            free: (0..size).rev().collect(),
        }
    }

    /// Takes `n` slots, or none at all if fewer than `n` are free.
    pub(crate) fn alloc(&mut self, n: usize) -> Option<Vec<u16>> {
        let keep = self.free.len().checked_sub(n)?;
        let mut taken = self.free.split_off(keep);
        taken.reverse();
        Some(taken)
    }

    /// Returns slots to the free list.
    pub(crate) fn release(&mut self, slots: &[u16]) {
        self.free.extend(slots.iter().rev());
    }

    /// Number of free slots.
    pub(crate) fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]

    use super::*;

    #[test]
    fn ring_layout_matches_split_ring_sizes() {
        let r = RingLayout::new(0, 256).unwrap();
        assert_eq!(r.desc, 0);
        assert_eq!(r.avail, 16 * 256);
        // avail ends at 4096 + 6 + 512 = 4614, used aligned up to 4 -> 4616.
        assert_eq!(r.used, 4616);
        assert_eq!(r.end, 4616 + 6 + 8 * 256);
        assert_eq!(r.used_event_addr(256).unwrap(), r.avail + 4 + 512);
        assert_eq!(r.used_elem_addr(3).unwrap(), r.used + 4 + 24);
        assert_eq!(r.desc_addr(2).unwrap(), 32);
        assert_eq!(r.avail % 2, 0);
        assert_eq!(r.used % 4, 0);
    }

    #[test]
    fn ring_layout_odd_size_aligns_used() {
        let r = RingLayout::new(0, 1).unwrap();
        assert_eq!(r.avail, 16);
        assert_eq!(r.used, 24); // 16 + 6 = 22 -> 24
    }

    #[test]
    fn memory_layout_places_queues_without_overlap() {
        let l = MemoryLayout::new(3, 1024, 4 << 20).unwrap();
        assert_eq!(l.queues.len(), 3);
        let mut prev_end = 0;
        for (ring, _, _) in &l.queues {
            assert!(ring.desc >= prev_end);
            assert_eq!(ring.desc % PAGE, 0);
            prev_end = ring.end;
        }
        let mut prev = prev_end;
        for (_, start, end) in &l.queues {
            assert!(*start >= prev);
            assert!(end > start);
            assert_eq!(start % BUF_ALIGN, 0);
            prev = *end;
        }
        assert!(prev <= 4 << 20);
    }

    #[test]
    fn memory_layout_rejects_too_small_memory() {
        assert!(MemoryLayout::new(1, 32768, 64 << 10).is_none());
        assert!(MemoryLayout::new(0, 8, 1 << 20).is_none());
    }

    #[test]
    fn pool_allocates_aligned_and_reuses_after_free() {
        let mut p = BufferPool::new(0x1000, 0x2000);
        let a = p.alloc(1).unwrap();
        let b = p.alloc(17).unwrap();
        let c = p.alloc(0).unwrap();
        assert_eq!(a, 0x1000);
        assert_eq!(b, 0x1010);
        assert_eq!(c, 0x1030);
        assert!(p.free(b));
        assert!(!p.free(b));
        // First fit: the 32-byte hole is reused.
        assert_eq!(p.alloc(32).unwrap(), 0x1010);
        assert!(p.free(0x1010));
        assert!(p.free(a));
        assert!(p.free(c));
        assert_eq!(p.free_bytes(), 0x1000);
        // Fully coalesced: one allocation of the whole pool succeeds.
        assert_eq!(p.alloc(0x1000).unwrap(), 0x1000);
        assert!(p.alloc(1).is_none());
    }

    #[test]
    fn pool_exhaustion_and_coalescing_out_of_order() {
        let mut p = BufferPool::new(0, 64);
        let v: Vec<u64> = (0..4).map(|_| p.alloc(16).unwrap()).collect();
        assert!(p.alloc(16).is_none());
        for addr in [v[2], v[0], v[3], v[1]] {
            assert!(p.free(addr));
        }
        assert_eq!(p.alloc(64), Some(0));
    }

    #[test]
    fn desc_slots_free_list() {
        let mut s = DescSlots::new(4);
        assert_eq!(s.alloc(2).unwrap(), vec![0, 1]);
        assert!(s.alloc(3).is_none());
        assert_eq!(s.available(), 2);
        assert_eq!(s.alloc(2).unwrap(), vec![2, 3]);
        assert!(s.alloc(1).is_none());
        s.release(&[1, 0]);
        assert_eq!(s.alloc(2).unwrap(), vec![1, 0]);
        s.release(&[3]);
        assert_eq!(s.available(), 1);
    }
}
