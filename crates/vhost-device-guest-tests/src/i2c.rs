//! host-devices, I2C: vhost-device-i2c serving an i2c-stub chip (SMBus-only adapter:
//! QUICK, BYTE, BYTE_DATA, WORD_DATA, I2C_BLOCK), and the guest's i2c-virtio adapter (a
//! full I2C adapter: the daemon's I2C_RDWR path) with a 24c02 EEPROM simulated on the host.
//! i2c-stub keeps 256 registers and a register pointer per chip, so what is written can be
//! read back.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vhost_user_test_frontend::{Desc, TestFrontend};

use crate::connect::connect;
use crate::{Report, ensure};

const TIMEOUT: Duration = Duration::from_secs(5);
const FLAG_FAIL_NEXT: u32 = 1;
const FLAG_M_RD: u32 = 2;
const STATUS_OK: u8 = 0;
const STATUS_ERR: u8 = 1;
const F_ZERO_LENGTH_REQUEST: u64 = 1;
const F_VERSION_1: u64 = 1 << 32;

/// One message of a transfer; an empty write or a zero-length read is a
/// zero-length request.
#[derive(Clone, Debug)]
enum Msg {
    W(u8, Vec<u8>),
    R(u8, u32),
}

#[derive(Debug)]
struct Reply {
    status: u8,
    data: Vec<u8>,
    used_len: u32,
}

/// Posts one transfer the way Linux does: one chain per message, FAIL_NEXT on all but the
/// last, the whole group made visible at once, one kick. Returns the heads and read lengths.
fn post_group(fe: &mut TestFrontend, msgs: &[Msg]) -> Result<Vec<(u16, u32)>, String> {
    let q = fe.queue(0);
    q.hold(true).map_err(|e| format!("hold: {e}"))?;
    let mut heads = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let (addr, read_len) = match m {
            Msg::W(a, _) => (*a, None),
            Msg::R(a, l) => (*a, Some(*l)),
        };
        let mut flags = 0;
        if i + 1 < msgs.len() {
            flags |= FLAG_FAIL_NEXT;
        }
        if read_len.is_some() {
            flags |= FLAG_M_RD;
        }
        let mut hdr = Vec::with_capacity(8);
        hdr.extend_from_slice(&(u16::from(addr) << 1).to_le_bytes());
        hdr.extend_from_slice(&[0, 0]);
        hdr.extend_from_slice(&flags.to_le_bytes());
        let mut descs = vec![Desc::Out(hdr)];
        match m {
            Msg::W(_, b) if !b.is_empty() => descs.push(Desc::Out(b.clone())),
            Msg::R(_, l) if *l > 0 => descs.push(Desc::In(*l)),
            _ => {}
        }
        descs.push(Desc::In(1));
        let head = q.post(&descs, true).map_err(|e| format!("post: {e}"))?;
        heads.push((head, read_len.unwrap_or(0)));
    }
    q.hold(false).map_err(|e| format!("flush: {e}"))?;
    q.kick().map_err(|e| format!("kick: {e}"))?;
    Ok(heads)
}

