//! Plumbing shared by the vhost-user device daemons of this workspace.
//!
//! Everything a daemon needs that is not device logic lives here, once:
//!
//! - [`daemon`]: the skeleton; a daemon implements [`daemon::Device`] and its `main` is
//!   [`daemon::main`].
//! - [`args`]: the shared options: [`args::SocketArgs`] (`-s/--socket-path`,
//!   `-c/--socket-count`, `--fd`; drop-in compatible with rust-vmm's vhost-device daemons),
//!   [`args::CapabilitiesArgs`] and [`args::SandboxArgs`] (each daemon declares its own
//!   `--trace`, whose help describes its device's trace).
//! - [`capabilities`]: `--print-capabilities`, answered before any other option is parsed.
//! - [`listener`]: binding every listening socket before serving.
//! - [`backend`]: the one `VhostUserBackend`, around a daemon's [`backend::VirtioDevice`]: it
//!   owns the memory check, the worker exit events, the transport features and the device
//!   event numbering, so no daemon can forget them.
//! - [`serve`]: one thread per socket, one fresh device and backend per frontend connection,
//!   so no state survives a reconnect; [`signals`]: SIGTERM/SIGINT/SIGHUP end the process
//!   with status 0 and unlink the sockets.
//! - [`queue`]: the EVENT_IDX drain loop and the worker exit events.
//! - [`vring`]: the vring type, which stops rings the guest broke and serves replaced kick
//!   descriptors; [`eventfd`]: the checks of the frontend's kick/call/error descriptors;
//!   [`warning_budget`]: the per-ring budget of warnings; [`memory`]: memory-table checks
//!   against SIGBUS.
//! - [`chain`]: zero-allocation descriptor-chain layout; [`split`]: the split ring as the
//!   request path walks it; [`ram`]: guest RAM accesses with one region lookup each.
//! - [`report`]: printing an error with its sources on one line ([`report::ErrorChain`]; not
//!   to be confused with [`chain`], descriptor chains).
//! - [`logging`]: `env_logger` set-up honouring `RUST_LOG`.
//! - [`sandbox`]: `--seccomp`/`--sandbox`; no_new_privs, no capabilities, Landlock and a
//!   seccomp allowlist, entered after setup and before serving.
//!
//! A daemon's whole `main` (the skeleton's order: capabilities, arguments, logging,
//! signals, configure, open the devices, bind, sandbox, serve):
//!
//! ```text
//! fn main() -> std::process::ExitCode {
//!     vhost_device_common::daemon::main::<I2cDaemon>()
//! }
//! ```

pub mod args;
pub mod backend;
pub mod capabilities;
pub mod chain;
pub mod daemon;
pub mod eventfd;
pub mod listener;
pub mod logging;
pub mod memory;
pub mod queue;
pub mod ram;
pub mod report;
pub mod sandbox;
pub mod serve;
pub mod signals;
pub mod split;
pub mod vring;
pub mod warning_budget;

/// Guest memory as the daemons see it.
pub type GuestMemory = vm_memory::GuestMemoryAtomic<vm_memory::GuestMemoryMmap>;
pub use vring::Vring;

/// The transport features every daemon offers: VERSION_1, INDIRECT_DESC (QEMU's 4-entry
/// I2C queue cannot hold a write+read transfer without it), EVENT_IDX, and vhost-user
/// PROTOCOL_FEATURES.
pub const TRANSPORT_FEATURES: u64 = (1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1)
    | (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX)
    | vhost::vhost_user::message::VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
