//! A third device, written only as a [`VirtioDevice`] (its queue and one event source of
//! its own), served by the shared serve loop: it gets every protection of
//! [`vhost_device_common::backend::Backend`] without writing any hook for it.
//!
//! - the transport features, EVENT_IDX among them, are offered and used (the device asks for
//!   its next kick through `avail_event`);
//! - a memory table with a region beyond its file is refused at SET_MEM_TABLE;
//! - the vring worker's exit event is closed with the connection (no descriptor left);
//! - its own event source gets a device event number above the library's and reaches it.
//!
//! The tests count descriptors, so they run one at a time (`SERIAL`).

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vhost_device_common::Vring;
use vhost_device_common::backend::VirtioDevice;
use vhost_device_common::listener::{self, BoundSocket, SocketConfig};
use vhost_device_common::queue::{self, Chain, ChainMemory, ChainSink, UsedRing, drain};
use vhost_device_common::serve::{ConnectionError, serve_connection};
use vhost_user_test_frontend::raw::{self, RawFrontend, RawOptions, Region, code};
use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::tempdir::TempDir;

static SERIAL: Mutex<()> = Mutex::new(());
const DEADLINE: Duration = Duration::from_secs(5);
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// The toy's own feature bit.
const TOY_FEATURE: u64 = 1 << 0;

/// One queue whose chains are returned with a used length of 1, and one eventfd of its own
/// whose events it reports on a channel.
struct Toy {
    ticks: EventFd,
    seen: Mutex<Sender<usize>>,
}

struct Echo;

impl ChainSink for Echo {
    fn chain(&mut self, chain: Chain<'_>, _mem: ChainMemory<'_>, used: &mut UsedRing<'_>) {
        used.add(queue::head(&chain), 1);
    }
}

impl VirtioDevice for Toy {
    const QUEUES: usize = 1;
    const MAX_QUEUE_SIZE: usize = 256;

    fn device_features(&self) -> u64 {
        TOY_FEATURE
    }

    fn queue_kick(&self, queue: usize, vrings: &[Vring]) -> io::Result<()> {
        drain(&vrings[queue], &mut Echo);
        Ok(())
    }

    fn event_sources(&self) -> Vec<RawFd> {
        vec![self.ticks.as_raw_fd()]
    }

    fn source_event(&self, source: usize, _vrings: &[Vring]) -> io::Result<()> {
        let _ = self.ticks.read();
        let _ = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(source);
        Ok(())
    }
}

/// One socket serving one connection of the toy on a thread, as the serve loop would.
struct Served {
    path: PathBuf,
    ticks: EventFd,
    seen: Receiver<usize>,
    thread: JoinHandle<Result<(), ConnectionError>>,
}

/// Binds the toy's socket in `dir`.
fn bind(dir: &TempDir) -> (BoundSocket, PathBuf) {
    let config = SocketConfig::Paths {
        base: dir.as_path().join("toy.sock"),
        count: std::num::NonZeroUsize::MIN,
    };
    let path = config.paths().pop().unwrap();
    (listener::bind(&config).unwrap().pop().unwrap(), path)
}

/// Serves one connection on `socket` on a thread; the socket is closed when it ends.
fn serve_one((socket, path): (BoundSocket, PathBuf)) -> Served {
    let mut socket = socket;
    let ticks = EventFd::new(EFD_NONBLOCK).unwrap();
    let device_ticks = ticks.try_clone().unwrap();
    let (tx, seen) = mpsc::channel();
    let device = Mutex::new(Some((device_ticks, tx)));
    let thread = thread::spawn(move || {
        serve_connection("toy", 0, &mut socket, &|_index| {
            let (ticks, seen) = device
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| io::Error::other("one connection only"))?;
            Ok::<_, io::Error>(Toy {
                ticks,
                seen: Mutex::new(seen),
            })
        })
    });
    Served {
        path,
        ticks,
        seen,
        thread,
    }
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits for the connection's end (the frontend left) and checks it was served.
fn finish(served: Served) {
    let Served { ticks, thread, .. } = served;
    let result = thread.join().expect("serve thread");
    result.expect("the connection was served");
    drop(ticks);
}

fn temp_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/vhost-device-common-toy-").unwrap()
}

#[test]
fn a_toy_device_offers_and_uses_event_idx_and_gets_its_own_events() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = temp_dir();
    let served = serve_one(bind(&dir));
    let mut fe = TestFrontend::connect(&served.path, FrontendOptions::default()).unwrap();

    let offered = fe.offered_features();
    for (bit, name) in [
        (TOY_FEATURE, "the device's own"),
        (VIRTIO_F_VERSION_1, "VERSION_1"),
        (VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"),
    ] {
        assert_ne!(offered & bit, 0, "{name} feature offered: {offered:#x}");
    }
    assert!(fe.event_idx(), "EVENT_IDX negotiated");
    for _ in 0..2 {
        let done = fe
            .queue(0)
            .transact(&[Desc::Out(vec![1]), Desc::In(1)], false, DEADLINE)
            .unwrap();
        assert_eq!(done.used_len, 1);
    }
    // With EVENT_IDX the device tells the driver at which available index to kick next
    // (`avail_event`, after the used ring's entries).
    let q = fe.queue(0);
    let avail_event = GuestAddress(q.ring_layout().used + 4 + 8 * u64::from(q.size()));
    assert_eq!(
        fe.memory().read_obj::<u16>(avail_event).unwrap(),
        2,
        "avail_event after two chains"
    );

    // The device's own event source reaches it, as its source 0.
    served.ticks.write(1).unwrap();
    assert_eq!(served.seen.recv_timeout(DEADLINE), Ok(0));

    fe.disconnect();
    finish(served);
}

#[test]
fn a_toy_device_refuses_a_region_beyond_its_file() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = temp_dir();
    let served = serve_one(bind(&dir));
    let mut fe = RawFrontend::connect(&served.path, RawOptions::default()).unwrap();
    fe.run_until(6).unwrap();
    // 16 MiB of the frontend's 1 MiB memfd.
    let table = raw::mem_table(&[Region {
        guest_phys_addr: 0,
        memory_size: 16 << 20,
        userspace_addr: raw::UADDR_BASE,
        mmap_offset: 0,
    }]);
    let fd = fe.memory_fd().unwrap();
    let reply = fe.send_acked(code::SET_MEM_TABLE, &table, &[fd]);
    assert!(
        matches!(reply, Err(raw::RawError::Rejected { .. })),
        "SET_MEM_TABLE of a region beyond its file: {reply:?}"
    );
    drop(fe);
    finish(served);
}

#[test]
fn a_toy_device_leaves_no_descriptor_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = temp_dir();
    let socket = bind(&dir);
    let before = open_descriptors();
    let served = serve_one(socket);
    let fe = TestFrontend::connect(&served.path, FrontendOptions::default()).unwrap();
    fe.disconnect();
    finish(served);
    // The listening socket went with its thread; nothing of the connection is left (the
    // vring worker's exit event included).
    assert_eq!(
        open_descriptors(),
        before - 1,
        "descriptors left after the connection"
    );
}
