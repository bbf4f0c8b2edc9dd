//! Hostile guest scripts: a byte string decoded as guest-memory writes and device events,
//! replayed against an in-process backend, with the checks a fuzzer needs after every event.
//!
//! The fuzz targets of `fuzz/` feed arbitrary bytes through [`run`]; the daemons' tests
//! replay the seed corpus and every input that ever broke a check through the same function,
//! so a finding stays a regression test of the normal `cargo test` suite.
//!
//! The frontend side is fixed and well-behaved (the rings sit where the frontend put them);
//! everything the guest controls is open: descriptor tables (direct and indirect), the
//! available rings, and all data. After each device event:
//! - `handle_event` returned `Ok` (guest mistakes must not stop a worker);
//! - every chain the device popped went to the used ring exactly once, in the same event,
//!   (a head past the end of the descriptor table names no chain: nothing can return it)
//!   unless its queue holds buffers (the GPIO eventq), where the held ones are counted
//!   until they come back and may never exceed a bound;
//! - every used element names a chain popped and not yet returned, with a used length no
//!   longer than the chain's device-writable buffers;
//! - guest memory changed only inside the device-writable buffers of chains popped in that
//!   event or still held, and inside the used rings.
//!
//! A device-writable buffer over a ring or an indirect table would make the device rewrite
//! chains while it walks them, which the snapshots taken before and after an event cannot
//! reconstruct. So the rings live in their own region at [`RINGS`], beyond every address a
//! descriptor written by a script step can name (a `u16` address plus a `u16` length);
//! the script still writes any ring field it likes (tag 2 below). Only a descriptor the
//! script writes as raw bytes (an indirect table in RAM, or raw bytes in the ring region)
//! can still point a device-writable buffer at a ring or at an indirect table; such an event
//! is counted ([`Outcome::unchecked_events`]) and only "no panic, no hang" is checked for
//! it. The checks resume with the next event: every queue that returns its chains within
//! the event starts afresh; a queue that holds chains across events (whose held buffers
//! that event made unknown) keeps the checks off for the rest of the script.
//!
//! Script format: byte 0 is the configuration (bits 0-2: queue size `2 << n`; bit 3:
//! EVENT_IDX). Then steps, each a tag byte `t` and its operands:
//! - `t % 8` in 0..=1: write bytes anywhere in the first RAM region
//!   (`addr: u16 le, n: u8, n bytes`);
//! - 2: write bytes in the ring region at `RINGS + addr` (same operands): queue `q`'s
//!   descriptor table at `q * QUEUE_STRIDE`, avail ring at +0x1000 (flags, idx, ring,
//!   used_event), used ring at +0x2000;
//! - 3: write descriptor `i % size` of queue `t >> 3` (`i: u8, addr: u16 le, len: u16 le,
//!   flags: u8, next: u8`);
//! - 4: make head `h: u8` available on queue `t >> 3` (ring entry and `idx + 1`);
//! - 5, 6: device event number `t >> 3` of the target's list, then the checks;
//! - 7: set the available index of queue `t >> 3` (`idx: u16 le`).

use std::io;

use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use crate::inproc::{InprocMemory, Rings, vring};
use crate::{Error, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

/// The first RAM region: `[0, RAM0_SIZE)`. Data and indirect tables live here.
pub const RAM0_SIZE: u64 = 0x1_0000;
/// The second RAM region, after a one-page hole: buffers can straddle the hole.
pub const RAM1: (u64, u64) = (0x1_1000, 0x1000);
/// The ring region: queue `q`'s descriptor table at `RINGS + q * QUEUE_STRIDE` (avail ring
/// at +0x1000, used ring at +0x2000). A descriptor of a script step ends below
/// `0xffff + 0xffff`: it cannot reach here.
pub const RINGS: u64 = 0x2_0000;
/// Offset of a queue's rings from the previous queue's.
pub const QUEUE_STRIDE: u64 = 0x3000;
/// Bytes of the ring region: two queues (every snapshot copies it, so no more).
pub const RINGS_SIZE: u64 = 2 * QUEUE_STRIDE;
/// Guest RAM, region by region: `(start, size)`.
const REGIONS: [(u64, u64); 3] = [(0, RAM0_SIZE), RAM1, (RINGS, RINGS_SIZE)];
const SNAPSHOT_LEN: usize = 0x1_7000;
const _: () = assert!(SNAPSHOT_LEN as u64 == RAM0_SIZE + RAM1.1 + RINGS_SIZE);

/// What a target tells the harness about its device.
#[derive(Debug, Clone, Copy)]
pub struct ScriptDevice<'a> {
    /// Number of vrings.
    pub queues: u16,
    /// Device events a script may trigger (queue indices and device-specific events).
    pub events: &'a [u16],
    /// Per queue: how many chains the device may hold across events (0: every chain popped
    /// in an event is returned in that event).
    pub max_held: &'a [usize],
}

