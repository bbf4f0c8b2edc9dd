//! End-to-end tests: the real `vhost-device-gpio` binary, driven over its socket by the
//! test frontend the way QEMU and Linux's gpio-virtio driver drive it.
// The whole file is test code: its helpers may panic like the tests themselves.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vhost_user_test_frontend::{
    Desc, Error as FeError, FrontendOptions, RawDesc, TestFrontend, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};
use virtio_gpio_core::msg::{encode_request, msg_type::*};

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-gpio");
const WAIT: Duration = Duration::from_secs(5);
/// How long to wait before concluding that nothing arrives.
const QUIET: Duration = Duration::from_millis(300);

const OK: u8 = 0;
const ERR: u8 = 1;
const INVALID: u8 = 0;
const VALID: u8 = 1;

const DIR_NONE: u32 = 0;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;

const IRQ_NONE: u32 = 0;
const IRQ_RISING: u32 = 1;
const IRQ_FALLING: u32 = 2;
const IRQ_BOTH: u32 = 3;
const IRQ_HIGH: u32 = 4;
const IRQ_LOW: u32 = 8;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn scratch_dir() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("vgpio-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running daemon, killed (by its own pid) when dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
    base: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `-s DIR/gpio.sock` and the given arguments.
    fn start(args: &[&str]) -> Self {
        let dir = scratch_dir();
        let base = dir.join("gpio.sock");
        let child = Command::new(BIN)
            .arg("-s")
            .arg(&base)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, dir, base }
    }

    fn socket(&self, index: usize) -> PathBuf {
        let mut p = self.base.clone().into_os_string();
        p.push(index.to_string());
        PathBuf::from(p)
    }

    fn connect(&self, index: usize) -> TestFrontend {
        connect_with(&self.socket(index), FrontendOptions::default())
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "daemon exited unexpectedly"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect_with(path: &Path, opts: FrontendOptions) -> TestFrontend {
    TestFrontend::connect(
        path,
        FrontendOptions {
            num_queues: 2,
            queue_size: 64,
            ..opts
        },
    )
    .unwrap()
}

/// Sends one request with a 2-byte response buffer; returns (status, value).
fn req(fe: &mut TestFrontend, t: u16, line: u16, value: u32) -> (u8, u8) {
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(encode_request(t, line, value).to_vec()),
                Desc::In(2),
            ],
            false,
            WAIT,
        )
        .unwrap();
    assert_eq!(c.used_len, 2, "used length of a response");
    (c.written[0][0], c.written[0][1])
}

/// Sends a request that must succeed; returns the value byte.
fn ok(fe: &mut TestFrontend, t: u16, line: u16, value: u32) -> u8 {
    let (status, v) = req(fe, t, line, value);
    assert_eq!(status, OK, "request type {t} line {line} value {value}");
    v
}

fn err(fe: &mut TestFrontend, t: u16, line: u16, value: u32) {
    assert_eq!(
        req(fe, t, line, value).0,
        ERR,
        "type {t} line {line} value {value}"
    );
}

