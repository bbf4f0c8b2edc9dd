//! Guest RAM for the request path: bounds-checked copies in and out of the host mappings of
//! one memory table, with the region of the last access remembered.
//!
//! vm-memory's generic accessors (`read_slice`, `write_obj`, `load`) find the region, build a
//! volatile slice, iterate over region boundaries and check the bounds several times for
//! every access: for the few bytes of a request that costs many times the copy itself (see
//! BENCHMARKS.md). [`Ram`] resolves an access to one host pointer with one region lookup,
//! usually a hit on the region of the previous access, and one bounds check; an access that
//! crosses into an adjacent region (legal, rare) takes vm-memory's path, which handles it.
//!
//! Every access is checked against the region it lands in: a guest address or length from
//! the guest can at worst give [`RamError`], never an access outside a mapping. The mappings
//! stay alive while the [`Ram`] holds the table (an `Arc`), and a truncated backing file is
//! covered by [`crate::memory`]'s checks (seals, or one notice).
//!
//! The guest may write these bytes while they are copied (shared memory): a copy can see a
//! torn value, never cause undefined behaviour in what the daemon does with it, because
//! every value is copied once into daemon memory and used from there (no double fetch) —
//! the same contract as vm-memory's copies. Ring indices are accessed atomically.
//!
//! With the `xen` feature the regions may be grant or foreign mappings that vm-memory maps on
//! demand, so every access takes vm-memory's path there.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};
#[cfg(not(feature = "xen"))]
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

/// Why guest RAM could not be accessed.
#[derive(Debug, thiserror::Error)]
pub enum RamError {
    /// The range is not (wholly) in guest RAM.
    #[error("{len} bytes at guest address {addr:#x} are outside guest memory")]
    Outside {
        /// Guest address of the access.
        addr: u64,
        /// Its length.
        len: usize,
    },
    /// An atomic access at an address not aligned for it (ring layouts are checked to be
    /// aligned, so only a bug gets this).
    #[error("atomic access at unaligned guest address {0:#x}")]
    Unaligned(u64),
    /// vm-memory refused an access that crosses regions.
    #[error("guest memory access failed")]
    Memory(#[from] GuestMemoryError),
}

/// One region's guest range and host mapping (unused with `xen`: no direct access there).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "xen", allow(dead_code))]
struct Span {
    start: u64,
    len: u64,
    host: *mut u8,
}

#[cfg_attr(feature = "xen", allow(dead_code))]
impl Span {
    const EMPTY: Span = Span {
        start: 0,
        len: 0,
        host: std::ptr::null_mut(),
    };

    /// The host address of `[addr, addr + len)` if the range lies in this region.
    fn host(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let offset = addr.checked_sub(self.start)?;
        let end = offset.checked_add(u64::try_from(len).ok()?)?;
        if end > self.len {
            return None;
        }
        let offset = usize::try_from(offset).ok()?;
        // `offset + len <= self.len`, the length of the mapping at `self.host`: the result
        // stays inside the mapping (`wrapping_add` only to avoid an unsafe block here).
        Some(self.host.wrapping_add(offset))
    }
}

/// Guest RAM of one memory table; see the module documentation.
///
/// Not `Sync` (it remembers the last region in a `Cell`): each worker thread makes its own,
/// once per drain, from the table its ring was checked against.
#[derive(Debug, Clone)]
pub struct Ram {
    mem: Arc<GuestMemoryMmap>,
    #[cfg_attr(feature = "xen", allow(dead_code))]
    last: Cell<Span>,
}

// SAFETY: the raw pointer in `last` points into a mapping owned by `mem` (an `Arc` that
// travels with it); nothing about it is tied to the thread that made it.
unsafe impl Send for Ram {}

impl Ram {
    /// Guest RAM as described by `mem`.
    pub fn new(mem: Arc<GuestMemoryMmap>) -> Self {
        Ram {
            mem,
            last: Cell::new(Span::EMPTY),
        }
    }

    /// The memory table.
    pub fn table(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The table, shared.
    pub fn table_arc(&self) -> &Arc<GuestMemoryMmap> {
        &self.mem
    }

    /// The host address of `[addr, addr + len)` if it lies within one region.
    #[cfg(not(feature = "xen"))]
    #[inline]
    fn host(&self, addr: u64, len: usize) -> Option<*mut u8> {
        if let Some(p) = self.last.get().host(addr, len) {
            return Some(p);
        }
        let region = self.mem.find_region(GuestAddress(addr))?;
        let span = Span {
            start: region.start_addr().0,
            len: region.len(),
            host: region.as_ptr(),
        };
        self.last.set(span);
        span.host(addr, len)
    }

    /// No direct host access with Xen mappings (mapped on demand by vm-memory).
    #[cfg(feature = "xen")]
    #[inline]
    fn host(&self, _addr: u64, _len: usize) -> Option<*mut u8> {
        None
    }

    /// Copies `buf.len()` bytes at guest address `addr` into `buf`.
    #[inline]
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), RamError> {
        if let Some(src) = self.host(addr, buf.len()) {
            // SAFETY: `src` is the host address of `buf.len()` bytes inside one mapping of
            // the table `self.mem` keeps alive (checked by `host`); `buf` is daemon memory,
            // so the two cannot overlap. The guest may write the source concurrently: see
            // the module documentation.
            unsafe { copy_bytes(src.cast_const(), buf.as_mut_ptr(), buf.len()) };
            return Ok(());
        }
        self.slow_read(addr, buf)
    }

