//! The request header: `virtio_i2c_out_hdr { le16 addr; le16 padding; le32 flags }`.

use core::fmt;

/// Size of the request header.
pub const OUT_HDR_LEN: usize = 8;
/// Flag: fail the next request of the group if this one fails.
pub const VIRTIO_I2C_FLAGS_FAIL_NEXT: u32 = 1 << 0;
/// Flag: this is a read request.
pub const VIRTIO_I2C_FLAGS_M_RD: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = VIRTIO_I2C_FLAGS_FAIL_NEXT | VIRTIO_I2C_FLAGS_M_RD;

/// A 7-bit I2C address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(u8);

impl Address {
    /// Address 0, the general call address; used as a placeholder, never routed.
    pub const GENERAL_CALL: Address = Address(0);
    /// Lowest address a device may use (0x00-0x02 are reserved by the I2C specification).
    pub const FIRST_DEVICE: u8 = 0x03;
    /// Highest address a device may use (0x78-0x7f are reserved).
    pub const LAST_DEVICE: u8 = 0x77;

    /// A device address, if `addr` is in the range devices may use.
    pub fn device(addr: u16) -> Option<Self> {
        let a = u8::try_from(addr).ok()?;
        (Self::FIRST_DEVICE..=Self::LAST_DEVICE)
            .contains(&a)
            .then_some(Address(a))
    }

    /// Any 7-bit address (0..=0x7f), as a guest may send when probing.
    pub fn seven_bit(addr: u8) -> Option<Self> {
        (addr <= 0x7f).then_some(Address(addr))
    }

    /// The address as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// The address as a table index (0..128).
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

/// A decoded request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// Target address.
    pub addr: Address,
    /// Read (device writes data to the guest) or write.
    pub read: bool,
    /// The next request belongs to the same group.
    pub fail_next: bool,
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Reserved flag bits are set.
    #[error("reserved flag bits set: {0:#x}")]
    ReservedFlags(u32),
    /// A 10-bit address: no device on this bus has one.
    #[error("10-bit address {0:#06x} not supported")]
    TenBitAddress(u16),
    /// Bits that no address encoding uses are set.
    #[error("malformed address field {0:#06x}")]
    BadAddress(u16),
}

/// Flags of a header whose address could not be decoded, so grouping can go on.
pub fn fail_next_of(bytes: &[u8; OUT_HDR_LEN]) -> bool {
    let [_, _, _, _, f0, ..] = *bytes;
    u32::from(f0) & VIRTIO_I2C_FLAGS_FAIL_NEXT != 0
}

/// Decodes a request header. Pure: the same bytes always give the same answer.
pub fn parse_header(bytes: &[u8; OUT_HDR_LEN]) -> Result<RequestHeader, HeaderError> {
    let [a0, a1, _, _, f0, f1, f2, f3] = *bytes;
    let raw_addr = u16::from_le_bytes([a0, a1]);
    let flags = u32::from_le_bytes([f0, f1, f2, f3]);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(HeaderError::ReservedFlags(flags & !KNOWN_FLAGS));
    }
    // 10-bit form: bits 7..3 = 0b11110 in the low byte.
    if a0 & 0xf8 == 0xf0 {
        return Err(HeaderError::TenBitAddress(raw_addr));
    }
    // 7-bit form: address in bits 7..1; bit 0 and the high byte are unused.
    if a1 != 0 || a0 & 1 != 0 {
        return Err(HeaderError::BadAddress(raw_addr));
    }
    let addr = Address(a0 >> 1);
    Ok(RequestHeader {
        addr,
        read: flags & VIRTIO_I2C_FLAGS_M_RD != 0,
        fail_next: flags & VIRTIO_I2C_FLAGS_FAIL_NEXT != 0,
    })
}

/// Encodes a header (for frontends and tests).
pub fn encode_header(addr: u8, read: bool, fail_next: bool) -> [u8; OUT_HDR_LEN] {
    let mut flags = 0u32;
    if read {
        flags |= VIRTIO_I2C_FLAGS_M_RD;
    }
    if fail_next {
        flags |= VIRTIO_I2C_FLAGS_FAIL_NEXT;
    }
    let a = u16::from(addr & 0x7f) << 1;
    let [a0, a1] = a.to_le_bytes();
    let [f0, f1, f2, f3] = flags.to_le_bytes();
    [a0, a1, 0, 0, f0, f1, f2, f3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_linux_headers() {
        let h = parse_header(&encode_header(0x50, true, true)).unwrap();
        assert_eq!(h.addr.get(), 0x50);
        assert!(h.read && h.fail_next);
        let h = parse_header(&encode_header(0x68, false, false)).unwrap();
        assert_eq!(h.addr.get(), 0x68);
        assert!(!h.read && !h.fail_next);
    }

    #[test]
    fn padding_is_ignored() {
        let mut b = encode_header(0x50, false, false);
        b[2] = 0xff;
        b[3] = 0xff;
        assert!(parse_header(&b).is_ok());
    }

    #[test]
    fn rejects_reserved_flags() {
        let mut b = encode_header(0x50, false, false);
        b[4] |= 0x4;
        assert_eq!(parse_header(&b), Err(HeaderError::ReservedFlags(4)));
        let mut b = encode_header(0x50, false, false);
        b[7] = 0x80;
        assert!(matches!(
            parse_header(&b),
            Err(HeaderError::ReservedFlags(_))
        ));
    }

    #[test]
    fn rejects_ten_bit_and_malformed_addresses() {
        // 10-bit address 0x2a5: low byte 0b11110_10_0, high byte 0xa5.
        let b = [0xf4, 0xa5, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_header(&b),
            Err(HeaderError::TenBitAddress(_))
        ));
        let b = [0xa1, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_header(&b), Err(HeaderError::BadAddress(_))));
        let b = [0xa0, 1, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_header(&b), Err(HeaderError::BadAddress(_))));
    }

    #[test]
    fn fail_next_readable_from_bad_header() {
        let mut b = encode_header(0x50, false, true);
        b[1] = 7;
        assert!(parse_header(&b).is_err());
        assert!(fail_next_of(&b));
    }

    #[test]
    fn device_address_range() {
        assert!(Address::device(0x02).is_none());
        assert_eq!(Address::device(0x03).unwrap().get(), 3);
        assert_eq!(Address::device(0x77).unwrap().get(), 0x77);
        assert!(Address::device(0x78).is_none());
        assert!(Address::device(0x150).is_none());
    }
}
