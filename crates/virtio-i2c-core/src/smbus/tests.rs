//! Unit tests of the parent module (kept out of the production file).

use super::*;

const STUB: F = F(F::SMBUS_QUICK
    | F::SMBUS_READ_BYTE
    | F::SMBUS_WRITE_BYTE
    | F::SMBUS_READ_BYTE_DATA
    | F::SMBUS_WRITE_BYTE_DATA
    | F::SMBUS_READ_WORD_DATA
    | F::SMBUS_WRITE_WORD_DATA
    | F::SMBUS_READ_I2C_BLOCK
    | F::SMBUS_WRITE_I2C_BLOCK);

fn a(x: u8) -> Address {
    Address::seven_bit(x).unwrap()
}

fn plan_of(shape: &mut [(bool, &mut [u8])], funcs: F) -> Result<SmbusOp, SmbusError> {
    let mut msgs: [Message<'_>; 2] = core::array::from_fn(|_| Message {
        addr: a(0x50),
        read: false,
        buf: &mut [],
    });
    let n = shape.len();
    for (m, (read, buf)) in msgs.iter_mut().zip(shape.iter_mut()) {
        m.read = *read;
        m.buf = buf;
    }
    plan(&msgs[..n], funcs).map(|(addr, op)| {
        assert_eq!(addr, a(0x50));
        op
    })
}

#[test]
fn quick_read_and_write() {
    assert_eq!(
        plan_of(&mut [(false, &mut [])], STUB),
        Ok(SmbusOp::Quick { read: false })
    );
    assert_eq!(
        plan_of(&mut [(true, &mut [])], STUB),
        Ok(SmbusOp::Quick { read: true })
    );
}

#[test]
fn byte_shapes() {
    assert_eq!(
        plan_of(&mut [(true, &mut [0])], STUB),
        Ok(SmbusOp::ReceiveByte)
    );
    assert_eq!(
        plan_of(&mut [(false, &mut [7])], STUB),
        Ok(SmbusOp::SendByte(7))
    );
    assert_eq!(
        plan_of(&mut [(false, &mut [1, 2])], STUB),
        Ok(SmbusOp::WriteByteData { cmd: 1, value: 2 })
    );
    assert_eq!(
        plan_of(&mut [(false, &mut [1]), (true, &mut [0])], STUB),
        Ok(SmbusOp::ReadByteData { cmd: 1 })
    );
}

#[test]
fn word_shapes_are_little_endian() {
    assert_eq!(
        plan_of(&mut [(false, &mut [9, 0x34, 0x12])], STUB),
        Ok(SmbusOp::WriteWordData {
            cmd: 9,
            value: 0x1234
        })
    );
    assert_eq!(
        plan_of(&mut [(false, &mut [9]), (true, &mut [0, 0])], STUB),
        Ok(SmbusOp::ReadWordData { cmd: 9 })
    );
}

#[test]
fn process_call_needs_its_bit() {
    let shape = || -> [(bool, alloc::vec::Vec<u8>); 2] {
        [(false, alloc::vec![3, 1, 2]), (true, alloc::vec![0, 0])]
    };
    let [(r0, mut b0), (r1, mut b1)] = shape();
    assert_eq!(
        plan_of(
            &mut [(r0, &mut b0), (r1, &mut b1)],
            F(STUB.0 | F::SMBUS_PROC_CALL)
        ),
        Ok(SmbusOp::ProcessCall {
            cmd: 3,
            value: 0x0201
        })
    );
    assert_eq!(
        plan_of(&mut [(r0, &mut b0), (r1, &mut b1)], STUB),
        Err(SmbusError::NotAdvertised(F::SMBUS_PROC_CALL))
    );
}

#[test]
fn i2c_block_read_and_write() {
    let mut rd = [0u8; 32];
    assert_eq!(
        plan_of(&mut [(false, &mut [0x10]), (true, &mut rd)], STUB),
        Ok(SmbusOp::ReadI2cBlock { cmd: 0x10, len: 32 })
    );
    let mut wr = [0u8; 9];
    wr[0] = 0x20;
    wr[1..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    match plan_of(&mut [(false, &mut wr)], STUB) {
        Ok(SmbusOp::WriteI2cBlock { cmd, len, data }) => {
            assert_eq!((cmd, len), (0x20, 8));
            assert_eq!(&data[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fallbacks_keep_the_wire_bytes() {
    let only_block = F(F::SMBUS_READ_I2C_BLOCK | F::SMBUS_WRITE_I2C_BLOCK);
    assert_eq!(
        plan_of(&mut [(false, &mut [1]), (true, &mut [0, 0])], only_block),
        Ok(SmbusOp::ReadI2cBlock { cmd: 1, len: 2 })
    );
    assert!(matches!(
        plan_of(&mut [(false, &mut [1, 2, 3])], only_block),
        Ok(SmbusOp::WriteI2cBlock { cmd: 1, len: 2, .. })
    ));
}

#[test]
fn rejected_shapes() {
    let mut big = [0u8; 34];
    assert_eq!(
        plan_of(&mut [(false, &mut big)], STUB),
        Err(SmbusError::NoEquivalent)
    );
    let mut rd = [0u8; 33];
    assert_eq!(
        plan_of(&mut [(false, &mut [0]), (true, &mut rd)], STUB),
        Err(SmbusError::NoEquivalent)
    );
    // Multi-byte read without a command.
    assert_eq!(
        plan_of(&mut [(true, &mut [0, 0])], STUB),
        Err(SmbusError::NoEquivalent)
    );
    // Read then write.
    assert_eq!(
        plan_of(&mut [(true, &mut [0]), (false, &mut [0])], STUB),
        Err(SmbusError::NoEquivalent)
    );
    // Two-byte command before a read.
    assert_eq!(
        plan_of(&mut [(false, &mut [0, 1]), (true, &mut [0])], STUB),
        Err(SmbusError::NoEquivalent)
    );
    assert_eq!(
        plan_of(&mut [(false, &mut [0])], F(F::SMBUS_QUICK)),
        Err(SmbusError::NotAdvertised(F::SMBUS_WRITE_BYTE))
    );
}

#[test]
fn mixed_addresses_rejected() {
    let mut b0 = [1u8];
    let mut b1 = [0u8];
    let msgs = [
        Message {
            addr: a(0x50),
            read: false,
            buf: &mut b0,
        },
        Message {
            addr: a(0x51),
            read: true,
            buf: &mut b1,
        },
    ];
    assert_eq!(plan(&msgs, STUB), Err(SmbusError::MixedAddresses));
}

#[test]
fn read_lengths() {
    assert_eq!(SmbusOp::ReadI2cBlock { cmd: 0, len: 5 }.read_len(), 5);
    assert_eq!(SmbusOp::ProcessCall { cmd: 0, value: 0 }.read_len(), 2);
    assert_eq!(SmbusOp::SendByte(0).read_len(), 0);
}
