//! A vhost-user frontend for tests and benchmarks.
//!
//! [`TestFrontend::connect`] performs the handshake QEMU performs against a
//! backend socket (owner, features, protocol features, one memfd-backed memory
//! region at guest address 0, and every vring), after which each
//! [`TestQueue`] acts as a virtio driver: it posts descriptor chains, kicks, and
//! collects used elements.
//!
//! The hostile-frontend suite is built from three modules: [`raw`] speaks the wire format
//! itself (so it can send what a correct frontend never would), [`dut`] runs a daemon binary
//! and checks it after every round of an attack (alive, idle CPU, bounded log, no kept
//! descriptors, GET_VRING_BASE answered, a fresh connection served within a second), and
//! [`attacks`] holds one function per attack;
//! a daemon crate lists them with [`hostile_frontend_tests!`].
//!
//! ```no_run
//! use std::time::Duration;
//! use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend};
//!
//! let mut fe = TestFrontend::connect("/tmp/dev.sock".as_ref(), FrontendOptions::default())?;
//! let done = fe
//!     .queue(0)
//!     .transact(&[Desc::Out(vec![1, 2]), Desc::In(4)], false, Duration::from_secs(1))?;
//! assert_eq!(done.written.len(), 1);
//! # Ok::<(), vhost_user_test_frontend::Error>(())
//! ```

pub mod attacks;
pub mod bench;
pub mod binary;
pub mod confinement;
pub mod daemon;
pub mod devices;
pub mod dut;
pub mod fuzz_corpus;
pub mod guest_script;
pub mod hostile;
pub mod inproc;
mod layout;
pub mod load;
pub mod negotiation;
mod poll;
mod queue;
pub mod raw;
pub mod socket;
pub mod suites;

use std::fs::File;
use std::io;
use std::num::TryFromIntError;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserHeaderFlag, VhostUserProtocolFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::mmap::FromRangesError;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

pub use layout::RingLayout;
pub use queue::{
    Completion, Desc, RawDesc, TestQueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};

/// How long [`TestFrontend::connect`] keeps retrying while the socket is absent or refuses.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between connection attempts.
const CONNECT_RETRY: Duration = Duration::from_millis(20);
/// How long any one request of [`TestFrontend`] may wait for its reply (or to be sent)
/// before the connection is shut down and the request fails with [`Error::NoReply`].
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub use negotiation::{FEATURE_EVENT_IDX, FEATURE_PROTOCOL_FEATURES, UNSUPPORTED_FEATURES};

