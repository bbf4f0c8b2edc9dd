//! The real daemon with simulated devices, driven through the vhost-user test frontend:
//! negotiation, EEPROM and RTC transfers, unknown addresses, FAIL_NEXT groups, zero-length
//! requests, reconnection and several sockets.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost_user_test_frontend::FrontendOptions;
use vhost_user_test_frontend::devices::i2c::*;

#[test]
fn eeprom_page_write_then_read_back_as_one_group() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // A fresh 24c02 reads as erased.
    assert_eq!(read_reg(&mut fe, EEPROM, 0x10, 8), [0xff; 8]);
    write_reg(&mut fe, EEPROM, 0x10, &[1, 2, 3, 4, 5, 6, 7, 8]);
    // Write of the offset (FAIL_NEXT) then read: one transfer with a repeated start.
    for indirect in [false, true] {
        let done = submit(
            &mut fe,
            &[write(EEPROM, &[0x10], true), read(EEPROM, 8, false)],
            indirect,
        );
        assert_eq!(status(&done[0]), OK);
        assert_eq!(done[0].used_len, 1);
        assert_eq!(status(&done[1]), OK);
        assert_eq!(done[1].used_len, 9);
        assert_eq!(
            data(&done[1]),
            [1, 2, 3, 4, 5, 6, 7, 8],
            "indirect={indirect}"
        );
    }
    // Partial read from inside the page, after a second page write.
    write_reg(&mut fe, EEPROM, 0x18, &[0xa0, 0xa1]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x16, 5), [7, 8, 0xa0, 0xa1, 0xff]);
}

#[test]
fn eeprom_through_a_four_entry_queue_with_indirect_descriptors() {
    // QEMU's vhost-user-i2c queue has 4 entries: a 3-descriptor write plus a 3-descriptor
    // read only fit as indirect chains.
    let d = SUBJECT.start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            num_queues: 1,
            queue_size: 4,
            ..Default::default()
        },
    );
    let payload: Vec<u8> = [0x40].into_iter().chain(0x61..=0x68).collect();
    let done = submit(&mut fe, &[write(EEPROM, &payload, false)], true);
    assert_eq!((status(&done[0]), done[0].used_len), (OK, 1));
    for _ in 0..3 {
        // Several rounds: the ring wraps around its 4 entries.
        let done = submit(
            &mut fe,
            &[write(EEPROM, &[0x40], true), read(EEPROM, 8, false)],
            true,
        );
        assert_eq!(status(&done[0]), OK);
        assert_eq!(status(&done[1]), OK);
        assert_eq!(done[1].used_len, 9);
        assert_eq!(data(&done[1]), b"abcdefgh");
    }
}

#[test]
fn transfers_work_without_event_idx() {
    let d = SUBJECT.start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            num_queues: 1,
            negotiate_event_idx: false,
            ..Default::default()
        },
    );
    assert!(!fe.event_idx());
    for round in 0..20u8 {
        write_reg(&mut fe, EEPROM, 0xe0, &[round, !round]);
        assert_eq!(read_reg(&mut fe, EEPROM, 0xe0, 2), [round, !round]);
    }
    still_serves(&mut fe);
}

#[test]
fn eeprom_page_write_wraps_inside_the_8_byte_page() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // Four bytes at 0x26: 0x26, 0x27, then back to 0x20, 0x21 of the same page.
    write_reg(&mut fe, EEPROM, 0x26, &[1, 2, 3, 4]);
    assert_eq!(
        read_reg(&mut fe, EEPROM, 0x20, 8),
        [3, 4, 0xff, 0xff, 0xff, 0xff, 1, 2]
    );
    // The next page is untouched.
    assert_eq!(read_reg(&mut fe, EEPROM, 0x28, 8), [0xff; 8]);
}

