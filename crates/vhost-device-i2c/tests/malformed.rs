//! Hostile and malformed requests: each gets ERR when a status byte can be written (used
//! length 0 otherwise), executes nothing, and the queue keeps serving the next request.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost_user_test_frontend::devices::i2c::*;
use vhost_user_test_frontend::{
    Desc, RawDesc, TestFrontend, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_i2c_core::request::encode_header;
use vm_memory::{Bytes, GuestAddress};

/// Far beyond the test frontend's 4 MiB of guest memory.
const OUTSIDE: u64 = 1 << 40;

/// A header with raw flag bits.
fn header_with_flags(addr: u8, flags: u32) -> Vec<u8> {
    let mut h = encode_header(addr, false, false);
    h[4..8].copy_from_slice(&flags.to_le_bytes());
    h.to_vec()
}

fn assert_err(c: &vhost_user_test_frontend::Completion, what: &str) {
    assert_eq!((status(c), c.used_len), (ERR, 1), "{what}: {c:?}");
}

#[test]
fn header_shorter_than_8_bytes_is_err() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let hdr = encode_header(EEPROM, false, false);
    for len in [0usize, 1, 4, 7] {
        let c = one(&mut fe, vec![Desc::Out(hdr[..len].to_vec()), Desc::In(1)]);
        assert_err(&c, &format!("{len}-byte header"));
        still_serves(&mut fe);
    }
    // No readable descriptor at all: only the status byte.
    let c = one(&mut fe, vec![Desc::In(1)]);
    assert_err(&c, "no header");
    still_serves(&mut fe);
}

#[test]
fn header_split_over_descriptors_or_sharing_one_with_data_is_accepted() {
    // Devices must not assume a framing of the request onto descriptors.
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let hdr = encode_header(EEPROM, false, false);
    let c = one(
        &mut fe,
        vec![
            Desc::Out(hdr[..3].to_vec()),
            Desc::Out(hdr[3..].to_vec()),
            Desc::Out(vec![0x08, 0x5a]),
            Desc::In(1),
        ],
    );
    assert_eq!((status(&c), c.used_len), (OK, 1), "{c:?}");
    let mut joined = hdr.to_vec();
    joined.extend_from_slice(&[0x09, 0x5b]);
    let c = one(&mut fe, vec![Desc::Out(joined), Desc::In(1)]);
    assert_eq!((status(&c), c.used_len), (OK, 1), "{c:?}");
    // A read whose data and status share one writable buffer.
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x08], true),
            vec![
                Desc::Out(encode_header(EEPROM, true, false).to_vec()),
                Desc::In(3),
            ],
        ],
        false,
    );
    assert_eq!(done[1].used_len, 3, "{done:?}");
    assert_eq!(done[1].written[0], [0x5a, 0x5b, OK]);
}

#[test]
fn chain_without_status_byte_returns_used_len_0_and_executes_nothing() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // A write with only device-readable buffers: nowhere to put a status.
    let c = one(
        &mut fe,
        vec![
            Desc::Out(encode_header(EEPROM, false, false).to_vec()),
            Desc::Out(vec![0x40, 0x42]),
        ],
    );
    assert_eq!(c.used_len, 0, "{c:?}");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x40, 1), [0xff], "write executed");
    // Header only.
    let c = one(
        &mut fe,
        vec![Desc::Out(encode_header(EEPROM, true, false).to_vec())],
    );
    assert_eq!(c.used_len, 0, "{c:?}");
    still_serves(&mut fe);
}

#[test]
fn read_request_with_a_device_readable_buffer_is_err() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let c = one(
        &mut fe,
        vec![
            Desc::Out(encode_header(EEPROM, true, false).to_vec()),
            Desc::Out(vec![0; 4]),
            Desc::In(1),
        ],
    );
    assert_err(&c, "read with readable buffer");
    // Readable and writable buffers both present.
    let c = one(
        &mut fe,
        vec![
            Desc::Out(encode_header(EEPROM, true, false).to_vec()),
            Desc::Out(vec![0; 4]),
            Desc::In(4),
            Desc::In(1),
        ],
    );
    assert_err(&c, "read with readable and writable buffers");
    assert_eq!(c.written[0], [0; 4], "read data written despite ERR");
    still_serves(&mut fe);
}

