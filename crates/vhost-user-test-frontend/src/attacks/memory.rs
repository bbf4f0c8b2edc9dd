//! Memory tables: swapped while running, swapped for zeroed memory, regions larger than their file or past its end.

use super::*;

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
        dut,
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
        dut,
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
pub(super) fn bad_region(dut: &mut Dut, region: Region, probe_gpa: u64) -> Outcome {
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(6).map_err(err("negotiation"))?;
    let table = raw::mem_table(&[region]);
    let fd = fe.memory_fd().map_err(err("memory"))?;
    let verdict = fate(
        dut,
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
        if fate(dut, fe.finish(), "vring setup")? == Fate::Accepted {
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
    if fate(dut, fe.finish(), "handshake claiming CONFIGURE_MEM_SLOTS")? != Fate::Accepted {
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
        dut,
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
