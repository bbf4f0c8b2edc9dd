//! A bump allocator for the core crates' set-up allocations (the I2C group arena, the GPIO
//! line table and names). Nothing allocates per request, so nothing is ever freed in
//! practice; the high-water mark is the heap the firmware needs, and is printed.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Heap size: the I2C group arena alone is 42 x 8192 bytes (the largest legal group).
pub const HEAP_SIZE: usize = 512 * 1024;

#[repr(C, align(8))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the arena's bytes are only reached through pointers handed out by `alloc`, each
// range to one caller, never twice (the bump offset only grows, with a CAS).
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

/// The allocator; `used()` is its high-water mark.
#[derive(Debug)]
pub struct Bump {
    next: AtomicUsize,
    allocations: AtomicUsize,
}

impl Bump {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            next: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Bytes handed out so far (alignment padding included).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Allocations so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

// SAFETY: `alloc` returns either null or a range of `layout.size()` bytes inside ARENA,
// aligned to `layout.align()`, that no other allocation overlaps (the offset is advanced past
// it atomically before it is returned); `dealloc` never reuses memory.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = ARENA.0.get().cast::<u8>();
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let start_addr = (base as usize)
                .checked_add(current)
                .and_then(|a| a.checked_next_multiple_of(layout.align()));
            let Some(start) = start_addr.and_then(|a| a.checked_sub(base as usize)) else {
                return core::ptr::null_mut();
            };
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= HEAP_SIZE) else {
                return core::ptr::null_mut();
            };
            match self.next.compare_exchange_weak(
                current,
                end,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.allocations.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: `start + size <= HEAP_SIZE`, so the pointer is inside ARENA.
                    return unsafe { base.add(start) };
                }
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
