//! File descriptors: kick and call descriptors that are not eventfds, swapped, shared, full or saturated; the wrong number of descriptors with a message, and more than 32.

use super::*;

/// Runs a handshake whose first kick fd for queue `q` (or every queue in `queues`) is `fd`.
pub(super) fn with_kick_fd(
    dut: &Dut,
    queues: &[usize],
    fd: RawFd,
) -> Result<(RawFrontend, Fate), String> {
    let mut fe = dut.raw(dut.options())?;
    for q in queues {
        if let Some(s) = fe.setup.get_mut(*q) {
            s.kick_fd = Some(fd);
        }
    }
    let verdict = fate(dut, fe.finish(), "handshake with a bad kick fd")?;
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
            dut,
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
        dut,
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

pub(super) fn set_nonblocking(fd: &OwnedFd, on: bool) -> Result<(), String> {
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
        dut,
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
        dut,
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
        answered_or_closed(dut, &fe, what);
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
    // (docs/ARCHITECTURE.md). What it must never get is a success ack: the request with
    // its 40 descriptors was not carried out. Then the daemon: alive, idle, and serving
    // the next frontend once the attacker is gone.
    let finding = match fe.conn.recv(Duration::from_secs(1)) {
        Ok(reply) if reply.request == code::SET_VRING_CALL && reply.u64() == Some(0) => Some(
            "a SET_VRING_CALL with 40 descriptors was acked as done: it must be refused".to_owned(),
        ),
        // An error ack, another message, a close or no answer: refused.
        Ok(_) | Err(_) => None,
    };
    drop(fe);
    both(finding, dut.check_after(None))
}
