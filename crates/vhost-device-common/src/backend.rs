//! The vhost-user backend of every daemon: [`Backend`] implements vhost-user-backend's
//! `VhostUserBackend` around a daemon's [`VirtioDevice`], so that a daemon supplies only its
//! device's behaviour and cannot forget a protection:
//!
//! - every memory table is checked before the frontend gets its reply
//!   ([`crate::memory::check_update`]: regions inside their files, unsealed memory said);
//! - every vring worker's exit event is a [`WorkerExitEvents`] one, created ahead and closed
//!   with the connection (vhost-user-backend 0.24.0 leaks it otherwise);
//! - the transport features ([`TRANSPORT_FEATURES`]: EVENT_IDX among them) are always
//!   offered; the drain loop ([`crate::queue::drain`]) reads EVENT_IDX from each vring, so the
//!   backend's `set_event_idx` hook has nothing to do;
//! - the numbering of device events: vhost-user-backend numbers queue kicks `0..num_queues`
//!   and uses `num_queues` for its own exit event; a device's own event sources
//!   ([`VirtioDevice::event_sources`]) get the numbers above, handed out here
//!   ([`Backend::source_event_id`]) and translated back before the device sees them.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use log::warn;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::{VhostUserBackend, VringEpollHandler};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::queue::WorkerExitEvents;
use crate::{GuestMemory, TRANSPORT_FEATURES, Vring, memory};

/// The virtio device one frontend connection sees: what a daemon supplies.
///
/// Everything else a vhost-user backend must do is [`Backend`]'s. A handler returns `Err`
/// only for a host fault: it ends the connection's vring worker (guest errors become a
/// status or a stopped ring, never an `Err`).
pub trait VirtioDevice: Send + Sync + 'static {
    /// Number of virtqueues; their kicks are [`VirtioDevice::queue_kick`]`(0..QUEUES)`.
    const QUEUES: usize;
    /// Largest queue size accepted.
    const MAX_QUEUE_SIZE: usize;

    /// The device's own feature bits; [`TRANSPORT_FEATURES`] are added to them.
    fn device_features(&self) -> u64;

    /// vhost-user protocol features beyond MQ and REPLY_ACK, which every device offers
    /// (e.g. CONFIG for a device with a config space).
    fn extra_protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::empty()
    }

    /// `size` bytes of the config space from `offset`, clipped to it (a short answer makes
    /// the library reply with an error).
    fn get_config(&self, _offset: u32, _size: u32) -> Vec<u8> {
        Vec::new()
    }

    /// The frontend resets the device: nothing of the driver's state may survive.
    fn reset(&self) {}

    /// The driver kicked queue `queue`; `vrings` are all the device's queues, in order.
    fn queue_kick(&self, queue: usize, vrings: &[Vring]) -> io::Result<()>;

    /// The device's own event sources (descriptors it owns for as long as it lives), each
    /// registered with the vring worker when a connection is set up; when source `i`
    /// is readable, [`VirtioDevice::source_event`]`(i)` is called on the worker.
    fn event_sources(&self) -> Vec<RawFd> {
        Vec::new()
    }

    /// Event source `source` (an index into [`VirtioDevice::event_sources`]) is readable.
    fn source_event(&self, _source: usize, _vrings: &[Vring]) -> io::Result<()> {
        Ok(())
    }
}

/// One connection's vhost-user backend around a [`VirtioDevice`]; see the module
/// documentation. Clones share the device (each vring worker holds one).
pub struct Backend<D> {
    shared: Arc<Shared<D>>,
}

struct Shared<D> {
    device: D,
    exit_events: WorkerExitEvents,
}

