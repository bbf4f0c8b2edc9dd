//! `vhost-device-i2c`: see the crate documentation and README.

fn main() -> std::process::ExitCode {
    vhost_device_common::daemon::main::<vhost_device_i2c::I2cDaemon>()
}
