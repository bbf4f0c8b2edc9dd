//! What every host chip's operations fail with, shared by the Linux and simulated chips
//! (the error type of their `GpioHost` implementation).

use std::io;
use std::path::PathBuf;

/// A host failure on one operation.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The line is not requested (it has no direction and no interrupt type).
    #[error("line {0} is not in use")]
    NotRequested(u16),
    /// The character device refused an operation.
    #[error("{chip}: line {line}: cannot {op}")]
    Line {
        /// The chip.
        chip: PathBuf,
        /// The line.
        line: u16,
        /// What was attempted.
        op: &'static str,
        /// The uAPI error.
        #[source]
        source: gpiocdev_uapi::Error,
    },
    /// The backend's event descriptor (epoll or eventfd) failed.
    #[error("cannot {op} the host event descriptor")]
    Event {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