/// A check that failed (a finding), or a harness set-up failure.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// The harness itself could not be set up.
    #[error("harness set-up")]
    Setup(#[from] Error),
    /// The backend's event handler failed on guest input.
    #[error("handle_event({event}) failed")]
    HandleEvent {
        /// The device event.
        event: u16,
        /// The handler's error.
        #[source]
        source: io::Error,
    },
    /// A used element names no chain popped and not yet returned.
    #[error("queue {queue}: used element for head {head}, which is not outstanding")]
    NotOutstanding {
        /// Queue index.
        queue: u16,
        /// Head in the used element.
        head: u32,
    },
    /// The device has more queues than the ring region holds.
    #[error("{queues} queues: the ring region holds {max}")]
    TooManyQueues {
        /// The device's queues.
        queues: u16,
        /// Queues the ring region holds.
        max: u64,
    },
    /// A used length exceeds the chain's device-writable bytes.
    #[error("queue {queue}: head {head} used length {len} exceeds its {writable} writable bytes")]
    UsedLenTooLong {
        /// Queue index.
        queue: u16,
        /// Head.
        head: u32,
        /// Used length.
        len: u32,
        /// Writable bytes of the chain.
        writable: u64,
    },
    /// Chains popped in an event were not returned, on a queue that holds nothing.
    #[error("queue {queue}: {count} popped chains not returned (first head {head})")]
    NotReturned {
        /// Queue index.
        queue: u16,
        /// How many.
        count: usize,
        /// One of them.
        head: u16,
    },
    /// More chains held than the device may hold.
    #[error("queue {queue}: {held} chains held, at most {max} allowed")]
    TooManyHeld {
        /// Queue index.
        queue: u16,
        /// Held now.
        held: usize,
        /// The bound.
        max: usize,
    },
    /// The device wrote guest memory outside device-writable buffers and used rings.
    #[error("write outside device-writable buffers at {addr:#x}: {before:#04x} -> {after:#04x}")]
    StrayWrite {
        /// Guest address.
        addr: u64,
        /// Byte before the event.
        before: u8,
        /// Byte after it.
        after: u8,
    },
}

/// What a run did, for statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Device events handled.
    pub events: usize,
    /// Chains popped.
    pub popped: usize,
    /// Used elements checked.
    pub used: usize,
    /// Events checked only for "no panic, no hang": a device-writable buffer lay over a ring
    /// or an indirect table (see the module documentation).
    pub unchecked_events: usize,
}

impl Outcome {
    /// Whether the script made the device write its own rings or indirect tables (some of
    /// its events went unchecked).
    pub fn self_modifying(&self) -> bool {
        self.unchecked_events > 0
    }
}

