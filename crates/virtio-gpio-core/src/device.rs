//! The device: per-line state and interrupt state machines over a [`GpioHost`].
//!
//! Line state: a direction (NONE, OUT, IN) and an output value. `SET_VALUE` on a line that is
//! not an output is remembered and driven when the line becomes an output; `SET_DIRECTION`
//! NONE releases the host line and discards everything, including the interrupt state.
//!
//! Interrupt state: a type, at most one held eventq buffer (held = unmasked), and a latched
//! flag for edges that happened while masked. A held buffer is returned VALID when its
//! interrupt fires (which masks the line), INVALID when the type is set to NONE. Level types
//! are not latched; a level still active when a buffer is queued fires at once.
//!
//! Held buffers are opaque tokens `T` chosen by the caller; every completion goes through an
//! `on_event(token, status)` callback so the caller can return it to the guest.

use alloc::vec::Vec;

use crate::host::{Edge, EdgeDetection, GpioHost, LineConfig};
use crate::msg::{Command, Config, Direction, EventStatus, IrqType};
use crate::names::LineNames;

/// Why a message failed; the response is ERR.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError<E: core::error::Error + 'static> {
    /// The line number is not below `ngpio`.
    #[error("line {line} out of range (the chip has {ngpio} lines)")]
    LineOutOfRange {
        /// Requested line.
        line: u16,
        /// Number of lines.
        ngpio: u16,
    },
    /// An interrupt type was requested for an output line.
    #[error("line {0} is an output and cannot have an interrupt type")]
    IrqOnOutput(u16),
    /// The host refused.
    #[error("host line {line}")]
    Host {
        /// Line concerned.
        line: u16,
        /// Host error.
        #[source]
        source: E,
    },
}

/// The device cannot be built on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the GPIO chip has no lines")]
pub struct NoLinesError;

/// A successful response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// `{ OK, value }`; value 0 for the set commands.
    Value(u8),
    /// `{ OK, names... }` for `GET_LINE_NAMES`.
    Names(&'a [u8]),
}

#[derive(Debug)]
struct Line<T> {
    direction: Direction,
    /// Pending (not an output yet) or driven (output) level; `None` if never set.
    value: Option<bool>,
    irq: IrqType,
    /// The eventq buffer the driver queued: present = unmasked.
    held: Option<T>,
    /// An edge matching `irq` happened while masked (edge types only).
    latched: bool,
}

impl<T> Default for Line<T> {
    fn default() -> Self {
        Self {
            direction: Direction::None,
            value: None,
            irq: IrqType::None,
            held: None,
            latched: false,
        }
    }
}

impl<T> Line<T> {
    fn host_config(&self, direction: Direction, irq: IrqType) -> LineConfig {
        LineConfig {
            direction,
            output: self.value.unwrap_or(false),
            edges: if direction == Direction::Out {
                EdgeDetection::None
            } else {
                edges_for(irq)
            },
        }
    }
}

/// Host edges needed to implement an interrupt type (a level type fires on the edge into the
/// active level, and is re-checked against the current value when a buffer is queued).
fn edges_for(irq: IrqType) -> EdgeDetection {
    match irq {
        IrqType::None => EdgeDetection::None,
        IrqType::EdgeRising | IrqType::LevelHigh => EdgeDetection::Rising,
        IrqType::EdgeFalling | IrqType::LevelLow => EdgeDetection::Falling,
        IrqType::EdgeBoth => EdgeDetection::Both,
    }
}

fn edge_matches(irq: IrqType, edge: Edge) -> bool {
    matches!(
        (irq, edge),
        (IrqType::EdgeRising | IrqType::LevelHigh, Edge::Rising)
            | (IrqType::EdgeFalling | IrqType::LevelLow, Edge::Falling)
            | (IrqType::EdgeBoth, _)
    )
}

/// Applies one host edge to a line: the held buffer to return VALID, if the interrupt fires.
fn apply_edge<T>(lines: &mut [Line<T>], line: u16, edge: Edge) -> Option<T> {
    let l = lines.get_mut(usize::from(line))?;
    if l.direction == Direction::Out || !edge_matches(l.irq, edge) {
        return None;
    }
    let fired = l.held.take();
    if fired.is_none() && !l.irq.is_level() {
        l.latched = true;
    }
    fired
}

