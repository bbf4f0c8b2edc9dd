//! The device side: the unchanged core crates with the simulated devices, behind
//! virtqueue-device's queues. Runs in the Kick interrupt handler; everything it needs was
//! allocated at start.
//!
//! The chain <-> core glue mirrors the daemons' `chains.rs`: every rule about what the
//! buffers mean is the core crates' (`virtio_i2c_core::chain::decode`,
//! `GpioDevice::execute`); this file only walks, copies and completes.

use virtio_gpio_core::msg::{self, EVENT_REQUEST_SIZE, REQUEST_SIZE, RESPONSE_SIZE};
use virtio_gpio_core::sim::SimChip;
use virtio_gpio_core::{EventStatus, GpioDevice, Response, Status};
use virtio_i2c_core::chain::{self, ChainShape, PAYLOAD_OFFSET};
use virtio_i2c_core::group::Pushed;
use virtio_i2c_core::request::OUT_HDR_LEN;
use virtio_i2c_core::sim::SimAdapter;
use virtio_i2c_core::{Group, VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK, execute};
use virtqueue_device::{Chain, GuestMemory, Notify, Popped, QueueError, QueueLayout, SplitQueue};

use crate::platform::{PlatformClock, Q_GPIO_EVT, Q_GPIO_REQ, Q_I2C};

/// An I2C request waiting for its group to finish.
#[derive(Debug)]
pub struct Pending {
    chain: Chain,
}

/// An eventq buffer the GPIO device holds until its line's interrupt fires.
#[derive(Debug, Clone, Copy)]
pub struct HeldBuffer {
    chain: Chain,
}

/// Both devices and their queues.
#[derive(Debug)]
pub struct Devices {
    i2c_queue: SplitQueue,
    group: Group<Pending>,
    bus: SimAdapter<PlatformClock>,
    gpio_req: SplitQueue,
    gpio_evt: SplitQueue,
    gpio: GpioDevice<SimChip, HeldBuffer>,
}

/// The device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A queue layout was refused.
    #[error("queue layout")]
    Queue(#[source] QueueError),
    /// The GPIO chip has no lines.
    #[error("the GPIO chip has no lines")]
    NoLines,
}

