//! Write-once blobs: memory filled once, then sealed so that no process,
//! the creator included, can ever change it again.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::{Mmap, MmapOptions};
use rustix::fs::{fcntl_add_seals, fcntl_get_seals, SealFlags};

use crate::check::{check_received, validate_len, Opener};
use crate::create::{new_memfd, set_len};
use crate::error::Error;

/// A memfd sealed against writing (`F_SEAL_WRITE`), mapped read-only.
///
/// Because the kernel refuses every write to it (new writable mappings,
/// `write(2)`, hole punching) and refused the seal while any writable
/// mapping existed, nobody can change the bytes any more: so, unlike
/// [`SharedMemory`](crate::SharedMemory), this hands out a plain `&[u8]`.
///
/// ```
/// use shmem_seal::SealedBlob;
/// use std::os::fd::AsFd;
///
/// let blob = SealedBlob::write_once("config", 5, |buf| buf.copy_from_slice(b"hello"))?;
/// assert_eq!(blob.as_bytes(), b"hello");
///
/// // The receiving side:
/// let received = blob.as_fd().try_clone_to_owned().unwrap();
/// let theirs = SealedBlob::open(received, 5)?;
/// assert_eq!(theirs.as_bytes(), b"hello");
/// # Ok::<(), shmem_seal::Error>(())
/// ```
#[derive(Debug)]
pub struct SealedBlob {
    /// Invariant: a read-only mapping of `fd` from offset 0, at least
    /// `len` bytes; the file carries `F_SEAL_WRITE` and `F_SEAL_SHRINK`
    /// and is at least `map.len()` bytes, so the bytes can neither change
    /// nor disappear while `map` lives.
    map: Mmap,
    len: usize,
    fd: OwnedFd,
}

/// The seals a write-once blob gets after it is filled.
const BLOB_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE)
    .union(SealFlags::SEAL);

impl SealedBlob {
    /// Creates a `len`-byte memfd named `name`, lets `fill` write it
    /// through a private `&mut [u8]` (zeroed at first), then seals it
    /// against shrinking, growing, writing and further sealing.
    ///
    /// The `&mut [u8]` is sound: the descriptor has not left this function,
    /// so no other mapping of the memory exists while `fill` runs.
    pub fn write_once<F: FnOnce(&mut [u8])>(
        name: &str,
        len: usize,
        fill: F,
    ) -> Result<SealedBlob, Error> {
        validate_len(len)?;
        let (fd, _) = new_memfd(name, None)?;
        set_len(&fd, len, None)?;
        {
            // SAFETY: `fd` is a memfd we just made and have not shared, of
            // exactly `len` bytes; this is its only mapping, so nobody else
            // can touch the bytes while the `&mut [u8]` lives, and the file
            // cannot shrink under it because nobody else can reach it.
            let mut map = unsafe { MmapOptions::new().len(len).map_mut(&fd) }
                .map_err(|source| Error::Map { len, source })?;
            fill(&mut map[..]);
            // The writable mapping must go before `F_SEAL_WRITE`, or the
            // kernel answers EBUSY.
        }
        fcntl_add_seals(&fd, BLOB_SEALS).map_err(Error::syscall("fcntl(F_ADD_SEALS)"))?;
        Self::map(fd, len, len)
    }

    /// Validates a memfd received from a peer and maps `len` bytes of it
    /// read-only.
    ///
    /// 1. It must be a memfd ([`Error::NotMemfd`]), and the descriptor
    ///    must be readable ([`Error::NotReadable`]).
    /// 2. It must carry `F_SEAL_SHRINK` and `F_SEAL_WRITE`; we add any that
    ///    is missing. Adding `F_SEAL_WRITE` fails while someone (the peer)
    ///    holds a writable shared mapping: that is
    ///    [`Error::WriteSealBusy`]; a memfd that cannot take seals at all
    ///    is [`Error::CannotSeal`].
    /// 3. Only then is its size read: below `len`, [`Error::TooSmall`].
    /// 4. Exactly `len` bytes are mapped (rounded up to whole huge pages for
    ///    a hugetlb memfd).
    pub fn open(fd: OwnedFd, len: usize) -> Result<SealedBlob, Error> {
        let checked = check_received(fd, len, Opener::Blob)?;
        Self::map(checked.fd, len, checked.map_len)
    }

    /// Maps `map_len` bytes of a memfd that carries `F_SEAL_WRITE` and
    /// `F_SEAL_SHRINK` and is at least `map_len` bytes long.
    fn map(fd: OwnedFd, len: usize, map_len: usize) -> Result<SealedBlob, Error> {
        // SAFETY: `memmap2::Mmap` hands out `&[u8]`, which is sound only if
        // the bytes cannot change or vanish while it is mapped. Both
        // callers have made sure the file carries `F_SEAL_WRITE` (no write
        // of any kind, and the kernel refused that seal while any writable
        // mapping existed) and `F_SEAL_SHRINK` with a size of at least
        // `map_len`. Seals can never be removed.
        let map =
            unsafe { MmapOptions::new().len(map_len).map(&fd) }.map_err(|source| Error::Map {
                len: map_len,
                source,
            })?;
        Ok(SealedBlob { map, len, fd })
    }

    /// The bytes of the blob.
    pub fn as_bytes(&self) -> &[u8] {
        &self.map[..self.len]
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an empty blob cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seals on the memfd now (always including `F_SEAL_WRITE` and
    /// `F_SEAL_SHRINK`).
    pub fn seals(&self) -> Result<SealFlags, Error> {
        fcntl_get_seals(&self.fd).map_err(Error::syscall("fcntl(F_GET_SEALS)"))
    }
}

impl AsRef<[u8]> for SealedBlob {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsFd for SealedBlob {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