#[test]
fn write_request_with_a_device_writable_data_buffer_is_err() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let c = one(
        &mut fe,
        vec![
            Desc::Out(encode_header(EEPROM, false, false).to_vec()),
            Desc::In(4),
            Desc::In(1),
        ],
    );
    assert_err(&c, "write with writable data buffer");
    // Write data present, plus a writable buffer before the status: still malformed, and
    // the data must not reach the device.
    let c = one(
        &mut fe,
        vec![
            Desc::Out(encode_header(EEPROM, false, false).to_vec()),
            Desc::Out(vec![0x50, 0x77]),
            Desc::In(4),
            Desc::In(1),
        ],
    );
    assert_err(&c, "write with extra writable buffer");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x50, 1), [0xff], "write executed");
    still_serves(&mut fe);
}

#[test]
fn reserved_flags_and_bad_address_fields_are_err() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    for flags in [1 << 2, 1 << 31, 0xffff_fffc] {
        let c = one(
            &mut fe,
            vec![
                Desc::Out(header_with_flags(EEPROM, flags)),
                Desc::Out(vec![0x58, 0x01]),
                Desc::In(1),
            ],
        );
        assert_err(&c, &format!("flags {flags:#x}"));
        still_serves(&mut fe);
    }
    assert_eq!(read_reg(&mut fe, EEPROM, 0x58, 1), [0xff], "write executed");
    // Address field: bit 0 set, high byte set, 10-bit form.
    for addr in [[0xa1u8, 0x00], [0xa0, 0x01], [0xf0, 0x50]] {
        let mut h = encode_header(EEPROM, false, false);
        h[..2].copy_from_slice(&addr);
        let c = one(&mut fe, vec![Desc::Out(h.to_vec()), Desc::In(1)]);
        assert_err(&c, &format!("address field {addr:02x?}"));
        still_serves(&mut fe);
    }
}

#[test]
fn messages_over_8192_bytes_are_err_and_8192_is_fine() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let c = one(&mut fe, read(EEPROM, 8193, false));
    assert_err(&c, "8193-byte read");
    assert!(
        c.written[0].iter().all(|&b| b == 0),
        "data written despite ERR"
    );
    let mut big = vec![0x60];
    big.resize(8193, 0x11);
    let c = one(&mut fe, write(EEPROM, &big, false));
    assert_err(&c, "8193-byte write");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x60, 1), [0xff], "write executed");
    still_serves(&mut fe);
    // The limit itself is allowed.
    let c = one(&mut fe, read(EEPROM, 8192, false));
    assert_eq!((status(&c), c.used_len), (OK, 8193));
    big.truncate(8192);
    let c = one(&mut fe, write(EEPROM, &big, false));
    assert_eq!((status(&c), c.used_len), (OK, 1));
    assert_eq!(read_reg(&mut fe, EEPROM, 0x60, 1), [0x11]);
}

/// A group of `n` messages: a 2-byte EEPROM write at `offset` first, then quick writes,
/// FAIL_NEXT on all but the last.
fn long_group(n: usize, offset: u8) -> Vec<Vec<Desc>> {
    (0..n)
        .map(|i| {
            let fail_next = i + 1 < n;
            if i == 0 {
                write(EEPROM, &[offset, 0x01], fail_next)
            } else {
                quick(EEPROM, false, fail_next)
            }
        })
        .collect()
}

#[test]
fn group_of_43_messages_is_err_and_42_work() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let done = submit(&mut fe, &long_group(43, 0x68), false);
    assert_eq!(done.len(), 43);
    for (i, c) in done.iter().enumerate() {
        assert_eq!((status(c), c.used_len), (ERR, 1), "message {i}: {c:?}");
    }
    assert_eq!(read_reg(&mut fe, EEPROM, 0x68, 1), [0xff], "write executed");
    // Far over the limit: every message fails, and the next group starts clean.
    let done = submit(&mut fe, &long_group(100, 0x68), false);
    assert!(done.iter().all(|c| status(c) == ERR));
    still_serves(&mut fe);

    let done = submit(&mut fe, &long_group(42, 0x70), false);
    assert_eq!(done.len(), 42);
    for (i, c) in done.iter().enumerate() {
        assert_eq!((status(c), c.used_len), (OK, 1), "message {i}: {c:?}");
    }
    assert_eq!(read_reg(&mut fe, EEPROM, 0x70, 1), [0x01]);
}

/// The largest group the limits allow (Linux's I2C_RDWR: 42 messages of 8192 bytes),
/// alternating 8192-byte page writes and 8192-byte reads of the EEPROM, one transfer.
fn largest_group(last_read_len: u32) -> (Vec<Vec<Desc>>, Vec<Vec<u8>>) {
    let mut group = Vec::new();
    let mut expected_reads = Vec::new();
    for i in 0..21u8 {
        // Offset 0 then 8191 bytes: the 24c02 wraps them inside page 0, so cell k holds the
        // last byte written at offset k, and the address pointer ends at 8191 % 8 = 7.
        let cell = |k: usize| i * 8 + k as u8;
        let mut payload = vec![0x00];
        payload.extend((0..8191).map(|j| cell(j % 8)));
        group.push(write(EEPROM, &payload, true));
        let last = i == 20;
        let len = if last { last_read_len } else { 8192 };
        group.push(read(EEPROM, len, !last));
        let mut mem = [0xffu8; 256];
        for (k, m) in mem.iter_mut().enumerate().take(8) {
            *m = cell(k);
        }
        expected_reads.push((0..8192).map(|n| mem[(7 + n) % 256]).collect());
    }
    (group, expected_reads)
}

