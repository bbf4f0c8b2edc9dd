//! The simulated chip of `-l sN`: the core crate's implementation
//! ([`virtio_gpio_core::sim`], shared with the bare-metal firmware) plus an eventfd that is
//! signalled whenever the chip queues an edge, so the simulator's interrupts take the same
//! path through the vring worker's epoll set as a real chip's.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use virtio_gpio_core::{Edge, GpioHost, LineConfig, sim};
use vmm_sys_util::eventfd::EventFd;

use super::error::HostError;

/// The simulated chip and its edge eventfd.
#[derive(Debug)]
pub struct SimChip {
    chip: sim::SimChip,
    notify: EventFd,
}

impl SimChip {
    /// A chip with `num_lines` lines named `sim-0`, `sim-1`, ...
    pub fn new(num_lines: u16) -> Result<Self, HostError> {
        let notify = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(|source| {
            HostError::Event {
                op: "create",
                source,
            }
        })?;
        Ok(Self {
            chip: sim::SimChip::new(num_lines),
            notify,
        })
    }

    /// Writes the eventfd if the last operation queued an edge.
    fn forward_signal(&mut self) -> Result<(), HostError> {
        if !self.chip.take_signal() {
            return Ok(());
        }
        self.notify.write(1).map_err(|source| HostError::Event {
            op: "signal",
            source,
        })
    }
}

impl GpioHost for SimChip {
    type Error = HostError;

    fn num_lines(&self) -> u16 {
        self.chip.num_lines()
    }

    fn line_name(&self, line: u16) -> Option<&str> {
        self.chip.line_name(line)
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), HostError> {
        let Ok(()) = self.chip.configure(line, config);
        self.forward_signal()
    }

    fn get_value(&mut self, line: u16) -> Result<bool, HostError> {
        let Ok(v) = self.chip.get_value(line);
        Ok(v)
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        let Ok(()) = self.chip.set_value(line, value);
        self.forward_signal()
    }

    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), HostError> {
        match self.notify.read() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(source) => return Err(HostError::Event { op: "read", source }),
        }
        let Ok(()) = self.chip.read_edges(on_edge);
        Ok(())
    }
}

impl AsRawFd for SimChip {
    fn as_raw_fd(&self) -> RawFd {
        self.notify.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use virtio_gpio_core::{Direction, EdgeDetection};

    use super::*;

    #[test]
    fn eventfd_signals_pending_edges() {
        let mut chip = SimChip::new(2).unwrap();
        chip.configure(
            0,
            LineConfig {
                direction: Direction::In,
                output: false,
                edges: EdgeDetection::Falling,
            },
        )
        .unwrap();
        let out = |v| LineConfig {
            direction: Direction::Out,
            output: v,
            edges: EdgeDetection::None,
        };
        chip.configure(1, out(true)).unwrap();
        assert!(
            chip.notify.read().is_err(),
            "no edge line 0 watches: the eventfd stays unsignalled"
        );
        chip.configure(1, out(false)).unwrap();
        assert_eq!(chip.notify.read().unwrap(), 1);
        let mut seen = Vec::new();
        chip.read_edges(&mut |l, e| seen.push((l, e))).unwrap();
        assert_eq!(seen, vec![(0, Edge::Falling)]);
        assert_eq!(chip.line_name(1), Some("sim-1"));
    }
}
