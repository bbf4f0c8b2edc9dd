//! A raw vhost-user client: it writes the wire format itself (a 12-byte header of request,
//! flags and size, the payload, and file descriptors as `SCM_RIGHTS`), so a test can send
//! what a correct frontend never would: wrong sizes, bad fds, out-of-order or unknown
//! messages, impossible memory tables. [`RawFrontend`] also performs a normal handshake, one
//! message at a time ([`RawFrontend::step`]), after which its [`TestQueue`]s drive the rings
//! like [`crate::TestFrontend`]'s do.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::layout::MemoryLayout;
use crate::negotiation::{self, FEATURE_EVENT_IDX, FEATURE_PROTOCOL_FEATURES};
use crate::{Error, RingLayout, TestQueue};

/// Frontend request codes (`VhostUserRequest` in QEMU's docs/interop/vhost-user.rst).
pub mod code {
    /// GET_FEATURES.
    pub const GET_FEATURES: u32 = 1;
    /// SET_FEATURES.
    pub const SET_FEATURES: u32 = 2;
    /// SET_OWNER.
    pub const SET_OWNER: u32 = 3;
    /// RESET_OWNER.
    pub const RESET_OWNER: u32 = 4;
    /// SET_MEM_TABLE.
    pub const SET_MEM_TABLE: u32 = 5;
    /// SET_VRING_NUM.
    pub const SET_VRING_NUM: u32 = 8;
    /// SET_VRING_ADDR.
    pub const SET_VRING_ADDR: u32 = 9;
    /// SET_VRING_BASE.
    pub const SET_VRING_BASE: u32 = 10;
    /// GET_VRING_BASE.
    pub const GET_VRING_BASE: u32 = 11;
    /// SET_VRING_KICK.
    pub const SET_VRING_KICK: u32 = 12;
    /// SET_VRING_CALL.
    pub const SET_VRING_CALL: u32 = 13;
    /// SET_VRING_ERR.
    pub const SET_VRING_ERR: u32 = 14;
    /// GET_PROTOCOL_FEATURES.
    pub const GET_PROTOCOL_FEATURES: u32 = 15;
    /// SET_PROTOCOL_FEATURES.
    pub const SET_PROTOCOL_FEATURES: u32 = 16;
    /// GET_QUEUE_NUM.
    pub const GET_QUEUE_NUM: u32 = 17;
    /// SET_VRING_ENABLE.
    pub const SET_VRING_ENABLE: u32 = 18;
    /// GET_CONFIG.
    pub const GET_CONFIG: u32 = 24;
    /// SET_CONFIG.
    pub const SET_CONFIG: u32 = 25;
    /// GET_MAX_MEM_SLOTS.
    pub const GET_MAX_MEM_SLOTS: u32 = 36;
    /// ADD_MEM_REG.
    pub const ADD_MEM_REG: u32 = 37;
    /// REM_MEM_REG.
    pub const REM_MEM_REG: u32 = 38;
}

