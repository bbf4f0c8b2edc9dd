//! A simulated GPIO chip: N named lines wired in pairs (0-1, 2-3, ...).
//!
//! An input (or a line only watched for interrupts) reads the level its partner drives when
//! the partner is an output, else low. When the level a line sees changes, the edge is
//! queued for it (if its edge detection asks for it) and an eventfd is signalled, so the
//! simulator's interrupts take the same path as a real chip's.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use virtio_gpio_core::{Direction, Edge, EdgeDetection, GpioHost, LineConfig};
use vmm_sys_util::eventfd::EventFd;

use super::error::HostError;

#[derive(Debug, Default, Clone, Copy)]
struct SimLine {
    config: LineConfig,
    rising: bool,
    falling: bool,
}

impl SimLine {
    fn driven(&self) -> Option<bool> {
        (self.config.direction == Direction::Out).then_some(self.config.output)
    }

    fn has_pending(&self) -> bool {
        self.rising || self.falling
    }
}

/// The simulated chip.
#[derive(Debug)]
pub struct SimChip {
    lines: Vec<SimLine>,
    names: Vec<String>,
    /// Lines with pending edges, each at most once (so never beyond its initial capacity).
    dirty: Vec<u16>,
    notify: EventFd,
}

fn partner(line: u16) -> u16 {
    line ^ 1
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
            lines: vec![SimLine::default(); usize::from(num_lines)],
            names: (0..num_lines).map(|l| format!("sim-{l}")).collect(),
            dirty: Vec::with_capacity(usize::from(num_lines)),
            notify,
        })
    }

    fn line(&self, line: u16) -> Option<&SimLine> {
        self.lines.get(usize::from(line))
    }

    /// The level `line` sees: its own drive, else its partner's, else low.
    fn level(&self, line: u16) -> bool {
        self.line(line)
            .and_then(SimLine::driven)
            .or_else(|| self.line(partner(line)).and_then(SimLine::driven))
            .unwrap_or(false)
    }

    /// Applies `change` to `line`, then raises the edge its partner sees, if any.
    fn change(&mut self, line: u16, change: impl FnOnce(&mut SimLine)) -> Result<(), HostError> {
        let other = partner(line);
        let before = self.level(other);
        if let Some(l) = self.lines.get_mut(usize::from(line)) {
            change(l);
        }
        let after = self.level(other);
        if before == after {
            return Ok(());
        }
        let edge = if after { Edge::Rising } else { Edge::Falling };
        let Some(l) = self.lines.get_mut(usize::from(other)) else {
            return Ok(());
        };
        let wanted = l.config.direction != Direction::Out
            && matches!(
                (l.config.edges, edge),
                (EdgeDetection::Both, _)
                    | (EdgeDetection::Rising, Edge::Rising)
                    | (EdgeDetection::Falling, Edge::Falling)
            );
        if !wanted {
            return Ok(());
        }
        if !l.has_pending() {
            self.dirty.push(other);
        }
        match edge {
            Edge::Rising => l.rising = true,
            Edge::Falling => l.falling = true,
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
        u16::try_from(self.lines.len()).unwrap_or(u16::MAX)
    }

    fn line_name(&self, line: u16) -> Option<&str> {
        self.names.get(usize::from(line)).map(String::as_str)
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), HostError> {
        self.change(line, |l| {
            l.config = config;
            if config.edges == EdgeDetection::None {
                l.rising = false;
                l.falling = false;
            }
        })
    }

    fn get_value(&mut self, line: u16) -> Result<bool, HostError> {
        Ok(self.level(line))
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        self.change(line, |l| l.config.output = value)
    }

    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), HostError> {
        match self.notify.read() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(source) => return Err(HostError::Event { op: "read", source }),
        }
        let lines = &mut self.lines;
        for line in self.dirty.drain(..) {
            let Some(l) = lines.get_mut(usize::from(line)) else {
                continue;
            };
            if std::mem::take(&mut l.rising) {
                on_edge(line, Edge::Rising);
            }
            if std::mem::take(&mut l.falling) {
                on_edge(line, Edge::Falling);
            }
        }
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
    use super::*;

    fn input(edges: EdgeDetection) -> LineConfig {
        LineConfig {
            direction: Direction::In,
            output: false,
            edges,
        }
    }

    fn output(v: bool) -> LineConfig {
        LineConfig {
            direction: Direction::Out,
            output: v,
            edges: EdgeDetection::None,
        }
    }

    fn edges(chip: &mut SimChip) -> Vec<(u16, Edge)> {
        let mut v = Vec::new();
        chip.read_edges(&mut |l, e| v.push((l, e))).unwrap();
        v
    }

    #[test]
    fn names_are_unique() {
        let chip = SimChip::new(3).unwrap();
        assert_eq!(chip.num_lines(), 3);
        assert_eq!(chip.line_name(2), Some("sim-2"));
        assert_eq!(chip.line_name(3), None);
    }

    #[test]
    fn input_follows_driving_partner() {
        let mut chip = SimChip::new(4).unwrap();
        chip.configure(1, input(EdgeDetection::None)).unwrap();
        assert!(!chip.get_value(1).unwrap());
        chip.configure(0, output(true)).unwrap();
        assert!(chip.get_value(1).unwrap());
        assert!(chip.get_value(0).unwrap());
        chip.set_value(0, false).unwrap();
        assert!(!chip.get_value(1).unwrap());
        chip.set_value(0, true).unwrap();
        // Released partner: low again.
        chip.configure(0, LineConfig::default()).unwrap();
        assert!(!chip.get_value(1).unwrap());
        // Other pairs are independent.
        assert!(!chip.get_value(2).unwrap());
        assert!(edges(&mut chip).is_empty(), "no edge detection asked");
    }

    #[test]
    fn odd_last_line_reads_low() {
        let mut chip = SimChip::new(3).unwrap();
        chip.configure(2, input(EdgeDetection::Both)).unwrap();
        assert!(!chip.get_value(2).unwrap());
    }

    #[test]
    fn partner_changes_raise_requested_edges() {
        let mut chip = SimChip::new(2).unwrap();
        chip.configure(1, input(EdgeDetection::Rising)).unwrap();
        chip.configure(0, output(false)).unwrap();
        assert!(edges(&mut chip).is_empty());
        chip.set_value(0, true).unwrap();
        chip.set_value(0, false).unwrap();
        assert_eq!(edges(&mut chip), vec![(1, Edge::Rising)]);
        chip.configure(1, input(EdgeDetection::Both)).unwrap();
        chip.set_value(0, true).unwrap();
        chip.set_value(0, false).unwrap();
        assert_eq!(
            edges(&mut chip),
            vec![(1, Edge::Rising), (1, Edge::Falling)]
        );
        assert!(edges(&mut chip).is_empty());
    }

    #[test]
    fn eventfd_signals_pending_edges() {
        let mut chip = SimChip::new(2).unwrap();
        chip.configure(0, input(EdgeDetection::Falling)).unwrap();
        chip.configure(1, output(true)).unwrap();
        chip.configure(1, output(false)).unwrap();
        assert_eq!(chip.notify.read().unwrap(), 1);
        assert_eq!(edges(&mut chip), vec![(0, Edge::Falling)]);
    }
}
