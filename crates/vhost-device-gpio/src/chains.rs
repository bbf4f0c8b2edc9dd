//! Descriptor chains <-> `virtio-gpio-core`: reads each request from a chain's
//! device-readable part, runs it on the device, writes the response into the writable part;
//! holds and completes eventq buffers.
//!
//! No vhost types here but the drain loop's [`ChainSink`]/[`UsedRing`]. Every guest mistake becomes an ERR (or INVALID) status, or a used
//! length of 0 when not even a status byte can be written; nothing here fails the queue.

use log::debug;
use vhost_device_common::chain::{ChainError, ChainLayout, Segments};
use vhost_device_common::queue::{Chain, ChainMemory, ChainSink, UsedRing};
use vhost_device_common::ram::Ram;
use vhost_device_common::report::ErrorChain;
use virtio_gpio_core::device::DeviceError;
use virtio_gpio_core::msg::{
    self, EVENT_REQUEST_SIZE, EventRequestError, REQUEST_SIZE, RESPONSE_SIZE, RequestError,
};
use virtio_gpio_core::{EventStatus, GpioDevice, GpioHost, Response, Status};

/// An eventq buffer the device holds until its line's interrupt fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBuffer {
    /// Head descriptor index, for the used ring.
    pub head: u16,
    /// The line it waits on (for `--trace`).
    pub line: u16,
    /// Where the status byte goes.
    pub status: Segments,
}

impl HeldBuffer {
    /// Writes `status` into the buffer; returns the used length (1, or 0 if the guest's
    /// buffer is unusable).
    pub fn complete(&self, mem: &Ram, status: EventStatus) -> u32 {
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
pub fn process_request<H: GpioHost>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &Ram,
    chain: &ChainLayout,
    on_event: &mut dyn FnMut(HeldBuffer, EventStatus),
    trace: bool,
) -> u32 {
    match execute(device, mem, chain, on_event, trace) {
        Ok(len) => used_len(len),
        Err(e) => {
            debug!("request {}: {}", chain.head, ErrorChain(&e));
            if trace && !matches!(e, RequestFailure::Device(_)) {
                crate::trace::malformed(&e);
            }
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

fn execute<H: GpioHost>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &Ram,
    chain: &ChainLayout,
    on_event: &mut dyn FnMut(HeldBuffer, EventStatus),
    trace: bool,
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
    let answer = match device.execute(command, on_event) {
        Ok(Response::Value(v)) => {
            chain
                .writable
                .write_at(mem, 0, &msg::encode_response(Status::Ok, v))?;
            crate::trace::Answer::Value(v)
        }
        Ok(Response::Names(names)) => {
            chain.writable.write_at(mem, 1, names)?;
            chain.writable.write_at(mem, 0, &[Status::Ok as u8])?;
            crate::trace::Answer::Names(names.len())
        }
        Err(e) => {
            if trace {
                crate::trace::request(device, &command, Err(&e));
            }
            return Err(RequestFailure::Device(e));
        }
    };
    if trace {
        crate::trace::request::<_, _, DeviceError<H::Error>>(device, &command, Ok(answer));
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
pub fn process_event<H: GpioHost>(
    device: &mut GpioDevice<H, HeldBuffer>,
    mem: &Ram,
    chain: &ChainLayout,
    trace: bool,
) -> EventDisposition {
    let mut buffer = HeldBuffer {
        head: chain.head,
        line: u16::MAX,
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
        if trace {
            crate::trace::malformed_event();
        }
        return EventDisposition::Complete(buffer.complete(mem, EventStatus::Invalid));
    };
    buffer.line = line;
    match device.queue_event(line, buffer) {
        None => EventDisposition::Held,
        Some((buffer, status)) => {
            if trace {
                crate::trace::event(device, line, status);
            }
            EventDisposition::Complete(buffer.complete(mem, status))
        }
    }
}

/// Completes a held eventq buffer, if the eventq runs (a buffer of a stopped eventq is
/// dropped: it cannot be returned). With `--trace`, the completion is noted in `traced` to
/// be logged once the device is free to name the line.
pub fn complete_event(
    eventq: &mut Option<UsedRing<'_>>,
    buffer: HeldBuffer,
    status: EventStatus,
    traced: Option<&mut Vec<(u16, EventStatus)>>,
) {
    if let Some(t) = traced {
        t.push((buffer.line, status));
    }
    if let Some(used) = eventq {
        let len = buffer.complete(used.memory(), status);
        used.add(buffer.head, len);
    }
}

/// Logs the eventq completions noted by [`complete_event`].
pub fn trace_events<H: GpioHost>(
    device: &GpioDevice<H, HeldBuffer>,
    traced: &mut Vec<(u16, EventStatus)>,
) {
    for (line, status) in traced.drain(..) {
        crate::trace::event(device, line, status);
    }
}

/// Drains the requestq; releases eventq buffers into the eventq's used ring.
#[derive(Debug)]
pub struct RequestSink<'a, 'u, H> {
    /// The device.
    pub device: &'a mut GpioDevice<H, HeldBuffer>,
    /// The eventq, for buffers a request releases (`None` when it does not run).
    pub eventq: &'a mut Option<UsedRing<'u>>,
    /// `--trace`: log every message.
    pub trace: bool,
}

impl<H: GpioHost> ChainSink for RequestSink<'_, '_, H> {
    fn chain(&mut self, chain: Chain<'_>, mem: ChainMemory<'_>, used: &mut UsedRing<'_>) {
        let (head, len) = match chain {
            Ok(layout) => {
                let eventq = &mut *self.eventq;
                let trace = self.trace;
                // Only grows with --trace (an empty Vec does not allocate).
                let mut traced = Vec::new();
                let len = process_request(
                    self.device,
                    mem,
                    layout,
                    &mut |b, s| complete_event(eventq, b, s, trace.then_some(&mut traced)),
                    trace,
                );
                trace_events(self.device, &mut traced);
                (layout.head, len)
            }
            Err((head, e)) => {
                debug!("request chain {head}: {e}");
                (head, 0)
            }
        };
        used.add(head, len);
    }
}

/// Drains the eventq: each buffer is held on its line or returned at once.
#[derive(Debug)]
pub struct EventSink<'a, H> {
    /// The device.
    pub device: &'a mut GpioDevice<H, HeldBuffer>,
    /// `--trace`: log every returned buffer.
    pub trace: bool,
}

impl<H: GpioHost> ChainSink for EventSink<'_, H> {
    fn chain(&mut self, chain: Chain<'_>, mem: ChainMemory<'_>, used: &mut UsedRing<'_>) {
        match chain {
            Ok(layout) => match process_event(self.device, mem, layout, self.trace) {
                EventDisposition::Held => {}
                EventDisposition::Complete(len) => {
                    used.add(layout.head, len);
                }
            },
            Err((head, e)) => {
                debug!("eventq chain {head}: {e}");
                used.add(head, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests;