/// Header flags: protocol version 1.
pub const FLAG_VERSION: u32 = 0x1;
/// Header flags: this message is a reply.
pub const FLAG_REPLY: u32 = 0x4;
/// Header flags: the frontend wants an ack (REPLY_ACK).
pub const FLAG_NEED_REPLY: u32 = 0x8;
/// Size of the message header.
pub const HEADER_SIZE: usize = 12;
/// Protocol feature MQ.
pub const PROTOCOL_MQ: u64 = 1 << 0;
/// Protocol feature REPLY_ACK.
pub const PROTOCOL_REPLY_ACK: u64 = 1 << 3;
/// Protocol feature CONFIG.
pub const PROTOCOL_CONFIG: u64 = 1 << 9;
/// Protocol feature CONFIGURE_MEM_SLOTS.
pub const PROTOCOL_MEM_SLOTS: u64 = 1 << 15;
/// Bit of SET_VRING_KICK/CALL/ERR's payload: no fd is attached (polling mode).
pub const VRING_NOFD: u64 = 0x100;
/// The frontend-side virtual address at which [`RawFrontend`] claims guest memory starts
/// (vring addresses are sent in this address space; the backend only translates them).
pub const UADDR_BASE: u64 = 0x7f00_0000_0000;
/// Largest reply payload read (a backend's replies are small).
const MAX_REPLY: u32 = 1 << 16;
/// How long [`RawConn::send_bytes`] may take to hand one message to a backend that reads
/// (see [`RawConn::set_send_timeout`]).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the raw client.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// Socket I/O failed (other than a timeout or the peer closing).
    #[error("socket I/O failed")]
    Io(#[source] io::Error),
    /// The backend closed the connection.
    #[error("the backend closed the connection")]
    Closed,
    /// Nothing arrived in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The backend did not read what was sent: the message was not all sent in time.
    #[error("the backend did not read: {sent} of {len} bytes sent within {timeout:?}")]
    SendTimeout {
        /// Bytes the socket took.
        sent: usize,
        /// Bytes of the message.
        len: usize,
        /// How long the send waited.
        timeout: Duration,
    },
    /// The listener did not take the connection within the connect timeout: its backlog
    /// stayed full (it accepts nothing).
    #[error(
        "the listener did not take a connection within {timeout:?} (its backlog stayed full: it accepts nothing)"
    )]
    NotAccepted {
        /// How long the connect waited.
        timeout: Duration,
        /// The connect's error (`EAGAIN`).
        #[source]
        source: io::Error,
    },
    /// A reply did not match the request.
    #[error(
        "unexpected reply to request {expected}: request {request}, flags {flags:#x}, {len} bytes"
    )]
    BadReply {
        /// The request that was answered.
        expected: u32,
        /// The reply's request code.
        request: u32,
        /// The reply's flags.
        flags: u32,
        /// The reply's payload length.
        len: usize,
    },
    /// The backend acked a request with a failure status.
    #[error("the backend rejected request {request} (status {status})")]
    Rejected {
        /// The rejected request.
        request: u32,
        /// The ack's value.
        status: u64,
    },
    /// Setting up guest memory or queues failed.
    #[error("frontend setup failed")]
    Setup(#[from] Error),
}

impl RawError {
    /// Whether the backend ended the connection (closed it, or reset it).
    pub fn is_closed(&self) -> bool {
        match self {
            RawError::Closed => true,
            RawError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

fn io_error(e: io::Error, timeout: Duration) -> RawError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RawError::Timeout(timeout),
        io::ErrorKind::UnexpectedEof => RawError::Closed,
        _ => RawError::Io(e),
    }
}

/// A message received from the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Request code.
    pub request: u32,
    /// Header flags.
    pub flags: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The payload as a little-endian u64, if it is exactly 8 bytes.
    pub fn u64(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.payload.as_slice().try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }
}

/// One vhost-user connection that sends exactly the bytes it is given. Every read and
/// write on it has a deadline: replies [`RawConn::recv`]'s timeout, sends
/// [`SEND_TIMEOUT`] (or [`RawConn::set_send_timeout`]).
#[derive(Debug)]
pub struct RawConn {
    stream: UnixStream,
    send_timeout: Duration,
}

/// Builds a message: header then payload.
pub fn message(request: u32, flags: u32, size: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_SIZE.saturating_add(payload.len()));
    bytes.extend_from_slice(&request.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// `VhostUserVringState`: index and number.
pub fn vring_state(index: u32, num: u32) -> Vec<u8> {
    let mut p = index.to_le_bytes().to_vec();
    p.extend_from_slice(&num.to_le_bytes());
    p
}

/// `VhostUserVringAddr`: index, flags, and the frontend addresses of the three parts.
pub fn vring_addr(index: u32, desc: u64, used: u64, avail: u64) -> Vec<u8> {
    let mut p = index.to_le_bytes().to_vec();
    p.extend_from_slice(&0u32.to_le_bytes());
    for a in [desc, used, avail, 0] {
        p.extend_from_slice(&a.to_le_bytes());
    }
    p
}

/// One memory region of SET_MEM_TABLE / ADD_MEM_REG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Guest-physical start.
    pub guest_phys_addr: u64,
    /// Size in bytes.
    pub memory_size: u64,
    /// Frontend virtual address of the start.
    pub userspace_addr: u64,
    /// Offset of the start in the attached file.
    pub mmap_offset: u64,
}

