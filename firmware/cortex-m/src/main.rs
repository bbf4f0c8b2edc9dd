//! virtio-i2c and virtio-gpio on a Cortex-M3 with no OS (QEMU mps2-an385).
//!
//! The driver side (thread mode) lays out split queues in a shared RAM region the way a
//! guest's Linux drivers do, places requests, kicks by pending the Kick interrupt, waits
//! for the used-buffer interrupt and checks every answer. The device side (the Kick
//! interrupt handler) drains the queues through virtqueue-device into the unchanged core
//! crates with their simulated devices. One `PASS`/`FAIL cortex-m.<area>.<check>` line per
//! check on semihosting; the exit status is non-zero on any failure.
#![no_std]
#![no_main]

extern crate alloc;

mod checks;
mod device;
mod heap;
mod platform;

use panic_semihosting as _;

use core::cell::RefCell;

use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;

use device::Devices;
use platform::{Irq, UsedInterrupt};

#[global_allocator]
static HEAP: heap::Bump = heap::Bump::new();

/// The device side's state, built at start, used by the Kick handler.
static DEVICES: Mutex<RefCell<Option<Devices>>> = Mutex::new(RefCell::new(None));

/// Prints a line and exits with failure: for set-up that cannot go on.
pub fn fail_exit(why: &str) -> ! {
    hprintln!("FAIL cortex-m.setup: {}", why);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[entry]
fn main() -> ! {
    // SAFETY: unmasking the two software interrupts; their handlers only touch DEVICES
    // (behind a critical section) and the notification atomics.
    unsafe {
        NVIC::unmask(Irq::Kick);
        NVIC::unmask(Irq::UsedBuffer);
    }
    let failures = checks::run(&DEVICES);
    hprintln!(
        "cortex-m footprint: heap {} bytes in {} allocations",
        HEAP.used(),
        HEAP.allocations()
    );
    if failures == 0 {
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        debug::exit(debug::EXIT_FAILURE);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Every external interrupt lands here (cortex-m-rt's default vector, no device crate).
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == Irq::Kick as i16 {
        let kicks = platform::KICKS.take();
        let mem = platform::shared_memory();
        critical_section::with(|cs| {
            if let Some(dev) = DEVICES.borrow_ref_mut(cs).as_mut()
                && let Err(e) = dev.serve(&mem, kicks, &UsedInterrupt)
            {
                checks::record_queue_error(e);
            }
        });
    } else if irqn == Irq::UsedBuffer as i16 {
        platform::on_used_buffer_interrupt();
    }
}

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    fail_exit("hard fault")
}
