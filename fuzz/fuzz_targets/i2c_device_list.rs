//! The I2C `--device-list` and `--simulate` parsers (the functions behind clap, not clap).
//! Checks: no panic; an accepted list has at least one address per adapter, every address
//! a device address (0x03..=0x77), and as many adapters as comma-separated entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_device_i2c::args::{parse_address, parse_device_list, parse_simulate};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_device_list(s) {
        assert_eq!(list.len(), s.split(',').count(), "one adapter per entry");
        for spec in &list {
            assert!(!spec.addrs.is_empty(), "adapter without address: {s:?}");
            for a in &spec.addrs {
                assert!((0x03..=0x77).contains(&a.get()), "address {a} from {s:?}");
            }
        }
    }
    if let Ok(a) = parse_address(s) {
        assert!((0x03..=0x77).contains(&a.get()), "address {a} from {s:?}");
    }
    if let Ok((_, a)) = parse_simulate(s) {
        assert!((0x03..=0x77).contains(&a.get()), "address {a} from {s:?}");
    }
});