impl Region {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.guest_phys_addr,
            self.memory_size,
            self.userspace_addr,
            self.mmap_offset,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// SET_MEM_TABLE's payload: region count, padding, regions.
pub fn mem_table(regions: &[Region]) -> Vec<u8> {
    let n = u32::try_from(regions.len()).unwrap_or(u32::MAX);
    let mut p = n.to_le_bytes().to_vec();
    p.extend_from_slice(&0u32.to_le_bytes());
    for r in regions {
        r.encode(&mut p);
    }
    p
}

/// ADD_MEM_REG's payload: padding then one region.
pub fn single_region(region: &Region) -> Vec<u8> {
    let mut p = 0u64.to_le_bytes().to_vec();
    region.encode(&mut p);
    p
}

/// GET_CONFIG / SET_CONFIG payload: offset, size, flags, then `data`.
pub fn config(offset: u32, size: u32, flags: u32, data: &[u8]) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.extend_from_slice(&size.to_le_bytes());
    p.extend_from_slice(&flags.to_le_bytes());
    p.extend_from_slice(data);
    p
}

impl RawConn {
    /// Connects to `path`, retrying for up to `timeout` while the socket is absent or refuses;
    /// a listener whose backlog stays full for `timeout` fails with
    /// [`RawError::NotAccepted`].
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, RawError> {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match crate::socket::connect(path, left) {
                Ok(stream) => return Ok(Self::from_stream(stream)),
                Err(source) if source.kind() == io::ErrorKind::WouldBlock => {
                    return Err(RawError::NotAccepted {
                        timeout: start.elapsed(),
                        source,
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) && !left.is_zero() =>
                {
                    std::thread::sleep(Duration::from_millis(10).min(left));
                }
                Err(e) => return Err(RawError::Io(e)),
            }
        }
    }

    /// A connection on an already connected `stream`, with the default send timeout.
    pub fn from_stream(stream: UnixStream) -> Self {
        Self {
            stream,
            send_timeout: SEND_TIMEOUT,
        }
    }

    /// How long one [`RawConn::send_bytes`] may take in all.
    pub fn set_send_timeout(&mut self, timeout: Duration) {
        self.send_timeout = timeout;
    }

    /// The socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends `bytes` verbatim, with `fds` attached to the first byte, within the send
    /// timeout: a backend that stops reading fails it with [`RawError::SendTimeout`].
    pub fn send_bytes(&self, bytes: &[u8], fds: &[RawFd]) -> Result<(), RawError> {
        let timeout = self.send_timeout;
        let start = Instant::now();
        let mut sent = 0usize;
        let mut first = true;
        while sent < bytes.len() || first {
            let left = timeout.saturating_sub(start.elapsed());
            let expired = RawError::SendTimeout {
                sent,
                len: bytes.len(),
                timeout,
            };
            if left.is_zero() {
                return Err(expired);
            }
            self.stream
                .set_write_timeout(Some(left))
                .map_err(RawError::Io)?;
            let rest = bytes.get(sent..).unwrap_or_default();
            let n = match sendmsg(&self.stream, rest, if first { fds } else { &[] }) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(expired);
                }
                Err(e) => return Err(io_error(e, timeout)),
            };
            first = false;
            sent = sent.saturating_add(n);
            if rest.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Sends one message with version flag 1, a correct size and `fds`.
    pub fn send(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> Result<(), RawError> {
        let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.send_bytes(&message(request, FLAG_VERSION, size, payload), fds)
    }

    /// Receives one message, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Reply, RawError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut header = [0u8; HEADER_SIZE];
        self.read_exact(&mut header, deadline, timeout)?;
        let word = |i: usize| {
            header
                .get(i..i.saturating_add(4))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (request, flags, size) = (word(0), word(4), word(8));
        if size > MAX_REPLY {
            return Err(RawError::BadReply {
                expected: request,
                request,
                flags,
                len: usize::try_from(size).unwrap_or(usize::MAX),
            });
        }
        let mut payload = vec![0u8; usize::try_from(size).unwrap_or(0)];
        self.read_exact(&mut payload, deadline, timeout)?;
        Ok(Reply {
            request,
            flags,
            payload,
        })
    }

    fn read_exact(
        &self,
        mut buf: &mut [u8],
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<(), RawError> {
        while !buf.is_empty() {
            let left = deadline
                .and_then(|d| d.checked_duration_since(Instant::now()))
                .filter(|d| !d.is_zero())
                .ok_or(RawError::Timeout(timeout))?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(RawError::Io)?;
            match (&self.stream).read(buf) {
                Ok(0) => return Err(RawError::Closed),
                Ok(n) => buf = buf.get_mut(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, timeout)),
            }
        }
        Ok(())
    }

    /// Sends a request and reads its reply (for GET_* requests).
    pub fn call(&self, request: u32, payload: &[u8], timeout: Duration) -> Result<Reply, RawError> {
        self.send(request, payload, &[])?;
        let reply = self.recv(timeout)?;
        if reply.request != request || reply.flags & FLAG_REPLY == 0 {
            return Err(RawError::BadReply {
                expected: request,
                request: reply.request,
                flags: reply.flags,
                len: reply.payload.len(),
            });
        }
        Ok(reply)
    }

    /// Sends a request with NEED_REPLY and waits for the ack (REPLY_ACK must be negotiated):
    /// `Ok(())` for status 0, [`RawError::Rejected`] otherwise.
    pub fn acked(
        &self,
        request: u32,
        payload: &[u8],
        fds: &[RawFd],
        timeout: Duration,
    ) -> Result<(), RawError> {
        let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.send_bytes(
            &message(request, FLAG_VERSION | FLAG_NEED_REPLY, size, payload),
            fds,
        )?;
        let reply = self.recv(timeout)?;
        let status = reply.u64();
        if reply.request != request || reply.flags & FLAG_REPLY == 0 || status.is_none() {
            return Err(RawError::BadReply {
                expected: request,
                request: reply.request,
                flags: reply.flags,
                len: reply.payload.len(),
            });
        }
        match status {
            Some(0) => Ok(()),
            Some(status) => Err(RawError::Rejected { request, status }),
            None => Err(RawError::Closed),
        }
    }

    /// GET_VRING_BASE for `index`: the backend's next available index.
    pub fn get_vring_base(&self, index: u32, timeout: Duration) -> Result<u32, RawError> {
        let reply = self.call(code::GET_VRING_BASE, &vring_state(index, 0), timeout)?;
        reply
            .payload
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or(RawError::BadReply {
                expected: code::GET_VRING_BASE,
                request: reply.request,
                flags: reply.flags,
                len: reply.payload.len(),
            })
    }

    /// Waits up to `timeout` for the backend to close the connection, discarding anything it
    /// sends; `true` if it did.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut buf = [0u8; 256];
        loop {
            let Some(left) = deadline
                .and_then(|d| d.checked_duration_since(Instant::now()))
                .filter(|d| !d.is_zero())
            else {
                return false;
            };
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match (&self.stream).read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }
}

/// One `sendmsg` of `bytes` with `fds` as SCM_RIGHTS; returns the bytes sent.
fn sendmsg(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let fd_bytes = size_of_val(fds);
    let fd_len =
        u32::try_from(fd_bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let space = if fds.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE only computes a size.
        unsafe { libc::CMSG_SPACE(fd_len) }
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; usize::try_from(space).unwrap_or(0).div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = usize::try_from(space).unwrap_or(0);
        // SAFETY: msg_control points at `space` writable, aligned bytes, enough for one
        // header, so CMSG_FIRSTHDR returns a valid pointer into it.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the control message"));
        }
        // SAFETY: `cmsg` points at a cmsghdr inside `control` (checked non-null above), and
        // CMSG_DATA leaves room for `fd_bytes` bytes because `space` = CMSG_SPACE(fd_len).
        unsafe {
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = usize::try_from(libc::CMSG_LEN(fd_len)).unwrap_or(0);
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    loop {
        // SAFETY: `msg` describes valid buffers that outlive the call.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [r, w] = fds;
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(r),
            std::os::fd::FromRawFd::from_raw_fd(w),
        )
    })
}

/// A memfd of `len` bytes (zero-filled).
pub fn memfd(len: u64) -> io::Result<File> {
    // SAFETY: the name is a valid C string; the return value is checked.
    let fd = unsafe { libc::memfd_create(c"raw-frontend".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nobody else owns.
    let file: File = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    file.set_len(len)?;
    Ok(file)
}

/// Options of [`RawFrontend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOptions {
    /// Queues to set up.
    pub num_queues: usize,
    /// Entries per queue (a power of two).
    pub queue_size: u16,
    /// Guest memory size.
    pub mem_size: usize,
    /// Ack VIRTIO_RING_F_EVENT_IDX if offered.
    pub event_idx: bool,
    /// Ack VHOST_USER_F_PROTOCOL_FEATURES if offered (without it rings start enabled and
    /// nothing is acked).
    pub protocol_features: bool,
    /// How long to wait for each reply.
    pub timeout: Duration,
}

impl Default for RawOptions {
    fn default() -> Self {
        Self {
            num_queues: 1,
            queue_size: 64,
            mem_size: 1 << 20,
            event_idx: true,
            protocol_features: true,
            timeout: Duration::from_secs(1),
        }
    }
}

/// What one queue is told during the handshake; tests may change it before the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSetup {
    /// SET_VRING_NUM value.
    pub num: u32,
    /// SET_VRING_BASE value.
    pub base: u32,
    /// Frontend addresses sent in SET_VRING_ADDR: descriptor table.
    pub desc: u64,
    /// Used ring.
    pub used: u64,
    /// Available ring.
    pub avail: u64,
    /// Kick fd to send instead of the queue's own eventfd.
    pub kick_fd: Option<RawFd>,
    /// Call fd to send instead of the queue's own eventfd.
    pub call_fd: Option<RawFd>,
}

/// A frontend built on [`RawConn`]: one memfd region at guest address 0, split rings laid
/// out by the same code as [`crate::TestFrontend`]'s, and the handshake as numbered steps.
#[derive(Debug)]
pub struct RawFrontend {
    /// The connection.
    pub conn: RawConn,
    opts: RawOptions,
    mem: GuestMemoryMmap,
    rings: Vec<RingLayout>,
    /// Per-queue handshake values (defaults: the laid-out rings, size, base 0).
    pub setup: Vec<QueueSetup>,
    queues: Vec<TestQueue>,
    offered: u64,
    acked: u64,
    protocol: u64,
    next_step: usize,
}

/// Steps before the per-queue ones: SET_OWNER, GET_FEATURES, GET_PROTOCOL_FEATURES,
/// SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_FEATURES, SET_MEM_TABLE.
const GLOBAL_STEPS: usize = 7;
/// Per-queue steps: NUM, ADDR, BASE, CALL, KICK, ENABLE.
const QUEUE_STEPS: usize = 6;

impl RawFrontend {
    /// Connects (retrying for up to 5 s while the socket is absent) and lays out memory and
    /// queues; sends nothing yet.
    pub fn connect(path: &Path, opts: RawOptions) -> Result<Self, RawError> {
        let conn = RawConn::connect(path, Duration::from_secs(5))?;
        Self::on(conn, opts)
    }

