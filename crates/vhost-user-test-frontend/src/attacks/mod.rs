//! The attacks of the hostile-frontend suite, each a function over a [`Dut`]: it attacks
//! through [`crate::raw`], then runs the checks of [`Dut::check_after`] (alive, idle CPU,
//! GET_VRING_BASE answered, a fresh connection answered within a second, bounded log).
//! An attack that runs several rounds gives every round the same checks
//! ([`Dut::check_round`], idle CPU over a shorter window), the last one [`Dut::check_after`].
//!
//! The attacks are grouped by topic in the submodules (order, vrings, descriptors, messages,
//! memory, fds, connections) and all re-exported here, where [`hostile_frontend_tests!`]
//! finds them by name; a new attack goes in the submodule of its topic. An observation
//! that fails the attack without ending it goes to [`Dut::note`], so the checks still run.
//!
//! A refusal by the daemon (a failure ack or a closed connection) is always an acceptable
//! answer to a bad message; a hang, a death, a spin, a flood or a broken next connection
//! never is.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::dut::{Dut, Target, chain};
use crate::raw::{self, RawError, RawFrontend, RawOptions, Region, UADDR_BASE, code};
use crate::{RawDesc, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

/// An attack's outcome: `Err` says what went wrong.
pub type Outcome = Result<(), String>;

mod connections;
mod descriptors;
mod fds;
mod memory;
mod messages;
mod order;
mod vrings;

pub use connections::*;
pub use descriptors::*;
pub use fds::*;
pub use memory::*;
pub use messages::*;
pub use order::*;
pub use vrings::*;

/// How the daemon answered one bad message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Acked with success (or answered).
    Accepted,
    /// Refused: failure ack, or connection closed.
    Refused,
    /// No answer, connection still open (recorded as a finding).
    Hung,
}

/// Classifies the result of an acked message; a missing reply is a failure.
fn fate(dut: &Dut, result: Result<(), RawError>, what: &str) -> Result<Fate, String> {
    match result {
        Ok(()) => Ok(Fate::Accepted),
        Err(RawError::Rejected { .. }) => Ok(Fate::Refused),
        Err(e) if e.is_closed() => Ok(Fate::Refused),
        Err(RawError::Timeout(t)) => {
            dut.note(format!(
                "{what}: no reply within {t:?} and the connection is still open"
            ));
            Ok(Fate::Hung)
        }
        Err(e) => Err(format!("{what}: {}", chain(&e))),
    }
}

/// Reads the reply to a request that asked for one: a reply or a closed connection is
/// fine; no reply on an open connection is a finding, after which GET_VRING_BASE tells
/// whether the connection still answers at all.
fn answered_or_closed(dut: &Dut, fe: &RawFrontend, what: &str) {
    match fe.conn.recv(Duration::from_secs(1)) {
        Ok(_) => {}
        Err(e) if e.is_closed() => {}
        Err(e) => {
            let after = match fe.conn.get_vring_base(0, Duration::from_secs(1)) {
                Ok(_) => "the connection still answers GET_VRING_BASE".to_owned(),
                Err(e) if e.is_closed() => "then the daemon closed the connection".to_owned(),
                Err(e) => format!("GET_VRING_BASE then: {}", chain(&e)),
            };
            dut.note(format!(
                "{what}: no reply on an open connection ({}); {after}",
                chain(&e)
            ));
        }
    }
}

fn err(what: &'static str) -> impl Fn(RawError) -> String {
    move |e| format!("{what}: {}", chain(&e))
}

/// Joins the attack's own finding (if any) with the result of the checks.
fn both(finding: Option<String>, checks: Outcome) -> Outcome {
    match (finding, checks) {
        (None, c) => c,
        (Some(f), Ok(())) => Err(f),
        (Some(f), Err(c)) => Err(format!("{f}; {c}")),
    }
}

/// Posts the target's well-formed request on queue 0 (not kicked).
fn post_good(dut: &Dut, fe: &mut RawFrontend) -> Result<u16, String> {
    let request = (dut.target.request)();
    fe.queue(0)
        .map_err(err("queue 0"))?
        .post(&request, false)
        .map_err(|e| format!("post a request: {}", chain(&e)))
}

fn kick(fe: &mut RawFrontend, q: usize) -> Result<(), String> {
    fe.queue(q)
        .map_err(err("queue"))?
        .kick()
        .map_err(|e| format!("kick: {}", chain(&e)))
}

