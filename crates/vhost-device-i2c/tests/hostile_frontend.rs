//! The hostile-frontend suite (issue 7) against the real `vhost-device-i2c`: one test per
//! attack of `vhost_user_test_frontend::attacks`. After each attack the daemon must be alive,
//! idle (CPU), quiet (log), answer GET_VRING_BASE, and serve a fresh connection's EEPROM
//! write and read-back within a second.

// Test code: a panic is a failed test.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use vhost_user_test_frontend::dut::{Target, chain};
use vhost_user_test_frontend::raw::RawFrontend;
use vhost_user_test_frontend::{Completion, Desc};
use virtio_i2c_core::request::encode_header;

const EEPROM: u8 = 0x50;
const WAIT: Duration = Duration::from_secs(1);

const TARGET: Target = Target {
    subject: common::SUBJECT,
    queue_size: 64,
    probe,
    request,
};

/// SMBus quick write to the EEPROM: header and status.
fn request() -> Vec<Desc> {
    vec![
        Desc::Out(encode_header(EEPROM, false, false).to_vec()),
        Desc::In(1),
    ]
}

fn status(c: &Completion) -> Option<u8> {
    c.written.last().and_then(|b| b.last()).copied()
}

/// Writes a fresh byte into the EEPROM and reads it back (write of the offset + read, one
/// group).
fn probe(fe: &mut RawFrontend) -> Result<(), String> {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let value = NEXT.fetch_add(7, Ordering::Relaxed);
    let q = fe.queue(0).map_err(|e| chain(&e))?;
    let io = |e: vhost_user_test_frontend::Error| format!("EEPROM probe: {}", chain(&e));
    let w = q
        .transact(
            &[
                Desc::Out(encode_header(EEPROM, false, false).to_vec()),
                Desc::Out(vec![0x42, value]),
                Desc::In(1),
            ],
            false,
            WAIT,
        )
        .map_err(io)?;
    if status(&w) != Some(0) || w.used_len != 1 {
        return Err(format!("EEPROM write answered {w:?}"));
    }
    let a = q
        .post(
            &[
                Desc::Out(encode_header(EEPROM, false, true).to_vec()),
                Desc::Out(vec![0x42]),
                Desc::In(1),
            ],
            false,
        )
        .map_err(io)?;
    let b = q
        .post(
            &[
                Desc::Out(encode_header(EEPROM, true, false).to_vec()),
                Desc::In(1),
                Desc::In(1),
            ],
            false,
        )
        .map_err(io)?;
    q.kick().map_err(io)?;
    let a = q.wait_head(a, WAIT).map_err(io)?;
    let b = q.wait_head(b, WAIT).map_err(io)?;
    if status(&a) != Some(0) || status(&b) != Some(0) || b.written[0] != [value] {
        return Err(format!(
            "EEPROM read-back of {value:#x} answered {a:?} then {b:?}"
        ));
    }
    Ok(())
}

vhost_user_test_frontend::shared_hostile_frontend_tests!(TARGET);
