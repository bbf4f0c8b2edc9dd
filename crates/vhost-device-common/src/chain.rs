//! Walking a descriptor chain without allocating: the chain's device-readable and
//! device-writable parts as fixed-size segment lists, with gather/scatter copies.
//!
//! virtio-queue's `Reader`/`Writer` allocate a `VecDeque` per chain; the request path of
//! these daemons must not allocate, so chains are described here in fixed arrays. The
//! request path builds them with [`crate::split::SplitRing::walk`]; [`layout`] builds the
//! same from virtio-queue's generic `DescriptorChain` (the reference the differential test
//! compares the walk with).

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Address, GuestAddress, GuestMemory};

use crate::ram::{Ram, RamError};

/// Most descriptors accepted in each direction of one chain. Linux uses one per buffer.
pub const MAX_SEGMENTS: usize = 16;

/// Why a chain cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// More descriptors than [`MAX_SEGMENTS`] in one direction.
    #[error("more than {MAX_SEGMENTS} descriptors in one direction")]
    TooManySegments,
    /// A device-readable descriptor follows a device-writable one.
    #[error("device-readable descriptor after a device-writable one")]
    Misordered,
    /// The chain is longer than the address space can describe.
    #[error("chain length overflows")]
    TooLong,
    /// A length does not fit the host's integer types.
    #[error("length out of range")]
    Length(#[from] std::num::TryFromIntError),
    /// An access beyond the described bytes.
    #[error("access of {len} bytes at offset {offset} exceeds the {total}-byte buffer")]
    OutOfRange {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Bytes in the buffer.
        total: usize,
    },
    /// Guest memory could not be accessed (e.g. an address outside guest RAM).
    #[error("guest memory access failed")]
    Memory(#[from] RamError),
}

/// One descriptor's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

impl Default for Segment {
    fn default() -> Self {
        Segment {
            addr: GuestAddress(0),
            len: 0,
        }
    }
}

/// The buffers of one direction of a chain, in order.
///
/// Equality and `Debug` look at the segments in use only: a list is reused from chain to
/// chain, and what lies beyond its count is stale.
#[derive(Clone, Copy, Default)]
pub struct Segments {
    segs: [Segment; MAX_SEGMENTS],
    count: usize,
    total: usize,
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.as_slice() == other.as_slice()
    }
}

impl Eq for Segments {}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Segments {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The segments.
    pub fn as_slice(&self) -> &[Segment] {
        // Invariant: `push` never lets `count` pass the array's length.
        let segs = self.segs.get(..self.count);
        debug_assert!(
            segs.is_some(),
            "segment count {} beyond the array",
            self.count
        );
        segs.unwrap_or_default()
    }

    /// Empties the list (the array is left as it is: only `count` entries are ever read).
    pub(crate) fn clear(&mut self) {
        self.count = 0;
        self.total = 0;
    }

