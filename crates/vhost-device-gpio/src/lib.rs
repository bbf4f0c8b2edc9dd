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

use vhost_device_common::sandbox::{DeviceSyscalls, Ioctl};
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

/// The GPIO uAPI v2 ioctls the daemon issues while serving (host/cdev.rs): GET_LINE on the
/// chip opened at startup (a line request), the others on line request fds.
pub const SYSCALLS: DeviceSyscalls = DeviceSyscalls {
    ioctls: &[
        Ioctl {
            name: "GPIO_V2_GET_LINE_IOCTL",
            request: 0xc250_b407,
        },
        Ioctl {
            name: "GPIO_V2_LINE_SET_CONFIG_IOCTL",
            request: 0xc110_b40d,
        },
        Ioctl {
            name: "GPIO_V2_LINE_GET_VALUES_IOCTL",
            request: 0xc010_b40e,
        },
        Ioctl {
            name: "GPIO_V2_LINE_SET_VALUES_IOCTL",
            request: 0xc010_b40f,
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use gpiocdev_uapi::v2;

    /// `_IOWR(0xB4, nr, size)` as linux/gpio.h defines the v2 ioctls.
    fn iowr(nr: u32, size: usize) -> u32 {
        (3 << 30) | (u32::try_from(size).unwrap() << 16) | (0xb4 << 8) | nr
    }

    #[test]
    fn allowed_ioctls_match_the_uapi_structures() {
        let want = [
            iowr(0x07, size_of::<v2::LineRequest>()),
            iowr(0x0d, size_of::<v2::LineConfig>()),
            iowr(0x0e, size_of::<v2::LineValues>()),
            iowr(0x0f, size_of::<v2::LineValues>()),
        ];
        let got: Vec<u32> = SYSCALLS.ioctls.iter().map(|i| i.request).collect();
        assert_eq!(got, want);
    }
}
