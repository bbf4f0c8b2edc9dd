//! One message of a transfer, and what an adapter can do: the vocabulary shared by the
//! SMBus mapping, the adapter trait and the dispatch policy.

use crate::request::Address;

/// What an adapter can do, as the bits of Linux's `I2C_FUNCS` word (the numbering is the
/// de-facto standard; nothing here calls Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Functionality(pub u64);

impl Functionality {
    /// Plain I2C transfers with repeated start.
    pub const I2C: u64 = 0x0000_0001;
    /// SMBus Quick.
    pub const SMBUS_QUICK: u64 = 0x0001_0000;
    /// SMBus Receive Byte.
    pub const SMBUS_READ_BYTE: u64 = 0x0002_0000;
    /// SMBus Send Byte.
    pub const SMBUS_WRITE_BYTE: u64 = 0x0004_0000;
    /// SMBus Read Byte Data.
    pub const SMBUS_READ_BYTE_DATA: u64 = 0x0008_0000;
    /// SMBus Write Byte Data.
    pub const SMBUS_WRITE_BYTE_DATA: u64 = 0x0010_0000;
    /// SMBus Read Word Data.
    pub const SMBUS_READ_WORD_DATA: u64 = 0x0020_0000;
    /// SMBus Write Word Data.
    pub const SMBUS_WRITE_WORD_DATA: u64 = 0x0040_0000;
    /// SMBus Process Call.
    pub const SMBUS_PROC_CALL: u64 = 0x0080_0000;
    /// I2C block read (command, then up to 32 bytes).
    pub const SMBUS_READ_I2C_BLOCK: u64 = 0x0400_0000;
    /// I2C block write (command, then up to 32 bytes).
    pub const SMBUS_WRITE_I2C_BLOCK: u64 = 0x0800_0000;

    /// Whether every bit of `bits` is supported.
    pub fn has(self, bits: u64) -> bool {
        self.0 & bits == bits
    }
}

/// One message of a transfer; for a write `buf` holds the bytes to send, for a read it is
/// filled with exactly `buf.len()` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Target address.
    pub addr: Address,
    /// Read or write.
    pub read: bool,
    /// The data.
    pub buf: &'a mut [u8],
}