#[test]
fn group_of_42_messages_of_8192_bytes_works_and_one_byte_more_is_err() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let (group, expected) = largest_group(8192);
    assert_eq!(group.len(), 42);
    let done = submit(&mut fe, &group, false);
    for (i, c) in done.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                (status(c), c.used_len),
                (OK, 1),
                "write {i}: {:?}",
                c.used_len
            );
        } else {
            assert_eq!((status(c), c.used_len), (OK, 8193), "read {i}");
            // Each read sees the write just before it: every message ran, in order.
            assert!(
                data(c) == expected[i / 2].as_slice(),
                "read {i}: wrong data"
            );
        }
    }
    let page = read_reg(&mut fe, EEPROM, 0x00, 8);
    assert_eq!(page, (160..168).collect::<Vec<u8>>());
    // One byte more in the last message: the whole group fails and nothing runs.
    write_reg(&mut fe, EEPROM, 0x00, &[0; 8]);
    let (group, _) = largest_group(8193);
    let done = submit(&mut fe, &group, false);
    for (i, c) in done.iter().enumerate() {
        assert_eq!((status(c), c.used_len), (ERR, 1), "message {i}");
    }
    assert_eq!(read_reg(&mut fe, EEPROM, 0x00, 8), [0; 8], "a write ran");
    still_serves(&mut fe);
}

#[test]
fn a_malformed_request_fails_its_whole_group() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x78, 0x01], true),
            vec![
                Desc::Out(header_with_flags(EEPROM, 1 << 5 | 1)),
                Desc::In(1),
            ],
            write(EEPROM, &[0x79, 0x02], false),
        ],
        false,
    );
    assert!(done.iter().all(|c| status(c) == ERR), "{done:?}");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x78, 2), [0xff, 0xff]);
}

/// A raw chain's expected outcome.
enum Expect {
    /// ERR in the status buffer at this address, used length 1: a status byte can be
    /// written, so it must be.
    Err(u64),
    /// Used length 0: no status byte can be written (none in the chain, or the chain's
    /// descriptors cannot be walked).
    Zero,
}

/// Writes `bytes` into a fresh buffer of the queue's data area; returns its address.
fn buffer(fe: &mut TestFrontend, bytes: &[u8]) -> u64 {
    let q = fe.queue(0);
    let at = q.alloc_buffer(bytes.len() as u32).unwrap();
    q.memory().write_slice(bytes, GuestAddress(at)).unwrap();
    at
}

