//! FAIL_NEXT groups: requests are collected until one without FAIL_NEXT, then run as one
//! host transaction; a failure anywhere fails every request of the group.
//!
//! The group owns one preallocated arena big enough for the largest legal group
//! (42 x 8192 bytes), so collecting and running requests never allocates.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::message::Message;
use crate::request::{Address, RequestHeader};
use crate::{MAX_GROUP_MESSAGES, MAX_MESSAGE_LEN};

/// A request as the transport decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A well-formed request of `len` data bytes.
    Valid {
        /// The decoded header.
        header: RequestHeader,
        /// Data length (write: bytes to send; read: bytes to receive).
        len: usize,
    },
    /// A malformed request: it fails, and with it the whole group.
    Invalid,
}

/// What the transport must do after [`Group::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<'a, T> {
    /// Copy the write payload (exactly this many bytes) into the buffer.
    Write(&'a mut [u8]),
    /// Nothing to copy now; the request is answered when the group finishes.
    Held,
    /// Answer this request ERR now (the group is over the message limit).
    FailNow(T),
}

/// One collected request.
#[derive(Debug)]
pub struct MessageSlot<T> {
    /// The transport's handle for answering the request.
    pub token: T,
    addr: Address,
    read: bool,
    offset: usize,
    len: usize,
}

/// The request group being collected.
pub struct Group<T> {
    arena: Box<[u8]>,
    slots: Vec<MessageSlot<T>>,
    used: usize,
    failed: bool,
    overflowing: bool,
}

impl<T> fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("messages", &self.slots.len())
            .field("used", &self.used)
            .field("failed", &self.failed)
            .field("overflowing", &self.overflowing)
            .finish()
    }
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Group<T> {
    /// An empty group with all its memory allocated up front.
    pub fn new() -> Self {
        Group {
            arena: vec![0u8; MAX_GROUP_MESSAGES.saturating_mul(MAX_MESSAGE_LEN)].into_boxed_slice(),
            slots: Vec::with_capacity(MAX_GROUP_MESSAGES),
            used: 0,
            failed: false,
            overflowing: false,
        }
    }

    /// Requests collected so far.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether the group will fail when finished.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Fails the group (e.g. the transport could not read a payload from guest memory).
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// Adds a request. `last` is true when the request ends the group (no FAIL_NEXT); the
    /// caller then calls [`Group::finish`].
    pub fn push(&mut self, entry: Entry, last: bool, token: T) -> Pushed<'_, T> {
        if self.overflowing || self.slots.len() >= MAX_GROUP_MESSAGES {
            self.failed = true;
            self.overflowing = !last;
            return Pushed::FailNow(token);
        }
        let (addr, read, len) = match entry {
            Entry::Valid { header, len } if len <= MAX_MESSAGE_LEN => {
                (header.addr, header.read, len)
            }
            Entry::Valid { .. } | Entry::Invalid => {
                self.failed = true;
                (Address::GENERAL_CALL, false, 0)
            }
        };
        let offset = self.used;
        let end = offset.saturating_add(len);
        // Invariant, not guest input: at most MAX_GROUP_MESSAGES messages (checked above) of
        // at most MAX_MESSAGE_LEN bytes (checked above) fit the arena. Should it ever break,
        // the request fails rather than being truncated.
        let Some(buf) = self.arena.get_mut(offset..end) else {
            debug_assert!(false, "group arena overflow: {offset}+{len}");
            self.failed = true;
            return Pushed::FailNow(token);
        };
        self.used = end;
        self.slots.push(MessageSlot {
            token,
            addr,
            read,
            offset,
            len,
        });
        if read {
            buf.fill(0);
            Pushed::Held
        } else if len == 0 {
            Pushed::Held
        } else {
            Pushed::Write(buf)
        }
    }

    /// Runs the group with `exec` (unless it already failed) and answers every request in
    /// order through `complete(token, ok, read_data)`. Returns why the group failed, if it
    /// ran and failed, or if the group's own bookkeeping is broken (a bug, never guest input).
    pub fn finish<E>(
        &mut self,
        exec: impl FnOnce(&mut [Message<'_>]) -> Result<(), E>,
        mut complete: impl FnMut(T, bool, &[u8]),
    ) -> Option<GroupFailure<E>> {
        let mut failure = None;
        let ok = if self.failed || self.slots.is_empty() {
            false
        } else {
            let mut msgs: [Message<'_>; MAX_GROUP_MESSAGES] = core::array::from_fn(|_| Message {
                addr: Address::GENERAL_CALL,
                read: false,
                buf: &mut [],
            });
            match carve(&mut self.arena, self.used, &self.slots, &mut msgs) {
                Ok(msgs) => match exec(msgs) {
                    Ok(()) => true,
                    Err(e) => {
                        failure = Some(GroupFailure::Exec(e));
                        false
                    }
                },
                Err(what) => {
                    debug_assert!(false, "{what}");
                    failure = Some(GroupFailure::Internal(what));
                    false
                }
            }
        };
        for slot in self.slots.drain(..) {
            let read_data = if ok && slot.read {
                self.arena
                    .get(slot.offset..slot.offset.saturating_add(slot.len))
            } else {
                Some(&[][..])
            };
            match read_data {
                Some(data) => complete(slot.token, ok, data),
                None => {
                    // Invariant: every slot lies inside `used` (carve checked it).
                    debug_assert!(false, "message outside the group arena");
                    failure = Some(GroupFailure::Internal("message outside the group arena"));
                    complete(slot.token, false, &[]);
                }
            }
        }
        // The group is over however it ended (its last request, the end of the batch, an
        // unusable chain): nothing of it, the overflow included, carries into the next one.
        self.used = 0;
        self.failed = false;
        self.overflowing = false;
        failure
    }
}

