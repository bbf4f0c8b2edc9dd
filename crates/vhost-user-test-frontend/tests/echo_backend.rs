//! Drives a tiny echo backend (built on vhost-user-backend, running in a thread)
//! through the test frontend: handshake, direct and indirect chains, many
//! outstanding chains, disabled rings, malformed raw chains, and reconnects.
//!
//! The echo device copies every device-readable byte of a chain into its
//! device-writable buffers, in order, and reports the bytes written.

// Test code: a panic is a failed test. clippy.toml only relaxes these lints
// inside `#[test]` functions, not in the helpers and backend of this file.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::{VhostUserBackendMut, VhostUserDaemon, VringRwLock, VringT};
use vhost_user_test_frontend::{
    Desc, Error, FEATURE_EVENT_IDX, FEATURE_PROTOCOL_FEATURES, FrontendOptions, RawDesc,
    TestFrontend, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::QueueOwnedT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};
use vmm_sys_util::tempdir::TempDir;

const TIMEOUT: Duration = Duration::from_secs(5);
const CONFIG: [u8; 8] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];

struct EchoBackend {
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    event_idx: bool,
}

impl EchoBackend {
    fn process(&self, vring: &VringRwLock) -> io::Result<()> {
        let mem = self.mem.as_ref().unwrap().memory();
        let chains: Vec<_> = vring
            .get_mut()
            .get_queue_mut()
            .iter(mem.clone())
            .map_err(io::Error::other)?
            .collect();
        for chain in chains {
            let head = chain.head_index();
            let written = echo(chain.clone().reader(&mem).ok(), chain.writer(&mem).ok());
            vring
                .add_used(head, u32::try_from(written).unwrap())
                .map_err(io::Error::other)?;
            if vring.needs_notification().map_err(io::Error::other)? {
                vring.signal_used_queue()?;
            }
        }
        Ok(())
    }
}

/// Copies what `reader` holds into `writer`; 0 if either side is unusable
/// (e.g. a buffer outside guest memory).
fn echo<B: vm_memory::bitmap::BitmapSlice>(
    reader: Option<virtio_queue::Reader<'_, B>>,
    writer: Option<virtio_queue::Writer<'_, B>>,
) -> usize {
    let (Some(mut r), Some(mut w)) = (reader, writer) else {
        return 0;
    };
    let mut data = Vec::new();
    if r.read_to_end(&mut data).is_err() {
        return 0;
    }
    let n = data.len().min(w.available_bytes());
    w.write_all(&data[..n]).map(|()| n).unwrap_or(0)
}

impl VhostUserBackendMut for EchoBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }

    fn max_queue_size(&self) -> usize {
        1024
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | FEATURE_PROTOCOL_FEATURES
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn set_event_idx(&mut self, enabled: bool) {
        self.event_idx = enabled;
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let start = offset as usize;
        CONFIG
            .get(start..start + size as usize)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    fn update_memory(&mut self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK).ok()
    }

    fn handle_event(
        &mut self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        assert_eq!(evset, EventSet::IN);
        let vring = &vrings[usize::from(device_event)];
        loop {
            if self.event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            self.process(vring)?;
            if !self.event_idx || !vring.enable_notification().map_err(io::Error::other)? {
                break;
            }
        }
        Ok(())
    }
}

/// Serves `connections` consecutive connections on `path`, one daemon each.
fn spawn_backend(path: PathBuf, connections: usize) -> JoinHandle<()> {
    let backend = Arc::new(Mutex::new(EchoBackend {
        mem: None,
        event_idx: false,
    }));
    thread::spawn(move || {
        for _ in 0..connections {
            let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
            let mut daemon = VhostUserDaemon::new("echo".into(), backend.clone(), mem).unwrap();
            daemon.serve(&path).unwrap();
        }
    })
}

fn socket_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new_with_prefix("/tmp/vhost-user-test-frontend-").unwrap();
    let path = dir.as_path().join("echo.sock");
    (dir, path)
}

fn echo_chain(payload: &[u8], split: u32) -> Vec<Desc> {
    vec![
        Desc::Out(payload.to_vec()),
        Desc::In(split),
        Desc::In(payload.len() as u32 + 2 - split),
    ]
}

fn check_echo(fe: &mut TestFrontend, q: usize, indirect: bool) {
    let done = fe
        .queue(q)
        .transact(&echo_chain(b"hello", 3), indirect, TIMEOUT)
        .unwrap();
    assert_eq!(done.used_len, 5);
    assert_eq!(done.written, vec![b"hel".to_vec(), b"lo\0\0".to_vec()]);
}

fn connect(path: &Path, opts: FrontendOptions) -> TestFrontend {
    TestFrontend::connect(path, opts).unwrap()
}

#[test]
fn handshake_config_and_round_trips() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let mut fe = connect(
        &path,
        FrontendOptions {
            num_queues: 2,
            ..Default::default()
        },
    );

    assert_eq!(
        fe.offered_features(),
        EchoBackend {
            mem: None,
            event_idx: false
        }
        .features()
    );
    assert_eq!(fe.acked_features(), fe.offered_features());
    assert!(fe.event_idx());
    let expected = VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::REPLY_ACK;
    assert_eq!(fe.protocol_features(), expected.bits());
    assert_eq!(fe.backend_queue_num(), Some(2));
    assert_eq!(fe.get_config(2, 4).unwrap(), CONFIG[2..6].to_vec());

    for q in 0..2 {
        check_echo(&mut fe, q, false);
        check_echo(&mut fe, q, true);
    }
    // A chain of only device-readable buffers completes with nothing written.
    let done = fe
        .queue(0)
        .transact(&[Desc::Out(vec![1; 64])], false, TIMEOUT)
        .unwrap();
    assert_eq!((done.used_len, done.written.len()), (0, 0));

    fe.disconnect();
    server.join().unwrap();
}