    /// Like [`RawFrontend::connect`], on an existing connection.
    pub fn on(conn: RawConn, opts: RawOptions) -> Result<Self, RawError> {
        let layout = MemoryLayout::new(
            opts.num_queues,
            opts.queue_size,
            u64::try_from(opts.mem_size).map_err(Error::from)?,
        )
        .ok_or(Error::InvalidOptions("mem_size too small for the queues"))?;
        // Unsealed: a hostile frontend keeps the right to shrink its memory.
        let mem = crate::create_memory(opts.mem_size, false)?;
        let mut rings = Vec::new();
        let mut setup = Vec::new();
        let mut queues = Vec::new();
        let uaddr = |gpa: u64| UADDR_BASE.checked_add(gpa).ok_or(Error::AddressOverflow);
        for (index, (ring, start, end)) in layout.queues.into_iter().enumerate() {
            rings.push(ring);
            setup.push(QueueSetup {
                num: u32::from(opts.queue_size),
                base: 0,
                desc: uaddr(ring.desc)?,
                used: uaddr(ring.used)?,
                avail: uaddr(ring.avail)?,
                kick_fd: None,
                call_fd: None,
            });
            queues.push(TestQueue::new(
                index,
                mem.clone(),
                opts.queue_size,
                ring,
                (start, end),
                EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?,
                EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?,
                false,
            ));
        }
        Ok(Self {
            conn,
            opts,
            mem,
            rings,
            setup,
            queues,
            offered: 0,
            acked: 0,
            protocol: 0,
            next_step: 0,
        })
    }

