//! virtio-gpio wire formats (virtio spec, device type 41; `include/uapi/linux/virtio_gpio.h`).
//!
//! Every parser here is a pure function over bytes the guest controls: it checks the length
//! first and never panics.

/// Feature bit: the device supports interrupts through the eventq.
pub const VIRTIO_GPIO_F_IRQ: u32 = 0;

/// Size of the config space: `{ le16 ngpio; u8 padding[2]; le32 gpio_names_size }`.
pub const CONFIG_SIZE: usize = 8;
/// Size of a requestq request: `{ le16 type; le16 gpio; le32 value }`.
pub const REQUEST_SIZE: usize = 8;
/// Size of a requestq response other than `GET_LINE_NAMES`: `{ u8 status; u8 value }`.
pub const RESPONSE_SIZE: usize = 2;
/// Size of an eventq request: `{ le16 gpio }`.
pub const EVENT_REQUEST_SIZE: usize = 2;
/// Size of an eventq response: `{ u8 status }`. The used length is always exactly this.
pub const EVENT_RESPONSE_SIZE: usize = 1;

/// Requestq message types.
pub mod msg_type {
    /// Read the line names blob.
    pub const GET_LINE_NAMES: u16 = 1;
    /// Read a line's direction.
    pub const GET_DIRECTION: u16 = 2;
    /// Set a line's direction.
    pub const SET_DIRECTION: u16 = 3;
    /// Read a line's value.
    pub const GET_VALUE: u16 = 4;
    /// Set an output line's value.
    pub const SET_VALUE: u16 = 5;
    /// Set a line's interrupt type.
    pub const SET_IRQ_TYPE: u16 = 6;
}

/// The device's config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of lines; never 0 (Linux refuses to probe such a device).
    pub ngpio: u16,
    /// Size of the `GET_LINE_NAMES` blob; 0 when no line has a name.
    pub names_size: u32,
}

impl Config {
    /// The little-endian config space bytes.
    pub fn to_bytes(&self) -> [u8; CONFIG_SIZE] {
        let [n0, n1] = self.ngpio.to_le_bytes();
        let [s0, s1, s2, s3] = self.names_size.to_le_bytes();
        [n0, n1, 0, 0, s0, s1, s2, s3]
    }
}

/// The part of `space` a frontend asked for with `offset` and `size`, clipped to the space.
///
/// Never panics: an offset past the end gives an empty slice, a size past the end is cut.
pub fn bounded_read(space: &[u8], offset: u32, size: u32) -> &[u8] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    let tail = space.get(start..).unwrap_or_default();
    tail.get(..len).unwrap_or(tail)
}

/// Response status of a requestq message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Failure; the value byte is meaningless.
    Err = 1,
}

/// Status of a returned eventq buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventStatus {
    /// Returned without an interrupt (type set to NONE, or no type at all).
    Invalid = 0,
    /// The interrupt fired; the line is masked until the driver queues a buffer again.
    Valid = 1,
}

/// A line's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Direction {
    /// Not in use: the line is released and holds no state.
    #[default]
    None = 0,
    /// Output.
    Out = 1,
    /// Input.
    In = 2,
}

impl TryFrom<u32> for Direction {
    type Error = RequestError;
    fn try_from(v: u32) -> Result<Self, RequestError> {
        match v {
            0 => Ok(Self::None),
            1 => Ok(Self::Out),
            2 => Ok(Self::In),
            other => Err(RequestError::BadDirection(other)),
        }
    }
}

/// A line's interrupt type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum IrqType {
    /// No interrupt.
    #[default]
    None = 0,
    /// Rising edge.
    EdgeRising = 1,
    /// Falling edge.
    EdgeFalling = 2,
    /// Both edges.
    EdgeBoth = 3,
    /// High level.
    LevelHigh = 4,
    /// Low level.
    LevelLow = 8,
}

impl TryFrom<u32> for IrqType {
    type Error = RequestError;
    fn try_from(v: u32) -> Result<Self, RequestError> {
        match v {
            0 => Ok(Self::None),
            1 => Ok(Self::EdgeRising),
            2 => Ok(Self::EdgeFalling),
            3 => Ok(Self::EdgeBoth),
            4 => Ok(Self::LevelHigh),
            8 => Ok(Self::LevelLow),
            other => Err(RequestError::BadIrqType(other)),
        }
    }
}

impl IrqType {
    /// Whether this is a level type (not latched, re-notified while active).
    pub fn is_level(self) -> bool {
        matches!(self, Self::LevelHigh | Self::LevelLow)
    }
}