/// Posts every malformed raw chain (with good requests between them), kicks once, and
/// checks each outcome.
fn post_raw_chains(fe: &mut TestFrontend) {
    let hdr_w = encode_header(EEPROM, false, false);
    let hdr_r = encode_header(EEPROM, true, false);
    let mut chains: Vec<(&str, Vec<RawDesc>, Expect)> = Vec::new();
    let raw = |addr, len, flags, next| RawDesc {
        addr,
        len,
        flags,
        next,
    };

    let st = buffer(fe, &[0xee]);
    chains.push((
        "header outside memory",
        vec![
            raw(OUTSIDE, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(st, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Err(st),
    ));
    let st = buffer(fe, &[0xee]);
    let h = buffer(fe, &hdr_w);
    chains.push((
        "write data outside memory",
        vec![
            raw(h, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(OUTSIDE, 2, VIRTQ_DESC_F_NEXT, 2),
            raw(st, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Err(st),
    ));
    let st = buffer(fe, &[0xee]);
    let h = buffer(fe, &hdr_r);
    chains.push((
        "read buffer outside memory",
        vec![
            raw(h, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(OUTSIDE, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2),
            raw(st, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Err(st),
    ));
    let h = buffer(fe, &hdr_r);
    chains.push((
        "status outside memory",
        vec![
            raw(h, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(OUTSIDE, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Zero,
    ));
    let st = buffer(fe, &[0xee]);
    chains.push((
        "address + length overflows",
        vec![
            raw(u64::MAX - 3, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(st, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Err(st),
    ));
    let h = buffer(fe, &hdr_w);
    chains.push((
        "descriptor loop",
        vec![
            raw(h, 8, VIRTQ_DESC_F_NEXT, 1),
            raw(h, 8, VIRTQ_DESC_F_NEXT, 0),
        ],
        Expect::Zero,
    ));
    let h = buffer(fe, &hdr_w);
    chains.push((
        "next beyond the table",
        vec![raw(h, 8, VIRTQ_DESC_F_NEXT, 0x7fff)],
        Expect::Zero,
    ));
    chains.push((
        "indirect table outside memory",
        vec![raw(OUTSIDE, 32, VIRTQ_DESC_F_INDIRECT, 0)],
        Expect::Zero,
    ));
    let table = buffer(fe, &[0u8; 32]);
    chains.push((
        "indirect table of zero descriptors",
        vec![raw(table, 0, VIRTQ_DESC_F_INDIRECT, 0)],
        Expect::Zero,
    ));
    let st = buffer(fe, &[0xee]);
    chains.push((
        "zero-length header descriptor",
        vec![
            raw(st, 0, VIRTQ_DESC_F_NEXT, 1),
            raw(st, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
        Expect::Err(st),
    ));

    let mut posted = Vec::new();
    for (name, descs, expect) in chains {
        let head = fe.queue(0).post_raw(&descs).unwrap();
        // A good request between the bad ones.
        let good = fe
            .queue(0)
            .post(&quick(EEPROM, true, false), false)
            .unwrap();
        posted.push((name, head, expect, good));
    }
    fe.queue(0).kick().unwrap();
    for (name, head, expect, good) in posted {
        let c = fe
            .queue(0)
            .wait_head(head, TIMEOUT)
            .unwrap_or_else(|e| panic!("{name}: no completion: {e:?}"));
        match expect {
            Expect::Zero => assert_eq!(c.used_len, 0, "{name}"),
            Expect::Err(st) => {
                let s: u8 = fe.queue(0).memory().read_obj(GuestAddress(st)).unwrap();
                assert!(
                    c.used_len == 1 && s == ERR,
                    "{name}: used_len {} status {s:#x} (a writable status byte must say ERR)",
                    c.used_len
                );
            }
        }
        let g = fe.queue(0).wait_head(good, TIMEOUT).unwrap();
        assert_eq!((status(&g), g.used_len), (OK, 1), "request after {name}");
    }
}

#[test]
fn descriptors_outside_guest_memory_do_not_crash_the_device() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    post_raw_chains(&mut fe);
    still_serves(&mut fe);
    assert!(d.is_running());
}

#[test]
fn many_bad_requests_in_one_kick_then_good_ones() {
    let mut d = SUBJECT.start();
    let mut fe = d.connect(0);
    let hdr_w = encode_header(EEPROM, false, false).to_vec();
    let hdr_r = encode_header(EEPROM, true, false).to_vec();
    let bad: Vec<Vec<Desc>> = vec![
        vec![Desc::Out(hdr_w[..5].to_vec()), Desc::In(1)],
        vec![Desc::Out(hdr_r.clone()), Desc::Out(vec![1]), Desc::In(1)],
        vec![Desc::Out(hdr_w.clone()), Desc::In(2), Desc::In(1)],
        vec![Desc::Out(header_with_flags(EEPROM, 4)), Desc::In(1)],
        read(EEPROM, 9000, false),
        read(ABSENT, 1, false),
    ];
    let mut all = bad.clone();
    all.push(write(EEPROM, &[0x88, 0x66], false));
    all.push(quick(EEPROM, false, false));
    let done = submit(&mut fe, &all, false);
    for (i, c) in done[..bad.len()].iter().enumerate() {
        assert_err(c, &format!("bad request {i}"));
    }
    for c in &done[bad.len()..] {
        assert_eq!((status(c), c.used_len), (OK, 1), "good request: {c:?}");
    }
    // The same mix through indirect descriptors, plus a request without status.
    let mut all = bad;
    all.push(vec![Desc::Out(hdr_w.clone()), Desc::Out(vec![0x90, 0x01])]);
    all.push(read(EEPROM, 1, false));
    let done = submit(&mut fe, &all, true);
    let n = done.len();
    for (i, c) in done[..n - 2].iter().enumerate() {
        assert_err(c, &format!("bad indirect request {i}"));
    }
    assert_eq!(done[n - 2].used_len, 0);
    assert_eq!((status(&done[n - 1]), done[n - 1].used_len), (OK, 2));
    post_raw_chains(&mut fe);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x88, 1), [0x66]);
    assert_eq!(
        read_reg(&mut fe, EEPROM, 0x90, 1),
        [0xff],
        "write without status ran"
    );
    assert!(d.is_running());
}
