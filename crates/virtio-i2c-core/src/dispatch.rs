//! The dispatch policy: how one group runs on one adapter.

use crate::adapter::I2cAdapter;
use crate::message::{Functionality, Message};
use crate::smbus::{SmbusError, plan};

/// Why a group could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError<E: core::error::Error + 'static> {
    /// The adapter cannot express this group.
    #[error("not supported by the adapter")]
    Unsupported(#[source] SmbusError),
    /// The adapter tried and failed (e.g. no acknowledge).
    #[error("transfer failed")]
    Adapter(#[source] E),
}

/// Runs one group on `adapter`: as one combined transfer on an I2C adapter, else as the
/// SMBus transaction with exactly the same bytes on the wire.
pub fn execute<A: I2cAdapter + ?Sized>(
    adapter: &mut A,
    msgs: &mut [Message<'_>],
) -> Result<(), ExecError<A::Error>> {
    let funcs = adapter.functionality();
    let has_zero_len = msgs.iter().any(|m| m.buf.is_empty());
    if funcs.has(Functionality::I2C) && (!has_zero_len || funcs.has(Functionality::SMBUS_QUICK)) {
        return adapter.transfer(msgs).map_err(ExecError::Adapter);
    }
    let (addr, op) = plan(msgs, funcs).map_err(ExecError::Unsupported)?;
    let read_buf: &mut [u8] = match msgs.iter_mut().rev().find(|m| m.read) {
        Some(m) => m.buf,
        None => &mut [],
    };
    adapter
        .smbus(addr, &op, read_buf)
        .map_err(ExecError::Adapter)
}

#[cfg(test)]
mod tests;
