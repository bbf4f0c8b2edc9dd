//! Simulated I2C devices, so a backend is useful (and testable) without hardware: the
//! daemon's `--simulate` devices and the bare-metal firmware's bus are this one
//! implementation.
//!
//! - `24c02`: a 256-byte EEPROM as Linux's at24 driver expects it: a one-byte address
//!   pointer, sequential reads that wrap at 256, 8-byte page writes that wrap in the page.
//! - `ds1338`: an RTC as rtc-ds1307 expects a "ds1338": BCD time registers 0x00-0x06 that
//!   tick with the platform's [`Clock`] plus the offset the guest set, control register
//!   0x07 with the oscillator-stop flag, 56 bytes of battery-backed RAM at 0x08-0x3f.
//!
//! No OS calls: time comes from a [`Clock`] the platform supplies (the daemon's is the
//! system clock; a microcontroller's is its RTC or a timer).

use alloc::vec::Vec;

use crate::adapter::I2cAdapter;
use crate::message::{Functionality, Message};
use crate::request::Address;
use crate::smbus::SmbusOp;

/// The platform's wall clock, as the simulated RTC reads it.
pub trait Clock {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    fn now(&self) -> i64;
}

/// Why a simulated transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Nothing answers at the address (the transfer NAKs before any byte moves).
    #[error("no device at {0}")]
    NoDevice(Address),
}

/// A simulated device model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// 24C02 EEPROM.
    Eeprom24c02,
    /// DS1338 real-time clock.
    Ds1338,
}

impl Model {
    /// The model for a name (`24c02`, `ds1338`; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        [Model::Eeprom24c02, Model::Ds1338]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The model's name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Eeprom24c02 => "24c02",
            Model::Ds1338 => "ds1338",
        }
    }
}

/// One simulated device. `host` is the platform clock's reading for this transfer.
#[derive(Debug)]
enum SimDevice {
    Eeprom(Eeprom),
    Rtc(Rtc),
}

impl SimDevice {
    /// Called once at the start of each transfer that addresses the device.
    fn start(&mut self, host: i64) {
        if let SimDevice::Rtc(r) = self {
            r.start(host);
        }
    }

    /// A write message.
    fn write(&mut self, data: &[u8], host: i64) {
        match self {
            SimDevice::Eeprom(e) => e.write(data),
            SimDevice::Rtc(r) => r.write(data, host),
        }
    }

    /// A read message; fills `buf` completely.
    fn read(&mut self, buf: &mut [u8]) {
        match self {
            SimDevice::Eeprom(e) => e.read(buf),
            SimDevice::Rtc(r) => r.read(buf),
        }
    }
}

const EEPROM_SIZE: usize = 256;
const EEPROM_PAGE: u8 = 8;

#[derive(Debug)]
struct Eeprom {
    mem: [u8; EEPROM_SIZE],
    pointer: u8,
}

impl Eeprom {
    fn new() -> Self {
        // An erased EEPROM reads all ones.
        Eeprom {
            mem: [0xff; EEPROM_SIZE],
            pointer: 0,
        }
    }
}

impl Eeprom {
    fn write(&mut self, data: &[u8]) {
        let Some((&word_addr, payload)) = data.split_first() else {
            return; // Zero-length write: an address probe.
        };
        let page = word_addr & !(EEPROM_PAGE - 1);
        let mut offset = word_addr & (EEPROM_PAGE - 1);
        for &b in payload {
            let at = usize::from(page | offset);
            if let Some(cell) = self.mem.get_mut(at) {
                *cell = b;
            }
            offset = offset.wrapping_add(1) & (EEPROM_PAGE - 1);
        }
        self.pointer = page | offset;
    }

    fn read(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self
                .mem
                .get(usize::from(self.pointer))
                .copied()
                .unwrap_or(0xff);
            self.pointer = self.pointer.wrapping_add(1);
        }
    }
}

