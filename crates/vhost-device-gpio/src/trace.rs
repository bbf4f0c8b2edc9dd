//! `--trace`: one line per guest message and per returned eventq buffer, e.g.
//! `SET_VALUE 3 (sim-3) 1 -> OK`, `GET_VALUE 1 (sim-1) -> 0`,
//! `IRQ 1 (sim-1) edge-rising delivered`, `IRQ 1 (sim-1) returned INVALID`.
//!
//! Formatting happens only when tracing is on; the request path pays one branch otherwise.

use std::fmt;

use log::info;
use vhost_device_common::logging::TRACE;
use vhost_device_common::report::ErrorChain;
use virtio_gpio_core::msg::{Command, Direction, IrqType};
use virtio_gpio_core::{EventStatus, GpioDevice, GpioHost};

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::None => "none",
        Direction::Out => "out",
        Direction::In => "in",
    }
}

fn irq(t: IrqType) -> &'static str {
    match t {
        IrqType::None => "none",
        IrqType::EdgeRising => "edge-rising",
        IrqType::EdgeFalling => "edge-falling",
        IrqType::EdgeBoth => "edge-both",
        IrqType::LevelHigh => "level-high",
        IrqType::LevelLow => "level-low",
    }
}

/// A line and its name: `3 (sim-3)`.
struct Line<'a>(u16, &'a str);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.1)
    }
}

struct Message<'a, H: GpioHost, T>(&'a Command, &'a GpioDevice<H, T>);

impl<H: GpioHost, T> fmt::Display for Message<'_, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = self.1;
        let line = |l: u16| Line(l, dev.line_name(l));
        match *self.0 {
            Command::GetLineNames => f.write_str("GET_LINE_NAMES"),
            Command::GetDirection { line: l } => write!(f, "GET_DIRECTION {}", line(l)),
            Command::SetDirection {
                line: l,
                direction: d,
            } => {
                write!(f, "SET_DIRECTION {} {}", line(l), direction(d))
            }
            Command::GetValue { line: l } => write!(f, "GET_VALUE {}", line(l)),
            Command::SetValue { line: l, value } => {
                write!(f, "SET_VALUE {} {}", line(l), u8::from(value))
            }
            Command::SetIrqType { line: l, irq: t } => {
                write!(f, "SET_IRQ_TYPE {} {}", line(l), irq(t))
            }
        }
    }
}

/// What a message got, once the device's answer is written out.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A value byte (0 for the set commands).
    Value(u8),
    /// The line-name blob, this many bytes.
    Names(usize),
}

/// Traces a well-formed message and what it got.
pub fn request<H: GpioHost, T, E: std::error::Error + 'static>(
    device: &GpioDevice<H, T>,
    command: &Command,
    result: Result<Answer, &E>,
) {
    let message = Message(command, device);
    match (command, result) {
        (Command::GetDirection { .. }, Ok(Answer::Value(v))) => {
            let d = Direction::try_from(u32::from(v)).map_or("?", direction);
            info!(target: TRACE, "{message} -> {d}");
        }
        (Command::GetValue { .. }, Ok(Answer::Value(v))) => {
            info!(target: TRACE, "{message} -> {v}");
        }
        (Command::GetLineNames, Ok(Answer::Names(n))) => {
            info!(target: TRACE, "{message} -> OK ({n} bytes)");
        }
        (_, Ok(_)) => info!(target: TRACE, "{message} -> OK"),
        (_, Err(e)) => info!(target: TRACE, "{message} -> ERR ({})", ErrorChain(e)),
    }
}

/// Traces a message that could not be decoded or answered.
pub fn malformed(error: &(dyn std::error::Error + 'static)) {
    info!(target: TRACE, "(malformed request) -> ERR ({})", ErrorChain(error));
}

/// Traces an eventq buffer that named no valid line.
pub fn malformed_event() {
    info!(target: TRACE, "IRQ (malformed eventq buffer) returned INVALID");
}

/// Traces an eventq buffer returned to the guest.
pub fn event<H: GpioHost, T>(device: &GpioDevice<H, T>, line: u16, status: EventStatus) {
    let l = Line(line, device.line_name(line));
    match status {
        EventStatus::Valid => {
            info!(target: TRACE, "IRQ {l} {} delivered", irq(device.irq_type(line)));
        }
        EventStatus::Invalid => info!(target: TRACE, "IRQ {l} returned INVALID"),
    }
}