/// The attacking connection itself still serves a correct request.
fn same_connection_serves(dut: &Dut, fe: &mut RawFrontend) -> Outcome {
    (dut.target.probe)(fe).map_err(|e| format!("the attacking connection no longer serves: {e}"))
}

fn opts(dut: &Dut, event_idx: bool) -> RawOptions {
    RawOptions {
        event_idx,
        ..dut.options()
    }
}

fn mem_size(fe: &RawFrontend) -> u64 {
    u64::try_from(fe.options().mem_size).unwrap_or(u64::MAX)
}

/// Writes a split-ring descriptor at guest address `at`.
fn write_desc(fe: &RawFrontend, at: u64, d: RawDesc) -> Result<(), String> {
    let mut bytes = d.addr.to_le_bytes().to_vec();
    bytes.extend_from_slice(&d.len.to_le_bytes());
    bytes.extend_from_slice(&d.flags.to_le_bytes());
    bytes.extend_from_slice(&d.next.to_le_bytes());
    fe.write_guest(at, &bytes)
        .map_err(err("write a descriptor"))
}

/// Writes `descs` as an indirect table in a fresh buffer; returns its address and length.
fn indirect_table(fe: &mut RawFrontend, descs: &[RawDesc]) -> Result<(u64, u32), String> {
    let len = u32::try_from(descs.len().saturating_mul(16)).map_err(|e| e.to_string())?;
    let table = fe
        .queue(0)
        .map_err(err("queue 0"))?
        .alloc_buffer(len)
        .map_err(|e| format!("alloc: {}", chain(&e)))?;
    let mut at = table;
    for d in descs {
        write_desc(fe, at, *d)?;
        at = at.saturating_add(16);
    }
    Ok((table, len))
}

fn scratch(fe: &mut RawFrontend, len: u32) -> Result<u64, String> {
    fe.queue(0)
        .map_err(err("queue 0"))?
        .alloc_buffer(len)
        .map_err(|e| format!("alloc: {}", chain(&e)))
}

fn blocking_eventfd() -> Result<EventFd, String> {
    EventFd::new(0).map_err(|e| format!("eventfd: {e}"))
}

fn kick_payload(q: u32) -> [u8; 8] {
    u64::from(q).to_le_bytes()
}

/// A log line cut to 300 characters.
fn cut(line: &str) -> String {
    line.chars().take(300).collect()
}

/// Runs one attack against a fresh daemon of `target` and panics with the attack's name,
/// what was observed (the attack's result and its [`Dut::note`]s) and the daemon's log
/// during the attack if it fails.
#[track_caller]
#[allow(clippy::panic)] // Test tooling: the panic is the test failure.
pub fn run_attack(target: Target, name: &str, attack: fn(&mut Dut) -> Outcome) {
    let mut dut = match Dut::start(target) {
        Ok(d) => d,
        Err(e) => panic!(
            "{}: {name}: cannot start the daemon: {e}",
            target.subject.name
        ),
    };
    dut.mark();
    let result = attack(&mut dut);
    let mut findings = dut.take_findings();
    if let Err(e) = result {
        findings.push(e);
    }
    if !findings.is_empty() {
        let e = findings.join("; ");
        let (bytes, _, text) = dut.log_since_mark();
        let lines: Vec<&str> = text.lines().collect();
        let tail: Vec<String> = if lines.len() > 16 {
            let head = lines.iter().take(8);
            let end = lines.iter().skip(lines.len().saturating_sub(8));
            head.chain([&"..."]).chain(end).map(|l| cut(l)).collect()
        } else {
            lines.iter().map(|l| cut(l)).collect()
        };
        panic!(
            "{} daemon, attack `{name}`: {e}\n--- daemon log during the attack ({bytes} bytes) ---\n{}\n---",
            target.subject.name,
            tail.join("\n")
        );
    }
}

/// Declares one `#[test]` per listed attack of [`crate::attacks`] against `$target`
/// (an expression of type [`Target`]).
#[macro_export]
macro_rules! hostile_frontend_tests {
    ($target:expr; $($attack:ident),+ $(,)?) => {
        $(
            #[test]
            fn $attack() {
                $crate::attacks::run_attack(
                    $target,
                    stringify!($attack),
                    $crate::attacks::$attack,
                );
            }
        )+
    };
}

/// Declares the attacks every device gets (any queue layout), as [`hostile_frontend_tests!`]
/// does; a device with more queues adds its own (the eventq attacks) with that macro.
#[macro_export]
macro_rules! shared_hostile_frontend_tests {
    ($target:expr) => {
        $crate::hostile_frontend_tests! {
            $target;
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
    };
}