/// Queues an eventq buffer for `line` (unmasks it); returns its head.
fn arm(fe: &mut TestFrontend, line: u16) -> u16 {
    let q = fe.queue(1);
    let head = q
        .post(
            &[Desc::Out(line.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .unwrap();
    q.kick().unwrap();
    head
}

/// Waits for the eventq buffer `head` to come back with `status`.
fn expect_event(fe: &mut TestFrontend, head: u16, status: u8) {
    let c = fe.queue(1).wait_head(head, WAIT).unwrap();
    assert_eq!(c.used_len, 1, "eventq used length");
    assert_eq!(c.written[0][0], status, "eventq status");
}

/// Checks that no eventq buffer comes back.
fn expect_quiet(fe: &mut TestFrontend) {
    match fe.queue(1).wait_used(QUIET) {
        Err(FeError::Timeout) => {}
        other => panic!("unexpected eventq completion: {other:?}"),
    }
}

fn output(fe: &mut TestFrontend, line: u16, value: u32) {
    ok(fe, SET_VALUE, line, value);
    ok(fe, SET_DIRECTION, line, DIR_OUT);
}

/// Line 1 as an input with interrupt type `irq`, line 0 as a low output driving it.
fn pair_with_irq(fe: &mut TestFrontend, irq: u32) {
    output(fe, 0, 0);
    ok(fe, SET_DIRECTION, 1, DIR_IN);
    ok(fe, SET_IRQ_TYPE, 1, irq);
}

fn names_blob(n: u16) -> Vec<u8> {
    (0..n)
        .flat_map(|l| format!("sim-{l}\0").into_bytes())
        .collect()
}

#[test]
fn features_queues_and_config() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    let offered = fe.offered_features();
    for bit in [0, 28, 29, 30, 32] {
        assert_ne!(offered & (1 << bit), 0, "feature bit {bit} offered");
    }
    assert_eq!(fe.protocol_features() & 0x201, 0x201, "MQ and CONFIG");
    assert_ne!(fe.protocol_features() & 0x8, 0, "REPLY_ACK");
    assert_eq!(fe.backend_queue_num(), Some(2));
    let size = u32::try_from(names_blob(8).len()).unwrap();
    let mut want = vec![8, 0, 0, 0];
    want.extend_from_slice(&size.to_le_bytes());
    assert_eq!(fe.get_config(0, 8).unwrap(), want);
    assert_eq!(fe.get_config(4, 4).unwrap(), size.to_le_bytes());
    // Out-of-bounds reads are refused, never a crash.
    assert_eq!(fe.get_config(0, 2).unwrap(), vec![8, 0]);
    assert_eq!(fe.get_config(2, 2).unwrap(), vec![0, 0]);
    // Reads past the end get a short (error) answer from the backend; the vhost crate's
    // frontend then blocks waiting for the missing bytes, so that case is covered by the
    // backend's unit test instead.
}

#[test]
fn line_names_layout() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    let blob = names_blob(8);
    let len = u32::try_from(blob.len()).unwrap();
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(encode_request(GET_LINE_NAMES, 0, 0).to_vec()),
                Desc::In(len + 1),
            ],
            false,
            WAIT,
        )
        .unwrap();
    assert_eq!(c.used_len, len + 1);
    assert_eq!(c.written[0][0], OK);
    assert_eq!(&c.written[0][1..], blob.as_slice());
    // A buffer of the wrong size is an error.
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(encode_request(GET_LINE_NAMES, 0, 0).to_vec()),
                Desc::In(2),
            ],
            false,
            WAIT,
        )
        .unwrap();
    assert_eq!(c.written[0][0], ERR);
}

#[test]
fn direction_and_value() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    for line in 0..8 {
        assert_eq!(ok(&mut fe, GET_DIRECTION, line, 0), 0);
    }
    // SET_VALUE before SET_DIRECTION(OUT) takes effect when the line becomes an output.
    ok(&mut fe, SET_VALUE, 4, 1);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 4, DIR_OUT);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 1);
    ok(&mut fe, SET_VALUE, 4, 0);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 5, DIR_IN);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 5, 0), 2);
    // NONE discards the pending value: a new output starts low.
    ok(&mut fe, SET_VALUE, 4, 1);
    ok(&mut fe, SET_DIRECTION, 4, DIR_NONE);
    assert_eq!(ok(&mut fe, GET_DIRECTION, 4, 0), 0);
    ok(&mut fe, SET_DIRECTION, 4, DIR_OUT);
    assert_eq!(ok(&mut fe, GET_VALUE, 4, 0), 0);
}

#[test]
fn wired_pairs() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_DIRECTION, 3, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
    output(&mut fe, 0, 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 1);
    assert_eq!(ok(&mut fe, GET_VALUE, 3, 0), 0, "other pairs unaffected");
    // The wiring works both ways.
    output(&mut fe, 3, 1);
    ok(&mut fe, SET_DIRECTION, 2, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 2, 0), 1);
    ok(&mut fe, SET_VALUE, 0, 0);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
    // A released driver leaves its partner low.
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_DIRECTION, 0, DIR_NONE);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
}

#[test]
fn edge_rising() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_RISING);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
    // A falling edge does not fire a rising interrupt, nor latch one.
    ok(&mut fe, SET_VALUE, 0, 0);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn edge_falling() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    output(&mut fe, 0, 1);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_FALLING);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 0);
    expect_event(&mut fe, head, VALID);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 0);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn edge_both() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_BOTH);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 0);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn edges_while_masked_are_latched() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_RISING);
    // Masked (no buffer queued): the edge is latched ...
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_VALUE, 0, 0);
    ok(&mut fe, SET_VALUE, 0, 1);
    // ... and delivered once on re-queue.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, VALID);
    let _held = arm(&mut fe, 1);
    expect_quiet(&mut fe);
}

