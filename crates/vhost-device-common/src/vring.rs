//! The vring type of every daemon: vhost-user-backend's `VringRwLock`, plus what a hostile
//! frontend or guest must not be able to break.
//!
//! - Kick, call and error descriptors from the frontend are checked by [`crate::eventfd`]
//!   (eventfds only, made non-blocking) before the library uses them, so no read or write on
//!   them can block a worker. A descriptor that is not an eventfd is refused: the ring then
//!   never starts.
//! - A kick descriptor replaced on a running ring is kept (up to a few) and drained with the
//!   current one, and the ring restarted so the library registers the new one.
//! - Errors the guest or frontend causes are logged on the ring's
//!   [`crate::warning_budget::WarningBudget`].
//! - Guest memory is used only once [`crate::memory`] has checked that every region lies
//!   inside its file, and only while the ring's addresses fit inside it.
//! - A ring the guest or frontend broke (available index out of range) is stopped until the
//!   frontend sets it up again, with one warning.
//!
//! vhost-user-backend's own `VringRwLock` reads the kick eventfd with a blocking read while
//! the vring lock is held; the upstream fix would be to open the kick/call/err fds
//! non-blocking (or `fcntl` them) in `VringState::set_kick/set_call/set_err` and to treat
//! `EAGAIN` from `read_kick` as "no kick".

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard, RwLockWriteGuard, Weak};

use vhost_user_backend::{VringRwLock, VringState, VringStateGuard, VringStateMutGuard, VringT};
use virtio_queue::{Error as QueueError, QueueT};
use vm_memory::{GuestAddress, GuestAddressSpace, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::event::EventConsumer;

use crate::GuestMemory;
use crate::eventfd::check_eventfd;
use crate::memory::{MemoryError, check_regions};
use crate::warning_budget::WarningBudget;

/// Warning-level reports each ring may make per connection; later ones go to debug level.
const REPORTS_PER_RING: u32 = 4;

/// Data of one ring that only the holder of the ring's write lock touches: the lock that
/// guards the library's `VringState` guards this too, so the request path takes one lock.
struct UnderRingLock<T> {
    /// The address of the `VringState` whose write lock guards `value` (in the ring's shared
    /// allocation, which lives as long as any clone of the ring, so no other state has it).
    owner: usize,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: `value` is only reached through `get`, which requires the write guard of the
// owner's lock: the lock makes those accesses exclusive and orders them between threads.
unsafe impl<T: Send> Sync for UnderRingLock<T> {}

impl<T> UnderRingLock<T> {
    fn new(owner: &VringState<GuestMemory>, value: T) -> Self {
        UnderRingLock {
            owner: std::ptr::from_ref(owner).addr(),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    /// The value, for as long as `guard`, the write guard of the owner's lock, is borrowed;
    /// `None` for the guard of another ring's lock (a bug).
    fn get<'g>(
        &'g self,
        guard: &'g mut RwLockWriteGuard<'_, VringState<GuestMemory>>,
    ) -> Option<&'g mut T> {
        if std::ptr::from_ref::<VringState<GuestMemory>>(guard).addr() != self.owner {
            log::error!("bug: a ring's state used under another ring's lock");
            return None;
        }
        // SAFETY: `guard` is the write guard of the lock that owns `value` (checked above),
        // so no other thread holds that lock; it stays mutably borrowed for 'g, so no second
        // reference can be made through it while this one lives.
        Some(unsafe { &mut *self.value.get() })
    }
}

impl<T> std::fmt::Debug for UnderRingLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnderRingLock").finish_non_exhaustive()
    }
}

/// The memory table the ring was last checked to run in: its regions lie inside their files
/// and the ring's layout fits. A `Weak`: it keeps the table's allocation, so that no later
/// table can get its address while this names it, but not the table (its mappings go as
/// soon as the library replaces it). `Weak::new()` names no table.
type CheckedMemory = Weak<GuestMemoryMmap>;

/// Kick descriptors of a running ring a frontend may replace before further replacements
/// are refused (each replaced one is kept, to be drained, while the frontend holds it).
const MAX_RETIRED_KICKS: usize = 4;

#[derive(Debug)]
struct Health {
    /// Under the ring's lock; see [`Vring::lock_running`].
    checked: UnderRingLock<CheckedMemory>,
    /// The ring was broken by its driver or frontend; stays stopped until set up again.
    stopped: AtomicBool,
    reports: WarningBudget,
    /// Kick descriptors replaced while the ring ran. vhost-user-backend leaves them in its
    /// epoll set (the frontend still holds them open), so a write to one wakes the worker
    /// until it is read: `read_kick` drains them.
    retired: Mutex<Vec<EventConsumer>>,
}

