//! The vhost-user backend: features, config space, and the worker's three event sources
//! (requestq kicks, eventq kicks, the host's edge descriptor) on one thread; the chains
//! themselves are handled by [`crate::chains`].

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};

use log::{error, warn};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_device_common::queue::{self, UsedRing, WorkerExitEvents};
use vhost_device_common::report::ErrorChain;
use vhost_device_common::serve::DaemonBackend;
use vhost_device_common::{GuestMemory, TRANSPORT_FEATURES, Vring, memory};
use vhost_user_backend::{VhostUserBackend, VringEpollHandler};
use virtio_gpio_core::device::NoLinesError;
use virtio_gpio_core::msg::{CONFIG_SIZE, VIRTIO_GPIO_F_IRQ, bounded_read};
use virtio_gpio_core::{GpioDevice, GpioHost};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::chains::{EventSink, HeldBuffer, RequestSink, complete_event, trace_events};

/// requestq and eventq.
pub const NUM_QUEUES: usize = 2;
/// Largest queue accepted: 1024, virtio's maximum. Over PCI QEMU sets the size (256 in
/// QEMU 7.2, 64 in QEMU >= 9), but over virtio-mmio (arm64 `virt` guests:
/// `vhost-user-gpio-device`) it offers the guest 1024 whatever the device's size, and
/// Linux takes all of it (tests/arm64-guest.sh: with 256 the connection was refused).
pub const QUEUE_SIZE: usize = 1024;
const REQUEST_QUEUE: u16 = 0;
const EVENT_QUEUE: u16 = 1;
/// The host's edge descriptor; 2 is the library's exit/vring-enable event.
const HOST_EVENTS: u16 = 3;

/// Why a worker stopped (host faults only).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The vrings the library handed over are not the two of this device.
    #[error("expected {NUM_QUEUES} vrings, got {0}")]
    Vrings(usize),
    /// The host's edge events could not be read.
    #[error("cannot read host GPIO events")]
    Host(#[source] Box<dyn std::error::Error + Send + Sync>),
}

struct State<H> {
    device: GpioDevice<H, HeldBuffer>,
    trace: bool,
}

struct Shared<H> {
    state: Mutex<State<H>>,
    exit_events: WorkerExitEvents,
    config: [u8; CONFIG_SIZE],
    host_fd: RawFd,
}

/// A virtio-gpio vhost-user backend over a host chip.
pub struct GpioBackend<H> {
    shared: Arc<Shared<H>>,
}

impl<H> Clone for GpioBackend<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> std::fmt::Debug for GpioBackend<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpioBackend")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<H> State<H>
where
    H: GpioHost,
    H::Error: Send + Sync,
{
    fn requests(&mut self, requestq: &Vring, eventq: &Vring) {
        // Lock order: eventq, then requestq (inside `drain`); nothing takes them the other way.
        let mut released = UsedRing::lock(eventq);
        let mut sink = RequestSink {
            device: &mut self.device,
            eventq: &mut released,
            trace: self.trace,
        };
        queue::drain(requestq, &mut sink);
        if let Some(used) = released {
            used.finish();
        }
    }

    fn events(&mut self, eventq: &Vring) {
        let mut sink = EventSink {
            device: &mut self.device,
            trace: self.trace,
        };
        queue::drain(eventq, &mut sink);
    }

    fn host_edges(&mut self, eventq: &Vring) -> Result<(), WorkerError> {
        let mut fired = UsedRing::lock(eventq);
        let trace = self.trace;
        // Only grows with --trace (an empty Vec does not allocate).
        let mut traced = Vec::new();
        self.device
            .poll_host(&mut |b, s| complete_event(&mut fired, b, s, trace.then_some(&mut traced)))
            .map_err(|e| WorkerError::Host(Box::new(e)))?;
        trace_events(&self.device, &mut traced);
        if let Some(used) = fired {
            used.finish();
        }
        Ok(())
    }
}

impl<H> GpioBackend<H>
where
    H: GpioHost + AsRawFd,
{
    /// A backend for one frontend connection; `trace` logs every message (`--trace`).
    pub fn new(host: H, trace: bool) -> Result<Self, NoLinesError> {
        let host_fd = host.as_raw_fd();
        let device = GpioDevice::new(host)?;
        let config = device.config().to_bytes();
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State { device, trace }),
                exit_events: WorkerExitEvents::default(),
                config,
                host_fd,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<H>> {
        // A panic elsewhere cannot leave the device half-updated in a way that matters more
        // than stopping service would.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<H> VhostUserBackend for GpioBackend<H>
where
    H: GpioHost + AsRawFd + Send + 'static,
    H::Error: Send + Sync,
{
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        TRANSPORT_FEATURES | (1 << VIRTIO_GPIO_F_IRQ)
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIG
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The vrings know it (the library sets it on each queue); the drain loop reads it there.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        // A short answer makes the library reply with an error; it never panics.
        bounded_read(&self.shared.config, offset, size).to_vec()
    }

    fn reset_device(&self) {
        // The frontend resets the device: nothing of the driver's state survives it.
        if let Err(e) = self.state().device.reset() {
            warn!("device reset: {}", ErrorChain(&e));
        }
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
        }
        let mut state = self.state();
        let result = match (vrings, device_event) {
            ([requestq, eventq], REQUEST_QUEUE) => {
                state.requests(requestq, eventq);
                Ok(())
            }
            ([_, eventq], EVENT_QUEUE) => {
                state.events(eventq);
                Ok(())
            }
            ([_, eventq], HOST_EVENTS) => state.host_edges(eventq),
            ([_, _], other) => {
                warn!("unknown device event {other}");
                Ok(())
            }
            (v, _) => Err(WorkerError::Vrings(v.len())),
        };
        result.map_err(|e| {
            error!("GPIO worker stops: {}", ErrorChain(&e));
            io::Error::other(e)
        })
    }
}

impl<H> DaemonBackend for GpioBackend<H>
where
    H: GpioHost + AsRawFd + Send + 'static,
    H::Error: Send + Sync,
{
    fn register_listeners(&self, handlers: &[Arc<VringEpollHandler<Self>>]) -> io::Result<()> {
        let handler = handlers
            .first()
            .ok_or_else(|| io::Error::other("no vring worker"))?;
        handler.register_listener(self.shared.host_fd, EventSet::IN, u64::from(HOST_EVENTS))
    }

    fn exit_events(&self) -> &WorkerExitEvents {
        &self.shared.exit_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SimChip;

    fn backend() -> GpioBackend<SimChip> {
        GpioBackend::new(SimChip::new(8).unwrap(), false).unwrap()
    }

    #[test]
    fn config_reads_are_bounded() {
        let b = backend();
        let full = b.get_config(0, 8);
        assert_eq!(full, vec![8, 0, 0, 0, 48, 0, 0, 0]);
        assert_eq!(b.get_config(4, 4), vec![48, 0, 0, 0]);
        assert_eq!(b.get_config(6, 8), vec![0, 0]);
        assert!(b.get_config(8, 1).is_empty());
        assert!(b.get_config(u32::MAX, u32::MAX).is_empty());
        assert_eq!(b.get_config(0, u32::MAX), full);
    }

    #[test]
    fn features() {
        let b = backend();
        let f = b.features();
        for bit in [0, 28, 29, 30, 32] {
            assert_ne!(f & (1 << bit), 0, "bit {bit}");
        }
        assert_eq!(b.num_queues(), 2);
        let p = b.protocol_features();
        assert!(p.contains(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK));
        assert!(p.contains(VhostUserProtocolFeatures::CONFIG));
    }
}