/// Counts a fuzzing process's scripts and their unchecked events and prints the totals to
/// stderr at every power-of-two count of scripts from 1024 on, so that a fuzz run shows how
/// much of it went unchecked (a fuzz target calls it with every [`run`]'s outcome).
pub fn tally(target: &str, outcome: &Outcome) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static SCRIPTS: AtomicUsize = AtomicUsize::new(0);
    static SELF_MODIFYING: AtomicUsize = AtomicUsize::new(0);
    static EVENTS: AtomicUsize = AtomicUsize::new(0);
    static UNCHECKED: AtomicUsize = AtomicUsize::new(0);
    let scripts = SCRIPTS.fetch_add(1, Relaxed).saturating_add(1);
    let self_modifying = SELF_MODIFYING
        .fetch_add(usize::from(outcome.self_modifying()), Relaxed)
        .saturating_add(usize::from(outcome.self_modifying()));
    let events = EVENTS
        .fetch_add(outcome.events, Relaxed)
        .saturating_add(outcome.events);
    let unchecked = UNCHECKED
        .fetch_add(outcome.unchecked_events, Relaxed)
        .saturating_add(outcome.unchecked_events);
    if scripts >= 1024 && scripts.is_power_of_two() {
        eprintln!(
            "{target}: {self_modifying} of {scripts} scripts self-modifying, {unchecked} of \
             {events} events unchecked"
        );
    }
}

/// A chain popped and not yet returned: its head and device-writable buffers.
#[derive(Debug)]
struct Outstanding {
    head: u16,
    writable: Vec<(u64, u32)>,
    writable_len: u64,
}

struct Queue<V> {
    rings: Rings,
    vring: V,
    outstanding: Vec<Outstanding>,
}

/// Guest RAM: the regions of [`REGIONS`], zeroed. One mapping per thread is
/// reused (a fuzzer runs many scripts a second; mapping and faulting in fresh pages each
/// time costs more than the script).
fn guest_ram() -> Result<GuestMemoryMmap, Error> {
    thread_local! {
        static RAM: std::cell::RefCell<Option<GuestMemoryMmap>> =
            const { std::cell::RefCell::new(None) };
    }
    static ZEROS: [u8; 0x1_0000] = [0; 0x1_0000];
    RAM.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some(mem) = cached.as_ref() {
            for (start, size) in REGIONS {
                mem.write_slice(
                    ZEROS.get(..usize::try_from(size)?).unwrap_or_default(),
                    GuestAddress(start),
                )?;
            }
            return Ok(mem.clone());
        }
        let mut ranges = Vec::new();
        for (start, size) in REGIONS {
            ranges.push((GuestAddress(start), usize::try_from(size)?));
        }
        let mem = GuestMemoryMmap::from_ranges(&ranges)?;
        *cached = Some(mem.clone());
        Ok(mem)
    })
}

/// Guest RAM copied out, the regions of [`REGIONS`] back to back.
struct Snapshot(Vec<u8>);

/// The region holding `addr`, as (its start, its size, its first snapshot index).
fn region_of(addr: u64) -> Option<(u64, u64, u64)> {
    let mut index = 0u64;
    for (start, size) in REGIONS {
        if addr >= start && addr.wrapping_sub(start) < size {
            return Some((start, size, index));
        }
        index = index.saturating_add(size);
    }
    None
}

fn snapshot_index(addr: u64) -> Option<usize> {
    let (start, _, index) = region_of(addr)?;
    usize::try_from(index.checked_add(addr.checked_sub(start)?)?).ok()
}

/// The guest address of snapshot index `index`.
fn snapshot_addr(index: u64) -> Option<u64> {
    let mut first = 0u64;
    for (start, size) in REGIONS {
        if index.wrapping_sub(first) < size && index >= first {
            return start.checked_add(index.checked_sub(first)?);
        }
        first = first.saturating_add(size);
    }
    None
}

impl Snapshot {
    fn take(mem: &GuestMemoryMmap, into: &mut Vec<u8>) -> Result<(), Error> {
        into.resize(SNAPSHOT_LEN, 0);
        let mut rest = into.as_mut_slice();
        for (start, size) in REGIONS {
            let (region, tail) = rest.split_at_mut(usize::try_from(size)?);
            mem.read_slice(region, GuestAddress(start))?;
            rest = tail;
        }
        Ok(())
    }

