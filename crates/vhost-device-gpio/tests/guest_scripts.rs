//! The `gpio_queues` fuzz target's harness in the normal test suite: its seed corpus is built
//! here (and must match `fuzz/corpus/gpio_queues/`), and every committed corpus file and
//! every input that once broke a check (`fuzz/regressions/gpio_queues/`) is replayed against
//! a fresh backend on `-l s8` with the harness's checks: no panic, every popped chain
//! returned exactly once (eventq buffers may be held, one per line at most), no write
//! outside device-writable buffers and the used rings; none may leave an event unchecked
//! (self-modifying). 10,000 seeded random scripts replay clean too, at most 1% of them
//! self-modifying.
//!
//! `UPDATE_FUZZ_CORPUS=1 cargo test -p vhost-device-gpio --test guest_scripts` rewrites the
//! seed files after a change of the seeds below.
// Test code: panics are failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use vhost_device_gpio::GpioDaemon;
use vhost_device_gpio::backend::{GpioBackend, HOST_EDGES};
use vhost_device_gpio::host::{Host, HostSource};
use vhost_user_test_frontend::fuzz_corpus::{RANDOM_SCRIPTS, Seed};
use vhost_user_test_frontend::guest_script::{self, Outcome, ScriptBuilder, ScriptDevice};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{
    GET_DIRECTION, GET_LINE_NAMES, GET_VALUE, SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE,
};

/// The fuzz target's device: requestq, eventq (up to 8 buffers held, one per line), and
/// the host chip's edge descriptor as its device event.
/// The host chip's edge descriptor, as the shared backend numbers it.
const HOST_EVENTS: u16 = GpioBackend::<Host>::source_event_id(HOST_EDGES).unwrap();

const DEVICE: ScriptDevice<'static> = ScriptDevice {
    queues: 2,
    events: &[0, 1, HOST_EVENTS],
    max_held: &[0, 8],
};
/// Indices into `DEVICE.events`.
const REQUESTQ: u8 = 0;
const EVENTQ: u8 = 1;
const HOST: u8 = 2;

const NEXT: u8 = 1;
const WRITE: u8 = 2;

const OUT: u32 = 1;
const IN: u32 = 2;
const EDGE_BOTH: u32 = 3;
const LEVEL_HIGH: u32 = 4;
const LEVEL_LOW: u32 = 8;

fn fresh_backend() -> GpioBackend<Host> {
    GpioDaemon::backend_for(&[HostSource::Simulated(8)], 0, false).unwrap()
}

fn replay(script: &[u8]) -> Result<Outcome, String> {
    guest_script::run(&fresh_backend(), DEVICE, script).map_err(|e| guest_script::describe(&e))
}

/// Builds scripts whose chains each get their own descriptors and buffers.
struct Guest {
    script: ScriptBuilder,
    next_desc: [u8; 2],
    next_buf: u16,
}

impl Guest {
    fn new(size_log: u8, event_idx: bool) -> Self {
        Guest {
            script: ScriptBuilder::new(size_log, event_idx),
            next_desc: [0, 0],
            next_buf: 0x6000,
        }
    }

    /// Posts a chain on queue `q`: `out` device-readable bytes, then `writable` bytes.
    fn chain(mut self, q: u8, out: &[u8], writable: u16) -> Self {
        let d = self.next_desc[usize::from(q)];
        self.next_desc[usize::from(q)] += 2;
        let (req, resp) = (self.next_buf, self.next_buf + 0x10);
        self.next_buf += 0x80;
        self.script = self
            .script
            .write(req, out)
            .desc(q, d, req, out.len() as u16, NEXT, d + 1)
            .desc(q, d + 1, resp, writable, WRITE, 0)
            .post(q, d);
        self
    }

    fn request(self, t: u16, line: u16, value: u32) -> Self {
        self.chain(0, &encode_request(t, line, value), 2)
    }

    fn event_buffer(self, line: u16) -> Self {
        self.chain(1, &line.to_le_bytes(), 1)
    }

    fn event(mut self, n: u8) -> Self {
        self.script = self.script.event(n);
        self
    }

    fn build(self) -> Vec<u8> {
        self.script.build()
    }
}

/// The seeds: name, script, chains the device must return.
fn seeds() -> Vec<Seed> {
    // Line 0 drives line 1 (the simulator wires them); an edge on 1 returns its buffer VALID.
    let edge_interrupt = Guest::new(3, false)
        .request(SET_DIRECTION, 0, OUT)
        .request(SET_DIRECTION, 1, IN)
        .request(SET_IRQ_TYPE, 1, EDGE_BOTH)
        .event(REQUESTQ)
        .event_buffer(1)
        .event(EVENTQ)
        .request(SET_VALUE, 0, 1)
        .event(REQUESTQ)
        .event(HOST)
        .build();

    // Names (49 bytes for s8), values, directions, a bad type, a value set before the line
    // becomes an output.
    let names_and_values = Guest::new(4, true)
        .chain(0, &encode_request(GET_LINE_NAMES, 0, 0), 49)
        .request(GET_VALUE, 3, 0)
        .request(GET_DIRECTION, 2, 0)
        .request(9, 0, 0)
        .request(SET_VALUE, 6, 1)
        .request(SET_DIRECTION, 6, OUT)
        .request(GET_VALUE, 7, 0)
        .event(REQUESTQ)
        .build();

    // A held level buffer released INVALID by type NONE; a buffer for a line that does not
    // exist returned INVALID at once.
    let held_then_none = Guest::new(3, true)
        .request(SET_DIRECTION, 3, IN)
        .request(SET_IRQ_TYPE, 3, LEVEL_HIGH)
        .event(REQUESTQ)
        .event_buffer(3)
        .event_buffer(99)
        .event(EVENTQ)
        .request(SET_IRQ_TYPE, 3, 0)
        .event(REQUESTQ)
        .build();

    // LEVEL_LOW on an idle line fires as soon as a buffer is queued; then the driving line
    // goes high and low again with a buffer waiting.
    let level_low = Guest::new(3, false)
        .request(SET_IRQ_TYPE, 5, LEVEL_LOW)
        .request(SET_DIRECTION, 4, OUT)
        .event(REQUESTQ)
        .event_buffer(5)
        .event(EVENTQ)
        .request(SET_VALUE, 4, 1)
        .event(REQUESTQ)
        .event_buffer(5)
        .event(EVENTQ)
        .request(SET_VALUE, 4, 0)
        .event(REQUESTQ)
        .event(HOST)
        .build();

    vec![
        ("edge-interrupt", edge_interrupt, 5),
        ("names-and-values", names_and_values, 7),
        ("held-then-none", held_then_none, 5),
        ("level-low", level_low, 6),
    ]
}

vhost_user_test_frontend::fuzz_corpus_tests!(
    "gpio_queues",
    seeds,
    replay,
    // Measured 13 of 10,000; 440 while the rings sat in RAM0 (then without ring writes).
    max_self_modifying: RANDOM_SCRIPTS / 100
);
