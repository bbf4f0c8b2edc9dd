//! Interrupts on simulated chips through the eventq: edge and level types, latching while
//! masked, INVALID returns, type switches.

// Test code: a panic is a failed test.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::panic
)]

mod common;

use common::SUBJECT;
use vhost_user_test_frontend::FrontendOptions;
use vhost_user_test_frontend::devices::gpio::*;

#[test]
fn edge_rising() {
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
    let mut fe = d.connect(0);
    quiet_check_setup(&mut fe);
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
    let d = SUBJECT.start();
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
fn without_event_idx() {
    let d = SUBJECT.start();
    let mut fe = d.connect_with(
        0,
        FrontendOptions {
            negotiate_event_idx: false,
            ..SUBJECT.frontend_options()
        },
    );
    assert!(!fe.event_idx());
    pair_with_irq(&mut fe, IRQ_RISING);
    let head = arm(&mut fe, 1);
    ok(&mut fe, SET_VALUE, 0, 1);
    expect_event(&mut fe, head, VALID);
}
