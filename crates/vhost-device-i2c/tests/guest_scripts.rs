//! The `i2c_request` fuzz target's harness in the normal test suite: its seed corpus is built
//! here (and must match `fuzz/corpus/i2c_request/`), and every committed corpus file and
//! every input that once broke a check (`fuzz/regressions/i2c_request/`) is replayed against
//! a fresh backend with the harness's checks: no panic, every popped chain returned exactly
//! once, no write outside device-writable buffers and the used ring; none may leave an
//! event unchecked (self-modifying). 10,000 seeded random scripts replay clean too, at most
//! 1% of them self-modifying.
//!
//! `UPDATE_FUZZ_CORPUS=1 cargo test -p vhost-device-i2c --test guest_scripts` rewrites the
//! seed files after a change of the seeds below.
// Test code: panics are failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::sync::Arc;

use clap::Parser;
use vhost_device_i2c::args::{Args, Config};
use vhost_device_i2c::backend::{I2cBackend, VirtioI2c};
use vhost_device_i2c::host::Router;
use vhost_user_test_frontend::fuzz_corpus::{RANDOM_SCRIPTS, Seed};
use vhost_user_test_frontend::guest_script::{self, Outcome, RINGS, ScriptBuilder, ScriptDevice};
use virtio_i2c_core::request::encode_header;

/// The fuzz target's device: one requestq, nothing held.
const DEVICE: ScriptDevice<'static> = ScriptDevice {
    queues: 1,
    events: &[0],
    max_held: &[0],
};

const NEXT: u8 = 1;
const WRITE: u8 = 2;
const INDIRECT: u8 = 4;

/// The backend as the daemon builds it for `--simulate 24c02@0x50 --simulate ds1338@0x68`.
fn backend() -> I2cBackend {
    let args = Args::try_parse_from([
        "vhost-device-i2c",
        "-s",
        "/nonexistent/i2c.sock",
        "--simulate",
        "24c02@0x50",
        "--simulate",
        "ds1338@0x68",
    ])
    .unwrap();
    let config = Config::try_from(args).unwrap();
    let router = Router::open(&config.adapters, &config.simulated).unwrap();
    I2cBackend::new(VirtioI2c::new(Arc::new(router), false))
}

fn replay(script: &[u8]) -> Result<Outcome, String> {
    guest_script::run(&backend(), DEVICE, script).map_err(|e| guest_script::describe(&e))
}