    /// Connects and performs the whole handshake.
    pub fn handshake(path: &Path, opts: RawOptions) -> Result<Self, RawError> {
        let mut fe = Self::connect(path, opts)?;
        fe.finish()?;
        Ok(fe)
    }

    /// Number of handshake steps (messages) in total.
    pub fn step_count(&self) -> usize {
        GLOBAL_STEPS.saturating_add(QUEUE_STEPS.saturating_mul(self.opts.num_queues))
    }

    /// Runs the remaining handshake steps. Without REPLY_ACK nothing was acknowledged, so a
    /// GET_FEATURES round trip then makes sure the daemon has handled every message.
    pub fn finish(&mut self) -> Result<(), RawError> {
        let mut ran = false;
        while self.step()? {
            ran = true;
        }
        if ran && self.protocol & PROTOCOL_REPLY_ACK == 0 {
            self.conn.call(code::GET_FEATURES, &[], self.opts.timeout)?;
        }
        Ok(())
    }

    /// Runs handshake steps until `n` steps are done in total.
    pub fn run_until(&mut self, n: usize) -> Result<(), RawError> {
        while self.next_step < n {
            if !self.step()? {
                break;
            }
        }
        Ok(())
    }

    /// Runs the next handshake step; `false` when the handshake was already complete.
    /// Every step after protocol-feature negotiation is acked (REPLY_ACK), so a rejection
    /// surfaces at the step that caused it.
    pub fn step(&mut self) -> Result<bool, RawError> {
        let step = self.next_step;
        if step >= self.step_count() {
            return Ok(false);
        }
        let t = self.opts.timeout;
        match step {
            0 => self.send_acked(code::SET_OWNER, &[], &[])?,
            1 => {
                let reply = self.conn.call(code::GET_FEATURES, &[], t)?;
                self.offered = reply.u64().ok_or(RawError::BadReply {
                    expected: code::GET_FEATURES,
                    request: reply.request,
                    flags: reply.flags,
                    len: reply.payload.len(),
                })?;
                self.acked = negotiation::acked_features(
                    self.offered,
                    u64::MAX,
                    self.opts.event_idx,
                    self.opts.protocol_features,
                );
            }
            2..=4 if self.acked & FEATURE_PROTOCOL_FEATURES == 0 => {}
            2 => {
                let reply = self.conn.call(code::GET_PROTOCOL_FEATURES, &[], t)?;
                let offered = reply.u64().unwrap_or(0);
                self.protocol = offered & negotiation::WANTED_PROTOCOL_FEATURES.bits();
            }
            3 => self.conn.send(
                code::SET_PROTOCOL_FEATURES,
                &self.protocol.to_le_bytes(),
                &[],
            )?,
            4 if self.protocol & PROTOCOL_MQ == 0 => {}
            4 => {
                self.conn.call(code::GET_QUEUE_NUM, &[], t)?;
            }
            5 => self.send_acked(code::SET_FEATURES, &self.acked.to_le_bytes(), &[])?,
            6 => {
                let (table, fd) = self.mem_table()?;
                self.send_acked(code::SET_MEM_TABLE, &table, &[fd])?;
            }
            _ => {
                let rel = step.saturating_sub(GLOBAL_STEPS);
                let q = rel.checked_div(QUEUE_STEPS).unwrap_or(0);
                let qi = u32::try_from(q).unwrap_or(u32::MAX);
                let s = self.setup.get(q).copied().ok_or(Error::NoSuchQueue(q))?;
                let queue = self.queues.get(q).ok_or(Error::NoSuchQueue(q))?;
                let kick = s.kick_fd.unwrap_or_else(|| queue.kick_fd());
                let call = s.call_fd.unwrap_or_else(|| queue.call_fd());
                match rel.checked_rem(QUEUE_STEPS).unwrap_or(0) {
                    0 => self.send_acked(code::SET_VRING_NUM, &vring_state(qi, s.num), &[])?,
                    1 => self.send_acked(
                        code::SET_VRING_ADDR,
                        &vring_addr(qi, s.desc, s.used, s.avail),
                        &[],
                    )?,
                    2 => self.send_acked(code::SET_VRING_BASE, &vring_state(qi, s.base), &[])?,
                    3 => self.send_acked(
                        code::SET_VRING_CALL,
                        &u64::from(qi).to_le_bytes(),
                        &[call],
                    )?,
                    4 => self.send_acked(
                        code::SET_VRING_KICK,
                        &u64::from(qi).to_le_bytes(),
                        &[kick],
                    )?,
                    _ if !negotiation::rings_start_disabled(self.acked) => {}
                    _ => self.send_acked(code::SET_VRING_ENABLE, &vring_state(qi, 1), &[])?,
                }
            }
        }
        self.advance();
        Ok(true)
    }

