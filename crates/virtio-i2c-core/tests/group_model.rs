//! FAIL_NEXT grouping against a reference model written from the virtio-i2c spec.
//!
//! Random request sequences (valid and malformed requests, reads and writes, lengths around
//! the 8192-byte limit, groups around the 42-message limit, groups ended by a request
//! without FAIL_NEXT, by the end of a batch, or by an unusable chain, host transfers that
//! succeed or fail) are fed to [`Group`] the way the daemon feeds it, and to the model. Both
//! must give every request the same answer (status and read data) exactly once, and the
//! host must see exactly the transfers the model expects.
//!
//! The model's rules (spec, device-types/i2c, plus the kernel's i2c-dev limits):
//! - requests with FAIL_NEXT set, up to and including the first one without it, are one
//!   group; a group cut by the end of the available ring or by an unusable chain ends there;
//! - a group runs as one host transfer, all its messages in order, unless one of its
//!   requests is malformed, longer than 8192 bytes, or a write whose payload cannot be read,
//!   or the group has more than 42 messages: then it does not run;
//! - if the group does not run or the transfer fails, every request of the group is ERR
//!   (the first failed one included); otherwise every request is OK and each read returns
//!   exactly the bytes the host produced for it.
// Test code: panics are failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use proptest::prelude::*;
use virtio_i2c_core::group::{Entry, Pushed};
use virtio_i2c_core::{Address, Group, MAX_GROUP_MESSAGES, MAX_MESSAGE_LEN, RequestHeader};

/// One request as the transport decoded it.
#[derive(Debug, Clone)]
struct Req {
    valid: bool,
    addr: u8,
    read: bool,
    fail_next: bool,
    len: usize,
    /// A write whose payload cannot be read from guest memory.
    payload_fault: bool,
}

/// How a run of requests ends.
#[derive(Debug, Clone, Copy)]
enum GroupEnd {
    /// The last request has no FAIL_NEXT.
    Last,
    /// The available ring runs dry after the last request (which has FAIL_NEXT).
    BatchEnd,
    /// An unusable chain follows (it is answered on its own, outside the group).
    Broken,
}

#[derive(Debug, Clone)]
enum Op {
    Push(Req),
    BatchEnd,
    Broken,
}

/// What the host saw of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    addr: u8,
    read: bool,
    len: usize,
    /// Write payload (reads: must arrive zeroed, recorded as such).
    data: Vec<u8>,
}

/// The payload the transport copies into a write request's buffer.
fn payload(token: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (token * 7 + i) as u8).collect()
}

/// The bytes the host returns for message `index` of transfer `n`.
fn read_data(n: usize, index: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (n * 31 + index * 5 + i + 1) as u8)
        .collect()
}

/// The answers (status, read data) per token, and the host transfers.
type Observed = (Vec<Option<(bool, Vec<u8>)>>, Vec<Vec<Seen>>);

// ---- the model ----

fn model(ops: &[Op], outcomes: &[bool]) -> Observed {
    let pushes = ops.iter().filter(|o| matches!(o, Op::Push(_))).count();
    let mut answers = vec![None; pushes];
    let mut transfers: Vec<Vec<Seen>> = Vec::new();
    let mut group: Vec<(usize, Req)> = Vec::new();
    let mut token = 0;

    let mut close = |group: &mut Vec<(usize, Req)>, forced_fail: bool| {
        if group.is_empty() {
            return;
        }
        let runs = !forced_fail
            && group.len() <= MAX_GROUP_MESSAGES
            && group.iter().all(|(_, r)| {
                r.valid && r.len <= MAX_MESSAGE_LEN && !(r.payload_fault && !r.read && r.len > 0)
            });
        let ok = runs && {
            let n = transfers.len();
            transfers.push(
                group
                    .iter()
                    .map(|(t, r)| Seen {
                        addr: r.addr,
                        read: r.read,
                        len: r.len,
                        data: if r.read {
                            vec![0; r.len]
                        } else {
                            payload(*t, r.len)
                        },
                    })
                    .collect(),
            );
            outcomes[n % outcomes.len()]
        };
        let n = transfers.len().wrapping_sub(1);
        for (index, (t, r)) in group.drain(..).enumerate() {
            let data = if ok && r.read {
                read_data(n, index, r.len)
            } else {
                Vec::new()
            };
            answers[t] = Some((ok, data));
        }
    };

    for op in ops {
        match op {
            Op::Push(r) => {
                group.push((token, r.clone()));
                token += 1;
                if !r.fail_next {
                    close(&mut group, false);
                }
            }
            Op::BatchEnd => close(&mut group, false),
            Op::Broken => close(&mut group, true),
        }
    }
    close(&mut group, false);
    (answers, transfers)
}

// ---- the implementation, driven as the daemon drives it ----

