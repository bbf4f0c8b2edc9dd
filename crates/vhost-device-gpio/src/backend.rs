//! The device's part of the vhost-user backend: features, config space, and the worker's
//! three event sources (requestq kicks, eventq kicks, the host's edge descriptor) on one
//! thread; the chains themselves are handled by [`crate::chains`], the rest of the backend
//! by `vhost_device_common::backend`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, PoisonError};

use log::{error, warn};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_device_common::Vring;
use vhost_device_common::backend::{Backend, VirtioDevice};
use vhost_device_common::queue::{self, UsedRing};
use vhost_device_common::report::ErrorChain;
use virtio_gpio_core::device::NoLinesError;
use virtio_gpio_core::msg::{CONFIG_SIZE, VIRTIO_GPIO_F_IRQ, bounded_read};
use virtio_gpio_core::{GpioDevice, GpioHost};

use crate::chains::{EventSink, HeldBuffer, RequestSink, complete_event, trace_events};

/// requestq and eventq.
pub const NUM_QUEUES: usize = 2;
/// Largest queue accepted: 1024, virtio's maximum. Over PCI QEMU sets the size (256 in
/// QEMU 7.2, 64 in QEMU >= 9), but over virtio-mmio (arm64 `virt` guests:
/// `vhost-user-gpio-device`) it offers the guest 1024 whatever the device's size, and
/// Linux takes all of it (tests/arm64-guest.sh: with 256 the connection was refused).
pub const QUEUE_SIZE: usize = 1024;
const REQUEST_QUEUE: usize = 0;
const EVENT_QUEUE: usize = 1;
/// The device's one event source: the host's edge descriptor (its device event number is
/// `GpioBackend::source_event_id(HOST_EDGES)`, handed out by the shared backend).
pub const HOST_EDGES: usize = 0;

/// One connection's vhost-user backend: [`VirtioGpio`] behind the shared [`Backend`], which
/// owns the memory check, the exit events, the transport features and the event numbering.
pub type GpioBackend<H> = Backend<VirtioGpio<H>>;

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

/// One connection's virtio-gpio device over a host chip: requestq, eventq and the host's
/// edge events, all on the one vring worker.
pub struct VirtioGpio<H> {
    state: Mutex<State<H>>,
    config: [u8; CONFIG_SIZE],
    host_fd: RawFd,
}

impl<H> std::fmt::Debug for VirtioGpio<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioGpio")
            .field("config", &self.config)
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

impl<H> VirtioGpio<H>
where
    H: GpioHost + AsRawFd,
{
    /// The device for one frontend connection; `trace` logs every message (`--trace`).
    pub fn new(host: H, trace: bool) -> Result<Self, NoLinesError> {
        let host_fd = host.as_raw_fd();
        let device = GpioDevice::new(host)?;
        let config = device.config().to_bytes();
        Ok(Self {
            state: Mutex::new(State { device, trace }),
            config,
            host_fd,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<H>> {
        // A panic elsewhere cannot leave the device half-updated in a way that matters more
        // than stopping service would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A host fault ends the worker, loudly.
fn worker_result(result: Result<(), WorkerError>) -> io::Result<()> {
    result.map_err(|e| {
        error!("GPIO worker stops: {}", ErrorChain(&e));
        io::Error::other(e)
    })
}

impl<H> VirtioDevice for VirtioGpio<H>
where
    H: GpioHost + AsRawFd + Send + 'static,
    H::Error: Send + Sync,
{
    const QUEUES: usize = NUM_QUEUES;
    const MAX_QUEUE_SIZE: usize = QUEUE_SIZE;

    fn device_features(&self) -> u64 {
        1 << VIRTIO_GPIO_F_IRQ
    }

    fn extra_protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        // A short answer makes the library reply with an error; it never panics.
        bounded_read(&self.config, offset, size).to_vec()
    }

    fn reset(&self) {
        if let Err(e) = self.state().device.reset() {
            warn!("device reset: {}", ErrorChain(&e));
        }
    }

    fn queue_kick(&self, queue: usize, vrings: &[Vring]) -> io::Result<()> {
        let mut state = self.state();
        worker_result(match (vrings, queue) {
            ([requestq, eventq], REQUEST_QUEUE) => {
                state.requests(requestq, eventq);
                Ok(())
            }
            ([_, eventq], EVENT_QUEUE) => {
                state.events(eventq);
                Ok(())
            }
            ([_, _], other) => {
                warn!("kick of unknown queue {other}");
                Ok(())
            }
            (v, _) => Err(WorkerError::Vrings(v.len())),
        })
    }

    fn event_sources(&self) -> Vec<RawFd> {
        vec![self.host_fd]
    }

    fn source_event(&self, source: usize, vrings: &[Vring]) -> io::Result<()> {
        let mut state = self.state();
        worker_result(match (vrings, source) {
            ([_, eventq], HOST_EDGES) => state.host_edges(eventq),
            ([_, _], other) => {
                warn!("unknown device event source {other}");
                Ok(())
            }
            (v, _) => Err(WorkerError::Vrings(v.len())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SimChip;

    use vhost_user_backend::VhostUserBackend;

    fn backend() -> GpioBackend<SimChip> {
        GpioBackend::new(VirtioGpio::new(SimChip::new(8).unwrap(), false).unwrap())
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
