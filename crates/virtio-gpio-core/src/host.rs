//! The host side of a GPIO device: what a backend (character device, simulator, mock)
//! must provide. Line numbers passed in are always `< num_lines()`.

use crate::msg::Direction;

/// A signal edge seen on a host line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Low to high.
    Rising,
    /// High to low.
    Falling,
}

/// Which edges the host must report for a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgeDetection {
    /// None: the line has no interrupt type.
    #[default]
    None,
    /// Rising edges only.
    Rising,
    /// Falling edges only.
    Falling,
    /// Both edges.
    Both,
}

/// The whole configuration of one host line, as the device wants it.
///
/// The device always sends the full configuration, so a backend can apply it in one step
/// (request, reconfigure or release the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineConfig {
    /// `None` with `edges == EdgeDetection::None`: release the line. `None` with edges: the
    /// guest wants interrupts on a line it has not given a direction; read it as an input.
    pub direction: Direction,
    /// The level to drive when `direction` is `Out`.
    pub output: bool,
    /// Edges to report through [`GpioHost::read_edges`]; always `None` for an output.
    pub edges: EdgeDetection,
}

impl LineConfig {
    /// Whether this configuration leaves the line unused (the backend releases it).
    pub fn is_released(&self) -> bool {
        self.direction == Direction::None && self.edges == EdgeDetection::None
    }
}

/// A GPIO chip on the host.
pub trait GpioHost {
    /// A host failure; the device turns it into an ERR response.
    type Error: core::error::Error + 'static;

    /// Number of lines (never 0).
    fn num_lines(&self) -> u16;

    /// The host's name for `line`, if any (the device sanitizes it).
    fn line_name(&self, line: u16) -> Option<&str>;

    /// Applies a line's full configuration. On error the previous configuration must still
    /// be in effect (or the line released).
    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), Self::Error>;

    /// Reads a line's level (for an output: the level it drives).
    fn get_value(&mut self, line: u16) -> Result<bool, Self::Error>;

    /// Drives an output line (only called while the line is configured as an output).
    fn set_value(&mut self, line: u16, value: bool) -> Result<(), Self::Error>;

    /// Reports every edge that happened since the last call, without blocking, by calling
    /// `on_edge(line, edge)` in the order the edges happened.
    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), Self::Error>;
}
