//! Simulated I2C devices, so the daemon is useful (and testable) without hardware.
//!
//! - `24c02`: a 256-byte EEPROM as Linux's at24 driver expects it: a one-byte address
//!   pointer, sequential reads that wrap at 256, 8-byte page writes that wrap in the page.
//! - `ds1338`: an RTC as rtc-ds1307 expects a "ds1338": BCD time registers 0x00-0x06 that
//!   tick with the host clock plus the offset the guest set, control register 0x07 with the
//!   oscillator-stop flag, 56 bytes of battery-backed RAM at 0x08-0x3f.

use std::time::{SystemTime, UNIX_EPOCH};

use virtio_i2c_core::{Address, Functionality, I2cAdapter, Message, SmbusOp};

use super::error::AdapterError;

/// A simulated device model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// 24C02 EEPROM.
    Eeprom24c02,
    /// DS1338 real-time clock.
    Ds1338,
}

impl Model {
    /// The model for a `--simulate` name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "24c02" => Some(Model::Eeprom24c02),
            "ds1338" => Some(Model::Ds1338),
            _ => None,
        }
    }

    /// The model's name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Eeprom24c02 => "24c02",
            Model::Ds1338 => "ds1338",
        }
    }
}

/// One simulated device.
trait SimDevice: Send {
    /// Called once at the start of each transfer that addresses the device.
    fn start(&mut self) {}
    /// A write message.
    fn write(&mut self, data: &[u8]);
    /// A read message; fills `buf` completely.
    fn read(&mut self, buf: &mut [u8]);
}

const EEPROM_SIZE: usize = 256;
const EEPROM_PAGE: u8 = 8;

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

impl SimDevice for Eeprom {
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

struct Rtc {
    regs: [u8; RTC_REGS],
    pointer: u8,
    /// Seconds added to the host clock.
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

    fn now(&self) -> i64 {
        let host = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
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

impl SimDevice for Rtc {
    fn start(&mut self) {
        self.latched = time_regs(self.now());
    }

    fn write(&mut self, data: &[u8]) {
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
            let host = self.now().saturating_sub(self.offset);
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

/// The simulated bus: up to 128 devices, one per address.
pub struct SimAdapter {
    devices: Vec<(Address, Box<dyn SimDevice>)>,
}

impl std::fmt::Debug for SimAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<Address> = self.devices.iter().map(|(a, _)| *a).collect();
        f.debug_struct("SimAdapter")
            .field("devices", &addrs)
            .finish()
    }
}

impl SimAdapter {
    /// A bus with the given devices.
    pub fn new(devices: &[(Model, Address)]) -> Self {
        SimAdapter {
            devices: devices
                .iter()
                .map(|&(model, addr)| {
                    let dev: Box<dyn SimDevice> = match model {
                        Model::Eeprom24c02 => Box::new(Eeprom::new()),
                        Model::Ds1338 => Box::new(Rtc::new()),
                    };
                    (addr, dev)
                })
                .collect(),
        }
    }

    fn device(&mut self, addr: Address) -> Option<&mut Box<dyn SimDevice>> {
        self.devices
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, d)| d)
    }
}

impl I2cAdapter for SimAdapter {
    type Error = AdapterError;

    fn functionality(&self) -> Functionality {
        Functionality(Functionality::I2C | Functionality::SMBUS_QUICK)
    }

    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), AdapterError> {
        // Like real hardware, a missing device NAKs before anything happens.
        if let Some(m) = msgs.iter().find(|m| self.device(m.addr).is_none()) {
            return Err(AdapterError::NoDevice(m.addr));
        }
        let mut started: [bool; 128] = [false; 128];
        for m in msgs.iter_mut() {
            let Some(dev) = self.device(m.addr) else {
                return Err(AdapterError::NoDevice(m.addr));
            };
            if let Some(s) = started.get_mut(m.addr.index())
                && !*s
            {
                dev.start();
                *s = true;
            }
            if m.read {
                dev.read(m.buf);
            } else {
                dev.write(m.buf);
            }
        }
        Ok(())
    }

    fn smbus(
        &mut self,
        addr: Address,
        _op: &SmbusOp,
        _read: &mut [u8],
    ) -> Result<(), AdapterError> {
        // functionality() advertises plain I2C, so the core never maps groups to SMBus here.
        Err(AdapterError::NoDevice(addr))
    }
}

#[cfg(test)]
mod tests;
