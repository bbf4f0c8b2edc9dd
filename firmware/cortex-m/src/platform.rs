//! The platform: the RAM region the driver and the device share, the two software
//! interrupts that carry notifications (the driver's kick, the device's used-buffer
//! interrupt), and the clock the simulated RTC reads.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use virtio_i2c_core::sim::Clock;
use virtqueue_device::{GuestMemory, KickLatch, Notify};

/// Bytes of shared RAM: rings, indirect tables and buffers.
pub const SHARED_SIZE: usize = 16 * 1024;

#[repr(C, align(4096))]
struct Shared(UnsafeCell<[u8; SHARED_SIZE]>);

// SAFETY: SHARED's bytes are only ever accessed through `GuestMemory` (atomics for ring
// fields, volatile copies for buffers, the virtio ownership rules between them); no
// reference to them is created.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared(UnsafeCell::new([0; SHARED_SIZE]));

/// The shared region as guest memory. The guest-physical address is the bus address: a
/// second core (or a DMA-capable peer) would see the same SRAM there.
pub fn shared_memory() -> GuestMemory<'static> {
    let ptr = SHARED.0.get().cast::<u8>();
    let base = ptr as usize as u64;
    let Some(ptr) = NonNull::new(ptr) else {
        crate::fail_exit("shared region at address 0")
    };
    // SAFETY: SHARED is a static of SHARED_SIZE bytes, valid for reads and writes for
    // 'static; every access to it goes through a GuestMemory (see `Shared`'s Sync), which
    // satisfies `from_raw_parts`' contract.
    match unsafe { GuestMemory::from_raw_parts(ptr, SHARED_SIZE, base) } {
        Ok(mem) => mem,
        Err(_) => crate::fail_exit("shared region wraps the address space"),
    }
}

/// The two interrupts (unused by the board's peripherals) that carry notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Irq {
    /// Driver -> device: a kick (a doorbell write on real hardware).
    Kick = 30,
    /// Device -> driver: used buffers (an interrupt line into the guest).
    UsedBuffer = 31,
}

// SAFETY: both numbers are below the 32 external interrupts QEMU's mps2-an385 NVIC has.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Kicks the driver sent (queue bits); taken by the device in the Kick handler.
pub static KICKS: KickLatch = KickLatch::new();
/// Used-buffer interrupts raised (queue bits), before the driver's handler ran.
pub static RAISED: KickLatch = KickLatch::new();
/// Used-buffer interrupts the driver's handler received (queue bits); the driver waits on
/// these.
pub static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// Used-buffer interrupts received, in total.
pub static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Queue numbers as notification bits: i2c requestq, gpio requestq, gpio eventq.
pub const Q_I2C: u16 = 0;
/// GPIO requestq.
pub const Q_GPIO_REQ: u16 = 1;
/// GPIO eventq.
pub const Q_GPIO_EVT: u16 = 2;

/// The driver's kick: mark the queue, pend the device's interrupt.
pub fn kick(queue: u16) {
    KICKS.kick(queue);
    NVIC::pend(Irq::Kick);
}

/// The device's notifier: the used-buffer interrupt into the driver.
#[derive(Debug)]
pub struct UsedInterrupt;

impl Notify for UsedInterrupt {
    fn used_buffer_interrupt(&self, queue: u16) {
        RAISED.kick(queue);
        NVIC::pend(Irq::UsedBuffer);
    }
}

/// The driver's interrupt handler body.
pub fn on_used_buffer_interrupt() {
    let bits = RAISED.take();
    RECEIVED.fetch_or(bits, Ordering::AcqRel);
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
}

/// Whether the driver received a used-buffer interrupt for `queue` (and clears it).
pub fn take_interrupt(queue: u16) -> bool {
    let bit = 1u32.checked_shl(u32::from(queue)).unwrap_or(0);
    RECEIVED.fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// The wall clock the simulated RTC reads: on a board, the RTC peripheral or a timer
/// interrupt's seconds count; here the platform advances it explicitly, so the RTC checks
/// are deterministic.
/// Unix seconds (a u32: no 64-bit atomics on a Cortex-M3; good until 2106).
pub static SECONDS: AtomicU32 = AtomicU32::new(1_700_000_000);

/// The platform clock.
#[derive(Debug, Clone, Copy)]
pub struct PlatformClock;

impl Clock for PlatformClock {
    fn now(&self) -> i64 {
        i64::from(SECONDS.load(Ordering::Relaxed))
    }
}
