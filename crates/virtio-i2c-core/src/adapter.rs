//! The host side of the bus: one adapter, as the device logic needs it.

use crate::message::{Functionality, Message};
use crate::request::Address;
use crate::smbus::SmbusOp;

/// A host I2C adapter (or a simulated bus).
pub trait I2cAdapter {
    /// The adapter's failure.
    type Error: core::error::Error + 'static;

    /// What the adapter supports. Asked once per group; keep it cheap.
    fn functionality(&self) -> Functionality;

    /// Runs `msgs` as one combined transfer (repeated start between messages).
    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), Self::Error>;

    /// Runs one SMBus transaction; a read fills `read_buf` (its length is the op's read size).
    fn smbus(
        &mut self,
        addr: Address,
        op: &SmbusOp,
        read_buf: &mut [u8],
    ) -> Result<(), Self::Error>;
}
