//! The daemon as the shared suites of vhost-user-test-frontend see it: the binary under test
//! (the workspace build, or the one `VHOST_DEVICE_I2C_BIN` and `VHOST_DEVICE_RUNNER` name)
//! with one simulated device.

use vhost_user_test_frontend::binary::Subject;

/// The daemon under test.
pub const SUBJECT: Subject = Subject {
    name: "i2c",
    bin_var: "VHOST_DEVICE_I2C_BIN",
    workspace_build: env!("CARGO_BIN_EXE_vhost-device-i2c"),
    device_args: &["--simulate", "24c02@0x50"],
    // The sockets share the simulated devices.
    device_args_for: |_| vec!["--simulate".to_owned(), "24c02@0x50".to_owned()],
    num_queues: 1,
};
