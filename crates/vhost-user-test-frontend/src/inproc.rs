//! In-process test tooling, for tests that build a backend inside the test process and call
//! its `handle_event` directly, with no socket and no frontend:
//!
//! - [`CountingAllocator`], a global allocator that counts the allocations of the calling
//!   thread inside [`allocations_in`], to prove that a request path allocates nothing;
//! - split rings laid out by hand in guest memory: [`vring`] sets up the backend's side as
//!   `vhost-user-backend` would after the vhost-user handshake (a [`VringRwLock`] with a real
//!   call eventfd), and [`RingDriver`] is the driver's side, written straight into memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};

use vhost_user_backend::{VringRwLock, VringT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::layout::RingLayout;
use crate::{Desc, Error, TestQueue};

// ---- a global allocator that counts the allocations of the thread that asks ----

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get().saturating_add(1)));
        }
    });
}

/// A global allocator that forwards every call to [`System`] and counts the allocations
/// (`alloc`, `alloc_zeroed`, `realloc`) a thread makes inside [`allocations_in`]. A test
/// binary installs it with
///
/// ```
/// use vhost_user_test_frontend::inproc::{CountingAllocator, allocations_in};
///
/// #[global_allocator]
/// static A: CountingAllocator = CountingAllocator;
///
/// fn main() {
///     let (v, n) = allocations_in(|| vec![1u8; 100]);
///     assert_eq!((v.len(), n), (100, 1));
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns how many allocations this thread made meanwhile (always 0 unless
/// [`CountingAllocator`] is the global allocator).
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

// ---- hand-made split rings ----

/// Guest memory as the backend sees it.
pub type InprocMemory = GuestMemoryAtomic<GuestMemoryMmap>;
/// The backend's side of one queue, as vhost-user-backend makes it.
pub type InprocVring = VringRwLock<InprocMemory>;

/// Bytes of data area per descriptor slot: a posted buffer may be at most this long.
pub const BUFFER_STRIDE: u64 = 0x40;

/// Where one split virtqueue lives in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rings {
    /// Entries (a power of two).
    pub size: u16,
    /// Descriptor table (16 bytes an entry).
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    /// Data area: [`BUFFER_STRIDE`] bytes per descriptor slot, recycled with the slot.
    pub data: u64,
}

/// Sets up the backend's side of a queue at `rings` as the vhost-user handshake would:
/// addresses, size, EVENT_IDX, ready and enabled, and a real call eventfd (so that signalling
/// the guest is part of what a test measures). Returns the vring and the driver's end of
/// the call eventfd.
pub fn vring<V: VringT<InprocMemory>>(
    mem: &InprocMemory,
    rings: Rings,
    event_idx: bool,
) -> Result<(V, EventFd), Error> {
    let vring = V::new(mem.clone(), rings.size).map_err(Error::Vring)?;
    vring
        .set_queue_info(rings.desc, rings.avail, rings.used)
        .map_err(Error::Vring)?;
    vring.set_queue_size(rings.size);
    vring.set_queue_event_idx(event_idx);
    vring.set_queue_ready(true);
    vring.set_enabled(true);
    let call = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
    let clone = call.try_clone().map_err(Error::EventFd)?;
    // SAFETY: the clone's descriptor is owned by nobody else; the File takes it over.
    let call_file = unsafe { File::from_raw_fd(clone.into_raw_fd()) };
    vring.set_call(Some(call_file));
    Ok((vring, call))
}

/// A descriptor for [`RingDriver::post`]: device-readable bytes, or `n` device-writable
/// bytes (poisoned with `0xee` before posting).
#[derive(Clone, Copy, Debug)]
pub enum Buf<'a> {
    /// Device-readable bytes.
    Out(&'a [u8]),
    /// That many device-writable bytes.
    In(u32),
}

/// The driver side of one split virtqueue in process: the crate's one ring driver
/// ([`TestQueue`]) at the addresses of `rings`, with no socket. Device-writable buffers are
/// poisoned with `0xee` before posting, so a byte the device did not write shows.
#[derive(Debug)]
pub struct RingDriver {
    queue: TestQueue,
}

impl RingDriver {
    /// The driver of the queue at `rings` in `mem`, nothing posted yet; buffers come from
    /// `rings.data` ([`BUFFER_STRIDE`] bytes per entry).
    pub fn new(mem: GuestMemoryMmap, rings: Rings) -> Result<Self, Error> {
        let n = u64::from(rings.size);
        let used_len = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(6))
            .ok_or(Error::AddressOverflow)?;
        let layout = RingLayout {
            desc: rings.desc,
            avail: rings.avail,
            used: rings.used,
            end: rings
                .used
                .checked_add(used_len)
                .ok_or(Error::AddressOverflow)?,
        };
        let data_len = n.checked_mul(BUFFER_STRIDE).ok_or(Error::AddressOverflow)?;
        let kick = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        let call = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        // EVENT_IDX on the driver side only re-arms `used_event`: harmless without it.
        let mut queue = TestQueue::new(
            0,
            mem,
            rings.size,
            layout,
            (
                rings.data,
                rings
                    .data
                    .checked_add(data_len)
                    .ok_or(Error::AddressOverflow)?,
            ),
            kick,
            call,
            true,
        );
        queue.poison_writable(0xee);
        Ok(RingDriver { queue })
    }

    /// Posts one chain (without a kick: the test calls the backend itself); returns its
    /// head and the guest addresses of its writable buffers.
    pub fn post(&mut self, bufs: &[Buf<'_>]) -> Result<(u16, Vec<u64>), Error> {
        let descs: Vec<Desc> = bufs
            .iter()
            .map(|b| match *b {
                Buf::Out(bytes) => Desc::Out(bytes.to_vec()),
                Buf::In(n) => Desc::In(n),
            })
            .collect();
        let head = self.queue.post(&descs, false)?;
        let writable = self.queue.writable_addrs(head);
        Ok((head, writable))
    }

    /// Every used element not yet seen, as (id, len). Re-arms the queue afterwards, as a
    /// driver does after consuming (with EVENT_IDX, the next completion is signalled).
    pub fn used(&mut self) -> Result<Vec<(u32, u32)>, Error> {
        let mut out = Vec::new();
        while let Some(c) = self.queue.used_now()? {
            out.push((u32::from(c.head), c.used_len));
        }
        Ok(out)
    }

    /// The byte at guest address `at`.
    pub fn byte(&self, at: u64) -> Result<u8, Error> {
        Ok(self.queue.memory().read_obj(GuestAddress(at))?)
    }
}