/// Cuts the arena's first `used` bytes into the slots' message buffers, in order.
///
/// Fails (instead of truncating a message) if the bookkeeping is inconsistent: more slots
/// than messages, `used` beyond the arena, or slot lengths that do not add up to `used`.
fn carve<'a, 'm, T>(
    arena: &'a mut [u8],
    used: usize,
    slots: &[MessageSlot<T>],
    msgs: &'m mut [Message<'a>; MAX_GROUP_MESSAGES],
) -> Result<&'m mut [Message<'a>], &'static str> {
    let mut rest = arena
        .get_mut(..used)
        .ok_or("group arena use beyond its size")?;
    let msgs = msgs
        .get_mut(..slots.len())
        .ok_or("more messages in a group than the limit")?;
    for (msg, slot) in msgs.iter_mut().zip(slots) {
        let (head, tail) = rest
            .split_at_mut_checked(slot.len)
            .ok_or("group messages longer than the arena in use")?;
        msg.addr = slot.addr;
        msg.read = slot.read;
        msg.buf = head;
        rest = tail;
    }
    if rest.is_empty() {
        Ok(msgs)
    } else {
        Err("group arena in use longer than its messages")
    }
}

/// Why a finished group failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupFailure<E> {
    /// The host transaction failed or had no equivalent on the adapter.
    #[error("the transfer failed")]
    Exec(#[source] E),
    /// The group's own bookkeeping is inconsistent: a bug, not something a guest can cause;
    /// the group was failed instead of running with truncated messages.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;
    use alloc::vec::Vec;

    fn hdr(addr: u8, read: bool) -> RequestHeader {
        RequestHeader {
            addr: Address::seven_bit(addr).unwrap(),
            read,
            fail_next: false,
        }
    }

    #[test]
    fn write_then_read_runs_as_one_transfer() {
        let mut g: Group<u16> = Group::new();
        match g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 1,
            },
            false,
            1,
        ) {
            Pushed::Write(b) => b.copy_from_slice(&[0x10]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g.push(
                Entry::Valid {
                    header: hdr(0x50, true),
                    len: 3
                },
                true,
                2
            ),
            Pushed::Held
        );
        let mut seen = Vec::new();
        let mut calls = 0;
        let err = g.finish(
            |msgs| -> Result<(), ()> {
                calls += 1;
                assert_eq!(msgs.len(), 2);
                assert_eq!(msgs[0].buf, &[0x10]);
                assert!(msgs[1].read);
                msgs[1].buf.copy_from_slice(&[7, 8, 9]);
                Ok(())
            },
            |t, ok, data| seen.push((t, ok, data.to_vec())),
        );
        assert!(err.is_none());
        assert_eq!(calls, 1, "the transfer ran once, with its asserts");
        assert_eq!(seen, [(1, true, vec![]), (2, true, vec![7, 8, 9])]);
        assert!(g.is_empty());
    }

    #[test]
    fn failure_fails_every_member() {
        let mut g: Group<u16> = Group::new();
        for (i, last) in [(0, false), (1, false), (2, true)] {
            let p = g.push(
                Entry::Valid {
                    header: hdr(0x50, false),
                    len: 0,
                },
                last,
                i,
            );
            assert_eq!(p, Pushed::Held, "a zero-length write has nothing to copy");
        }
        let mut seen = Vec::new();
        let mut calls = 0;
        let err = g.finish(
            |msgs| {
                calls += 1;
                assert_eq!(msgs.len(), 3);
                Err("nak")
            },
            |t, ok, _| seen.push((t, ok)),
        );
        assert_eq!(calls, 1);
        assert_eq!(err, Some(GroupFailure::Exec("nak")));
        assert_eq!(seen, [(0, false), (1, false), (2, false)]);
    }

    #[test]
    fn invalid_member_fails_group_without_executing() {
        let mut g: Group<u16> = Group::new();
        let p = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 2,
            },
            false,
            0,
        );
        assert!(matches!(p, Pushed::Write(ref b) if b.len() == 2), "{p:?}");
        assert_eq!(g.push(Entry::Invalid, true, 1), Pushed::Held);
        let mut seen = Vec::new();
        let mut calls = 0;
        let err = g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| seen.push((t, ok)),
        );
        assert!(err.is_none());
        assert_eq!(calls, 0, "a group with an invalid member must not execute");
        assert_eq!(seen, [(0, false), (1, false)]);
        // The next group starts clean.
        let p = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 0,
            },
            true,
            2,
        );
        assert_eq!(p, Pushed::Held, "a zero-length write has nothing to copy");
        let mut answers = Vec::new();
        g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| answers.push((t, ok)),
        );
        assert_eq!(calls, 1);
        assert_eq!(answers, [(2, true)]);
    }

    #[test]
    fn oversized_message_fails_group() {
        let mut g: Group<u16> = Group::new();
        let p = g.push(
            Entry::Valid {
                header: hdr(0x50, true),
                len: MAX_MESSAGE_LEN + 1,
            },
            true,
            0,
        );
        assert_eq!(p, Pushed::Held);
        assert!(g.is_failed());
        let mut seen = Vec::new();
        let mut calls = 0;
        g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| seen.push((t, ok)),
        );
        assert_eq!(calls, 0, "an oversized message must not execute");
        assert_eq!(seen, [(0, false)]);
    }

    #[test]
    fn group_over_limit_fails_whole_group() {
        let mut g: Group<usize> = Group::new();
        let mut failed_now = Vec::new();
        for i in 0..50 {
            let last = i == 49;
            if let Pushed::FailNow(t) = g.push(
                Entry::Valid {
                    header: hdr(0x50, false),
                    len: MAX_MESSAGE_LEN,
                },
                last,
                i,
            ) {
                failed_now.push(t);
            }
        }
        assert_eq!(failed_now, (42..50).collect::<Vec<_>>());
        let mut answers = Vec::new();
        let mut calls = 0;
        g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| answers.push((t, ok)),
        );
        assert_eq!(calls, 0, "a group over the limit must not execute");
        assert_eq!(answers, (0..42).map(|t| (t, false)).collect::<Vec<_>>());
        // After the over-long group ended, a new one works.
        let p = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 1,
            },
            true,
            99,
        );
        assert!(matches!(p, Pushed::Write(ref b) if b.len() == 1), "{p:?}");
        let mut answers = Vec::new();
        g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| answers.push((t, ok)),
        );
        assert_eq!(calls, 1);
        assert_eq!(answers, [(99, true)]);
    }

    #[test]
    fn group_over_limit_cut_by_batch_end_does_not_poison_next_group() {
        // More than 42 messages, all with FAIL_NEXT, then the available ring runs dry: the
        // transport ends the group (batch end) without a last request.
        let mut g: Group<usize> = Group::new();
        let mut failed_now = Vec::new();
        for i in 0..43 {
            let p = g.push(
                Entry::Valid {
                    header: hdr(0x50, false),
                    len: 1,
                },
                false,
                i,
            );
            if let Pushed::FailNow(t) = p {
                failed_now.push(t);
            }
        }
        assert_eq!(failed_now, [42]);
        let mut answers = Vec::new();
        let mut calls = 0;
        g.finish(
            |_| -> Result<(), ()> {
                calls += 1;
                Ok(())
            },
            |t, ok, _| answers.push((t, ok)),
        );
        assert_eq!(calls, 0, "a group over the limit must not execute");
        assert_eq!(answers, (0..42).map(|t| (t, false)).collect::<Vec<_>>());
        // The next batch's first request is a fresh group of its own.
        let p = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 0,
            },
            true,
            100,
        );
        assert_eq!(p, Pushed::Held, "first request of the next batch");
        let mut answers = Vec::new();
        g.finish(
            |_| -> Result<(), ()> { Ok(()) },
            |t, ok, _| answers.push((t, ok)),
        );
        assert_eq!(answers, [(100, true)]);
    }

    #[test]
    fn read_buffers_are_zeroed_between_groups() {
        let mut g: Group<u8> = Group::new();
        let read4 = Entry::Valid {
            header: hdr(0x50, true),
            len: 4,
        };
        assert_eq!(g.push(read4, true, 0), Pushed::Held);
        let mut answers = Vec::new();
        g.finish(
            |m| -> Result<(), ()> {
                m[0].buf.fill(0xaa);
                Ok(())
            },
            |t, ok, data| answers.push((t, ok, data.to_vec())),
        );
        assert_eq!(answers, [(0, true, vec![0xaa; 4])]);
        assert_eq!(g.push(read4, true, 1), Pushed::Held);
        let mut seen_by_adapter = Vec::new();
        g.finish(
            |m| -> Result<(), ()> {
                // What the adapter finds before it reads: no stale bytes of the last group.
                seen_by_adapter.push(m[0].buf.to_vec());
                Ok(())
            },
            |_, _, _| {},
        );
        assert_eq!(seen_by_adapter, [vec![0, 0, 0, 0]]);
    }
}
