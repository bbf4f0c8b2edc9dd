//! Command line (drop-in compatible with rust-vmm's vhost-device-gpio) and its validation.

use std::num::NonZeroU16;

use clap::Parser;
use vhost_device_common::args::{CapabilitiesArgs, SandboxArgs, SocketArgs, SocketArgsError};
use vhost_device_common::listener::SocketConfig;

pub use crate::host::DeviceSpec;

/// vhost-user backend for virtio-gpio: gives guests the host's GPIO chips (or simulated
/// ones) over vhost-user sockets.
///
/// vhost-device-gpio listens on one or more Unix sockets and serves one virtio-gpio device
/// per socket to the VMM that connects (tested with QEMU's vhost-user-gpio-pci); the guest
/// uses Linux's stock gpio-virtio driver. Each device is a host chip, /dev/gpiochipN, or a
/// simulated chip whose lines are wired in pairs (0-1, 2-3, ...), so values and interrupts
/// can be tested without hardware.
///
/// A host line is requested (consumer "vhost-device-gpio") when the guest gives it a
/// direction or an interrupt type, and released on direction NONE; every new connection
/// starts with all lines released. Edge and level interrupts are supported on host and
/// simulated chips.
///
/// Bad options, a count mismatch, a duplicate chip or a missing chip make the daemon exit
/// non-zero with one line before any socket is bound. A disconnecting frontend leaves the
/// socket listening for the next one; SIGTERM/SIGINT exit 0 and remove the socket files.
/// RUST_LOG sets the log level (default info).
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "vhost-device-gpio", version)]
pub struct Args {
    #[command(flatten)]
    pub sockets: SocketArgs,

    #[command(flatten)]
    pub capabilities: CapabilitiesArgs,

    /// Log every message the guest sends and every interrupt it gets, one line each.
    ///
    /// Each request with the line's name and its answer, e.g. SET_VALUE 3 (sim-3) 1 -> OK,
    /// and each interrupt buffer the event queue returns (IRQ 1 (sim-1) edge-rising delivered,
    /// or returned INVALID). The lines go to the log
    /// (stderr) at info level under the target vhost_device_trace, whatever RUST_LOG says.
    /// Off by default: it costs one branch per request when off.
    #[arg(long = "trace")]
    pub trace: bool,

    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// GPIO devices, one per socket, separated by ':'.
    ///
    /// N is the host chip /dev/gpiochipN; sN is a simulated chip with N lines (1 to 65535)
    /// named sim-0 ... sim-(N-1) and wired in pairs (0-1, 2-3, ...). There must be as many
    /// entries as --socket-count; a host chip may appear once. Example: -c 2 -l 0:s16
    /// serves /dev/gpiochip0 on socket 0 and a 16-line simulated chip on socket 1.
    #[arg(short = 'l', long = "device-list", value_name = "[s]N[:[s]N...]")]
    pub device_list: String,
}

/// A validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub sockets: SocketConfig,
    /// The device served on each socket, in socket order.
    pub devices: Vec<DeviceSpec>,
    /// `--trace`.
    pub trace: bool,
}

/// Why the command line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Socket options.
    #[error(transparent)]
    Sockets(#[from] SocketArgsError),
    /// An entry of `--device-list` is neither `N` nor `sN`.
    #[error(
        "invalid device-list entry {0:?}: expected N (/dev/gpiochipN) or sN (simulated, N lines, 1 to 65535)"
    )]
    BadEntry(String),
    /// An entry's number is out of range.
    #[error(
        "invalid device-list entry {entry:?}: the number is out of range (sN: 1 to 65535 lines)"
    )]
    BadNumber {
        /// The entry.
        entry: String,
        /// Why the number was refused.
        #[source]
        source: std::num::ParseIntError,
    },
    /// One entry per socket is required.
    #[error("--device-list has {devices} entries but --socket-count is {sockets}")]
    CountMismatch {
        /// Entries in the list.
        devices: usize,
        /// Sockets requested.
        sockets: usize,
    },
    /// The same host chip cannot serve two guests.
    #[error("/dev/gpiochip{0} appears more than once in --device-list")]
    DuplicateChip(u32),
}

