//! The GPIO request and event paths: a hostile guest script (both queues' descriptor tables,
//! rings and data, see `vhost_user_test_frontend::guest_script`) against a fresh backend on
//! the simulated chip of `-l s8`, with requestq kicks, eventq kicks and host edge events.
//! Checks: no panic, every popped chain returned exactly once (eventq buffers may be held,
//! at most one per line, and count when they come back), no write outside device-writable
//! buffers and the used rings; how many scripts and events went unchecked (self-modifying)
//! is printed to stderr.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_device_gpio::GpioDaemon;
use vhost_device_gpio::backend::{GpioBackend, HOST_EDGES};
use vhost_device_gpio::host::{Host, HostSource};
use vhost_user_test_frontend::guest_script::{self, ScriptDevice};

/// requestq, eventq, and the host chip's edge descriptor.
/// The host chip's edge descriptor, as the shared backend numbers it.
const HOST_EVENTS: u16 = GpioBackend::<Host>::source_event_id(HOST_EDGES).unwrap();

const DEVICE: ScriptDevice<'static> = ScriptDevice {
    queues: 2,
    events: &[0, 1, HOST_EVENTS],
    max_held: &[0, 8],
};

fuzz_target!(|script: &[u8]| {
    let backend =
        GpioDaemon::backend_for(&[HostSource::Simulated(8)], 0, false).expect("simulated chip");
    match guest_script::run(&backend, DEVICE, script) {
        // How much went unchecked (a device-writable buffer over a ring or an indirect
        // table) goes to stderr.
        Ok(outcome) => guest_script::tally("gpio_queues", &outcome),
        Err(e) => panic!("{}", guest_script::describe(&e)),
    }
});
