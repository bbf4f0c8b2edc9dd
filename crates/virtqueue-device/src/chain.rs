//! Walking one descriptor chain into a fixed array of segments, with every hostile shape
//! refused: a `next` outside the table, a cycle, a chain longer than the queue, a readable
//! buffer after a writable one, a buffer outside guest memory, nested or malformed indirect
//! tables, more segments than [`MAX_SEGMENTS`], more than 4 GiB in one direction.

use crate::memory::{GuestMemory, MemoryError};
use crate::ring::{
    DESC_SIZE, Descriptor, QueueLayout, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};

/// Most buffers (non-empty descriptors) in one chain. The requests of virtio-i2c and
/// virtio-gpio take 2 or 3; a guest's scatter list rarely takes more than a few.
pub const MAX_SEGMENTS: usize = 16;

/// Why a chain cannot be used. The chain is returned to the driver with a used length of 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A descriptor, buffer or indirect table is not inside guest memory.
    #[error("chain memory")]
    Memory(#[from] MemoryError),
    /// `next` points outside the descriptor table.
    #[error("next descriptor {next} outside a table of {size}")]
    NextOutOfRange {
        /// The index.
        next: u16,
        /// Entries in the table.
        size: u32,
    },
    /// More descriptors than the table holds: the chain loops.
    #[error("the chain loops or is longer than its table")]
    Loop,
    /// A device-readable buffer after a device-writable one.
    #[error("a readable buffer follows a writable one")]
    ReadableAfterWritable,
    /// An indirect descriptor without VIRTIO_F_INDIRECT_DESC, inside an indirect table,
    /// with NEXT set, or whose table length is not a non-zero multiple of 16.
    #[error("malformed indirect descriptor")]
    BadIndirect,
    /// More than [`MAX_SEGMENTS`] buffers.
    #[error("more than {MAX_SEGMENTS} buffers")]
    TooManySegments,
    /// The readable or writable buffers add up to more than `u32::MAX` bytes.
    #[error("more than 4 GiB in one direction")]
    TooLong,
}

/// One buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// Guest address (the whole buffer is inside guest memory).
    pub addr: u64,
    /// Length (non-zero).
    pub len: u32,
    /// Device-writable.
    pub writable: bool,
}

/// A walked chain: its head (for the used ring) and its buffers, readable ones first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    head: u16,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
    readable: u32,
    writable: u32,
}

/// Which table the walk is in.
#[derive(Clone, Copy)]
struct Table {
    addr: u64,
    entries: u32,
    indirect: bool,
}

