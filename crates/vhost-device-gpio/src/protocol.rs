//! virtio-gpio messages carried in descriptor chains: reads the request from a chain's
//! device-readable part, runs it on the device, writes the response into the writable part.
//!
//! No vhost types here. Every guest mistake becomes an ERR (or INVALID) status, or a used
//! length of 0 when not even a status byte can be written; nothing here fails the queue.

use log::debug;
use vhost_device_common::chain::{ChainError, ChainLayout, Segments};
use vhost_device_common::report::Chain;
use virtio_gpio_core::device::DeviceError;
use virtio_gpio_core::msg::{
    self, EVENT_REQUEST_SIZE, EventRequestError, REQUEST_SIZE, RESPONSE_SIZE, RequestError,
};
use virtio_gpio_core::{EventStatus, GpioDevice, GpioHost, Response, Status};
use vm_memory::GuestMemory;

/// An eventq buffer the device holds until its line's interrupt fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBuffer {
    /// Head descriptor index, for the used ring.
    pub head: u16,
    /// Where the status byte goes.
    pub status: Segments,
}

impl HeldBuffer {
    /// Writes `status` into the buffer; returns the used length (1, or 0 if the guest's
    /// buffer is unusable).
    pub fn complete<M: GuestMemory + ?Sized>(&self, mem: &M, status: EventStatus) -> u32 {
        match self.status.write_at(mem, 0, &[status as u8]) {
            Ok(()) => 1,
            Err(e) => {
                debug!("eventq buffer {}: {e}", self.head);
                0
            }
        }
    }
}

/// Why a request got an ERR response.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure<E: std::error::Error + 'static> {
    /// The chain's buffers are unusable.
    #[error("bad request chain")]
    Chain(#[from] ChainError),
    /// The request is malformed.
    #[error("bad request")]
    Request(#[from] RequestError),
    /// The response buffer does not have the size the request needs.
    #[error("response buffer is {got} bytes, the request needs {want}")]
    ResponseSize {
        /// Writable bytes in the chain.
        got: usize,
        /// Bytes the response takes.
        want: usize,
    },
    /// The device refused the request.
    #[error("request failed")]
    Device(#[source] DeviceError<E>),
}

fn used_len(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Executes the request in `chain` and writes its response; returns the used length.
/// Eventq buffers the request releases are passed to `on_event`.
pub fn process_request<H: GpioHost, M: GuestMemory + ?Sized>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &M,
    chain: &ChainLayout,
    on_event: &mut dyn FnMut(HeldBuffer, EventStatus),
) -> u32 {
    match execute(device, mem, chain, on_event) {
        Ok(len) => used_len(len),
        Err(e) => {
            debug!("request {}: {}", chain.head, Chain(&e));
            let response = msg::encode_response(Status::Err, 0);
            let len = chain.writable.len().min(RESPONSE_SIZE);
            match response
                .get(..len)
                .map(|r| chain.writable.write_at(mem, 0, r))
            {
                Some(Ok(())) => used_len(len),
                _ => 0,
            }
        }
    }
}

fn execute<H: GpioHost, M: GuestMemory + ?Sized>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &M,
    chain: &ChainLayout,
    on_event: &mut dyn FnMut(HeldBuffer, EventStatus),
) -> Result<usize, RequestFailure<H::Error>> {
    let len = chain.readable.len();
    if len != REQUEST_SIZE {
        return Err(RequestError::BadLength(len).into());
    }
    // Each guest field is read once, into this copy.
    let mut request = [0u8; REQUEST_SIZE];
    chain.readable.read_at(mem, 0, &mut request)?;
    let command = msg::parse_request(&request)?;
    let want = command.response_len(device.config().names_size);
    let got = chain.writable.len();
    if got != want {
        return Err(RequestFailure::ResponseSize { got, want });
    }
    match device
        .execute(command, on_event)
        .map_err(RequestFailure::Device)?
    {
        Response::Value(v) => {
            chain
                .writable
                .write_at(mem, 0, &msg::encode_response(Status::Ok, v))?;
        }
        Response::Names(names) => {
            chain.writable.write_at(mem, 1, names)?;
            chain.writable.write_at(mem, 0, &[Status::Ok as u8])?;
        }
    }
    Ok(want)
}

/// What to do with an eventq chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDisposition {
    /// The device holds it until the line's interrupt fires or is disabled.
    Held,
    /// Return it now with this used length.
    Complete(u32),
}