    /// `len` bytes at `addr`, if they lie inside one region.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let (start, size, _) = region_of(addr)?;
        let last = addr.checked_add(u64::try_from(len).ok()?.checked_sub(1)?)?;
        if last.wrapping_sub(start) >= size {
            return None;
        }
        self.0.get(snapshot_index(addr)?..=snapshot_index(last)?)
    }

    fn u16_at(&self, addr: u64) -> Option<u16> {
        let b = self.bytes(addr, 2)?;
        Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u32_at(&self, addr: u64) -> Option<u32> {
        let b: [u8; 4] = self.bytes(addr, 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    }

    fn u64_at(&self, addr: u64) -> Option<u64> {
        let b: [u8; 8] = self.bytes(addr, 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// The device-writable buffers of the chain at `head`, walked as virtio-queue walks it
    /// (indirect tables, no nesting, a time-to-live of the table size).
    fn writable(
        &self,
        desc_table: u64,
        queue_size: u16,
        head: u16,
        out: &mut Vec<(u64, u32)>,
        tables: &mut Vec<(u64, u32)>,
    ) {
        let mut table = desc_table;
        let mut size = queue_size;
        let mut next = head;
        let mut ttl = queue_size;
        let mut indirect = false;
        let mut yielded: u32 = 0;
        while ttl > 0 && next < size {
            let Some(at) = table.checked_add(u64::from(next).saturating_mul(16)) else {
                return;
            };
            let (Some(addr), Some(len), Some(flags), Some(next_index)) = (
                self.u64_at(at),
                self.u32_at(at.saturating_add(8)),
                self.u16_at(at.saturating_add(12)),
                self.u16_at(at.saturating_add(14)),
            ) else {
                return;
            };
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if indirect || len & 0xf != 0 {
                    return;
                }
                let Ok(entries) = u16::try_from(len / 16) else {
                    return;
                };
                tables.push((addr, len));
                table = addr;
                size = entries;
                next = 0;
                ttl = entries;
                indirect = true;
                continue;
            }
            match yielded.checked_add(len) {
                Some(y) => yielded = y,
                None => return,
            }
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                out.push((addr, len));
            }
            if flags & VIRTQ_DESC_F_NEXT != 0 {
                next = next_index;
                ttl = ttl.saturating_sub(1);
            } else {
                ttl = 0;
            }
        }
    }
}

/// Checks every byte that differs between `before` and `after` (snapshot slices starting at
/// snapshot index `base`) with [`stray_check`].
fn stray_writes(
    before: &[u8],
    after: &[u8],
    base: usize,
    allowed: &[(u64, u32)],
) -> Result<(), Violation> {
    if before == after {
        return Ok(());
    }
    if before.len() <= 16 {
        for (i, (b, a)) in before.iter().zip(after).enumerate() {
            if b != a {
                stray_check(base.saturating_add(i), *b, *a, allowed)?;
            }
        }
        return Ok(());
    }
    let half = before.len() / 2;
    let (b0, b1) = before.split_at(half);
    let (a0, a1) = after.split_at(half.min(after.len()));
    stray_writes(b0, a0, base, allowed)?;
    stray_writes(b1, a1, base.saturating_add(half), allowed)
}

/// Checks that the byte at snapshot `index`, changed from `before` to `after`, lies in
/// `allowed`.
fn stray_check(
    index: usize,
    before: u8,
    after: u8,
    allowed: &[(u64, u32)],
) -> Result<(), Violation> {
    let index = u64::try_from(index).map_err(Error::from)?;
    let addr = snapshot_addr(index).unwrap_or(u64::MAX);
    if in_ranges(addr, allowed) {
        Ok(())
    } else {
        Err(Violation::StrayWrite {
            addr,
            before,
            after,
        })
    }
}

/// Whether two `(address, length)` ranges share a byte.
fn overlaps((a, al): (u64, u32), (b, bl): (u64, u32)) -> bool {
    let a_end = a.saturating_add(u64::from(al));
    let b_end = b.saturating_add(u64::from(bl));
    al > 0 && bl > 0 && a < b_end && b < a_end
}

fn in_ranges(addr: u64, ranges: &[(u64, u32)]) -> bool {
    ranges
        .iter()
        .any(|&(a, l)| addr >= a && addr.wrapping_sub(a) < u64::from(l))
}

/// Bytes of a used ring of `size` entries (flags, idx, ring, avail_event).
fn used_ring_len(size: u16) -> u32 {
    u32::from(size).saturating_mul(8).saturating_add(6)
}

/// A little cursor over the script.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

struct Harness<'d, B: VhostUserBackend> {
    backend: &'d B,
    device: ScriptDevice<'d>,
    mem: GuestMemoryMmap,
    queues: Vec<Queue<B::Vring>>,
    size: u16,
    before: Vec<u8>,
    after: Vec<u8>,
    outcome: Outcome,
    tainted: bool,
}

