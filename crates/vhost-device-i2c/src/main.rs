//! `vhost-device-i2c`: see the crate documentation and README.

use std::process::ExitCode;

use clap::Parser;
use vhost_device_i2c::args::Args;

fn main() -> ExitCode {
    vhost_device_common::capabilities::exit_if_requested("i2c");
    match vhost_device_i2c::run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vhost-device-i2c: error: {e}");
            ExitCode::FAILURE
        }
    }
}
