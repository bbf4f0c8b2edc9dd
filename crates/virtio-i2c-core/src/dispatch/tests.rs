//! Unit tests of the parent module (kept out of the production file).

use super::*;
use crate::request::Address;
use crate::smbus::SmbusOp;
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug)]
struct Nak;
impl fmt::Display for Nak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nak")
    }
}
impl core::error::Error for Nak {}

/// Records what the device asked of the adapter.
#[derive(Default)]
struct Mock {
    funcs: u64,
    transfers: Vec<usize>,
    smbus: Vec<(u8, SmbusOp)>,
    fail: bool,
}

impl I2cAdapter for Mock {
    type Error = Nak;
    fn functionality(&self) -> Functionality {
        Functionality(self.funcs)
    }
    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), Nak> {
        self.transfers.push(msgs.len());
        for m in msgs.iter_mut().filter(|m| m.read) {
            m.buf.fill(0x5a);
        }
        if self.fail { Err(Nak) } else { Ok(()) }
    }
    fn smbus(&mut self, addr: Address, op: &SmbusOp, read: &mut [u8]) -> Result<(), Nak> {
        assert_eq!(read.len(), op.read_len());
        read.fill(0xa5);
        self.smbus.push((addr.get(), *op));
        if self.fail { Err(Nak) } else { Ok(()) }
    }
}

fn addr() -> Address {
    Address::seven_bit(0x50).unwrap()
}

#[test]
fn i2c_adapter_gets_one_combined_transfer() {
    let mut m = Mock {
        funcs: Functionality::I2C | Functionality::SMBUS_QUICK,
        ..Mock::default()
    };
    let (mut w, mut r) = ([1u8], [0u8; 4]);
    let mut msgs = [
        Message {
            addr: addr(),
            read: false,
            buf: &mut w,
        },
        Message {
            addr: addr(),
            read: true,
            buf: &mut r,
        },
    ];
    execute(&mut m, &mut msgs).unwrap();
    assert_eq!(m.transfers, [2]);
    assert!(m.smbus.is_empty());
    assert_eq!(r, [0x5a; 4]);
}

#[test]
fn zero_length_without_quick_goes_through_smbus_or_fails() {
    let mut m = Mock {
        funcs: Functionality::I2C,
        ..Mock::default()
    };
    let mut msgs = [Message {
        addr: addr(),
        read: false,
        buf: &mut [],
    }];
    assert!(matches!(
        execute(&mut m, &mut msgs),
        Err(ExecError::Unsupported(SmbusError::NotAdvertised(
            Functionality::SMBUS_QUICK
        )))
    ));
    assert!(m.transfers.is_empty());
    let mut m = Mock {
        funcs: Functionality::I2C | Functionality::SMBUS_QUICK,
        ..Mock::default()
    };
    execute(&mut m, &mut msgs).unwrap();
    assert_eq!(m.transfers, [1]);
}

#[test]
fn smbus_only_adapter_gets_the_mapped_transaction() {
    let mut m = Mock {
        funcs: Functionality::SMBUS_READ_WORD_DATA,
        ..Mock::default()
    };
    let (mut w, mut r) = ([9u8], [0u8; 2]);
    let mut msgs = [
        Message {
            addr: addr(),
            read: false,
            buf: &mut w,
        },
        Message {
            addr: addr(),
            read: true,
            buf: &mut r,
        },
    ];
    execute(&mut m, &mut msgs).unwrap();
    assert_eq!(m.smbus, [(0x50, SmbusOp::ReadWordData { cmd: 9 })]);
    assert_eq!(r, [0xa5, 0xa5]);
}

#[test]
fn adapter_failure_is_reported() {
    let mut m = Mock {
        funcs: Functionality::I2C,
        fail: true,
        ..Mock::default()
    };
    let mut w = [1u8];
    let mut msgs = [Message {
        addr: addr(),
        read: false,
        buf: &mut w,
    }];
    assert!(matches!(
        execute(&mut m, &mut msgs),
        Err(ExecError::Adapter(Nak))
    ));
}

#[test]
fn unsupported_shape_never_reaches_the_adapter() {
    let mut m = Mock {
        funcs: Functionality::SMBUS_QUICK | Functionality::SMBUS_READ_BYTE,
        ..Mock::default()
    };
    let mut r = [0u8; 3];
    let mut msgs = [Message {
        addr: addr(),
        read: true,
        buf: &mut r,
    }];
    assert!(matches!(
        execute(&mut m, &mut msgs),
        Err(ExecError::Unsupported(SmbusError::NoEquivalent))
    ));
    assert!(m.smbus.is_empty() && m.transfers.is_empty());
}
