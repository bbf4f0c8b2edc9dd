//! The guest-script harness's checks fail when they should: a mock backend misbehaves in
//! one way at a time (a stray write, a chain kept, a chain returned twice, a used length too
//! long, an error from the handler), beside the same backend behaving; and a device write
//! into its own descriptor table leaves that event unchecked but not the next.
// Test code: panics are failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io;
use std::sync::Mutex;

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::{VhostUserBackend, VringT};
use vhost_user_test_frontend::guest_script::{self, RINGS, ScriptBuilder, ScriptDevice, Violation};
use vhost_user_test_frontend::inproc::{InprocMemory, InprocVring};
use virtio_queue::QueueOwnedT;
use vm_memory::{Bytes, GuestAddressSpace};
use vmm_sys_util::epoll::EventSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    None,
    /// Writes into the chain's device-readable buffer.
    StrayWrite,
    /// Pops the chain and keeps it.
    Keep,
    /// Returns the chain twice.
    Twice,
    /// Claims one byte more than the chain's writable buffers.
    LongUsedLen,
    /// Fails the event.
    Error,
}

struct Mock {
    how: Misbehaviour,
    mem: Mutex<Option<InprocMemory>>,
}

impl VhostUserBackend for Mock {
    type Bitmap = ();
    type Vring = InprocVring;

    fn num_queues(&self) -> usize {
        1
    }
    fn max_queue_size(&self) -> usize {
        256
    }
    fn features(&self) -> u64 {
        0
    }
    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::empty()
    }
    fn set_event_idx(&self, _enabled: bool) {}
    fn update_memory(&self, mem: InprocMemory) -> io::Result<()> {
        *self.mem.lock().unwrap() = Some(mem);
        Ok(())
    }

    /// Echoes: writes 0x5a into the first writable byte and returns the chain with length 1.
    fn handle_event(
        &self,
        _event: u16,
        _evset: EventSet,
        vrings: &[InprocVring],
        _thread: usize,
    ) -> io::Result<()> {
        if self.how == Misbehaviour::Error {
            return Err(io::Error::other("mock failure"));
        }
        let mem = self.mem.lock().unwrap().clone().unwrap();
        let mem = mem.memory();
        let vring = &vrings[0];
        let mut state = vring.get_mut();
        let chains: Vec<_> = state.get_queue_mut().iter(&*mem).unwrap().collect();
        for chain in chains {
            let head = chain.head_index();
            let descs: Vec<_> = chain.collect();
            let readable = descs.iter().find(|d| !d.is_write_only()).unwrap();
            let writable = descs.iter().find(|d| d.is_write_only()).unwrap();
            mem.write_obj(0x5au8, writable.addr()).unwrap();
            match self.how {
                Misbehaviour::StrayWrite => mem.write_obj(0x5au8, readable.addr()).unwrap(),
                Misbehaviour::Keep => continue,
                Misbehaviour::Twice => state.add_used(head, 1).unwrap(),
                _ => {}
            }
            let len = if self.how == Misbehaviour::LongUsedLen {
                writable.len() + 1
            } else {
                1
            };
            state.add_used(head, len).unwrap();
        }
        Ok(())
    }
}

const DEVICE: ScriptDevice<'static> = ScriptDevice {
    queues: 1,
    events: &[0],
    max_held: &[0],
};

/// Two chains of one readable and one writable descriptor, then a kick.
fn script() -> Vec<u8> {
    ScriptBuilder::new(3, false)
        .write(0x6000, &[1, 2, 3, 4])
        .desc(0, 0, 0x6000, 4, 1, 1)
        .desc(0, 1, 0x6100, 2, 2, 0)
        .desc(0, 2, 0x6000, 4, 1, 3)
        .desc(0, 3, 0x6200, 2, 2, 0)
        .post(0, 0)
        .post(0, 2)
        .event(0)
        .build()
}

fn run(how: Misbehaviour) -> Result<guest_script::Outcome, Violation> {
    let mock = Mock {
        how,
        mem: Mutex::new(None),
    };
    guest_script::run(&mock, DEVICE, &script())
}

#[test]
fn a_well_behaved_backend_passes() {
    let o = run(Misbehaviour::None).unwrap();
    assert_eq!((o.events, o.popped, o.used), (1, 2, 2));
}

#[test]
fn a_write_into_a_readable_buffer_is_caught() {
    let e = run(Misbehaviour::StrayWrite).unwrap_err();
    assert!(
        matches!(
            e,
            Violation::StrayWrite {
                addr: 0x6000,
                after: 0x5a,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_chain_kept_is_caught() {
    let e = run(Misbehaviour::Keep).unwrap_err();
    assert!(matches!(e, Violation::NotReturned { count: 2, .. }), "{e}");
}

#[test]
fn a_chain_returned_twice_is_caught() {
    let e = run(Misbehaviour::Twice).unwrap_err();
    assert!(
        matches!(e, Violation::NotOutstanding { head: 0, .. }),
        "{e}"
    );
}

#[test]
fn a_used_length_past_the_writable_buffers_is_caught() {
    let e = run(Misbehaviour::LongUsedLen).unwrap_err();
    assert!(
        matches!(
            e,
            Violation::UsedLenTooLong {
                len: 3,
                writable: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_failing_handler_is_caught() {
    let e = run(Misbehaviour::Error).unwrap_err();
    assert!(matches!(e, Violation::HandleEvent { event: 0, .. }), "{e}");
}

/// One descriptor as 16 raw bytes.
fn raw_desc(addr: u64, len: u32, flags: u16, next: u16) -> Vec<u8> {
    let mut d = addr.to_le_bytes().to_vec();
    d.extend_from_slice(&len.to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    d.extend_from_slice(&next.to_le_bytes());
    d
}

/// A chain whose writable buffer is descriptor 4's address (written as raw descriptors in
/// the ring region: no script descriptor reaches it), kicked; then an ordinary chain, kicked.
fn self_modifying_then_ordinary(how: Misbehaviour) -> Result<guest_script::Outcome, Violation> {
    let mut descs = raw_desc(0x6000, 4, 1, 1);
    descs.extend(raw_desc(RINGS + 4 * 16, 2, 2, 0));
    let script = ScriptBuilder::new(3, false)
        .write(0x6000, &[1, 2, 3, 4])
        .ring_write(0, &descs)
        .post(0, 0)
        .event(0)
        .write(0x6010, &[5, 6, 7, 8])
        .desc(0, 2, 0x6010, 4, 1, 3)
        .desc(0, 3, 0x6200, 2, 2, 0)
        .post(0, 2)
        .event(0)
        .build();
    let mock = Mock {
        how,
        mem: Mutex::new(None),
    };
    guest_script::run(&mock, DEVICE, &script)
}

#[test]
fn a_self_modifying_event_is_counted_and_the_next_event_checked() {
    let o = self_modifying_then_ordinary(Misbehaviour::None).unwrap();
    assert_eq!(
        (o.events, o.unchecked_events, o.popped, o.used),
        (2, 1, 2, 1)
    );
}

#[test]
fn a_stray_write_after_a_self_modifying_event_is_caught() {
    // The stray write of the first (unchecked) event, into 0x6000, goes unseen.
    let e = self_modifying_then_ordinary(Misbehaviour::StrayWrite).unwrap_err();
    assert!(
        matches!(
            e,
            Violation::StrayWrite {
                addr: 0x6010,
                after: 0x5a,
                ..
            }
        ),
        "{e}"
    );
}
