//! What every host adapter's transfers fail with, shared by the Linux and simulated adapters
//! (the error type of their `I2cAdapter` implementation).

use std::io;

use virtio_i2c_core::Address;

/// A host adapter's failure.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The ioctl failed (e.g. ENXIO: no acknowledge).
    #[error("the adapter refused the transfer")]
    Io(#[from] io::Error),
    /// Nothing answers at the address (simulated adapter).
    #[error("no device at {0}")]
    NoDevice(Address),
}
