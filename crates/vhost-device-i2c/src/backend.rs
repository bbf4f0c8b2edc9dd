//! The vhost-user backend: features, queues, memory, and the requestq worker (which hands
//! every chain to [`crate::chains`]).

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use log::warn;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_device_common::queue::{WorkerExitEvents, drain};
use vhost_device_common::serve::DaemonBackend;
use vhost_device_common::{GuestMemory, TRANSPORT_FEATURES, Vring, memory};
use vhost_user_backend::VhostUserBackend;
use virtio_i2c_core::{Group, VIRTIO_I2C_F_ZERO_LENGTH_REQUEST};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::chains::{Pending, RequestSink};
use crate::host::Router;

/// Largest queue the backend accepts (QEMU uses 4 for vhost-user-i2c).
pub const QUEUE_SIZE: usize = 1024;
const NUM_QUEUES: usize = 1;

/// One connection's virtio-i2c device.
#[derive(Clone, Debug)]
pub struct I2cBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    router: Arc<Router>,
    trace: bool,
    exit_events: WorkerExitEvents,
    /// Only the one vring worker thread takes this lock; it never waits.
    group: Mutex<Group<Pending>>,
}

impl I2cBackend {
    /// A fresh device on `router` (shared by every socket).
    pub fn new(router: Arc<Router>, trace: bool) -> Self {
        I2cBackend {
            inner: Arc::new(Inner {
                router,
                trace,
                exit_events: WorkerExitEvents::default(),
                group: Mutex::new(Group::new()),
            }),
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

    fn exit_event(&self, thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        self.inner.exit_events.create(thread_index)
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
            router: &self.inner.router,
            trace: self.inner.trace,
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