/// A virtio-gpio device over a host chip. `T` is the caller's handle for a held eventq
/// buffer.
#[derive(Debug)]
pub struct GpioDevice<H, T> {
    host: H,
    lines: Vec<Line<T>>,
    names: LineNames,
    config: Config,
}

impl<H: GpioHost, T> GpioDevice<H, T> {
    /// Builds the device; all allocation happens here, never per request.
    pub fn new(host: H) -> Result<Self, NoLinesError> {
        let ngpio = host.num_lines();
        if ngpio == 0 {
            return Err(NoLinesError);
        }
        let names = LineNames::new((0..ngpio).map(|l| host.line_name(l)));
        let config = Config {
            ngpio,
            names_size: names.size(),
        };
        let mut lines = Vec::with_capacity(usize::from(ngpio));
        lines.resize_with(usize::from(ngpio), Line::default);
        Ok(Self {
            host,
            lines,
            names,
            config,
        })
    }

    /// The config space.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The host's name of `line` (empty if it has none or the line does not exist).
    pub fn line_name(&self, line: u16) -> &str {
        if line >= self.config.ngpio {
            return "";
        }
        self.host.line_name(line).unwrap_or("")
    }

    /// The interrupt type the driver set on `line` (`None` for a line that does not exist).
    pub fn irq_type(&self, line: u16) -> IrqType {
        self.lines
            .get(usize::from(line))
            .map_or(IrqType::None, |l| l.irq)
    }

    fn line_mut(&mut self, line: u16) -> Result<&mut Line<T>, DeviceError<H::Error>> {
        let ngpio = self.config.ngpio;
        self.lines
            .get_mut(usize::from(line))
            .ok_or(DeviceError::LineOutOfRange { line, ngpio })
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), DeviceError<H::Error>> {
        self.host
            .configure(line, config)
            .map_err(|source| DeviceError::Host { line, source })
    }

    /// Whether `irq` is a level type whose level is active on the host right now.
    fn level_active(&mut self, line: u16, irq: IrqType) -> bool {
        let want = match irq {
            IrqType::LevelHigh => true,
            IrqType::LevelLow => false,
            _ => return false,
        };
        // A host that cannot read the line has no active level: the buffer stays held.
        self.host.get_value(line).is_ok_and(|v| v == want)
    }

    /// Fires a held buffer if the line has a level type whose level is active.
    fn recheck_level(&mut self, line: u16) -> Option<T> {
        let l = self.lines.get(usize::from(line))?;
        if l.held.is_none() || l.direction == Direction::Out {
            return None;
        }
        let irq = l.irq;
        if !self.level_active(line, irq) {
            return None;
        }
        self.lines.get_mut(usize::from(line))?.held.take()
    }