/// Errors of the test frontend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected (after retrying).
    #[error("cannot connect to {path}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Last connection error.
        #[source]
        source: io::Error,
    },
    /// The listener did not take the connection: its backlog stayed full (it accepts
    /// nothing) for the whole connect timeout.
    #[error("{} did not take a connection within {timeout:?} (its backlog stayed full: it accepts nothing)", path.display())]
    NotAccepted {
        /// Socket path.
        path: PathBuf,
        /// How long the connect waited.
        timeout: Duration,
        /// The connect's error (`EAGAIN`).
        #[source]
        source: io::Error,
    },
    /// A request got no reply (or could not be sent) within [`REPLY_TIMEOUT`]: the backend
    /// stopped answering, and the connection was shut down.
    #[error("no reply to {request} within {timeout:?}: the backend stopped answering")]
    NoReply {
        /// The request waited for.
        request: &'static str,
        /// How long it waited.
        timeout: Duration,
        /// How the request failed once the connection was shut down.
        #[source]
        source: vhost::Error,
    },
    /// The watchdog thread that bounds every request could not be started.
    #[error("cannot start the request watchdog")]
    Watchdog(#[source] io::Error),
    /// A vhost-user request failed.
    #[error("vhost-user request failed")]
    Vhost(#[from] vhost::Error),
    /// Creating or sizing the memfd failed.
    #[error("cannot create guest memory file")]
    Memfd(#[source] io::Error),
    /// Mapping guest memory failed.
    #[error("cannot map guest memory")]
    Mmap(#[from] FromRangesError),
    /// Guest memory access failed (address outside memory).
    #[error("guest memory access failed")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
    /// Setting up an in-process vring failed.
    #[error("cannot set up the vring")]
    Vring(#[source] virtio_queue::Error),
    /// Creating an eventfd failed.
    #[error("cannot create eventfd")]
    EventFd(#[source] io::Error),
    /// Writing the kick eventfd failed.
    #[error("cannot kick the queue")]
    Kick(#[source] io::Error),
    /// Polling the call eventfd failed.
    #[error("cannot poll the call eventfd")]
    Poll(#[source] io::Error),
    /// No used element arrived in time.
    #[error("timed out waiting for a used element")]
    Timeout,
    /// The options are inconsistent (zero queues, bad queue size, memory too small).
    #[error("invalid frontend options: {0}")]
    InvalidOptions(&'static str),
    /// The backend supports fewer queues than requested.
    #[error("backend supports {supported} queues, {requested} requested")]
    TooManyQueues {
        /// Queues requested in [`FrontendOptions::num_queues`].
        requested: usize,
        /// Value of GET_QUEUE_NUM.
        supported: u64,
    },
    /// No queue with this index.
    #[error("no queue {0}")]
    NoSuchQueue(usize),
    /// Not enough free descriptor-table slots for the chain.
    #[error("descriptor table full")]
    QueueFull,
    /// Not enough free data space for a buffer of this length.
    #[error("no data space left for a {0}-byte buffer")]
    OutOfBufferSpace(u32),
    /// A chain must have at least one descriptor.
    #[error("empty descriptor chain")]
    EmptyChain,
    /// The backend returned a used element whose id is not an outstanding head.
    #[error("backend returned unknown head id {id}")]
    UnknownHead {
        /// Id in the used element.
        id: u32,
        /// Set when the id does not even fit a descriptor index.
        #[source]
        source: Option<TryFromIntError>,
    },
    /// A size or address computation overflowed.
    #[error("address computation overflowed")]
    AddressOverflow,
    /// A length does not fit the target integer type.
    #[error("length out of range")]
    Length(#[from] TryFromIntError),
}

/// Options for [`TestFrontend::connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendOptions {
    /// Number of queues to set up (default 1).
    pub num_queues: usize,
    /// Entries per queue, a power of two up to 32768 (default 256).
    pub queue_size: u16,
    /// Guest memory size in bytes (default 4 MiB).
    pub mem_size: usize,
    /// Ack VIRTIO_RING_F_EVENT_IDX if offered (default true).
    pub negotiate_event_idx: bool,
    /// Send SET_VRING_ENABLE(1) for every queue (default true). With `false`
    /// rings stay disabled so a test can post and kick before enabling.
    pub enable_rings: bool,
    /// Offered features to ack (default all); [`UNSUPPORTED_FEATURES`] are never acked.
    pub features_mask: u64,
    /// Seal the guest memory memfd against shrinking (`F_SEAL_SHRINK`), as QEMU seals its
    /// memfd memory backends by default (default true).
    pub seal_memory: bool,
}

impl Default for FrontendOptions {
    fn default() -> Self {
        Self {
            num_queues: 1,
            queue_size: 256,
            mem_size: 4 << 20,
            negotiate_event_idx: true,
            enable_rings: true,
            features_mask: u64::MAX,
            seal_memory: true,
        }
    }
}

/// A connected vhost-user frontend with its guest memory and queues.
pub struct TestFrontend {
    frontend: Frontend,
    watchdog: socket::Watchdog,
    mem: GuestMemoryMmap,
    queues: Vec<TestQueue>,
    offered_features: u64,
    acked_features: u64,
    protocol_features: u64,
    queue_num: Option<u64>,
}

impl std::fmt::Debug for TestFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestFrontend")
            .field("socket", &self.frontend.as_raw_fd())
            .field(
                "offered_features",
                &format_args!("{:#x}", self.offered_features),
            )
            .field(
                "acked_features",
                &format_args!("{:#x}", self.acked_features),
            )
            .field(
                "protocol_features",
                &format_args!("{:#x}", self.protocol_features),
            )
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

/// Connects to `path`, retrying while the daemon has not created or is not yet
/// listening on the socket, for at most [`CONNECT_TIMEOUT`] in all (a listener whose
/// backlog stays full fails with [`Error::NotAccepted`]).
fn connect_with_retry(path: &Path) -> Result<UnixStream, Error> {
    let start = Instant::now();
    loop {
        let left = CONNECT_TIMEOUT.saturating_sub(start.elapsed());
        match socket::connect(path, left) {
            Ok(stream) => return Ok(stream),
            Err(source) if source.kind() == io::ErrorKind::WouldBlock => {
                return Err(Error::NotAccepted {
                    path: path.to_owned(),
                    timeout: start.elapsed(),
                    source,
                });
            }
            Err(source) => {
                let retryable = matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                );
                if !retryable || left.is_zero() {
                    return Err(Error::Connect {
                        path: path.to_owned(),
                        source,
                    });
                }
                std::thread::sleep(CONNECT_RETRY.min(left));
            }
        }
    }
}

/// Runs one request `what` on `frontend` under `watchdog`: if it is not done within
/// [`REPLY_TIMEOUT`] the socket is shut down, which ends the request, and the error is
/// [`Error::NoReply`] naming it.
fn request<T>(
    watchdog: &socket::Watchdog,
    frontend: &mut Frontend,
    what: &'static str,
    f: impl FnOnce(&mut Frontend) -> Result<T, vhost::Error>,
) -> Result<T, Error> {
    watchdog.arm(what, REPLY_TIMEOUT);
    let result = f(frontend);
    let fired = watchdog.disarm();
    match (result, fired) {
        (Ok(v), None) => Ok(v),
        (Err(source), Some(request)) => Err(Error::NoReply {
            request,
            timeout: REPLY_TIMEOUT,
            source,
        }),
        (Err(e), None) => Err(e.into()),
        // Done just as the deadline passed: the answer came, but the connection is gone.
        (Ok(_), Some(request)) => Err(Error::NoReply {
            request,
            timeout: REPLY_TIMEOUT,
            source: vhost::Error::VhostUserProtocol(vhost::vhost_user::Error::Disconnected),
        }),
    }
}

/// Whether a request failed because the peer closed the connection.
fn is_disconnect(err: &vhost::Error) -> bool {
    use vhost::vhost_user::Error as Proto;
    matches!(
        err,
        vhost::Error::VhostUserProtocol(
            Proto::SocketBroken(_) | Proto::Disconnected | Proto::PartialMessage
        )
    )
}

/// Connects and sends SET_OWNER and GET_FEATURES. A daemon that is restarting
/// its listener can accept a connection into the old socket's backlog and then
/// drop it; such a session fails on its first reply and is retried within
/// [`CONNECT_TIMEOUT`].
fn open_session(path: &Path, max_queues: u64) -> Result<(Frontend, socket::Watchdog, u64), Error> {
    let deadline = Instant::now().checked_add(CONNECT_TIMEOUT);
    loop {
        let stream = connect_with_retry(path)?;
        let watchdog = socket::Watchdog::new(&stream).map_err(Error::Watchdog)?;
        let mut frontend = Frontend::from_stream(stream, max_queues);
        let result =
            request(&watchdog, &mut frontend, "SET_OWNER", |f| f.set_owner()).and_then(|()| {
                request(&watchdog, &mut frontend, "GET_FEATURES", |f| {
                    f.get_features()
                })
            });
        match result {
            Ok(features) => return Ok((frontend, watchdog, features)),
            Err(Error::Vhost(e))
                if is_disconnect(&e) && deadline.is_some_and(|d| Instant::now() < d) =>
            {
                std::thread::sleep(CONNECT_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates `size` bytes of memfd-backed shared memory mapped at guest address 0, sealed
/// against shrinking if `sealed` (as QEMU's memfd backend is).
pub(crate) fn create_memory(size: usize, sealed: bool) -> Result<GuestMemoryMmap, Error> {
    // SAFETY: the name is a valid NUL-terminated string; the return value is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"vhost-user-test-frontend".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(Error::Memfd(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(u64::try_from(size)?).map_err(Error::Memfd)?;
    if sealed {
        // SAFETY: F_ADD_SEALS on the descriptor `file` owns; it touches no memory.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
        if rc < 0 {
            return Err(Error::Memfd(io::Error::last_os_error()));
        }
    }
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        size,
        Some(FileOffset::new(file, 0)),
    )])?;
    Ok(mem)
}

impl TestFrontend {
    /// Connects to the backend at `path` (retrying for up to [`CONNECT_TIMEOUT`])
    /// and performs QEMU's handshake: SET_OWNER, GET_FEATURES, protocol-feature
    /// negotiation (MQ, REPLY_ACK, CONFIG) and GET_QUEUE_NUM when offered,
    /// SET_FEATURES, SET_MEM_TABLE, then NUM/ADDR/BASE/CALL/KICK (and ENABLE
    /// unless `opts.enable_rings` is false) for each queue.
    pub fn connect(path: &Path, opts: FrontendOptions) -> Result<Self, Error> {
        if opts.num_queues == 0 {
            return Err(Error::InvalidOptions("num_queues must be at least 1"));
        }
        if !opts.queue_size.is_power_of_two() || opts.queue_size > layout::MAX_QUEUE_SIZE {
            return Err(Error::InvalidOptions(
                "queue_size must be a power of two <= 32768",
            ));
        }
        let mem_layout = layout::MemoryLayout::new(
            opts.num_queues,
            opts.queue_size,
            u64::try_from(opts.mem_size)?,
        )
        .ok_or(Error::InvalidOptions("mem_size too small for the queues"))?;
        let mem = create_memory(opts.mem_size, opts.seal_memory)?;

        let (mut frontend, watchdog, offered_features) =
            open_session(path, u64::try_from(opts.num_queues)?)?;
        let dog = &watchdog;
        let acked_features = negotiation::acked_features(
            offered_features,
            opts.features_mask,
            opts.negotiate_event_idx,
            true,
        );

        let mut protocol_features = 0;
        let mut queue_num = None;
        if acked_features & FEATURE_PROTOCOL_FEATURES != 0 {
            let acked = request(dog, &mut frontend, "GET_PROTOCOL_FEATURES", |f| {
                f.get_protocol_features()
            })? & negotiation::WANTED_PROTOCOL_FEATURES;
            request(dog, &mut frontend, "SET_PROTOCOL_FEATURES", |f| {
                f.set_protocol_features(acked)
            })?;
            protocol_features = acked.bits();
            if acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                // Have every request acknowledged so failures surface at the call.
                frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
            if acked.contains(VhostUserProtocolFeatures::MQ) {
                let supported =
                    request(dog, &mut frontend, "GET_QUEUE_NUM", |f| f.get_queue_num())?;
                if u64::try_from(opts.num_queues)? > supported {
                    return Err(Error::TooManyQueues {
                        requested: opts.num_queues,
                        supported,
                    });
                }
                queue_num = Some(supported);
            }
        }
        request(dog, &mut frontend, "SET_FEATURES", |f| {
            f.set_features(acked_features)
        })?;

        let region = mem
            .find_region(GuestAddress(0))
            .ok_or(Error::InvalidOptions("guest memory has no region at 0"))?;
        let host_base = mem.get_host_address(GuestAddress(0))? as u64;
        let regions = [VhostUserMemoryRegionInfo::from_guest_region(region)?];
        request(dog, &mut frontend, "SET_MEM_TABLE", |f| {
            f.set_mem_table(&regions)
        })?;

        let event_idx = acked_features & FEATURE_EVENT_IDX != 0;
        let hva = |gpa: u64| host_base.checked_add(gpa).ok_or(Error::AddressOverflow);
        let mut queues = Vec::with_capacity(opts.num_queues);
        for (index, (ring, data_start, data_end)) in mem_layout.queues.into_iter().enumerate() {
            request(dog, &mut frontend, "SET_VRING_NUM", |f| {
                f.set_vring_num(index, opts.queue_size)
            })?;
            let config = VringConfigData {
                queue_max_size: opts.queue_size,
                queue_size: opts.queue_size,
                flags: 0,
                desc_table_addr: hva(ring.desc)?,
                used_ring_addr: hva(ring.used)?,
                avail_ring_addr: hva(ring.avail)?,
                log_addr: None,
            };
            request(dog, &mut frontend, "SET_VRING_ADDR", |f| {
                f.set_vring_addr(index, &config)
            })?;
            request(dog, &mut frontend, "SET_VRING_BASE", |f| {
                f.set_vring_base(index, 0)
            })?;
            let call = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
            let kick = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
            request(dog, &mut frontend, "SET_VRING_CALL", |f| {
                f.set_vring_call(index, &call)
            })?;
            request(dog, &mut frontend, "SET_VRING_KICK", |f| {
                f.set_vring_kick(index, &kick)
            })?;
            if opts.enable_rings && negotiation::rings_start_disabled(acked_features) {
                request(dog, &mut frontend, "SET_VRING_ENABLE", |f| {
                    f.set_vring_enable(index, true)
                })?;
            }
            queues.push(TestQueue::new(
                index,
                mem.clone(),
                opts.queue_size,
                ring,
                (data_start, data_end),
                kick,
                call,
                event_idx,
            ));
        }

        Ok(Self {
            frontend,
            watchdog,
            mem,
            queues,
            offered_features,
            acked_features,
            protocol_features,
            queue_num,
        })
    }

    /// Virtio features the backend offered (GET_FEATURES).
    pub fn offered_features(&self) -> u64 {
        self.offered_features
    }

    /// Virtio features acked with SET_FEATURES.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Protocol features acked with SET_PROTOCOL_FEATURES (raw bits; 0 if not negotiated).
    pub fn protocol_features(&self) -> u64 {
        self.protocol_features
    }

    /// The backend's GET_QUEUE_NUM answer, if MQ was negotiated.
    pub fn backend_queue_num(&self) -> Option<u64> {
        self.queue_num
    }

    /// Whether VIRTIO_RING_F_EVENT_IDX was negotiated.
    pub fn event_idx(&self) -> bool {
        self.acked_features & FEATURE_EVENT_IDX != 0
    }

    /// Reads `size` bytes of device config space at `offset` (GET_CONFIG;
    /// needs the CONFIG protocol feature).
    pub fn get_config(&mut self, offset: u32, size: u32) -> Result<Vec<u8>, Error> {
        let buf = vec![0u8; usize::try_from(size)?];
        let (_, payload) = self.request("GET_CONFIG", |f| {
            f.get_config(offset, size, VhostUserConfigFlags::empty(), &buf)
        })?;
        Ok(payload)
    }

    /// Writes `data` to device config space at `offset` (SET_CONFIG).
    pub fn set_config(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        self.request("SET_CONFIG", |f| {
            f.set_config(offset, VhostUserConfigFlags::WRITABLE, data)
        })
    }

    /// Sends SET_VRING_ENABLE for queue `idx`.
    pub fn enable_ring(&mut self, idx: usize, enable: bool) -> Result<(), Error> {
        if idx >= self.queues.len() {
            return Err(Error::NoSuchQueue(idx));
        }
        self.request("SET_VRING_ENABLE", |f| f.set_vring_enable(idx, enable))
    }

    /// Runs `f` on the underlying vhost-user connection (to send a raw request), named
    /// `what`, within [`REPLY_TIMEOUT`] like every request of this frontend.
    pub fn request<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Frontend) -> Result<T, vhost::Error>,
    ) -> Result<T, Error> {
        request(&self.watchdog, &mut self.frontend, what, f)
    }

    /// Number of queues set up.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `idx`, or `None` if there is no such queue.
    pub fn try_queue(&mut self, idx: usize) -> Option<&mut TestQueue> {
        self.queues.get_mut(idx)
    }

    /// Queue `idx`.
    ///
    /// # Panics
    /// If `idx >= num_queues()`; use [`TestFrontend::try_queue`] to avoid that.
    #[track_caller]
    #[allow(clippy::panic)] // Test tooling: a bad index is a bug in the calling test.
    pub fn queue(&mut self, idx: usize) -> &mut TestQueue {
        let count = self.queues.len();
        match self.queues.get_mut(idx) {
            Some(q) => q,
            None => panic!("queue {idx} does not exist ({count} queues)"),
        }
    }

    /// Guest memory shared with the backend (one region at guest address 0).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Closes the connection (dropping the frontend does the same).
    pub fn disconnect(self) {
        drop(self);
    }
}