    #[inline]
    pub(crate) fn push(&mut self, seg: Segment) -> Result<(), ChainError> {
        let slot = self
            .segs
            .get_mut(self.count)
            .ok_or(ChainError::TooManySegments)?;
        *slot = seg;
        self.count = self.count.saturating_add(1);
        self.total = self
            .total
            .checked_add(usize::try_from(seg.len)?)
            .ok_or(ChainError::TooLong)?;
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), ChainError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.total => Ok(()),
            _ => Err(ChainError::OutOfRange {
                offset,
                len,
                total: self.total,
            }),
        }
    }

    /// The guest address of `[offset, offset + len)` when it lies in the first segment (the
    /// common case: one buffer per part), so that the copy needs no piece walk.
    #[inline]
    fn within_first(&self, offset: usize, len: usize) -> Option<u64> {
        let first = self.segs.first().filter(|_| self.count > 0)?;
        let end = offset.checked_add(len)?;
        if u64::try_from(end).ok()? > u64::from(first.len) {
            return None;
        }
        first.addr.0.checked_add(u64::try_from(offset).ok()?)
    }

    /// Calls `f(guest_address, range_in_buf)` for each piece of `[offset, offset+len)`.
    fn pieces(
        &self,
        offset: usize,
        len: usize,
        mut f: impl FnMut(GuestAddress, std::ops::Range<usize>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        self.check(offset, len)?;
        let mut skip = offset;
        let mut done = 0usize;
        for seg in self.as_slice() {
            if done >= len {
                break;
            }
            let seg_len = usize::try_from(seg.len)?;
            if skip >= seg_len {
                skip = skip.saturating_sub(seg_len);
                continue;
            }
            let avail = seg_len.saturating_sub(skip);
            let take = avail.min(len.saturating_sub(done));
            let addr = seg
                .addr
                .checked_add(u64::try_from(skip)?)
                .ok_or(ChainError::TooLong)?;
            f(addr, done..done.saturating_add(take))?;
            done = done.saturating_add(take);
            skip = 0;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes starting at `offset` of these buffers into `buf`.
    #[inline]
    pub fn read_at(&self, ram: &Ram, offset: usize, buf: &mut [u8]) -> Result<(), ChainError> {
        if let Some(addr) = self.within_first(offset, buf.len()) {
            ram.read(addr, buf)?;
            return Ok(());
        }
        let len = buf.len();
        self.pieces(offset, len, |addr, range| {
            let dst = buf.get_mut(range).ok_or(ChainError::TooLong)?;
            ram.read(addr.0, dst)?;
            Ok(())
        })
    }

    /// Copies `data` into these buffers starting at `offset`.
    #[inline]
    pub fn write_at(&self, ram: &Ram, offset: usize, data: &[u8]) -> Result<(), ChainError> {
        if let Some(addr) = self.within_first(offset, data.len()) {
            ram.write(addr, data)?;
            return Ok(());
        }
        self.pieces(offset, data.len(), |addr, range| {
            let src = data.get(range).ok_or(ChainError::TooLong)?;
            ram.write(addr.0, src)?;
            Ok(())
        })
    }
}

/// A chain split into its device-readable and device-writable parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainLayout {
    /// Head descriptor index, for the used ring.
    pub head: u16,
    /// Buffers the device reads (the request).
    pub readable: Segments,
    /// Buffers the device writes (the response).
    pub writable: Segments,
}

/// Describes `chain`, walked by virtio-queue's generic iterator. Errors keep the head index
/// so the chain can still be returned. The request path uses
/// [`crate::split::SplitRing::walk`], which gives the same result.
pub fn layout<M>(chain: DescriptorChain<M>) -> Result<ChainLayout, (u16, ChainError)>
where
    M: Deref + Clone,
    M::Target: GuestMemory,
{
    let head = chain.head_index();
    let mut readable = Segments::default();
    let mut writable = Segments::default();
    for desc in chain {
        let seg = Segment {
            addr: desc.addr(),
            len: desc.len(),
        };
        let r = if desc.is_write_only() {
            writable.push(seg)
        } else if writable.count > 0 {
            Err(ChainError::Misordered)
        } else {
            readable.push(seg)
        };
        r.map_err(|e| (head, e))?;
    }
    Ok(ChainLayout {
        head,
        readable,
        writable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor as SplitDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{Queue, QueueOwnedT};
    use vm_memory::{Bytes, GuestMemoryMmap};

    /// VRING_DESC_F_WRITE.
    const WRITE: u16 = 2;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn chain_layout(
        mem: &GuestMemoryMmap,
        descs: &[(u64, u32, u16)],
    ) -> Result<ChainLayout, (u16, ChainError)> {
        let q = MockSplitQueue::new(mem, 32);
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .map(|&(a, l, f)| RawDescriptor::from(SplitDescriptor::new(a, l, f, 0)))
            .collect();
        q.build_desc_chain(&raw).unwrap();
        let mut queue: Queue = q.create_queue().unwrap();
        let chain = queue.iter(mem).unwrap().next().unwrap();
        layout(chain)
    }

    #[test]
    fn splits_directions_and_gathers_across_segments() {
        let m = mem();
        m.write_slice(&[1, 2, 3], GuestAddress(0x1000)).unwrap();
        m.write_slice(&[4, 5], GuestAddress(0x2000)).unwrap();
        let l = chain_layout(&m, &[(0x1000, 3, 0), (0x2000, 2, 0), (0x3000, 4, WRITE)]).unwrap();
        assert_eq!(l.readable.len(), 5);
        assert_eq!(l.writable.len(), 4);
        let ram = Ram::new(std::sync::Arc::new(m.clone()));
        let mut buf = [0u8; 4];
        l.readable.read_at(&ram, 1, &mut buf).unwrap();
        assert_eq!(buf, [2, 3, 4, 5]);
        l.writable.write_at(&ram, 3, &[9]).unwrap();
        let mut b = [0u8; 1];
        m.read_slice(&mut b, GuestAddress(0x3003)).unwrap();
        assert_eq!(b, [9]);
        assert!(matches!(
            l.writable.write_at(&ram, 3, &[9, 9]),
            Err(ChainError::OutOfRange { .. })
        ));
    }

    #[test]
    fn readable_after_writable_is_refused() {
        let m = mem();
        let e = chain_layout(&m, &[(0x1000, 8, 0), (0x2000, 1, WRITE), (0x3000, 1, 0)]);
        assert!(matches!(e, Err((_, ChainError::Misordered))));
    }

    #[test]
    fn too_many_segments_is_refused() {
        let m = mem();
        let descs: Vec<(u64, u32, u16)> = (0..17).map(|i| (0x1000 + i * 16, 1, 0)).collect();
        assert!(matches!(
            chain_layout(&m, &descs),
            Err((_, ChainError::TooManySegments))
        ));
    }

    #[test]
    fn address_outside_memory_is_an_error_not_a_panic() {
        let m = mem();
        let l = chain_layout(&m, &[(0x7fff_0000, 8, 0)]).unwrap();
        let ram = Ram::new(std::sync::Arc::new(m));
        let mut buf = [0u8; 8];
        assert!(matches!(
            l.readable.read_at(&ram, 0, &mut buf),
            Err(ChainError::Memory(_))
        ));
    }
}
