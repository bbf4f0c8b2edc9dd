//! The sandbox of the `vhost-device-i2c` binary under test: the checks shared with the other
//! daemon, from vhost-user-test-frontend's `confinement` module (see `sandbox_tests!`).

mod common;

vhost_user_test_frontend::sandbox_tests!(common::SUBJECT);
