//! Checks of the frontend's memory table before any guest memory is touched.
//!
//! vhost-user-backend maps each region the frontend describes without comparing it with the
//! file behind it; reading a page of the mapping that lies beyond the end of the file kills
//! the process with SIGBUS. Every region is checked here to lie inside its file before a
//! ring runs in that memory (see [`crate::vring::Vring::lock_running`]) and when the table
//! arrives (the frontend's SET_MEM_TABLE or ADD_MEM_REG gets an error reply).
//!
//! Residual risk (docs/ARCHITECTURE.md): a frontend that shrinks its file after the check.

use std::io;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Why a memory table is refused.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The region's file could not be inspected.
    #[error("region at guest address {guest:#x}: cannot inspect its file")]
    Inspect {
        /// The region's guest physical address.
        guest: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The region's file is not a regular file (memfd, tmpfs, hugetlbfs).
    #[error("region at guest address {guest:#x}: its file is not a regular file")]
    NotRegular {
        /// The region's guest physical address.
        guest: u64,
    },
    /// The region extends past the end of its file.
    #[error(
        "region at guest address {guest:#x}: {len} bytes at file offset {offset:#x} exceed the {file_len}-byte file"
    )]
    BeyondFile {
        /// The region's guest physical address.
        guest: u64,
        /// Its length.
        len: u64,
        /// Where in the file it starts.
        offset: u64,
        /// The file's length.
        file_len: u64,
    },
}

/// Checks that every file-backed region of `mem` lies inside its file.
pub fn check_regions(mem: &GuestMemoryMmap) -> Result<(), MemoryError> {
    for region in mem.iter() {
        let Some(fo) = region.file_offset() else {
            // Anonymous memory (in-process tests) cannot be shrunk under us.
            continue;
        };
        let guest = region.start_addr().0;
        let meta = fo
            .file()
            .metadata()
            .map_err(|source| MemoryError::Inspect { guest, source })?;
        if !meta.is_file() {
            return Err(MemoryError::NotRegular { guest });
        }
        let len = region.len();
        let offset = fo.start();
        let file_len = meta.len();
        if offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(MemoryError::BeyondFile {
                guest,
                len,
                offset,
                file_len,
            });
        }
    }
    Ok(())
}

/// For a backend's `update_memory`: refuses a table with a region beyond its file, so that
/// the frontend gets an error reply (the rings never run in it either way).
pub fn check_update(mem: &crate::GuestMemory) -> io::Result<()> {
    use vm_memory::GuestAddressSpace;
    check_regions(&mem.memory()).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::FromRawFd;
    use vm_memory::{FileOffset, GuestAddress};

    fn memfd(len: u64) -> File {
        // SAFETY: the name is a valid C string; the result is checked below.
        let fd = unsafe { libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: memfd_create returned a new descriptor only this File owns.
        let f = unsafe { File::from_raw_fd(fd) };
        f.set_len(len).unwrap();
        f
    }

    fn table(file_len: u64, region_len: usize, offset: u64) -> GuestMemoryMmap {
        let f = memfd(file_len);
        GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(0),
            region_len,
            Some(FileOffset::new(f, offset)),
        )])
        .unwrap()
    }

    #[test]
    fn region_inside_its_file_is_accepted() {
        check_regions(&table(0x10_0000, 0x10_0000, 0)).unwrap();
        check_regions(&table(0x20_0000, 0x10_0000, 0x10_0000)).unwrap();
    }

    #[test]
    fn region_larger_than_its_file_is_refused() {
        let e = check_regions(&table(0x10_0000, 0x100_0000, 0)).unwrap_err();
        assert!(
            matches!(
                e,
                MemoryError::BeyondFile {
                    file_len: 0x10_0000,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn offset_past_the_end_is_refused() {
        let e = check_regions(&table(0x10_0000, 0x1000, 0x4000_0000)).unwrap_err();
        assert!(matches!(e, MemoryError::BeyondFile { .. }), "{e}");
    }

    #[test]
    fn anonymous_memory_is_accepted() {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        check_regions(&m).unwrap();
    }
}
