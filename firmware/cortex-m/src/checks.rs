//! The driver side and its checks. Requests are encoded here byte by byte from the virtio
//! spec (not with the core crates' encoders), laid out as Linux's i2c-virtio and
//! gpio-virtio drivers lay them out, and every answer is compared with what the spec and
//! the simulated devices say it must be.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use virtio_gpio_core::sim::SimChip;
use virtio_i2c_core::request::Address;
use virtio_i2c_core::sim::{Model, SimAdapter};
use virtqueue_device::driver::{Buffer, DriverError, DriverQueue};
use virtqueue_device::ring::{Descriptor, VIRTQ_DESC_F_NEXT};
use virtqueue_device::{GuestMemory, QueueError, QueueLayout};

use crate::device::Devices;
use crate::platform::{self, PlatformClock, Q_GPIO_EVT, Q_GPIO_REQ, Q_I2C, SECONDS};

/// Queue errors the device side hit (a check fails if any appears unexpectedly).
static QUEUE_ERRORS: AtomicU32 = AtomicU32::new(0);

/// Called by the Kick handler when a queue stopped.
pub fn record_queue_error(_e: QueueError) {
    QUEUE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

const OK: u8 = 0;
const ERR: u8 = 1;
const FAIL_NEXT: u32 = 1;
const M_RD: u32 = 2;

/// Offsets in the shared region.
const I2C_RING: u64 = 0x0000;
const GPIO_REQ_RING: u64 = 0x0400;
const GPIO_EVT_RING: u64 = 0x0800;
const TABLES: u64 = 0x1000;
const DATA: u64 = 0x2000;
const DATA_END: u64 = 0x4000;

type Failure = &'static str;

/// The driver: its three queues and a scratch allocator in the data area.
struct Driver {
    mem: GuestMemory<'static>,
    i2c: DriverQueue<4>,
    req: DriverQueue<8>,
    evt: DriverQueue<8>,
    next_data: u64,
    next_table: u64,
}

impl Driver {
    fn addr(&self, offset: u64) -> u64 {
        self.mem.base().saturating_add(offset)
    }

    /// A fresh buffer of `len` bytes (8-aligned) in the data area, filled with `fill`.
    fn buffer(&mut self, len: usize, fill: u8) -> Result<u64, Failure> {
        let at = self.next_data;
        let end = at
            .checked_add(u64::try_from(len).map_err(|_| "buffer size")?)
            .map(|e| e.next_multiple_of(8))
            .filter(|&e| e <= self.addr(DATA_END))
            .ok_or("driver data area exhausted")?;
        self.next_data = end;
        self.mem
            .fill(at, len, fill)
            .map_err(|_| "buffer outside memory")?;
        Ok(at)
    }

    fn table(&mut self) -> Result<u64, Failure> {
        let at = self.next_table;
        self.next_table = at.saturating_add(0x100);
        if self.next_table > self.addr(DATA) {
            return Err("indirect tables exhausted");
        }
        Ok(at)
    }

    fn read(&self, addr: u64, len: usize) -> Result<[u8; 64], Failure> {
        let mut out = [0u8; 64];
        let buf = out.get_mut(..len).ok_or("read too long")?;
        self.mem
            .read(addr, buf)
            .map_err(|_| "read outside memory")?;
        Ok(out)
    }

    fn byte(&self, addr: u64) -> Result<u8, Failure> {
        Ok(self.read(addr, 1)?.first().copied().unwrap_or(0xee))
    }
}

fn drv_err(_e: DriverError) -> Failure {
    "driver queue error"
}

/// Kicks `queue` if the device wants it (as Linux's virtqueue_kick_prepare), then expects the
/// used-buffer interrupt and `count` used elements, returned in order as `(head, len)`.
fn kick_and_collect<const N: usize>(
    mem: &GuestMemory<'static>,
    q: &mut DriverQueue<N>,
    queue: u16,
    since: u16,
    count: usize,
) -> Result<[(u16, u32); 4], Failure> {
    if q.needs_kick(mem, since).map_err(drv_err)? {
        platform::kick(queue);
    } else {
        return Err("the device suppressed a kick it needed");
    }
    collect(mem, q, queue, count)
}

/// Waits (bounded) for the used-buffer interrupt of `queue`, then takes `count` used elements.
fn collect<const N: usize>(
    mem: &GuestMemory<'static>,
    q: &mut DriverQueue<N>,
    queue: u16,
    count: usize,
) -> Result<[(u16, u32); 4], Failure> {
    // The kick handler runs as soon as it is pended; the bound only turns a lost interrupt
    // into a failure instead of a hang.
    let mut interrupted = false;
    for _ in 0..100_000 {
        if platform::take_interrupt(queue) {
            interrupted = true;
            break;
        }
        cortex_m::asm::nop();
    }
    if !interrupted {
        return Err("no used-buffer interrupt");
    }
    let mut out = [(u16::MAX, 0u32); 4];
    for slot in out.iter_mut().take(count) {
        *slot = q
            .pop_used(mem)
            .map_err(drv_err)?
            .ok_or("fewer used elements than requests")?;
    }
    if q.pop_used(mem).map_err(drv_err)?.is_some() {
        return Err("more used elements than requests");
    }
    // Re-arm interrupts for the next batch (virtqueue_enable_cb).
    q.set_interrupts(mem, true).map_err(drv_err)?;
    Ok(out)
}

/// One I2C request as Linux's i2c-virtio queues it: header, optional buffer, status, through
/// an indirect table (the vhost-user-i2c queue has only 4 entries).
struct I2cRequest {
    addr: u8,
    read: bool,
    fail_next: bool,
    /// Write payload, or the read length (payload ignored).
    data: &'static [u8],
    read_len: usize,
}

struct I2cAnswer {
    status: u8,
    used: u32,
    data: [u8; 64],
}

fn i2c_header(r: &I2cRequest) -> [u8; 8] {
    let addr = u16::from(r.addr) << 1;
    let flags = if r.fail_next { FAIL_NEXT } else { 0 } | if r.read { M_RD } else { 0 };
    let [a0, a1] = addr.to_le_bytes();
    let [f0, f1, f2, f3] = flags.to_le_bytes();
    [a0, a1, 0, 0, f0, f1, f2, f3]
}

/// Queues the requests (one transfer), kicks once, returns each answer in order.
fn i2c_transfer(d: &mut Driver, reqs: &[I2cRequest]) -> Result<[I2cAnswer; 3], Failure> {
    let since = d.i2c.avail_index();
    let mut placed = [(0u16, 0u64, 0u64); 3];
    for (r, slot) in reqs.iter().zip(placed.iter_mut()) {
        let hdr = d.buffer(8, 0)?;
        d.mem.write(hdr, &i2c_header(r)).map_err(|_| "header")?;
        let len = if r.read { r.read_len } else { r.data.len() };
        let buf = d.buffer(len.max(1), 0xee)?;
        if !r.read {
            d.mem.write(buf, r.data).map_err(|_| "payload")?;
        }
        let status = d.buffer(1, 0xee)?;
        let table = d.table()?;
        let len32 = u32::try_from(len).map_err(|_| "length")?;
        let hdr_b = Buffer {
            addr: hdr,
            len: 8,
            writable: false,
        };
        let buf_b = Buffer {
            addr: buf,
            len: len32,
            writable: r.read,
        };
        let st_b = Buffer {
            addr: status,
            len: 1,
            writable: true,
        };
        let head = if len == 0 {
            d.i2c.add_indirect(&d.mem, table, &[hdr_b, st_b])
        } else {
            d.i2c.add_indirect(&d.mem, table, &[hdr_b, buf_b, st_b])
        }
        .map_err(drv_err)?;
        *slot = (head, buf, status);
    }
    let used = kick_and_collect(&d.mem, &mut d.i2c, Q_I2C, since, reqs.len())?;
    let mut answers = [const {
        I2cAnswer {
            status: 0xee,
            used: 0,
            data: [0; 64],
        }
    }; 3];
    for (((r, &(head, buf, status)), &(uhead, ulen)), a) in
        reqs.iter().zip(&placed).zip(&used).zip(answers.iter_mut())
    {
        if uhead != head {
            return Err("used elements out of order");
        }
        a.status = d.byte(status)?;
        a.used = ulen;
        if r.read {
            a.data = d.read(buf, r.read_len)?;
        }
    }
    Ok(answers)
}

fn expect(cond: bool, why: Failure) -> Result<(), Failure> {
    if cond { Ok(()) } else { Err(why) }
}

fn eeprom(addr: u8, data: &'static [u8]) -> I2cRequest {
    I2cRequest {
        addr,
        read: false,
        fail_next: false,
        data,
        read_len: 0,
    }
}

fn i2c_write(d: &mut Driver) -> Result<(), Failure> {
    let [a, ..] = i2c_transfer(d, &[eeprom(0x50, &[0x10, 0xaa, 0x55, 0x0f])])?;
    expect(a.status == OK, "status not OK")?;
    expect(a.used == 1, "used length not 1")
}

fn i2c_write_read(d: &mut Driver) -> Result<(), Failure> {
    let [w, r, _] = i2c_transfer(
        d,
        &[
            I2cRequest {
                fail_next: true,
                ..eeprom(0x50, &[0x10])
            },
            I2cRequest {
                addr: 0x50,
                read: true,
                fail_next: false,
                data: &[],
                read_len: 3,
            },
        ],
    )?;
    expect(w.status == OK && r.status == OK, "status not OK")?;
    expect(w.used == 1 && r.used == 4, "used lengths not 1 and 1 + 3")?;
    expect(
        r.data.get(..3) == Some(&[0xaa, 0x55, 0x0f][..]),
        "read data differs from what was written",
    )
}

fn i2c_quick(d: &mut Driver) -> Result<(), Failure> {
    let [a, ..] = i2c_transfer(d, &[eeprom(0x50, &[])])?;
    expect(
        a.status == OK && a.used == 1,
        "zero-length write to 0x50 not OK",
    )
}

fn i2c_absent(d: &mut Driver) -> Result<(), Failure> {
    let [a, ..] = i2c_transfer(d, &[eeprom(0x51, &[])])?;
    expect(a.status == ERR, "0x51 answered")?;
    expect(a.used == 1, "used length not 1")
}

fn i2c_fail_next_group(d: &mut Driver) -> Result<(), Failure> {
    let [w, x, _] = i2c_transfer(
        d,
        &[
            I2cRequest {
                fail_next: true,
                ..eeprom(0x50, &[0x20, 0x5a])
            },
            eeprom(0x51, &[0x00]),
        ],
    )?;
    expect(
        w.status == ERR && x.status == ERR,
        "a request of the failed group succeeded",
    )?;
    // The group failed as a unit: the EEPROM write never happened.
    let [_, r, _] = i2c_transfer(
        d,
        &[
            I2cRequest {
                fail_next: true,
                ..eeprom(0x50, &[0x20])
            },
            I2cRequest {
                addr: 0x50,
                read: true,
                fail_next: false,
                data: &[],
                read_len: 1,
            },
        ],
    )?;
    expect(r.status == OK, "read-back failed")?;
    expect(
        r.data.first() == Some(&0xff),
        "the failed group's write reached the EEPROM",
    )
}

fn i2c_rtc(d: &mut Driver) -> Result<(), Failure> {
    // 2024-02-29 23:59:58, Thursday (register 3 = tm_wday + 1 = 5), 24-hour mode.
    let [a, ..] = i2c_transfer(
        d,
        &[eeprom(
            0x68,
            &[0x00, 0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24],
        )],
    )?;
    expect(a.status == OK, "setting the time failed")?;
    // The platform clock advances 3 s: the RTC must read 2024-03-01 00:00:01, Friday.
    SECONDS.fetch_add(3, Ordering::Relaxed);
    let [_, r, _] = i2c_transfer(
        d,
        &[
            I2cRequest {
                fail_next: true,
                ..eeprom(0x68, &[0x00])
            },
            I2cRequest {
                addr: 0x68,
                read: true,
                fail_next: false,
                data: &[],
                read_len: 7,
            },
        ],
    )?;
    expect(r.status == OK, "reading the time failed")?;
    expect(
        r.data.get(..7) == Some(&[0x01, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24][..]),
        "the RTC did not tick with the platform clock",
    )
}

/// One GPIO request `{le16 type, le16 gpio, le32 value}` -> `(status, value or first name
/// byte, used length)`; the response buffer is `resp_len` bytes (2, or 1 + names size).
fn gpio(
    d: &mut Driver,
    ty: u16,
    line: u16,
    value: u32,
    resp_len: usize,
) -> Result<(u8, u64, u32), Failure> {
    let since = d.req.avail_index();
    let req = d.buffer(8, 0)?;
    let [t0, t1] = ty.to_le_bytes();
    let [g0, g1] = line.to_le_bytes();
    let [v0, v1, v2, v3] = value.to_le_bytes();
    d.mem
        .write(req, &[t0, t1, g0, g1, v0, v1, v2, v3])
        .map_err(|_| "request")?;
    let resp = d.buffer(resp_len, 0xee)?;
    let resp_len32 = u32::try_from(resp_len).map_err(|_| "length")?;
    let head = d
        .req
        .add(
            &d.mem,
            &[
                Buffer {
                    addr: req,
                    len: 8,
                    writable: false,
                },
                Buffer {
                    addr: resp,
                    len: resp_len32,
                    writable: true,
                },
            ],
        )
        .map_err(drv_err)?;
    let [(uhead, used), ..] = kick_and_collect(&d.mem, &mut d.req, Q_GPIO_REQ, since, 1)?;
    expect(uhead == head, "used element for another chain")?;
    Ok((d.byte(resp)?, resp, used))
}

fn gpio_value(d: &mut Driver, ty: u16, line: u16, value: u32) -> Result<(u8, u8), Failure> {
    let (status, resp, used) = gpio(d, ty, line, value, 2)?;
    expect(used == 2, "used length not 2")?;
    Ok((status, d.byte(resp.saturating_add(1))?))
}

const GET_LINE_NAMES: u16 = 1;
const GET_DIRECTION: u16 = 2;
const SET_DIRECTION: u16 = 3;
const GET_VALUE: u16 = 4;
const SET_VALUE: u16 = 5;
const SET_IRQ_TYPE: u16 = 6;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;
const IRQ_NONE: u32 = 0;
const IRQ_EDGE_RISING: u32 = 1;
const NAMES: &[u8] = b"sim-0\0sim-1\0sim-2\0sim-3\0sim-4\0sim-5\0sim-6\0sim-7\0";

fn gpio_config(config: [u8; 8]) -> Result<(), Failure> {
    let [n0, n1, _, _, s0, s1, s2, s3] = config;
    expect(u16::from_le_bytes([n0, n1]) == 8, "ngpio not 8")?;
    expect(
        usize::try_from(u32::from_le_bytes([s0, s1, s2, s3])).ok() == Some(NAMES.len()),
        "gpio_names_size differs from the names",
    )
}

fn gpio_line_names(d: &mut Driver) -> Result<(), Failure> {
    let (status, resp, used) = gpio(d, GET_LINE_NAMES, 0, 0, NAMES.len().saturating_add(1))?;
    expect(status == OK, "status not OK")?;
    expect(
        usize::try_from(used).ok() == Some(NAMES.len().saturating_add(1)),
        "used length not 1 + names size",
    )?;
    let blob = d.read(resp.saturating_add(1), NAMES.len())?;
    expect(blob.get(..NAMES.len()) == Some(NAMES), "names differ")
}

fn gpio_set_value(d: &mut Driver) -> Result<(), Failure> {
    // Linux sends SET_VALUE before SET_DIRECTION(OUT): it must take effect then.
    expect(
        gpio_value(d, SET_VALUE, 0, 1)? == (OK, 0),
        "SET_VALUE not OK",
    )
}

fn gpio_set_direction(d: &mut Driver) -> Result<(), Failure> {
    expect(
        gpio_value(d, SET_DIRECTION, 0, DIR_OUT)? == (OK, 0),
        "line 0 out not OK",
    )?;
    expect(
        gpio_value(d, SET_DIRECTION, 1, DIR_IN)? == (OK, 0),
        "line 1 in not OK",
    )
}

fn gpio_get_direction(d: &mut Driver) -> Result<(), Failure> {
    expect(
        gpio_value(d, GET_DIRECTION, 0, 0)? == (OK, 1),
        "line 0 not OUT",
    )?;
    expect(
        gpio_value(d, GET_DIRECTION, 1, 0)? == (OK, 2),
        "line 1 not IN",
    )?;
    expect(
        gpio_value(d, GET_DIRECTION, 2, 0)? == (OK, 0),
        "line 2 not NONE",
    )
}

fn gpio_get_value(d: &mut Driver) -> Result<(), Failure> {
    expect(
        gpio_value(d, GET_VALUE, 0, 0)? == (OK, 1),
        "line 0 does not drive the pending 1",
    )?;
    expect(
        gpio_value(d, GET_VALUE, 1, 0)? == (OK, 1),
        "line 1 does not read its partner's 1",
    )
}

fn gpio_set_irq_type(d: &mut Driver) -> Result<(), Failure> {
    expect(
        gpio_value(d, SET_IRQ_TYPE, 1, IRQ_EDGE_RISING)? == (OK, 0),
        "EDGE_RISING not OK",
    )?;
    expect(
        gpio_value(d, SET_IRQ_TYPE, 0, IRQ_EDGE_RISING)? == (ERR, 0),
        "an output accepted an interrupt type",
    )
}

/// Queues an eventq buffer `{le16 gpio}` -> `{u8 status}` for `line`; returns (head, status addr).
fn queue_event(d: &mut Driver, line: u16) -> Result<(u16, u64), Failure> {
    let since = d.evt.avail_index();
    let req = d.buffer(2, 0)?;
    d.mem
        .write(req, &line.to_le_bytes())
        .map_err(|_| "event request")?;
    let status = d.buffer(1, 0xee)?;
    let head = d
        .evt
        .add(
            &d.mem,
            &[
                Buffer {
                    addr: req,
                    len: 2,
                    writable: false,
                },
                Buffer {
                    addr: status,
                    len: 1,
                    writable: true,
                },
            ],
        )
        .map_err(drv_err)?;
    if d.evt.needs_kick(&d.mem, since).map_err(drv_err)? {
        platform::kick(Q_GPIO_EVT);
    } else {
        return Err("the device suppressed an eventq kick it needed");
    }
    expect(
        !platform::take_interrupt(Q_GPIO_EVT),
        "the buffer came back at once (not held)",
    )?;
    Ok((head, status))
}

fn gpio_irq(d: &mut Driver) -> Result<(), Failure> {
    let (head, status) = queue_event(d, 1)?;
    // Line 0 (wired to line 1) goes low then high: one rising edge on line 1.
    expect(
        gpio_value(d, SET_VALUE, 0, 0)? == (OK, 0),
        "SET_VALUE 0 not OK",
    )?;
    expect(
        !platform::take_interrupt(Q_GPIO_EVT),
        "a falling edge fired EDGE_RISING",
    )?;
    expect(
        gpio_value(d, SET_VALUE, 0, 1)? == (OK, 0),
        "SET_VALUE 1 not OK",
    )?;
    let [(uhead, used), ..] = collect(&d.mem, &mut d.evt, Q_GPIO_EVT, 1)?;
    expect(uhead == head, "another eventq buffer came back")?;
    expect(used == 1, "eventq used length not 1")?;
    expect(d.byte(status)? == 1, "status not VALID")
}

fn gpio_irq_disabled(d: &mut Driver) -> Result<(), Failure> {
    let (head, status) = queue_event(d, 1)?;
    expect(
        gpio_value(d, SET_IRQ_TYPE, 1, IRQ_NONE)? == (OK, 0),
        "IRQ NONE not OK",
    )?;
    let [(uhead, used), ..] = collect(&d.mem, &mut d.evt, Q_GPIO_EVT, 1)?;
    expect(uhead == head && used == 1, "held buffer not returned")?;
    expect(d.byte(status)? == 0, "status not INVALID")
}

fn gpio_bad_line(d: &mut Driver) -> Result<(), Failure> {
    expect(
        gpio_value(d, GET_VALUE, 8, 0)? == (ERR, 0),
        "line 8 of 8 answered",
    )?;
    expect(gpio_value(d, 99, 0, 0)? == (ERR, 0), "type 99 answered")
}

fn virtqueue_loop_chain(d: &mut Driver) -> Result<(), Failure> {
    let since = d.req.avail_index();
    let req = d.buffer(8, 0)?;
    let head = d
        .req
        .add(
            &d.mem,
            &[Buffer {
                addr: req,
                len: 8,
                writable: false,
            }],
        )
        .map_err(drv_err)?;
    // Rewrite the descriptor to link to itself: a chain with no end.
    let at = d
        .req
        .layout()
        .desc_table
        .saturating_add(u64::from(head).saturating_mul(16));
    Descriptor {
        addr: req,
        len: 8,
        flags: VIRTQ_DESC_F_NEXT,
        next: head,
    }
    .write(&d.mem, at)
    .map_err(|_| "descriptor")?;
    let [(uhead, used), ..] = kick_and_collect(&d.mem, &mut d.req, Q_GPIO_REQ, since, 1)?;
    expect(
        uhead == head && used == 0,
        "the looping chain was not returned with length 0",
    )?;
    expect(
        gpio_value(d, GET_DIRECTION, 0, 0)? == (OK, 1),
        "the queue stopped serving",
    )?;
    expect(QUEUE_ERRORS.load(Ordering::Relaxed) == 0, "a queue stopped")
}

fn report(area: &str, check: &str, result: Result<(), Failure>, failures: &mut u32) {
    match result {
        Ok(()) => hprintln!("PASS cortex-m.{}.{}", area, check),
        Err(why) => {
            *failures = failures.saturating_add(1);
            hprintln!("FAIL cortex-m.{}.{}: {}", area, check, why);
        }
    }
}

fn layouts(mem: &GuestMemory<'_>) -> Option<[QueueLayout; 3]> {
    let at = |off: u64| mem.base().checked_add(off);
    Some([
        // The vhost-user-i2c queue: 4 entries, indirect descriptors, EVENT_IDX.
        QueueLayout::packed_at(at(I2C_RING)?, 4, true, true)?,
        // GPIO requestq without EVENT_IDX (the flags path), eventq with it.
        QueueLayout::packed_at(at(GPIO_REQ_RING)?, 8, false, false)?,
        QueueLayout::packed_at(at(GPIO_EVT_RING)?, 8, true, false)?,
    ])
}

/// Sets up both sides and runs every check; returns the number of failures.
pub fn run(devices: &Mutex<RefCell<Option<Devices>>>) -> u32 {
    let mem = platform::shared_memory();
    let Some([i2c, req, evt]) = layouts(&mem) else {
        crate::fail_exit("queue layouts do not fit");
    };
    let driver = (|| -> Result<Driver, DriverError> {
        Ok(Driver {
            mem,
            i2c: DriverQueue::new(&mem, i2c)?,
            req: DriverQueue::new(&mem, req)?,
            evt: DriverQueue::new(&mem, evt)?,
            next_data: mem.base().saturating_add(DATA),
            next_table: mem.base().saturating_add(TABLES),
        })
    })();
    let Ok(mut d) = driver else {
        crate::fail_exit("driver queues");
    };
    let bus = SimAdapter::new(
        &[
            (
                Model::Eeprom24c02,
                Address::device(0x50).unwrap_or(Address::GENERAL_CALL),
            ),
            (
                Model::Ds1338,
                Address::device(0x68).unwrap_or(Address::GENERAL_CALL),
            ),
        ],
        PlatformClock,
    );
    let config = match Devices::new(&mem, i2c, req, evt, bus, SimChip::new(8)) {
        Ok(dev) => {
            let config = dev.gpio_config();
            critical_section::with(|cs| devices.replace(cs, Some(dev)));
            config
        }
        Err(_) => crate::fail_exit("device set-up"),
    };
    for q in [&mut d.i2c as &mut dyn ArmInterrupts, &mut d.req, &mut d.evt] {
        if q.arm(&mem).is_err() {
            crate::fail_exit("arming interrupts");
        }
    }
    let allocations_before = crate::HEAP.allocations();
    let mut failures = 0;
    type Check = fn(&mut Driver) -> Result<(), Failure>;
    let checks: [(&str, &str, Check); 17] = [
        ("i2c", "write", i2c_write),
        ("i2c", "write_read_repeated_start", i2c_write_read),
        ("i2c", "zero_length_quick", i2c_quick),
        ("i2c", "absent_address", i2c_absent),
        ("i2c", "fail_next_group_fails_as_unit", i2c_fail_next_group),
        ("i2c", "rtc_ticks_with_platform_clock", i2c_rtc),
        ("gpio", "get_line_names", gpio_line_names),
        ("gpio", "set_value_before_direction", gpio_set_value),
        ("gpio", "set_direction", gpio_set_direction),
        ("gpio", "get_direction", gpio_get_direction),
        ("gpio", "get_value_wired_pair", gpio_get_value),
        ("gpio", "set_irq_type", gpio_set_irq_type),
        ("gpio", "irq_edge_on_wired_pair", gpio_irq),
        ("gpio", "irq_none_returns_invalid", gpio_irq_disabled),
        ("gpio", "bad_line_and_type_err", gpio_bad_line),
        (
            "virtqueue",
            "looping_chain_returned_queue_serves",
            virtqueue_loop_chain,
        ),
        ("virtqueue", "no_allocation_in_request_path", |_| Ok(())),
    ];
    report("gpio", "config", gpio_config(config), &mut failures);
    for (area, name, check) in checks {
        let result = if name == "no_allocation_in_request_path" {
            let after = crate::HEAP.allocations();
            expect(after == allocations_before, "the request path allocated")
        } else {
            check(&mut d)
        };
        report(area, name, result, &mut failures);
    }
    hprintln!(
        "cortex-m: {} used-buffer interrupts, {} failures",
        platform::INTERRUPTS.load(Ordering::Relaxed),
        failures
    );
    failures
}

/// Turning a driver queue's interrupts on, whatever its size.
trait ArmInterrupts {
    fn arm(&mut self, mem: &GuestMemory<'_>) -> Result<(), DriverError>;
}

impl<const N: usize> ArmInterrupts for DriverQueue<N> {
    fn arm(&mut self, mem: &GuestMemory<'_>) -> Result<(), DriverError> {
        self.set_interrupts(mem, true)
    }
}
