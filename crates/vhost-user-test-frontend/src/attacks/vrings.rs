//! Vring set-up and indices: bad sizes and queue indices, ring addresses unmapped, misaligned or across the end of RAM, available indices far ahead of the device.

use super::*;

pub(super) fn vring_num(dut: &mut Dut, num: u32) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    if let Some(s) = fe.setup.get_mut(0) {
        s.num = num;
    }
    let done = fate(dut, fe.finish(), "handshake")?;
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
            answered_or_closed(dut, &fe, what);
        } else {
            fate(dut, fe.send_acked(request, &payload, fds), what)?;
        }
        dut.check_round(what, Some(fe))?;
    }
    dut.mark();
    let fe = dut.good(dut.options())?;
    fate(
        dut,
        fe.send_acked(code::SET_VRING_NUM, &raw::vring_state(4096, 64), &[]),
        "SET_VRING_NUM 4096",
    )?;
    dut.check_after(Some(fe))
}

pub(super) fn placed(
    dut: &mut Dut,
    place: impl Fn(&mut raw::QueueSetup, u64),
    then_kick: bool,
) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    let size = mem_size(&fe);
    if let Some(s) = fe.setup.get_mut(0) {
        place(s, size);
    }
    if fate(dut, fe.finish(), "handshake")? == Fate::Accepted && then_kick {
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
    if fate(dut, fe.finish(), "handshake")? == Fate::Accepted {
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

pub(super) fn avail_idx_jump_with(dut: &mut Dut, event_idx: bool) -> Outcome {
    avail_idx_jump_on(dut, 0, event_idx)
}

pub(super) fn avail_idx_jump_on(dut: &mut Dut, q: usize, event_idx: bool) -> Outcome {
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
    if fate(dut, fe.finish(), "handshake")? == Fate::Accepted {
        kick(&mut fe, 0)?;
    }
    dut.check_after(Some(fe))
}
