//! The line and interrupt state machines of [`GpioDevice`] against a reference model written
//! from the virtio-gpio spec (device-types/gpio), on random sequences of requestq messages,
//! eventq buffers, external level changes and device resets.
//!
//! Observable answers compared after every step: each message's status and value (and the
//! names blob), every eventq buffer returned (which, with which status, in which order),
//! the level each output line drives and whether unused lines are released on the host.
//!
//! The model's rules:
//! - messages for a line past `ngpio` fail; GET_LINE_NAMES answers the names blob;
//! - SET_VALUE before SET_DIRECTION(OUT) takes effect when the line becomes an output (an
//!   output never given a value drives low); SET_VALUE on an output drives it at once;
//! - SET_DIRECTION(NONE) releases the line and discards all its state, returning a held
//!   eventq buffer INVALID;
//! - an eventq buffer for a line without an interrupt type, for an output, for a line that
//!   already holds one, or for a line past `ngpio` comes back INVALID at once;
//! - SET_IRQ_TYPE(NONE) returns the held buffer INVALID; another type is refused on an
//!   output; re-sending the current type or switching types keeps the held buffer;
//! - a held buffer comes back VALID when its interrupt fires; edges that happen while no
//!   buffer is held are latched (once) and fire when the next buffer is queued, but
//!   switching to another type forgets them; a level type fires whenever the level is
//!   active while a buffer is held (on queueing, on the level changing, on the type or
//!   direction changing), and is never latched;
//! - a line with an interrupt type but no direction is watched as an input;
//! - a device reset releases every line and forgets held buffers (their ring is reset).
//!
//! Where the spec is silent the model follows the implementation's documented choice: a
//! latched edge survives a direction change to OUT and back (only NONE or another type
//! clears it), and an output keeps its interrupt type (inactive while an output).
// Test code: panics are failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use proptest::prelude::*;
use virtio_gpio_core::{
    Command, Direction, Edge, EdgeDetection, EventStatus, GpioDevice, GpioHost, IrqType,
    LineConfig, Response,
};

// ---- a host whose input levels the test sets ----

#[derive(Debug)]
struct HostError;
impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("host error")
    }
}
impl std::error::Error for HostError {}

/// The host's lines; shared with the test, which sets the external levels.
#[derive(Debug)]
struct HostState {
    configs: Vec<LineConfig>,
    /// The level outside the chip on each line (what an input reads).
    external: Vec<bool>,
    pending: Vec<(u16, Edge)>,
}

#[derive(Debug)]
struct TestHost {
    names: Vec<String>,
    state: Rc<RefCell<HostState>>,
}

impl TestHost {
    fn new(n: u16) -> (Self, Rc<RefCell<HostState>>) {
        let state = Rc::new(RefCell::new(HostState {
            configs: vec![LineConfig::default(); usize::from(n)],
            external: vec![false; usize::from(n)],
            pending: Vec::new(),
        }));
        let host = TestHost {
            names: (0..n).map(|i| format!("gpio{i}")).collect(),
            state: Rc::clone(&state),
        };
        (host, state)
    }
}

impl HostState {
    /// Changes the external level; queues the edge if the line's edge detection wants it.
    fn set_external(&mut self, line: u16, level: bool) {
        let l = usize::from(line);
        if self.external[l] == level {
            return;
        }
        self.external[l] = level;
        let c = self.configs[l];
        if c.direction == Direction::Out {
            return;
        }
        let edge = if level { Edge::Rising } else { Edge::Falling };
        let wanted = matches!(
            (c.edges, edge),
            (EdgeDetection::Both, _)
                | (EdgeDetection::Rising, Edge::Rising)
                | (EdgeDetection::Falling, Edge::Falling)
        );
        if wanted {
            self.pending.push((line, edge));
        }
    }
}

impl GpioHost for TestHost {
    type Error = HostError;
    fn num_lines(&self) -> u16 {
        self.names.len() as u16
    }
    fn line_name(&self, line: u16) -> Option<&str> {
        self.names.get(usize::from(line)).map(String::as_str)
    }
    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), HostError> {
        self.state.borrow_mut().configs[usize::from(line)] = config;
        Ok(())
    }
    fn get_value(&mut self, line: u16) -> Result<bool, HostError> {
        let s = self.state.borrow();
        let c = s.configs[usize::from(line)];
        Ok(if c.direction == Direction::Out {
            c.output
        } else {
            s.external[usize::from(line)]
        })
    }
    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        self.state.borrow_mut().configs[usize::from(line)].output = value;
        Ok(())
    }
    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), HostError> {
        let pending: Vec<_> = self.state.borrow_mut().pending.drain(..).collect();
        for (l, e) in pending {
            on_edge(l, e);
        }
        Ok(())
    }
}

// ---- operations and observations ----

#[derive(Debug, Clone)]
enum Op {
    Message(Command),
    QueueBuffer(u16),
    External(u16, bool),
    Reset,
}

