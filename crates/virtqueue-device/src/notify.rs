//! Notifications, what eventfds are to a vhost-user daemon: the driver's kick coming in, the
//! used-buffer interrupt going out.

use core::sync::atomic::{AtomicU32, Ordering};

/// The platform's way to interrupt the driver (an interrupt line, an IPI, a hypervisor's
/// event channel, a doorbell register). Called after used elements are published.
pub trait Notify {
    /// Tell the driver that `queue` has new used buffers.
    fn used_buffer_interrupt(&self, queue: u16);
}

/// Kicks received and not yet served, one bit per queue (queues 0..32): set from the
/// platform's kick handler (any context, any core), taken by the device loop. Like an
/// eventfd, many kicks before a drain are one.
#[derive(Debug, Default)]
pub struct KickLatch(AtomicU32);

impl KickLatch {
    /// No kick pending.
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Records a kick for `queue`; `false` for a queue number the latch cannot hold.
    pub fn kick(&self, queue: u16) -> bool {
        let Some(bit) = 1u32.checked_shl(u32::from(queue)) else {
            return false;
        };
        // Release: what the driver wrote before kicking is visible to whoever takes the kick
        // (the device also re-reads the available index with Acquire, which suffices alone).
        self.0.fetch_or(bit, Ordering::Release);
        true
    }

    /// Takes every pending kick: bit `n` set for queue `n`.
    pub fn take(&self) -> u32 {
        self.0.swap(0, Ordering::Acquire)
    }
}
