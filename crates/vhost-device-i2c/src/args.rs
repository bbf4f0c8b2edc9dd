//! Command line, drop-in compatible with rust-vmm's vhost-device-i2c, and its validation.

use std::collections::BTreeMap;

use clap::Parser;
use vhost_device_common::args::{CapabilitiesArgs, SandboxArgs, SocketArgs, SocketArgsError};
use vhost_device_common::listener::SocketConfig;
use virtio_i2c_core::Address;

use crate::host::linux::{AdapterSpec, BusRef};
use crate::host::sim::Model;

/// vhost-user backend for virtio-i2c: gives a guest the host's I2C devices (or simulated
/// ones) over a vhost-user socket.
///
/// vhost-device-i2c listens on one or more Unix sockets and serves a virtio-i2c device to
/// each VMM that connects (tested with QEMU's vhost-user-i2c-pci); the guest uses Linux's
/// stock i2c-virtio driver. The devices on the virtual bus are host devices from
/// --device-list, reached through /dev/i2c-N, and/or simulated devices from --simulate;
/// at least one device is required, and each address may appear once in all.
///
/// Every socket serves the same devices; transfers to one host adapter are serialized.
/// Requests are executed per FAIL_NEXT group: one I2C_RDWR on an I2C-capable adapter, or
/// the SMBus transaction that puts exactly the same bytes on the wire on an SMBus-only
/// adapter (a shape with no equivalent fails). Addresses outside the list fail without
/// touching hardware.
///
/// Bad options or devices make the daemon exit non-zero with one line before any socket is
/// bound. A disconnecting frontend leaves the socket listening for the next one;
/// SIGTERM/SIGINT exit 0 and remove the socket files. RUST_LOG sets the log level (default
/// info).
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "vhost-device-i2c", version)]
pub struct Args {
    #[command(flatten)]
    pub sockets: SocketArgs,

    #[command(flatten)]
    pub capabilities: CapabilitiesArgs,

    /// Log every request group the guest sends, one line each, as i2ctransfer arguments.
    ///
    /// Each FAIL_NEXT group with its result, e.g. w1@0x50 0x00 r2@0x50 -> 0xde 0xad (an
    /// absent address: -> no device). The lines go to the log (stderr) at info level under
    /// the target vhost_device_trace, whatever RUST_LOG says. Off by default: it costs one
    /// branch per request when off.
    #[arg(long = "trace")]
    pub trace: bool,

    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Host devices to serve: BUS:ADDR[:ADDR...][,BUS:ADDR...].
    ///
    /// BUS is N of /dev/i2c-N or the adapter's name (as in
    /// /sys/bus/i2c/devices/i2c-N/name); ADDR is decimal (32 is 0x20, as upstream) or
    /// 0x-prefixed hex, in 0x03..=0x77. Each address may appear once in the whole list and
    /// must not be bound to a host kernel driver. Example: -l 6:32:41,9:37:6.
    #[arg(short = 'l', long = "device-list", value_name = "LIST")]
    pub device_list: Option<String>,

    /// A simulated device on the virtual bus, MODEL@ADDR (repeatable).
    ///
    /// MODEL is 24c02 (a 256-byte EEPROM) or ds1338 (a real-time clock); ADDR as in
    /// --device-list. May be combined with --device-list or replace it. Example:
    /// --simulate 24c02@0x50.
    #[arg(long = "simulate", value_name = "MODEL@ADDR")]
    pub simulate: Vec<String>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub sockets: SocketConfig,
    /// Host adapters and their devices.
    pub adapters: Vec<AdapterSpec>,
    /// Simulated devices.
    pub simulated: Vec<(Model, Address)>,
    /// `--trace`.
    pub trace: bool,
}

/// Why the command line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Socket options.
    #[error(transparent)]
    Sockets(#[from] SocketArgsError),
    /// Nothing to serve.
    #[error("no device: give --device-list and/or --simulate")]
    NoDevices,
    /// A malformed `BUS:ADDR` entry.
    #[error("--device-list: bad entry \"{0}\": expected BUS:ADDR[:ADDR...]")]
    BadEntry(String),
    /// A malformed address.
    #[error("bad I2C address \"{0}\": expected 3..=119 (decimal) or 0x03..=0x77")]
    BadAddress(String),
    /// An address given twice.
    #[error("address {0} is given more than once; each address may appear once")]
    DuplicateAddress(Address),
    /// A malformed `--simulate` value.
    #[error("--simulate \"{0}\": expected MODEL@ADDR, e.g. 24c02@0x50")]
    BadSimulate(String),
    /// An unknown model.
    #[error("--simulate: unknown model \"{0}\" (known: 24c02, ds1338)")]
    UnknownModel(String),
}

fn parse_number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses one address: decimal, or hex with `0x`, within 0x03..=0x77.
pub fn parse_address(s: &str) -> Result<Address, ConfigError> {
    parse_number(s.trim())
        .and_then(|n| u16::try_from(n).ok())
        .and_then(Address::device)
        .ok_or_else(|| ConfigError::BadAddress(s.to_owned()))
}

/// Parses `--device-list`.
pub fn parse_device_list(list: &str) -> Result<Vec<AdapterSpec>, ConfigError> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        let mut parts = entry.split(':');
        let bus = parts
            .next()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ConfigError::BadEntry(entry.to_owned()))?;
        let bus = match bus.parse::<u32>() {
            Ok(n) => BusRef::Number(n),
            Err(_) => BusRef::Name(bus.to_owned()),
        };
        let addrs = parts.map(parse_address).collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(ConfigError::BadEntry(entry.to_owned()));
        }
        out.push(AdapterSpec { bus, addrs });
    }
    Ok(out)
}

/// Parses one `--simulate MODEL@ADDR`.
pub fn parse_simulate(s: &str) -> Result<(Model, Address), ConfigError> {
    let (model, addr) = s
        .split_once('@')
        .ok_or_else(|| ConfigError::BadSimulate(s.to_owned()))?;
    let model = Model::from_name(model.trim())
        .ok_or_else(|| ConfigError::UnknownModel(model.to_owned()))?;
    Ok((model, parse_address(addr)?))
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let sockets = SocketConfig::try_from(&args.sockets)?;
        let adapters = match &args.device_list {
            Some(list) => parse_device_list(list)?,
            None => Vec::new(),
        };
        let simulated = args
            .simulate
            .iter()
            .map(|s| parse_simulate(s))
            .collect::<Result<Vec<_>, _>>()?;
        if adapters.is_empty() && simulated.is_empty() {
            return Err(ConfigError::NoDevices);
        }
        let mut seen = BTreeMap::new();
        let all = adapters
            .iter()
            .flat_map(|a| a.addrs.iter().copied())
            .chain(simulated.iter().map(|(_, a)| *a));
        for addr in all {
            if seen.insert(addr, ()).is_some() {
                return Err(ConfigError::DuplicateAddress(addr));
            }
        }
        Ok(Config {
            sockets,
            adapters,
            simulated,
            trace: args.trace,
        })
    }
}

#[cfg(test)]
mod tests;