#[test]
fn eeprom_sequential_read_wraps_at_256() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    write_reg(&mut fe, EEPROM, 0xfe, &[0xaa, 0xbb]);
    write_reg(&mut fe, EEPROM, 0x00, &[0xcc, 0xdd]);
    assert_eq!(
        read_reg(&mut fe, EEPROM, 0xfd, 5),
        [0xff, 0xaa, 0xbb, 0xcc, 0xdd]
    );
    // A 300-byte read covers the whole array once and then some.
    let all = read_reg(&mut fe, EEPROM, 0x00, 300);
    assert_eq!(&all[..2], &[0xcc, 0xdd]);
    assert_eq!(&all[254..258], &[0xaa, 0xbb, 0xcc, 0xdd]);
}

#[test]
fn rtc_time_set_and_read_back() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // 2031-07-15 (a Tuesday: weekday register 3) 12:34:50, 24-hour mode, BCD.
    let time = [0x50, 0x34, 0x12, 0x03, 0x15, 0x07, 0x31];
    write_reg(&mut fe, RTC, 0x00, &time);
    let regs = read_reg(&mut fe, RTC, 0x00, 7);
    // Seconds tick with the host clock; allow for a slow machine (no minute roll-over
    // below 12:34:59).
    assert!(
        (0x50..=0x55).contains(&regs[0]),
        "seconds {:#04x} (set 0x50)",
        regs[0]
    );
    assert_eq!(&regs[1..], &time[1..], "minutes..year");
    // The clock runs: the seconds register moves on within about a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while read_reg(&mut fe, RTC, 0x00, 1)[0] == regs[0] {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not run: seconds stay {:#04x} for 3 s",
            regs[0]
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn rtc_oscillator_stop_flag_is_cleared_by_writing_the_control_register() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    const OSF: u8 = 1 << 5;
    assert_eq!(
        read_reg(&mut fe, RTC, 0x07, 1)[0] & OSF,
        OSF,
        "power-on OSF"
    );
    write_reg(&mut fe, RTC, 0x07, &[0x00]);
    assert_eq!(
        read_reg(&mut fe, RTC, 0x07, 1)[0] & OSF,
        0,
        "OSF after clear"
    );
    // Software cannot set it again.
    write_reg(&mut fe, RTC, 0x07, &[OSF]);
    assert_eq!(read_reg(&mut fe, RTC, 0x07, 1)[0] & OSF, 0);
    // RAM at 0x08..0x3f keeps what is written.
    write_reg(&mut fe, RTC, 0x08, &[0x12, 0x34]);
    assert_eq!(read_reg(&mut fe, RTC, 0x08, 2), [0x12, 0x34]);
}

#[test]
fn unknown_address_is_err_and_the_device_keeps_serving() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    let w = one(&mut fe, write(ABSENT, &[0x00, 0x01], false));
    assert_eq!((status(&w), w.used_len), (ERR, 1), "{w:?}");
    let r = one(&mut fe, read(ABSENT, 4, false));
    assert_eq!((status(&r), r.used_len), (ERR, 1), "{r:?}");
    // Nothing was read into the buffer.
    assert_eq!(data(&r), [0; 4]);
    // A bus scan: every address without a device is ERR, the configured ones OK.
    for addr in 0x03..=0x77u8 {
        let done = one(&mut fe, quick(addr, false, false));
        let expect = if addr == EEPROM || addr == RTC {
            OK
        } else {
            ERR
        };
        assert_eq!(status(&done), expect, "address {addr:#04x}");
        assert_eq!(done.used_len, 1);
    }
    still_serves(&mut fe);
}