impl Devices {
    /// Builds the devices (every allocation happens here) over the driver's queue layouts.
    pub fn new(
        mem: &GuestMemory<'_>,
        i2c: QueueLayout,
        gpio_req: QueueLayout,
        gpio_evt: QueueLayout,
        bus: SimAdapter<PlatformClock>,
        chip: SimChip,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            i2c_queue: SplitQueue::new(mem, i2c).map_err(SetupError::Queue)?,
            group: Group::new(),
            bus,
            gpio_req: SplitQueue::new(mem, gpio_req).map_err(SetupError::Queue)?,
            gpio_evt: SplitQueue::new(mem, gpio_evt).map_err(SetupError::Queue)?,
            gpio: GpioDevice::new(chip).map_err(|_| SetupError::NoLines)?,
        })
    }

    /// The GPIO config space.
    pub fn gpio_config(&self) -> [u8; msg::CONFIG_SIZE] {
        self.gpio.config().to_bytes()
    }

    /// Serves the kicked queues (bit n = queue n). A queue that stops stays stopped (its
    /// error is returned once per kick); the others keep serving.
    pub fn serve(
        &mut self,
        mem: &GuestMemory<'_>,
        kicks: u32,
        notify: &impl Notify,
    ) -> Result<(), QueueError> {
        let mut first_error = None;
        if kicks & 1 << Q_I2C != 0
            && let Err(e) = self.serve_i2c(mem, notify)
        {
            first_error.get_or_insert(e);
        }
        // Eventq first: a request below may complete buffers it holds.
        if kicks & 1 << Q_GPIO_EVT != 0
            && let Err(e) = self.serve_gpio_events(mem, notify)
        {
            first_error.get_or_insert(e);
        }
        if kicks & 1 << Q_GPIO_REQ != 0
            && let Err(e) = self.serve_gpio_requests(mem, notify)
        {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn serve_i2c(&mut self, mem: &GuestMemory<'_>, notify: &impl Notify) -> Result<(), QueueError> {
        loop {
            self.i2c_queue.disable_kicks(mem)?;
            while let Some(popped) = self.i2c_queue.pop(mem)? {
                self.i2c_chain(mem, popped)?;
            }
            // A group cut off by the end of the ring still runs (as the daemon does).
            if !self.group.is_empty() {
                self.finish_group(mem)?;
            }
            if !self.i2c_queue.enable_kicks(mem)? {
                break;
            }
        }
        if self.i2c_queue.needs_interrupt(mem)? {
            notify.used_buffer_interrupt(Q_I2C);
        }
        Ok(())
    }

    fn i2c_chain(&mut self, mem: &GuestMemory<'_>, popped: Popped) -> Result<(), QueueError> {
        let chain = match popped.chain {
            Ok(c) => c,
            Err(_) => {
                self.group.mark_failed();
                self.finish_group(mem)?;
                return self.i2c_queue.add_used(mem, popped.head, 0);
            }
        };
        let shape = ChainShape {
            readable: chain.readable_len(),
            writable: chain.writable_len(),
        };
        let mut hdr = [0u8; OUT_HDR_LEN];
        let header = (shape.has_header() && chain.read(mem, 0, &mut hdr).is_ok()).then_some(&hdr);
        let decoded = chain::decode(shape, header);
        match self
            .group
            .push(decoded.entry, decoded.last, Pending { chain })
        {
            Pushed::Write(buf) => {
                if chain.read(mem, PAYLOAD_OFFSET, buf).is_err() {
                    self.group.mark_failed();
                }
            }
            Pushed::Held => {}
            Pushed::FailNow(p) => {
                let len = complete_i2c(mem, &p.chain, false, &[]);
                self.i2c_queue.add_used(mem, p.chain.head(), len)?;
            }
        }
        if decoded.last {
            self.finish_group(mem)?;
        }
        Ok(())
    }

    fn finish_group(&mut self, mem: &GuestMemory<'_>) -> Result<(), QueueError> {
        let bus = &mut self.bus;
        let queue = &mut self.i2c_queue;
        let mut result = Ok(());
        // The group's own failure (no device, unsupported shape) is already in the statuses.
        let _failure = self.group.finish(
            |msgs| execute(bus, msgs),
            |p, ok, data| {
                let len = complete_i2c(mem, &p.chain, ok, data);
                if let Err(e) = queue.add_used(mem, p.chain.head(), len) {
                    result = Err(e);
                }
            },
        );
        result
    }

    fn serve_gpio_requests(
        &mut self,
        mem: &GuestMemory<'_>,
        notify: &impl Notify,
    ) -> Result<(), QueueError> {
        let mut events_done = false;
        loop {
            self.gpio_req.disable_kicks(mem)?;
            while let Some(popped) = self.gpio_req.pop(mem)? {
                let len = match popped.chain {
                    Ok(chain) => self.gpio_request(mem, &chain, &mut events_done)?,
                    Err(_) => 0,
                };
                self.gpio_req.add_used(mem, popped.head, len)?;
                // Edges the request caused on the wired partner.
                self.poll_edges(mem, &mut events_done)?;
            }
            if !self.gpio_req.enable_kicks(mem)? {
                break;
            }
        }
        if self.gpio_req.needs_interrupt(mem)? {
            notify.used_buffer_interrupt(Q_GPIO_REQ);
        }
        if events_done && self.gpio_evt.needs_interrupt(mem)? {
            notify.used_buffer_interrupt(Q_GPIO_EVT);
        }
        Ok(())
    }

    /// Runs one request; returns the used length (an ERR response when the request is bad).
    fn gpio_request(
        &mut self,
        mem: &GuestMemory<'_>,
        chain: &Chain,
        events_done: &mut bool,
    ) -> Result<u32, QueueError> {
        let evt = &mut self.gpio_evt;
        let mut evt_result = Ok(());
        let mut on_event = |held: HeldBuffer, status: EventStatus| {
            *events_done = true;
            let len = complete_event(mem, &held.chain, status);
            if let Err(e) = evt.add_used(mem, held.chain.head(), len) {
                evt_result = Err(e);
            }
        };
        let mut request = [0u8; REQUEST_SIZE];
        let command = (chain.readable_len() == REQUEST_SIZE)
            .then(|| chain.read(mem, 0, &mut request).ok())
            .flatten()
            .and_then(|()| msg::parse_request(&request).ok());
        let names_size = self.gpio.config().names_size;
        let answered = command
            .filter(|c| chain.writable_len() == c.response_len(names_size))
            .and_then(|c| match self.gpio.execute(c, &mut on_event) {
                Ok(Response::Value(v)) => chain
                    .write(mem, 0, &msg::encode_response(Status::Ok, v))
                    .ok()
                    .map(|()| RESPONSE_SIZE),
                Ok(Response::Names(names)) => {
                    let ok = chain.write(mem, 1, names).is_ok()
                        && chain.write(mem, 0, &[Status::Ok as u8]).is_ok();
                    ok.then(|| names.len().saturating_add(1))
                }
                Err(_) => None,
            });
        evt_result?;
        let len = match answered {
            Some(len) => len,
            None => {
                let response = msg::encode_response(Status::Err, 0);
                let len = chain.writable_len().min(RESPONSE_SIZE);
                match response.get(..len).map(|r| chain.write(mem, 0, r)) {
                    Some(Ok(())) => len,
                    _ => 0,
                }
            }
        };
        Ok(u32::try_from(len).unwrap_or(0))
    }

    fn serve_gpio_events(
        &mut self,
        mem: &GuestMemory<'_>,
        notify: &impl Notify,
    ) -> Result<(), QueueError> {
        loop {
            self.gpio_evt.disable_kicks(mem)?;
            while let Some(popped) = self.gpio_evt.pop(mem)? {
                let Ok(chain) = popped.chain else {
                    self.gpio_evt.add_used(mem, popped.head, 0)?;
                    continue;
                };
                let mut request = [0u8; EVENT_REQUEST_SIZE];
                let line = (chain.readable_len() == EVENT_REQUEST_SIZE
                    && chain.writable_len() >= 1)
                    .then(|| chain.read(mem, 0, &mut request).ok())
                    .flatten()
                    .and_then(|()| msg::parse_event_request(&request).ok());
                let done = match line {
                    Some(line) => self
                        .gpio
                        .queue_event(line, HeldBuffer { chain })
                        .map(|(held, status)| complete_event(mem, &held.chain, status)),
                    None => Some(complete_event(mem, &chain, EventStatus::Invalid)),
                };
                if let Some(len) = done {
                    self.gpio_evt.add_used(mem, popped.head, len)?;
                }
            }
            if !self.gpio_evt.enable_kicks(mem)? {
                break;
            }
        }
        if self.gpio_evt.needs_interrupt(mem)? {
            notify.used_buffer_interrupt(Q_GPIO_EVT);
        }
        Ok(())
    }

    fn poll_edges(
        &mut self,
        mem: &GuestMemory<'_>,
        events_done: &mut bool,
    ) -> Result<(), QueueError> {
        let evt = &mut self.gpio_evt;
        let mut result = Ok(());
        let Ok(()) = self.gpio.poll_host(&mut |held, status| {
            *events_done = true;
            let len = complete_event(mem, &held.chain, status);
            if let Err(e) = evt.add_used(mem, held.chain.head(), len) {
                result = Err(e);
            }
        });
        result
    }
}

/// Writes an I2C request's read data and status; returns the used length.
fn complete_i2c(mem: &GuestMemory<'_>, chain: &Chain, ok: bool, data: &[u8]) -> u32 {
    let shape = ChainShape {
        readable: 0,
        writable: chain.writable_len(),
    };
    let Some(status_at) = shape.status_at() else {
        return 0;
    };
    let ok = ok && (data.is_empty() || chain.write(mem, 0, data).is_ok());
    let status = if ok {
        VIRTIO_I2C_MSG_OK
    } else {
        VIRTIO_I2C_MSG_ERR
    };
    if chain.write(mem, status_at, &[status]).is_err() {
        return 0;
    }
    chain::used_len(ok, data.len())
}

/// Writes an eventq buffer's status; returns the used length (1, or 0 if unusable).
fn complete_event(mem: &GuestMemory<'_>, chain: &Chain, status: EventStatus) -> u32 {
    match chain.write(mem, 0, &[status as u8]) {
        Ok(()) => 1,
        Err(_) => 0,
    }
}