/// One vring of a daemon; see the module documentation.
#[derive(Clone)]
pub struct Vring {
    inner: VringRwLock<GuestMemory>,
    mem: GuestMemory,
    health: Arc<Health>,
}

impl std::fmt::Debug for Vring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vring")
            .field("stopped", &self.health.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Bytes of a split ring's parts for `size` entries, with the EVENT_IDX fields.
fn ring_extents(size: u16) -> [(u64, u64); 3] {
    let n = u64::from(size);
    [
        (16, n.saturating_mul(16)),
        (2, n.saturating_mul(2).saturating_add(6)),
        (4, n.saturating_mul(8).saturating_add(6)),
    ]
}

/// Why a ring cannot run in the current memory.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The memory table itself is unsafe to touch.
    #[error("the memory table is unusable")]
    Memory(#[from] MemoryError),
    /// A part of the ring lies outside guest memory or is misaligned.
    #[error("the ring's {part} at {addr:#x} ({len} bytes) is misaligned or outside guest memory")]
    Layout {
        /// Which part.
        part: &'static str,
        /// Its guest address.
        addr: u64,
        /// Its length.
        len: u64,
    },
}

fn check_layout(state: &VringState<GuestMemory>, mem: &GuestMemoryMmap) -> Result<(), RingError> {
    let q = state.get_queue();
    let parts = [
        ("descriptor table", q.desc_table()),
        ("available ring", q.avail_ring()),
        ("used ring", q.used_ring()),
    ];
    for ((part, addr), (align, len)) in parts.into_iter().zip(ring_extents(q.size())) {
        let fits = addr.checked_rem(align) == Some(0)
            && usize::try_from(len).is_ok_and(|l| mem.check_range(GuestAddress(addr), l));
        if !fits {
            return Err(RingError::Layout { part, addr, len });
        }
    }
    Ok(())
}

impl Vring {
    /// Whether the ring was stopped because its driver or frontend broke it.
    pub fn is_stopped(&self) -> bool {
        self.health.stopped.load(Ordering::Relaxed)
    }

    /// Stops the ring until the frontend sets it up again, with one warning.
    pub fn stop(&self, why: std::fmt::Arguments<'_>) {
        if !self.health.stopped.swap(true, Ordering::Relaxed) {
            self.health
                .reports
                .warn(format_args!("virtqueue stopped: {why}"));
        }
    }

    /// The ring's warning budget for guest-caused errors on this connection.
    pub fn reports(&self) -> &WarningBudget {
        &self.health.reports
    }

    /// Forgets what was checked (the ring's layout changed) and releases that table.
    fn reconfigured(&self, state: &mut RwLockWriteGuard<'_, VringState<GuestMemory>>) {
        if let Some(checked) = self.health.checked.get(state) {
            *checked = Weak::new();
        }
        self.health.stopped.store(false, Ordering::Relaxed);
    }

    /// Locks the ring and returns the memory to run it in, or `None` when it must not run:
    /// not started, stopped, or not (yet) fitting into a safe memory table. Reports a ring
    /// that does not fit once.
    ///
    /// The table is checked when the ring first sees it (the library replaces the whole
    /// table on SET_MEM_TABLE/ADD_MEM_REG, and the ring's setters forget the check); after
    /// that, one pointer comparison under the ring's lock.
    pub fn lock_running(
        &self,
    ) -> Option<(
        RwLockWriteGuard<'_, VringState<GuestMemory>>,
        Arc<GuestMemoryMmap>,
    )> {
        let mut state = self.inner.get_mut();
        if self.is_stopped() || !state.get_queue().ready() {
            return None;
        }
        let memory = self.mem.memory().into_inner();
        let checked = self.health.checked.get(&mut state)?;
        if std::ptr::eq(checked.as_ptr(), Arc::as_ptr(&memory)) {
            return Some((state, memory));
        }
        // A new memory table or ring layout.
        *checked = Weak::new();
        if memory.num_regions() == 0 {
            // Not set up yet (a kick before SET_MEM_TABLE): nothing to do, nothing wrong.
            return None;
        }
        let result = check_regions(&memory)
            .map_err(RingError::from)
            .and_then(|()| check_layout(&state, &memory));
        match result {
            Ok(()) => {
                *self.health.checked.get(&mut state)? = Arc::downgrade(&memory);
                Some((state, memory))
            }
            Err(e) => {
                drop(state);
                self.stop(format_args!("{}", crate::report::ErrorChain(&e)));
                None
            }
        }
    }

    /// Writes the ring's own kick, so that a drain that stopped early runs again.
    pub fn rekick(&self) {
        let state = self.inner.get_ref();
        if let Some(kick) = state.get_kick() {
            let one: u64 = 1;
            // SAFETY: the kick descriptor is a non-blocking eventfd owned by the ring state we
            // hold a lock on; the write reads 8 bytes from `one`, which lives across the call.
            let _ = unsafe {
                libc::write(
                    kick.as_raw_fd(),
                    (&raw const one).cast::<libc::c_void>(),
                    size_of::<u64>(),
                )
            };
        }
    }

    /// Before a new kick descriptor replaces the one of a running ring: keeps the old one to
    /// be drained, and marks the ring not ready so that vhost-user-backend starts it again
    /// with the new descriptor in its epoll set (it only registers a kick when it starts a
    /// ring). Returns false, refusing the new descriptor, after [`MAX_RETIRED_KICKS`].
    fn retire_running_kick(&self) -> bool {
        let mut state = self.inner.get_mut();
        let Some(old) = state.get_kick() else {
            return true;
        };
        if !state.get_queue().ready() {
            return true;
        }
        let mut retired = self
            .health
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if retired.len() >= MAX_RETIRED_KICKS {
            self.health.reports.warn(format_args!(
                "kick descriptor of a running ring replaced more than {MAX_RETIRED_KICKS} times; refused"
            ));
            return false;
        }
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor the ring state owns (we hold its lock)
        // makes a new descriptor for the same eventfd; it touches no memory.
        let dup = unsafe { libc::fcntl(old.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            self.health.reports.warn(format_args!(
                "cannot keep the replaced kick descriptor: {}",
                io::Error::last_os_error()
            ));
            return false;
        }
        // SAFETY: `dup` is a new descriptor that nothing else owns.
        retired.push(unsafe { EventConsumer::from_raw_fd(dup) });
        state.get_queue_mut().set_ready(false);
        true
    }

    fn checked_file(&self, what: &str, file: Option<File>) -> Option<File> {
        let file = file?;
        match check_eventfd(std::os::fd::AsFd::as_fd(&file)) {
            Ok(()) => Some(file),
            Err(e) => {
                self.health.reports.warn(format_args!(
                    "{what} descriptor refused: {}",
                    crate::report::ErrorChain(&e)
                ));
                None
            }
        }
    }
}

impl<'a> VringStateGuard<'a, GuestMemory> for Vring {
    type G = RwLockReadGuard<'a, VringState<GuestMemory>>;
}

impl<'a> VringStateMutGuard<'a, GuestMemory> for Vring {
    type G = RwLockWriteGuard<'a, VringState<GuestMemory>>;
}

impl VringT<GuestMemory> for Vring {
    fn new(mem: GuestMemory, max_queue_size: u16) -> Result<Self, QueueError> {
        let inner = VringRwLock::new(mem.clone(), max_queue_size)?;
        let checked = UnderRingLock::new(&inner.get_ref(), Weak::new());
        Ok(Vring {
            inner,
            mem,
            health: Arc::new(Health {
                checked,
                stopped: AtomicBool::new(false),
                reports: WarningBudget::new(REPORTS_PER_RING),
                retired: Mutex::new(Vec::new()),
            }),
        })
    }

    fn get_ref(&self) -> <Self as VringStateGuard<'_, GuestMemory>>::G {
        self.inner.get_ref()
    }

    fn get_mut(&self) -> <Self as VringStateMutGuard<'_, GuestMemory>>::G {
        self.inner.get_mut()
    }

    fn add_used(&self, desc_index: u16, len: u32) -> Result<(), QueueError> {
        let (mut state, memory) = self.lock_running().ok_or(QueueError::QueueNotReady)?;
        state.get_queue_mut().add_used(&*memory, desc_index, len)
    }

    fn signal_used_queue(&self) -> io::Result<()> {
        signal(&self.inner.get_ref())
    }

    fn enable_notification(&self) -> Result<bool, QueueError> {
        let (mut state, memory) = self.lock_running().ok_or(QueueError::QueueNotReady)?;
        state.get_queue_mut().enable_notification(&*memory)
    }

    fn disable_notification(&self) -> Result<(), QueueError> {
        let (mut state, memory) = self.lock_running().ok_or(QueueError::QueueNotReady)?;
        state.get_queue_mut().disable_notification(&*memory)
    }

    fn needs_notification(&self) -> Result<bool, QueueError> {
        let (mut state, memory) = self.lock_running().ok_or(QueueError::QueueNotReady)?;
        state.get_queue_mut().needs_notification(&*memory)
    }

    fn set_enabled(&self, enabled: bool) {
        self.inner.set_enabled(enabled);
    }

    fn set_queue_info(
        &self,
        desc_table: u64,
        avail_ring: u64,
        used_ring: u64,
    ) -> Result<(), QueueError> {
        let mut state = self.inner.get_mut();
        self.reconfigured(&mut state);
        state.set_queue_info(desc_table, avail_ring, used_ring)
    }

    fn queue_next_avail(&self) -> u16 {
        self.inner.queue_next_avail()
    }

    fn set_queue_next_avail(&self, base: u16) {
        let mut state = self.inner.get_mut();
        self.reconfigured(&mut state);
        state.get_queue_mut().set_next_avail(base);
    }

    fn set_queue_next_used(&self, idx: u16) {
        self.inner.set_queue_next_used(idx);
    }

    fn queue_used_idx(&self) -> Result<u16, QueueError> {
        // The library reads this while setting the ring's addresses: only from a memory
        // table that was checked, and only where it is mapped.
        let memory = self.mem.memory().into_inner();
        if let Err(e) = check_regions(&memory) {
            self.health.reports.warn(format_args!(
                "used index not read: {}",
                crate::report::ErrorChain(&e)
            ));
            return Err(QueueError::QueueNotReady);
        }
        let state = self.inner.get_ref();
        state
            .get_queue()
            .used_idx(&*memory, Ordering::Relaxed)
            .map(|idx| idx.0)
    }

    fn set_queue_size(&self, num: u16) {
        let mut state = self.inner.get_mut();
        self.reconfigured(&mut state);
        state.get_queue_mut().set_size(num);
    }

    fn set_queue_event_idx(&self, enabled: bool) {
        self.inner.set_queue_event_idx(enabled);
    }

    fn set_queue_ready(&self, ready: bool) {
        let mut state = self.inner.get_mut();
        self.reconfigured(&mut state);
        state.get_queue_mut().set_ready(ready);
    }

    fn set_kick(&self, file: Option<File>) {
        let file = self.checked_file("kick", file);
        if file.is_some() && !self.retire_running_kick() {
            return;
        }
        self.inner.set_kick(file);
    }

    fn read_kick(&self) -> io::Result<bool> {
        for retired in self
            .health
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            // Non-blocking; nothing pending is the usual case.
            let _ = retired.consume();
        }
        let state = self.inner.get_ref();
        if let Some(kick) = state.get_kick() {
            match kick.consume() {
                // Non-blocking: nothing to read means the frontend read it, or the event came
                // from a descriptor replaced since. Either way there may be work: go on.
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    // Returning the error would end the worker thread.
                    self.health
                        .reports
                        .warn(format_args!("cannot read the kick descriptor: {e}"));
                }
            }
        }
        Ok(state.is_enabled())
    }

    fn set_call(&self, file: Option<File>) {
        let file = self.checked_file("call", file);
        self.inner.set_call(file);
    }

    fn set_err(&self, file: Option<File>) {
        let file = self.checked_file("error", file);
        self.inner.set_err(file);
    }
}