impl Chain {
    /// Walks the chain starting at descriptor `head` (already checked `< layout.size`).
    pub fn walk(
        mem: &GuestMemory<'_>,
        layout: &QueueLayout,
        head: u16,
    ) -> Result<Self, ChainError> {
        let mut chain = Chain {
            head,
            segments: [Segment::default(); MAX_SEGMENTS],
            count: 0,
            readable: 0,
            writable: 0,
        };
        let mut table = Table {
            addr: layout.desc_table,
            entries: u32::from(layout.size),
            indirect: false,
        };
        let mut index = head;
        // Descriptors visited in the current table: more than it holds means a loop.
        let mut visited: u32 = 0;
        loop {
            if u32::from(index) >= table.entries {
                return Err(ChainError::NextOutOfRange {
                    next: index,
                    size: table.entries,
                });
            }
            visited = visited.checked_add(1).ok_or(ChainError::Loop)?;
            if visited > table.entries {
                return Err(ChainError::Loop);
            }
            let at = table
                .addr
                .checked_add(u64::from(index).saturating_mul(DESC_SIZE))
                .ok_or(ChainError::Loop)?;
            let d = Descriptor::read(mem, at)?;
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if !layout.indirect || table.indirect || d.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(ChainError::BadIndirect);
                }
                let len = u64::from(d.len);
                if len == 0 || !len.is_multiple_of(DESC_SIZE) {
                    return Err(ChainError::BadIndirect);
                }
                mem.check(d.addr, len)?;
                table = Table {
                    addr: d.addr,
                    // At most 2^28 entries: `len` is a u32.
                    entries: d.len / 16,
                    indirect: true,
                };
                index = 0;
                visited = 0;
                continue;
            }
            chain.push(mem, &d)?;
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = d.next;
        }
    }

    fn push(&mut self, mem: &GuestMemory<'_>, d: &Descriptor) -> Result<(), ChainError> {
        let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
        if !writable && self.writable > 0 {
            return Err(ChainError::ReadableAfterWritable);
        }
        if d.len == 0 {
            // An empty buffer carries nothing; it still counted as a visited descriptor.
            return Ok(());
        }
        mem.check(d.addr, u64::from(d.len))?;
        let total = if writable {
            &mut self.writable
        } else {
            &mut self.readable
        };
        *total = total.checked_add(d.len).ok_or(ChainError::TooLong)?;
        let slot = self
            .segments
            .get_mut(self.count)
            .ok_or(ChainError::TooManySegments)?;
        *slot = Segment {
            addr: d.addr,
            len: d.len,
            writable,
        };
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// The head descriptor index (the used element's id).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The buffers, readable ones first.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// Device-readable bytes.
    pub fn readable_len(&self) -> usize {
        usize::try_from(self.readable).unwrap_or(usize::MAX)
    }

    /// Device-writable bytes.
    pub fn writable_len(&self) -> usize {
        usize::try_from(self.writable).unwrap_or(usize::MAX)
    }

    /// Copies readable bytes from `offset` (in the readable part) into all of `buf`.
    pub fn read(
        &self,
        mem: &GuestMemory<'_>,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), ChainError> {
        let mut rest = buf;
        self.visit(false, offset, rest.len(), |addr, n| {
            let (now, later) = core::mem::take(&mut rest).split_at_mut(n);
            rest = later;
            mem.read(addr, now)
        })
    }

    /// Copies all of `data` into the writable bytes from `offset` (in the writable part).
    pub fn write(
        &self,
        mem: &GuestMemory<'_>,
        offset: usize,
        data: &[u8],
    ) -> Result<(), ChainError> {
        let mut rest = data;
        self.visit(true, offset, rest.len(), |addr, n| {
            let (now, later) = rest.split_at(n);
            rest = later;
            mem.write(addr, now)
        })
    }

    /// Calls `copy(guest_addr, n)` for the pieces of `len` bytes at `offset` of one
    /// direction, in order; the pieces add up to `len` exactly, or nothing is copied.
    fn visit(
        &self,
        writable: bool,
        offset: usize,
        len: usize,
        mut copy: impl FnMut(u64, usize) -> Result<(), MemoryError>,
    ) -> Result<(), ChainError> {
        let total = if writable {
            self.writable_len()
        } else {
            self.readable_len()
        };
        let out = ChainError::Memory(MemoryError::OutOfRange {
            addr: u64::try_from(offset).unwrap_or(u64::MAX),
            len: u64::try_from(len).unwrap_or(u64::MAX),
        });
        if offset.checked_add(len).is_none_or(|end| end > total) {
            return Err(out);
        }
        let mut skip = offset;
        let mut left = len;
        for s in self.segments().iter().filter(|s| s.writable == writable) {
            if left == 0 {
                break;
            }
            let seg_len = usize::try_from(s.len).map_err(|_| out)?;
            if skip >= seg_len {
                skip = skip.saturating_sub(seg_len);
                continue;
            }
            let n = seg_len.saturating_sub(skip).min(left);
            let addr = s
                .addr
                .checked_add(u64::try_from(skip).map_err(|_| out)?)
                .ok_or(out)?;
            copy(addr, n)?;
            skip = 0;
            left = left.saturating_sub(n);
        }
        if left == 0 { Ok(()) } else { Err(out) }
    }
}