/// One descriptor table entry as 16 raw bytes (for indirect tables in the data area).
fn raw_desc(addr: u64, len: u32, flags: u16, next: u16) -> Vec<u8> {
    let mut d = addr.to_le_bytes().to_vec();
    d.extend_from_slice(&len.to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    d.extend_from_slice(&next.to_le_bytes());
    d
}

/// The seeds: name, script, chains the device must return.
fn seeds() -> Vec<Seed> {
    // Register write then 4-byte read from the EEPROM (one FAIL_NEXT group), and a write.
    let eeprom_group = ScriptBuilder::new(3, false)
        .write(0x6000, &encode_header(0x50, false, true))
        .write(0x6010, &[0x10])
        .write(0x6030, &encode_header(0x50, true, false))
        .write(0x6060, &encode_header(0x50, false, false))
        .write(0x6070, &[0x10, 1, 2, 3])
        .desc(0, 0, 0x6000, 8, NEXT, 1)
        .desc(0, 1, 0x6010, 1, NEXT, 2)
        .desc(0, 2, 0x6020, 1, WRITE, 0)
        .desc(0, 3, 0x6030, 8, NEXT, 4)
        .desc(0, 4, 0x6040, 4, WRITE | NEXT, 5)
        .desc(0, 5, 0x6050, 1, WRITE, 0)
        .desc(0, 6, 0x6060, 8, NEXT, 7)
        .desc(0, 7, 0x6070, 4, NEXT, 8)
        .desc(0, 8, 0x6080, 1, WRITE, 0)
        .post(0, 6)
        .event(0)
        .post(0, 0)
        .post(0, 3)
        .event(0)
        .build();

    // The same read through an indirect table, with EVENT_IDX; then a quick to an absent
    // address and a read from the RTC.
    let mut table = raw_desc(0x6000, 8, 1, 1);
    table.extend(raw_desc(0x6010, 1, 1, 2));
    table.extend(raw_desc(0x6020, 1, 2, 0));
    let indirect_and_rtc = ScriptBuilder::new(2, true)
        .write(0x6000, &encode_header(0x68, false, true))
        .write(0x6010, &[0x00])
        .write(0x6030, &encode_header(0x68, true, false))
        .write(0x6060, &encode_header(0x51, false, false))
        .write(0x7000, &table)
        .desc(0, 0, 0x7000, 48, INDIRECT, 0)
        .desc(0, 1, 0x6030, 8, NEXT, 2)
        .desc(0, 2, 0x6040, 7, WRITE | NEXT, 3)
        .desc(0, 3, 0x6050, 1, WRITE, 0)
        .desc(0, 4, 0x6060, 8, NEXT, 5)
        .desc(0, 5, 0x6070, 1, WRITE, 0)
        .post(0, 0)
        .post(0, 1)
        .post(0, 4)
        .event(0)
        .build();

    // Defect 7 of issue 7: 43 messages with FAIL_NEXT cut by the end of the batch, then a
    // one-request group in the next batch.
    let mut over_long = ScriptBuilder::new(6, false)
        .write(0x6000, &encode_header(0x50, false, true))
        .write(0x6010, &encode_header(0x50, false, false));
    for i in 0..43u8 {
        let d = i * 2;
        over_long = over_long
            .desc(0, d, 0x6000, 8, NEXT, d + 1)
            .desc(0, d + 1, 0x6100 + u16::from(i), 1, WRITE, 0)
            .post(0, d);
    }
    let over_long = over_long
        .event(0)
        .desc(0, 100, 0x6010, 8, NEXT, 101)
        .desc(0, 101, 0x6200, 1, WRITE, 0)
        .post(0, 100)
        .event(0)
        .build();

    // Hostile: misordered chain, chain without status byte, descriptor outside RAM, a
    // buffer across the hole between the RAM regions, a head past the table, then an
    // available index far ahead (the queue stops).
    let hostile = ScriptBuilder::new(2, true)
        .write(0x6000, &encode_header(0x50, true, false))
        .desc(0, 0, 0x6000, 8, WRITE | NEXT, 1)
        .desc(0, 1, 0x6010, 1, NEXT, 0)
        .desc(0, 2, 0x6000, 8, 0, 0)
        .desc(0, 3, 0x6000, 8, NEXT, 4)
        .desc(0, 4, 0xfff8, 0x2000, WRITE, 0)
        .post(0, 0)
        .post(0, 2)
        .post(0, 3)
        .post(0, 200)
        .event(0)
        .avail_idx(0, 0x9000)
        .event(0)
        .build();

    vec![
        ("eeprom-group", eeprom_group, 3),
        ("indirect-and-rtc", indirect_and_rtc, 3),
        ("over-long-group-then-one", over_long, 44),
        ("hostile-chains", hostile, 3),
    ]
}

vhost_user_test_frontend::fuzz_corpus_tests!(
    "i2c_request",
    seeds,
    replay,
    // Measured 18 of 10,000; 243 while the rings sat in RAM0 (then without ring writes).
    max_self_modifying: RANDOM_SCRIPTS / 100
);

/// A read from the EEPROM into the descriptor table (a raw descriptor in the ring region,
/// the one way left to point a buffer there) leaves that event unchecked, without a false
/// finding, and the next request is checked again.
#[test]
fn a_read_into_the_descriptor_table_leaves_only_its_event_unchecked() {
    let mut descs = raw_desc(0x6000, 8, 1, 1);
    descs.extend(raw_desc(RINGS + 8 * 16, 4, 2 | 1, 2));
    descs.extend(raw_desc(0x6020, 1, 2, 0));
    let script = ScriptBuilder::new(3, false)
        .write(0x6000, &encode_header(0x50, true, false))
        .ring_write(0, &descs)
        .post(0, 0)
        .event(0)
        .write(0x6030, &encode_header(0x50, false, false))
        .write(0x6040, &[0x10, 1, 2])
        .desc(0, 3, 0x6030, 8, NEXT, 4)
        .desc(0, 4, 0x6040, 3, NEXT, 5)
        .desc(0, 5, 0x6050, 1, WRITE, 0)
        .post(0, 3)
        .event(0)
        .build();
    let o = replay(&script).unwrap();
    assert_eq!((o.events, o.unchecked_events, o.used), (2, 1, 1));
}
