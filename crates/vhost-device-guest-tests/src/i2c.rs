//! Suite B, I2C: vhost-device-i2c serving an i2c-stub chip (SMBus-only adapter:
//! QUICK, BYTE, BYTE_DATA, WORD_DATA, I2C_BLOCK). i2c-stub keeps 256 registers and a
//! register pointer per chip, so what is written can be read back.

use std::path::Path;
use std::time::Duration;

use vhost_user_test_frontend::{Desc, TestFrontend};

use crate::connect::connect;
use crate::{Report, ensure};

const TIMEOUT: Duration = Duration::from_secs(5);
const FLAG_FAIL_NEXT: u32 = 1;
const FLAG_M_RD: u32 = 2;
const STATUS_OK: u8 = 0;
const STATUS_ERR: u8 = 1;
const F_ZERO_LENGTH_REQUEST: u64 = 1;
const F_VERSION_1: u64 = 1 << 32;

/// One message of a transfer; an empty write or a zero-length read is a
/// zero-length request.
#[derive(Clone, Debug)]
enum Msg {
    W(u8, Vec<u8>),
    R(u8, u32),
}

#[derive(Debug)]
struct Reply {
    status: u8,
    data: Vec<u8>,
    used_len: u32,
}

/// Sends one transfer the way Linux does: one chain per message, FAIL_NEXT on all
/// but the last, all queued, one kick, then the completions in order.
fn transfer(fe: &mut TestFrontend, msgs: &[Msg]) -> Result<Vec<Reply>, String> {
    let q = fe.queue(0);
    let mut heads = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let (addr, read_len) = match m {
            Msg::W(a, _) => (*a, None),
            Msg::R(a, l) => (*a, Some(*l)),
        };
        let mut flags = 0;
        if i + 1 < msgs.len() {
            flags |= FLAG_FAIL_NEXT;
        }
        if read_len.is_some() {
            flags |= FLAG_M_RD;
        }
        let mut hdr = Vec::with_capacity(8);
        hdr.extend_from_slice(&(u16::from(addr) << 1).to_le_bytes());
        hdr.extend_from_slice(&[0, 0]);
        hdr.extend_from_slice(&flags.to_le_bytes());
        let mut descs = vec![Desc::Out(hdr)];
        match m {
            Msg::W(_, b) if !b.is_empty() => descs.push(Desc::Out(b.clone())),
            Msg::R(_, l) if *l > 0 => descs.push(Desc::In(*l)),
            _ => {}
        }
        descs.push(Desc::In(1));
        let head = q.post(&descs, true).map_err(|e| format!("post: {e}"))?;
        heads.push((head, read_len.unwrap_or(0)));
    }
    q.kick().map_err(|e| format!("kick: {e}"))?;
    let mut replies = Vec::with_capacity(heads.len());
    for (head, read_len) in heads {
        let c = q
            .wait_head(head, TIMEOUT)
            .map_err(|e| format!("waiting for a reply: {e}"))?;
        let status = c
            .written
            .last()
            .and_then(|s| s.first().copied())
            .ok_or("no status buffer")?;
        let data = if read_len > 0 {
            c.written.first().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        replies.push(Reply {
            status,
            data,
            used_len: c.used_len,
        });
    }
    Ok(replies)
}

/// All replies OK, and each read returned `expected` (for the last message).
fn expect_ok(replies: &[Reply], read: Option<&[u8]>) -> Result<(), String> {
    for (i, r) in replies.iter().enumerate() {
        ensure(r.status == STATUS_OK, || {
            format!("message {i}: status {} (expected OK)", r.status)
        })?;
    }
    if let Some(expected) = read {
        let last = replies.last().ok_or("no reply")?;
        ensure(last.data == expected, || {
            format!("read {:02x?}, expected {expected:02x?}", last.data)
        })?;
        let want = 1 + u32::try_from(expected.len()).unwrap_or(u32::MAX);
        ensure(last.used_len == want, || {
            format!(
                "used length {} for a {}-byte read (expected {want})",
                last.used_len,
                expected.len()
            )
        })?;
    } else {
        for (i, r) in replies.iter().enumerate() {
            ensure(r.used_len == 1, || {
                format!(
                    "message {i}: used length {} for a write (expected 1)",
                    r.used_len
                )
            })?;
        }
    }
    Ok(())
}

fn expect_all_err(replies: &[Reply]) -> Result<(), String> {
    for (i, r) in replies.iter().enumerate() {
        ensure(r.status == STATUS_ERR, || {
            format!("message {i}: status {} (expected ERR)", r.status)
        })?;
    }
    Ok(())
}

