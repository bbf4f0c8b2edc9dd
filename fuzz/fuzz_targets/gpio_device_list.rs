//! The GPIO `--device-list` parser (the function behind clap, not clap). Checks: no panic;
//! an accepted list has one device per colon-separated entry, simulated chips have 1 to
//! 65535 lines, and no host chip appears twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_device_gpio::args::{DeviceSpec, parse_device_list};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_device_list(s) {
        assert_eq!(list.len(), s.split(':').count(), "one device per entry");
        for (i, d) in list.iter().enumerate() {
            match d {
                DeviceSpec::Simulated(n) => assert!(n.get() >= 1),
                DeviceSpec::Chip(n) => assert!(
                    !list.iter().skip(i + 1).any(|o| o == d),
                    "chip {n} twice in {s:?}"
                ),
            }
        }
    }
});