fn parse_entry(entry: &str) -> Result<DeviceSpec, ConfigError> {
    let digits = entry.strip_prefix('s').unwrap_or(entry);
    // `str::parse` accepts a leading '+'; only plain digits are meant here.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::BadEntry(entry.to_owned()));
    }
    let bad = |source| ConfigError::BadNumber {
        entry: entry.to_owned(),
        source,
    };
    if entry.starts_with('s') {
        digits
            .parse::<NonZeroU16>()
            .map(DeviceSpec::Simulated)
            .map_err(bad)
    } else {
        digits.parse::<u32>().map(DeviceSpec::Chip).map_err(bad)
    }
}

/// Parses `--device-list`.
pub fn parse_device_list(list: &str) -> Result<Vec<DeviceSpec>, ConfigError> {
    let devices = list
        .split(':')
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, d) in devices.iter().enumerate() {
        if let DeviceSpec::Chip(n) = d
            && devices.iter().skip(i.saturating_add(1)).any(|o| o == d)
        {
            return Err(ConfigError::DuplicateChip(*n));
        }
    }
    Ok(devices)
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, ConfigError> {
        let sockets = SocketConfig::try_from(&args.sockets)?;
        let devices = parse_device_list(&args.device_list)?;
        if devices.len() != sockets.count() {
            return Err(ConfigError::CountMismatch {
                devices: devices.len(),
                sockets: sockets.count(),
            });
        }
        Ok(Self {
            sockets,
            devices,
            trace: args.trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let a =
            Args::try_parse_from(std::iter::once("vhost-device-gpio").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        Config::try_from(a).map_err(|e| e.to_string())
    }

    fn sim(n: u16) -> DeviceSpec {
        DeviceSpec::Simulated(NonZeroU16::new(n).unwrap())
    }

    #[test]
    fn single_simulated_chip() {
        let c = config(&["-s", "/tmp/g.sock", "-l", "s8"]).unwrap();
        assert_eq!(c.devices, vec![sim(8)]);
        assert_eq!(c.sockets.count(), 1);
    }

    #[test]
    fn several_devices_one_per_socket() {
        let c = config(&["-s", "/tmp/g.sock", "-c", "3", "-l", "s4:0:s65535"]).unwrap();
        assert_eq!(c.devices, vec![sim(4), DeviceSpec::Chip(0), sim(65535)]);
    }

    #[test]
    fn long_options_and_fd() {
        let c = config(&["--fd", "5", "--device-list", "3"]).unwrap();
        assert_eq!(c.devices, vec![DeviceSpec::Chip(3)]);
        assert_eq!(c.sockets, SocketConfig::Fd(5));
    }

    #[test]
    fn count_must_match() {
        let e = config(&["-s", "/tmp/g", "-c", "2", "-l", "s8"]).unwrap_err();
        assert!(e.contains("1 entries but --socket-count is 2"), "{e}");
        assert!(config(&["-s", "/tmp/g", "-l", "s8:s8"]).is_err());
    }

    #[test]
    fn duplicate_chip_rejected_but_simulators_may_repeat() {
        let e = config(&["-s", "/tmp/g", "-c", "3", "-l", "1:s2:1"]).unwrap_err();
        assert!(e.contains("gpiochip1 appears more than once"), "{e}");
        assert!(config(&["-s", "/tmp/g", "-c", "2", "-l", "s2:s2"]).is_ok());
    }

    #[test]
    fn bad_entries() {
        for bad in [
            "",
            "s",
            "s0",
            "s65536",
            "x1",
            "-1",
            "+1",
            "s+1",
            "1:",
            ":1",
            "1::2",
            "s 1",
            "ss1",
            "4294967296",
        ] {
            let e = config(&["-s", "/tmp/g", "-l", bad]);
            assert!(e.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn device_list_is_required() {
        assert!(config(&["-s", "/tmp/g"]).is_err());
    }
}