#[test]
fn level_high_renotifies_while_active() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_HIGH);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
    // Still high when re-queued: fires again, and again.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, VALID);
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, VALID);
    // Low: held until the level comes back.
    ok(&mut fe, SET_VALUE, 0, 0);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn level_is_not_latched() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_HIGH);
    // A pulse while masked is gone by re-queue.
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_VALUE, 0, 0);
    let _held = arm(&mut fe, 1);
    expect_quiet(&mut fe);
}

#[test]
fn level_low() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    // Line 1 reads low: a LEVEL_LOW buffer fires at once.
    pair_with_irq(&mut fe, IRQ_LOW);
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, VALID);
    ok(&mut fe, SET_VALUE, 0, 1);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 0);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn invalid_returns() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    // No interrupt type: returned INVALID at once.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, INVALID);
    // Out of range.
    let head = arm(&mut fe, 8);
    expect_event(&mut fe, head, INVALID);
    let head = arm(&mut fe, u16::MAX);
    expect_event(&mut fe, head, INVALID);
    // A held buffer comes back INVALID when the type is set to NONE.
    pair_with_irq(&mut fe, IRQ_BOTH);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_NONE);
    expect_event(&mut fe, head, INVALID);
    // ... and when the line is released.
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_RISING);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_DIRECTION, 1, DIR_NONE);
    expect_event(&mut fe, head, INVALID);
    // With the type gone, edges fire nothing.
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_quiet(&mut fe);
}

#[test]
fn type_switch_without_none_and_resend() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    pair_with_irq(&mut fe, IRQ_RISING);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_RISING);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_FALLING);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_VALUE, 0, 0);
    expect_event(&mut fe, head, VALID);
    // Switching straight to a level type whose level is active fires the held buffer.
    ok(&mut fe, SET_VALUE, 0, 1);
    let head = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_HIGH);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn hostile_requests_get_err_and_service_continues() {
    let mut d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    err(&mut fe, GET_DIRECTION, 8, 0);
    err(&mut fe, GET_VALUE, u16::MAX, 0);
    err(&mut fe, SET_DIRECTION, 8, DIR_OUT);
    err(&mut fe, SET_VALUE, 100, 1);
    err(&mut fe, SET_IRQ_TYPE, 8, IRQ_BOTH);
    err(&mut fe, 0, 0, 0);
    err(&mut fe, 7, 0, 0);
    err(&mut fe, u16::MAX, 0, 0);
    err(&mut fe, SET_VALUE, 0, 2);
    err(&mut fe, SET_DIRECTION, 0, 3);
    for bad in [5, 6, 7, 9, 16, u32::MAX] {
        err(&mut fe, SET_IRQ_TYPE, 1, bad);
    }
    // An interrupt type on an output is refused.
    output(&mut fe, 0, 0);
    err(&mut fe, SET_IRQ_TYPE, 0, IRQ_RISING);

    let q = fe.queue(0);
    let good = encode_request(GET_DIRECTION, 0, 0).to_vec();
    // Wrong response size: ERR in what fits.
    let c = q
        .transact(&[Desc::Out(good.clone()), Desc::In(3)], false, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0][0]), (2, ERR));
    let c = q
        .transact(&[Desc::Out(good.clone()), Desc::In(1)], false, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0][0]), (1, ERR));
    // No response buffer at all: used length 0.
    let c = q.transact(&[Desc::Out(good.clone())], false, WAIT).unwrap();
    assert_eq!(c.used_len, 0);
    // Short and long requests.
    let c = q
        .transact(&[Desc::Out(good[..7].to_vec()), Desc::In(2)], false, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0][0]), (2, ERR));
    let mut long = good.clone();
    long.push(0);
    let c = q
        .transact(&[Desc::Out(long), Desc::In(2)], false, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0][0]), (2, ERR));
    // Response buffer before the request (device-readable after device-writable).
    let c = q
        .transact(&[Desc::In(2), Desc::Out(good.clone())], false, WAIT)
        .unwrap();
    assert_eq!(c.used_len, 0);
    // Buffers outside guest memory.
    let head = q
        .post_raw(&[
            RawDesc {
                addr: 0xffff_ffff_0000,
                len: 8,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            RawDesc {
                addr: 0xffff_ffff_1000,
                len: 2,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        ])
        .unwrap();
    q.kick().unwrap();
    assert_eq!(q.wait_head(head, WAIT).unwrap().used_len, 0);
    // A chain whose `next` leaves the table.
    let head = q
        .post_raw(&[RawDesc {
            addr: 0x1000,
            len: 8,
            flags: VIRTQ_DESC_F_NEXT,
            next: 60_000,
        }])
        .unwrap();
    q.kick().unwrap();
    let _ = q.wait_head(head, QUIET);

    // Malformed eventq buffers.
    let e = fe.queue(1);
    let c = e
        .transact(&[Desc::Out(vec![1, 0, 0]), Desc::In(1)], false, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0][0]), (1, INVALID));
    let c = e.transact(&[Desc::Out(vec![1, 0])], false, WAIT).unwrap();
    assert_eq!(c.used_len, 0);

    // Still serving, correctly.
    assert_eq!(ok(&mut fe, GET_DIRECTION, 0, 0), 1);
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0);
    d.assert_running();
}

