//! Eight busy guests at once on one daemon (`-c 8` (one simulated chip per socket)) under the default sandbox:
//! the shared test of vhost-user-test-frontend's `suites` (`busy_guests_tests!`).

mod common;

vhost_user_test_frontend::busy_guests_tests!(common::SUBJECT);
