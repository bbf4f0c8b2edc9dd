//! The GPIO `--device-list` parser (the function behind clap, not clap). Checks: no panic;
//! an accepted list has one device per colon-separated entry, each the number its entry
//! spells (`sN`: a simulated chip of N lines, `N`: /dev/gpiochipN), and no host chip
//! appears twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_device_gpio::args::{DeviceSpec, parse_device_list};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_device_list(s) {
        assert_eq!(list.len(), s.split(':').count(), "one device per entry");
        for (i, (d, entry)) in list.iter().zip(s.split(':')).enumerate() {
            // Each device is the number its entry spells (an `s` prefix: simulated), not
            // merely a number of the right type.
            let (simulated, digits) = match entry.strip_prefix('s') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            assert!(
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                "entry {entry:?} accepted in {s:?}"
            );
            let spelled = match digits.trim_start_matches('0') {
                "" => "0",
                t => t,
            };
            match d {
                DeviceSpec::Simulated(n) => {
                    assert!(simulated, "{entry:?} became a simulated chip");
                    assert_eq!(n.get().to_string(), spelled, "{entry:?} in {s:?}");
                }
                DeviceSpec::Chip(n) => {
                    assert!(!simulated, "{entry:?} became a host chip");
                    assert_eq!(n.to_string(), spelled, "{entry:?} in {s:?}");
                    assert!(
                        !list.iter().skip(i + 1).any(|o| o == d),
                        "chip {n} twice in {s:?}"
                    );
                }
            }
        }
    }
});
