//! Unit tests of the parent module (kept out of the production file).

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
