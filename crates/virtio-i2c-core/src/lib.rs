//! virtio-i2c device logic, independent of any transport or operating system.
//!
//! This crate knows the virtio-i2c request format, the FAIL_NEXT grouping rule, and how a
//! group of messages maps onto one host transaction: a combined I2C transfer (repeated start)
//! on a full I2C adapter, or the SMBus transaction with the same bytes on the wire on an
//! SMBus-only adapter. It knows nothing of vhost-user, virtqueues or Linux: the host side is
//! the [`I2cAdapter`] trait, so the same logic can run in a vhost-user daemon, an in-VMM
//! device or a bare-metal backend.
//!
//! `#![no_std]` with `alloc` (used once, to preallocate group buffers). [`sim`] holds the
//! simulated devices (24c02 EEPROM, DS1338 RTC) that both the daemon and the bare-metal
//! firmware serve.

#![no_std]

extern crate alloc;

pub mod adapter;
pub mod chain;
pub mod dispatch;
pub mod group;
pub mod message;
pub mod request;
pub mod sim;
pub mod smbus;

pub use adapter::I2cAdapter;
pub use dispatch::{ExecError, execute};
pub use group::{Group, MessageSlot};
pub use message::{Functionality, Message};
pub use request::{Address, HeaderError, RequestHeader};
pub use smbus::{SmbusError, SmbusOp};

/// Feature bit: zero-length requests (mandatory for Linux guests).
pub const VIRTIO_I2C_F_ZERO_LENGTH_REQUEST: u64 = 1 << 0;
/// virtio device id of an I2C adapter.
pub const VIRTIO_ID_I2C_ADAPTER: u32 = 34;
/// Request status: success.
pub const VIRTIO_I2C_MSG_OK: u8 = 0;
/// Request status: failure.
pub const VIRTIO_I2C_MSG_ERR: u8 = 1;
/// Largest message the device accepts (the kernel's i2c-dev limit).
pub const MAX_MESSAGE_LEN: usize = 8192;
/// Most messages in one group (the kernel's `I2C_RDWR_IOCTL_MAX_MSGS`).
pub const MAX_GROUP_MESSAGES: usize = 42;