    /// Moves to the next step; once the features are settled the queues learn EVENT_IDX.
    fn advance(&mut self) {
        self.next_step = self.next_step.saturating_add(1);
        if self.next_step == GLOBAL_STEPS {
            let event_idx = self.acked & FEATURE_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
    }

    /// Skips the next handshake step (a test sends its own version of that message).
    pub fn skip(&mut self) {
        self.advance();
    }

    /// Number of handshake steps done (or skipped).
    pub fn steps_done(&self) -> usize {
        self.next_step
    }

    /// GET_CONFIG of `size` bytes at `offset`: the config bytes of the reply.
    pub fn get_config(&self, offset: u32, size: u32) -> Result<Vec<u8>, RawError> {
        let zeros = vec![0u8; usize::try_from(size).unwrap_or(0)];
        let reply = self.conn.call(
            code::GET_CONFIG,
            &config(offset, size, 0, &zeros),
            self.opts.timeout,
        )?;
        Ok(reply.payload.get(12..).unwrap_or_default().to_vec())
    }

    /// Sends a request, acked when REPLY_ACK was negotiated.
    pub fn send_acked(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> Result<(), RawError> {
        if self.protocol & PROTOCOL_REPLY_ACK != 0 {
            self.conn.acked(request, payload, fds, self.opts.timeout)
        } else {
            self.conn.send(request, payload, fds)
        }
    }

    /// The memfd behind guest memory.
    pub fn memory_fd(&self) -> Result<RawFd, RawError> {
        let region = self
            .mem
            .find_region(GuestAddress(0))
            .ok_or(Error::InvalidOptions("guest memory has no region at 0"))?;
        Ok(region
            .file_offset()
            .ok_or(Error::InvalidOptions("guest memory is not file-backed"))?
            .file()
            .as_raw_fd())
    }

    /// The one-region memory table of this frontend's memory, and the memfd to attach.
    pub fn mem_table(&self) -> Result<(Vec<u8>, RawFd), RawError> {
        let len = u64::try_from(self.opts.mem_size).map_err(Error::from)?;
        let table = mem_table(&[Region {
            guest_phys_addr: 0,
            memory_size: len,
            userspace_addr: UADDR_BASE,
            mmap_offset: 0,
        }]);
        Ok((table, self.memory_fd()?))
    }

    /// Virtio features offered by the backend.
    pub fn offered_features(&self) -> u64 {
        self.offered
    }

    /// Virtio features acked (sent at step SET_FEATURES).
    pub fn acked_features(&self) -> u64 {
        self.acked
    }

    /// Changes the features that SET_FEATURES will ack (before that step runs).
    pub fn set_acked_features(&mut self, features: u64) {
        self.acked = features;
    }

    /// Protocol features negotiated.
    pub fn protocol_features(&self) -> u64 {
        self.protocol
    }

    /// Guest memory (one region at guest address 0).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Guest-physical placement of queue `q`'s rings.
    pub fn ring(&self, q: usize) -> Option<RingLayout> {
        self.rings.get(q).copied()
    }

    /// Queue `q` (driver side).
    pub fn queue(&mut self, q: usize) -> Result<&mut TestQueue, RawError> {
        self.queues
            .get_mut(q)
            .ok_or(RawError::Setup(Error::NoSuchQueue(q)))
    }

    /// The options.
    pub fn options(&self) -> &RawOptions {
        &self.opts
    }

    /// Writes `bytes` at guest-physical `gpa`.
    pub fn write_guest(&self, gpa: u64, bytes: &[u8]) -> Result<(), RawError> {
        use vm_memory::Bytes;
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .map_err(|e| RawError::Setup(Error::GuestMemory(e)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn header_is_request_flags_size_little_endian() {
        let m = message(
            code::SET_VRING_NUM,
            FLAG_VERSION | FLAG_NEED_REPLY,
            8,
            &[1; 8],
        );
        assert_eq!(&m[..12], &[8, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(m.len(), 20);
    }

    #[test]
    fn payload_layouts_match_the_spec() {
        assert_eq!(vring_state(1, 256), [1, 0, 0, 0, 0, 1, 0, 0]);
        let a = vring_addr(2, 0x10, 0x20, 0x30);
        assert_eq!(a.len(), 40);
        assert_eq!(&a[8..16], &0x10u64.to_le_bytes());
        assert_eq!(&a[16..24], &0x20u64.to_le_bytes());
        assert_eq!(&a[24..32], &0x30u64.to_le_bytes());
        let r = Region {
            guest_phys_addr: 1,
            memory_size: 2,
            userspace_addr: 3,
            mmap_offset: 4,
        };
        let t = mem_table(&[r, r]);
        assert_eq!(t.len(), 8 + 2 * 32);
        assert_eq!(&t[..4], &2u32.to_le_bytes());
        assert_eq!(&t[8 + 24..8 + 32], &4u64.to_le_bytes());
        assert_eq!(single_region(&r).len(), 40);
        assert_eq!(config(4, 2, 0, &[9, 9]).len(), 14);
    }

    #[test]
    fn fds_travel_with_the_message() {
        let (a, b) = UnixStream::pair().unwrap();
        let conn = RawConn::from_stream(a);
        let (r, _w) = pipe().unwrap();
        conn.send(code::SET_VRING_KICK, &0u64.to_le_bytes(), &[r.as_raw_fd()])
            .unwrap();
        let mut buf = [0u8; 64];
        let mut fds = [0 as RawFd; 4];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid; the buffers outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: `msg` describes valid buffers.
        let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, 0) };
        assert_eq!(n, 20);
        // SAFETY: the control buffer holds the message recvmsg wrote.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        assert!(!cmsg.is_null());
        // SAFETY: one fd was sent; CMSG_DATA points at it.
        unsafe {
            std::ptr::copy_nonoverlapping(libc::CMSG_DATA(cmsg), fds.as_mut_ptr().cast(), 4);
        }
        assert!(fds[0] > 0);
        // SAFETY: the received fd is ours to close.
        unsafe { libc::close(fds[0]) };
    }
}
