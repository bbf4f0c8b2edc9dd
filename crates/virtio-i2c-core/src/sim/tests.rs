//! Unit tests of the parent module (kept out of the production file).

#![allow(clippy::arithmetic_side_effects)]
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use super::*;

/// A platform clock the test sets by hand (shared with the bus through the `Rc`).
#[derive(Debug, Clone, Default)]
struct ManualClock(Rc<Cell<i64>>);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.get()
    }
}

type Bus = SimAdapter<ManualClock>;

fn bus(devices: &[(Model, Address)]) -> Bus {
    SimAdapter::new(devices, ManualClock::default())
}

fn a(x: u16) -> Address {
    Address::device(x).unwrap()
}

fn xfer(bus: &mut Bus, addr: Address, w: &[u8], rlen: usize) -> Result<Vec<u8>, SimError> {
    let mut wbuf = w.to_vec();
    let mut rbuf = vec![0u8; rlen];
    let mut msgs = vec![];
    if !w.is_empty() || rlen == 0 {
        msgs.push(Message {
            addr,
            read: false,
            buf: &mut wbuf,
        });
    }
    if rlen > 0 {
        msgs.push(Message {
            addr,
            read: true,
            buf: &mut rbuf,
        });
    }
    bus.transfer(&mut msgs)?;
    Ok(rbuf)
}

#[test]
fn eeprom_page_write_wraps_in_page_and_reads_wrap_at_256() {
    let mut bus = bus(&[(Model::Eeprom24c02, a(0x50))]);
    // Write 4 bytes at 0x06: 0x06, 0x07, then wrap to 0x00, 0x01 of the same page.
    xfer(&mut bus, a(0x50), &[0x06, 1, 2, 3, 4], 0).unwrap();
    assert_eq!(
        xfer(&mut bus, a(0x50), &[0x00], 8).unwrap(),
        [3, 4, 0xff, 0xff, 0xff, 0xff, 1, 2]
    );
    xfer(&mut bus, a(0x50), &[0xff, 0xaa], 0).unwrap();
    assert_eq!(
        xfer(&mut bus, a(0x50), &[0xfe], 3).unwrap(),
        [0xff, 0xaa, 3]
    );
}

#[test]
fn absent_device_naks() {
    let mut bus = bus(&[(Model::Eeprom24c02, a(0x50))]);
    assert!(matches!(
        xfer(&mut bus, a(0x51), &[], 0),
        Err(SimError::NoDevice(_))
    ));
    assert!(xfer(&mut bus, a(0x50), &[], 0).is_ok());
}

#[test]
fn civil_date_round_trip() {
    for days in [-1000i64, 0, 10_957, 19_000, 47_000] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
    }
    assert_eq!(civil_from_days(10_957), (2000, 1, 1));
}

#[test]
fn rtc_set_and_read_back() {
    let mut bus = bus(&[(Model::Ds1338, a(0x68))]);
    // Power-on state has the oscillator-stop flag set.
    assert_eq!(
        xfer(&mut bus, a(0x68), &[0x07], 1).unwrap()[0] & DS1338_OSF,
        DS1338_OSF
    );
    // 2024-02-29 23:59:58, Thursday.
    xfer(
        &mut bus,
        a(0x68),
        &[0x00, 0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24],
        0,
    )
    .unwrap();
    xfer(&mut bus, a(0x68), &[0x07, 0x00], 0).unwrap();
    let r = xfer(&mut bus, a(0x68), &[0x00], 8).unwrap();
    assert_eq!(&r[..7], &[0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24]);
    assert_eq!(r[7] & DS1338_OSF, 0);
}

#[test]
fn rtc_ticks_with_the_platform_clock() {
    let clock = ManualClock::default();
    clock.0.set(1_000_000_000);
    let mut bus = SimAdapter::new(&[(Model::Ds1338, a(0x68))], clock.clone());
    // 2024-02-29 23:59:58, Thursday; then the platform clock advances 3 s.
    xfer(
        &mut bus,
        a(0x68),
        &[0x00, 0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24],
        0,
    )
    .unwrap();
    clock.0.set(1_000_000_003);
    let r = xfer(&mut bus, a(0x68), &[0x00], 7).unwrap();
    // 2024-03-01 00:00:01, Friday.
    assert_eq!(r, [0x01, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24]);
    assert_eq!(bus.clock().now(), 1_000_000_003);
}

#[test]
fn model_names() {
    assert_eq!(Model::from_name("24C02"), Some(Model::Eeprom24c02));
    assert_eq!(Model::from_name("ds1338"), Some(Model::Ds1338));
    assert_eq!(Model::from_name("ds1307"), None);
    assert_eq!(Model::Ds1338.name(), "ds1338");
}

#[test]
fn rtc_ram_and_pointer_wrap() {
    let mut bus = bus(&[(Model::Ds1338, a(0x68))]);
    xfer(&mut bus, a(0x68), &[0x3e, 0x11, 0x22], 0).unwrap();
    let r = xfer(&mut bus, a(0x68), &[0x3e], 3).unwrap();
    assert_eq!(&r[..2], &[0x11, 0x22]);
    // 0x3f wraps to 0x00, the seconds register.
    assert!(r[2] <= 0x59);
    assert_eq!(xfer(&mut bus, a(0x68), &[0x08], 1).unwrap(), [0]);
}
