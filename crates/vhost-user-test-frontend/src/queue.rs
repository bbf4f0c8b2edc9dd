//! The driver side of one split virtqueue: lays chains out in guest memory,
//! publishes them, kicks, and collects used elements.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::Error;
use crate::layout::{BufferPool, DESC_SIZE, DescSlots, RingLayout};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds an indirect descriptor table.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// One buffer of a chain to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desc {
    /// Device-readable buffer holding these bytes.
    Out(Vec<u8>),
    /// Device-writable buffer of this many bytes (zero-filled before posting).
    In(u32),
}

/// A descriptor written verbatim, for building malformed chains.
///
/// `next` is an index into the slice passed to [`TestQueue::post_raw`] and is
/// translated to the real table slot; a `next` at or beyond the slice length is
/// written unchanged (so it can point anywhere, including outside the table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawDesc {
    /// Guest-physical buffer address (may be outside guest memory).
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// `VIRTQ_DESC_F_*` flags, written as given.
    pub flags: u16,
    /// Slice-relative index of the next descriptor (see the type docs).
    pub next: u16,
}

/// A used element returned by the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Head descriptor id of the chain.
    pub head: u16,
    /// `len` the backend wrote into the used element.
    pub used_len: u32,
    /// Contents of every [`Desc::In`] buffer of the chain, in order, at the full
    /// requested length (empty for chains posted with [`TestQueue::post_raw`]).
    pub written: Vec<Vec<u8>>,
}

/// What a posted chain holds until it completes.
#[derive(Debug)]
struct InFlight {
    slots: Vec<u16>,
    buffers: Vec<u64>,
    /// (address, length) of each device-writable buffer, in chain order.
    writable: Vec<(u64, u32)>,
}

/// The driver side of one split virtqueue.
#[derive(Debug)]
pub struct TestQueue {
    index: usize,
    mem: GuestMemoryMmap,
    size: u16,
    ring: RingLayout,
    kick: EventFd,
    call: EventFd,
    slots: DescSlots,
    pool: BufferPool,
    /// Next value of the avail ring's `idx`.
    next_avail: u16,
    /// Byte written into device-writable buffers before posting.
    poison: u8,
    /// While set, posted chains are written into the avail ring but `idx` is only
    /// published by [`TestQueue::flush`], so the device sees a batch all at once.
    holding: bool,
    /// Used ring index up to which elements were consumed.
    last_used: u16,
    event_idx: bool,
    inflight: BTreeMap<u16, InFlight>,
    /// Completions read while `transact` waited for a different head.
    pending: VecDeque<(Completion, InFlight)>,
}

fn addr(value: Option<u64>) -> Result<GuestAddress, Error> {
    value.map(GuestAddress).ok_or(Error::AddressOverflow)
}

