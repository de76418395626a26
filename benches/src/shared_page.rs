//! Memfd mappings shared between two processes, for the raw references
//! (atomic, futex and validated one-line ping-pongs, the unchecked ring)
//! and the probe.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::mm::{mmap, MapFlags, ProtFlags};

const PAGE: usize = 4096;
/// Words are spread 128 bytes apart so that no two share a cache line (or
/// an adjacent-line prefetch pair).
const STRIDE: usize = 128 / 4;

/// A memfd of `len` bytes mapped shared and page-aligned. The mapping
/// lives as long as the process (it is never unmapped), so pointers into
/// it stay valid.
pub struct SharedMap {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

// SAFETY: the map is a plain address range; every user says how it
// synchronises its accesses (atomics, or a protocol built on them).
unsafe impl Send for SharedMap {}
// SAFETY: as above.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// A fresh zeroed mapping of `len` bytes.
    pub fn new(len: usize) -> std::io::Result<Self> {
        let fd = memfd_create("sharedring-bench", MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, len as u64)?;
        Self::map(fd, len)
    }

    /// Maps `len` bytes of a memfd received from the parent.
    pub fn map(fd: OwnedFd, len: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of the memfd (null hint, no
        // MAP_FIXED), so it aliases no Rust object; it is never unmapped.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }?;
        Ok(Self {
            fd,
            base: ptr.cast::<u8>(),
            len,
        })
    }

    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `len` bytes at `offset` as a region for `spsc-core`'s halves.
    ///
    /// # Panics
    ///
    /// If the range is not inside the map.
    pub fn region(&self, offset: usize, len: usize) -> spsc_core::RawRegion {
        assert!(offset + len <= self.len, "region outside the map");
        // SAFETY: inside the mapping, which is never unmapped; the halves
        // access it only through atomics and volatile copies, and no Rust
        // reference into it is made.
        unsafe {
            spsc_core::RawRegion::new(std::ptr::NonNull::new(self.base.add(offset)).unwrap(), len)
        }
    }

    /// Whether it is empty (never: kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `u64` at byte `offset`, as an atomic that lives as long as the
    /// process.
    ///
    /// # Panics
    ///
    /// If `offset` is not 8-byte aligned or not inside the map.
    pub fn atomic_u64(&self, offset: usize) -> &'static AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "bad offset");
        // SAFETY: inside the mapping, 8-byte aligned (the base is
        // page-aligned), never unmapped; callers only access these bytes
        // as atomics.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }
}

impl AsFd for SharedMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A 4 KiB memfd page mapped shared, seen as 32 cache lines of 128 bytes:
/// either one atomic `u32` word each, or (other lines) two atomic `u64`s.
pub struct SharedPage {
    map: SharedMap,
}

impl SharedPage {
    /// A fresh zeroed page.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            map: SharedMap::new(PAGE)?,
        })
    }

    /// Maps a page received from the parent.
    pub fn map(fd: OwnedFd) -> std::io::Result<Self> {
        Ok(Self {
            map: SharedMap::map(fd, PAGE)?,
        })
    }

    /// Word `i` (0..32), on its own 128-byte line.
    pub fn word(&self, i: usize) -> &'static AtomicU32 {
        assert!(i < PAGE / 128, "word {i} out of the page");
        // SAFETY: the mapping is 4 KiB, page-aligned, never unmapped, and
        // only accessed through atomics; `i * STRIDE` words stay inside it.
        unsafe { &*self.map.as_ptr().cast::<AtomicU32>().add(i * STRIDE) }
    }

    /// The two `u64`s at the start of line `i` (0..32): one 16-byte group
    /// within a single cache line. A line used this way must not also be
    /// used through [`SharedPage::word`].
    pub fn line_u64(&self, i: usize) -> (&'static AtomicU64, &'static AtomicU64) {
        assert!(i < PAGE / 128, "line {i} out of the page");
        (
            self.map.atomic_u64(i * 128),
            self.map.atomic_u64(i * 128 + 8),
        )
    }
}

impl AsFd for SharedPage {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.as_fd()
    }
}
