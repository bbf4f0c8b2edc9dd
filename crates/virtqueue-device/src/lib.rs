//! The device side of a virtio split virtqueue (virtio 1.2, 2.7) for any platform: `no_std`,
//! no allocation, over guest memory given as one byte region and the guest-physical address
//! it starts at ([`GuestMemory`]).
//!
//! - [`SplitQueue`]: take available chains ([`SplitQueue::pop`], or [`SplitQueue::drain`]),
//!   return used ones, decide when the driver needs an interrupt (flags or EVENT_IDX).
//! - [`Chain`]: one chain walked once into a fixed array of segments (direct or indirect),
//!   with bounded copies in and out.
//! - [`Notify`] and [`KickLatch`]: the platform's notifications (what eventfds are on
//!   Linux): the driver's kick in, the used-buffer interrupt out.
//! - [`driver`]: the driver's half, for tests and demonstrations.
//!
//! Hostile input (indices, chain lengths, addresses, descriptor loops, indirect tables) gives
//! a chain error (the caller returns the chain with a used length of 0, or an error status)
//! or a stopped queue ([`QueueError`]), never a panic or an access outside the region.
//! The memory ordering is written for a driver on another, weakly ordered core: see
//! [`queue`] and [`memory`].
#![no_std]

pub mod chain;
pub mod driver;
pub mod memory;
pub mod notify;
pub mod queue;
pub mod ring;

pub use chain::{Chain, ChainError, MAX_SEGMENTS, Segment};
pub use memory::{GuestMemory, MemoryError};
pub use notify::{KickLatch, Notify};
pub use queue::{Popped, QueueError, SplitQueue};
pub use ring::{LayoutError, QueueLayout, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
