//! vhost-user virtio-gpio device daemon.
//!
//! Layers, each knowing nothing of the one above it:
//! - [`host`]: host chips behind [`virtio_gpio_core::GpioHost`] (character device, simulator);
//! - `virtio-gpio-core`: message formats, line and interrupt state machines;
//! - [`protocol`]: messages in descriptor chains (no vhost types);
//! - [`vhu_gpio`]: the vhost-user backend (features, config space, queues, host events);
//! - [`args`]: the command line and its validation.
//!
//! Listening, the serve/reconnect loop, signals and the EVENT_IDX loop come from
//! `vhost-device-common`.

pub mod args;
pub mod host;
pub mod protocol;
pub mod vhu_gpio;

use virtio_gpio_core::device::NoLinesError;

use host::{Host, HostError, HostSource};
use vhu_gpio::GpioBackend;

/// Why a connection's backend could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The host chip could not be set up.
    #[error("cannot set up the host chip")]
    Host(#[from] HostError),
    /// The chip has no lines.
    #[error(transparent)]
    NoLines(#[from] NoLinesError),
    /// No device was configured for this socket.
    #[error("no GPIO device for socket {0}")]
    NoDevice(usize),
}

/// A fresh backend for one connection on socket `index`: every line released, no
/// interrupt state.
pub fn backend(sources: &[HostSource], index: usize) -> Result<GpioBackend<Host>, BackendError> {
    let source = sources.get(index).ok_or(BackendError::NoDevice(index))?;
    Ok(GpioBackend::new(source.instantiate()?)?)
}