const RTC_REGS: usize = 64;
const RTC_TIME_REGS: usize = 7;
const RTC_CONTROL: usize = 7;
/// Oscillator-stop flag in the control register.
const DS1338_OSF: u8 = 1 << 5;

#[derive(Debug)]
struct Rtc {
    regs: [u8; RTC_REGS],
    pointer: u8,
    /// Seconds added to the platform clock.
    offset: i64,
    /// Registers as latched at the start of the current transfer.
    latched: [u8; RTC_TIME_REGS],
}

impl Rtc {
    fn new() -> Self {
        let mut regs = [0u8; RTC_REGS];
        // Power-on: the oscillator stopped at some point, so the time is not trusted yet.
        if let Some(c) = regs.get_mut(RTC_CONTROL) {
            *c = DS1338_OSF;
        }
        Rtc {
            regs,
            pointer: 0,
            offset: 0,
            latched: [0; RTC_TIME_REGS],
        }
    }

    /// The time the guest sees, given the platform clock's `host` reading.
    fn now(&self, host: i64) -> i64 {
        host.saturating_add(self.offset)
    }
}

fn bcd(v: u32) -> u8 {
    let tens = (v / 10) % 10;
    let ones = v % 10;
    u8::try_from((tens << 4) | ones).unwrap_or(0)
}

fn from_bcd(b: u8) -> i64 {
    i64::from(b >> 4)
        .saturating_mul(10)
        .saturating_add(i64::from(b & 0x0f))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
// Inputs come from BCD registers (year 2000-2099, month and day below 100).
#[allow(clippy::arithmetic_side_effects)]
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y.saturating_sub(1) } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m.saturating_add(9)).rem_euclid(12);
    let doy = (153i64.saturating_mul(mp).saturating_add(2)) / 5 + d.saturating_sub(1);
    let doe = yoe
        .saturating_mul(365)
        .saturating_add(yoe / 4)
        .saturating_sub(yoe / 100)
        .saturating_add(doy);
    era.saturating_mul(146_097)
        .saturating_add(doe)
        .saturating_sub(719_468)
}

/// (year, month, day) of a day count since 1970-01-01.
// Inputs are day counts derived from a 64-bit second count divided by 86400: far from overflow.
#[allow(clippy::arithmetic_side_effects)]
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era.saturating_mul(400) + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn time_regs(t: i64) -> [u8; RTC_TIME_REGS] {
    let days = t.div_euclid(86_400);
    let secs = u32::try_from(t.rem_euclid(86_400)).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (tm_wday 4); the register holds tm_wday + 1.
    let wday = u32::try_from(days.saturating_add(4).rem_euclid(7)).unwrap_or(0);
    let yy = u32::try_from(y.rem_euclid(100)).unwrap_or(0);
    [
        bcd(secs % 60),
        bcd((secs / 60) % 60),
        bcd(secs / 3600), // 24-hour mode
        bcd(wday.saturating_add(1)),
        bcd(d),
        bcd(m),
        bcd(yy),
    ]
}

fn time_from_regs(r: &[u8; RTC_TIME_REGS]) -> i64 {
    let [s, mi, h, _wday, d, mo, y] = *r;
    let hours = if h & 0x40 != 0 {
        // 12-hour mode: bit 5 is PM, hours 1..=12.
        let h12 = from_bcd(h & 0x1f).rem_euclid(12);
        if h & 0x20 != 0 {
            h12.saturating_add(12)
        } else {
            h12
        }
    } else {
        from_bcd(h & 0x3f)
    };
    let days = days_from_civil(
        from_bcd(y).saturating_add(2000),
        from_bcd(mo & 0x1f),
        from_bcd(d & 0x3f),
    );
    days.saturating_mul(86_400)
        .saturating_add(hours.saturating_mul(3600))
        .saturating_add(from_bcd(mi & 0x7f).saturating_mul(60))
        .saturating_add(from_bcd(s & 0x7f))
}

impl Rtc {
    fn start(&mut self, host: i64) {
        self.latched = time_regs(self.now(host));
    }

