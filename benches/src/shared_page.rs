//! A page of a memfd mapped shared, for raw references between processes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::mm::{mmap, MapFlags, ProtFlags};

const PAGE: usize = 4096;
/// Words are spread 128 bytes apart so that no two share a cache line (or
/// an adjacent-line prefetch pair).
const STRIDE: usize = 128 / 4;

/// A 4 KiB memfd page mapped shared, seen as 32 atomic `u32` words on
/// separate cache lines. The mapping lives as long as the process (it is
/// never unmapped), so the words are `'static`.
pub struct SharedPage {
    fd: OwnedFd,
    base: *const AtomicU32,
}

// SAFETY: the page is only ever accessed through atomics.
unsafe impl Send for SharedPage {}
// SAFETY: as above.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// A fresh zeroed page.
    pub fn new() -> std::io::Result<Self> {
        let fd = memfd_create("sharedring-bench", MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, PAGE as u64)?;
        Self::map(fd)
    }

    /// Maps a page received from the parent.
    pub fn map(fd: OwnedFd) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of a 4 KiB memfd (null hint, no
        // MAP_FIXED); it is never unmapped, and only accessed as atomics.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                PAGE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }?;
        Ok(Self {
            fd,
            base: ptr.cast::<AtomicU32>(),
        })
    }

    /// Word `i` (0..32), on its own 128-byte line.
    pub fn word(&self, i: usize) -> &'static AtomicU32 {
        assert!(i < PAGE / 128, "word {i} out of the page");
        // SAFETY: the mapping is 4 KiB, page-aligned, never unmapped, and
        // only accessed through atomics; `i * STRIDE` words stay inside it.
        unsafe { &*self.base.add(i * STRIDE) }
    }
}

impl AsFd for SharedPage {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