fn read_reg(fe: &mut TestFrontend, a: u8, reg: u8, len: u32) -> Result<Vec<u8>, String> {
    let r = transfer(fe, &[Msg::W(a, vec![reg]), Msg::R(a, len)])?;
    expect_ok(&r, None).or_else(|e| {
        if e.contains("used length") {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(r.last().map(|x| x.data.clone()).unwrap_or_default())
}

/// Runs every I2C check against the daemon at `socket`.
pub fn run(rep: &mut Report, socket: &Path, a: u8, absent: u8, preset: &[(u8, u8)]) {
    // QEMU's vhost-user-i2c queue has 4 entries; chains go indirect as Linux's do.
    let Some(mut fe) = connect(
        rep,
        socket,
        1,
        4,
        F_ZERO_LENGTH_REQUEST | F_VERSION_1,
        "ZERO_LENGTH_REQUEST or VERSION_1",
    ) else {
        return;
    };

    for &(reg, val) in preset {
        let r = read_reg(&mut fe, a, reg, 1).and_then(|d| {
            ensure(d == [val], || {
                format!("register {reg:#04x} = {d:02x?}, i2cset wrote {val:#04x}")
            })
        });
        rep.check(&format!("preset-{reg:02x}"), r);
    }

    let r = transfer(&mut fe, &[Msg::W(a, vec![])]).and_then(|r| expect_ok(&r, None));
    rep.check("quick-write", r);
    let r = transfer(&mut fe, &[Msg::R(a, 0)]).and_then(|r| expect_ok(&r, Some(&[])));
    rep.check("quick-read", r);

    let r = transfer(&mut fe, &[Msg::W(a, vec![0x10, 0xab])]).and_then(|r| expect_ok(&r, None));
    rep.check("byte-data-write", r);
    let r = transfer(&mut fe, &[Msg::W(a, vec![0x10]), Msg::R(a, 1)])
        .and_then(|r| expect_ok(&r, Some(&[0xab])));
    rep.check("byte-data-read", r);

    let r =
        transfer(&mut fe, &[Msg::W(a, vec![0x20, 0x34, 0x12])]).and_then(|r| expect_ok(&r, None));
    rep.check("word-data-write", r);
    let r = transfer(&mut fe, &[Msg::W(a, vec![0x20]), Msg::R(a, 2)])
        .and_then(|r| expect_ok(&r, Some(&[0x34, 0x12])));
    rep.check("word-data-read", r);

    let block: Vec<u8> = (1..=8).collect();
    let mut w = vec![0x40];
    w.extend_from_slice(&block);
    let r = transfer(&mut fe, &[Msg::W(a, w)]).and_then(|r| expect_ok(&r, None));
    rep.check("i2c-block-write", r);
    let r = transfer(&mut fe, &[Msg::W(a, vec![0x40]), Msg::R(a, 8)])
        .and_then(|r| expect_ok(&r, Some(&block)));
    rep.check("i2c-block-read", r);
    let r = read_reg(&mut fe, a, 0x43, 1).and_then(|d| {
        ensure(d == [4], || {
            format!("register 0x43 = {d:02x?} after the block write, expected [04]")
        })
    });
    rep.check("i2c-block-cross-byte", r);
    let big: Vec<u8> = (0..32u8).map(|i| i ^ 0x5a).collect();
    let mut w = vec![0x80];
    w.extend_from_slice(&big);
    let r = transfer(&mut fe, &[Msg::W(a, w)])
        .and_then(|r| expect_ok(&r, None))
        .and_then(|()| transfer(&mut fe, &[Msg::W(a, vec![0x80]), Msg::R(a, 32)]))
        .and_then(|r| expect_ok(&r, Some(&big)));
    rep.check("i2c-block-32", r);

    // BYTE write sets i2c-stub's pointer; BYTE reads return and advance it.
    let r = transfer(&mut fe, &[Msg::W(a, vec![0x40])])
        .and_then(|r| expect_ok(&r, None))
        .and_then(|()| transfer(&mut fe, &[Msg::R(a, 1)]))
        .and_then(|r| expect_ok(&r, Some(&[1])))
        .and_then(|()| transfer(&mut fe, &[Msg::R(a, 1)]))
        .and_then(|r| expect_ok(&r, Some(&[2])));
    rep.check("byte-write-read", r);

    // Absent address: ERR, nothing reaches the bus.
    let r = transfer(&mut fe, &[Msg::W(absent, vec![0x00, 0x00])]).and_then(|r| expect_all_err(&r));
    rep.check("absent-write", r);
    let r = transfer(&mut fe, &[Msg::R(absent, 1)]).and_then(|r| expect_all_err(&r));
    rep.check("absent-read", r);
    let r = transfer(&mut fe, &[Msg::W(absent, vec![])]).and_then(|r| expect_all_err(&r));
    rep.check("absent-quick", r);

    // FAIL_NEXT: the first message fails, so the second is failed, not executed.
    let r = transfer(&mut fe, &[Msg::R(absent, 1), Msg::W(a, vec![0x10, 0x55])])
        .and_then(|r| expect_all_err(&r))
        .and_then(|()| read_reg(&mut fe, a, 0x10, 1))
        .and_then(|d| {
            ensure(d == [0xab], || {
                format!("register 0x10 = {d:02x?}: the failed group's write was executed")
            })
        });
    rep.check("fail-next-group", r);

    // Shapes with no SMBus equivalent on an SMBus-only adapter: ERR, never another transaction.
    let r =
        transfer(&mut fe, &[Msg::W(a, vec![0x10]), Msg::R(a, 33)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-read-33", r);
    let r = transfer(&mut fe, &[Msg::R(a, 1), Msg::R(a, 1)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-read-read", r);
    let r = transfer(&mut fe, &[Msg::R(a, 3)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-plain-read-3", r);

    let r = read_reg(&mut fe, a, 0x10, 1).and_then(|d| {
        ensure(d == [0xab], || {
            format!("register 0x10 = {d:02x?}, expected [ab]")
        })
    });
    rep.check("after-errors", r);
    fe.disconnect();
}
