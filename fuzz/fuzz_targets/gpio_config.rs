//! The GPIO config read: GET_CONFIG with any offset and size, on chips of any line count,
//! and `bounded_read` on any config space. Checks: no panic, and the answer is exactly the
//! requested window clipped to the space.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use vhost_device_gpio::backend::{GpioBackend, VirtioGpio};
use vhost_device_gpio::host::SimChip;
use vhost_user_backend::VhostUserBackend;
use virtio_gpio_core::msg::bounded_read;

/// The window `[offset, offset + size)` of `space`, clipped, computed without shortcuts.
fn window(space: &[u8], offset: u32, size: u32) -> Vec<u8> {
    let end = u64::from(offset) + u64::from(size);
    space
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64) >= u64::from(offset) && (*i as u64) < end)
        .map(|(_, b)| *b)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (head, space) = data.split_at(10);
    let offset = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    // 1 to 64 lines: the names size (and so the config bytes) varies with the count.
    let lines = 1 + (u16::from_le_bytes([head[8], head[9]]) % 64);

    assert_eq!(
        bounded_read(space, offset, size),
        window(space, offset, size).as_slice()
    );

    // GET_CONFIG changes nothing: one backend per line count serves every input.
    thread_local! {
        static BACKENDS: RefCell<HashMap<u16, GpioBackend<SimChip>>> = RefCell::new(HashMap::new());
    }
    BACKENDS.with(|b| {
        let mut b = b.borrow_mut();
        let backend = b.entry(lines).or_insert_with(|| {
            GpioBackend::new(
                VirtioGpio::new(SimChip::new(lines).expect("simulated chip"), false)
                    .expect("lines > 0"),
            )
        });
        let full = backend.get_config(0, 8);
        assert_eq!(full.len(), 8);
        assert_eq!(u16::from_le_bytes([full[0], full[1]]), lines);
        assert_eq!(
            backend.get_config(offset, size),
            window(&full, offset, size)
        );
    });
});
