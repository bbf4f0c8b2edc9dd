//! host-devices, GPIO: vhost-device-gpio serving a gpio-sim chip. Outputs are checked in
//! gpio-sim's sysfs (`sim_gpioN/value`) and line ownership with `gpioinfo`; inputs and
//! interrupts are driven by writing `pull-up` / `pull-down` to `sim_gpioN/pull`.
//!
//! No sleeps: a value is polled until it is what the check wants (with a deadline), and
//! "no interrupt" is shown by a known event on a sentinel line after the actions: once the
//! sentinel's buffer is back, an interrupt the actions caused would have been delivered.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vhost_user_test_frontend::{Desc, TestFrontend};

use crate::connect::connect;
use crate::{Report, ensure};

const TIMEOUT: Duration = Duration::from_secs(5);
const GET_LINE_NAMES: u16 = 1;
const GET_DIRECTION: u16 = 2;
const SET_DIRECTION: u16 = 3;
const GET_VALUE: u16 = 4;
const SET_VALUE: u16 = 5;
const SET_IRQ_TYPE: u16 = 6;
const DIR_OUT: u32 = 1;
const DIR_IN: u32 = 2;
const DIR_NONE: u32 = 0;
const IRQ_NONE: u32 = 0;
const IRQ_EDGE_RISING: u32 = 1;
const IRQ_EDGE_FALLING: u32 = 2;
const IRQ_EDGE_BOTH: u32 = 3;
const IRQ_LEVEL_HIGH: u32 = 4;
const IRQ_LEVEL_LOW: u32 = 8;
const STATUS_OK: u8 = 0;
const STATUS_ERR: u8 = 1;
const IRQ_INVALID: u8 = 0;
const IRQ_VALID: u8 = 1;
const F_IRQ: u64 = 1;
const F_VERSION_1: u64 = 1 << 32;

struct Sim<'a> {
    dir: &'a Path,
}