/// What the guest (and the pins) can see after one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// The message's answer: `Ok(value)` (names: the blob) or `Err(())`.
    answer: Option<Result<Vec<u8>, ()>>,
    /// Eventq buffers returned, in order.
    events: Vec<(u32, EventStatus)>,
    /// Per line: `Some(level)` if it drives an output, else whether it is released.
    pins: Vec<Result<bool, bool>>,
}

// ---- the model ----

#[derive(Debug, Clone, Default)]
struct ModelLine {
    direction: Direction,
    value: Option<bool>,
    irq: IrqType,
    held: Option<u32>,
    latched: bool,
}

struct Model {
    lines: Vec<ModelLine>,
    external: Vec<bool>,
    names: Vec<u8>,
}

fn level_active(irq: IrqType, level: bool) -> bool {
    matches!(
        (irq, level),
        (IrqType::LevelHigh, true) | (IrqType::LevelLow, false)
    )
}

fn edge_matches(irq: IrqType, rising: bool) -> bool {
    match irq {
        IrqType::None => false,
        IrqType::EdgeRising | IrqType::LevelHigh => rising,
        IrqType::EdgeFalling | IrqType::LevelLow => !rising,
        IrqType::EdgeBoth => true,
    }
}

impl Model {
    fn new(n: u16) -> Self {
        let mut names = Vec::new();
        for i in 0..n {
            names.extend_from_slice(format!("gpio{i}").as_bytes());
            names.push(0);
        }
        Model {
            lines: vec![ModelLine::default(); usize::from(n)],
            external: vec![false; usize::from(n)],
            names,
        }
    }

    /// Fires a held level buffer whose level is active (an input, or a watched line).
    fn recheck_level(&mut self, line: usize, events: &mut Vec<(u32, EventStatus)>) {
        let l = &mut self.lines[line];
        if l.direction != Direction::Out
            && l.held.is_some()
            && level_active(l.irq, self.external[line])
        {
            events.push((l.held.take().unwrap(), EventStatus::Valid));
        }
    }

    fn message(
        &mut self,
        cmd: Command,
        events: &mut Vec<(u32, EventStatus)>,
    ) -> Result<Vec<u8>, ()> {
        let n = self.lines.len();
        let line_of = |line: u16| -> Result<usize, ()> {
            let l = usize::from(line);
            if l < n { Ok(l) } else { Err(()) }
        };
        match cmd {
            Command::GetLineNames => Ok(self.names.clone()),
            Command::GetDirection { line } => Ok(vec![self.lines[line_of(line)?].direction as u8]),
            Command::GetValue { line } => {
                let i = line_of(line)?;
                let l = &self.lines[i];
                let v = if l.direction == Direction::Out {
                    l.value.unwrap_or(false)
                } else {
                    self.external[i]
                };
                Ok(vec![u8::from(v)])
            }
            Command::SetValue { line, value } => {
                self.lines[line_of(line)?].value = Some(value);
                Ok(vec![0])
            }
            Command::SetDirection { line, direction } => {
                let i = line_of(line)?;
                match direction {
                    Direction::None => {
                        let old = std::mem::take(&mut self.lines[i]);
                        if let Some(t) = old.held {
                            events.push((t, EventStatus::Invalid));
                        }
                    }
                    Direction::Out => {
                        let l = &mut self.lines[i];
                        l.direction = Direction::Out;
                        l.value = Some(l.value.unwrap_or(false));
                    }
                    Direction::In => {
                        self.lines[i].direction = Direction::In;
                        self.recheck_level(i, events);
                    }
                }
                Ok(vec![0])
            }
            Command::SetIrqType { line, irq } => {
                let i = line_of(line)?;
                let l = &mut self.lines[i];
                if irq == IrqType::None {
                    l.irq = IrqType::None;
                    l.latched = false;
                    if let Some(t) = l.held.take() {
                        events.push((t, EventStatus::Invalid));
                    }
                    return Ok(vec![0]);
                }
                if l.direction == Direction::Out {
                    return Err(());
                }
                if l.irq != irq {
                    l.latched = false;
                }
                l.irq = irq;
                self.recheck_level(i, events);
                Ok(vec![0])
            }
        }
    }

    fn queue(&mut self, line: u16, token: u32) -> Option<(u32, EventStatus)> {
        let i = usize::from(line);
        let Some(l) = self.lines.get_mut(i) else {
            return Some((token, EventStatus::Invalid));
        };
        if l.irq == IrqType::None || l.held.is_some() || l.direction == Direction::Out {
            return Some((token, EventStatus::Invalid));
        }
        if l.irq.is_level() {
            if level_active(l.irq, self.external[i]) {
                return Some((token, EventStatus::Valid));
            }
        } else if l.latched {
            l.latched = false;
            return Some((token, EventStatus::Valid));
        }
        l.held = Some(token);
        None
    }