#[test]
fn indirect_and_split_descriptors() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    let r = encode_request(SET_VALUE, 2, 1).to_vec();
    let c = fe
        .queue(0)
        .transact(&[Desc::Out(r), Desc::In(2)], true, WAIT)
        .unwrap();
    assert_eq!((c.used_len, c.written[0].clone()), (2, vec![OK, 0]));
    let r = encode_request(SET_DIRECTION, 2, DIR_OUT);
    let c = fe
        .queue(0)
        .transact(
            &[
                Desc::Out(r[..3].to_vec()),
                Desc::Out(r[3..].to_vec()),
                Desc::In(1),
                Desc::In(1),
            ],
            true,
            WAIT,
        )
        .unwrap();
    assert_eq!(c.used_len, 2);
    assert_eq!(c.written, vec![vec![OK], vec![0]]);
    assert_eq!(ok(&mut fe, GET_VALUE, 2, 0), 1);
}

#[test]
fn kick_before_ring_enable_is_not_lost() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = connect_with(
        &d.socket(0),
        FrontendOptions {
            enable_rings: false,
            ..FrontendOptions::default()
        },
    );
    let q = fe.queue(0);
    let head = q
        .post(
            &[
                Desc::Out(encode_request(GET_DIRECTION, 0, 0).to_vec()),
                Desc::In(2),
            ],
            false,
        )
        .unwrap();
    q.kick().unwrap();
    assert!(matches!(q.wait_used(QUIET), Err(FeError::Timeout)));
    fe.enable_ring(0, true).unwrap();
    fe.enable_ring(1, true).unwrap();
    let c = fe.queue(0).wait_head(head, WAIT).unwrap();
    assert_eq!(c.used_len, 2);
    assert_eq!(c.written[0], vec![OK, 0]);
}

#[test]
fn without_event_idx() {
    let d = Daemon::start(&["-l", "s8"]);
    let mut fe = connect_with(
        &d.socket(0),
        FrontendOptions {
            negotiate_event_idx: false,
            ..FrontendOptions::default()
        },
    );
    assert!(!fe.event_idx());
    pair_with_irq(&mut fe, IRQ_RISING);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
}

#[test]
fn reconnect_resets_state() {
    let mut d = Daemon::start(&["-l", "s8"]);
    {
        let mut fe = d.connect(0);
        pair_with_irq(&mut fe, IRQ_RISING);
        ok(&mut fe, SET_VALUE, 0, 1);
        let _held = arm(&mut fe, 1);
        output(&mut fe, 6, 1);
        fe.disconnect();
    }
    let mut fe = d.connect(0);
    for line in [0, 1, 6] {
        assert_eq!(ok(&mut fe, GET_DIRECTION, line, 0), 0, "line {line}");
    }
    ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
    ok(&mut fe, SET_DIRECTION, 7, DIR_IN);
    assert_eq!(ok(&mut fe, GET_VALUE, 1, 0), 0, "old driver released");
    assert_eq!(ok(&mut fe, GET_VALUE, 7, 0), 0, "old driver released");
    // No interrupt type survives, and no latched edge.
    let head = arm(&mut fe, 1);
    expect_event(&mut fe, head, INVALID);
    ok(&mut fe, SET_IRQ_TYPE, 1, IRQ_RISING);
    let _held = arm(&mut fe, 1);
    expect_quiet(&mut fe);
    d.assert_running();
}