    #[cold]
    fn slow_read(&self, addr: u64, buf: &mut [u8]) -> Result<(), RamError> {
        let len = buf.len();
        self.mem
            .read_slice(buf, GuestAddress(addr))
            .map_err(|e| outside_or(e, addr, len))
    }

    /// Copies `data` to guest address `addr`.
    #[inline]
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), RamError> {
        if let Some(dst) = self.host(addr, data.len()) {
            // SAFETY: `dst` is the host address of `data.len()` writable bytes inside one
            // mapping of the table `self.mem` keeps alive (checked by `host`; guest RAM is
            // mapped read-write); `data` is daemon memory, so the two cannot overlap.
            unsafe { copy_bytes(data.as_ptr(), dst, data.len()) };
            return Ok(());
        }
        self.slow_write(addr, data)
    }

    #[cold]
    fn slow_write(&self, addr: u64, data: &[u8]) -> Result<(), RamError> {
        self.mem
            .write_slice(data, GuestAddress(addr))
            .map_err(|e| outside_or(e, addr, data.len()))
    }

    /// Reads a `T` (a plain `repr(C)` struct of integers) at `addr`, with one unaligned load.
    ///
    /// # Safety
    /// Every bit pattern of `size_of::<T>()` bytes must be a valid `T`.
    #[inline]
    pub(crate) unsafe fn read_plain<T: Copy>(&self, addr: u64) -> Result<T, RamError> {
        let len = size_of::<T>();
        if let Some(src) = self.host(addr, len) {
            // SAFETY: `src` is the host address of `size_of::<T>()` bytes inside one live
            // mapping (checked by `host`); any bit pattern is a valid `T` (the caller's
            // contract); the read needs no alignment.
            return Ok(unsafe { src.cast::<T>().cast_const().read_unaligned() });
        }
        let mut value = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the `len` bytes of `value` are its own storage, and any bytes form a valid
        // `T` (the caller's contract), so writing them through a byte slice is sound.
        let bytes = unsafe { std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), len) };
        bytes.fill(0);
        self.slow_read(addr, bytes)?;
        // SAFETY: every byte was initialized above, and any bytes form a valid `T`.
        Ok(unsafe { value.assume_init() })
    }

    /// Loads the little-endian `u16` at `addr` atomically with `order`.
    #[inline]
    pub fn load_u16(&self, addr: u64, order: Ordering) -> Result<u16, RamError> {
        if let Some(p) = self.host(addr, 2) {
            let atomic = atomic_u16(p, addr)?;
            return Ok(u16::from_le(atomic.load(order)));
        }
        self.mem
            .load::<u16>(GuestAddress(addr), order)
            .map(u16::from_le)
            .map_err(|e| outside_or(e, addr, 2))
    }

    /// Stores `value` little-endian at `addr` atomically with `order`.
    #[inline]
    pub fn store_u16(&self, addr: u64, value: u16, order: Ordering) -> Result<(), RamError> {
        if let Some(p) = self.host(addr, 2) {
            atomic_u16(p, addr)?.store(value.to_le(), order);
            return Ok(());
        }
        self.mem
            .store(value.to_le(), GuestAddress(addr), order)
            .map_err(|e| outside_or(e, addr, 2))
    }
}

/// Longest copy done inline; longer ones call `memcpy`.
const INLINE_COPY: usize = 32;