#[test]
fn many_outstanding_chains_complete_in_order_and_free_everything() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let mut fe = connect(
        &path,
        FrontendOptions {
            queue_size: 64,
            ..Default::default()
        },
    );
    let q = fe.queue(0);
    let free_desc = q.free_descriptors();
    let free_bytes = q.free_buffer_bytes();

    for round in 0..3u8 {
        // 21 direct chains of 3 descriptors use 63 of 64 slots; one more does not fit.
        let mut heads = Vec::new();
        for i in 0..21u8 {
            let payload = vec![round ^ i; usize::from(i) + 1];
            heads.push(q.post(&echo_chain(&payload, 1), false).unwrap());
        }
        assert!(matches!(
            q.post(&echo_chain(b"xy", 1), false),
            Err(Error::QueueFull)
        ));
        // An indirect chain needs a single slot.
        heads.push(q.post(&echo_chain(b"indirect", 4), true).unwrap());
        assert_eq!(q.outstanding(), 22);
        q.kick().unwrap();

        for (i, head) in heads.iter().enumerate() {
            let done = q.wait_used(TIMEOUT).unwrap();
            assert_eq!(done.head, *head);
            let expected = if i < 21 {
                vec![round ^ i as u8; i + 1]
            } else {
                b"indirect".to_vec()
            };
            let mut got = done.written.concat();
            got.truncate(expected.len());
            assert_eq!(got, expected);
            assert_eq!(done.used_len as usize, expected.len());
        }
        assert!(q.try_used().is_none());
        assert!(matches!(
            q.wait_used(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        assert_eq!(q.free_descriptors(), free_desc);
        assert_eq!(q.free_buffer_bytes(), free_bytes);
    }
    drop(fe);
    server.join().unwrap();
}

#[test]
fn transact_keeps_other_completions() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let mut fe = connect(&path, FrontendOptions::default());
    let q = fe.queue(0);
    let first = q.post(&echo_chain(b"first", 2), false).unwrap();
    let done = q
        .transact(&echo_chain(b"second", 2), true, TIMEOUT)
        .unwrap();
    assert_eq!(done.written.concat()[..6], *b"second");
    let earlier = q.try_used().unwrap();
    assert_eq!(earlier.head, first);
    assert_eq!(earlier.written.concat()[..5], *b"first");
    drop(fe);
    server.join().unwrap();
}

#[test]
fn without_event_idx_and_with_rings_enabled_late() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let mut fe = connect(
        &path,
        FrontendOptions {
            negotiate_event_idx: false,
            enable_rings: false,
            ..Default::default()
        },
    );
    assert_eq!(fe.acked_features() & FEATURE_EVENT_IDX, 0);
    assert!(!fe.queue(0).event_idx());

    let head = fe.queue(0).post(&echo_chain(b"late", 2), false).unwrap();
    fe.queue(0).kick().unwrap();
    // The ring is disabled: the backend must not touch it.
    assert!(matches!(
        fe.queue(0).wait_used(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    fe.enable_ring(0, true).unwrap();
    let done = fe.queue(0).wait_used(TIMEOUT).unwrap();
    assert_eq!(done.head, head);
    assert_eq!(done.used_len, 4);
    check_echo(&mut fe, 0, false);
    drop(fe);
    server.join().unwrap();
}

#[test]
fn raw_malformed_chains_are_completed() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let mut fe = connect(&path, FrontendOptions::default());
    let q = fe.queue(0);

    // A buffer far outside guest memory.
    let head = q
        .post_raw(&[RawDesc {
            addr: 1 << 40,
            len: 16,
            flags: 0,
            next: 0,
        }])
        .unwrap();
    q.kick().unwrap();
    let done = q.wait_used(TIMEOUT).unwrap();
    assert_eq!((done.head, done.used_len), (head, 0));

    // A two-descriptor loop.
    let buf = q.alloc_buffer(8).unwrap();
    let head = q
        .post_raw(&[
            RawDesc {
                addr: buf,
                len: 8,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            RawDesc {
                addr: buf,
                len: 8,
                flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        ])
        .unwrap();
    q.kick().unwrap();
    let done = q.wait_used(TIMEOUT).unwrap();
    assert_eq!(done.head, head);
    assert!(done.written.is_empty());
    assert!(q.free_buffer(buf));

    // The queue still works afterwards.
    check_echo(&mut fe, 0, false);
    drop(fe);
    server.join().unwrap();
}

#[test]
fn disconnect_and_reconnect() {
    let (_dir, path) = socket_dir();
    // Connect first: the frontend retries until the daemon listens.
    let server = spawn_backend(path.clone(), 3);
    for _ in 0..3 {
        let mut fe = connect(&path, FrontendOptions::default());
        check_echo(&mut fe, 0, true);
        check_echo(&mut fe, 0, false);
        fe.disconnect();
    }
    server.join().unwrap();
}

#[test]
fn connect_rejects_bad_options_before_connecting() {
    let (_dir, path) = socket_dir();
    let bad = FrontendOptions {
        queue_size: 100,
        ..Default::default()
    };
    assert!(matches!(
        TestFrontend::connect(&path, bad),
        Err(Error::InvalidOptions(_))
    ));
    let too_small = FrontendOptions {
        mem_size: 4096,
        ..Default::default()
    };
    assert!(matches!(
        TestFrontend::connect(&path, too_small),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn too_many_queues_is_reported() {
    let (_dir, path) = socket_dir();
    let server = spawn_backend(path.clone(), 1);
    let err = TestFrontend::connect(
        &path,
        FrontendOptions {
            num_queues: 3,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::TooManyQueues {
            requested: 3,
            supported: 2
        }
    ));
    server.join().unwrap();
}