#[test]
fn two_chips_at_once() {
    let d = Daemon::start(&["-c", "2", "-l", "s4:s8"]);
    let mut a = d.connect(0);
    let mut b = d.connect(1);
    assert_eq!(a.get_config(0, 2).unwrap(), vec![4, 0]);
    assert_eq!(b.get_config(0, 2).unwrap(), vec![8, 0]);
    err(&mut a, GET_DIRECTION, 4, 0);
    assert_eq!(ok(&mut b, GET_DIRECTION, 7, 0), 0);
    // Separate chips: wiring and interrupts do not cross.
    pair_with_irq(&mut a, IRQ_RISING);
    pair_with_irq(&mut b, IRQ_RISING);
    let ha = arm(&mut a, 1);
    let hb = arm(&mut b, 1);
    ok(&mut b, SET_VALUE, 0, 1);
    expect_event(&mut b, hb, VALID);
    expect_quiet(&mut a);
    assert_eq!(ok(&mut a, GET_VALUE, 1, 0), 0);
    ok(&mut a, SET_VALUE, 0, 1);
    expect_event(&mut a, ha, VALID);
}

#[test]
fn sigterm_exits_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start(&["-l", "s8"]);
    let mut fe = d.connect(0);
    output(&mut fe, 0, 1);
    let pid = d.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = d.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!d.socket(0).exists(), "socket file left behind");
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn print_capabilities() {
    let out = run(&["--print-capabilities"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"type\": \"gpio\""), "{text}");
    assert!(text.contains("\"features\": []"), "{text}");
    // Any other option is ignored.
    assert!(run(&["--print-capabilities", "--bogus"]).status.success());
}

#[test]
fn bad_command_lines_fail_before_binding() {
    let dir = scratch_dir();
    let sock = dir.join("bad.sock");
    let s = sock.to_str().unwrap();
    for (args, needle) in [
        (vec!["-s", s], "--device-list"),
        (vec!["-s", s, "-l", "s8", "--bogus"], "--bogus"),
        (vec!["-s", s, "-c", "2", "-l", "s8"], "socket-count"),
        (vec!["-s", s, "-l", "s8:s8"], "socket-count"),
        (vec!["-s", s, "-c", "2", "-l", "0:0"], "more than once"),
        (vec!["-s", s, "-l", "s0"], "s0"),
        (vec!["-s", s, "-l", "x"], "\"x\""),
        (vec!["-s", s, "-l", "250"], "/dev/gpiochip250"),
        (vec!["-l", "s8"], "socket-path"),
        (vec!["--fd", "3", "-c", "2", "-l", "s1:s1"], "exactly one"),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line:\n{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{args:?} created a socket"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A deterministic storm of random malformed chains on both queues, with good requests
/// between them: every chain comes back, every good request succeeds, the daemon lives.
#[test]
fn random_malformed_chains_never_disturb_good_requests() {
    use vhost_user_test_frontend::hostile::{Arena, Rng, random_chain};
    use vm_memory::{Bytes, GuestAddress};

    const SCRATCH: u32 = 2048;
    const MEM_SIZE: usize = 4 << 20;
    let mut d = Daemon::start(&["-l", "s8"]);
    let mut fe = connect_with(
        &d.socket(0),
        FrontendOptions {
            mem_size: MEM_SIZE,
            ..FrontendOptions::default()
        },
    );
    let mut rng = Rng::new(0x6770_696f_0000_0001);
    for round in 0..40u32 {
        for queue in [0usize, 1] {
            let scratch = fe.queue(queue).alloc_buffer(SCRATCH).unwrap();
            fe.memory()
                .write_slice(&[0u8; SCRATCH as usize], GuestAddress(scratch))
                .unwrap();
            let arena = Arena {
                scratch,
                scratch_len: SCRATCH,
                mem_size: MEM_SIZE as u64,
            };
            let q = fe.queue(queue);
            let heads: Vec<u16> = (0..10)
                .map(|_| q.post_raw(&random_chain(&mut rng, arena)).unwrap())
                .collect();
            q.kick().unwrap();
            for h in heads {
                q.wait_head(h, WAIT)
                    .unwrap_or_else(|e| panic!("round {round} queue {queue}: chain {h}: {e:?}"));
            }
            assert!(q.free_buffer(scratch));
        }
        // Line 0 drives line 1 (a wired pair): a full request/response cycle still works.
        let level = round % 2;
        ok(&mut fe, SET_VALUE, 0, level);
        ok(&mut fe, SET_DIRECTION, 0, DIR_OUT);
        ok(&mut fe, SET_DIRECTION, 1, DIR_IN);
        assert_eq!(
            u32::from(ok(&mut fe, GET_VALUE, 1, 0)),
            level,
            "round {round}"
        );
    }
    d.assert_running();
}