/// Queues the eventq buffer in `chain` on its line.
pub fn process_event<H: GpioHost, M: GuestMemory + ?Sized>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &M,
    chain: &ChainLayout,
) -> EventDisposition {
    let buffer = HeldBuffer {
        head: chain.head,
        status: chain.writable,
    };
    if chain.writable.is_empty() {
        debug!("eventq buffer {}: no status byte", chain.head);
        return EventDisposition::Complete(0);
    }
    let mut request = [0u8; EVENT_REQUEST_SIZE];
    let line = if chain.readable.len() == EVENT_REQUEST_SIZE {
        chain
            .readable
            .read_at(mem, 0, &mut request)
            .map_err(|e| debug!("eventq buffer {}: {e}", chain.head))
            .ok()
            .and_then(|()| msg::parse_event_request(&request).ok())
    } else {
        debug!(
            "eventq buffer {}: {}",
            chain.head,
            EventRequestError::BadLength(chain.readable.len())
        );
        None
    };
    let Some(line) = line else {
        return EventDisposition::Complete(buffer.complete(mem, EventStatus::Invalid));
    };
    match device.queue_event(line, buffer) {
        None => EventDisposition::Held,
        Some((buffer, status)) => EventDisposition::Complete(buffer.complete(mem, status)),
    }
}

#[cfg(test)]
mod tests {
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
        let len = process_request(d, m, &c, &mut |_, _| {});
        let mut out = vec![0; len as usize];
        m.read_slice(&mut out, GuestAddress(RESP)).unwrap();
        (len, out)
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
        assert_eq!(process_request(&mut d, &m, &c, &mut |_, _| {}), 2);
        // Response outside guest memory: nothing can be written.
        let c = chain(&m, &[(REQ, 8, 0), (0x7fff_0000, 2, WRITE)]);
        assert_eq!(process_request(&mut d, &m, &c, &mut |_, _| {}), 0);
        // Request outside guest memory: ERR.
        let c = chain(&m, &[(0x7fff_0000, 8, 0), (RESP, 2, WRITE)]);
        assert_eq!(process_request(&mut d, &m, &c, &mut |_, _| {}), 2);
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
        assert_eq!(process_request(&mut d, &m, &c, &mut |_, _| {}), 2);
    }

    #[test]
    fn eventq_buffers() {
        let m = mem();
        let mut d = dev(2);
        m.write_slice(&[1u8, 0], GuestAddress(REQ)).unwrap();
        // No interrupt type: INVALID at once.
        let c = chain(&m, &[(REQ, 2, 0), (RESP, 1, WRITE)]);
        m.write_slice(&[0xaa], GuestAddress(RESP)).unwrap();
        assert_eq!(process_event(&mut d, &m, &c), EventDisposition::Complete(1));
        assert_eq!(m.read_obj::<u8>(GuestAddress(RESP)).unwrap(), 0);
        // Malformed: INVALID, or used length 0 without a status byte.
        let c = chain(&m, &[(REQ, 3, 0), (RESP, 1, WRITE)]);
        assert_eq!(process_event(&mut d, &m, &c), EventDisposition::Complete(1));
        let c = chain(&m, &[(REQ, 2, 0)]);
        assert_eq!(process_event(&mut d, &m, &c), EventDisposition::Complete(0));
        // With a type, held; released INVALID by type NONE.
        request(&mut d, &m, msg_type::SET_DIRECTION, 1, 2, 2);
        request(&mut d, &m, msg_type::SET_IRQ_TYPE, 1, 1, 2);
        m.write_slice(&[1u8, 0], GuestAddress(REQ + 0x100)).unwrap();
        let c = chain(&m, &[(REQ + 0x100, 2, 0), (RESP + 0x100, 1, WRITE)]);
        assert_eq!(process_event(&mut d, &m, &c), EventDisposition::Held);
        m.write_slice(
            &msg::encode_request(msg_type::SET_IRQ_TYPE, 1, 0),
            GuestAddress(REQ),
        )
        .unwrap();
        let rc = chain(&m, &[(REQ, 8, 0), (RESP, 2, WRITE)]);
        let mut released = Vec::new();
        process_request(&mut d, &m, &rc, &mut |b, s| released.push((b.head, s)));
        assert_eq!(released, vec![(c.head, EventStatus::Invalid)]);
    }
}
