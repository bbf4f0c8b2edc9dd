//! Unit tests of the parent module (kept out of the production file).

#![allow(clippy::arithmetic_side_effects)]
use super::*;
use crate::host::SimChip;
use vhost_device_common::chain::layout;
use virtio_gpio_core::msg::msg_type;
use virtio_queue::desc::{RawDescriptor, split::Descriptor as SplitDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const WRITE: u16 = 2;
const REQ: u64 = 0x1000;
const RESP: u64 = 0x2000;

type Dev = GpioDevice<SimChip, HeldBuffer>;

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

fn chain(m: &GuestMemoryMmap, descs: &[(u64, u32, u16)]) -> ChainLayout {
    let q = MockSplitQueue::new(m, 16);
    let raw: Vec<RawDescriptor> = descs
        .iter()
        .map(|&(a, l, f)| RawDescriptor::from(SplitDescriptor::new(a, l, f, 0)))
        .collect();
    q.build_desc_chain(&raw).unwrap();
    let mut queue: Queue = q.create_queue().unwrap();
    let c = queue.iter(m).unwrap().next().unwrap();
    layout(c).unwrap()
}

fn request(
    d: &mut Dev,
    m: &GuestMemoryMmap,
    t: u16,
    line: u16,
    v: u32,
    resp: u32,
) -> (u32, Vec<u8>) {
    m.write_slice(&msg::encode_request(t, line, v), GuestAddress(REQ))
        .unwrap();
    m.write_slice(&[0xaa; 64], GuestAddress(RESP)).unwrap();
    let c = chain(m, &[(REQ, 8, 0), (RESP, resp, WRITE)]);
    let len = process_request(d, &ram(m), &c, &mut |_, _| {}, false);
    let mut out = vec![0; len as usize];
    m.read_slice(&mut out, GuestAddress(RESP)).unwrap();
    (len, out)
}

/// The request path's view of `m` (the same mappings).
fn ram(m: &GuestMemoryMmap) -> Ram {
    Ram::new(std::sync::Arc::new(m.clone()))
}

fn dev(n: u16) -> Dev {
    GpioDevice::new(SimChip::new(n).unwrap()).unwrap()
}

#[test]
fn set_and_get_value() {
    let m = mem();
    let mut d = dev(2);
    assert_eq!(
        request(&mut d, &m, msg_type::SET_VALUE, 0, 1, 2),
        (2, vec![0, 0])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::SET_DIRECTION, 0, 1, 2),
        (2, vec![0, 0])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::GET_VALUE, 1, 0, 2),
        (2, vec![0, 1])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::GET_DIRECTION, 0, 0, 2),
        (2, vec![0, 1])
    );
}

#[test]
fn line_names_fill_exactly() {
    let m = mem();
    let mut d = dev(2);
    let size = d.config().names_size;
    assert_eq!(size, 12);
    let (len, out) = request(&mut d, &m, msg_type::GET_LINE_NAMES, 0, 0, size + 1);
    assert_eq!(len, 13);
    assert_eq!(out, b"\0sim-0\0sim-1\0");
    // Wrong size: ERR.
    let (len, out) = request(&mut d, &m, msg_type::GET_LINE_NAMES, 0, 0, size);
    assert_eq!((len, out), (2, vec![1, 0]));
}

#[test]
fn errors_are_statuses() {
    let m = mem();
    let mut d = dev(2);
    assert_eq!(
        request(&mut d, &m, msg_type::GET_VALUE, 2, 0, 2),
        (2, vec![1, 0])
    );
    assert_eq!(request(&mut d, &m, 99, 0, 0, 2), (2, vec![1, 0]));
    assert_eq!(
        request(&mut d, &m, msg_type::SET_VALUE, 0, 2, 2),
        (2, vec![1, 0])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::GET_VALUE, 0, 0, 1),
        (1, vec![1])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::GET_VALUE, 0, 0, 3),
        (2, vec![1, 0])
    );
    assert_eq!(
        request(&mut d, &m, msg_type::GET_VALUE, 0, 0, 0),
        (0, vec![])
    );
}

