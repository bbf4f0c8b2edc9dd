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
        // The arena holds MAX_GROUP_MESSAGES messages of MAX_MESSAGE_LEN, so this fits.
        let end = offset.saturating_add(len);
        let Some(buf) = self.arena.get_mut(offset..end) else {
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
    /// order through `complete(token, ok, read_data)`. Returns `exec`'s error, if any.
    pub fn finish<E>(
        &mut self,
        exec: impl FnOnce(&mut [Message<'_>]) -> Result<(), E>,
        mut complete: impl FnMut(T, bool, &[u8]),
    ) -> Option<E> {
        let mut error = None;
        let ok = if self.failed || self.slots.is_empty() {
            false
        } else {
            let mut msgs: [Message<'_>; MAX_GROUP_MESSAGES] = core::array::from_fn(|_| Message {
                addr: Address::GENERAL_CALL,
                read: false,
                buf: &mut [],
            });
            let mut rest: &mut [u8] = self.arena.get_mut(..self.used).unwrap_or_default();
            for (msg, slot) in msgs.iter_mut().zip(self.slots.iter()) {
                let (head, tail) = rest.split_at_mut(slot.len.min(rest.len()));
                msg.addr = slot.addr;
                msg.read = slot.read;
                msg.buf = head;
                rest = tail;
            }
            let n = self.slots.len();
            match exec(msgs.get_mut(..n).unwrap_or_default()) {
                Ok(()) => true,
                Err(e) => {
                    error = Some(e);
                    false
                }
            }
        };
        for slot in self.slots.drain(..) {
            let data: &[u8] = if ok && slot.read {
                self.arena
                    .get(slot.offset..slot.offset.saturating_add(slot.len))
                    .unwrap_or_default()
            } else {
                &[]
            };
            complete(slot.token, ok, data);
        }
        // The group is over however it ended (its last request, the end of the batch, an
        // unusable chain): nothing of it, the overflow included, carries into the next one.
        self.used = 0;
        self.failed = false;
        self.overflowing = false;
        error
    }
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
        let err = g.finish(
            |msgs| -> Result<(), ()> {
                assert_eq!(msgs.len(), 2);
                assert_eq!(msgs[0].buf, &[0x10]);
                assert!(msgs[1].read);
                msgs[1].buf.copy_from_slice(&[7, 8, 9]);
                Ok(())
            },
            |t, ok, data| seen.push((t, ok, data.to_vec())),
        );
        assert!(err.is_none());
        assert_eq!(seen, [(1, true, vec![]), (2, true, vec![7, 8, 9])]);
        assert!(g.is_empty());
    }

    #[test]
    fn failure_fails_every_member() {
        let mut g: Group<u16> = Group::new();
        for (i, last) in [(0, false), (1, false), (2, true)] {
            let _ = g.push(
                Entry::Valid {
                    header: hdr(0x50, false),
                    len: 0,
                },
                last,
                i,
            );
        }
        let mut seen = Vec::new();
        let err = g.finish(|_| Err("nak"), |t, ok, _| seen.push((t, ok)));
        assert_eq!(err, Some("nak"));
        assert_eq!(seen, [(0, false), (1, false), (2, false)]);
    }

    #[test]
    fn invalid_member_fails_group_without_executing() {
        let mut g: Group<u16> = Group::new();
        let _ = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 2,
            },
            false,
            0,
        );
        let _ = g.push(Entry::Invalid, true, 1);
        let mut seen = Vec::new();
        let err = g.finish(
            |_| -> Result<(), ()> { panic!("must not execute") },
            |t, ok, _| seen.push((t, ok)),
        );
        assert!(err.is_none());
        assert_eq!(seen, [(0, false), (1, false)]);
        // The next group starts clean.
        let _ = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 0,
            },
            true,
            2,
        );
        let mut ran = false;
        g.finish(
            |_| -> Result<(), ()> {
                ran = true;
                Ok(())
            },
            |_, ok, _| assert!(ok),
        );
        assert!(ran);
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
        g.finish(
            |_| -> Result<(), ()> { Ok(()) },
            |t, ok, _| seen.push((t, ok)),
        );
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
        let mut seen = 0;
        g.finish(
            |_| -> Result<(), ()> { panic!("must not execute") },
            |_, ok, _| {
                assert!(!ok);
                seen += 1;
            },
        );
        assert_eq!(seen, 42);
        // After the over-long group ended, a new one works.
        let _ = g.push(
            Entry::Valid {
                header: hdr(0x50, false),
                len: 1,
            },
            true,
            99,
        );
        let mut ok_seen = false;
        g.finish(|_| -> Result<(), ()> { Ok(()) }, |_, ok, _| ok_seen = ok);
        assert!(ok_seen);
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
        let mut seen = 0;
        g.finish(
            |_| -> Result<(), ()> { panic!("must not execute") },
            |_, ok, _| {
                assert!(!ok);
                seen += 1;
            },
        );
        assert_eq!(seen, 42);
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
        let _ = g.push(
            Entry::Valid {
                header: hdr(0x50, true),
                len: 4,
            },
            true,
            0,
        );
        g.finish(
            |m| -> Result<(), ()> {
                m[0].buf.fill(0xaa);
                Ok(())
            },
            |_, _, _| {},
        );
        let _ = g.push(
            Entry::Valid {
                header: hdr(0x50, true),
                len: 4,
            },
            true,
            1,
        );
        g.finish(
            |m| -> Result<(), ()> {
                assert_eq!(m[0].buf, &[0, 0, 0, 0]);
                Ok(())
            },
            |_, _, _| {},
        );
    }
}
