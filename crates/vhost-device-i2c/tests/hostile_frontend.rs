//! The hostile-frontend suite (issue 7) against the real `vhost-device-i2c`: one test per
//! attack of `vhost_user_test_frontend::attacks`. After each attack the daemon must be alive,
//! idle (CPU), quiet (log), answer GET_VRING_BASE, and serve a fresh connection's EEPROM
//! write and read-back within a second.

// Test code: a panic is a failed test.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

#[path = "common/subject.rs"]
mod subject;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use vhost_user_test_frontend::dut::{Target, chain};
use vhost_user_test_frontend::raw::RawFrontend;
use vhost_user_test_frontend::{Completion, Desc};
use virtio_i2c_core::request::encode_header;

const EEPROM: u8 = 0x50;
const WAIT: Duration = Duration::from_secs(1);

const TARGET: Target = Target {
    subject: subject::SUBJECT,
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

vhost_user_test_frontend::hostile_frontend_tests! {
    TARGET;
    kick_before_mem_table,
    kick_before_mem_table_without_event_idx,
    vring_num_zero,
    vring_num_65535,
    vring_num_not_power_of_two,
    vring_index_out_of_range,
    ring_addresses_unmapped,
    ring_addresses_misaligned,
    avail_ring_straddles_end_of_ram,
    used_ring_straddles_end_of_ram,
    descriptors_outside_ram,
    chain_cycle,
    nested_indirect_table,
    cyclic_indirect_table,
    heads_out_of_range,
    too_many_segments,
    avail_idx_jump,
    avail_idx_jump_without_event_idx,
    vring_base_far_ahead,
    get_config_huge_offset_and_size,
    unknown_feature_bits,
    unknown_messages,
    oversized_and_malformed_messages,
    mem_table_swapped_while_running,
    mem_table_swapped_to_zeroed_memory,
    region_larger_than_file,
    region_offset_past_end_of_file,
    add_mem_reg_past_end_of_file,
    kick_fd_is_a_pipe,
    kick_fd_is_not_an_eventfd,
    kick_fds_swapped_after_write,
    kick_on_a_swapped_fd_is_served,
    call_fd_is_a_full_pipe,
    call_eventfd_saturated,
    wrong_number_of_fds,
    more_than_32_fds,
    drop_at_every_handshake_step,
    two_clients_on_one_socket,
    connect_disconnect_10000,
}