#[test]
fn fail_next_a_failing_group_executes_nothing() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // Write to the EEPROM, then a read from an absent device in the same group.
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x30, 0x11, 0x22], true),
            read(ABSENT, 2, false),
        ],
        false,
    );
    assert_eq!(status(&done[0]), ERR, "{done:?}");
    assert_eq!(status(&done[1]), ERR, "{done:?}");
    assert_eq!(done[0].used_len, 1);
    assert_eq!(done[1].used_len, 1);
    // The group failed as a whole: the EEPROM write never happened.
    assert_eq!(read_reg(&mut fe, EEPROM, 0x30, 2), [0xff, 0xff]);

    // The failure is in the middle of a three-message group: nothing executes either.
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x38, 0x33], true),
            quick(ABSENT, false, true),
            write(EEPROM, &[0x39, 0x44], false),
        ],
        false,
    );
    assert!(done.iter().all(|c| status(c) == ERR), "{done:?}");
    assert_eq!(read_reg(&mut fe, EEPROM, 0x38, 2), [0xff, 0xff]);

    // The group after a failed one starts clean.
    write_reg(&mut fe, EEPROM, 0x30, &[0x11, 0x22]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x30, 2), [0x11, 0x22]);
}

#[test]
fn fail_next_a_group_where_all_succeed_is_all_ok() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    write_reg(&mut fe, EEPROM, 0x48, &[0x5a, 0xa5]);
    write_reg(&mut fe, RTC, 0x08, &[0x77]);
    // EEPROM register read and RTC RAM read (both devices on the simulated adapter) in
    // one group, plus a quick write.
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x48], true),
            read(EEPROM, 2, true),
            quick(RTC, false, true),
            write(RTC, &[0x08], true),
            read(RTC, 1, false),
        ],
        false,
    );
    assert!(done.iter().all(|c| status(c) == OK), "{done:?}");
    let lens: Vec<u32> = done.iter().map(|c| c.used_len).collect();
    assert_eq!(lens, [1, 3, 1, 1, 2]);
    assert_eq!(data(&done[1]), [0x5a, 0xa5]);
    assert_eq!(data(&done[4]), [0x77]);
}

#[test]
fn two_groups_in_one_kick_are_independent() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    // A failing group followed by a good one, all posted before one kick.
    let done = submit(
        &mut fe,
        &[
            write(EEPROM, &[0x60, 0x01], true),
            quick(ABSENT, true, false),
            write(EEPROM, &[0x68, 0x02], true),
            quick(EEPROM, true, false),
        ],
        false,
    );
    let statuses: Vec<u8> = done.iter().map(status).collect();
    assert_eq!(statuses, [ERR, ERR, OK, OK]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x60, 1), [0xff]);
    assert_eq!(read_reg(&mut fe, EEPROM, 0x68, 1), [0x02]);
}

#[test]
fn zero_length_requests_probe_presence() {
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    for read in [false, true] {
        for indirect in [false, true] {
            let done = submit(&mut fe, &[quick(EEPROM, read, false)], indirect);
            assert_eq!(
                (status(&done[0]), done[0].used_len),
                (OK, 1),
                "quick read={read} to 0x50"
            );
            let done = submit(&mut fe, &[quick(0x52, read, false)], indirect);
            assert_eq!(
                (status(&done[0]), done[0].used_len),
                (ERR, 1),
                "quick read={read} to 0x52"
            );
        }
    }
    // A zero-length write does not disturb the EEPROM's contents.
    write_reg(&mut fe, EEPROM, 0x70, &[0x99]);
    one(&mut fe, quick(EEPROM, false, false));
    assert_eq!(read_reg(&mut fe, EEPROM, 0x70, 1), [0x99]);
}

#[test]
fn concurrent_transfers_from_two_sockets_stay_consistent() {
    let d = SUBJECT.launch_sockets(2).start();
    let handles: Vec<_> = (0..2usize)
        .map(|i| {
            let mut fe = d.connect(i);
            std::thread::spawn(move || {
                // Each frontend owns one EEPROM page; transfers from both sockets are
                // serialized on the adapter, so every write+read group sees its own data.
                let page = 0xc0 + 8 * i as u8;
                for round in 0..50u8 {
                    let bytes = [round, round ^ 0xff, i as u8, round];
                    write_reg(&mut fe, EEPROM, page, &bytes);
                    assert_eq!(read_reg(&mut fe, EEPROM, page, 4), bytes);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("frontend thread");
    }
}
