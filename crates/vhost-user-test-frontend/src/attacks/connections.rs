//! Connections: dropped at every handshake step, two clients on one socket, 10,000 connects.

use super::*;

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
