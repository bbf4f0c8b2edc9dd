//! Guest memory as the device sees it: one byte region and the guest-physical address it
//! starts at. Every access is bounds-checked against the region, so a hostile address is an
//! error, never an access outside it.
//!
//! Accesses and ordering (the driver may run on another, weakly ordered core):
//! - ring and descriptor fields (indices, flags, ids, lengths, addresses) are naturally
//!   aligned and read or written with atomic loads and stores, each field once; the caller
//!   picks the ordering (Acquire for the available index, Release for the used index,
//!   Relaxed otherwise) and the queue adds SeqCst fences where a store must be seen before a
//!   load (notification suppression);
//! - payload bytes are copied with volatile byte accesses (as vm-memory does): the driver
//!   does not touch a buffer it has made available, and the Acquire/Release pair on the
//!   ring indices orders those copies.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32};

/// Why a guest address could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The range is not inside the region.
    #[error("guest range {addr:#x}+{len:#x} is outside guest memory")]
    OutOfRange {
        /// Guest address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// A ring or descriptor field is not naturally aligned.
    #[error("guest address {0:#x} is misaligned")]
    Misaligned(u64),
    /// The region's guest addresses would wrap around the 64-bit address space.
    #[error("a region at {base:#x} of {len:#x} bytes wraps the address space")]
    RegionWraps {
        /// Guest base address.
        base: u64,
        /// Region length.
        len: usize,
    },
}

/// A byte region of guest memory at guest-physical address `base`.
///
/// The region is shared with the driver; this type never hands out a Rust reference to
/// its bytes, only copies and atomics, so the driver may write it at any time.
#[derive(Debug, Clone, Copy)]
pub struct GuestMemory<'a> {
    ptr: NonNull<u8>,
    len: usize,
    base: u64,
    _region: PhantomData<&'a [UnsafeCell<u8>]>,
}

impl<'a> GuestMemory<'a> {
    /// Guest memory over a region this side holds exclusively (tests, or a driver and a
    /// device that both go through this value).
    pub fn from_slice(region: &'a mut [u8], base: u64) -> Result<Self, MemoryError> {
        let len = region.len();
        let ptr = NonNull::from(region).cast::<u8>();
        // SAFETY: `ptr` comes from a `&'a mut [u8]` of `len` bytes, so it is valid for reads
        // and writes of `len` bytes for `'a`, and nothing else can reach those bytes while
        // the exclusive borrow lasts.
        unsafe { Self::from_raw_parts(ptr, len, base) }
    }

    /// Guest memory over `len` bytes at `ptr`, the guest seeing them at `base`.
    ///
    /// # Safety
    ///
    /// For `'a`, `ptr` must be valid for reads and writes of `len` bytes, and every other
    /// access to those bytes (the driver, another core, DMA) must be either an atomic access
    /// of the same size to a ring or descriptor field, or a write to a buffer the driver
    /// has not made available (the virtio ownership rules). No Rust reference to the bytes
    /// may exist meanwhile.
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        base: u64,
    ) -> Result<Self, MemoryError> {
        let wraps = u64::try_from(len)
            .ok()
            .and_then(|l| base.checked_add(l))
            .is_none();
        if wraps {
            return Err(MemoryError::RegionWraps { base, len });
        }
        Ok(Self {
            ptr,
            len,
            base,
            _region: PhantomData,
        })
    }

    /// The guest address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region offset of `addr..addr+len`, if the whole range is inside the region.
    pub fn offset(&self, addr: u64, len: u64) -> Result<usize, MemoryError> {
        let out = MemoryError::OutOfRange { addr, len };
        let start = addr.checked_sub(self.base).ok_or(out)?;
        let end = start.checked_add(len).ok_or(out)?;
        let size = u64::try_from(self.len).map_err(|_| out)?;
        if end > size {
            return Err(out);
        }
        usize::try_from(start).map_err(|_| out)
    }

    /// Checks that `addr..addr+len` is inside the region.
    pub fn check(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.offset(addr, len).map(|_| ())
    }

    fn host_ptr(&self, addr: u64, len: usize) -> Result<*mut u8, MemoryError> {
        let len64 = u64::try_from(len).map_err(|_| MemoryError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        let offset = self.offset(addr, len64)?;
        // SAFETY: `offset + len <= self.len` (checked by `offset`), so the result stays inside
        // the region `ptr` points to (or one past its end for an empty range).
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Copies `buf.len()` bytes from guest address `addr`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.host_ptr(addr, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `src..src+buf.len()` is inside the region (checked by `host_ptr`), and
            // `i < buf.len()`; the region is valid for reads (constructor contract). Volatile:
            // the driver may write the byte concurrently.
            *b = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` to guest address `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let dst = self.host_ptr(addr, data.len())?;
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: `dst..dst+data.len()` is inside the region (checked by `host_ptr`), and
            // `i < data.len()`; the region is valid for writes (constructor contract).
            unsafe { dst.add(i).write_volatile(b) };
        }
        Ok(())
    }

    /// Fills `len` bytes at `addr` with `byte`.
    pub fn fill(&self, addr: u64, len: usize, byte: u8) -> Result<(), MemoryError> {
        let dst = self.host_ptr(addr, len)?;
        for i in 0..len {
            // SAFETY: as in `write`: `i < len` and the range is inside the region.
            unsafe { dst.add(i).write_volatile(byte) };
        }
        Ok(())
    }

    /// The naturally aligned 16-bit field at `addr`, for atomic access. The value in memory
    /// is little-endian: use `u16::from_le`/`to_le` on what is loaded or stored.
    pub fn atomic_u16(&self, addr: u64) -> Result<&'a AtomicU16, MemoryError> {
        let p = self.host_ptr(addr, 2)?.cast::<u16>();
        if !addr.is_multiple_of(2) || !p.is_aligned() {
            return Err(MemoryError::Misaligned(addr));
        }
        // SAFETY: `p` is inside the region, valid for `'a` and aligned for u16 (checked
        // above); every concurrent access to a ring field is atomic (constructor contract),
        // and no Rust reference to these bytes exists besides the atomics handed out here.
        Ok(unsafe { AtomicU16::from_ptr(p) })
    }

    /// The naturally aligned 32-bit field at `addr` (little-endian in memory).
    pub fn atomic_u32(&self, addr: u64) -> Result<&'a AtomicU32, MemoryError> {
        let p = self.host_ptr(addr, 4)?.cast::<u32>();
        if !addr.is_multiple_of(4) || !p.is_aligned() {
            return Err(MemoryError::Misaligned(addr));
        }
        // SAFETY: as in `atomic_u16`, for a 4-byte aligned field.
        Ok(unsafe { AtomicU32::from_ptr(p) })
    }
}