impl Sim<'_> {
    fn value(&self, line: u16) -> Result<String, String> {
        let p = self.dir.join(format!("sim_gpio{line}/value"));
        fs::read_to_string(&p)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("{}: {e}", p.display()))
    }
    fn pull(&self, line: u16, up: bool) -> Result<(), String> {
        let p = self.dir.join(format!("sim_gpio{line}/pull"));
        fs::write(&p, if up { "pull-up" } else { "pull-down" })
            .map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The `gpioinfo` line of `line` (the chip is the last component of the sim dir).
    fn info(&self, line: u16) -> Result<String, String> {
        let chip = self
            .dir
            .file_name()
            .and_then(|c| c.to_str())
            .ok_or_else(|| format!("no chip name in {}", self.dir.display()))?;
        let out = Command::new("gpioinfo")
            .arg(chip)
            .output()
            .map_err(|e| format!("gpioinfo {chip}: {e}"))?;
        ensure(out.status.success(), || {
            format!("gpioinfo {chip}: {}", String::from_utf8_lossy(&out.stderr))
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let want = format!("{line}:");
        text.lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some("line") && w.next() == Some(want.as_str())
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .ok_or_else(|| format!("gpioinfo {chip} has no line {line}"))
    }
}

/// `Err` unless gpioinfo shows `line` requested by the daemon (consumer
/// "vhost-device-gpio") in direction `dir` ("input"/"output").
fn expect_owned(sim: &Sim<'_>, line: u16, dir: &str) -> Result<(), String> {
    let info = sim.info(line)?;
    ensure(
        info.contains("\"vhost-device-gpio\"") && info.contains(&format!(" {dir} ")),
        || format!("gpioinfo: '{info}', expected consumer \"vhost-device-gpio\" and {dir}"),
    )
}

/// `Err` unless gpioinfo shows `line` free.
fn expect_free(sim: &Sim<'_>, line: u16) -> Result<(), String> {
    let info = sim.info(line)?;
    ensure(info.contains("unused") && !info.contains("[used]"), || {
        format!("gpioinfo: '{info}', expected the line unused")
    })
}

/// One request on the request queue: returns (status, value, used length).
fn req(fe: &mut TestFrontend, ty: u16, gpio: u16, value: u32) -> Result<(u8, u8, u32), String> {
    let mut r = Vec::with_capacity(8);
    r.extend_from_slice(&ty.to_le_bytes());
    r.extend_from_slice(&gpio.to_le_bytes());
    r.extend_from_slice(&value.to_le_bytes());
    let c = fe
        .queue(0)
        .transact(&[Desc::Out(r), Desc::In(2)], false, TIMEOUT)
        .map_err(|e| format!("request {ty} line {gpio}: {e}"))?;
    let resp = c.written.first().ok_or("no response buffer")?;
    Ok((resp[0], resp[1], c.used_len))
}

/// A request that must succeed with used length 2; returns the value byte.
fn ok(fe: &mut TestFrontend, ty: u16, gpio: u16, value: u32) -> Result<u8, String> {
    let (s, v, len) = req(fe, ty, gpio, value)?;
    ensure(s == STATUS_OK, || {
        format!("request {ty} line {gpio} value {value}: status {s}")
    })?;
    ensure(len == 2, || {
        format!("request {ty} line {gpio}: used length {len}, expected 2")
    })?;
    Ok(v)
}

fn post_irq(fe: &mut TestFrontend, line: u16) -> Result<u16, String> {
    let q = fe.queue(1);
    let head = q
        .post(
            &[Desc::Out(line.to_le_bytes().to_vec()), Desc::In(1)],
            false,
        )
        .map_err(|e| format!("eventq post: {e}"))?;
    q.kick().map_err(|e| format!("eventq kick: {e}"))?;
    Ok(head)
}

/// Waits for the eventq buffer `head`; returns its status (checking used length 1).
fn wait_irq(fe: &mut TestFrontend, head: u16, timeout: Duration) -> Result<u8, String> {
    let c = fe
        .queue(1)
        .wait_head(head, timeout)
        .map_err(|e| format!("eventq: {e}"))?;
    ensure(c.used_len == 1, || {
        format!("eventq used length {}, expected 1", c.used_len)
    })?;
    c.written
        .first()
        .and_then(|b| b.first().copied())
        .ok_or_else(|| "no eventq status".to_owned())
}

/// Isolates the next check from a failed one: releases `line` (which returns a buffer the
/// daemon still holds for it) and drops every eventq buffer already returned.
fn settle(fe: &mut TestFrontend, line: u16) {
    // Best effort by design: this only cleans up after a check that already reported.
    let _ = req(fe, SET_DIRECTION, line, DIR_NONE);
    let deadline = Instant::now() + TIMEOUT;
    while fe.queue(1).outstanding() > 0 && Instant::now() < deadline {
        let _ = fe.queue(1).wait_used(Duration::from_millis(100));
    }
}

/// `Err` unless the eventq status `s` is `want` (`what` says when).
fn expect(s: u8, want: u8, what: &str) -> Result<(), String> {
    let name = |v: u8| if v == IRQ_VALID { "VALID" } else { "INVALID" };
    ensure(s == want, || {
        format!("eventq status {s} {what}, expected {}", name(want))
    })
}

/// The line whose edges show that the daemon's event handling has caught up.
const SENTINEL: u16 = 3;

/// Makes `SENTINEL` an input with EDGE_RISING, held low.
fn sentinel_setup(fe: &mut TestFrontend, sim: &Sim<'_>) -> Result<(), String> {
    sim.pull(SENTINEL, false)?;
    ok(fe, SET_DIRECTION, SENTINEL, DIR_IN)?;
    ok(fe, SET_IRQ_TYPE, SENTINEL, IRQ_EDGE_RISING).map(|_| ())
}

/// Shows that the eventq buffer `h` is still held: a rising edge on the sentinel line
/// (after whatever the check did before) returns the sentinel's buffer VALID, and `h` has
/// not come back by then. Returns `h`.
fn still_held(fe: &mut TestFrontend, sim: &Sim<'_>, h: u16) -> Result<u16, String> {
    sim.pull(SENTINEL, false)?;
    let s = post_irq(fe, SENTINEL)?;
    sim.pull(SENTINEL, true)?;
    let st = wait_irq(fe, s, TIMEOUT).map_err(|e| format!("sentinel line {SENTINEL}: {e}"))?;
    expect(st, IRQ_VALID, "on the sentinel line")?;
    match fe.queue(1).wait_head(h, Duration::ZERO) {
        Ok(c) => Err(format!(
            "eventq buffer returned before the sentinel's edge was handled (status {:?})",
            c.written.first()
        )),
        Err(_) => Ok(h),
    }
}

/// GET_VALUE on `line` until it reads `want` (deadline [`TIMEOUT`]).
fn value_until(fe: &mut TestFrontend, line: u16, want: u8) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = ok(fe, GET_VALUE, line, 0)?;
        if v == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GET_VALUE line {line} = {v}, expected {want} within {TIMEOUT:?}"
            ));
        }
    }
}