fn implementation(ops: &[Op], outcomes: &[bool]) -> Observed {
    let pushes = ops.iter().filter(|o| matches!(o, Op::Push(_))).count();
    let mut answers: Vec<Option<(bool, Vec<u8>)>> = vec![None; pushes];
    let mut transfers: Vec<Vec<Seen>> = Vec::new();
    let mut g: Group<usize> = Group::new();
    let mut token = 0;

    let mut finish = |g: &mut Group<usize>, answers: &mut Vec<Option<(bool, Vec<u8>)>>| {
        let n = transfers.len();
        let err = g.finish(
            |msgs| {
                transfers.push(
                    msgs.iter()
                        .map(|m| Seen {
                            addr: m.addr.get(),
                            read: m.read,
                            len: m.buf.len(),
                            data: m.buf.to_vec(),
                        })
                        .collect(),
                );
                for (index, m) in msgs.iter_mut().enumerate() {
                    if m.read {
                        let len = m.buf.len();
                        m.buf.copy_from_slice(&read_data(n, index, len));
                    }
                }
                if outcomes[n % outcomes.len()] {
                    Ok(())
                } else {
                    Err("nak")
                }
            },
            |t, ok, data| {
                assert!(answers[t].is_none(), "request {t} answered twice");
                answers[t] = Some((ok, data.to_vec()));
            },
        );
        if let Some(e) = err {
            assert_eq!(e, virtio_i2c_core::group::GroupFailure::Exec("nak"));
        }
    };

    for op in ops {
        match op {
            Op::Push(r) => {
                let t = token;
                token += 1;
                let entry = if r.valid {
                    Entry::Valid {
                        header: RequestHeader {
                            addr: Address::seven_bit(r.addr).unwrap(),
                            read: r.read,
                            fail_next: r.fail_next,
                        },
                        len: r.len,
                    }
                } else {
                    Entry::Invalid
                };
                match g.push(entry, !r.fail_next, t) {
                    Pushed::Write(buf) => {
                        assert!(r.valid && !r.read, "a write buffer for {r:?}");
                        assert_eq!(buf.len(), r.len, "write buffer length");
                        if r.payload_fault {
                            g.mark_failed();
                        } else {
                            buf.copy_from_slice(&payload(t, r.len));
                        }
                    }
                    Pushed::Held => {}
                    Pushed::FailNow(t) => {
                        assert!(answers[t].is_none(), "request {t} answered twice");
                        answers[t] = Some((false, Vec::new()));
                    }
                }
                if !r.fail_next {
                    finish(&mut g, &mut answers);
                }
            }
            Op::BatchEnd => {
                if !g.is_empty() {
                    finish(&mut g, &mut answers);
                }
            }
            Op::Broken => {
                g.mark_failed();
                finish(&mut g, &mut answers);
            }
        }
    }
    if !g.is_empty() {
        finish(&mut g, &mut answers);
    }
    (answers, transfers)
}

// ---- strategies ----

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..5,
        1 => Just(MAX_MESSAGE_LEN),
        1 => Just(MAX_MESSAGE_LEN + 1),
        1 => 0usize..100_000,
    ]
}

fn req(fail_next: bool) -> impl Strategy<Value = Req> {
    (
        prop::bool::weighted(0.95),
        prop_oneof![Just(0x50u8), Just(0x68), 0u8..0x80],
        any::<bool>(),
        len(),
        prop::bool::weighted(0.03),
    )
        .prop_map(move |(valid, addr, read, len, payload_fault)| Req {
            valid,
            addr,
            read,
            fail_next,
            len,
            payload_fault,
        })
}

/// One run of requests: its size clusters around the 42-message limit now and then.
fn run() -> impl Strategy<Value = Vec<Op>> {
    let size = prop_oneof![6 => 1usize..5, 2 => 40usize..46, 1 => 1usize..70];
    let end = prop_oneof![6 => Just(GroupEnd::Last), 2 => Just(GroupEnd::BatchEnd), 1 => Just(GroupEnd::Broken)];
    (size, end).prop_flat_map(|(n, end)| {
        let reqs: Vec<_> = (0..n)
            .map(|i| req(i + 1 < n || !matches!(end, GroupEnd::Last)).boxed())
            .collect();
        reqs.prop_map(move |reqs| {
            let mut ops: Vec<Op> = reqs.into_iter().map(Op::Push).collect();
            match end {
                GroupEnd::Last => {}
                GroupEnd::BatchEnd => ops.push(Op::BatchEnd),
                GroupEnd::Broken => ops.push(Op::Broken),
            }
            ops
        })
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(run(), 0..8).prop_map(|runs| runs.into_iter().flatten().collect())
}

/// `PROPTEST_CASES` if set (e.g. for a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(2000),
        // Failures are pinned as named tests below, not in a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn groups_answer_as_the_spec_says(
        ops in ops(),
        outcomes in prop::collection::vec(prop::bool::weighted(0.8), 1..8),
    ) {
        let (want_answers, want_transfers) = model(&ops, &outcomes);
        let (got_answers, got_transfers) = implementation(&ops, &outcomes);
        prop_assert_eq!(&got_transfers, &want_transfers, "host transfers");
        for (t, (got, want)) in got_answers.iter().zip(&want_answers).enumerate() {
            prop_assert!(got.is_some(), "request {} never answered", t);
            prop_assert_eq!(got, want, "answer to request {}", t);
        }
    }
}

/// The case that found defect 7 of issue 7, pinned: an over-long group cut by the end of
/// the batch, then a one-request group.
#[test]
fn over_long_group_cut_by_batch_end_then_a_fresh_group() {
    let mut ops: Vec<Op> = (0..43)
        .map(|_| {
            Op::Push(Req {
                valid: true,
                addr: 0x50,
                read: false,
                fail_next: true,
                len: 1,
                payload_fault: false,
            })
        })
        .collect();
    ops.push(Op::BatchEnd);
    ops.push(Op::Push(Req {
        valid: true,
        addr: 0x50,
        read: true,
        fail_next: false,
        len: 2,
        payload_fault: false,
    }));
    let want = model(&ops, &[true]);
    assert_eq!(want.0[43], Some((true, read_data(0, 0, 2))));
    assert_eq!(implementation(&ops, &[true]), want);
}
