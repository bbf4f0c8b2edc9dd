//! Checks of the frontend's memory table before any guest memory is touched.
//!
//! vhost-user-backend maps each region the frontend describes without comparing it with the
//! file behind it; reading a page of the mapping that lies beyond the end of the file kills
//! the process with SIGBUS. Every region is checked here to lie inside its file before a
//! ring runs in that memory (see [`crate::vring::Vring::lock_running`]) and when the table
//! arrives (the frontend's SET_MEM_TABLE or ADD_MEM_REG gets an error reply).
//!
//! A file shrunk after the check still raises SIGBUS: that is only ruled out for a memfd
//! sealed against shrinking (`F_SEAL_SHRINK`; QEMU seals its memfd memory backends by
//! default). [`check_update`] reads each region's seals and says once per run, at info level,
//! that a table with an unsealed region lets its frontend end the process (docs/ARCHITECTURE.md,
//! threat model).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use log::info;

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
    /// The region's file is not a regular file (a directory, a device, a socket, a pipe): its
    /// length says nothing about what can be mapped. A memfd, and files on tmpfs or hugetlbfs,
    /// are regular files and are accepted when large enough.
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

/// Whether the region's file is sealed against shrinking (`F_SEAL_SHRINK`), so that no one,
/// its frontend included, can cut pages from under the mapping. `false` for a file that
/// cannot carry seals (not a memfd, or a memfd made without `MFD_ALLOW_SEALING`) or whose
/// seals cannot be read.
pub fn sealed_against_shrinking(file: &std::fs::File) -> bool {
    // SAFETY: F_GET_SEALS on a descriptor the file owns (borrowed for the call) reads the
    // seals; it touches no memory.
    let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_SHRINK != 0
}

/// The guest address of the first file-backed region not sealed against shrinking.
pub fn first_unsealed(mem: &GuestMemoryMmap) -> Option<u64> {
    mem.iter()
        .filter_map(|region| Some((region.start_addr().0, region.file_offset()?)))
        .find(|(_, fo)| !sealed_against_shrinking(fo.file()))
        .map(|(guest, _)| guest)
}

/// Set once the process has said that a memory table has an unsealed region.
static UNSEALED_REPORTED: AtomicBool = AtomicBool::new(false);

/// For a backend's `update_memory` (SET_MEM_TABLE, ADD_MEM_REG): refuses a table with a region
/// beyond its file, so that the frontend gets an error reply (the rings never run in it
/// either way). A region not sealed against shrinking is accepted (QEMU without its default
/// memfd sealing, file-backed guest RAM) and said once per run: once a daemon has served one
/// such frontend, a line per table or connection would only repeat it.
pub fn check_update(mem: &crate::GuestMemory) -> io::Result<()> {
    use vm_memory::GuestAddressSpace;
    let table = mem.memory();
    check_regions(&table).map_err(io::Error::other)?;
    if let Some(guest) = first_unsealed(&table)
        && !UNSEALED_REPORTED.swap(true, Ordering::Relaxed)
    {
        info!(
            "guest memory region at {guest:#x} is not sealed against shrinking (F_SEAL_SHRINK): \
             a frontend that truncates it ends this process with SIGBUS (said once per run)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::FromRawFd;
    use vm_memory::{FileOffset, GuestAddress};

    fn memfd(len: u64) -> File {
        // SAFETY: the name is a valid C string; the result is checked below.
        let fd = unsafe {
            libc::memfd_create(
                c"test".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
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

    fn seal(f: &File, seals: libc::c_int) {
        // SAFETY: F_ADD_SEALS on a descriptor this test owns; it touches no memory.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    #[test]
    fn only_a_shrink_seal_counts_as_sealed() {
        let f = memfd(0x1000);
        assert!(!sealed_against_shrinking(&f), "no seal yet");
        seal(&f, libc::F_SEAL_GROW);
        assert!(
            !sealed_against_shrinking(&f),
            "growing sealed, shrinking not"
        );
        seal(&f, libc::F_SEAL_SHRINK);
        assert!(sealed_against_shrinking(&f));
        let plain = File::open("/proc/self/status").unwrap();
        assert!(!sealed_against_shrinking(&plain), "a file without seals");
    }

    #[test]
    fn the_first_unsealed_region_is_named() {
        let sealed = memfd(0x1000);
        seal(&sealed, libc::F_SEAL_SHRINK);
        let m = GuestMemoryMmap::from_ranges_with_files(&[
            (GuestAddress(0), 0x1000, Some(FileOffset::new(sealed, 0))),
            (
                GuestAddress(0x4000),
                0x1000,
                Some(FileOffset::new(memfd(0x1000), 0)),
            ),
        ])
        .unwrap();
        assert_eq!(first_unsealed(&m), Some(0x4000));
        let anon = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        assert_eq!(first_unsealed(&anon), None, "anonymous memory has no file");
    }

    #[test]
    fn anonymous_memory_is_accepted() {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        check_regions(&m).unwrap();
    }
}
