//! Descriptor chains: buffers outside RAM, cycles, nested and cyclic indirect tables, heads out of range, too many segments, malformed eventq chains.

use super::*;

/// Posts `chains` raw on queue 0, kicks, and then requires the same connection to serve.
pub(super) fn bad_chains(dut: &mut Dut, event_idx: bool, chains: &[Vec<RawDesc>]) -> Outcome {
    bad_chains_on(dut, 0, event_idx, chains)
}

/// Posts `chains` raw on queue `q`, kicks, and then requires the same connection to serve.
pub(super) fn bad_chains_on(
    dut: &mut Dut,
    q: usize,
    event_idx: bool,
    chains: &[Vec<RawDesc>],
) -> Outcome {
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

pub(super) fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDesc {
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

pub(super) fn indirect_attack(
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

pub(super) fn heads_out_of_range_on(dut: &mut Dut, q: usize) -> Outcome {
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