#[test]
fn short_request_and_bad_memory() {
    let m = mem();
    let mut d = dev(2);
    let c = chain(&m, &[(REQ, 4, 0), (RESP, 2, WRITE)]);
    assert_eq!(
        process_request(&mut d, &ram(&m), &c, &mut |_, _| {}, false),
        2
    );
    // Response outside guest memory: nothing can be written.
    let c = chain(&m, &[(REQ, 8, 0), (0x7fff_0000, 2, WRITE)]);
    assert_eq!(
        process_request(&mut d, &ram(&m), &c, &mut |_, _| {}, false),
        0
    );
    // Request outside guest memory: ERR.
    let c = chain(&m, &[(0x7fff_0000, 8, 0), (RESP, 2, WRITE)]);
    assert_eq!(
        process_request(&mut d, &ram(&m), &c, &mut |_, _| {}, false),
        2
    );
}

#[test]
fn split_request_is_gathered() {
    let m = mem();
    let mut d = dev(2);
    m.write_slice(
        &msg::encode_request(msg_type::GET_DIRECTION, 1, 0),
        GuestAddress(REQ),
    )
    .unwrap();
    let c = chain(
        &m,
        &[
            (REQ, 3, 0),
            (REQ + 3, 5, 0),
            (RESP, 1, WRITE),
            (RESP + 1, 1, WRITE),
        ],
    );
    assert_eq!(
        process_request(&mut d, &ram(&m), &c, &mut |_, _| {}, false),
        2
    );
}

#[test]
fn eventq_buffers() {
    let m = mem();
    let mut d = dev(2);
    m.write_slice(&[1u8, 0], GuestAddress(REQ)).unwrap();
    // No interrupt type: INVALID at once.
    let c = chain(&m, &[(REQ, 2, 0), (RESP, 1, WRITE)]);
    m.write_slice(&[0xaa], GuestAddress(RESP)).unwrap();
    assert_eq!(
        process_event(&mut d, &ram(&m), &c, false),
        EventDisposition::Complete(1)
    );
    assert_eq!(m.read_obj::<u8>(GuestAddress(RESP)).unwrap(), 0);
    // Malformed: INVALID, or used length 0 without a status byte.
    let c = chain(&m, &[(REQ, 3, 0), (RESP, 1, WRITE)]);
    assert_eq!(
        process_event(&mut d, &ram(&m), &c, false),
        EventDisposition::Complete(1)
    );
    let c = chain(&m, &[(REQ, 2, 0)]);
    assert_eq!(
        process_event(&mut d, &ram(&m), &c, false),
        EventDisposition::Complete(0)
    );
    // With a type, held; released INVALID by type NONE.
    request(&mut d, &m, msg_type::SET_DIRECTION, 1, 2, 2);
    request(&mut d, &m, msg_type::SET_IRQ_TYPE, 1, 1, 2);
    m.write_slice(&[1u8, 0], GuestAddress(REQ + 0x100)).unwrap();
    let c = chain(&m, &[(REQ + 0x100, 2, 0), (RESP + 0x100, 1, WRITE)]);
    assert_eq!(
        process_event(&mut d, &ram(&m), &c, false),
        EventDisposition::Held
    );
    m.write_slice(
        &msg::encode_request(msg_type::SET_IRQ_TYPE, 1, 0),
        GuestAddress(REQ),
    )
    .unwrap();
    let rc = chain(&m, &[(REQ, 8, 0), (RESP, 2, WRITE)]);
    let mut released = Vec::new();
    process_request(
        &mut d,
        &ram(&m),
        &rc,
        &mut |b, s| released.push((b.head, s)),
        false,
    );
    assert_eq!(released, vec![(c.head, EventStatus::Invalid)]);
}
