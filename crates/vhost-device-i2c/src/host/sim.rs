//! The simulated devices of `--simulate` (24c02 EEPROM, DS1338 RTC): the core crate's
//! implementation ([`virtio_i2c_core::sim`], shared with the bare-metal firmware) on the
//! system clock, with its errors as the daemon's [`AdapterError`].

use std::time::{SystemTime, UNIX_EPOCH};

use virtio_i2c_core::sim::{self, Clock, SimError};
use virtio_i2c_core::{Address, Functionality, I2cAdapter, Message, SmbusOp};

use super::error::AdapterError;

pub use virtio_i2c_core::sim::Model;

/// The host's wall clock, which the simulated RTC ticks with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The simulated bus on the system clock.
#[derive(Debug)]
pub struct SimAdapter(sim::SimAdapter<SystemClock>);

impl SimAdapter {
    /// A bus with the given devices.
    pub fn new(devices: &[(Model, Address)]) -> Self {
        SimAdapter(sim::SimAdapter::new(devices, SystemClock))
    }
}

impl From<SimError> for AdapterError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::NoDevice(addr) => AdapterError::NoDevice(addr),
        }
    }
}

impl I2cAdapter for SimAdapter {
    type Error = AdapterError;

    fn functionality(&self) -> Functionality {
        self.0.functionality()
    }

    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), AdapterError> {
        Ok(self.0.transfer(msgs)?)
    }

    fn smbus(&mut self, addr: Address, op: &SmbusOp, read: &mut [u8]) -> Result<(), AdapterError> {
        Ok(self.0.smbus(addr, op, read)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_device_is_the_daemons_no_device_error() {
        let a = |x| Address::device(x).unwrap();
        let mut bus = SimAdapter::new(&[(Model::Eeprom24c02, a(0x50))]);
        let mut buf = [0u8; 1];
        let mut msgs = [Message {
            addr: a(0x51),
            read: true,
            buf: &mut buf,
        }];
        assert!(matches!(
            bus.transfer(&mut msgs),
            Err(AdapterError::NoDevice(x)) if x == a(0x51)
        ));
        msgs[0].addr = a(0x50);
        bus.transfer(&mut msgs).unwrap();
        assert_eq!(buf, [0xff], "an erased EEPROM reads all ones");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800);
    }
}
