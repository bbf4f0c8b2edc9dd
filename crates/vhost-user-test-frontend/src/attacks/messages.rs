//! Messages: config reads past the end, unknown feature bits and requests, oversized and malformed messages.

use super::*;

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
            Err(e) => dut.note(format!("{what}: {}", chain(&e))),
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
    let _ = fate(dut, fe.finish(), "SET_FEATURES u64::MAX")?;
    dut.check_round("SET_FEATURES u64::MAX", Some(fe))?;

    // One unknown bit (50) beside the offered ones; if accepted the device must serve.
    dut.mark();
    let mut fe = dut.raw(dut.options())?;
    fe.run_until(5).map_err(err("negotiation"))?;
    let features = fe.acked_features() | (1 << 50);
    fe.set_acked_features(features);
    if fate(dut, fe.finish(), "SET_FEATURES with bit 50")? == Fate::Accepted {
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
        dut,
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
        answered_or_closed(dut, &fe, &what);
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