/// Waits (deadline `timeout` each) for the completions of a posted group, in order.
fn wait_group(
    fe: &mut TestFrontend,
    heads: Vec<(u16, u32)>,
    timeout: Duration,
) -> Result<Vec<Reply>, String> {
    let q = fe.queue(0);
    let mut replies = Vec::with_capacity(heads.len());
    for (head, read_len) in heads {
        let c = q
            .wait_head(head, timeout)
            .map_err(|e| format!("waiting for a reply: {e}"))?;
        let status = c
            .written
            .last()
            .and_then(|s| s.first().copied())
            .ok_or("no status buffer")?;
        let data = if read_len > 0 {
            c.written.first().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        replies.push(Reply {
            status,
            data,
            used_len: c.used_len,
        });
    }
    Ok(replies)
}

/// Sends one transfer and waits for all its replies.
fn transfer(fe: &mut TestFrontend, msgs: &[Msg]) -> Result<Vec<Reply>, String> {
    let heads = post_group(fe, msgs)?;
    wait_group(fe, heads, TIMEOUT)
}

/// All replies OK, and each read returned `expected` (for the last message).
fn expect_ok(replies: &[Reply], read: Option<&[u8]>) -> Result<(), String> {
    for (i, r) in replies.iter().enumerate() {
        ensure(r.status == STATUS_OK, || {
            format!("message {i}: status {} (expected OK)", r.status)
        })?;
    }
    if let Some(expected) = read {
        let last = replies.last().ok_or("no reply")?;
        ensure(last.data == expected, || {
            format!("read {:02x?}, expected {expected:02x?}", last.data)
        })?;
        let want = 1 + u32::try_from(expected.len()).unwrap_or(u32::MAX);
        ensure(last.used_len == want, || {
            format!(
                "used length {} for a {}-byte read (expected {want})",
                last.used_len,
                expected.len()
            )
        })?;
    } else {
        for (i, r) in replies.iter().enumerate() {
            ensure(r.used_len == 1, || {
                format!(
                    "message {i}: used length {} for a write (expected 1)",
                    r.used_len
                )
            })?;
        }
    }
    Ok(())
}

fn expect_all_err(replies: &[Reply]) -> Result<(), String> {
    for (i, r) in replies.iter().enumerate() {
        ensure(r.status == STATUS_ERR, || {
            format!("message {i}: status {} (expected ERR)", r.status)
        })?;
    }
    Ok(())
}

fn read_reg(fe: &mut TestFrontend, a: u8, reg: u8, len: u32) -> Result<Vec<u8>, String> {
    let r = transfer(fe, &[Msg::W(a, vec![reg]), Msg::R(a, len)])?;
    expect_ok(&r, None).or_else(|e| {
        if e.contains("used length") {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(r.last().map(|x| x.data.clone()).unwrap_or_default())
}

/// Runs every I2C check against the daemon at `socket`.
pub fn run(rep: &mut Report, socket: &Path, a: u8, absent: u8, preset: &[(u8, u8)]) {
    // QEMU's vhost-user-i2c queue has 4 entries; chains go indirect as Linux's do.
    let Some(mut fe) = connect(
        rep,
        socket,
        1,
        4,
        4 << 20,
        F_ZERO_LENGTH_REQUEST | F_VERSION_1,
        "ZERO_LENGTH_REQUEST or VERSION_1",
    ) else {
        return;
    };
    presets(rep, &mut fe, a, preset);
    smbus_transfers(rep, &mut fe, a);
    absent_address(rep, &mut fe, a, absent);
    unmappable_shapes(rep, &mut fe, a);
    fe.disconnect();
}

/// The registers the test script preset with i2cset read back.
fn presets(rep: &mut Report, fe: &mut TestFrontend, a: u8, preset: &[(u8, u8)]) {
    for &(reg, val) in preset {
        let r = read_reg(fe, a, reg, 1).and_then(|d| {
            ensure(d == [val], || {
                format!("register {reg:#04x} = {d:02x?}, i2cset wrote {val:#04x}")
            })
        });
        rep.check(&format!("preset-{reg:02x}"), r);
    }
}

/// Quick, byte, word and block transfers, as i2c-stub answers them.
fn smbus_transfers(rep: &mut Report, fe: &mut TestFrontend, a: u8) {
    let r = transfer(fe, &[Msg::W(a, vec![])]).and_then(|r| expect_ok(&r, None));
    rep.check("quick-write", r);
    let r = transfer(fe, &[Msg::R(a, 0)]).and_then(|r| expect_ok(&r, Some(&[])));
    rep.check("quick-read", r);

    let r = transfer(fe, &[Msg::W(a, vec![0x10, 0xab])]).and_then(|r| expect_ok(&r, None));
    rep.check("byte-data-write", r);
    let r = transfer(fe, &[Msg::W(a, vec![0x10]), Msg::R(a, 1)])
        .and_then(|r| expect_ok(&r, Some(&[0xab])));
    rep.check("byte-data-read", r);

    let r = transfer(fe, &[Msg::W(a, vec![0x20, 0x34, 0x12])]).and_then(|r| expect_ok(&r, None));
    rep.check("word-data-write", r);
    let r = transfer(fe, &[Msg::W(a, vec![0x20]), Msg::R(a, 2)])
        .and_then(|r| expect_ok(&r, Some(&[0x34, 0x12])));
    rep.check("word-data-read", r);

    let block: Vec<u8> = (1..=8).collect();
    let mut w = vec![0x40];
    w.extend_from_slice(&block);
    let r = transfer(fe, &[Msg::W(a, w)]).and_then(|r| expect_ok(&r, None));
    rep.check("i2c-block-write", r);
    let r = transfer(fe, &[Msg::W(a, vec![0x40]), Msg::R(a, 8)])
        .and_then(|r| expect_ok(&r, Some(&block)));
    rep.check("i2c-block-read", r);
    let r = read_reg(fe, a, 0x43, 1).and_then(|d| {
        ensure(d == [4], || {
            format!("register 0x43 = {d:02x?} after the block write, expected [04]")
        })
    });
    rep.check("i2c-block-cross-byte", r);
    let big: Vec<u8> = (0..32u8).map(|i| i ^ 0x5a).collect();
    let mut w = vec![0x80];
    w.extend_from_slice(&big);
    let r = transfer(fe, &[Msg::W(a, w)])
        .and_then(|r| expect_ok(&r, None))
        .and_then(|()| transfer(fe, &[Msg::W(a, vec![0x80]), Msg::R(a, 32)]))
        .and_then(|r| expect_ok(&r, Some(&big)));
    rep.check("i2c-block-32", r);

    // BYTE write sets i2c-stub's pointer; BYTE reads return and advance it.
    let r = transfer(fe, &[Msg::W(a, vec![0x40])])
        .and_then(|r| expect_ok(&r, None))
        .and_then(|()| transfer(fe, &[Msg::R(a, 1)]))
        .and_then(|r| expect_ok(&r, Some(&[1])))
        .and_then(|()| transfer(fe, &[Msg::R(a, 1)]))
        .and_then(|r| expect_ok(&r, Some(&[2])));
    rep.check("byte-write-read", r);
}

/// An address outside -l: ERR, nothing reaches the bus (the test script gives it a chip that answers, and checks its registers are unchanged afterwards); a FAIL_NEXT group whose first message fails executes nothing.
fn absent_address(rep: &mut Report, fe: &mut TestFrontend, a: u8, absent: u8) {
    let r = transfer(fe, &[Msg::W(absent, vec![0x00, 0x00])]).and_then(|r| expect_all_err(&r));
    rep.check("absent-write", r);
    let r = transfer(fe, &[Msg::W(absent, vec![0x10, 0x99])]).and_then(|r| expect_all_err(&r));
    rep.check("absent-write-reg", r);
    let r = transfer(fe, &[Msg::R(absent, 1)]).and_then(|r| expect_all_err(&r));
    rep.check("absent-read", r);
    let r = transfer(fe, &[Msg::W(absent, vec![])]).and_then(|r| expect_all_err(&r));
    rep.check("absent-quick", r);

    // FAIL_NEXT: the first message fails, so the second is failed, not executed.
    let r = transfer(fe, &[Msg::R(absent, 1), Msg::W(a, vec![0x10, 0x55])])
        .and_then(|r| expect_all_err(&r))
        .and_then(|()| read_reg(fe, a, 0x10, 1))
        .and_then(|d| {
            ensure(d == [0xab], || {
                format!("register 0x10 = {d:02x?}: the failed group's write was executed")
            })
        });
    rep.check("fail-next-group", r);
}

/// Shapes with no SMBus equivalent on an SMBus-only adapter: ERR, never another transaction; the device is unchanged after all the errors.
fn unmappable_shapes(rep: &mut Report, fe: &mut TestFrontend, a: u8) {
    let r = transfer(fe, &[Msg::W(a, vec![0x10]), Msg::R(a, 33)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-read-33", r);
    let r = transfer(fe, &[Msg::R(a, 1), Msg::R(a, 1)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-read-read", r);
    let r = transfer(fe, &[Msg::R(a, 3)]).and_then(|r| expect_all_err(&r));
    rep.check("unmappable-plain-read-3", r);

    let r = read_reg(fe, a, 0x10, 1).and_then(|d| {
        ensure(d == [0xab], || {
            format!("register 0x10 = {d:02x?}, expected [ab]")
        })
    });
    rep.check("after-errors", r);
}

/// Bytes of the simulated 24c02 (host side) and its page size.
const EEPROM_SIZE: usize = 256;
const EEPROM_SIZE_U32: u32 = 256;
const EEPROM_PAGE: usize = 8;
/// Largest message the daemon takes (i2c-dev's limit).
const MAX_MESSAGE_U32: u32 = 8192;
const MAX_MESSAGE: usize = MAX_MESSAGE_U32 as usize;
/// Messages in the large group: the daemon takes 42 (i2c-dev's limit), but the guest's
/// i2c-virtio adapter carries at most 4 per transfer (QEMU's vhost-user-i2c-pci has a fixed
/// 4-entry queue), so more would reach the host only in part.
const BIG_GROUP: usize = 4;
/// Where the page-write check writes (clear of the pages the large group writes).
pub const RDWR_PAGE: u8 = 0xb0;
/// What the page-write check writes there.
pub const RDWR_TEXT: &[u8; 8] = b"vhost-rw";

/// The low byte of an EEPROM offset.
fn byte(offset: usize) -> u8 {
    u8::try_from(offset % EEPROM_SIZE).unwrap_or(0)
}

/// The page pattern the large group writes to page `k`.
fn page_pattern(k: usize) -> [u8; EEPROM_PAGE] {
    let mut p = [0u8; EEPROM_PAGE];
    for (j, b) in p.iter_mut().enumerate() {
        *b = byte(k * EEPROM_PAGE + j) ^ 0x5a;
    }
    p
}

/// A group of [`BIG_GROUP`] messages of 8192 bytes on an I2C-capable adapter with a 24c02
/// at `e`: pairs of (write the word address of page k + 8191 bytes repeating that page's
/// pattern, read 8192 bytes). The EEPROM wraps page writes within the page and reads at
/// 256, so `model` (the EEPROM contents before) predicts every byte read.
fn big_group(e: u8, model: &mut [u8; EEPROM_SIZE]) -> (Vec<Msg>, Vec<Vec<u8>>) {
    let mut msgs = Vec::with_capacity(BIG_GROUP);
    let mut reads = Vec::with_capacity(BIG_GROUP / 2);
    for k in 0..BIG_GROUP / 2 {
        let page = k * EEPROM_PAGE;
        let pat = page_pattern(k);
        let mut w = Vec::with_capacity(MAX_MESSAGE);
        w.push(byte(page));
        w.extend((0..MAX_MESSAGE - 1).map(|i| pat[i % EEPROM_PAGE]));
        msgs.push(Msg::W(e, w));
        model[page..page + EEPROM_PAGE].copy_from_slice(&pat);
        // The pointer ends on the page byte after the last one written: 8191 % 8 = 7.
        let start = page + (MAX_MESSAGE - 1) % EEPROM_PAGE;
        reads.push(
            (0..MAX_MESSAGE)
                .map(|i| model[(start + i) % EEPROM_SIZE])
                .collect(),
        );
        msgs.push(Msg::R(e, MAX_MESSAGE_U32));
    }
    (msgs, reads)
}

/// Checks the replies of [`big_group`].
fn check_big_group(replies: &[Reply], reads: &[Vec<u8>]) -> Result<(), String> {
    ensure(replies.len() == BIG_GROUP, || {
        format!("{} replies for {BIG_GROUP} messages", replies.len())
    })?;
    for (i, r) in replies.iter().enumerate() {
        ensure(r.status == STATUS_OK, || {
            format!("message {i}: status {} (expected OK)", r.status)
        })?;
        if i % 2 == 1 {
            let want = &reads[i / 2];
            ensure(r.used_len == 1 + MAX_MESSAGE_U32, || {
                format!("message {i}: used length {}", r.used_len)
            })?;
            if let Some(at) = r.data.iter().zip(want).position(|(a, b)| a != b) {
                return Err(format!(
                    "message {i}: byte {at} read {:#04x}, expected {:#04x}",
                    r.data[at], want[at]
                ));
            }
            ensure(r.data.len() == want.len(), || {
                format!("message {i}: {} bytes read", r.data.len())
            })?;
        } else {
            ensure(r.used_len == 1, || {
                format!("message {i}: used length {} for a write", r.used_len)
            })?;
        }
    }
    Ok(())
}

/// Reads the whole EEPROM at `e` in one write+read group.
fn read_eeprom(fe: &mut TestFrontend, e: u8) -> Result<[u8; EEPROM_SIZE], String> {
    let r = transfer(fe, &[Msg::W(e, vec![0]), Msg::R(e, EEPROM_SIZE_U32)])?;
    expect_ok(&r[..1], None)?;
    let data = &r.last().ok_or("no reply")?.data;
    data.as_slice()
        .try_into()
        .map_err(|_| format!("read {} bytes of the EEPROM", data.len()))
}

/// Checks on an I2C-capable host adapter (the guest's i2c-virtio adapter, served from the
/// host by vhost-device-i2c with a simulated 24c02 at `e`): the daemon's I2C_RDWR path.
pub fn run_rdwr(rep: &mut Report, socket: &Path, e: u8, preset: &[(u8, u8)]) {
    let Some(mut fe) = connect(
        rep,
        socket,
        1,
        64,
        8 << 20,
        F_ZERO_LENGTH_REQUEST | F_VERSION_1,
        "ZERO_LENGTH_REQUEST or VERSION_1",
    ) else {
        return;
    };
    for &(reg, val) in preset {
        let r = read_reg(&mut fe, e, reg, 1).and_then(|d| {
            ensure(d == [val], || {
                format!("EEPROM byte {reg:#04x} = {d:02x?}, i2ctransfer wrote {val:#04x}")
            })
        });
        rep.check(&format!("preset-{reg:02x}"), r);
    }
    let mut w = vec![RDWR_PAGE];
    w.extend_from_slice(RDWR_TEXT);
    let r = transfer(&mut fe, &[Msg::W(e, w)]).and_then(|r| expect_ok(&r, None));
    rep.check("page-write", r);
    let r = transfer(&mut fe, &[Msg::W(e, vec![RDWR_PAGE]), Msg::R(e, 8)])
        .and_then(|r| expect_ok(&r[..1], None).and_then(|()| expect_ok(&r[1..], Some(RDWR_TEXT))));
    rep.check("read-back", r);
    // A read that runs past the end wraps to byte 0, as the EEPROM does.
    let r = read_eeprom(&mut fe, e).and_then(|m| {
        let want: Vec<u8> = (0..16).map(|i| m[(0xf8 + i) % EEPROM_SIZE]).collect();
        transfer(&mut fe, &[Msg::W(e, vec![0xf8]), Msg::R(e, 16)])
            .and_then(|r| expect_ok(&r[1..], Some(&want)))
    });
    rep.check("read-wraps", r);
    let r = read_eeprom(&mut fe, e).and_then(|mut model| {
        let (msgs, reads) = big_group(e, &mut model);
        let replies = transfer(&mut fe, &msgs)?;
        check_big_group(&replies, &reads)?;
        let after = read_eeprom(&mut fe, e)?;
        ensure(after == model, || {
            "EEPROM contents after the group differ from the model".to_owned()
        })
    });
    rep.check("group-4x8192", r);
    fe.disconnect();
}

/// Checks with one daemon serving two adapters (`-l STUB:s,VIRTIO:e -c 2`): a group that
/// spans both is refused, and a transfer on one adapter is served while a long group on
/// the other is in progress.
pub fn run_two_adapters(
    rep: &mut Report,
    (socket0, socket1): (&Path, &Path),
    s: u8,
    e: u8,
    daemon_pid: u32,
    probe_bus: u32,
) {
    rep.prefix_push("a");
    let fe_a = connect(
        rep,
        socket0,
        1,
        64,
        8 << 20,
        F_ZERO_LENGTH_REQUEST | F_VERSION_1,
        "ZERO_LENGTH_REQUEST or VERSION_1",
    );
    rep.prefix_pop();
    rep.prefix_push("b");
    let fe_b = connect(
        rep,
        socket1,
        1,
        4,
        4 << 20,
        F_ZERO_LENGTH_REQUEST | F_VERSION_1,
        "ZERO_LENGTH_REQUEST or VERSION_1",
    );
    rep.prefix_pop();
    let (Some(mut a), Some(mut b)) = (fe_a, fe_b) else {
        return;
    };

    // Both adapters answer on their own first (the positive twin of the next check).
    let r = read_reg(&mut a, s, 0x10, 1)
        .and_then(|reg| read_reg(&mut a, e, RDWR_PAGE, 1).map(|page| (reg, page)));
    let before = r.clone();
    rep.check("each-adapter", r.map(|_| ()));
    // One group addressing both adapters: ERR for every message, neither device written.
    let r = before.and_then(|(reg, page)| {
        transfer(
            &mut a,
            &[Msg::W(s, vec![0x10, !reg[0]]), Msg::W(e, vec![RDWR_PAGE, !page[0]])],
        )
        .and_then(|r| expect_all_err(&r))?;
        let reg2 = read_reg(&mut a, s, 0x10, 1)?;
        let page2 = read_reg(&mut a, e, RDWR_PAGE, 1)?;
        ensure(reg2 == reg && page2 == page, || {
            format!(
                "after the refused group: register 0x10 {reg:02x?} -> {reg2:02x?}, EEPROM byte {RDWR_PAGE:#04x} {page:02x?} -> {page2:02x?}"
            )
        })
    });
    rep.check("span-refused", r);

    // Parallel: the host's I2C daemon is stopped (SIGSTOP, asked for on the results
    // serial line), so a transfer on the i2c-virtio adapter cannot complete. The 4 x 8192
    // group on it (socket 0) is seen inside its I2C_RDWR ioctl before and after three
    // write+read pairs on the SMBus adapter (socket 1) complete: the daemon serves one
    // adapter while a transfer on the other is in progress. The host is then resumed.
    let r = read_eeprom(&mut a, e).and_then(|mut model| {
        let (msgs, reads) = big_group(e, &mut model);
        host_request("stop-i2c")?;
        let result = parallel(&mut a, &mut b, s, &msgs, daemon_pid, probe_bus, e);
        let resumed = host_request("cont-i2c");
        let heads = result?;
        resumed?;
        let replies = wait_group(&mut a, heads, Duration::from_secs(30))?;
        check_big_group(&replies, &reads)
    });
    rep.check("parallel", r);
    a.disconnect();
    b.disconnect();
}

/// Asks the host runner (run-host-devices.sh) for something on the results serial line.
fn host_request(what: &str) -> Result<(), String> {
    let path = std::env::var("VTEST_RESULTS").map_err(|e| format!("VTEST_RESULTS: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| format!("{path}: {e}"))?;
    writeln!(f, "HOST-REQUEST: {what}").map_err(|e| format!("{path}: {e}"))
}

/// Whether a thread of `pid` is inside the ioctl `request` (from /proc/PID/task/*/syscall:
/// the syscall number, then its arguments in hex).
fn in_ioctl(pid: u32, request: u32) -> Result<bool, String> {
    // The number /proc shows is the architecture's own: 16 on x86-64, 29 on aarch64
    // (and the other architectures of the generic table).
    #[cfg(target_arch = "x86_64")]
    const SYS_IOCTL: &str = "16";
    #[cfg(not(target_arch = "x86_64"))]
    const SYS_IOCTL: &str = "29";
    let dir = format!("/proc/{pid}/task");
    let want = format!("{request:#x}");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("syscall")) else {
            continue;
        };
        let mut w = text.split_whitespace();
        if w.next() == Some(SYS_IOCTL) && w.nth(1) == Some(want.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Polls `cond` every 10 ms until it holds (deadline `timeout`).
fn poll_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

const I2C_RDWR: u32 = 0x0707;
const I2C_SMBUS: u32 = 0x0720;

/// The body of the parallel check (the host's daemon stopped): returns the group's heads.
fn parallel(
    a: &mut TestFrontend,
    b: &mut TestFrontend,
    s: u8,
    msgs: &[Msg],
    daemon_pid: u32,
    probe_bus: u32,
    e: u8,
) -> Result<Vec<(u16, u32)>, String> {
    // Wait for the stop to take effect: an i2cget on the i2c-virtio bus stays inside its
    // ioctl (respawned if it completes because the host was not stopped yet). This only
    // decides when to start; the verdict is the observation below.
    let mut probe = None;
    poll_until(
        "the host's I2C daemon stopped",
        Duration::from_secs(10),
        || {
            let running = match probe.as_mut().map(std::process::Child::try_wait) {
                Some(Ok(None)) => true,
                Some(Ok(Some(_))) | None => false,
                Some(Err(err)) => return Err(format!("i2cget probe: {err}")),
            };
            if !running {
                probe = Some(
                    Command::new("i2cget")
                        .args(["-y", &probe_bus.to_string(), &format!("{e:#x}"), "0xb0"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .map_err(|err| format!("i2cget: {err}"))?,
                );
                return Ok(false);
            }
            let pid = probe.as_ref().map_or(0, std::process::Child::id);
            if !in_ioctl(pid, I2C_SMBUS)? {
                return Ok(false);
            }
            // Blocked for a second in the ioctl: the host is stopped.
            std::thread::sleep(Duration::from_secs(1));
            Ok(matches!(
                probe.as_mut().map(std::process::Child::try_wait),
                Some(Ok(None))
            ))
        },
    )?;
    let heads = post_group(a, msgs)?;
    let last = heads.last().map(|h| h.0).ok_or("empty group")?;
    poll_until("the group's I2C_RDWR ioctl started", TIMEOUT, || {
        in_ioctl(daemon_pid, I2C_RDWR)
    })?;
    for v in [0x11u8, 0x22, 0x33] {
        transfer(b, &[Msg::W(s, vec![0x30, v])]).and_then(|r| expect_ok(&r, None))?;
        let d = read_reg(b, s, 0x30, 1)?;
        ensure(d == [v], || {
            format!("register 0x30 = {d:02x?}, wrote {v:#04x}")
        })?;
    }
    ensure(in_ioctl(daemon_pid, I2C_RDWR)?, || {
        "the group's I2C_RDWR ioctl ended while the host daemon was stopped".to_owned()
    })?;
    ensure(a.queue(0).wait_head(last, Duration::ZERO).is_err(), || {
        "the group completed while the host daemon was stopped".to_owned()
    })?;
    if let Some(mut p) = probe {
        // Reaped once the host resumes; a leftover probe must not block the next checks.
        std::thread::spawn(move || p.wait());
    }
    Ok(heads)
}