/// Runs every GPIO check against the daemon on `socket` serving the gpio-sim chip in
/// `sim_dir` with line `names`, one named step after another (the checks keep their names
/// and order).
pub fn run(rep: &mut Report, socket: &Path, sim_dir: &Path, names: &[String]) {
    let sim = Sim { dir: sim_dir };
    let Some(mut fe) = connect(
        rep,
        socket,
        2,
        64,
        4 << 20,
        F_IRQ | F_VERSION_1,
        "VIRTIO_GPIO_F_IRQ or VERSION_1",
    ) else {
        return;
    };
    let ngpio = u16::try_from(names.len()).unwrap_or(u16::MAX);
    config(rep, &mut fe, names);
    line_names(rep, &mut fe, names);
    output_line(rep, &mut fe, &sim);
    input_line(rep, &mut fe, &sim);
    errors(rep, &mut fe, ngpio);
    rep.check("sentinel-setup", sentinel_setup(&mut fe, &sim));
    irq_edges(rep, &mut fe, &sim);
    irq_returns_and_level_high(rep, &mut fe, &sim);
    irq_edge_both(rep, &mut fe, &sim);
    irq_level_low(rep, &mut fe, &sim);
    irq_switch_type_held(rep, &mut fe, &sim);
    irq_same_type(rep, &mut fe, &sim);
    for line in [1, SENTINEL, 7] {
        let _ = ok(&mut fe, SET_DIRECTION, line, DIR_NONE);
    }
    fe.disconnect();
}

/// GET_CONFIG: the line count and the size of the names blob gpio-sim gives.
fn config(rep: &mut Report, fe: &mut TestFrontend, names: &[String]) {
    let ngpio = u16::try_from(names.len()).unwrap_or(u16::MAX);
    let names_size: usize = names.iter().map(|n| n.len() + 1).sum();
    let cfg = fe.get_config(0, 8).map_err(|e| format!("GET_CONFIG: {e}"));
    let r = cfg.and_then(|c| {
        ensure(c.len() == 8, || format!("config is {} bytes", c.len()))?;
        let n = u16::from_le_bytes([c[0], c[1]]);
        let s = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        ensure(n == ngpio, || format!("ngpio {n}, gpio-sim has {ngpio}"))?;
        ensure(usize::try_from(s).ok() == Some(names_size), || {
            format!("gpio_names_size {s}, expected {names_size}")
        })
    });
    rep.check("config", r);
}

/// GET_LINE_NAMES: the names gpio-sim gives, in order.
fn line_names(rep: &mut Report, fe: &mut TestFrontend, names: &[String]) {
    let names_size: usize = names.iter().map(|n| n.len() + 1).sum();
    let r = (|| {
        let mut r = Vec::with_capacity(8);
        r.extend_from_slice(&GET_LINE_NAMES.to_le_bytes());
        r.extend_from_slice(&[0; 6]);
        let len = u32::try_from(names_size + 1).map_err(|e| e.to_string())?;
        let c = fe
            .queue(0)
            .transact(&[Desc::Out(r), Desc::In(len)], false, TIMEOUT)
            .map_err(|e| e.to_string())?;
        ensure(c.used_len == len, || {
            format!("used length {}, expected {len}", c.used_len)
        })?;
        let b = c.written.first().ok_or("no buffer")?;
        ensure(b[0] == STATUS_OK, || format!("status {}", b[0]))?;
        let got: Vec<String> = b[1..]
            .split(|&x| x == 0)
            .take(names.len())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        ensure(got == names, || {
            format!("names {got:?}, gpio-sim has {names:?}")
        })
    })();
    rep.check("line-names", r);
}

