//! Every wait of the test frontend has a deadline: against stand-in "daemons" that accept
//! and never answer, never read, or never accept, the frontend fails within seconds with
//! an error naming what it waited for, instead of hanging `cargo test`.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost_user_test_frontend::dut::chain;
use vhost_user_test_frontend::raw::{RawConn, RawError, code};
use vhost_user_test_frontend::{Error, FrontendOptions, TestFrontend};
use vmm_sys_util::tempdir::TempDir;

/// Far above every deadline of the frontend (5 s), far below "hangs".
const BOUND: Duration = Duration::from_secs(30);

fn socket_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new_with_prefix("/tmp/vhost-user-test-frontend-deadlines-").unwrap();
    let path = dir.as_path().join("standin.sock");
    (dir, path)
}

/// A stand-in daemon that accepts one connection and holds it, reading nothing and
/// answering nothing, until `stop` is sent (or dropped).
fn accept_and_hold(path: &Path) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let listener = UnixListener::bind(path).unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        // Held until the test is done (an error: the sender was dropped, same thing).
        let _ = stopped.recv();
        drop(conn);
    });
    (stop, t)
}

/// A listener that never accepts, with its backlog already full: a connect cannot even
/// be queued. Returns the listener and the connections that filled the backlog.
fn full_backlog(path: &Path) -> (UnixListener, Vec<UnixStream>) {
    let listener = UnixListener::bind(path).unwrap();
    // SAFETY: listen(2) on a socket we own; a second listen only changes the backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let mut queued = Vec::new();
    loop {
        match vhost_user_test_frontend::socket::connect(path, Duration::from_millis(50)) {
            Ok(s) => queued.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 64, "the backlog of 0 never filled");
    }
    (listener, queued)
}

#[test]
fn connect_to_a_daemon_that_never_answers_fails_naming_the_request() {
    let (_dir, path) = socket_dir();
    let (stop, t) = accept_and_hold(&path);
    let start = Instant::now();
    let err = TestFrontend::connect(&path, FrontendOptions::default())
        .expect_err("a daemon that never answers cannot complete the handshake");
    let took = start.elapsed();
    assert!(took < BOUND, "the handshake waited {took:?}");
    // SET_OWNER needs no reply; GET_FEATURES is the first request that waits for one.
    assert!(
        matches!(
            err,
            Error::NoReply {
                request: "GET_FEATURES",
                ..
            }
        ),
        "{err:?}"
    );
    let text = chain(&err);
    assert!(
        text.contains("no reply to GET_FEATURES within 5s"),
        "{text}"
    );
    stop.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn connect_to_a_listener_that_never_accepts_fails_naming_the_backlog() {
    let (_dir, path) = socket_dir();
    let (_listener, _queued) = full_backlog(&path);
    let start = Instant::now();
    let err = TestFrontend::connect(&path, FrontendOptions::default())
        .expect_err("a full backlog cannot take the connection");
    let took = start.elapsed();
    assert!(took < BOUND, "the connect waited {took:?}");
    assert!(matches!(err, Error::NotAccepted { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("did not take a connection within"), "{text}");
    assert!(text.contains("backlog"), "{text}");
}

#[test]
fn raw_connect_to_a_listener_that_never_accepts_fails_naming_the_backlog() {
    let (_dir, path) = socket_dir();
    let (_listener, _queued) = full_backlog(&path);
    let start = Instant::now();
    let err = RawConn::connect(&path, Duration::from_secs(2))
        .expect_err("a full backlog cannot take the connection");
    let took = start.elapsed();
    assert!(took < BOUND, "the connect waited {took:?}");
    assert!(matches!(err, RawError::NotAccepted { .. }), "{err:?}");
    assert!(
        chain(&err).contains("backlog stayed full"),
        "{}",
        chain(&err)
    );
}

#[test]
fn raw_send_of_1_mib_to_a_daemon_that_never_reads_fails_naming_the_send() {
    let (_dir, path) = socket_dir();
    let (stop, t) = accept_and_hold(&path);
    let mut conn = RawConn::connect(&path, Duration::from_secs(5)).unwrap();
    conn.set_send_timeout(Duration::from_secs(2));
    let huge = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let err = conn
        .send(9999, &huge, &[])
        .expect_err("1 MiB cannot fit in the socket buffers of a peer that never reads");
    let took = start.elapsed();
    assert!(took < BOUND, "the send waited {took:?}");
    match err {
        RawError::SendTimeout { sent, len, .. } => {
            assert_eq!(len, (1 << 20) + 12);
            assert!(sent < len, "{sent} of {len}");
        }
        other => panic!("expected a send timeout, got {other:?}"),
    }
    stop.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn raw_reply_wait_on_a_daemon_that_never_answers_fails_naming_the_wait() {
    let (_dir, path) = socket_dir();
    let (stop, t) = accept_and_hold(&path);
    let conn = RawConn::connect(&path, Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let err = conn
        .call(code::GET_FEATURES, &[], Duration::from_millis(500))
        .expect_err("no reply comes");
    assert!(start.elapsed() < BOUND);
    assert!(matches!(err, RawError::Timeout(_)), "{err:?}");
    assert_eq!(chain(&err), "no reply within 500ms");
    stop.send(()).unwrap();
    t.join().unwrap();
}
