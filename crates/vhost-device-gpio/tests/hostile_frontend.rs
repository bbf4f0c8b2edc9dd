//! The hostile-frontend suite (issue 7) against the real `vhost-device-gpio`: one test per
//! attack of `vhost_user_test_frontend::attacks`. After each attack the daemon must be alive,
//! idle (CPU), quiet (log), answer GET_VRING_BASE, and serve a fresh connection's config
//! read and line requests within a second.

// Test code: a panic is a failed test.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod common;

use std::time::Duration;

use vhost_user_test_frontend::Desc;
use vhost_user_test_frontend::dut::{Target, chain};
use vhost_user_test_frontend::raw::{PROTOCOL_CONFIG, RawFrontend};
use virtio_gpio_core::msg::{encode_request, msg_type};

const WAIT: Duration = Duration::from_secs(1);
const DIR_NONE: u32 = 0;
const DIR_OUT: u32 = 1;

const TARGET: Target = Target {
    subject: common::SUBJECT,
    queue_size: 64,
    probe,
    request,
};

/// GET_VALUE of line 0.
fn request() -> Vec<Desc> {
    vec![
        Desc::Out(encode_request(msg_type::GET_VALUE, 0, 0).to_vec()),
        Desc::In(2),
    ]
}

fn line_request(fe: &mut RawFrontend, t: u16, line: u16, value: u32) -> Result<(u8, u8), String> {
    let c = fe
        .queue(0)
        .map_err(|e| chain(&e))?
        .transact(
            &[
                Desc::Out(encode_request(t, line, value).to_vec()),
                Desc::In(2),
            ],
            false,
            WAIT,
        )
        .map_err(|e| format!("request type {t} line {line}: {}", chain(&e)))?;
    if c.used_len != 2 {
        return Err(format!("request type {t} line {line}: answered {c:?}"));
    }
    Ok((c.written[0][0], c.written[0][1]))
}

/// Reads the config (8 lines; when the CONFIG protocol feature was negotiated), drives line 0
/// high as an output, reads it back, releases it.
fn probe(fe: &mut RawFrontend) -> Result<(), String> {
    if fe.protocol_features() & PROTOCOL_CONFIG != 0 {
        let config = fe
            .get_config(0, 8)
            .map_err(|e| format!("GET_CONFIG: {}", chain(&e)))?;
        if config.get(0..2) != Some(&[8, 0][..]) {
            return Err(format!("GET_CONFIG answered {config:?}"));
        }
    }
    let steps = [
        (msg_type::SET_VALUE, 1, (0, 0)),
        (msg_type::SET_DIRECTION, DIR_OUT, (0, 0)),
        (msg_type::GET_VALUE, 0, (0, 1)),
        (msg_type::SET_DIRECTION, DIR_NONE, (0, 0)),
    ];
    for (t, value, want) in steps {
        let got = line_request(fe, t, 0, value)?;
        if got != want {
            return Err(format!(
                "request type {t} on line 0: got {got:?}, want {want:?}"
            ));
        }
    }
    Ok(())
}

vhost_user_test_frontend::shared_hostile_frontend_tests!(TARGET);

// The eventq (a second queue) gets the queue attacks too.
vhost_user_test_frontend::hostile_frontend_tests! {
    TARGET;
    eventq_heads_out_of_range,
    eventq_malformed_chains,
    eventq_avail_idx_jump,
    one_blocking_eventfd_kicks_both_queues,
}
