//! `vhost-device-gpio`: see the crate documentation and README.

fn main() -> std::process::ExitCode {
    vhost_device_common::daemon::main::<vhost_device_gpio::GpioDaemon>()
}