/// Replays `script` against `backend` (fresh, as built for a new connection) with the
/// checks of the module documentation. Stops at the first violation.
pub fn run<B>(backend: &B, device: ScriptDevice<'_>, script: &[u8]) -> Result<Outcome, Violation>
where
    B: VhostUserBackend<Bitmap = ()>,
    B::Vring: VringT<InprocMemory> + Clone,
{
    let mut s = Script(script);
    let config = s.byte().unwrap_or(0);
    let size: u16 = 2u16 << (config & 7);
    let event_idx = config & 8 != 0;

    let max = RINGS_SIZE / QUEUE_STRIDE;
    if u64::from(device.queues) > max {
        return Err(Violation::TooManyQueues {
            queues: device.queues,
            max,
        });
    }
    let mem = guest_ram()?;
    let atomic = GuestMemoryAtomic::new(mem.clone());
    let mut queues = Vec::new();
    for q in 0..device.queues {
        let base = RINGS.saturating_add(u64::from(q).saturating_mul(QUEUE_STRIDE));
        let rings = Rings {
            size,
            desc: base,
            avail: base.saturating_add(0x1000),
            used: base.saturating_add(0x2000),
            data: 0,
        };
        let (vring, _call) = vring(&atomic, rings, event_idx)?;
        queues.push(Queue {
            rings,
            vring,
            outstanding: Vec::new(),
        });
    }
    backend.set_event_idx(event_idx);
    backend
        .update_memory(atomic)
        .map_err(|source| Violation::HandleEvent { event: 0, source })?;

    let mut h = Harness {
        backend,
        device,
        mem,
        queues,
        size,
        // Guest RAM starts zeroed; the shadow follows every write of the script.
        before: vec![0; SNAPSHOT_LEN],
        after: Vec::new(),
        outcome: Outcome::default(),
        tainted: false,
    };
    while let Some(tag) = s.byte() {
        let q = usize::from(tag >> 3)
            .checked_rem(usize::from(device.queues))
            .unwrap_or(0);
        match tag % 8 {
            0..=2 => {
                let (Some(addr), Some(n)) = (s.u16(), s.byte()) else {
                    break;
                };
                let bytes = s.take(usize::from(n));
                let base = if tag % 8 == 2 { RINGS } else { 0 };
                let at = base.saturating_add(u64::from(addr));
                // Writes running off the end of a region are cut by vm-memory: that is fine.
                let _ = h.mem.write_slice(bytes, GuestAddress(at));
                h.sync(at, bytes.len());
            }
            3 => {
                let (Some(i), Some(addr), Some(len), Some(flags), Some(next)) =
                    (s.byte(), s.u16(), s.u16(), s.byte(), s.byte())
                else {
                    break;
                };
                h.write_descriptor(q, i, addr, len, flags, next);
            }
            4 => {
                let Some(head) = s.byte() else { break };
                h.post(q, u16::from(head));
            }
            5 | 6 => {
                let events = device.events;
                let Some(&event) =
                    events.get(usize::from(tag >> 3).checked_rem(events.len()).unwrap_or(0))
                else {
                    continue;
                };
                h.event(event)?;
            }
            _ => {
                let Some(idx) = s.u16() else { break };
                if let Some(queue) = h.queues.get(q) {
                    let at = queue.rings.avail.saturating_add(2);
                    let _ = h.mem.write_obj(idx, GuestAddress(at));
                    h.sync(at, 2);
                }
            }
        }
    }
    Ok(h.outcome)
}

impl<B> Harness<'_, B>
where
    B: VhostUserBackend<Bitmap = ()>,
    B::Vring: VringT<InprocMemory> + Clone,
{
    fn write_descriptor(&mut self, q: usize, i: u8, addr: u16, len: u16, flags: u8, next: u8) {
        let Some(queue) = self.queues.get(q) else {
            return;
        };
        let index = u64::from(u16::from(i) & self.size.wrapping_sub(1));
        let at = queue.rings.desc.saturating_add(index.saturating_mul(16));
        let mut d = [0u8; 16];
        let (a, rest) = d.split_at_mut(8);
        a.copy_from_slice(&u64::from(addr).to_le_bytes());
        let (l, rest) = rest.split_at_mut(4);
        l.copy_from_slice(&u32::from(len).to_le_bytes());
        let (f, n) = rest.split_at_mut(2);
        f.copy_from_slice(&u16::from(flags).to_le_bytes());
        n.copy_from_slice(&u16::from(next).to_le_bytes());
        let _ = self.mem.write_slice(&d, GuestAddress(at));
        self.sync(at, d.len());
    }

    /// Copies `[addr, addr + len)`, cut at the end of its region, into the shadow after a
    /// write of the script.
    fn sync(&mut self, addr: u64, len: usize) {
        let Some((start, size, _)) = region_of(addr) else {
            return;
        };
        let room = size.saturating_sub(addr.saturating_sub(start));
        let len = u64::try_from(len).unwrap_or(u64::MAX).min(room);
        let (Some(first), Ok(len)) = (snapshot_index(addr), usize::try_from(len)) else {
            return;
        };
        if let Some(dst) = self.before.get_mut(first..first.saturating_add(len)) {
            let _ = self.mem.read_slice(dst, GuestAddress(addr));
        }
    }

    fn post(&mut self, q: usize, head: u16) {
        let Some(queue) = self.queues.get(q) else {
            return;
        };
        let idx_at = GuestAddress(queue.rings.avail.saturating_add(2));
        let Ok(idx) = self.mem.read_obj::<u16>(idx_at) else {
            return;
        };
        let slot = u64::from(idx & self.size.wrapping_sub(1));
        let entry = queue
            .rings
            .avail
            .saturating_add(4)
            .saturating_add(slot.saturating_mul(2));
        let _ = self.mem.write_obj(head, GuestAddress(entry));
        let _ = self.mem.write_obj(idx.wrapping_add(1), idx_at);
        self.sync(entry, 2);
        self.sync(idx_at.0, 2);
    }

    fn event(&mut self, event: u16) -> Result<(), Violation> {
        let marks: Vec<(u16, u16)> = self
            .queues
            .iter()
            .map(|q| {
                let state = q.vring.get_ref();
                let queue = state.get_queue();
                (queue.next_avail(), queue.next_used())
            })
            .collect();
        let vrings: Vec<B::Vring> = self.queues.iter().map(|q| q.vring.clone()).collect();
        self.backend
            .handle_event(event, EventSet::IN, &vrings, 0)
            .map_err(|source| Violation::HandleEvent { event, source })?;
        self.outcome.events = self.outcome.events.saturating_add(1);
        Snapshot::take(&self.mem, &mut self.after)?;
        let before = Snapshot(std::mem::take(&mut self.before));
        let after = Snapshot(std::mem::take(&mut self.after));
        let result = self.check(&before, &after, &marks);
        // The memory after this event is the memory before the next one.
        self.before = after.0;
        self.after = before.0;
        result
    }

    fn check(
        &mut self,
        before: &Snapshot,
        after: &Snapshot,
        marks: &[(u16, u16)],
    ) -> Result<(), Violation> {
        if self.tainted {
            self.outcome.unchecked_events = self.outcome.unchecked_events.saturating_add(1);
            return Ok(());
        }
        let size = self.size;
        let mut allowed: Vec<(u64, u32)> = Vec::new();
        // Indirect tables the popped chains use.
        let mut tables: Vec<(u64, u32)> = Vec::new();
        // Chains popped in this event.
        for (queue, &(avail0, _)) in self.queues.iter_mut().zip(marks) {
            let avail1 = queue.vring.get_ref().get_queue().next_avail();
            let mut i = avail0;
            while i != avail1 {
                let entry = queue
                    .rings
                    .avail
                    .saturating_add(4)
                    .saturating_add(u64::from(i & size.wrapping_sub(1)).saturating_mul(2));
                let head = before.u16_at(entry).unwrap_or(u16::MAX);
                self.outcome.popped = self.outcome.popped.saturating_add(1);
                i = i.wrapping_add(1);
                if head >= size {
                    // Not a descriptor: no used element can name it (virtio-queue refuses).
                    continue;
                }
                let mut writable = Vec::new();
                before.writable(queue.rings.desc, size, head, &mut writable, &mut tables);
                let len_before: u64 = writable.iter().map(|&(_, l)| u64::from(l)).sum();
                let split = writable.len();
                // The device may have written a descriptor table itself (a writable buffer
                // over it): the walk on the memory after the event counts too.
                after.writable(queue.rings.desc, size, head, &mut writable, &mut tables);
                let len_after: u64 = writable
                    .get(split..)
                    .unwrap_or_default()
                    .iter()
                    .map(|&(_, l)| u64::from(l))
                    .sum();
                queue.outstanding.push(Outstanding {
                    head,
                    writable,
                    writable_len: len_before.max(len_after),
                });
            }
        }
        for queue in &self.queues {
            for o in &queue.outstanding {
                allowed.extend_from_slice(&o.writable);
            }
        }
        // A guest that posts one head many times yields many copies of the same buffers.
        allowed.sort_unstable();
        allowed.dedup();
        // A device-writable buffer over a ring or an indirect table: the device's own writes
        // may change the chains it walks next, which snapshots before and after the event
        // cannot reconstruct. This event gets no checks but "no panic, no hang".
        for queue in &self.queues {
            tables.push((queue.rings.desc, u32::from(size).saturating_mul(16)));
            tables.push((
                queue.rings.avail,
                u32::from(size).saturating_mul(2).saturating_add(6),
            ));
            tables.push((queue.rings.used, used_ring_len(size)));
        }
        if allowed
            .iter()
            .any(|&w| tables.iter().any(|&t| overlaps(w, t)))
        {
            self.outcome.unchecked_events = self.outcome.unchecked_events.saturating_add(1);
            self.start_afresh();
            return Ok(());
        }
        for queue in &self.queues {
            allowed.push((queue.rings.used, used_ring_len(size)));
        }
        // Stray writes, found by halving: this runs after every event, and a fuzzer's
        // coverage instrumentation makes byte loops slow.
        stray_writes(&before.0, &after.0, 0, &allowed)?;
        self.check_used(after, marks)
    }

    /// After an unchecked event: a queue that returns every chain within its event has
    /// nothing outstanding now (if the device kept one, the next event's checks see it come
    /// back); a queue holding chains may hold ones whose buffers are unknown, so the checks
    /// stay off for the rest of the script.
    fn start_afresh(&mut self) {
        for (q, queue) in self.queues.iter_mut().enumerate() {
            if self.device.max_held.get(q).copied().unwrap_or(0) == 0 {
                queue.outstanding.clear();
            } else if !queue.outstanding.is_empty() {
                self.tainted = true;
            }
        }
    }

    fn check_used(&mut self, after: &Snapshot, marks: &[(u16, u16)]) -> Result<(), Violation> {
        let size = self.size;
        // Used elements.
        for (q, (queue, &(_, used0))) in self.queues.iter_mut().zip(marks).enumerate() {
            let queue_index = u16::try_from(q).map_err(Error::from)?;
            let used1 = queue.vring.get_ref().get_queue().next_used();
            let mut i = used0;
            while i != used1 {
                let elem = queue
                    .rings
                    .used
                    .saturating_add(4)
                    .saturating_add(u64::from(i & size.wrapping_sub(1)).saturating_mul(8));
                let id = after.u32_at(elem).unwrap_or(u32::MAX);
                let len = after.u32_at(elem.saturating_add(4)).unwrap_or(u32::MAX);
                let mut matching = queue
                    .outstanding
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| u32::from(o.head) == id);
                let Some((first, _)) = matching.next() else {
                    return Err(Violation::NotOutstanding {
                        queue: queue_index,
                        head: id,
                    });
                };
                let fits = std::iter::once(first)
                    .chain(matching.map(|(p, _)| p))
                    .find(|&p| {
                        queue
                            .outstanding
                            .get(p)
                            .is_some_and(|o| o.writable_len >= u64::from(len))
                    });
                let Some(p) = fits else {
                    let writable = queue.outstanding.get(first).map_or(0, |o| o.writable_len);
                    return Err(Violation::UsedLenTooLong {
                        queue: queue_index,
                        head: id,
                        len,
                        writable,
                    });
                };
                let returned = queue.outstanding.swap_remove(p);
                // The guest posted this head again before getting it back: which of the
                // postings came back is ambiguous, so its buffers stay allowed (the allowed
                // set is the union over all outstanding chains) while one posting is left.
                if let Some(o) = queue
                    .outstanding
                    .iter_mut()
                    .find(|o| o.head == returned.head)
                {
                    o.writable.extend_from_slice(&returned.writable);
                    o.writable.sort_unstable();
                    o.writable.dedup();
                    o.writable_len = o.writable_len.max(returned.writable_len);
                }
                self.outcome.used = self.outcome.used.saturating_add(1);
                i = i.wrapping_add(1);
            }
            let max = self.device.max_held.get(q).copied().unwrap_or(0);
            if max == 0 {
                if let Some(o) = queue.outstanding.first() {
                    return Err(Violation::NotReturned {
                        queue: queue_index,
                        count: queue.outstanding.len(),
                        head: o.head,
                    });
                }
            } else if queue.outstanding.len() > max {
                return Err(Violation::TooManyHeld {
                    queue: queue_index,
                    held: queue.outstanding.len(),
                    max,
                });
            }
        }
        Ok(())
    }
}