/// Line 0 as an output: preset value, ownership, direction, toggling, release.
fn output_line(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    // Output: SET_VALUE before SET_DIRECTION(OUT) takes effect when the line becomes an output.
    let r = ok(fe, SET_VALUE, 0, 1)
        .and_then(|_| ok(fe, SET_DIRECTION, 0, DIR_OUT))
        .and_then(|_| sim.value(0))
        .and_then(|v| {
            ensure(v == "1", || {
                format!("sim_gpio0/value = {v} after SET_VALUE 1 + SET_DIRECTION OUT")
            })
        });
    rep.check("output-preset-high", r);
    rep.check("consumer-output", expect_owned(sim, 0, "output"));
    let r = ok(fe, GET_DIRECTION, 0, 0).and_then(|d| {
        ensure(u32::from(d) == DIR_OUT, || {
            format!("direction {d}, expected OUT")
        })
    });
    rep.check("get-direction-out", r);
    let r = ok(fe, SET_VALUE, 0, 0)
        .and_then(|_| sim.value(0))
        .and_then(|v| {
            ensure(v == "0", || {
                format!("sim_gpio0/value = {v} after SET_VALUE 0")
            })
        })
        .and_then(|()| ok(fe, SET_VALUE, 0, 1))
        .and_then(|_| sim.value(0))
        .and_then(|v| {
            ensure(v == "1", || {
                format!("sim_gpio0/value = {v} after SET_VALUE 1")
            })
        });
    rep.check("output-toggle", r);
    let r = ok(fe, GET_VALUE, 0, 0).and_then(|v| {
        ensure(v == 1, || {
            format!("GET_VALUE on the output = {v}, expected 1")
        })
    });
    rep.check("output-get-value", r);
    let r = ok(fe, SET_DIRECTION, 0, DIR_NONE).map(|_| ());
    rep.check("release", r);
    rep.check("freed-on-none", expect_free(sim, 0));
}

/// Line 1 as an input, driven through gpio-sim's pull.
fn input_line(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    let r = sim
        .pull(1, false)
        .and_then(|()| ok(fe, SET_DIRECTION, 1, DIR_IN))
        .and_then(|_| sim.pull(1, true))
        .and_then(|()| value_until(fe, 1, 1))
        .and_then(|()| sim.pull(1, false))
        .and_then(|()| value_until(fe, 1, 0));
    rep.check("input-pull", r);
    rep.check("consumer-input", expect_owned(sim, 1, "input"));
    let r = ok(fe, GET_DIRECTION, 1, 0).and_then(|d| {
        ensure(u32::from(d) == DIR_IN, || {
            format!("direction {d}, expected IN")
        })
    });
    rep.check("get-direction-in", r);
}

/// A line past the chip and an unknown request type fail with ERR.
fn errors(rep: &mut Report, fe: &mut TestFrontend, ngpio: u16) {
    let r = req(fe, GET_VALUE, ngpio, 0).and_then(|(s, _, len)| {
        ensure(s == STATUS_ERR && len == 2, || {
            format!("line {ngpio}: status {s}, used length {len}")
        })
    });
    rep.check("invalid-line", r);
    let r = req(fe, 99, 0, 0).and_then(|(s, _, len)| {
        ensure(s == STATUS_ERR && len == 2, || {
            format!("type 99: status {s}, used length {len}")
        })
    });
    rep.check("invalid-type", r);
}

/// Edge interrupts on line 2 (line 3 is the sentinel): rising, falling without passing NONE, and an edge latched while masked.
fn irq_edges(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    let l = 2;
    let r = sim
        .pull(l, false)
        .and_then(|()| ok(fe, SET_DIRECTION, l, DIR_IN))
        .and_then(|_| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_RISING))
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, true).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_VALID, || {
                format!("eventq status {s}, expected VALID")
            })
        });
    rep.check("irq-rising", r);
    // Switch type without passing NONE.
    let r = ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_FALLING)
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, false).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_VALID, || {
                format!("eventq status {s}, expected VALID")
            })
        });
    rep.check("irq-falling", r);
    // An edge while masked is latched and delivered when the buffer comes back: the
    // sentinel's edge after it shows the daemon handled the edge before the buffer came.
    let r = ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_BOTH)
        .and_then(|_| sim.pull(l, true))
        .and_then(|()| {
            sim.pull(SENTINEL, false)?;
            let s = post_irq(fe, SENTINEL)?;
            sim.pull(SENTINEL, true)?;
            let st = wait_irq(fe, s, TIMEOUT)?;
            expect(st, IRQ_VALID, "on the sentinel line")?;
            post_irq(fe, l)
        })
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_VALID, || {
                format!("eventq status {s}, expected VALID")
            })
        });
    rep.check("irq-latched", r);
}