impl TestQueue {
    #[allow(clippy::too_many_arguments)] // Internal constructor; every field is needed.
    pub(crate) fn new(
        index: usize,
        mem: GuestMemoryMmap,
        size: u16,
        ring: RingLayout,
        data: (u64, u64),
        kick: EventFd,
        call: EventFd,
        event_idx: bool,
    ) -> Self {
        Self {
            index,
            mem,
            size,
            ring,
            kick,
            call,
            slots: DescSlots::new(size),
            pool: BufferPool::new(data.0, data.1),
            next_avail: 0,
            poison: 0,
            holding: false,
            last_used: 0,
            event_idx,
            inflight: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }

    /// The kick eventfd's descriptor (to hand to a backend).
    /// Replaces the kick eventfd this queue writes (after the frontend sent the new one with
    /// SET_VRING_KICK); returns the old one.
    pub(crate) fn replace_kick(&mut self, kick: EventFd) -> EventFd {
        std::mem::replace(&mut self.kick, kick)
    }

    /// Fills device-writable buffers with `byte` (instead of 0) before posting them.
    pub(crate) fn poison_writable(&mut self, byte: u8) {
        self.poison = byte;
    }

    /// The guest addresses of the device-writable buffers of the in-flight chain `head`.
    pub(crate) fn writable_addrs(&self, head: u16) -> Vec<u64> {
        self.inflight
            .get(&head)
            .map(|c| c.writable.iter().map(|&(at, _)| at).collect())
            .unwrap_or_default()
    }

    /// The next used element, if any, without waiting; unlike [`TestQueue::try_used`] an
    /// inconsistent used ring is an error.
    pub(crate) fn used_now(&mut self) -> Result<Option<Completion>, Error> {
        let next = match self.pending.pop_front() {
            Some(entry) => Some(entry),
            None => self.read_used()?,
        };
        Ok(next.map(|entry| self.deliver(entry)))
    }

    pub(crate) fn kick_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.kick)
    }

    /// The call eventfd's descriptor (to hand to a backend).
    pub(crate) fn call_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.call)
    }

    /// Sets whether VIRTIO_RING_F_EVENT_IDX is in use (decided after the queue was made).
    pub(crate) fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
    }

    /// Index of this queue.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of ring entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Guest-physical placement of this queue's rings.
    pub fn ring_layout(&self) -> RingLayout {
        self.ring
    }

    /// Guest memory (shared with the backend), for tests that poke at it directly.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Whether VIRTIO_RING_F_EVENT_IDX is in use on this queue.
    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// Number of posted chains not yet collected.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// Free descriptor-table slots.
    pub fn free_descriptors(&self) -> usize {
        self.slots.available()
    }

    /// Allocates `len` bytes from this queue's data area, for raw chains.
    /// Release it with [`TestQueue::free_buffer`].
    pub fn alloc_buffer(&mut self, len: u32) -> Result<u64, Error> {
        self.pool
            .alloc(u64::from(len))
            .ok_or(Error::OutOfBufferSpace(len))
    }

    /// Bytes currently free in this queue's data area.
    pub fn free_buffer_bytes(&self) -> u64 {
        self.pool.free_bytes()
    }

    /// Releases a buffer from [`TestQueue::alloc_buffer`]; `false` if unknown.
    pub fn free_buffer(&mut self, addr: u64) -> bool {
        self.pool.free(addr)
    }

    fn write_desc(
        &self,
        table: u64,
        index: u16,
        buf: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) -> Result<(), Error> {
        let at = table.checked_add(
            DESC_SIZE
                .checked_mul(u64::from(index))
                .ok_or(Error::AddressOverflow)?,
        );
        let mut raw = [0u8; 16];
        let (a, rest) = raw.split_at_mut(8);
        a.copy_from_slice(&buf.to_le_bytes());
        let (l, rest) = rest.split_at_mut(4);
        l.copy_from_slice(&len.to_le_bytes());
        let (f, n) = rest.split_at_mut(2);
        f.copy_from_slice(&flags.to_le_bytes());
        n.copy_from_slice(&next.to_le_bytes());
        self.mem.write_slice(&raw, addr(at)?)?;
        Ok(())
    }

    /// Lays a chain out in guest memory and publishes it in the avail ring
    /// (without kicking). With `indirect`, the main table gets one
    /// `VIRTQ_DESC_F_INDIRECT` descriptor pointing at a table in the data area.
    /// Returns the head descriptor id.
    pub fn post(&mut self, descs: &[Desc], indirect: bool) -> Result<u16, Error> {
        if descs.is_empty() {
            return Err(Error::EmptyChain);
        }
        let mut buffers = Vec::with_capacity(descs.len().saturating_add(1));
        let result = self.layout_chain(descs, indirect, &mut buffers);
        match result {
            Ok((slots, writable)) => {
                let head = *slots.first().ok_or(Error::EmptyChain)?;
                self.publish(head)?;
                self.inflight.insert(
                    head,
                    InFlight {
                        slots,
                        buffers,
                        writable,
                    },
                );
                Ok(head)
            }
            Err(e) => {
                for b in buffers {
                    self.pool.free(b);
                }
                Err(e)
            }
        }
    }

    /// Allocates buffers (recorded in `buffers` so the caller can roll back) and
    /// writes descriptors; returns the table slots used and the writable buffers.
    #[allow(clippy::type_complexity)] // Private helper with a one-off return shape.
    fn layout_chain(
        &mut self,
        descs: &[Desc],
        indirect: bool,
        buffers: &mut Vec<u64>,
    ) -> Result<(Vec<u16>, Vec<(u64, u32)>), Error> {
        let mut entries = Vec::with_capacity(descs.len());
        let mut writable = Vec::new();
        for d in descs {
            let (len, flags) = match d {
                Desc::Out(bytes) => (u32::try_from(bytes.len())?, 0),
                Desc::In(len) => (*len, VIRTQ_DESC_F_WRITE),
            };
            let at = self.alloc_buffer(len)?;
            buffers.push(at);
            match d {
                Desc::Out(bytes) => self.mem.write_slice(bytes, GuestAddress(at))?,
                Desc::In(len) => {
                    let fill = vec![self.poison; usize::try_from(*len)?];
                    self.mem.write_slice(&fill, GuestAddress(at))?;
                    writable.push((at, *len));
                }
            }
            entries.push((at, len, flags));
        }
        let count = u16::try_from(entries.len())?;

        if indirect {
            let table_len = u32::try_from(
                DESC_SIZE
                    .checked_mul(u64::from(count))
                    .ok_or(Error::AddressOverflow)?,
            )?;
            let table = self.alloc_buffer(table_len)?;
            buffers.push(table);
            for (i, (at, len, flags)) in (0u16..).zip(entries.iter().copied()) {
                let next = i.wrapping_add(1);
                let flags = if next < count {
                    flags | VIRTQ_DESC_F_NEXT
                } else {
                    flags
                };
                self.write_desc(
                    table,
                    i,
                    at,
                    len,
                    flags,
                    if next < count { next } else { 0 },
                )?;
            }
            let slots = self.slots.alloc(1).ok_or(Error::QueueFull)?;
            let head = *slots.first().ok_or(Error::QueueFull)?;
            if let Err(e) = self.write_desc(
                self.ring.desc,
                head,
                table,
                table_len,
                VIRTQ_DESC_F_INDIRECT,
                0,
            ) {
                self.slots.release(&slots);
                return Err(e);
            }
            Ok((slots, writable))
        } else {
            let slots = self.slots.alloc(entries.len()).ok_or(Error::QueueFull)?;
            let written = self.write_direct(&slots, &entries);
            if let Err(e) = written {
                self.slots.release(&slots);
                return Err(e);
            }
            Ok((slots, writable))
        }
    }

    fn write_direct(&self, slots: &[u16], entries: &[(u64, u32, u16)]) -> Result<(), Error> {
        let mut iter = slots.iter().zip(entries).peekable();
        while let Some((&slot, &(at, len, flags))) = iter.next() {
            let (flags, next) = match iter.peek() {
                Some((next, _)) => (flags | VIRTQ_DESC_F_NEXT, **next),
                None => (flags, 0),
            };
            self.write_desc(self.ring.desc, slot, at, len, flags, next)?;
        }
        Ok(())
    }

    /// Writes `descs` verbatim into free table slots (translating slice-relative
    /// `next` values, see [`RawDesc`]) and publishes the first as a chain head.
    /// Nothing is allocated or checked: this is for malformed chains.
    pub fn post_raw(&mut self, descs: &[RawDesc]) -> Result<u16, Error> {
        if descs.is_empty() {
            return Err(Error::EmptyChain);
        }
        let slots = self.slots.alloc(descs.len()).ok_or(Error::QueueFull)?;
        let head = *slots.first().ok_or(Error::EmptyChain)?;
        let written = descs.iter().zip(&slots).try_for_each(|(d, &slot)| {
            let next = slots.get(usize::from(d.next)).copied().unwrap_or(d.next);
            self.write_desc(self.ring.desc, slot, d.addr, d.len, d.flags, next)
        });
        if let Err(e) = written.and_then(|()| self.publish(head)) {
            self.slots.release(&slots);
            return Err(e);
        }
        self.inflight.insert(
            head,
            InFlight {
                slots,
                buffers: Vec::new(),
                writable: Vec::new(),
            },
        );
        Ok(head)
    }

    /// Puts `head` in the next avail slot and bumps `idx` with release semantics.
    fn publish(&mut self, head: u16) -> Result<(), Error> {
        let slot = self.next_avail & self.size.wrapping_sub(1);
        self.mem.store(
            head.to_le(),
            addr(self.ring.avail_slot_addr(slot))?,
            Ordering::Relaxed,
        )?;
        self.next_avail = self.next_avail.wrapping_add(1);
        if self.holding {
            return Ok(());
        }
        self.flush()
    }

    /// Holds (or stops holding) the publication of posted chains: while held, chains are
    /// laid out but the avail `idx` moves only on [`TestQueue::flush`], as a driver that
    /// adds a whole request group before making it visible. Stopping the hold flushes.
    pub fn hold(&mut self, hold: bool) -> Result<(), Error> {
        self.holding = hold;
        if hold { Ok(()) } else { self.flush() }
    }

    /// Makes every chain posted so far visible to the device (bumps the avail `idx`).
    pub fn flush(&mut self) -> Result<(), Error> {
        // Descriptors and ring entries must be visible before the new idx.
        fence(Ordering::Release);
        self.mem.store(
            self.next_avail.to_le(),
            addr(self.ring.avail_idx_addr())?,
            Ordering::Release,
        )?;
        Ok(())
    }

    /// Notifies the backend through the kick eventfd.
    pub fn kick(&self) -> Result<(), Error> {
        self.kick.write(1).map_err(Error::Kick)
    }

    /// Returns the next used element without blocking, or `None` if there is
    /// none yet. Errors (e.g. the backend returned an unknown head) are
    /// reported by [`TestQueue::wait_used`]; here they read as `None`.
    pub fn try_used(&mut self) -> Option<Completion> {
        let next = match self.pending.pop_front() {
            Some(entry) => Some(entry),
            None => self.read_used().ok().flatten(),
        };
        next.map(|entry| self.deliver(entry))
    }

    /// Re-arms `used_event` (with EVENT_IDX) then reads one used element if
    /// present. The chain's slots and buffers stay reserved until
    /// [`TestQueue::deliver`], so a head id is never reused while a completion
    /// carrying it is still queued in `pending`.
    fn read_used(&mut self) -> Result<Option<(Completion, InFlight)>, Error> {
        if self.event_idx {
            // Ask to be notified when the entry at `last_used` is written.
            self.mem.store(
                self.last_used.to_le(),
                addr(self.ring.used_event_addr(self.size))?,
                Ordering::Relaxed,
            )?;
            // The store must be visible before re-reading the used idx, or a
            // backend that just checked the old used_event may skip the signal.
            fence(Ordering::SeqCst);
        }
        let used_idx = u16::from_le(
            self.mem
                .load::<u16>(addr(self.ring.used_idx_addr())?, Ordering::Acquire)?,
        );
        if used_idx == self.last_used {
            return Ok(None);
        }
        let slot = self.last_used & self.size.wrapping_sub(1);
        let elem = addr(self.ring.used_elem_addr(slot))?;
        let id = u32::from_le(self.mem.read_obj::<u32>(elem)?);
        let used_len = u32::from_le(self.mem.read_obj::<u32>(addr(elem.0.checked_add(4))?)?);
        self.last_used = self.last_used.wrapping_add(1);
        let head = u16::try_from(id).map_err(|source| Error::UnknownHead {
            id,
            source: Some(source),
        })?;
        let chain = self
            .inflight
            .remove(&head)
            .ok_or(Error::UnknownHead { id, source: None })?;
        let mut written = Vec::with_capacity(chain.writable.len());
        for &(at, len) in &chain.writable {
            let mut buf = vec![0u8; usize::try_from(len)?];
            if let Err(e) = self.mem.read_slice(&mut buf, GuestAddress(at)) {
                self.release(chain);
                return Err(e.into());
            }
            written.push(buf);
        }
        Ok(Some((
            Completion {
                head,
                used_len,
                written,
            },
            chain,
        )))
    }

    /// Returns a completed chain's descriptor slots and buffers to the free lists.
    fn release(&mut self, chain: InFlight) {
        self.slots.release(&chain.slots);
        for b in chain.buffers {
            self.pool.free(b);
        }
    }

    /// Releases the chain behind a completion and hands the completion out.
    fn deliver(&mut self, (completion, chain): (Completion, InFlight)) -> Completion {
        self.release(chain);
        completion
    }

    /// Waits for the next element from the used ring itself (not `pending`).
    fn wait_ring(
        &mut self,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<(Completion, InFlight), Error> {
        loop {
            if let Some(entry) = self.read_used()? {
                return Ok(entry);
            }
            let remaining = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => timeout,
            };
            if remaining.is_zero() {
                return Err(Error::Timeout);
            }
            if self.poll_call(remaining)? {
                // Consume the signal; the used ring is re-checked above. A
                // failed read means the counter was already zero.
                let _ = self.call.read();
            }
        }
    }

    /// Waits up to `timeout` for the next used element (in used-ring order),
    /// sleeping on the call eventfd. Returns [`Error::Timeout`] if none arrives.
    pub fn wait_used(&mut self, timeout: Duration) -> Result<Completion, Error> {
        let entry = match self.pending.pop_front() {
            Some(entry) => entry,
            None => self.wait_ring(Instant::now().checked_add(timeout), timeout)?,
        };
        Ok(self.deliver(entry))
    }

    /// Polls the call eventfd; `true` if it is readable.
    fn poll_call(&self, timeout: Duration) -> Result<bool, Error> {
        crate::poll::readable(&self.call, Some(timeout)).map_err(Error::Poll)
    }

    /// Posts a chain, kicks, and waits for the completion of that chain.
    /// Completions of other chains seen meanwhile are kept for
    /// [`TestQueue::wait_used`] / [`TestQueue::try_used`].
    pub fn transact(
        &mut self,
        descs: &[Desc],
        indirect: bool,
        timeout: Duration,
    ) -> Result<Completion, Error> {
        let head = self.post(descs, indirect)?;
        self.kick()?;
        self.wait_head(head, timeout)
    }

    /// Waits for the completion of the chain whose head is `head`, keeping
    /// completions of other chains for later.
    pub fn wait_head(&mut self, head: u16, timeout: Duration) -> Result<Completion, Error> {
        if let Some(pos) = self.pending.iter().position(|(c, _)| c.head == head)
            && let Some(entry) = self.pending.remove(pos)
        {
            return Ok(self.deliver(entry));
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let entry = self.wait_ring(deadline, timeout)?;
            if entry.0.head == head {
                return Ok(self.deliver(entry));
            }
            self.pending.push_back(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]

    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    use super::*;
    use crate::layout::MemoryLayout;

    fn queue(size: u16, event_idx: bool) -> TestQueue {
        let mem = crate::create_memory(1 << 20, true).unwrap();
        let (ring, start, end) = MemoryLayout::new(1, size, 1 << 20).unwrap().queues[0];
        TestQueue::new(
            0,
            mem,
            size,
            ring,
            (start, end),
            EventFd::new(EFD_NONBLOCK).unwrap(),
            EventFd::new(EFD_NONBLOCK).unwrap(),
            event_idx,
        )
    }

    fn read_desc(q: &TestQueue, table: u64, i: u16) -> (u64, u32, u16, u16) {
        let at = GuestAddress(table + 16 * u64::from(i));
        let m = q.memory();
        (
            m.read_obj::<u64>(at).unwrap(),
            m.read_obj::<u32>(at.unchecked_add(8)).unwrap(),
            m.read_obj::<u16>(at.unchecked_add(12)).unwrap(),
            m.read_obj::<u16>(at.unchecked_add(14)).unwrap(),
        )
    }

    /// Plays the device: puts `(id, len)` in the used ring and bumps its idx.
    fn complete(q: &TestQueue, id: u32, len: u32) {
        let r = q.ring_layout();
        let m = q.memory();
        let idx: u16 = m
            .read_obj(GuestAddress(r.used_idx_addr().unwrap()))
            .unwrap();
        let elem = GuestAddress(r.used_elem_addr(idx & (q.size() - 1)).unwrap());
        m.write_obj(id, elem).unwrap();
        m.write_obj(len, elem.unchecked_add(4)).unwrap();
        m.write_obj(
            idx.wrapping_add(1),
            GuestAddress(r.used_idx_addr().unwrap()),
        )
        .unwrap();
    }

    use vm_memory::Address;

    #[test]
    fn direct_chain_is_laid_out_and_published() {
        let mut q = queue(8, false);
        let head = q
            .post(&[Desc::Out(b"abc".to_vec()), Desc::In(4)], false)
            .unwrap();
        let r = q.ring_layout();
        let (a0, l0, f0, n0) = read_desc(&q, r.desc, head);
        assert_eq!((l0, f0), (3, VIRTQ_DESC_F_NEXT));
        let mut out = [0u8; 3];
        q.memory().read_slice(&mut out, GuestAddress(a0)).unwrap();
        assert_eq!(&out, b"abc");
        let (_, l1, f1, _) = read_desc(&q, r.desc, n0);
        assert_eq!((l1, f1), (4, VIRTQ_DESC_F_WRITE));
        let m = q.memory();
        assert_eq!(
            m.read_obj::<u16>(GuestAddress(r.avail_idx_addr().unwrap()))
                .unwrap(),
            1
        );
        assert_eq!(
            m.read_obj::<u16>(GuestAddress(r.avail_slot_addr(0).unwrap()))
                .unwrap(),
            head
        );
        assert_eq!(q.free_descriptors(), 6);

        complete(&q, u32::from(head), 4);
        let c = q.try_used().unwrap();
        assert_eq!((c.head, c.used_len), (head, 4));
        assert_eq!(c.written, vec![vec![0u8; 4]]);
        assert_eq!(q.free_descriptors(), 8);
        assert_eq!(q.outstanding(), 0);
    }

    #[test]
    fn indirect_chain_uses_one_slot() {
        let mut q = queue(8, false);
        let head = q
            .post(&[Desc::Out(vec![1]), Desc::In(2), Desc::In(3)], true)
            .unwrap();
        assert_eq!(q.free_descriptors(), 7);
        let (table, len, flags, _) = read_desc(&q, q.ring_layout().desc, head);
        assert_eq!((len, flags), (48, VIRTQ_DESC_F_INDIRECT));
        assert_eq!(read_desc(&q, table, 0).2, VIRTQ_DESC_F_NEXT);
        assert_eq!(read_desc(&q, table, 0).3, 1);
        assert_eq!(
            read_desc(&q, table, 1).2,
            VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE
        );
        assert_eq!(read_desc(&q, table, 2).2, VIRTQ_DESC_F_WRITE);
        assert_eq!(read_desc(&q, table, 2).1, 3);
    }

    #[test]
    fn full_table_and_rollback() {
        let mut q = queue(4, false);
        let bytes = q.free_buffer_bytes();
        q.post(&[Desc::In(1), Desc::In(1), Desc::In(1)], false)
            .unwrap();
        assert!(matches!(
            q.post(&[Desc::In(1), Desc::In(1)], false),
            Err(Error::QueueFull)
        ));
        // The failed post gave its buffers back.
        assert_eq!(q.free_buffer_bytes(), bytes - 3 * 16);
        assert!(matches!(q.post(&[], false), Err(Error::EmptyChain)));
        assert!(matches!(
            q.post(&[Desc::In(u32::MAX)], false),
            Err(Error::OutOfBufferSpace(u32::MAX))
        ));
    }

    #[test]
    fn event_idx_rearms_used_event_and_unknown_head_is_an_error() {
        let mut q = queue(8, true);
        let used_event = GuestAddress(q.ring_layout().used_event_addr(8).unwrap());
        assert!(matches!(
            q.wait_used(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        let h = q.post(&[Desc::In(1)], false).unwrap();
        complete(&q, u32::from(h), 1);
        q.wait_used(Duration::from_millis(10)).unwrap();
        assert!(q.try_used().is_none());
        assert_eq!(q.memory().read_obj::<u16>(used_event).unwrap(), 1);
        complete(&q, 7, 0);
        assert!(matches!(
            q.wait_used(Duration::from_millis(10)),
            Err(Error::UnknownHead { id: 7, .. })
        ));
    }

    #[test]
    fn raw_next_is_translated_within_the_slice() {
        let mut q = queue(8, false);
        q.post(&[Desc::In(1)], false).unwrap(); // occupies slot 0
        let head = q
            .post_raw(&[
                RawDesc {
                    addr: 0,
                    len: 1,
                    flags: VIRTQ_DESC_F_NEXT,
                    next: 1,
                },
                RawDesc {
                    addr: 0,
                    len: 1,
                    flags: VIRTQ_DESC_F_NEXT,
                    next: 300,
                },
            ])
            .unwrap();
        let (_, _, _, n0) = read_desc(&q, q.ring_layout().desc, head);
        assert_eq!(n0, head + 1);
        assert_eq!(read_desc(&q, q.ring_layout().desc, n0).3, 300);
    }
}