impl<D> Clone for Backend<D> {
    fn clone(&self) -> Self {
        Backend {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<D> std::fmt::Debug for Backend<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

/// What a device event number of vhost-user-backend stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceEvent {
    /// A kick of this queue.
    Queue(usize),
    /// The device's event source with this index.
    Source(usize),
    /// The library's exit event (the library handles it itself) or a number never handed out.
    Other,
}

impl<D: VirtioDevice> Backend<D> {
    /// A backend for one connection, serving `device`.
    pub fn new(device: D) -> Self {
        Backend {
            shared: Arc::new(Shared {
                device,
                exit_events: WorkerExitEvents::default(),
            }),
        }
    }

    /// The device served.
    pub fn device(&self) -> &D {
        &self.shared.device
    }

    /// The device event number of event source `source`: the numbers above the queues and
    /// the library's exit event (`QUEUES`), which vhost-user-backend 0.24.0 reserves
    /// (`register_listener` refuses `0..=num_queues`).
    /// A `const fn`, so that tests and fuzz targets can name the numbers in constants.
    #[allow(clippy::cast_possible_truncation)] // `id` is checked to fit first.
    pub const fn source_event_id(source: usize) -> Option<u16> {
        let Some(first) = D::QUEUES.checked_add(1) else {
            return None;
        };
        match first.checked_add(source) {
            Some(id) if id <= u16::MAX as usize => Some(id as u16),
            _ => None,
        }
    }

    fn classify(device_event: u16) -> DeviceEvent {
        let n = usize::from(device_event);
        match n.checked_sub(D::QUEUES) {
            None => DeviceEvent::Queue(n),
            Some(0) => DeviceEvent::Other,
            Some(above) => above
                .checked_sub(1)
                .map_or(DeviceEvent::Other, DeviceEvent::Source),
        }
    }

    /// The exit events of this connection's vring workers, shared by every clone. The serve
    /// loop prepares them before the connection is set up and ends the workers after it.
    pub fn exit_events(&self) -> &WorkerExitEvents {
        &self.shared.exit_events
    }

    /// Registers the device's event sources with the first vring worker (all queues are on
    /// it: the library's default `queues_per_thread`). Called once per connection, after the
    /// workers exist and before the frontend is accepted.
    pub fn register_event_sources(
        &self,
        handlers: &[Arc<VringEpollHandler<Self>>],
    ) -> io::Result<()> {
        let sources = self.shared.device.event_sources();
        if sources.is_empty() {
            return Ok(());
        }
        let handler = handlers
            .first()
            .ok_or_else(|| io::Error::other("no vring worker"))?;
        for (index, fd) in sources.into_iter().enumerate() {
            let id = Self::source_event_id(index)
                .ok_or_else(|| io::Error::other("too many device event sources"))?;
            handler.register_listener(fd, EventSet::IN, u64::from(id))?;
        }
        Ok(())
    }
}

impl<D: VirtioDevice> VhostUserBackend for Backend<D> {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        D::QUEUES
    }

    fn max_queue_size(&self) -> usize {
        D::MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        TRANSPORT_FEATURES | self.shared.device.device_features()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | self.shared.device.extra_protocol_features()
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The vrings know it (the library sets it on each queue); the drain loop reads it there.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        self.shared.device.get_config(offset, size)
    }

    fn reset_device(&self) {
        self.shared.device.reset();
    }

    fn update_memory(&self, mem: GuestMemory) -> io::Result<()> {
        // The vrings read guest memory through the same atomic the library updates in place;
        // this only refuses a table that would crash the process (the rings check it again
        // before they touch it).
        memory::check_update(&mem)
    }

    fn exit_event(&self, thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        self.shared.exit_events.create(thread_index)
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        if !evset.contains(EventSet::IN) {
            warn!("event {device_event}: unexpected event set {evset:?}");
            return Ok(());
        }
        match Self::classify(device_event) {
            DeviceEvent::Queue(queue) => self.shared.device.queue_kick(queue, vrings),
            DeviceEvent::Source(source) => self.shared.device.source_event(source, vrings),
            DeviceEvent::Other => {
                warn!("unknown device event {device_event}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl VirtioDevice for Two {
        const QUEUES: usize = 2;
        const MAX_QUEUE_SIZE: usize = 8;
        fn device_features(&self) -> u64 {
            0
        }
        fn queue_kick(&self, _: usize, _: &[Vring]) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn device_event_numbers_round_trip_above_the_exit_event() {
        assert_eq!(Backend::<Two>::classify(0), DeviceEvent::Queue(0));
        assert_eq!(Backend::<Two>::classify(1), DeviceEvent::Queue(1));
        assert_eq!(
            Backend::<Two>::classify(2),
            DeviceEvent::Other,
            "the exit event"
        );
        assert_eq!(Backend::<Two>::source_event_id(0), Some(3));
        for source in [0, 1, 7] {
            let id = Backend::<Two>::source_event_id(source).unwrap_or(0);
            assert_eq!(Backend::<Two>::classify(id), DeviceEvent::Source(source));
        }
        assert_eq!(Backend::<Two>::source_event_id(usize::MAX), None);
    }
}
