//! Mapping a group of I2C messages onto the SMBus transaction with the same wire bytes.
//!
//! Guests speak plain I2C messages; SMBus-only adapters (i2c-stub, many PC controllers) only
//! run SMBus transactions. Each accepted shape below produces exactly the bytes the guest
//! asked for; every other shape is refused rather than approximated.

use crate::message::{Functionality as F, Message};
use crate::request::Address;

/// Most data bytes of an I2C block transaction.
pub const I2C_BLOCK_MAX: usize = 32;

/// One SMBus transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmbusOp {
    /// Quick: address and R/W bit only.
    Quick {
        /// The R/W bit.
        read: bool,
    },
    /// Receive Byte: read one byte.
    ReceiveByte,
    /// Send Byte.
    SendByte(u8),
    /// Read Byte Data: write `cmd`, repeated start, read one byte.
    ReadByteData {
        /// Command (register).
        cmd: u8,
    },
    /// Write Byte Data: write `cmd`, `value`.
    WriteByteData {
        /// Command (register).
        cmd: u8,
        /// The byte.
        value: u8,
    },
    /// Read Word Data: write `cmd`, repeated start, read low then high byte.
    ReadWordData {
        /// Command (register).
        cmd: u8,
    },
    /// Write Word Data: write `cmd`, low byte, high byte.
    WriteWordData {
        /// Command (register).
        cmd: u8,
        /// The word.
        value: u16,
    },
    /// Process Call: write `cmd`, low, high; repeated start; read low, high.
    ProcessCall {
        /// Command (register).
        cmd: u8,
        /// The word sent.
        value: u16,
    },
    /// I2C block read: write `cmd`, repeated start, read `len` bytes (1..=32).
    ReadI2cBlock {
        /// Command (register).
        cmd: u8,
        /// Bytes to read.
        len: u8,
    },
    /// I2C block write: write `cmd` then `len` bytes (1..=32) of `data`.
    WriteI2cBlock {
        /// Command (register).
        cmd: u8,
        /// Bytes to write.
        len: u8,
        /// The bytes (only the first `len` are sent).
        data: [u8; I2C_BLOCK_MAX],
    },
}

impl SmbusOp {
    /// How many bytes the transaction reads back.
    pub fn read_len(&self) -> usize {
        match self {
            SmbusOp::ReceiveByte | SmbusOp::ReadByteData { .. } => 1,
            SmbusOp::ReadWordData { .. } | SmbusOp::ProcessCall { .. } => 2,
            SmbusOp::ReadI2cBlock { len, .. } => usize::from(*len),
            _ => 0,
        }
    }

    /// The functionality bit the adapter must advertise.
    pub fn required_functionality(&self) -> u64 {
        match self {
            SmbusOp::Quick { .. } => F::SMBUS_QUICK,
            SmbusOp::ReceiveByte => F::SMBUS_READ_BYTE,
            SmbusOp::SendByte(_) => F::SMBUS_WRITE_BYTE,
            SmbusOp::ReadByteData { .. } => F::SMBUS_READ_BYTE_DATA,
            SmbusOp::WriteByteData { .. } => F::SMBUS_WRITE_BYTE_DATA,
            SmbusOp::ReadWordData { .. } => F::SMBUS_READ_WORD_DATA,
            SmbusOp::WriteWordData { .. } => F::SMBUS_WRITE_WORD_DATA,
            SmbusOp::ProcessCall { .. } => F::SMBUS_PROC_CALL,
            SmbusOp::ReadI2cBlock { .. } => F::SMBUS_READ_I2C_BLOCK,
            SmbusOp::WriteI2cBlock { .. } => F::SMBUS_WRITE_I2C_BLOCK,
        }
    }
}

/// Why a group has no SMBus equivalent on this adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SmbusError {
    /// No SMBus transaction puts these bytes on the wire.
    #[error("no SMBus transaction has this shape")]
    NoEquivalent,
    /// The messages of one transaction address different devices.
    #[error("messages address different devices")]
    MixedAddresses,
    /// The equivalent transaction exists but the adapter does not advertise it.
    #[error("adapter lacks SMBus functionality {0:#x}")]
    NotAdvertised(u64),
}

fn block(cmd: u8, bytes: &[u8]) -> Option<SmbusOp> {
    let len = u8::try_from(bytes.len()).ok()?;
    if bytes.is_empty() || bytes.len() > I2C_BLOCK_MAX {
        return None;
    }
    let mut data = [0u8; I2C_BLOCK_MAX];
    data.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(SmbusOp::WriteI2cBlock { cmd, len, data })
}

/// The candidate transactions for a group, preferred first. Pure.
fn candidates(msgs: &[Message<'_>]) -> [Option<SmbusOp>; 2] {
    match msgs {
        [m] => match (m.read, &*m.buf) {
            (read, []) => [Some(SmbusOp::Quick { read }), None],
            (true, [_]) => [Some(SmbusOp::ReceiveByte), None],
            (false, [b]) => [Some(SmbusOp::SendByte(*b)), None],
            (false, [cmd, value]) => [
                Some(SmbusOp::WriteByteData {
                    cmd: *cmd,
                    value: *value,
                }),
                block(*cmd, &[*value]),
            ],
            (false, [cmd, lo, hi]) => [
                Some(SmbusOp::WriteWordData {
                    cmd: *cmd,
                    value: u16::from_le_bytes([*lo, *hi]),
                }),
                block(*cmd, &[*lo, *hi]),
            ],
            (false, [cmd, rest @ ..]) => [block(*cmd, rest), None],
            _ => [None, None],
        },
        [w, r] if !w.read && r.read => match (&*w.buf, r.buf.len()) {
            ([cmd], 1) => [
                Some(SmbusOp::ReadByteData { cmd: *cmd }),
                Some(SmbusOp::ReadI2cBlock { cmd: *cmd, len: 1 }),
            ],
            ([cmd], 2) => [
                Some(SmbusOp::ReadWordData { cmd: *cmd }),
                Some(SmbusOp::ReadI2cBlock { cmd: *cmd, len: 2 }),
            ],
            ([cmd], n @ 3..=I2C_BLOCK_MAX) => [
                u8::try_from(n)
                    .ok()
                    .map(|len| SmbusOp::ReadI2cBlock { cmd: *cmd, len }),
                None,
            ],
            ([cmd, lo, hi], 2) => [
                Some(SmbusOp::ProcessCall {
                    cmd: *cmd,
                    value: u16::from_le_bytes([*lo, *hi]),
                }),
                None,
            ],
            _ => [None, None],
        },
        _ => [None, None],
    }
}

/// Chooses the SMBus transaction for a group on an adapter with `funcs`. Pure.
pub fn plan(msgs: &[Message<'_>], funcs: F) -> Result<(Address, SmbusOp), SmbusError> {
    let addr = match msgs {
        [first, rest @ ..] => {
            if rest.iter().any(|m| m.addr != first.addr) {
                return Err(SmbusError::MixedAddresses);
            }
            first.addr
        }
        [] => return Err(SmbusError::NoEquivalent),
    };
    let mut missing = None;
    for op in candidates(msgs).into_iter().flatten() {
        let need = op.required_functionality();
        if funcs.has(need) {
            return Ok((addr, op));
        }
        missing.get_or_insert(need);
    }
    Err(missing.map_or(SmbusError::NoEquivalent, SmbusError::NotAdvertised))
}

#[cfg(test)]
mod tests;