    fn external(&mut self, line: u16, level: bool, events: &mut Vec<(u32, EventStatus)>) {
        let i = usize::from(line);
        if self.external[i] == level {
            return;
        }
        self.external[i] = level;
        let l = &mut self.lines[i];
        if l.direction == Direction::Out || !edge_matches(l.irq, level) {
            return;
        }
        match l.held.take() {
            Some(t) => events.push((t, EventStatus::Valid)),
            None if !l.irq.is_level() => l.latched = true,
            None => {}
        }
    }

    fn reset(&mut self) {
        for l in &mut self.lines {
            *l = ModelLine::default();
        }
    }

    fn pins(&self) -> Vec<Result<bool, bool>> {
        self.lines
            .iter()
            .map(|l| {
                if l.direction == Direction::Out {
                    Ok(l.value.unwrap_or(false))
                } else {
                    Err(l.direction == Direction::None && l.irq == IrqType::None)
                }
            })
            .collect()
    }
}

// ---- the implementation ----

fn pins_of(host: &HostState) -> Vec<Result<bool, bool>> {
    host.configs
        .iter()
        .map(|c| {
            if c.direction == Direction::Out {
                Ok(c.output)
            } else {
                Err(c.is_released())
            }
        })
        .collect()
}

// ---- strategies ----

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::None),
        Just(Direction::Out),
        Just(Direction::In)
    ]
}

fn irq() -> impl Strategy<Value = IrqType> {
    prop_oneof![
        Just(IrqType::None),
        Just(IrqType::EdgeRising),
        Just(IrqType::EdgeFalling),
        Just(IrqType::EdgeBoth),
        Just(IrqType::LevelHigh),
        Just(IrqType::LevelLow),
    ]
}

fn op(n: u16) -> impl Strategy<Value = Op> {
    // Mostly valid lines, sometimes one past the end or far out.
    let line = prop_oneof![8 => 0..n, 1 => Just(n), 1 => any::<u16>()];
    let valid = 0..n;
    prop_oneof![
        1 => Just(Op::Message(Command::GetLineNames)),
        2 => line.clone().prop_map(|line| Op::Message(Command::GetDirection { line })),
        3 => (line.clone(), direction())
            .prop_map(|(line, direction)| Op::Message(Command::SetDirection { line, direction })),
        2 => line.clone().prop_map(|line| Op::Message(Command::GetValue { line })),
        3 => (line.clone(), any::<bool>())
            .prop_map(|(line, value)| Op::Message(Command::SetValue { line, value })),
        4 => (line.clone(), irq())
            .prop_map(|(line, irq)| Op::Message(Command::SetIrqType { line, irq })),
        4 => line.prop_map(Op::QueueBuffer),
        5 => (valid, any::<bool>()).prop_map(|(l, v)| Op::External(l, v)),
        1 => Just(Op::Reset),
    ]
}

fn scenario() -> impl Strategy<Value = (u16, Vec<Op>)> {
    (1u16..6).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 0..80)))
}

/// `PROPTEST_CASES` if set (e.g. for a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(1000),
        // Failures are pinned as named tests, not in a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn lines_and_interrupts_behave_as_the_spec_says((n, ops) in scenario()) {
        let mut model = Model::new(n);
        let (host, pins) = TestHost::new(n);
        let mut dev: GpioDevice<TestHost, u32> = GpioDevice::new(host).unwrap();
        let mut token = 0u32;
        for (step, op) in ops.iter().enumerate() {
            let mut want = Seen { answer: None, events: Vec::new(), pins: Vec::new() };
            let mut got = want.clone();
            match *op {
                Op::Message(cmd) => {
                    want.answer = Some(model.message(cmd, &mut want.events));
                    let events = &mut got.events;
                    let r = dev.execute(cmd, &mut |t, s| events.push((t, s)));
                    got.answer = Some(match r {
                        Ok(Response::Value(v)) => Ok(vec![v]),
                        Ok(Response::Names(b)) => Ok(b.to_vec()),
                        Err(_) => Err(()),
                    });
                }
                Op::QueueBuffer(line) => {
                    token += 1;
                    want.events.extend(model.queue(line, token));
                    got.events.extend(dev.queue_event(line, token));
                }
                Op::External(line, level) => {
                    model.external(line, level, &mut want.events);
                    // The host sees the change; the device reads its edges as the daemon's
                    // worker does when the host descriptor becomes readable.
                    pins.borrow_mut().set_external(line, level);
                    let events = &mut got.events;
                    dev.poll_host(&mut |t, s| events.push((t, s))).unwrap();
                }
                Op::Reset => {
                    model.reset();
                    dev.reset().unwrap();
                }
            }
            want.pins = model.pins();
            got.pins = pins_of(&pins.borrow());
            prop_assert_eq!(&got, &want, "step {}: {:?}", step, op);
        }
    }
}
