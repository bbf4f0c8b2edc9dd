//! The `GET_LINE_NAMES` blob: NUL-terminated names in line order.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Line names as sent to the guest, built once when the device is created.
///
/// A name that is empty, not 7-bit ASCII (or contains NUL), or shared by several lines is
/// sent as an empty name (a single 0 byte): the guest requires unique ASCII names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineNames {
    blob: Vec<u8>,
}

fn usable(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b != 0 && b.is_ascii())
}

impl LineNames {
    /// Builds the blob from each line's host name, in line order.
    ///
    /// If no line keeps a name, the blob is empty (`gpio_names_size` = 0). A blob that would
    /// not fit the 32-bit `gpio_names_size` is dropped the same way.
    pub fn new<'a>(names: impl Iterator<Item = Option<&'a str>> + Clone) -> Self {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for name in names.clone().flatten().filter(|n| usable(n)) {
            let count = seen.entry(name).or_insert(0);
            *count = count.saturating_add(1);
        }
        let mut blob = Vec::new();
        let mut any = false;
        for name in names {
            if let Some(n) = name.filter(|n| usable(n) && seen.get(n) == Some(&1)) {
                blob.extend_from_slice(n.as_bytes());
                any = true;
            }
            blob.push(0);
        }
        if !any || u32::try_from(blob.len()).is_err() {
            blob.clear();
        }
        Self { blob }
    }

    /// The blob (empty when no line has a name).
    pub fn as_bytes(&self) -> &[u8] {
        &self.blob
    }

    /// `gpio_names_size` for the config space.
    pub fn size(&self) -> u32 {
        // Invariant: at most 65535 names of bounded length; far below 4 GiB.
        let size = u32::try_from(self.blob.len());
        debug_assert!(size.is_ok(), "line-name blob of {} bytes", self.blob.len());
        size.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(names: &[Option<&str>]) -> LineNames {
        LineNames::new(names.iter().copied())
    }

    #[test]
    fn layout_is_nul_terminated_in_order() {
        let n = build(&[Some("a"), Some("bc"), None, Some("d")]);
        assert_eq!(n.as_bytes(), b"a\0bc\0\0d\0");
        assert_eq!(n.size(), 8);
    }

    #[test]
    fn no_names_gives_empty_blob() {
        let n = build(&[None, Some(""), None]);
        assert_eq!(n.as_bytes(), b"");
        assert_eq!(n.size(), 0);
    }

    #[test]
    fn duplicates_and_non_ascii_are_blanked() {
        let n = build(&[
            Some("x"),
            Some("y"),
            Some("x"),
            Some("é"),
            Some("a\0b"),
            Some("z"),
        ]);
        assert_eq!(n.as_bytes(), b"\0y\0\0\0\0z\0");
    }
}
