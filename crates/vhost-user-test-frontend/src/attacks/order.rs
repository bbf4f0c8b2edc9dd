//! Messages out of order: kicks before the memory table is set.

use super::*;

pub(super) fn kick_before_mem_table_with(dut: &mut Dut, event_idx: bool) -> Outcome {
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
pub(super) fn early_kick(dut: &mut Dut, options: RawOptions) -> Result<RawFrontend, String> {
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
            dut,
            fe.send_acked(code::SET_VRING_CALL, &kick_payload(q), &[call_fd]),
            "SET_VRING_CALL before SET_MEM_TABLE",
        )?;
        fate(
            dut,
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
                dut.note(format!("{what}: {e}"));
            }
        }
        Err(e) => dut.note(format!(
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