    /// Executes one requestq message. A held eventq buffer the message releases is passed to
    /// `on_event` (before this returns) so the caller can complete it.
    pub fn execute(
        &mut self,
        command: Command,
        on_event: &mut dyn FnMut(T, EventStatus),
    ) -> Result<Response<'_>, DeviceError<H::Error>> {
        match command {
            Command::GetLineNames => return Ok(Response::Names(self.names.as_bytes())),
            Command::GetDirection { line } => {
                let dir = self.line_mut(line)?.direction;
                return Ok(Response::Value(dir as u8));
            }
            Command::SetDirection { line, direction } => {
                self.set_direction(line, direction, on_event)?;
            }
            Command::GetValue { line } => {
                self.line_mut(line)?;
                let v = self
                    .host
                    .get_value(line)
                    .map_err(|source| DeviceError::Host { line, source })?;
                return Ok(Response::Value(u8::from(v)));
            }
            Command::SetValue { line, value } => {
                if self.line_mut(line)?.direction == Direction::Out {
                    self.host
                        .set_value(line, value)
                        .map_err(|source| DeviceError::Host { line, source })?;
                }
                self.line_mut(line)?.value = Some(value);
            }
            Command::SetIrqType { line, irq } => self.set_irq_type(line, irq, on_event)?,
        }
        Ok(Response::Value(0))
    }

    fn set_direction(
        &mut self,
        line: u16,
        direction: Direction,
        on_event: &mut dyn FnMut(T, EventStatus),
    ) -> Result<(), DeviceError<H::Error>> {
        let l = self.line_mut(line)?;
        if direction == Direction::None {
            // Discard everything, even if the host fails to release the line.
            let old = core::mem::take(l);
            if let Some(token) = old.held {
                on_event(token, EventStatus::Invalid);
            }
            return self.configure(line, LineConfig::default());
        }
        let irq = l.irq;
        let mut config = l.host_config(direction, irq);
        if direction == Direction::Out {
            config.output = l.value.unwrap_or(false);
        }
        self.configure(line, config)?;
        let l = self.line_mut(line)?;
        l.direction = direction;
        if direction == Direction::Out {
            l.value = Some(config.output);
        } else if let Some(token) = self.recheck_level(line) {
            on_event(token, EventStatus::Valid);
        }
        Ok(())
    }

    fn set_irq_type(
        &mut self,
        line: u16,
        irq: IrqType,
        on_event: &mut dyn FnMut(T, EventStatus),
    ) -> Result<(), DeviceError<H::Error>> {
        let l = self.line_mut(line)?;
        let direction = l.direction;
        if irq == IrqType::None {
            l.irq = IrqType::None;
            l.latched = false;
            if let Some(token) = l.held.take() {
                on_event(token, EventStatus::Invalid);
            }
            if direction == Direction::Out {
                return Ok(());
            }
            let config = l.host_config(direction, irq);
            return self.configure(line, config);
        }
        if direction == Direction::Out {
            return Err(DeviceError::IrqOnOutput(line));
        }
        let config = l.host_config(direction, irq);
        self.configure(line, config)?;
        let l = self.line_mut(line)?;
        if l.irq != irq {
            // Latched edges belong to the old type.
            l.latched = false;
        }
        l.irq = irq;
        if let Some(token) = self.recheck_level(line) {
            on_event(token, EventStatus::Valid);
        }
        Ok(())
    }

    /// Returns the device to its initial state: every line released, every interrupt type
    /// cleared, held eventq buffers forgotten (their ring is being reset with the device).
    /// Every line is released even if the host fails on one; the first failure is returned.
    pub fn reset(&mut self) -> Result<(), DeviceError<H::Error>> {
        let mut first_error = None;
        for (index, l) in self.lines.iter_mut().enumerate() {
            let old = core::mem::take(l);
            if old.direction == Direction::None && old.irq == IrqType::None {
                continue;
            }
            let Ok(line) = u16::try_from(index) else {
                continue;
            };
            if let Err(source) = self.host.configure(line, LineConfig::default()) {
                first_error.get_or_insert(DeviceError::Host { line, source });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The driver queued an eventq buffer for `line` (unmasking it). Returns the buffer with
    /// its status if it completes at once, `None` if the device holds it.
    pub fn queue_event(&mut self, line: u16, token: T) -> Option<(T, EventStatus)> {
        let Some(l) = self.lines.get_mut(usize::from(line)) else {
            return Some((token, EventStatus::Invalid));
        };
        // No type, or a second buffer for an unmasked line: nothing this buffer can wait for.
        if l.irq == IrqType::None || l.held.is_some() || l.direction == Direction::Out {
            return Some((token, EventStatus::Invalid));
        }
        let irq = l.irq;
        if irq.is_level() {
            if self.level_active(line, irq) {
                return Some((token, EventStatus::Valid));
            }
        } else if l.latched {
            l.latched = false;
            return Some((token, EventStatus::Valid));
        }
        if let Some(l) = self.lines.get_mut(usize::from(line)) {
            l.held = Some(token);
        }
        None
    }

    /// Reads every pending host edge and passes each buffer that fires to `on_event`.
    pub fn poll_host(&mut self, on_event: &mut dyn FnMut(T, EventStatus)) -> Result<(), H::Error> {
        let lines = &mut self.lines;
        self.host.read_edges(&mut |line, edge| {
            if let Some(token) = apply_edge(lines, line, edge) {
                on_event(token, EventStatus::Valid);
            }
        })
    }
}

#[cfg(test)]
mod tests;