/// A well-formed requestq message. The line number is not range-checked here: that needs
/// the device's `ngpio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `GET_LINE_NAMES` (the `gpio` and `value` fields are ignored).
    GetLineNames,
    /// `GET_DIRECTION`.
    GetDirection {
        /// Line number.
        line: u16,
    },
    /// `SET_DIRECTION`.
    SetDirection {
        /// Line number.
        line: u16,
        /// New direction.
        direction: Direction,
    },
    /// `GET_VALUE`.
    GetValue {
        /// Line number.
        line: u16,
    },
    /// `SET_VALUE`.
    SetValue {
        /// Line number.
        line: u16,
        /// New output level.
        value: bool,
    },
    /// `SET_IRQ_TYPE`.
    SetIrqType {
        /// Line number.
        line: u16,
        /// New interrupt type.
        irq: IrqType,
    },
}

impl Command {
    /// The exact size of the device-writable response buffer this command needs.
    pub fn response_len(&self, names_size: u32) -> usize {
        match self {
            Self::GetLineNames => usize::try_from(names_size)
                .ok()
                .and_then(|n| n.checked_add(1))
                .unwrap_or(usize::MAX),
            _ => RESPONSE_SIZE,
        }
    }
}

/// Why a requestq message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The device-readable part of the chain is not exactly one request.
    #[error("request is {0} bytes, expected {REQUEST_SIZE}")]
    BadLength(usize),
    /// Unknown message type.
    #[error("unknown message type {0}")]
    UnknownType(u16),
    /// `SET_DIRECTION` with a value that is not a direction.
    #[error("invalid direction {0}")]
    BadDirection(u32),
    /// `SET_VALUE` with a value other than 0 or 1.
    #[error("invalid line value {0}")]
    BadValue(u32),
    /// `SET_IRQ_TYPE` with a value that is not an interrupt type.
    #[error("invalid interrupt type {0}")]
    BadIrqType(u32),
}

/// Parses one requestq message.
pub fn parse_request(bytes: &[u8]) -> Result<Command, RequestError> {
    let &[t0, t1, g0, g1, v0, v1, v2, v3] = bytes else {
        return Err(RequestError::BadLength(bytes.len()));
    };
    let line = u16::from_le_bytes([g0, g1]);
    let value = u32::from_le_bytes([v0, v1, v2, v3]);
    match u16::from_le_bytes([t0, t1]) {
        msg_type::GET_LINE_NAMES => Ok(Command::GetLineNames),
        msg_type::GET_DIRECTION => Ok(Command::GetDirection { line }),
        msg_type::SET_DIRECTION => Ok(Command::SetDirection {
            line,
            direction: Direction::try_from(value)?,
        }),
        msg_type::GET_VALUE => Ok(Command::GetValue { line }),
        msg_type::SET_VALUE => match value {
            0 | 1 => Ok(Command::SetValue {
                line,
                value: value == 1,
            }),
            other => Err(RequestError::BadValue(other)),
        },
        msg_type::SET_IRQ_TYPE => Ok(Command::SetIrqType {
            line,
            irq: IrqType::try_from(value)?,
        }),
        other => Err(RequestError::UnknownType(other)),
    }
}

/// Encodes a requestq message (used by tests and test frontends).
pub fn encode_request(msg_type: u16, line: u16, value: u32) -> [u8; REQUEST_SIZE] {
    let [t0, t1] = msg_type.to_le_bytes();
    let [g0, g1] = line.to_le_bytes();
    let [v0, v1, v2, v3] = value.to_le_bytes();
    [t0, t1, g0, g1, v0, v1, v2, v3]
}

/// A two-byte response `{ status, value }`.
pub fn encode_response(status: Status, value: u8) -> [u8; RESPONSE_SIZE] {
    [status as u8, value]
}

/// Why an eventq buffer was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventRequestError {
    /// The device-readable part of the chain is not exactly `{ le16 gpio }`.
    #[error("eventq request is {0} bytes, expected {EVENT_REQUEST_SIZE}")]
    BadLength(usize),
}

/// Parses an eventq request: the line the driver unmasks.
pub fn parse_event_request(bytes: &[u8]) -> Result<u16, EventRequestError> {
    let &[g0, g1] = bytes else {
        return Err(EventRequestError::BadLength(bytes.len()));
    };
    Ok(u16::from_le_bytes([g0, g1]))
}

#[cfg(test)]
mod tests;
