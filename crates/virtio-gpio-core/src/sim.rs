//! A simulated GPIO chip: N named lines wired in pairs (0-1, 2-3, ...).
//!
//! An input (or a line only watched for interrupts) reads the level its partner drives when
//! the partner is an output, else low. When the level a line sees changes, the edge is
//! queued for it (if its edge detection asks for it) and the chip raises its signal
//! ([`SimChip::take_signal`]): the platform turns that into its own wake-up (the daemon
//! writes an eventfd, a microcontroller pends an interrupt), so the simulator's interrupts
//! take the same path as a real chip's.
//!
//! One implementation for the daemon and the bare-metal firmware; no OS calls.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;

use crate::host::{Edge, EdgeDetection, GpioHost, LineConfig};
use crate::msg::Direction;

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
    /// An edge was queued since the platform last looked.
    signal: bool,
}

fn partner(line: u16) -> u16 {
    line ^ 1
}

impl SimChip {
    /// A chip with `num_lines` lines named `sim-0`, `sim-1`, ... (all memory allocated here).
    pub fn new(num_lines: u16) -> Self {
        Self {
            lines: vec![SimLine::default(); usize::from(num_lines)],
            names: (0..num_lines).map(|l| format!("sim-{l}")).collect(),
            dirty: Vec::with_capacity(usize::from(num_lines)),
            signal: false,
        }
    }

    /// Whether an edge was queued since the last call (then the platform wakes whoever
    /// calls [`GpioHost::read_edges`]); clears the signal.
    pub fn take_signal(&mut self) -> bool {
        core::mem::take(&mut self.signal)
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
    fn change(&mut self, line: u16, change: impl FnOnce(&mut SimLine)) {
        let other = partner(line);
        let before = self.level(other);
        if let Some(l) = self.lines.get_mut(usize::from(line)) {
            change(l);
        }
        let after = self.level(other);
        if before == after {
            return;
        }
        let edge = if after { Edge::Rising } else { Edge::Falling };
        let Some(l) = self.lines.get_mut(usize::from(other)) else {
            return;
        };
        let wanted = l.config.direction != Direction::Out
            && matches!(
                (l.config.edges, edge),
                (EdgeDetection::Both, _)
                    | (EdgeDetection::Rising, Edge::Rising)
                    | (EdgeDetection::Falling, Edge::Falling)
            );
        if !wanted {
            return;
        }
        if !l.has_pending() {
            self.dirty.push(other);
        }
        match edge {
            Edge::Rising => l.rising = true,
            Edge::Falling => l.falling = true,
        }
        self.signal = true;
    }
}

impl GpioHost for SimChip {
    type Error = Infallible;

    fn num_lines(&self) -> u16 {
        u16::try_from(self.lines.len()).unwrap_or(u16::MAX)
    }

    fn line_name(&self, line: u16) -> Option<&str> {
        self.names.get(usize::from(line)).map(String::as_str)
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), Infallible> {
        self.change(line, |l| {
            l.config = config;
            if config.edges == EdgeDetection::None {
                l.rising = false;
                l.falling = false;
            }
        });
        Ok(())
    }

    fn get_value(&mut self, line: u16) -> Result<bool, Infallible> {
        Ok(self.level(line))
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), Infallible> {
        self.change(line, |l| l.config.output = value);
        Ok(())
    }

    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), Infallible> {
        let lines = &mut self.lines;
        for line in self.dirty.drain(..) {
            let Some(l) = lines.get_mut(usize::from(line)) else {
                continue;
            };
            if core::mem::take(&mut l.rising) {
                on_edge(line, Edge::Rising);
            }
            if core::mem::take(&mut l.falling) {
                on_edge(line, Edge::Falling);
            }
        }
        Ok(())
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
        let chip = SimChip::new(3);
        assert_eq!(chip.num_lines(), 3);
        assert_eq!(chip.line_name(2), Some("sim-2"));
        assert_eq!(chip.line_name(3), None);
    }

    #[test]
    fn input_follows_driving_partner() {
        let mut chip = SimChip::new(4);
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
        let mut chip = SimChip::new(3);
        chip.configure(2, input(EdgeDetection::Both)).unwrap();
        assert!(!chip.get_value(2).unwrap());
    }

    #[test]
    fn partner_changes_raise_requested_edges() {
        let mut chip = SimChip::new(2);
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
    fn signal_raised_once_per_wanted_edge() {
        let mut chip = SimChip::new(2);
        chip.configure(0, input(EdgeDetection::Falling)).unwrap();
        chip.configure(1, output(true)).unwrap();
        assert!(!chip.take_signal(), "a rising edge line 0 does not watch");
        chip.configure(1, output(false)).unwrap();
        assert!(chip.take_signal());
        assert!(!chip.take_signal(), "taking the signal clears it");
        assert_eq!(edges(&mut chip), vec![(0, Edge::Falling)]);
    }
}