/// When buffers come back INVALID (SET_IRQ_TYPE NONE, a line with no type), and level high on line 2.
fn irq_returns_and_level_high(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    let l = 2;
    // SET_IRQ_TYPE NONE returns the held buffer INVALID.
    let r = post_irq(fe, l)
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_NONE).map(|_| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_INVALID, || {
                format!("eventq status {s}, expected INVALID")
            })
        });
    rep.check("irq-none-returns-invalid", r);
    // A buffer for a line without an IRQ type (line 1, an input) comes back INVALID.
    let r = post_irq(fe, 1)
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_INVALID, || {
                format!("eventq status {s}, expected INVALID")
            })
        });
    rep.check("irq-no-type-invalid", r);
    // Level high: notifies while the level is active, again on re-queue.
    let r = ok(fe, SET_IRQ_TYPE, l, IRQ_LEVEL_HIGH)
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_VALID, || {
                format!("first eventq status {s}, expected VALID")
            })
        })
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_VALID, || {
                format!("re-queued eventq status {s}, expected VALID (level still high)")
            })
        })
        .and_then(|()| sim.pull(l, false))
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_NONE).map(|_| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| {
            ensure(s == IRQ_INVALID, || {
                format!("eventq status {s} after NONE, expected INVALID")
            })
        });
    rep.check("irq-level-high", r);
}

/// Edge both on line 4: pulling up then down gives two interrupts, one per buffer.
fn irq_edge_both(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    settle(fe, 2);
    let l = 4;
    let r = sim
        .pull(l, false)
        .and_then(|()| ok(fe, SET_DIRECTION, l, DIR_IN))
        .and_then(|_| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_BOTH))
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, true).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "after pull-up"))
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, false).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "after pull-down"))
        // No third interrupt: the next buffer is held until NONE returns it.
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_NONE).map(|_| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_INVALID, "after NONE"));
    rep.check("irq-edge-both", r);
}

/// Level low on line 5: fires while low, again on re-queue while still low; once high, a queued buffer waits until the line goes low again.
fn irq_level_low(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    settle(fe, 4);
    let l = 5;
    let r = sim
        .pull(l, false)
        .and_then(|()| ok(fe, SET_DIRECTION, l, DIR_IN))
        .and_then(|_| ok(fe, SET_IRQ_TYPE, l, IRQ_LEVEL_LOW))
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "first buffer, line low"))
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "re-queued buffer, line still low"))
        .and_then(|()| sim.pull(l, true))
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, false).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "held buffer, line low again"))
        .and_then(|()| sim.pull(l, true))
        .and_then(|()| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_NONE).map(|_| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_INVALID, "after NONE"));
    rep.check("irq-level-low", r);
}

/// Line 6: EDGE_RISING -> EDGE_FALLING while a buffer is held, without NONE between: the buffer stays held, a rising edge no longer fires it, a falling edge does.
fn irq_switch_type_held(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    settle(fe, 5);
    let l = 6;
    let r = sim
        .pull(l, false)
        .and_then(|()| ok(fe, SET_DIRECTION, l, DIR_IN))
        .and_then(|_| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_RISING))
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_FALLING).map(|_| h))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, true).map(|()| h))
        .and_then(|h| {
            still_held(fe, sim, h)
                .map_err(|e| format!("rising edge after the switch to EDGE_FALLING: {e}"))
        })
        .and_then(|h| sim.pull(l, false).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "falling edge after the switch"));
    rep.check("irq-switch-type-held", r);
}

/// Line 7: re-sending the current type (EDGE_FALLING) while a buffer is held is OK and keeps the buffer held and armed: it fires on the next falling edge, not before.
fn irq_same_type(rep: &mut Report, fe: &mut TestFrontend, sim: &Sim<'_>) {
    settle(fe, 6);
    let l = 7;
    let r = sim
        .pull(l, false)
        .and_then(|()| ok(fe, SET_DIRECTION, l, DIR_IN))
        .and_then(|_| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_FALLING))
        .and_then(|_| post_irq(fe, l))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| ok(fe, SET_IRQ_TYPE, l, IRQ_EDGE_FALLING).map(|_| h))
        .and_then(|h| {
            still_held(fe, sim, h).map_err(|e| format!("after re-sending EDGE_FALLING: {e}"))
        })
        .and_then(|h| sim.pull(l, true).map(|()| h))
        .and_then(|h| still_held(fe, sim, h))
        .and_then(|h| sim.pull(l, false).map(|()| h))
        .and_then(|h| wait_irq(fe, h, TIMEOUT))
        .and_then(|s| expect(s, IRQ_VALID, "falling edge"))
        .and_then(|()| ok(fe, SET_IRQ_TYPE, l, IRQ_NONE).map(|_| ()));
    rep.check("irq-same-type-ok", r);
}
