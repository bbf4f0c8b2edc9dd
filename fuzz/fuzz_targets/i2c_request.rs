//! The I2C request path: a hostile guest script (descriptor tables, rings and data, see
//! `vhost_user_test_frontend::guest_script`) against a fresh backend on the simulated bus of
//! `--simulate 24c02@0x50 --simulate ds1338@0x68`, through the real chain walking and device
//! code. Checks: no panic, every popped chain returned exactly once, no write outside
//! device-writable buffers and the used ring; how many scripts and events went unchecked
//! (self-modifying) is printed to stderr.
#![no_main]

use std::sync::{Arc, OnceLock};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use vhost_device_i2c::args::{Args, Config};
use vhost_device_i2c::backend::{I2cBackend, VirtioI2c};
use vhost_device_i2c::host::Router;
use vhost_user_test_frontend::guest_script::{self, ScriptDevice};

const DEVICE: ScriptDevice<'static> = ScriptDevice {
    queues: 1,
    events: &[0],
    max_held: &[0],
};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let args = Args::try_parse_from([
            "vhost-device-i2c",
            "-s",
            "/nonexistent/i2c.sock",
            "--simulate",
            "24c02@0x50",
            "--simulate",
            "ds1338@0x68",
        ])
        .expect("fixed arguments parse");
        Config::try_from(args).expect("fixed arguments are valid")
    })
}

fuzz_target!(|script: &[u8]| {
    let config = config();
    let router = Router::open(&config.adapters, &config.simulated).expect("simulated bus opens");
    let backend = I2cBackend::new(VirtioI2c::new(Arc::new(router), false));
    match guest_script::run(&backend, DEVICE, script) {
        // How much went unchecked (a device-writable buffer over a ring or an indirect
        // table) goes to stderr.
        Ok(outcome) => guest_script::tally("i2c_request", &outcome),
        Err(e) => panic!("{}", guest_script::describe(&e)),
    }
});
