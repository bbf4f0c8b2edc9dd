//! Both frontends of this crate follow the spec's rule for ring enabling, through one shared
//! function (`negotiation::rings_start_disabled`): once VHOST_USER_F_PROTOCOL_FEATURES is
//! negotiated the rings start disabled, whichever protocol features follow, so
//! SET_VRING_ENABLE(1) is sent even to a backend that offers the bit and no protocol feature
//! at all. A backend built on the vhost crate always offers REPLY_ACK, so the backend here
//! is a script on a bare socket that records what it is sent. (TestFrontend used to send
//! SET_VRING_ENABLE only when some protocol feature was acked: this test failed there.)

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::{self, JoinHandle};

use vhost_user_test_frontend::raw::{RawFrontend, RawOptions, code};
use vhost_user_test_frontend::{FEATURE_PROTOCOL_FEATURES, FrontendOptions, TestFrontend};
use vmm_sys_util::tempdir::TempDir;

const FLAG_VERSION: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;
/// VERSION_1 and PROTOCOL_FEATURES: the one feature that matters here, and a device feature.
const OFFERED: u64 = (1 << 32) | FEATURE_PROTOCOL_FEATURES;

/// Serves one connection on `path`: answers GET_FEATURES with [`OFFERED`],
/// GET_PROTOCOL_FEATURES with none, acks what asks for an ack; returns the request codes it
/// received once the frontend hangs up.
fn scripted_backend(path: &Path) -> JoinHandle<Vec<u32>> {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        let mut header = [0u8; 12];
        while conn.read_exact(&mut header).is_ok() {
            let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
            let (request, flags, size) = (word(0), word(4), word(8));
            let mut payload = vec![0u8; usize::try_from(size).unwrap()];
            conn.read_exact(&mut payload).unwrap();
            seen.push(request);
            let answer: Option<u64> = match request {
                code::GET_FEATURES => Some(OFFERED),
                code::GET_PROTOCOL_FEATURES => Some(0),
                _ if flags & FLAG_NEED_REPLY != 0 => Some(0),
                _ => None,
            };
            if let Some(value) = answer {
                let mut reply = request.to_le_bytes().to_vec();
                reply.extend_from_slice(&(FLAG_VERSION | FLAG_REPLY).to_le_bytes());
                reply.extend_from_slice(&8u32.to_le_bytes());
                reply.extend_from_slice(&value.to_le_bytes());
                conn.write_all(&reply).unwrap();
            }
        }
        seen
    })
}

fn enables(seen: &[u32]) -> usize {
    seen.iter()
        .filter(|&&r| r == code::SET_VRING_ENABLE)
        .count()
}

#[test]
fn test_frontend_enables_rings_after_protocol_features_with_no_protocol_feature() {
    let dir = TempDir::new_with_prefix("/tmp/vhost-user-test-frontend-").unwrap();
    let path = dir.as_path().join("scripted.sock");
    let backend = scripted_backend(&path);
    let fe = TestFrontend::connect(&path, FrontendOptions::default()).unwrap();
    assert_ne!(fe.acked_features() & FEATURE_PROTOCOL_FEATURES, 0);
    assert_eq!(fe.protocol_features(), 0);
    fe.disconnect();
    let seen = backend.join().unwrap();
    assert!(seen.contains(&code::SET_PROTOCOL_FEATURES), "{seen:?}");
    assert_eq!(
        enables(&seen),
        1,
        "one SET_VRING_ENABLE per queue: {seen:?}"
    );
}

#[test]
fn raw_frontend_enables_rings_after_protocol_features_with_no_protocol_feature() {
    let dir = TempDir::new_with_prefix("/tmp/vhost-user-test-frontend-").unwrap();
    let path = dir.as_path().join("scripted.sock");
    let backend = scripted_backend(&path);
    let fe = RawFrontend::handshake(&path, RawOptions::default()).unwrap();
    assert_ne!(fe.acked_features() & FEATURE_PROTOCOL_FEATURES, 0);
    assert_eq!(fe.protocol_features(), 0);
    drop(fe);
    let seen = backend.join().unwrap();
    assert_eq!(
        enables(&seen),
        1,
        "one SET_VRING_ENABLE per queue: {seen:?}"
    );
}

/// The other half of the rule, the positive check beside the negative: without
/// PROTOCOL_FEATURES the rings start enabled and SET_VRING_ENABLE is never sent.
#[test]
fn no_ring_enable_without_protocol_features() {
    let dir = TempDir::new_with_prefix("/tmp/vhost-user-test-frontend-").unwrap();
    let path = dir.as_path().join("scripted.sock");
    let backend = scripted_backend(&path);
    let opts = RawOptions {
        protocol_features: false,
        ..RawOptions::default()
    };
    let fe = RawFrontend::handshake(&path, opts).unwrap();
    assert_eq!(fe.acked_features() & FEATURE_PROTOCOL_FEATURES, 0);
    drop(fe);
    let seen = backend.join().unwrap();
    assert_eq!(enables(&seen), 0, "{seen:?}");
    assert!(!seen.contains(&code::GET_PROTOCOL_FEATURES), "{seen:?}");
}
