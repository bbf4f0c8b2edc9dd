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

    /// The host backend.
    pub fn host(&self) -> &H {
        &self.host
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

    /// Applies one host edge; returns the held buffer to complete VALID if it fires.
    pub fn handle_edge(&mut self, line: u16, edge: Edge) -> Option<T> {
        apply_edge(&mut self.lines, line, edge)
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
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::fmt;

    #[derive(Debug)]
    struct MockError;
    impl fmt::Display for MockError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("mock failure")
        }
    }
    impl core::error::Error for MockError {}

    #[derive(Debug, Default)]
    struct MockHost {
        names: Vec<Option<&'static str>>,
        configs: Vec<LineConfig>,
        levels: Vec<bool>,
        edges: Vec<(u16, Edge)>,
        fail: bool,
        set_calls: Vec<(u16, bool)>,
    }

    impl MockHost {
        fn new(n: usize) -> Self {
            Self {
                names: vec![None; n],
                configs: vec![LineConfig::default(); n],
                levels: vec![false; n],
                ..Default::default()
            }
        }
    }

    impl GpioHost for MockHost {
        type Error = MockError;
        fn num_lines(&self) -> u16 {
            u16::try_from(self.names.len()).unwrap()
        }
        fn line_name(&self, line: u16) -> Option<&str> {
            self.names[usize::from(line)]
        }
        fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), MockError> {
            if self.fail {
                return Err(MockError);
            }
            self.configs[usize::from(line)] = config;
            Ok(())
        }
        fn get_value(&mut self, line: u16) -> Result<bool, MockError> {
            if self.fail {
                return Err(MockError);
            }
            Ok(self.levels[usize::from(line)])
        }
        fn set_value(&mut self, line: u16, value: bool) -> Result<(), MockError> {
            if self.fail {
                return Err(MockError);
            }
            self.set_calls.push((line, value));
            Ok(())
        }
        fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), MockError> {
            for (l, e) in self.edges.drain(..) {
                on_edge(l, e);
            }
            Ok(())
        }
    }

    type Dev = GpioDevice<MockHost, u32>;

    fn dev(n: usize) -> Dev {
        GpioDevice::new(MockHost::new(n)).unwrap()
    }

    /// Runs a command, collecting eventq completions.
    fn run(d: &mut Dev, cmd: Command) -> (Result<u8, ()>, Vec<(u32, EventStatus)>) {
        let mut events = Vec::new();
        let r = d
            .execute(cmd, &mut |t, s| events.push((t, s)))
            .map(|r| match r {
                Response::Value(v) => v,
                Response::Names(_) => 0xff,
            })
            .map_err(drop);
        (r, events)
    }

    fn ok(d: &mut Dev, cmd: Command) -> Vec<(u32, EventStatus)> {
        let (r, ev) = run(d, cmd);
        assert!(r.is_ok(), "{cmd:?} failed");
        ev
    }

    fn set_dir(d: &mut Dev, line: u16, direction: Direction) -> Vec<(u32, EventStatus)> {
        ok(d, Command::SetDirection { line, direction })
    }

    fn set_irq(d: &mut Dev, line: u16, irq: IrqType) -> Vec<(u32, EventStatus)> {
        ok(d, Command::SetIrqType { line, irq })
    }

    fn edge(d: &mut Dev, line: u16, e: Edge) -> Vec<(u32, EventStatus)> {
        let mut events = Vec::new();
        d.host.edges.push((line, e));
        d.poll_host(&mut |t, s| events.push((t, s))).unwrap();
        events
    }

    const VALID: EventStatus = EventStatus::Valid;
    const INVALID: EventStatus = EventStatus::Invalid;

    #[test]
    fn no_lines_is_rejected() {
        assert_eq!(
            GpioDevice::<_, u32>::new(MockHost::new(0)).err(),
            Some(NoLinesError)
        );
    }

    #[test]
    fn config_and_names() {
        let mut host = MockHost::new(3);
        host.names = vec![Some("a"), None, Some("c")];
        let mut d: Dev = GpioDevice::new(host).unwrap();
        assert_eq!(
            d.config(),
            Config {
                ngpio: 3,
                names_size: 5
            }
        );
        let r = d.execute(Command::GetLineNames, &mut |_, _| {}).unwrap();
        assert_eq!(r, Response::Names(b"a\0\0c\0"));
    }

    #[test]
    fn out_of_range_lines_fail_every_command() {
        let mut d = dev(4);
        for line in [4, 5, u16::MAX] {
            for cmd in [
                Command::GetDirection { line },
                Command::SetDirection {
                    line,
                    direction: Direction::Out,
                },
                Command::GetValue { line },
                Command::SetValue { line, value: true },
                Command::SetIrqType {
                    line,
                    irq: IrqType::EdgeBoth,
                },
            ] {
                let err = d.execute(cmd, &mut |_, _| panic!()).unwrap_err();
                assert!(matches!(err, DeviceError::LineOutOfRange { ngpio: 4, .. }));
            }
        }
    }

    #[test]
    fn direction_round_trip() {
        let mut d = dev(2);
        assert_eq!(run(&mut d, Command::GetDirection { line: 1 }).0, Ok(0));
        set_dir(&mut d, 1, Direction::In);
        assert_eq!(run(&mut d, Command::GetDirection { line: 1 }).0, Ok(2));
        assert_eq!(d.host.configs[1].direction, Direction::In);
        set_dir(&mut d, 1, Direction::Out);
        assert_eq!(run(&mut d, Command::GetDirection { line: 1 }).0, Ok(1));
        assert_eq!(run(&mut d, Command::GetDirection { line: 0 }).0, Ok(0));
    }

    #[test]
    fn value_before_output_takes_effect() {
        let mut d = dev(2);
        ok(
            &mut d,
            Command::SetValue {
                line: 0,
                value: true,
            },
        );
        assert!(d.host.set_calls.is_empty(), "not an output yet");
        set_dir(&mut d, 0, Direction::Out);
        assert_eq!(
            d.host.configs[0],
            LineConfig {
                direction: Direction::Out,
                output: true,
                edges: EdgeDetection::None
            }
        );
        ok(
            &mut d,
            Command::SetValue {
                line: 0,
                value: false,
            },
        );
        assert_eq!(d.host.set_calls, vec![(0, false)]);
    }

    #[test]
    fn output_defaults_low() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::Out);
        assert!(!d.host.configs[0].output);
    }

    #[test]
    fn get_value_reads_host() {
        let mut d = dev(2);
        d.host.levels[1] = true;
        assert_eq!(run(&mut d, Command::GetValue { line: 1 }).0, Ok(1));
        assert_eq!(run(&mut d, Command::GetValue { line: 0 }).0, Ok(0));
    }

    #[test]
    fn none_discards_all_state() {
        let mut d = dev(2);
        ok(
            &mut d,
            Command::SetValue {
                line: 0,
                value: true,
            },
        );
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        assert_eq!(d.queue_event(0, 7), None);
        assert_eq!(set_dir(&mut d, 0, Direction::None), vec![(7, INVALID)]);
        assert!(d.host.configs[0].is_released());
        assert_eq!(run(&mut d, Command::GetDirection { line: 0 }).0, Ok(0));
        // The pending value is gone: a new output starts low.
        set_dir(&mut d, 0, Direction::Out);
        assert!(!d.host.configs[0].output);
        // The interrupt type is gone: a buffer comes back INVALID.
        set_dir(&mut d, 0, Direction::In);
        assert_eq!(d.queue_event(0, 8), Some((8, INVALID)));
    }

    #[test]
    fn host_failure_is_an_error_and_keeps_state() {
        let mut d = dev(1);
        d.host.fail = true;
        let (r, _) = run(
            &mut d,
            Command::SetDirection {
                line: 0,
                direction: Direction::In,
            },
        );
        assert!(r.is_err());
        d.host.fail = false;
        assert_eq!(run(&mut d, Command::GetDirection { line: 0 }).0, Ok(0));
    }

    #[test]
    fn irq_type_on_output_is_rejected() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::Out);
        let (r, _) = run(
            &mut d,
            Command::SetIrqType {
                line: 0,
                irq: IrqType::EdgeBoth,
            },
        );
        assert!(r.is_err());
        // NONE is always accepted.
        set_irq(&mut d, 0, IrqType::None);
    }

    #[test]
    fn irq_type_sets_host_edges() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        for (irq, e) in [
            (IrqType::EdgeRising, EdgeDetection::Rising),
            (IrqType::EdgeFalling, EdgeDetection::Falling),
            (IrqType::EdgeBoth, EdgeDetection::Both),
            (IrqType::LevelHigh, EdgeDetection::Rising),
            (IrqType::LevelLow, EdgeDetection::Falling),
            (IrqType::None, EdgeDetection::None),
        ] {
            set_irq(&mut d, 0, irq);
            assert_eq!(d.host.configs[0].edges, e);
            assert_eq!(d.host.configs[0].direction, Direction::In);
        }
    }

    #[test]
    fn buffer_without_type_or_line_is_invalid() {
        let mut d = dev(2);
        assert_eq!(d.queue_event(0, 1), Some((1, INVALID)));
        assert_eq!(d.queue_event(2, 2), Some((2, INVALID)));
        assert_eq!(d.queue_event(u16::MAX, 3), Some((3, INVALID)));
    }

    #[test]
    fn second_buffer_for_a_line_is_invalid() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeBoth);
        assert_eq!(d.queue_event(0, 1), None);
        assert_eq!(d.queue_event(0, 2), Some((2, INVALID)));
        assert_eq!(edge(&mut d, 0, Edge::Rising), vec![(1, VALID)]);
    }

    #[test]
    fn type_none_returns_held_buffer_invalid() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeFalling);
        assert_eq!(d.queue_event(0, 5), None);
        assert_eq!(set_irq(&mut d, 0, IrqType::None), vec![(5, INVALID)]);
        assert_eq!(d.host.configs[0].edges, EdgeDetection::None);
        assert!(edge(&mut d, 0, Edge::Falling).is_empty());
    }

    #[test]
    fn edge_rising_fires_on_rising_only() {
        let mut d = dev(2);
        set_dir(&mut d, 1, Direction::In);
        set_irq(&mut d, 1, IrqType::EdgeRising);
        assert_eq!(d.queue_event(1, 9), None);
        assert!(edge(&mut d, 1, Edge::Falling).is_empty());
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        assert_eq!(edge(&mut d, 1, Edge::Rising), vec![(9, VALID)]);
        // Masked now; a falling edge is not latched for a rising type.
        assert!(edge(&mut d, 1, Edge::Falling).is_empty());
        assert_eq!(d.queue_event(1, 10), None);
    }

    #[test]
    fn edge_falling_fires_on_falling_only() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeFalling);
        assert_eq!(d.queue_event(0, 1), None);
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        assert_eq!(edge(&mut d, 0, Edge::Falling), vec![(1, VALID)]);
    }

    #[test]
    fn edge_both_fires_on_either() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeBoth);
        assert_eq!(d.queue_event(0, 1), None);
        assert_eq!(edge(&mut d, 0, Edge::Rising), vec![(1, VALID)]);
        assert_eq!(d.queue_event(0, 2), None);
        assert_eq!(edge(&mut d, 0, Edge::Falling), vec![(2, VALID)]);
    }

    #[test]
    fn edges_while_masked_are_latched_once() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        assert_eq!(d.queue_event(0, 1), Some((1, VALID)));
        // Several edges latch as one interrupt.
        assert_eq!(d.queue_event(0, 2), None);
    }

    #[test]
    fn switching_type_drops_latched_edge_but_resending_keeps_it() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        edge(&mut d, 0, Edge::Rising);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        assert_eq!(d.queue_event(0, 1), Some((1, VALID)));
        edge(&mut d, 0, Edge::Rising);
        set_irq(&mut d, 0, IrqType::EdgeFalling);
        assert_eq!(d.queue_event(0, 2), None);
        assert_eq!(edge(&mut d, 0, Edge::Falling), vec![(2, VALID)]);
    }

    #[test]
    fn switching_type_keeps_held_buffer() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        assert_eq!(d.queue_event(0, 1), None);
        assert!(set_irq(&mut d, 0, IrqType::EdgeBoth).is_empty());
        assert_eq!(edge(&mut d, 0, Edge::Falling), vec![(1, VALID)]);
    }

    #[test]
    fn level_high_fires_and_renotifies_while_active() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::LevelHigh);
        assert_eq!(d.queue_event(0, 1), None);
        d.host.levels[0] = true;
        assert_eq!(edge(&mut d, 0, Edge::Rising), vec![(1, VALID)]);
        // Still high at re-queue: fires again at once.
        assert_eq!(d.queue_event(0, 2), Some((2, VALID)));
        // Low again: the buffer is held, and a masked edge was not latched.
        d.host.levels[0] = false;
        assert!(edge(&mut d, 0, Edge::Falling).is_empty());
        assert_eq!(d.queue_event(0, 3), None);
    }

    #[test]
    fn level_is_not_latched() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::LevelHigh);
        // A pulse while masked: gone by re-queue, nothing fires.
        d.host.levels[0] = true;
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        d.host.levels[0] = false;
        assert!(edge(&mut d, 0, Edge::Falling).is_empty());
        assert_eq!(d.queue_event(0, 1), None);
    }

    #[test]
    fn level_low_fires_when_low() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::LevelLow);
        // The line is low: queueing fires at once.
        assert_eq!(d.queue_event(0, 1), Some((1, VALID)));
        d.host.levels[0] = true;
        assert_eq!(d.queue_event(0, 2), None);
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        d.host.levels[0] = false;
        assert_eq!(edge(&mut d, 0, Edge::Falling), vec![(2, VALID)]);
    }

    #[test]
    fn setting_level_type_with_active_level_fires_held_buffer() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeRising);
        assert_eq!(d.queue_event(0, 1), None);
        d.host.levels[0] = true;
        assert_eq!(set_irq(&mut d, 0, IrqType::LevelHigh), vec![(1, VALID)]);
    }

    #[test]
    fn level_read_failure_holds_buffer() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::LevelLow);
        d.host.fail = true;
        assert_eq!(d.queue_event(0, 1), None);
    }

    #[test]
    fn irq_without_direction_reads_line_as_input() {
        let mut d = dev(1);
        set_irq(&mut d, 0, IrqType::EdgeBoth);
        assert_eq!(
            d.host.configs[0],
            LineConfig {
                direction: Direction::None,
                output: false,
                edges: EdgeDetection::Both
            }
        );
        assert_eq!(d.queue_event(0, 1), None);
        assert_eq!(edge(&mut d, 0, Edge::Rising), vec![(1, VALID)]);
        set_irq(&mut d, 0, IrqType::None);
        assert!(d.host.configs[0].is_released());
    }

    #[test]
    fn output_direction_disables_edges() {
        let mut d = dev(1);
        set_dir(&mut d, 0, Direction::In);
        set_irq(&mut d, 0, IrqType::EdgeBoth);
        set_dir(&mut d, 0, Direction::Out);
        assert_eq!(d.host.configs[0].edges, EdgeDetection::None);
        assert!(edge(&mut d, 0, Edge::Rising).is_empty());
        assert_eq!(d.queue_event(0, 1), Some((1, INVALID)));
        set_dir(&mut d, 0, Direction::In);
        assert_eq!(d.host.configs[0].edges, EdgeDetection::Both);
    }

    #[test]
    fn reset_releases_everything() {
        let mut d = dev(3);
        set_dir(&mut d, 0, Direction::Out);
        set_dir(&mut d, 1, Direction::In);
        set_irq(&mut d, 1, IrqType::EdgeBoth);
        assert_eq!(d.queue_event(1, 4), None);
        set_irq(&mut d, 2, IrqType::LevelHigh);
        d.reset().unwrap();
        for line in 0..3 {
            assert!(d.host.configs[usize::from(line)].is_released());
            assert_eq!(run(&mut d, Command::GetDirection { line }).0, Ok(0));
        }
        // The held buffer is forgotten, not completed; edges fire nothing.
        assert!(edge(&mut d, 1, Edge::Rising).is_empty());
        assert_eq!(d.queue_event(1, 5), Some((5, INVALID)));
    }
}
