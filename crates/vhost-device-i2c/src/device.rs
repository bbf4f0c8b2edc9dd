//! The vhost-user backend: turns requestq descriptor chains into calls of the device logic.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use log::{debug, warn};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_device_common::chain::{ChainLayout, Segments, layout};
use vhost_device_common::queue::{ChainSink, UsedRing, WorkerExitEvents, drain};
use vhost_device_common::serve::DaemonBackend;
use vhost_device_common::{GuestMemory, TRANSPORT_FEATURES, Vring, memory};
use vhost_user_backend::VhostUserBackend;
use virtio_i2c_core::group::{Entry, Pushed};
use virtio_i2c_core::request::{OUT_HDR_LEN, fail_next_of, parse_header};
use virtio_i2c_core::{
    Group, VIRTIO_I2C_F_ZERO_LENGTH_REQUEST, VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK,
};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::bus::Bus;

/// Largest queue the backend accepts (QEMU uses 4 for vhost-user-i2c).
pub const QUEUE_SIZE: usize = 1024;
const NUM_QUEUES: usize = 1;

/// A request waiting for its group to finish.
#[derive(Debug)]
struct Pending {
    head: u16,
    /// Device-writable buffers: read data, then the status byte at the end.
    writable: Segments,
}

/// One connection's virtio-i2c device.
#[derive(Clone, Debug)]
pub struct I2cBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bus: Arc<Bus>,
    exit_events: WorkerExitEvents,
    /// Only the one vring worker thread takes this lock; it never waits.
    group: Mutex<Group<Pending>>,
}

impl I2cBackend {
    /// A fresh device on `bus` (shared by every socket).
    pub fn new(bus: Arc<Bus>) -> Self {
        I2cBackend {
            inner: Arc::new(Inner {
                bus,
                exit_events: WorkerExitEvents::default(),
                group: Mutex::new(Group::new()),
            }),
        }
    }
}

/// Decodes one chain into a group entry. Reads the header once (no double fetch).
fn decode(bus: &Bus, mem: &GuestMemoryMmap, l: &ChainLayout) -> (Entry, bool) {
    if l.readable.len() < OUT_HDR_LEN {
        return (Entry::Invalid, true);
    }
    let mut hdr = [0u8; OUT_HDR_LEN];
    if l.readable.read_at(mem, 0, &mut hdr).is_err() {
        return (Entry::Invalid, true);
    }
    let header = match parse_header(&hdr) {
        Ok(h) => h,
        Err(_) => return (Entry::Invalid, !fail_next_of(&hdr)),
    };
    let last = !header.fail_next;
    if l.writable.is_empty() {
        // No status byte: the request cannot be answered, so it must not be executed.
        return (Entry::Invalid, last);
    }
    let payload = l.readable.len().saturating_sub(OUT_HDR_LEN);
    let response = l.writable.len().saturating_sub(1);
    let len = match (header.read, payload, response) {
        // Read: all data flows to the guest; write: all from it. Anything else is a buffer
        // of the wrong direction.
        (true, 0, n) => n,
        (false, n, 0) => n,
        _ => return (Entry::Invalid, last),
    };
    if !bus.has(header.addr) {
        return (Entry::Invalid, last);
    }
    (Entry::Valid { header, len }, last)
}

fn complete(mem: &GuestMemoryMmap, used: &mut UsedRing<'_>, p: Pending, ok: bool, data: &[u8]) {
    let Some(status_at) = p.writable.len().checked_sub(1) else {
        // No byte to write a status into: return the chain untouched.
        used.add(p.head, 0);
        return;
    };
    let ok = ok && (data.is_empty() || p.writable.write_at(mem, 0, data).is_ok());
    let status = if ok {
        VIRTIO_I2C_MSG_OK
    } else {
        VIRTIO_I2C_MSG_ERR
    };
    if p.writable.write_at(mem, status_at, &[status]).is_err() {
        used.add(p.head, 0);
        return;
    }
    let written = if ok { data.len() } else { 0 };
    let len = u32::try_from(written.saturating_add(1)).unwrap_or(1);
    used.add(p.head, len);
}

struct RequestSink<'a> {
    bus: &'a Bus,
    group: &'a mut Group<Pending>,
}

impl RequestSink<'_> {
    fn finish(&mut self, mem: &GuestMemoryMmap, used: &mut UsedRing<'_>) {
        let bus = self.bus;
        let err = self.group.finish(
            |msgs| bus.run(msgs),
            |p, ok, data| complete(mem, used, p, ok, data),
        );
        if let Some(e) = err {
            // Guests probe absent addresses routinely: not worth more than a debug line.
            debug!("transfer failed: {e}");
        }
    }
}

impl ChainSink for RequestSink<'_> {
    fn chain(
        &mut self,
        chain: virtio_queue::DescriptorChain<&GuestMemoryMmap>,
        used: &mut UsedRing<'_>,
    ) {
        let mem = chain.memory();
        let l = match layout(chain.clone()) {
            Ok(l) => l,
            Err((head, e)) => {
                debug!("unusable chain {head}: {e}");
                // Its group (if any) cannot be trusted either; the chain ends it.
                self.group.mark_failed();
                self.finish(mem, used);
                used.add(head, 0);
                return;
            }
        };
        let (entry, last) = decode(self.bus, mem, &l);
        let pending = Pending {
            head: l.head,
            writable: l.writable,
        };
        match self.group.push(entry, last, pending) {
            Pushed::Write(buf) => {
                if l.readable.read_at(mem, OUT_HDR_LEN, buf).is_err() {
                    self.group.mark_failed();
                }
            }
            Pushed::Held => {}
            Pushed::FailNow(p) => complete(mem, used, p, false, &[]),
        }
        if last {
            self.finish(mem, used);
        }
    }

    fn batch_end(&mut self, mem: &GuestMemoryMmap, used: &mut UsedRing<'_>) {
        // A group cut off by the end of the available ring still runs: waiting for the rest
        // would stall a guest that (wrongly) set FAIL_NEXT on its last request.
        if !self.group.is_empty() {
            self.finish(mem, used);
        }
    }
}

impl VhostUserBackend for I2cBackend {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        TRANSPORT_FEATURES | VIRTIO_I2C_F_ZERO_LENGTH_REQUEST
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The vrings know it (the library sets it on each queue); the drain loop reads it there.
    }

    fn update_memory(&self, mem: GuestMemory) -> io::Result<()> {
        // The vrings read guest memory through the same atomic the library updates in place;
        // this only refuses a table that would crash the process (the rings check it again
        // before they touch it).
        memory::check_update(&mem)
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        self.inner.exit_events.create()
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            warn!("unexpected event set {evset:?} for event {device_event}");
            return Ok(());
        }
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            warn!("event for unknown queue {device_event}");
            return Ok(());
        };
        let mut group = self
            .inner
            .group
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sink = RequestSink {
            bus: &self.inner.bus,
            group: &mut group,
        };
        drain(vring, &mut sink);
        Ok(())
    }
}

impl DaemonBackend for I2cBackend {
    fn exit_events(&self) -> &WorkerExitEvents {
        &self.inner.exit_events
    }
}
