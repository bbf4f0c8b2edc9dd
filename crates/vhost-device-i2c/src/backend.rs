//! The device's part of the vhost-user backend: its feature bit, its queue, and the requestq
//! worker (which hands every chain to [`crate::chains`]); the rest is
//! `vhost_device_common::backend`.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use log::warn;
use vhost_device_common::Vring;
use vhost_device_common::backend::{Backend, VirtioDevice};
use vhost_device_common::queue::drain;
use virtio_i2c_core::{Group, VIRTIO_I2C_F_ZERO_LENGTH_REQUEST};

use crate::chains::{Pending, RequestSink};
use crate::host::Router;

/// Largest queue the backend accepts (QEMU uses 4 for vhost-user-i2c).
pub const QUEUE_SIZE: usize = 1024;

/// One connection's vhost-user backend: [`VirtioI2c`] behind the shared [`Backend`], which
/// owns the memory check, the exit events and the transport features.
pub type I2cBackend = Backend<VirtioI2c>;

/// One connection's virtio-i2c device: the requestq, drained into [`crate::chains`].
#[derive(Debug)]
pub struct VirtioI2c {
    router: Arc<Router>,
    trace: bool,
    /// Only the one vring worker thread takes this lock; it never waits.
    group: Mutex<Group<Pending>>,
}

impl VirtioI2c {
    /// A fresh device on `router` (shared by every socket).
    pub fn new(router: Arc<Router>, trace: bool) -> Self {
        VirtioI2c {
            router,
            trace,
            group: Mutex::new(Group::new()),
        }
    }
}

impl VirtioDevice for VirtioI2c {
    const QUEUES: usize = 1;
    const MAX_QUEUE_SIZE: usize = QUEUE_SIZE;

    fn device_features(&self) -> u64 {
        VIRTIO_I2C_F_ZERO_LENGTH_REQUEST
    }

    fn queue_kick(&self, queue: usize, vrings: &[Vring]) -> io::Result<()> {
        let Some(vring) = vrings.get(queue) else {
            warn!("event for unknown queue {queue}");
            return Ok(());
        };
        let mut group = self.group.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sink = RequestSink {
            router: &self.router,
            trace: self.trace,
            group: &mut group,
        };
        drain(vring, &mut sink);
        Ok(())
    }
}
