//! virtio-gpio device logic, independent of any transport and of the operating system.
//!
//! - [`msg`]: the wire formats (config space, requestq and eventq messages), parsed by pure
//!   functions over byte slices.
//! - [`names`]: the `GET_LINE_NAMES` blob, built once from the host's line names.
//! - [`host`]: the [`GpioHost`] trait a host backend (character device, simulator, mock)
//!   implements.
//! - [`device`]: [`GpioDevice`], the per-line state machine (direction, pending output value)
//!   and the interrupt state machine (type, held eventq buffer, latched edges).
//!
//! - [`sim`]: the simulated chip with wired pairs, served by the daemon and the bare-metal
//!   firmware alike.
//!
//! Nothing here knows about vhost-user or virtqueues: a held eventq buffer is an opaque
//! token chosen by the caller.
#![no_std]
extern crate alloc;

pub mod device;
pub mod host;
pub mod msg;
pub mod names;
pub mod sim;

pub use device::{DeviceError, GpioDevice, Response};
pub use host::{Edge, EdgeDetection, GpioHost, LineConfig};
pub use msg::{Command, Config, Direction, EventStatus, IrqType, Status};
pub use names::LineNames;
