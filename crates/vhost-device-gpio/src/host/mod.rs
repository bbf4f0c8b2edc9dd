//! Host backends: a GPIO character device (`/dev/gpiochipN`) and a simulated chip.
//!
//! Both implement [`GpioHost`] and expose one pollable file descriptor ([`AsRawFd`]) that
//! becomes readable when edges are pending; the vhost-user worker waits on it together with
//! the queues, so interrupts need no thread of their own.

pub mod error;
pub mod linux;
pub mod sim;

use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use virtio_gpio_core::{Edge, GpioHost, LineConfig};

pub use error::HostError;
pub use linux::{ChipInfo, LinuxChip, OpenError};
pub use sim::SimChip;

/// One entry of `--device-list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `/dev/gpiochipN`.
    Chip(u32),
    /// A simulated chip with this many lines.
    Simulated(NonZeroU16),
}

/// Where a socket's device comes from; opened once at startup, instantiated per connection.
#[derive(Debug, Clone)]
pub enum HostSource {
    /// A simulated chip with this many lines.
    Simulated(u16),
    /// A character device whose lines and names were read at startup.
    Chip(Arc<ChipInfo>),
}

impl HostSource {
    /// Opens what the spec names: a missing chip fails here, before any socket is bound.
    pub fn open(spec: DeviceSpec) -> Result<Self, OpenError> {
        match spec {
            DeviceSpec::Simulated(n) => Ok(Self::Simulated(n.get())),
            DeviceSpec::Chip(n) => ChipInfo::open(n).map(|info| Self::Chip(Arc::new(info))),
        }
    }

    /// A fresh host for one frontend connection, with every line released.
    pub fn instantiate(&self) -> Result<Host, HostError> {
        match self {
            Self::Simulated(n) => SimChip::new(*n).map(Host::Sim),
            Self::Chip(info) => LinuxChip::new(Arc::clone(info)).map(Host::Chip),
        }
    }

    /// One line describing the device, for the startup log.
    pub fn describe(&self) -> String {
        match self {
            Self::Simulated(n) => format!("simulated chip with {n} lines"),
            Self::Chip(info) => format!(
                "{} ({} lines, label {:?})",
                info.path().display(),
                info.num_lines(),
                info.label()
            ),
        }
    }
}

/// Either host backend.
#[derive(Debug)]
pub enum Host {
    /// Simulated chip.
    Sim(SimChip),
    /// Character device.
    Chip(LinuxChip),
}

impl GpioHost for Host {
    type Error = HostError;

    fn num_lines(&self) -> u16 {
        match self {
            Self::Sim(h) => h.num_lines(),
            Self::Chip(h) => h.num_lines(),
        }
    }

    fn line_name(&self, line: u16) -> Option<&str> {
        match self {
            Self::Sim(h) => h.line_name(line),
            Self::Chip(h) => h.line_name(line),
        }
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), HostError> {
        match self {
            Self::Sim(h) => h.configure(line, config),
            Self::Chip(h) => h.configure(line, config),
        }
    }

    fn get_value(&mut self, line: u16) -> Result<bool, HostError> {
        match self {
            Self::Sim(h) => h.get_value(line),
            Self::Chip(h) => h.get_value(line),
        }
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        match self {
            Self::Sim(h) => h.set_value(line, value),
            Self::Chip(h) => h.set_value(line, value),
        }
    }

    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), HostError> {
        match self {
            Self::Sim(h) => h.read_edges(on_edge),
            Self::Chip(h) => h.read_edges(on_edge),
        }
    }
}

impl AsRawFd for Host {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Sim(h) => h.as_raw_fd(),
            Self::Chip(h) => h.as_raw_fd(),
        }
    }
}