/// Builds a script from readable steps (for seed corpora and tests).
#[derive(Debug, Clone, Default)]
pub struct ScriptBuilder(Vec<u8>);

impl ScriptBuilder {
    /// A script with queue size `2 << size_log` (`size_log` 0..=7) and EVENT_IDX on or off.
    pub fn new(size_log: u8, event_idx: bool) -> Self {
        ScriptBuilder(vec![(size_log & 7) | if event_idx { 8 } else { 0 }])
    }

    /// Writes `bytes` (at most 255) at `addr` in the first RAM region.
    pub fn write(mut self, addr: u16, bytes: &[u8]) -> Self {
        for chunk in bytes.chunks(255) {
            self.0.push(0);
            self.0.extend_from_slice(&addr.to_le_bytes());
            self.0.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            self.0.extend_from_slice(chunk);
        }
        self
    }

    /// Writes `bytes` (at most 255) at `RINGS + offset` in the ring region (see [`RINGS`]):
    /// any ring field, or a descriptor as raw bytes.
    pub fn ring_write(mut self, offset: u16, bytes: &[u8]) -> Self {
        for chunk in bytes.chunks(255) {
            self.0.push(2);
            self.0.extend_from_slice(&offset.to_le_bytes());
            self.0.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            self.0.extend_from_slice(chunk);
        }
        self
    }

    /// Writes descriptor `i` of queue `q`.
    pub fn desc(mut self, q: u8, i: u8, addr: u16, len: u16, flags: u8, next: u8) -> Self {
        self.0.push(3 | (q << 3));
        self.0.push(i);
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.push(flags);
        self.0.push(next);
        self
    }

    /// Makes head `head` available on queue `q`.
    pub fn post(mut self, q: u8, head: u8) -> Self {
        self.0.push(4 | (q << 3));
        self.0.push(head);
        self
    }

    /// Triggers event number `n` of the target's event list.
    pub fn event(mut self, n: u8) -> Self {
        self.0.push(5 | (n << 3));
        self
    }

    /// Sets queue `q`'s available index.
    pub fn avail_idx(mut self, q: u8, idx: u16) -> Self {
        self.0.push(7 | (q << 3));
        self.0.extend_from_slice(&idx.to_le_bytes());
        self
    }

    /// The script bytes.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// `e` with its sources, `a: b: c`.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