/// Copies `len` bytes from `src` to `dst`: the few bytes of a request field inline, in
/// 8/4/2/1-byte moves (a `memcpy` call costs several times that for them), anything longer
/// with `copy_nonoverlapping`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and the ranges must not
/// overlap.
#[inline]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    if len > INLINE_COPY {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let mut done = 0usize;
    // Each move below is of `n` bytes at offset `done` with `done + n <= len` (checked by
    // its condition), inside the caller's valid ranges.
    while len.saturating_sub(done) >= 8 {
        // SAFETY: 8 bytes within both ranges (see above); unaligned accesses.
        unsafe {
            let v = src.add(done).cast::<u64>().read_unaligned();
            dst.add(done).cast::<u64>().write_unaligned(v);
        }
        done = done.wrapping_add(8);
    }
    if len.saturating_sub(done) >= 4 {
        // SAFETY: 4 bytes within both ranges (see above); unaligned accesses.
        unsafe {
            let v = src.add(done).cast::<u32>().read_unaligned();
            dst.add(done).cast::<u32>().write_unaligned(v);
        }
        done = done.wrapping_add(4);
    }
    if len.saturating_sub(done) >= 2 {
        // SAFETY: 2 bytes within both ranges (see above); unaligned accesses.
        unsafe {
            let v = src.add(done).cast::<u16>().read_unaligned();
            dst.add(done).cast::<u16>().write_unaligned(v);
        }
        done = done.wrapping_add(2);
    }
    if len > done {
        // SAFETY: the last byte, within both ranges (see above).
        unsafe { dst.add(done).write(src.add(done).read()) };
    }
}

/// The atomic at host address `p` (guest address `addr`), if aligned.
#[inline]
fn atomic_u16<'a>(p: *mut u8, addr: u64) -> Result<&'a AtomicU16, RamError> {
    if !p.cast::<u16>().is_aligned() {
        return Err(RamError::Unaligned(addr));
    }
    // SAFETY: `p` points to 2 bytes inside a live mapping (checked by `Ram::host`; the
    // caller's `Ram` keeps the mapping for longer than it uses the reference), aligned for
    // `u16` (checked above). All accesses to ring indices in shared memory are atomic, which
    // is what `AtomicU16::from_ptr` requires of concurrent accesses.
    Ok(unsafe { AtomicU16::from_ptr(p.cast::<u16>()) })
}

/// vm-memory's error for an access outside guest memory as [`RamError::Outside`]; any other
/// kept as it is.
fn outside_or(e: GuestMemoryError, addr: u64, len: usize) -> RamError {
    match e {
        GuestMemoryError::InvalidGuestAddress(_) | GuestMemoryError::PartialBuffer { .. } => {
            RamError::Outside { addr, len }
        }
        other => RamError::Memory(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> Ram {
        Ram::new(Arc::new(
            GuestMemoryMmap::from_ranges(&[
                (GuestAddress(0), 0x1000),
                (GuestAddress(0x1000), 0x1000),
                (GuestAddress(0x10_0000), 0x1000),
            ])
            .unwrap(),
        ))
    }

    #[test]
    fn reads_what_was_written_in_and_across_regions() {
        let r = ram();
        r.write(0x10, &[1, 2, 3]).unwrap();
        r.write(0xffe, &[4, 5, 6, 7]).unwrap();
        r.write(0x10_0ffc, &[8; 4]).unwrap();
        let mut b = [0u8; 3];
        r.read(0x10, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3]);
        let mut c = [0u8; 4];
        r.read(0xffe, &mut c).unwrap();
        assert_eq!(c, [4, 5, 6, 7], "a copy across two adjacent regions");
        r.read(0x10_0ffc, &mut c).unwrap();
        assert_eq!(c, [8; 4]);
        // Compared with vm-memory's own view of the same bytes.
        let mut d = [0u8; 4];
        r.table().read_slice(&mut d, GuestAddress(0xffe)).unwrap();
        assert_eq!(d, [4, 5, 6, 7]);
    }

    #[test]
    fn accesses_outside_guest_memory_are_errors() {
        let r = ram();
        let mut b = [0u8; 8];
        for addr in [0x2000, 0x1ffc, 0x10_0ffc, u64::MAX - 3, u64::MAX] {
            assert!(r.read(addr, &mut b).is_err(), "read at {addr:#x}");
            assert!(r.write(addr, &b).is_err(), "write at {addr:#x}");
        }
        assert!(r.load_u16(0x2000, Ordering::Relaxed).is_err());
        assert!(r.store_u16(0x10_0fff, 1, Ordering::Relaxed).is_err());
    }

    #[test]
    fn atomics_are_little_endian_and_aligned() {
        let r = ram();
        r.store_u16(0x20, 0x1234, Ordering::Release).unwrap();
        let mut b = [0u8; 2];
        r.read(0x20, &mut b).unwrap();
        assert_eq!(b, [0x34, 0x12]);
        assert_eq!(r.load_u16(0x20, Ordering::Acquire).unwrap(), 0x1234);
        #[cfg(not(feature = "xen"))]
        assert!(matches!(
            r.load_u16(0x21, Ordering::Relaxed),
            Err(RamError::Unaligned(0x21))
        ));
    }

    #[test]
    fn zero_length_accesses_inside_memory_succeed() {
        let r = ram();
        r.read(0x1000, &mut []).unwrap();
        r.write(0x10_0000, &[]).unwrap();
    }
}
