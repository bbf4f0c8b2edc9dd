//! Plumbing shared by the vhost-user device daemons of this workspace.
//!
//! Everything a daemon needs that is not device logic lives here, once:
//!
//! - [`args::SocketArgs`]: the `-s/--socket-path`, `-c/--socket-count` and `--fd` options
//!   (drop-in compatible with rust-vmm's vhost-device daemons), validated into a
//!   [`listener::SocketConfig`].
//! - [`capabilities`]: `--print-capabilities`, answered before any other option is parsed.
//! - [`listener`]: binding every listening socket before serving.
//! - [`serve`]: one thread per socket, one fresh backend per frontend connection, so no state
//!   survives a reconnect; SIGTERM/SIGINT end the process with status 0 and unlink the sockets.
//! - [`queue`]: the EVENT_IDX drain loop and the worker exit events.
//! - [`vring`]: the vring type, which refuses frontend descriptors that could block a worker
//!   and stops rings the guest broke; [`memory`]: memory-table checks against SIGBUS.
//! - [`report`]: printing an error with its sources on one line ([`report::ErrorChain`]; not
//!   to be confused with [`chain`], descriptor chains).
//! - [`logging`]: `env_logger` set-up honouring `RUST_LOG`.
//! - [`sandbox`]: `--seccomp`/`--sandbox`; no_new_privs, no capabilities, Landlock and a
//!   seccomp allowlist, entered after setup and before serving.
//!
//! A typical `main`:
//!
//! ```text
//! vhost_device_common::capabilities::exit_if_requested("i2c");
//! vhost_device_common::logging::init();
//! let args = Args::parse();
//! let config = Config::try_from(args)?;           // device validation, no socket yet
//! let signals = vhost_device_common::serve::block_termination_signals()?;
//! let sockets = vhost_device_common::listener::bind(&config.sockets)?;
//! vhost_device_common::serve::run("vhost-device-i2c", sockets, signals, |socket_index| {
//!     MyBackend::new(...)  // a fresh backend for every connection
//! })
//! ```

pub mod args;
pub mod backend;
pub mod capabilities;
pub mod chain;
pub mod daemon;
pub mod listener;
pub mod logging;
pub mod memory;
pub mod queue;
pub mod report;
pub mod sandbox;
pub mod serve;
pub mod vring;

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