/// Signals the guest through the ring's call eventfd. A full eventfd counter (`EAGAIN`) means
/// a notification is pending already: nothing is lost.
pub fn signal(state: &VringState<GuestMemory>) -> io::Result<()> {
    match state.signal_used_queue() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use vmm_sys_util::eventfd::EventFd;

    fn blocking_eventfd() -> File {
        let fd = EventFd::new(0).unwrap();
        // SAFETY: dup gives a new descriptor that only the File owns.
        unsafe { File::from_raw_fd(libc::dup(fd.as_raw_fd())) }
    }

    #[test]
    fn read_kick_on_a_drained_eventfd_does_not_block() {
        let mem = GuestMemory::new(GuestMemoryMmap::new());
        let v = Vring::new(mem, 8).unwrap();
        v.set_kick(Some(blocking_eventfd()));
        v.set_enabled(true);
        // Nothing written: a blocking read would hang here.
        assert!(v.read_kick().unwrap());
    }

    #[test]
    fn a_kick_that_is_not_an_eventfd_leaves_the_ring_without_kick() {
        let mem = GuestMemory::new(GuestMemoryMmap::new());
        let v = Vring::new(mem, 8).unwrap();
        v.set_kick(Some(File::open("/proc/self/status").unwrap()));
        assert!(v.get_ref().get_kick().is_none());
    }
}
