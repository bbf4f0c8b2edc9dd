//! `--trace`: one line per FAIL_NEXT group, as `i2ctransfer` arguments with the result, e.g.
//! `w1@0x50 0x00 r2@0x50 -> 0xde 0xad` or `w2@0x51 0x00 0x01 -> ERR (no device)`.
//!
//! Formatting happens only when tracing is on; the request path pays one branch otherwise.

use std::fmt;

use log::info;
use vhost_device_common::logging::TRACE;
use virtio_i2c_core::{ExecError, Message};

use crate::host::RouteError;
use crate::host::error::AdapterError;

/// Data bytes shown per message; longer messages end in `...`.
const SHOWN_BYTES: usize = 16;

fn bytes(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    for (i, b) in data.iter().take(SHOWN_BYTES).enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{b:#04x}")?;
    }
    if data.len() > SHOWN_BYTES {
        f.write_str(" ...")?;
    }
    Ok(())
}

/// The group's messages in `i2ctransfer` syntax.
struct Transfer<'a, 'b>(&'a [Message<'b>]);

impl fmt::Display for Transfer<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let dir = if m.read { 'r' } else { 'w' };
            write!(f, "{dir}{}@{:#04x}", m.buf.len(), m.addr.get())?;
            if !m.read && !m.buf.is_empty() {
                f.write_str(" ")?;
                bytes(f, m.buf)?;
            }
        }
        Ok(())
    }
}

/// What came back: the read bytes, `OK`, or `ERR (why)`.
struct Outcome<'a, 'b>(&'a [Message<'b>], &'a Result<(), RouteError>);

fn reason(e: &RouteError) -> String {
    match e {
        RouteError::Unrouted(_)
        | RouteError::Exec(ExecError::Adapter(AdapterError::NoDevice(_))) => "no device".to_owned(),
        RouteError::Exec(ExecError::Adapter(AdapterError::Io(io)))
            if matches!(io.raw_os_error(), Some(libc::ENXIO | libc::EREMOTEIO)) =>
        {
            "no acknowledge".to_owned()
        }
        RouteError::Exec(ExecError::Adapter(AdapterError::Io(io))) => io.to_string(),
        RouteError::Exec(ExecError::Unsupported(e)) => format!("not supported: {e}"),
        RouteError::SpansAdapters => "group spans adapters".to_owned(),
    }
}

impl fmt::Display for Outcome<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Ok(()) => {
                let mut reads = self.0.iter().filter(|m| m.read && !m.buf.is_empty());
                match reads.next() {
                    None => f.write_str("OK"),
                    Some(first) => {
                        bytes(f, first.buf)?;
                        for m in reads {
                            f.write_str(" ")?;
                            bytes(f, m.buf)?;
                        }
                        Ok(())
                    }
                }
            }
            Err(e) => write!(f, "ERR ({})", reason(e)),
        }
    }
}

/// Traces a group that ran (or was refused by the router).
pub fn group(msgs: &[Message<'_>], result: &Result<(), RouteError>) {
    info!(target: TRACE, "{} -> {}", Transfer(msgs), Outcome(msgs, result));
}

/// Traces a group that failed before it could run (a malformed request in it).
pub fn malformed(requests: usize) {
    info!(target: TRACE, "({requests} requests, malformed) -> ERR (malformed request)");
}
