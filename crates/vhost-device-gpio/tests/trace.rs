//! `--trace`: one line per message with the line's name and the result, one per returned
//! eventq buffer; nothing of the kind without the option.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{SET_DIRECTION, SET_IRQ_TYPE, SET_VALUE};
use vmm_sys_util::tempdir::TempDir;

const WAIT: Duration = Duration::from_secs(5);

struct Daemon {
    child: Child,
    log: PathBuf,
    sock: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        let dir = TempDir::new_with_prefix("/tmp/vhost-device-gpio-trace-").unwrap();
        let base = dir.as_path().join("gpio.sock");
        let log = dir.as_path().join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_vhost-device-gpio"))
            .arg("-s")
            .arg(&base)
            .args(["-l", "s8"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut sock = base.into_os_string();
        sock.push("0");
        Daemon {
            child,
            log,
            sock: sock.into(),
            _dir: dir,
        }
    }

    fn connect(&self) -> TestFrontend {
        let opts = FrontendOptions {
            num_queues: 2,
            queue_size: 64,
            ..Default::default()
        };
        TestFrontend::connect(&self.sock, opts).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_line(&self, line: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().lines().any(|l| l.ends_with(line)) {
            assert!(
                Instant::now() < deadline,
                "no trace line ending in {line:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn trace_lines(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("vhost_device_trace"))
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(fe: &mut TestFrontend, t: u16, line: u16, value: u32) {
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
    assert_eq!(c.written[0][0], 0, "request {t} line {line} value {value}");
}

#[test]
fn messages_and_interrupts_are_traced_with_line_names() {
    let d = Daemon::start(&["--trace"]);
    let mut fe = d.connect();
    // Line 0 drives line 1 (the simulated chip wires them).
    ok(&mut fe, SET_VALUE, 0, 0);
    d.wait_for_line("SET_VALUE 0 (sim-0) 0 -> OK");
    ok(&mut fe, SET_DIRECTION, 0, 1);
    d.wait_for_line("SET_DIRECTION 0 (sim-0) out -> OK");
    ok(&mut fe, SET_DIRECTION, 1, 2);
    ok(&mut fe, SET_IRQ_TYPE, 1, 1);
    d.wait_for_line("SET_IRQ_TYPE 1 (sim-1) edge-rising -> OK");
    let q = fe.queue(1);
    let head = q
        .post(
            &[Desc::Out(1u16.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .unwrap();
    q.kick().unwrap();
    ok(&mut fe, SET_VALUE, 0, 1);
    let c = fe.queue(1).wait_head(head, WAIT).unwrap();
    assert_eq!(c.written[0][0], 1, "VALID");
    d.wait_for_line("IRQ 1 (sim-1) edge-rising delivered");
    // An eventq buffer for a line without an interrupt type comes back INVALID.
    let q = fe.queue(1);
    let head = q
        .post(
            &[Desc::Out(3u16.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .unwrap();
    q.kick().unwrap();
    let c = fe.queue(1).wait_head(head, WAIT).unwrap();
    assert_eq!(c.written[0][0], 0, "INVALID");
    d.wait_for_line("IRQ 3 (sim-3) returned INVALID");
}

#[test]
fn without_the_option_nothing_is_traced() {
    let d = Daemon::start(&[]);
    let mut fe = d.connect();
    ok(&mut fe, SET_VALUE, 0, 1);
    ok(&mut fe, SET_DIRECTION, 0, 1);
    let deadline = Instant::now() + WAIT;
    while !d.log().contains("frontend connected") {
        assert!(
            Instant::now() < deadline,
            "no connection line:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(d.trace_lines(), 0, "{}", d.log());
}
