//! The attacks of the hostile-frontend suite, each a function over a [`Dut`]: it attacks
//! through [`crate::raw`], then runs the checks of [`Dut::check_after`] (alive, idle CPU,
//! GET_VRING_BASE answered, a fresh connection answered within a second, bounded log).
//! An attack that runs several rounds gives every round the same checks
//! ([`Dut::check_round`], idle CPU over a shorter window), the last one [`Dut::check_after`].
//!
//! A refusal by the daemon (a failure ack or a closed connection) is always an acceptable
//! answer to a bad message; a hang, a death, a spin, a flood or a broken next connection
//! never is.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::dut::{Dut, chain};
use crate::raw::{self, RawError, RawFrontend, RawOptions, Region, UADDR_BASE, code};
use crate::{RawDesc, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

/// An attack's outcome: `Err` says what went wrong.
pub type Outcome = Result<(), String>;

thread_local! {
    /// Observations that fail the attack but do not end it (the checks still run).
    static FINDINGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records a failure and lets the attack go on to its checks.
fn note(finding: String) {
    FINDINGS.with(|f| f.borrow_mut().push(finding));
}

/// The findings recorded on this thread since the last call.
pub fn take_findings() -> Vec<String> {
    FINDINGS.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

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
fn fate(result: Result<(), RawError>, what: &str) -> Result<Fate, String> {
    match result {
        Ok(()) => Ok(Fate::Accepted),
        Err(RawError::Rejected { .. }) => Ok(Fate::Refused),
        Err(e) if e.is_closed() => Ok(Fate::Refused),
        Err(RawError::Timeout(t)) => {
            note(format!(
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
fn answered_or_closed(fe: &RawFrontend, what: &str) {
    match fe.conn.recv(Duration::from_secs(1)) {
        Ok(_) => {}
        Err(e) if e.is_closed() => {}
        Err(e) => {
            let after = match fe.conn.get_vring_base(0, Duration::from_secs(1)) {
                Ok(_) => "the connection still answers GET_VRING_BASE".to_owned(),
                Err(e) if e.is_closed() => "then the daemon closed the connection".to_owned(),
                Err(e) => format!("GET_VRING_BASE then: {}", chain(&e)),
            };
            note(format!(
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

// ---------------------------------------------------------------- out of order

fn kick_before_mem_table_with(dut: &mut Dut, event_idx: bool) -> Outcome {
    // Without protocol features (rings enabled at once), then with them.
    dut.mark();
    let fe = early_kick(
        dut,
        RawOptions {
            protocol_features: false,
            ..opts(dut, event_idx)
        },
    )?;
    dut.check_round("an early kick without protocol features", Some(fe))?;
    dut.mark();
    let fe = early_kick(dut, opts(dut, event_idx))?;
    dut.check_after(Some(fe))
}

/// SET_VRING_CALL, SET_VRING_KICK and a kick for each queue right after SET_FEATURES, then
/// the rest of the handshake; the connection must then serve.
fn early_kick(dut: &mut Dut, options: RawOptions) -> Result<RawFrontend, String> {
    let mut fe = dut.raw(options)?;
    // SET_OWNER .. SET_FEATURES, then each queue's call and kick fds, and a kick.
    fe.run_until(6).map_err(err("negotiation"))?;
    let n = u32::try_from(dut.target.subject.num_queues).unwrap_or(1);
    for q in 0..n {
        let qi = usize::try_from(q).unwrap_or(0);
        let (kick_fd, call_fd) = {
            let tq = fe.queue(qi).map_err(err("queue"))?;
            (tq.kick_fd(), tq.call_fd())
        };
        fate(
            fe.send_acked(code::SET_VRING_CALL, &kick_payload(q), &[call_fd]),
            "SET_VRING_CALL before SET_MEM_TABLE",
        )?;
        fate(
            fe.send_acked(code::SET_VRING_KICK, &kick_payload(q), &[kick_fd]),
            "SET_VRING_KICK before SET_MEM_TABLE",
        )?;
        kick(&mut fe, qi)?;
    }
    // Give the worker time to take the early kick before the memory table arrives (there is
    // nothing to observe: what happens to the kick is the subject of the attack).
    std::thread::sleep(Duration::from_millis(50));
    // Then the rest of the normal handshake, and the same connection must serve.
    let what = if fe.protocol_features() == 0 {
        "without protocol features"
    } else {
        "with protocol features"
    };
    match fe.finish() {
        Ok(()) => {
            if let Err(e) = same_connection_serves(dut, &mut fe) {
                note(format!("{what}: {e}"));
            }
        }
        Err(e) => note(format!(
            "{what}: handshake after an early kick failed: {}",
            chain(&e)
        )),
    }
    Ok(fe)
}

/// SET_VRING_KICK and a kick before SET_MEM_TABLE, with EVENT_IDX; the connection must then
/// complete its handshake and serve.
pub fn kick_before_mem_table(dut: &mut Dut) -> Outcome {
    kick_before_mem_table_with(dut, true)
}

/// The same without EVENT_IDX.
pub fn kick_before_mem_table_without_event_idx(dut: &mut Dut) -> Outcome {
    kick_before_mem_table_with(dut, false)
}

// ---------------------------------------------------------------- vring configuration

fn vring_num(dut: &mut Dut, num: u32) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    if let Some(s) = fe.setup.get_mut(0) {
        s.num = num;
    }
    let done = fate(fe.finish(), "handshake")?;
    if done == Fate::Accepted {
        // Accepted: a request and a kick on the ring the daemon now thinks has `num` entries.
        post_good(dut, &mut fe)?;
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}

/// SET_VRING_NUM 0.
pub fn vring_num_zero(dut: &mut Dut) -> Outcome {
    vring_num(dut, 0)
}

/// SET_VRING_NUM 65535.
pub fn vring_num_65535(dut: &mut Dut) -> Outcome {
    vring_num(dut, 65535)
}

/// SET_VRING_NUM 100 (not a power of two).
pub fn vring_num_not_power_of_two(dut: &mut Dut) -> Outcome {
    vring_num(dut, 100)
}

/// Every vring message with a queue index the device does not have.
pub fn vring_index_out_of_range(dut: &mut Dut) -> Outcome {
    let eventfd = EventFd::new(0).map_err(|e| e.to_string())?;
    let efd = eventfd.as_raw_fd();
    let rounds: [(&str, u32, Vec<u8>, bool); 9] = [
        (
            "SET_VRING_NUM 1000",
            code::SET_VRING_NUM,
            raw::vring_state(1000, 64),
            false,
        ),
        (
            "SET_VRING_NUM u32::MAX",
            code::SET_VRING_NUM,
            raw::vring_state(u32::MAX, 64),
            false,
        ),
        (
            "SET_VRING_ADDR 77",
            code::SET_VRING_ADDR,
            raw::vring_addr(77, UADDR_BASE, UADDR_BASE, UADDR_BASE),
            false,
        ),
        (
            "SET_VRING_BASE 1000",
            code::SET_VRING_BASE,
            raw::vring_state(1000, 0),
            false,
        ),
        (
            "SET_VRING_ENABLE 1000",
            code::SET_VRING_ENABLE,
            raw::vring_state(1000, 1),
            false,
        ),
        (
            "SET_VRING_KICK 255",
            code::SET_VRING_KICK,
            kick_payload(255).to_vec(),
            true,
        ),
        (
            "SET_VRING_CALL 200",
            code::SET_VRING_CALL,
            kick_payload(200).to_vec(),
            true,
        ),
        (
            "SET_VRING_ERR 99",
            code::SET_VRING_ERR,
            kick_payload(99).to_vec(),
            true,
        ),
        (
            "GET_VRING_BASE 1000",
            code::GET_VRING_BASE,
            raw::vring_state(1000, 0),
            false,
        ),
    ];
    for (what, request, payload, with_fd) in rounds {
        dut.mark();
        let fe = dut.good(dut.options())?;
        let fds: &[RawFd] = if with_fd { &[efd] } else { &[] };
        if request == code::GET_VRING_BASE {
            fe.conn.send(request, &payload, fds).map_err(err("send"))?;
            answered_or_closed(&fe, what);
        } else {
            fate(fe.send_acked(request, &payload, fds), what)?;
        }
        dut.check_round(what, Some(fe))?;
    }
    dut.mark();
    let fe = dut.good(dut.options())?;
    fate(
        fe.send_acked(code::SET_VRING_NUM, &raw::vring_state(4096, 64), &[]),
        "SET_VRING_NUM 4096",
    )?;
    dut.check_after(Some(fe))
}

// ---------------------------------------------------------------- ring placement

fn placed(dut: &mut Dut, place: impl Fn(&mut raw::QueueSetup, u64), then_kick: bool) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    let size = mem_size(&fe);
    if let Some(s) = fe.setup.get_mut(0) {
        place(s, size);
    }
    if fate(fe.finish(), "handshake")? == Fate::Accepted && then_kick {
        post_good(dut, &mut fe)?;
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}

/// Ring addresses outside every memory region.
pub fn ring_addresses_unmapped(dut: &mut Dut) -> Outcome {
    placed(
        dut,
        |s, size| {
            s.desc = UADDR_BASE.saturating_add(size).saturating_add(1 << 30);
            s.avail = 0x1000;
            s.used = !0xfff;
        },
        true,
    )
}

/// Misaligned ring addresses (descriptor table at +1, avail at +1, used at +2).
pub fn ring_addresses_misaligned(dut: &mut Dut) -> Outcome {
    placed(
        dut,
        |s, _| {
            s.desc = s.desc.saturating_add(1);
            s.avail = s.avail.saturating_add(1);
            s.used = s.used.saturating_add(2);
        },
        true,
    )
}

/// The available ring in the last 4 bytes of guest RAM: `flags` and `idx` readable, the
/// ring entries not. idx is set to 1, then a kick.
pub fn avail_ring_straddles_end_of_ram(dut: &mut Dut) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    let size = mem_size(&fe);
    let avail_gpa = size.saturating_sub(4);
    if let Some(s) = fe.setup.get_mut(0) {
        s.avail = UADDR_BASE.saturating_add(avail_gpa);
    }
    if fate(fe.finish(), "handshake")? == Fate::Accepted {
        fe.write_guest(avail_gpa.saturating_add(2), &1u16.to_le_bytes())
            .map_err(err("write avail.idx"))?;
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}

/// The used ring in the last 4 bytes of guest RAM; a request and a kick.
pub fn used_ring_straddles_end_of_ram(dut: &mut Dut) -> Outcome {
    placed(
        dut,
        |s, size| s.used = UADDR_BASE.saturating_add(size).saturating_sub(4),
        true,
    )
}

// ---------------------------------------------------------------- descriptors

/// Posts `chains` raw on queue 0, kicks, and then requires the same connection to serve.
fn bad_chains(dut: &mut Dut, event_idx: bool, chains: &[Vec<RawDesc>]) -> Outcome {
    bad_chains_on(dut, 0, event_idx, chains)
}

/// Posts `chains` raw on queue `q`, kicks, and then requires the same connection to serve.
fn bad_chains_on(dut: &mut Dut, q: usize, event_idx: bool, chains: &[Vec<RawDesc>]) -> Outcome {
    let mut fe = dut.good(opts(dut, event_idx))?;
    for c in chains {
        fe.queue(q)
            .map_err(err("queue"))?
            .post_raw(c)
            .map_err(|e| format!("post_raw: {}", chain(&e)))?;
    }
    kick(&mut fe, q)?;
    let finding = same_connection_serves(dut, &mut fe).err();
    both(finding, dut.check_after(Some(fe)))
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDesc {
    RawDesc {
        addr,
        len,
        flags,
        next,
    }
}

/// Descriptors pointing outside guest RAM, straddling its end, and at the top of the
/// address space; an indirect table outside RAM.
pub fn descriptors_outside_ram(dut: &mut Dut) -> Outcome {
    let mem = u64::try_from(dut.options().mem_size).unwrap_or(0);
    let w = VIRTQ_DESC_F_WRITE;
    let n = VIRTQ_DESC_F_NEXT;
    bad_chains(
        dut,
        true,
        &[
            vec![
                desc(mem.saturating_add(0x1000), 8, n, 1),
                desc(mem, 1, w, 0),
            ],
            vec![
                desc(mem.saturating_sub(4), 16, n, 1),
                desc(mem.saturating_sub(1), 2, w, 0),
            ],
            vec![desc(u64::MAX - 7, 16, n, 1), desc(u64::MAX, 1, w, 0)],
            vec![desc(0, u32::MAX, n, 1), desc(16, u32::MAX, w, 0)],
            vec![desc(mem.saturating_add(64), 32, VIRTQ_DESC_F_INDIRECT, 0)],
            vec![desc(u64::MAX - 15, 64, VIRTQ_DESC_F_INDIRECT, 0)],
        ],
    )
}

/// A chain whose `next` links form a cycle.
pub fn chain_cycle(dut: &mut Dut) -> Outcome {
    // A buffer at the end of guest memory (data area, never a ring).
    let buf = u64::try_from(dut.options().mem_size)
        .unwrap_or(0)
        .saturating_sub(4096);
    let n = VIRTQ_DESC_F_NEXT;
    bad_chains(
        dut,
        true,
        &[
            vec![desc(buf, 8, n, 1), desc(buf, 8, n, 0)],
            vec![desc(buf, 8, n, 0)],
            vec![
                desc(buf, 8, n, 1),
                desc(buf, 1, n | VIRTQ_DESC_F_WRITE, 2),
                desc(buf, 1, n, 1),
            ],
        ],
    )
}

fn indirect_attack(
    dut: &mut Dut,
    build: fn(&mut RawFrontend, u64) -> Result<Vec<RawDesc>, String>,
) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let buf = scratch(&mut fe, 64)?;
    let head = build(&mut fe, buf)?;
    fe.queue(0)
        .map_err(err("queue 0"))?
        .post_raw(&head)
        .map_err(|e| format!("post_raw: {}", chain(&e)))?;
    kick(&mut fe, 0)?;
    let finding = same_connection_serves(dut, &mut fe).err();
    both(finding, dut.check_after(Some(fe)))
}

/// An indirect table that contains an indirect descriptor (to a second table, and one
/// to itself).
pub fn nested_indirect_table(dut: &mut Dut) -> Outcome {
    indirect_attack(dut, |fe, buf| {
        let (inner, inner_len) = indirect_table(fe, &[desc(buf, 8, 0, 0)])?;
        let (outer, outer_len) = indirect_table(
            fe,
            &[
                desc(buf, 8, VIRTQ_DESC_F_NEXT, 1),
                desc(inner, inner_len, VIRTQ_DESC_F_INDIRECT, 0),
            ],
        )?;
        // A table whose only entry is itself.
        let selfref = scratch(fe, 16)?;
        write_desc(fe, selfref, desc(selfref, 16, VIRTQ_DESC_F_INDIRECT, 0))?;
        Ok(vec![
            desc(
                outer,
                outer_len,
                VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
                1,
            ),
            desc(selfref, 16, VIRTQ_DESC_F_INDIRECT, 0),
        ])
    })
}

/// An indirect table whose `next` links form a cycle.
pub fn cyclic_indirect_table(dut: &mut Dut) -> Outcome {
    indirect_attack(dut, |fe, buf| {
        let n = VIRTQ_DESC_F_NEXT;
        let (table, len) = indirect_table(
            fe,
            &[
                desc(buf, 8, n, 1),
                desc(buf, 1, n | VIRTQ_DESC_F_WRITE, 2),
                desc(buf, 1, n, 0),
            ],
        )?;
        Ok(vec![desc(table, len, VIRTQ_DESC_F_INDIRECT, 0)])
    })
}

/// A whole available ring of head indices beyond the descriptor table, then a kick (twice):
/// the log must not get a line per entry.
pub fn heads_out_of_range(dut: &mut Dut) -> Outcome {
    heads_out_of_range_on(dut, 0)
}

/// [`heads_out_of_range`] on the event queue (queue 1).
pub fn eventq_heads_out_of_range(dut: &mut Dut) -> Outcome {
    heads_out_of_range_on(dut, 1)
}

fn heads_out_of_range_on(dut: &mut Dut, q: usize) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let ring = fe.ring(q).ok_or("no such ring")?;
    let size = dut.target.queue_size;
    for round in 0..2u16 {
        for slot in 0..size {
            let at = ring.avail_slot_addr(slot).ok_or("ring address")?;
            let head = size.saturating_add(slot).saturating_add(round);
            fe.write_guest(at, &head.to_le_bytes())
                .map_err(err("write avail"))?;
        }
        let idx = size.wrapping_mul(round.wrapping_add(1));
        let at = ring.avail_idx_addr().ok_or("ring address")?;
        fe.write_guest(at, &idx.to_le_bytes())
            .map_err(err("write avail.idx"))?;
        kick(&mut fe, q)?;
    }
    dut.check_after(Some(fe))
}

/// A direct chain using every descriptor of the table, and an indirect table of 4096
/// one-byte segments.
pub fn too_many_segments(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let buf = scratch(&mut fe, 64)?;
    let size = dut.target.queue_size;
    // All but 8 slots (the probe afterwards needs a few).
    let count = size.saturating_sub(8);
    let direct: Vec<RawDesc> = (0..count)
        .map(|i| {
            let last = i.saturating_add(1) == count;
            desc(
                buf,
                1,
                if last { 0 } else { VIRTQ_DESC_F_NEXT },
                i.saturating_add(1),
            )
        })
        .collect();
    fe.queue(0)
        .map_err(err("queue 0"))?
        .post_raw(&direct)
        .map_err(|e| format!("post_raw: {}", chain(&e)))?;
    let entries: Vec<RawDesc> = (0..4096u16)
        .map(|i| {
            desc(
                buf,
                1,
                if i == 4095 { 0 } else { VIRTQ_DESC_F_NEXT },
                i.saturating_add(1),
            )
        })
        .collect();
    let (table, len) = indirect_table(&mut fe, &entries)?;
    fe.queue(0)
        .map_err(err("queue 0"))?
        .post_raw(&[desc(table, len, VIRTQ_DESC_F_INDIRECT, 0)])
        .map_err(|e| format!("post_raw: {}", chain(&e)))?;
    kick(&mut fe, 0)?;
    let finding = same_connection_serves(dut, &mut fe).err();
    both(finding, dut.check_after(Some(fe)))
}

// ---------------------------------------------------------------- ring indices

fn avail_idx_jump_with(dut: &mut Dut, event_idx: bool) -> Outcome {
    avail_idx_jump_on(dut, 0, event_idx)
}

fn avail_idx_jump_on(dut: &mut Dut, q: usize, event_idx: bool) -> Outcome {
    let mut fe = dut.good(opts(dut, event_idx))?;
    let ring = fe.ring(q).ok_or("no such ring")?;
    let at = ring.avail_idx_addr().ok_or("ring address")?;
    fe.write_guest(at, &60000u16.to_le_bytes())
        .map_err(err("write avail.idx"))?;
    kick(&mut fe, q)?;
    dut.check_after(Some(fe))
}

/// [`avail_idx_jump`] on the event queue (queue 1), with and without EVENT_IDX.
pub fn eventq_avail_idx_jump(dut: &mut Dut) -> Outcome {
    avail_idx_jump_on(dut, 1, true)?;
    dut.mark();
    avail_idx_jump_on(dut, 1, false)
}

/// Malformed chains on the event queue (queue 1): buffers outside RAM, a response buffer
/// the device may not write, an empty and an oversized request, a cycle; then the request
/// queue must still serve.
pub fn eventq_malformed_chains(dut: &mut Dut) -> Outcome {
    let mem = u64::try_from(dut.options().mem_size).unwrap_or(0);
    // Scratch at the end of guest memory (a data area, never a ring).
    let buf = mem.saturating_sub(4096);
    let w = VIRTQ_DESC_F_WRITE;
    let n = VIRTQ_DESC_F_NEXT;
    bad_chains_on(
        dut,
        1,
        true,
        &[
            vec![
                desc(mem.saturating_add(0x1000), 2, n, 1),
                desc(buf, 1, w, 0),
            ],
            vec![desc(buf, 2, n, 1), desc(mem, 1, w, 0)],
            vec![desc(buf, 2, n, 1), desc(buf.saturating_add(16), 1, 0, 0)],
            vec![desc(buf, 0, n, 1), desc(buf.saturating_add(16), 1, w, 0)],
            vec![
                desc(buf, 1000, n, 1),
                desc(buf.saturating_add(16), 64, w, 0),
            ],
            vec![
                desc(buf, 2, n, 1),
                desc(buf.saturating_add(16), 1, n | w, 0),
            ],
            vec![desc(buf, 2, 0, 0)],
        ],
    )
}

/// avail.idx set to next_avail + 60000 and a kick, with EVENT_IDX.
pub fn avail_idx_jump(dut: &mut Dut) -> Outcome {
    avail_idx_jump_with(dut, true)
}

/// The same without EVENT_IDX.
pub fn avail_idx_jump_without_event_idx(dut: &mut Dut) -> Outcome {
    avail_idx_jump_with(dut, false)
}

/// SET_VRING_BASE 30000 (avail.idx stays 0), then a kick.
pub fn vring_base_far_ahead(dut: &mut Dut) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    if let Some(s) = fe.setup.get_mut(0) {
        s.base = 30000;
    }
    if fate(fe.finish(), "handshake")? == Fate::Accepted {
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}

// ---------------------------------------------------------------- messages

/// GET_CONFIG with offsets and sizes far beyond any config space, and a size that the
/// message does not carry.
pub fn get_config_huge_offset_and_size(dut: &mut Dut) -> Outcome {
    let rounds: [(u32, u32, usize); 5] = [
        (0xffff_fff8, 8, 8),
        (0, 0x1000, 0x1000),
        (0x1000, 0x1000, 0x1000),
        (4, u32::MAX - 3, 8),
        (0, u32::MAX, 0),
    ];
    for (offset, size, carried) in rounds {
        let what = format!("GET_CONFIG offset {offset:#x} size {size:#x}");
        dut.mark();
        let fe = dut.good(dut.options())?;
        let payload = raw::config(offset, size, 0, &vec![0u8; carried]);
        fe.conn
            .send(code::GET_CONFIG, &payload, &[])
            .map_err(err("send"))?;
        match fe.conn.recv(Duration::from_secs(1)) {
            Ok(reply) => {
                let limit = 12usize.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
                if reply.payload.len() > limit {
                    return Err(format!(
                        "{what}: reply of {} bytes, more than asked",
                        reply.payload.len()
                    ));
                }
            }
            Err(e) if e.is_closed() => {}
            Err(e) => note(format!("{what}: {}", chain(&e))),
        }
        dut.check_round(&what, Some(fe))?;
    }
    dut.mark();
    let fe = dut.good(dut.options())?;
    let _ = fe.get_config(u32::MAX, 1);
    dut.check_after(Some(fe))
}

/// SET_FEATURES with every bit set, SET_PROTOCOL_FEATURES with every bit set, and an
/// unknown virtio feature bit alone.
pub fn unknown_feature_bits(dut: &mut Dut) -> Outcome {
    // Every virtio feature bit.
    dut.mark();
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(5).map_err(err("negotiation"))?;
    fe.set_acked_features(u64::MAX);
    let _ = fate(fe.finish(), "SET_FEATURES u64::MAX")?;
    dut.check_round("SET_FEATURES u64::MAX", Some(fe))?;

    // One unknown bit (50) beside the offered ones; if accepted the device must serve.
    dut.mark();
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(5).map_err(err("negotiation"))?;
    let features = fe.acked_features() | (1 << 50);
    fe.set_acked_features(features);
    if fate(fe.finish(), "SET_FEATURES with bit 50")? == Fate::Accepted {
        same_connection_serves(dut, &mut fe)?;
    }
    dut.check_round("SET_FEATURES with bit 50", Some(fe))?;

    // Every protocol feature bit.
    dut.mark();
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(3).map_err(err("negotiation"))?;
    fe.conn
        .send(code::SET_PROTOCOL_FEATURES, &u64::MAX.to_le_bytes(), &[])
        .map_err(err("SET_PROTOCOL_FEATURES"))?;
    fe.skip();
    let _ = fate(
        fe.finish(),
        "handshake after SET_PROTOCOL_FEATURES u64::MAX",
    )?;
    dut.check_after(Some(fe))
}

/// Request codes nobody defined (and defined ones the device has no use for), each with
/// NEED_REPLY on an established connection.
pub fn unknown_messages(dut: &mut Dut) -> Outcome {
    let mut codes: Vec<u32> = vec![0, 4, 6, 7, 19, 20, 22, 23];
    codes.extend(26..=35);
    codes.extend(39..=48);
    codes.extend([100, 1000, 0x8000_0000, u32::MAX]);
    let payload = [0u8; 16];
    for c in codes {
        let what = format!("request code {c}");
        dut.mark();
        let fe = dut.good(dut.options())?;
        fe.conn
            .send_bytes(
                &raw::message(c, raw::FLAG_VERSION | raw::FLAG_NEED_REPLY, 16, &payload),
                &[],
            )
            .map_err(err("send"))?;
        answered_or_closed(&fe, &what);
        dut.check_round(&what, Some(fe))?;
    }
    dut.mark();
    let fe = dut.good(dut.options())?;
    fe.conn.send(0xdead, &[0u8; 64], &[]).map_err(err("send"))?;
    dut.check_after(Some(fe))
}

/// Oversized messages, sizes that do not match the request, bad header flags, and memory
/// tables whose region count disagrees with the payload.
pub fn oversized_and_malformed_messages(dut: &mut Dut) -> Outcome {
    let v = raw::FLAG_VERSION;
    let big = vec![0u8; 0x1001];
    let huge = vec![0x5au8; 1 << 20];
    let table_9 = raw::mem_table(
        &[Region {
            guest_phys_addr: 0,
            memory_size: 4096,
            userspace_addr: UADDR_BASE,
            mmap_offset: 0,
        }; 9],
    );
    let mut table_1000 = raw::mem_table(&[Region {
        guest_phys_addr: 0,
        memory_size: 4096,
        userspace_addr: UADDR_BASE,
        mmap_offset: 0,
    }]);
    if let Some(n) = table_1000.get_mut(0..4) {
        n.copy_from_slice(&1000u32.to_le_bytes());
    }
    let rounds: Vec<(&str, Vec<u8>)> = vec![
        (
            "SET_MEM_TABLE of 0x1001 bytes",
            raw::message(code::SET_MEM_TABLE, v, 0x1001, &big),
        ),
        (
            "size 0xffffffff without payload",
            raw::message(code::GET_FEATURES, v, u32::MAX, &[]),
        ),
        (
            "unknown request with 1 MiB payload",
            raw::message(9999, v, 1 << 20, &huge),
        ),
        (
            "SET_FEATURES with 1 MiB payload",
            raw::message(code::SET_FEATURES, v, 1 << 20, &huge),
        ),
        (
            "SET_VRING_NUM of 4 bytes",
            raw::message(code::SET_VRING_NUM, v, 4, &[0; 4]),
        ),
        (
            "SET_VRING_NUM of 100 bytes",
            raw::message(code::SET_VRING_NUM, v, 100, &[0; 100]),
        ),
        (
            "SET_FEATURES of 0 bytes",
            raw::message(code::SET_FEATURES, v, 0, &[]),
        ),
        (
            "SET_VRING_ADDR of 8 bytes",
            raw::message(code::SET_VRING_ADDR, v, 8, &[0; 8]),
        ),
        ("version 0", raw::message(code::GET_FEATURES, 0, 0, &[])),
        ("version 2", raw::message(code::GET_FEATURES, 2, 0, &[])),
        (
            "REPLY flag on a request",
            raw::message(code::GET_FEATURES, v | raw::FLAG_REPLY, 0, &[]),
        ),
        (
            "all flag bits",
            raw::message(code::GET_FEATURES, u32::MAX, 0, &[]),
        ),
        (
            "SET_MEM_TABLE with 0 regions",
            raw::message(code::SET_MEM_TABLE, v, 8, &[0; 8]),
        ),
        (
            "SET_MEM_TABLE with 9 regions",
            raw::message(
                code::SET_MEM_TABLE,
                v,
                u32::try_from(table_9.len()).unwrap_or(0),
                &table_9,
            ),
        ),
        (
            "SET_MEM_TABLE claiming 1000 regions",
            raw::message(
                code::SET_MEM_TABLE,
                v,
                u32::try_from(table_1000.len()).unwrap_or(0),
                &table_1000,
            ),
        ),
    ];
    for (what, bytes) in rounds {
        dut.mark();
        let fe = dut.good(dut.options())?;
        match fe.conn.send_bytes(&bytes, &[]) {
            Ok(()) => {}
            Err(e) if e.is_closed() => {}
            Err(e) => return Err(format!("{what}: {}", chain(&e))),
        }
        // Whatever the daemon does with it, the connection must either close or answer
        // GET_VRING_BASE (a check of every round).
        dut.check_round(what, Some(fe))?;
    }
    // The last one is checked in full, with the connection kept open.
    dut.mark();
    let fe = dut.good(dut.options())?;
    let _ = fe
        .conn
        .send_bytes(&raw::message(code::SET_VRING_NUM, v, 4, &[0; 4]), &[]);
    dut.check_after(Some(fe))
}

// ---------------------------------------------------------------- memory tables

/// While running, SET_MEM_TABLE with the same memory again (as a frontend does when its
/// memory map changes) while requests are in flight: the connection must go on serving.
pub fn mem_table_swapped_while_running(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    same_connection_serves(dut, &mut fe)?;
    for _ in 0..4 {
        post_good(dut, &mut fe)?;
    }
    kick(&mut fe, 0)?;
    let (table, fd) = fe.mem_table().map_err(err("memory table"))?;
    if fate(
        fe.send_acked(code::SET_MEM_TABLE, &table, &[fd]),
        "SET_MEM_TABLE with the same memory while running",
    )? == Fate::Accepted
    {
        let finding = same_connection_serves(dut, &mut fe)
            .err()
            .map(|e| format!("after the same memory table again: {e}"));
        return both(finding, dut.check_after(Some(fe)));
    }
    dut.check_after(Some(fe))
}

/// While running, SET_MEM_TABLE to a fresh zeroed memfd, then a kick.
pub fn mem_table_swapped_to_zeroed_memory(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    same_connection_serves(dut, &mut fe)?;
    let size = mem_size(&fe);
    let zeroed = raw::memfd(size).map_err(|e| format!("memfd: {e}"))?;
    let table = raw::mem_table(&[Region {
        guest_phys_addr: 0,
        memory_size: size,
        userspace_addr: UADDR_BASE,
        mmap_offset: 0,
    }]);
    let accepted = fate(
        fe.send_acked(code::SET_MEM_TABLE, &table, &[zeroed.as_raw_fd()]),
        "SET_MEM_TABLE while running",
    )?;
    if accepted == Fate::Accepted {
        // The daemon now sees zeroes where the rings were; our memory has a request.
        post_good(dut, &mut fe)?;
        kick(&mut fe, 0)?;
        // The zeroed memory gets a wild idx too.
        use std::os::unix::fs::FileExt;
        let ring = fe.ring(0).ok_or("no ring 0")?;
        let at = ring.avail_idx_addr().ok_or("ring address")?;
        zeroed
            .write_all_at(&60000u16.to_le_bytes(), at)
            .map_err(|e| format!("write: {e}"))?;
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}

/// Negotiates, then sends SET_MEM_TABLE with `region` on the frontend's own 1 MiB memfd.
/// If the daemon accepts it, sets up the rings and posts a chain whose buffer is at
/// `probe_gpa`, and kicks. The daemon must refuse the table; it must in any case not die.
fn bad_region(dut: &mut Dut, region: Region, probe_gpa: u64) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(6).map_err(err("negotiation"))?;
    let table = raw::mem_table(&[region]);
    let fd = fe.memory_fd().map_err(err("memory"))?;
    let verdict = fate(
        fe.send_acked(code::SET_MEM_TABLE, &table, &[fd]),
        "SET_MEM_TABLE",
    )?;
    fe.skip();
    let mut finding = None;
    if verdict == Fate::Accepted {
        let mut f = format!(
            "SET_MEM_TABLE accepted a region of {:#x} bytes at file offset {:#x} on a memfd of {:#x} bytes",
            region.memory_size,
            region.mmap_offset,
            mem_size(&fe)
        );
        if fate(fe.finish(), "vring setup")? == Fate::Accepted {
            let w = VIRTQ_DESC_F_WRITE;
            let q = fe.queue(0).map_err(err("queue 0"))?;
            let head = q
                .post_raw(&[
                    desc(probe_gpa, 8, VIRTQ_DESC_F_NEXT, 1),
                    desc(probe_gpa.saturating_add(64), 2, w, 0),
                ])
                .map_err(|e| format!("post_raw: {}", chain(&e)))?;
            q.kick().map_err(|e| format!("kick: {}", chain(&e)))?;
            let seen = match q.wait_head(head, Duration::from_millis(500)) {
                Ok(c) => format!("returned with used length {}", c.used_len),
                Err(e) => format!("not returned ({})", chain(&e)),
            };
            f.push_str(&format!(
                " (then a chain with a buffer at {probe_gpa:#x}: {seen})"
            ));
        }
        finding = Some(f);
    }
    both(finding, dut.check_after(Some(fe)))
}

/// A 16 MiB region on the 1 MiB memfd; a descriptor at 8 MiB if accepted.
pub fn region_larger_than_file(dut: &mut Dut) -> Outcome {
    let region = Region {
        guest_phys_addr: 0,
        memory_size: 16 << 20,
        userspace_addr: UADDR_BASE,
        mmap_offset: 0,
    };
    bad_region(dut, region, 8 << 20)
}

/// A 1 MiB region whose mmap_offset is 64 MiB into the 1 MiB memfd.
pub fn region_offset_past_end_of_file(dut: &mut Dut) -> Outcome {
    let region = Region {
        guest_phys_addr: 0,
        memory_size: 1 << 20,
        userspace_addr: UADDR_BASE,
        mmap_offset: 64 << 20,
    };
    bad_region(dut, region, 0x8000)
}

/// ADD_MEM_REG of a region past the end of its file, on an established connection that
/// claimed CONFIGURE_MEM_SLOTS although the daemon does not offer it; a descriptor into the
/// region if accepted.
pub fn add_mem_reg_past_end_of_file(dut: &mut Dut) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(3).map_err(err("negotiation"))?;
    let claimed = fe.protocol_features() | raw::PROTOCOL_MEM_SLOTS;
    fe.conn
        .send(code::SET_PROTOCOL_FEATURES, &claimed.to_le_bytes(), &[])
        .map_err(err("SET_PROTOCOL_FEATURES"))?;
    fe.skip();
    if fate(fe.finish(), "handshake claiming CONFIGURE_MEM_SLOTS")? != Fate::Accepted {
        return dut.check_after(Some(fe));
    }
    let file = raw::memfd(1 << 20).map_err(|e| format!("memfd: {e}"))?;
    let gpa = 16 << 20;
    let region = Region {
        guest_phys_addr: gpa,
        memory_size: 4 << 20,
        userspace_addr: UADDR_BASE.saturating_add(gpa),
        mmap_offset: 0,
    };
    let verdict = fate(
        fe.send_acked(
            code::ADD_MEM_REG,
            &raw::single_region(&region),
            &[file.as_raw_fd()],
        ),
        "ADD_MEM_REG",
    )?;
    let mut finding = None;
    if verdict == Fate::Accepted {
        finding = Some("ADD_MEM_REG of 4 MiB on a 1 MiB memfd was accepted".to_owned());
        let _ = fe.queue(0).map_err(err("queue 0"))?.post_raw(&[
            desc(gpa.saturating_add(2 << 20), 8, VIRTQ_DESC_F_NEXT, 1),
            desc(gpa.saturating_add(3 << 20), 2, VIRTQ_DESC_F_WRITE, 0),
        ]);
        kick(&mut fe, 0)?;
    }
    both(finding, dut.check_after(Some(fe)))
}

// ---------------------------------------------------------------- file descriptors

/// Runs a handshake whose first kick fd for queue `q` (or every queue in `queues`) is `fd`.
fn with_kick_fd(dut: &Dut, queues: &[usize], fd: RawFd) -> Result<(RawFrontend, Fate), String> {
    let mut fe = dut.raw(dut.options())?;
    for q in queues {
        if let Some(s) = fe.setup.get_mut(*q) {
            s.kick_fd = Some(fd);
        }
    }
    let verdict = fate(fe.finish(), "handshake with a bad kick fd")?;
    Ok((fe, verdict))
}

/// A pipe as the kick fd (given in the handshake, so the daemon watches it), with 1 byte
/// written; then a request and one more byte.
pub fn kick_fd_is_a_pipe(dut: &mut Dut) -> Outcome {
    use std::io::Write;
    let (r, w) = raw::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut wf = std::fs::File::from(w);
    wf.write_all(&[1]).map_err(|e| format!("pipe write: {e}"))?;
    let (mut fe, verdict) = with_kick_fd(dut, &[0], r.as_raw_fd())?;
    if verdict == Fate::Accepted {
        post_good(dut, &mut fe)?;
        wf.write_all(&[1]).map_err(|e| format!("pipe write: {e}"))?;
    }
    let out = dut.check_after(Some(fe));
    drop((r, wf));
    out
}

/// Kick fds that are not eventfds: /dev/zero and /dev/null (always readable), a memfd and
/// a socket with 3 bytes in it.
pub fn kick_fd_is_not_an_eventfd(dut: &mut Dut) -> Outcome {
    let zero = OpenOptions::new()
        .read(true)
        .open("/dev/zero")
        .map_err(|e| e.to_string())?;
    let null = OpenOptions::new()
        .read(true)
        .open("/dev/null")
        .map_err(|e| e.to_string())?;
    let mem = raw::memfd(4096).map_err(|e| e.to_string())?;
    let (sock, peer) = UnixStream::pair().map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut &peer, &[1u8; 3]).map_err(|e| e.to_string())?;
    let fds: [(&str, RawFd); 4] = [
        ("/dev/zero", zero.as_raw_fd()),
        ("/dev/null", null.as_raw_fd()),
        ("a memfd", mem.as_raw_fd()),
        ("a socket", sock.as_raw_fd()),
    ];
    let last = fds.len().saturating_sub(1);
    for (i, (what, fd)) in fds.into_iter().enumerate() {
        dut.mark();
        let (mut fe, verdict) = with_kick_fd(dut, &[0], fd)?;
        if verdict == Fate::Accepted {
            post_good(dut, &mut fe)?;
        }
        if i == last {
            dut.check_after(Some(fe))
                .map_err(|e| format!("kick fd {what}: {e}"))?;
        } else {
            dut.check_round(&format!("kick fd {what}"), Some(fe))?;
        }
    }
    Ok(())
}

/// A blocking eventfd as the kick fd, replaced by SET_VRING_KICK with another one; then the
/// old one is written (the daemon may still watch it).
pub fn kick_fds_swapped_after_write(dut: &mut Dut) -> Outcome {
    let a = blocking_eventfd()?;
    let b = blocking_eventfd()?;
    let (fe, verdict) = with_kick_fd(dut, &[0], a.as_raw_fd())?;
    if verdict == Fate::Accepted {
        let swapped = fate(
            fe.send_acked(code::SET_VRING_KICK, &kick_payload(0), &[b.as_raw_fd()]),
            "SET_VRING_KICK swapping kick fds",
        )?;
        if swapped == Fate::Accepted {
            a.write(1).map_err(|e| format!("eventfd write: {e}"))?;
        }
    }
    let out = dut.check_after(Some(fe));
    drop((a, b));
    out
}

/// A frontend that swaps the kick fd of a running ring is then served through the new one
/// (the library registers a kick fd only when it starts a ring).
pub fn kick_on_a_swapped_fd_is_served(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let b = EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
    fate(
        fe.send_acked(code::SET_VRING_KICK, &kick_payload(0), &[b.as_raw_fd()]),
        "SET_VRING_KICK swapping kick fds",
    )?;
    let old = fe.queue(0).map_err(err("queue 0"))?.replace_kick(b);
    // Only the new fd is written from here on: the probe's answer proves it is served.
    (dut.target.probe)(&mut fe).map_err(|e| format!("a kick on the new kick fd: {e}"))?;
    let out = dut.check_after(Some(fe));
    drop(old);
    out
}

/// One blocking eventfd as the kick of queues 0 and 1, written once.
pub fn one_blocking_eventfd_kicks_both_queues(dut: &mut Dut) -> Outcome {
    let e = blocking_eventfd()?;
    let (fe, verdict) = with_kick_fd(dut, &[0, 1], e.as_raw_fd())?;
    if verdict == Fate::Accepted {
        e.write(1).map_err(|e| format!("eventfd write: {e}"))?;
    }
    let out = dut.check_after(Some(fe));
    drop(e);
    out
}

fn set_nonblocking(fd: &OwnedFd, on: bool) -> Result<(), String> {
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL on a descriptor we own.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

/// A call fd that is the blocking write end of a full pipe; a request completes.
pub fn call_fd_is_a_full_pipe(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let (r, w) = raw::pipe().map_err(|e| format!("pipe: {e}"))?;
    set_nonblocking(&w, true)?;
    let chunk = [0u8; 4096];
    loop {
        // SAFETY: writing from a valid buffer to a descriptor we own.
        let n = unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
    }
    // One byte at a time fills the last partial page.
    loop {
        // SAFETY: as above.
        let n = unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), 1) };
        if n <= 0 {
            break;
        }
    }
    set_nonblocking(&w, false)?;
    if fate(
        fe.send_acked(code::SET_VRING_CALL, &kick_payload(0), &[w.as_raw_fd()]),
        "SET_VRING_CALL with a full pipe",
    )? == Fate::Accepted
    {
        post_good(dut, &mut fe)?;
        kick(&mut fe, 0)?;
    }
    let out = dut.check_after(Some(fe));
    drop((r, w));
    out
}

/// A blocking call eventfd whose counter is at its maximum; a request completes.
pub fn call_eventfd_saturated(dut: &mut Dut) -> Outcome {
    let mut fe = dut.good(dut.options())?;
    let e = blocking_eventfd()?;
    e.write(u64::MAX - 1)
        .map_err(|e| format!("eventfd write: {e}"))?;
    if fate(
        fe.send_acked(code::SET_VRING_CALL, &kick_payload(0), &[e.as_raw_fd()]),
        "SET_VRING_CALL with a saturated eventfd",
    )? == Fate::Accepted
    {
        post_good(dut, &mut fe)?;
        kick(&mut fe, 0)?;
    }
    let out = dut.check_after(Some(fe));
    drop(e);
    out
}

/// Messages with the wrong number of fds attached.
pub fn wrong_number_of_fds(dut: &mut Dut) -> Outcome {
    let a = blocking_eventfd()?;
    let b = blocking_eventfd()?;
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    let mem = raw::memfd(1 << 20).map_err(|e| e.to_string())?;
    let region = |gpa: u64| Region {
        guest_phys_addr: gpa,
        memory_size: 1 << 20,
        userspace_addr: UADDR_BASE.saturating_add(gpa),
        mmap_offset: 0,
    };
    let two_regions = raw::mem_table(&[region(0), region(1 << 20)]);
    let one_region = raw::mem_table(&[region(0)]);
    let rounds: Vec<(&str, u32, Vec<u8>, Vec<RawFd>)> = vec![
        (
            "SET_VRING_KICK without fd or NOFD flag",
            code::SET_VRING_KICK,
            kick_payload(0).to_vec(),
            vec![],
        ),
        (
            "SET_VRING_KICK with two fds",
            code::SET_VRING_KICK,
            kick_payload(0).to_vec(),
            vec![fa, fb],
        ),
        (
            "SET_VRING_KICK with NOFD and an fd",
            code::SET_VRING_KICK,
            raw::VRING_NOFD.to_le_bytes().to_vec(),
            vec![fa],
        ),
        (
            "GET_FEATURES with an fd",
            code::GET_FEATURES,
            vec![],
            vec![fa],
        ),
        (
            "SET_VRING_NUM with an fd",
            code::SET_VRING_NUM,
            raw::vring_state(0, 64),
            vec![fa],
        ),
        (
            "SET_MEM_TABLE of 2 regions with 1 fd",
            code::SET_MEM_TABLE,
            two_regions,
            vec![mem.as_raw_fd()],
        ),
        (
            "SET_MEM_TABLE of 1 region with 3 fds",
            code::SET_MEM_TABLE,
            one_region.clone(),
            vec![mem.as_raw_fd(), fa, fb],
        ),
        (
            "SET_MEM_TABLE without fd",
            code::SET_MEM_TABLE,
            one_region,
            vec![],
        ),
    ];
    for (what, request, payload, fds) in rounds {
        dut.mark();
        let fe = dut.good(dut.options())?;
        let size = u32::try_from(payload.len()).unwrap_or(0);
        let sent = fe.conn.send_bytes(
            &raw::message(
                request,
                raw::FLAG_VERSION | raw::FLAG_NEED_REPLY,
                size,
                &payload,
            ),
            &fds,
        );
        match sent {
            Ok(()) => {}
            Err(e) if e.is_closed() => {}
            Err(e) => return Err(format!("{what}: {}", chain(&e))),
        }
        answered_or_closed(&fe, what);
        dut.check_round(what, Some(fe))?;
    }
    dut.mark();
    let fe = dut.good(dut.options())?;
    let _ = fe.conn.send(code::SET_VRING_KICK, &kick_payload(0), &[]);
    dut.check_after(Some(fe))
}

/// A message carrying more descriptors (40) than any request takes (the library receives at
/// most 32): it must be refused, not silently skipped with the stream left mid-message.
pub fn more_than_32_fds(dut: &mut Dut) -> Outcome {
    let e = blocking_eventfd()?;
    let many: Vec<RawFd> = vec![e.as_raw_fd(); 40];
    let fe = dut.good(dut.options())?;
    let sent = fe.conn.send_bytes(
        &raw::message(
            code::SET_VRING_CALL,
            raw::FLAG_VERSION | raw::FLAG_NEED_REPLY,
            8,
            &kick_payload(0),
        ),
        &many,
    );
    match sent {
        Ok(()) => {}
        Err(e) if e.is_closed() => {}
        Err(e) => return Err(format!("send: {}", chain(&e))),
    }
    // vhost (0.18) maps the truncated control message (MSG_CTRUNC) to a retry after the
    // header was consumed, so this connection is out of step and may neither answer nor
    // close until the attacker sends more: it only hurts the attacker's own connection
    // (docs/ARCHITECTURE.md). What must hold is the daemon: alive, idle, and serving the
    // next frontend once the attacker is gone.
    drop(fe);
    dut.check_after(None)
}

// ---------------------------------------------------------------- connections

/// Connects and drops the connection after each step of the handshake (including before
/// the first and in the middle of a message, and with requests in flight); a fresh
/// connection must be served after each.
pub fn drop_at_every_handshake_step(dut: &mut Dut) -> Outcome {
    let steps = {
        let fe = dut.raw(dut.options())?;
        fe.step_count()
    };
    for k in 0..=steps {
        dut.mark();
        let mut fe = dut.raw(dut.options())?;
        fe.run_until(k)
            .map_err(|e| format!("handshake step {k}: {}", chain(&e)))?;
        drop(fe);
        dut.check_round(&format!("dropping after {k} handshake steps"), None)?;
    }
    // Half a message: a SET_VRING_ADDR header announcing 40 bytes, 10 of them sent.
    dut.mark();
    let fe = dut.good(dut.options())?;
    let whole = raw::message(code::SET_VRING_ADDR, raw::FLAG_VERSION, 40, &[0u8; 10]);
    fe.conn.send_bytes(&whole, &[]).map_err(err("send"))?;
    drop(fe);
    dut.check_round("dropping in the middle of a message", None)?;
    // Requests in flight.
    dut.mark();
    let mut fe = dut.good(dut.options())?;
    for _ in 0..8 {
        post_good(dut, &mut fe)?;
    }
    kick(&mut fe, 0)?;
    drop(fe);
    dut.check_after(None)
        .map_err(|e| format!("after dropping with requests in flight: {e}"))
}

/// A second client connects while a first is served: the first must not be disturbed, and
/// when it leaves the second must be served (or refused), not left hanging.
pub fn two_clients_on_one_socket(dut: &mut Dut) -> Outcome {
    let mut first = dut.good(dut.options())?;
    same_connection_serves(dut, &mut first)?;
    let second =
        raw::RawConn::connect(dut.socket(), Duration::from_secs(1)).map_err(err("connect"))?;
    second
        .send(code::SET_OWNER, &[], &[])
        .map_err(err("second client: SET_OWNER"))?;
    second
        .send(code::GET_FEATURES, &[], &[])
        .map_err(err("second client: GET_FEATURES"))?;
    same_connection_serves(dut, &mut first)
        .map_err(|e| format!("with a second client waiting: {e}"))?;
    drop(first);
    match second.recv(Duration::from_secs(1)) {
        Ok(reply) if reply.request == code::GET_FEATURES => drop(second),
        Ok(reply) => {
            return Err(format!("second client: unexpected reply {reply:?}"));
        }
        Err(e) if e.is_closed() => {}
        Err(e) => {
            return Err(format!(
                "second client neither served nor refused after the first left: {}",
                chain(&e)
            ));
        }
    }
    dut.check_after(None)
}

/// 10,000 connections opened and closed at once: the fd count stays flat, the daemon keeps
/// serving, within 30 s.
pub fn connect_disconnect_10000(dut: &mut Dut) -> Outcome {
    const CYCLES: usize = 10_000;
    const LIMIT: Duration = Duration::from_secs(30);
    dut.fresh_answer()?;
    let before = dut.settled_fd_count(None)?;
    dut.mark();
    let start = Instant::now();
    for i in 0..CYCLES {
        // Bounded: a daemon that stops accepting fills the backlog, and the connect then
        // fails once the suite's time is up instead of blocking.
        let left = LIMIT.saturating_sub(start.elapsed());
        match crate::socket::connect(dut.socket(), left) {
            Ok(s) => drop(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(format!(
                    "connection {i}: the daemon did not accept within {LIMIT:?} in all \
                     (its backlog stayed full)"
                ));
            }
            Err(e) => {
                dut.alive()
                    .map_err(|d| format!("after {i} connections: {d}"))?;
                return Err(format!("connection {i} failed: {e}"));
            }
        }
        if start.elapsed() > LIMIT {
            return Err(format!("only {i} connections in {LIMIT:?}"));
        }
    }
    dut.alive()
        .map_err(|d| format!("after {CYCLES} connections: {d}"))?;
    // The fresh connection is accepted only after every earlier one was handled.
    let deadline = Instant::now().checked_add(LIMIT.saturating_sub(start.elapsed()));
    loop {
        match dut.fresh_answer() {
            Ok(_) => break,
            Err(e) if deadline.is_none_or(|d| Instant::now() >= d) => {
                return Err(format!("after {CYCLES} connections: {e}"));
            }
            Err(_) => dut.alive()?,
        }
    }
    let elapsed = start.elapsed();
    let after = dut.settled_fd_count(Some(before))?;
    let mut failures = Vec::new();
    if after > before.saturating_add(2) {
        failures.push(format!(
            "open fds grew from {before} to {after} over {CYCLES} connections"
        ));
    }
    if elapsed > LIMIT {
        failures.push(format!("{CYCLES} connections took {elapsed:?}"));
    }
    let (bytes, lines, _) = dut.log_since_mark();
    if lines > CYCLES.saturating_mul(3) {
        failures.push(format!("log grew by {lines} lines ({bytes} bytes)"));
    }
    dut.mark();
    if let Err(e) = dut.check_after(None) {
        failures.push(e);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
