//! The host-devices suite of the guest tests (tests/guest): run inside a QEMU guest next
//! to `vhost-device-i2c` / `vhost-device-gpio`, which serve real kernel devices (i2c-stub,
//! gpio-sim, and the guest's i2c-virtio adapter). This program is the vhost-user frontend: it sends virtio
//! requests the way the Linux drivers do and checks the answers against the kernel
//! device (gpio-sim's sysfs, i2c-stub's registers).
//!
//! Output: one `PASS: name` or `FAIL: name: reason` line per check; exit status 1 if
//! any check failed, 2 on bad usage.

// A test program: its output is its purpose, and the checks index small fixed buffers.
#![allow(
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod connect;
mod gpio;
mod i2c;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Drives a vhost-device daemon inside the test guest and reports PASS/FAIL lines.
#[derive(Parser, Debug)]
#[command(name = "vhost-device-guest-tests", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Test vhost-device-i2c serving an i2c-stub device.
    I2c {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The address the daemon serves (an i2c-stub chip address).
        #[arg(long, value_parser = parse_u8)]
        addr: u8,
        /// An address the daemon does not serve.
        #[arg(long, value_parser = parse_u8)]
        absent: u8,
        /// REG=VAL: a register the test script set through i2c-dev before.
        #[arg(long, value_parser = parse_pair)]
        preset: Vec<(u8, u8)>,
        /// Prefix of the check names.
        #[arg(long, default_value = "host-devices.i2c")]
        prefix: String,
    },
    /// Test vhost-device-i2c on an I2C-capable adapter (I2C_RDWR) with a 24c02 EEPROM.
    I2cRdwr {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The EEPROM's address.
        #[arg(long, value_parser = parse_u8)]
        addr: u8,
        /// ADDR=VAL: an EEPROM byte the test script wrote through i2c-dev before.
        #[arg(long, value_parser = parse_pair)]
        preset: Vec<(u8, u8)>,
        /// Prefix of the check names.
        #[arg(long, default_value = "host-devices.i2c-rdwr")]
        prefix: String,
    },
    /// Test one vhost-device-i2c serving two adapters on two sockets.
    I2cTwoAdapters {
        /// The daemon's first socket.
        #[arg(long)]
        socket0: PathBuf,
        /// The daemon's second socket.
        #[arg(long)]
        socket1: PathBuf,
        /// An i2c-stub chip's address (the SMBus-only adapter).
        #[arg(long, value_parser = parse_u8)]
        smbus_addr: u8,
        /// The 24c02's address (the I2C-capable adapter).
        #[arg(long, value_parser = parse_u8)]
        i2c_addr: u8,
        /// The daemon's pid (its threads' syscalls show a transfer in progress).
        #[arg(long)]
        daemon_pid: u32,
        /// N of the I2C-capable adapter's /dev/i2c-N.
        #[arg(long)]
        i2c_bus: u32,
        /// Prefix of the check names.
        #[arg(long, default_value = "host-devices.i2c-two")]
        prefix: String,
    },
    /// Test vhost-device-gpio serving a gpio-sim chip.
    Gpio {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// /sys/devices/platform/<dev_name>/<chip_name> of the gpio-sim chip.
        #[arg(long)]
        sim_dir: PathBuf,
        /// The line names given to gpio-sim, comma separated, in line order.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Prefix of the check names.
        #[arg(long, default_value = "host-devices.gpio")]
        prefix: String,
    },
    /// Many busy guests at once: one frontend per socket `BASE0` ... `BASE{N-1}`, all
    /// sending checked requests concurrently (I2C: the device at 0x50; GPIO: line 0 of
    /// each socket's chip, driven and read back), then every socket must still answer and
    /// the daemon's descriptors and memory must not have grown.
    Load {
        /// `i2c` or `gpio`.
        #[arg(long)]
        kind: String,
        /// The daemon's socket base (`-s BASE`).
        #[arg(long)]
        socket: String,
        /// How many sockets (`-c N`).
        #[arg(long)]
        count: usize,
        /// How long every guest sends.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// The daemon's pid (its /proc entries are measured).
        #[arg(long)]
        daemon_pid: u32,
        /// Prefix of the check names.
        #[arg(long)]
        prefix: String,
    },
}