    fn write(&mut self, data: &[u8], host: i64) {
        let Some((&reg, payload)) = data.split_first() else {
            return;
        };
        self.pointer = reg & 0x3f;
        let mut time = self.latched;
        let mut time_written = false;
        for &b in payload {
            let at = usize::from(self.pointer);
            if let Some(t) = time.get_mut(at) {
                *t = b;
                time_written = true;
            } else if at == RTC_CONTROL {
                // The oscillator-stop flag can only be cleared by software.
                let osf = self.regs.get(RTC_CONTROL).copied().unwrap_or(0) & DS1338_OSF;
                if let Some(c) = self.regs.get_mut(RTC_CONTROL) {
                    *c = (b & !DS1338_OSF) | (osf & b);
                }
            } else if let Some(cell) = self.regs.get_mut(at) {
                *cell = b;
            }
            self.pointer = self.pointer.wrapping_add(1) & 0x3f;
        }
        if time_written {
            self.offset = time_from_regs(&time).saturating_sub(host);
            self.latched = time;
            // Keep the clock-halt bit as written.
            if let (Some(r), Some(s)) = (self.regs.get_mut(0), time.first()) {
                *r = *s & 0x80;
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) {
        for b in buf {
            let at = usize::from(self.pointer);
            *b = match self.latched.get(at) {
                Some(&t) if at == 0 => t | (self.regs.first().copied().unwrap_or(0) & 0x80),
                Some(&t) => t,
                None => self.regs.get(at).copied().unwrap_or(0),
            };
            self.pointer = self.pointer.wrapping_add(1) & 0x3f;
        }
    }
}

/// The simulated bus: up to 128 devices, one per address, and the platform's clock.
pub struct SimAdapter<C> {
    devices: Vec<(Address, SimDevice)>,
    clock: C,
}

impl<C> core::fmt::Debug for SimAdapter<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.devices.iter().map(|(a, _)| a))
            .finish()
    }
}

impl<C: Clock> SimAdapter<C> {
    /// A bus with the given devices (allocated here, never per transfer).
    pub fn new(devices: &[(Model, Address)], clock: C) -> Self {
        SimAdapter {
            devices: devices
                .iter()
                .map(|&(model, addr)| {
                    let dev = match model {
                        Model::Eeprom24c02 => SimDevice::Eeprom(Eeprom::new()),
                        Model::Ds1338 => SimDevice::Rtc(Rtc::new()),
                    };
                    (addr, dev)
                })
                .collect(),
            clock,
        }
    }

    /// The platform clock the bus reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    fn device(&mut self, addr: Address) -> Option<&mut SimDevice> {
        self.devices
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, d)| d)
    }
}

impl<C: Clock> I2cAdapter for SimAdapter<C> {
    type Error = SimError;

    fn functionality(&self) -> Functionality {
        Functionality(Functionality::I2C | Functionality::SMBUS_QUICK)
    }

    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), SimError> {
        // Like real hardware, a missing device NAKs before anything happens.
        if let Some(m) = msgs.iter().find(|m| self.device(m.addr).is_none()) {
            return Err(SimError::NoDevice(m.addr));
        }
        // One clock reading per transfer: every register of a transfer is of the same second.
        let host = self.clock.now();
        let mut started: [bool; 128] = [false; 128];
        for m in msgs.iter_mut() {
            let Some(dev) = self.device(m.addr) else {
                return Err(SimError::NoDevice(m.addr));
            };
            if let Some(s) = started.get_mut(m.addr.index())
                && !*s
            {
                dev.start(host);
                *s = true;
            }
            if m.read {
                dev.read(m.buf);
            } else {
                dev.write(m.buf, host);
            }
        }
        Ok(())
    }

    fn smbus(&mut self, addr: Address, _op: &SmbusOp, _read: &mut [u8]) -> Result<(), SimError> {
        // functionality() advertises plain I2C, so the core never maps groups to SMBus here.
        Err(SimError::NoDevice(addr))
    }
}

#[cfg(test)]
mod tests;
