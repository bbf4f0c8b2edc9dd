//! The shape rules of one virtio-i2c request, as its buffers arrive (virtio 1.2, 5.19.6):
//! the header and a write's payload are device-readable; a read's data and the status byte
//! (always the last writable byte) are device-writable. A transport only measures the
//! buffers, reads the header, and copies bytes; every rule about what the sizes mean lives
//! here, so a vhost-user daemon and a bare-metal or RTOS backend apply the same ones.

use crate::group::Entry;
use crate::request::{OUT_HDR_LEN, fail_next_of, parse_header};

/// Where a write's payload starts in the readable bytes (right after the header).
pub const PAYLOAD_OFFSET: usize = OUT_HDR_LEN;

/// The sizes of one request's buffers, as the transport found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainShape {
    /// Device-readable bytes: the header, then a write's payload.
    pub readable: usize,
    /// Device-writable bytes: a read's data, then the status byte.
    pub writable: usize,
}

impl ChainShape {
    /// Whether the transport must read a header: the readable bytes hold one.
    pub fn has_header(self) -> bool {
        self.readable >= OUT_HDR_LEN
    }

    /// The offset of the status byte in the writable bytes, if there is room for one. A
    /// request without one cannot be answered: it is returned with nothing written.
    pub fn status_at(self) -> Option<usize> {
        self.writable.checked_sub(1)
    }
}

/// One request as its group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The request (or why it cannot run: [`Entry::Invalid`]).
    pub entry: Entry,
    /// It ends its group (its FAIL_NEXT flag is clear, or unknowable).
    pub last: bool,
}

/// Decodes one request from its shape and its header bytes (`None` when the readable bytes
/// hold no header, or could not be read). Pure: the same input gives the same answer.
///
/// - No header: invalid, and it ends its group (its flags are unknown).
/// - A header that does not decode: invalid; the group goes on if its FAIL_NEXT bit is set.
/// - No status byte: invalid (a request that cannot be answered is not executed).
/// - A read carries no payload and its data is every writable byte but the status; a write
///   writes nothing but the status. A buffer of the wrong direction makes it invalid.
/// - An address outside the device list is still valid here: the router refuses it.
pub fn decode(shape: ChainShape, header: Option<&[u8; OUT_HDR_LEN]>) -> Decoded {
    let Some(bytes) = header.filter(|_| shape.has_header()) else {
        return Decoded {
            entry: Entry::Invalid,
            last: true,
        };
    };
    let header = match parse_header(bytes) {
        Ok(h) => h,
        Err(_) => {
            return Decoded {
                entry: Entry::Invalid,
                last: !fail_next_of(bytes),
            };
        }
    };
    let last = !header.fail_next;
    let Some(response) = shape.status_at() else {
        return Decoded {
            entry: Entry::Invalid,
            last,
        };
    };
    let payload = shape.readable.saturating_sub(OUT_HDR_LEN);
    let len = match (header.read, payload, response) {
        (true, 0, n) | (false, n, 0) => n,
        _ => {
            return Decoded {
                entry: Entry::Invalid,
                last,
            };
        }
    };
    Decoded {
        entry: Entry::Valid { header, len },
        last,
    }
}

/// The used length of an answered request: the data written and the status byte (a failed
/// request writes no data).
pub fn used_len(ok: bool, data_len: usize) -> u32 {
    let written = if ok { data_len } else { 0 };
    u32::try_from(written.saturating_add(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::encode_header;

    fn shape(readable: usize, writable: usize) -> ChainShape {
        ChainShape { readable, writable }
    }

    fn valid(d: Decoded) -> Option<(bool, usize)> {
        match d.entry {
            Entry::Valid { header, len } => Some((header.read, len)),
            Entry::Invalid => None,
        }
    }

    #[test]
    fn reads_take_every_writable_byte_but_the_status() {
        let h = encode_header(0x50, true, false);
        let d = decode(shape(8, 17), Some(&h));
        assert_eq!(valid(d), Some((true, 16)));
        assert!(d.last);
        // Zero-length read (quick): only the status byte.
        assert_eq!(valid(decode(shape(8, 1), Some(&h))), Some((true, 0)));
    }

    #[test]
    fn writes_send_every_readable_byte_after_the_header() {
        let h = encode_header(0x50, false, true);
        let d = decode(shape(8 + 3, 1), Some(&h));
        assert_eq!(valid(d), Some((false, 3)));
        assert!(!d.last, "FAIL_NEXT keeps the group open");
        assert_eq!(valid(decode(shape(8, 1), Some(&h))), Some((false, 0)));
    }

    #[test]
    fn wrong_direction_buffers_are_invalid_but_keep_the_grouping() {
        let read = encode_header(0x50, true, true);
        let d = decode(shape(9, 2), Some(&read));
        assert_eq!(valid(d), None, "a read with a payload");
        assert!(!d.last);
        let write = encode_header(0x50, false, false);
        let d = decode(shape(9, 2), Some(&write));
        assert_eq!(valid(d), None, "a write with response data");
        assert!(d.last);
    }

    #[test]
    fn no_status_byte_means_not_executed() {
        let h = encode_header(0x50, false, true);
        let d = decode(shape(9, 0), Some(&h));
        assert_eq!(valid(d), None);
        assert!(!d.last, "the header's FAIL_NEXT still groups it");
        assert_eq!(shape(9, 0).status_at(), None);
        assert_eq!(shape(9, 5).status_at(), Some(4));
    }

    #[test]
    fn missing_or_bad_headers() {
        let d = decode(shape(7, 1), None);
        assert_eq!(valid(d), None);
        assert!(d.last, "no header: the group ends");
        // A header passed for a chain too short to hold one is not trusted.
        let h = encode_header(0x50, false, true);
        assert!(decode(shape(7, 1), Some(&h)).last);
        let mut bad = encode_header(0x50, false, true);
        bad[1] = 1; // malformed address field
        let d = decode(shape(8, 1), Some(&bad));
        assert_eq!(valid(d), None);
        assert!(!d.last, "FAIL_NEXT read from a bad header");
    }

    #[test]
    fn used_length_counts_data_and_status() {
        assert_eq!(used_len(true, 16), 17);
        assert_eq!(used_len(false, 16), 1);
        assert_eq!(used_len(true, 0), 1);
        assert_eq!(used_len(true, usize::MAX), u32::MAX);
    }
}