fn parse_u8(s: &str) -> Result<u8, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u8::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn parse_pair(s: &str) -> Result<(u8, u8), String> {
    let (a, b) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected REG=VAL"))?;
    Ok((parse_u8(a)?, parse_u8(b)?))
}

/// Collects the check results.
#[derive(Debug, Default)]
pub struct Report {
    prefix: String,
    passed: u32,
    failed: u32,
}

impl Report {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            ..Self::default()
        }
    }

    /// Adds `.part` to the check names, until [`Report::prefix_pop`].
    pub fn prefix_push(&mut self, part: &str) {
        self.prefix.push('.');
        self.prefix.push_str(part);
    }

    /// Undoes the last [`Report::prefix_push`].
    pub fn prefix_pop(&mut self) {
        if let Some(at) = self.prefix.rfind('.') {
            self.prefix.truncate(at);
        }
    }

    /// Records one check: `Ok(())` passes, `Err(reason)` fails.
    pub fn check(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("PASS: {}.{name}", self.prefix);
            }
            Err(reason) => {
                self.failed += 1;
                println!(
                    "FAIL: {}.{name}: {}",
                    self.prefix,
                    reason.replace('\n', " ")
                );
            }
        }
    }
}

/// The `load` command: one check, `busy-guests`, with each guest's throughput on success.
fn run_load(r: &mut Report, kind: &str, socket: &str, count: usize, seconds: u64, pid: u32) {
    use vhost_user_test_frontend::load::{self, Kind, LoadPlan};
    let result = (|| {
        let kind = Kind::parse(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
        let sockets: Vec<PathBuf> = (0..count)
            .map(|i| PathBuf::from(format!("{socket}{i}")))
            .collect();
        let plan = LoadPlan {
            kind,
            batch: 8,
            duration: std::time::Duration::from_secs(seconds),
            reconnect_every: 50,
        };
        let report =
            load::check_busy_guests(pid, &sockets, plan).map_err(|e| load::error_chain(&e))?;
        for g in &report.guests {
            println!(
                "{}: {} requests in {:.1} s ({:.0}/s), {} connections",
                g.socket.display(),
                g.requests,
                g.elapsed.as_secs_f64(),
                g.rate(),
                g.connections
            );
        }
        println!("usage before {:?}, after {:?}", report.before, report.after);
        ensure(report.guests.iter().all(|g| g.requests > 0), || {
            "a guest got no request answered".to_owned()
        })
    })();
    r.check("busy-guests", result);
}

/// `Err` with a message unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let report = match cli.cmd {
        Cmd::I2c {
            socket,
            addr,
            absent,
            preset,
            prefix,
        } => {
            let mut r = Report::new(&prefix);
            i2c::run(&mut r, &socket, addr, absent, &preset);
            r
        }
        Cmd::I2cRdwr {
            socket,
            addr,
            preset,
            prefix,
        } => {
            let mut r = Report::new(&prefix);
            i2c::run_rdwr(&mut r, &socket, addr, &preset);
            r
        }
        Cmd::I2cTwoAdapters {
            socket0,
            socket1,
            smbus_addr,
            i2c_addr,
            daemon_pid,
            i2c_bus,
            prefix,
        } => {
            let mut r = Report::new(&prefix);
            i2c::run_two_adapters(
                &mut r,
                (&socket0, &socket1),
                smbus_addr,
                i2c_addr,
                daemon_pid,
                i2c_bus,
            );
            r
        }
        Cmd::Gpio {
            socket,
            sim_dir,
            names,
            prefix,
        } => {
            let mut r = Report::new(&prefix);
            gpio::run(&mut r, &socket, &sim_dir, &names);
            r
        }
        Cmd::Load {
            kind,
            socket,
            count,
            seconds,
            daemon_pid,
            prefix,
        } => {
            let mut r = Report::new(&prefix);
            run_load(&mut r, &kind, &socket, count, seconds, daemon_pid);
            r
        }
    };
    if report.failed == 0 && report.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
