//! The daemon as the shared suites of vhost-user-test-frontend see it: the binary under test
//! (the workspace build, or the one `VHOST_DEVICE_GPIO_BIN` and `VHOST_DEVICE_RUNNER` name)
//! with one simulated device.

use vhost_user_test_frontend::binary::Subject;

/// The daemon under test.
pub const SUBJECT: Subject = Subject {
    name: "gpio",
    bin_var: "VHOST_DEVICE_GPIO_BIN",
    workspace_build: env!("CARGO_BIN_EXE_vhost-device-gpio"),
    device_args: &["-l", "s8"],
    // One simulated chip per socket.
    device_args_for: |n| vec!["-l".to_owned(), vec!["s8"; n].join(":")],
    num_queues: 2,
};
