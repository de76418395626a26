//! Mappings the peer may write while we use them: [`SharedMemory`]
//! (read-write) and [`ReadOnlyMemory`] (we only read, someone else writes).
//!
//! Neither hands out a Rust reference to the mapped bytes: the peer can
//! change them at any moment, which a `&[u8]` or `&mut [u8]` would promise
//! cannot happen. Access goes through raw pointers or the bounds-checked
//! volatile copies [`read_at`](SharedMemory::read_at) and
//! [`write_at`](SharedMemory::write_at).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{fcntl_get_seals, SealFlags};

use crate::check::{check_received, Checked, Opener};
use crate::create::huge_error;
use crate::error::Error;
use crate::MemfdBuilder;

/// The error for a failed `mmap` of a received memfd that passed every
/// check: the system's. For a hugetlb memfd that means no huge pages
/// could be reserved for the mapping.
pub(crate) fn map_error(checked: &Checked, source: std::io::Error) -> Error {
    match checked.huge_page {
        Some(_) => huge_error(None, checked.huge_page, source),
        None => Error::Map {
            len: checked.map_len,
            source,
        },
    }
}

/// Checks that `offset..offset + len` lies within `size`.
fn bounds(offset: usize, len: usize, size: usize) -> Result<(), Error> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfBounds { offset, len, size }),
    }
}

/// Copies `dst.len()` bytes out of shared memory, one volatile load each:
/// the peer may be writing them right now, so the compiler must neither
/// assume they are stable nor merge or repeat the loads.
///
/// # Safety
///
/// `src` must be valid for reads of `dst.len()` bytes.
unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    for (i, d) in dst.iter_mut().enumerate() {
        // SAFETY: `i < dst.len()`, and the caller promises `src` is valid
        // for that many bytes; a `u8` has no alignment requirement.
        *d = unsafe { src.add(i).read_volatile() };
    }
}

/// Copies `src` into shared memory, one volatile store per byte.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes.
unsafe fn copy_in(src: &[u8], dst: *mut u8) {
    for (i, s) in src.iter().enumerate() {
        // SAFETY: `i < src.len()`, and the caller promises `dst` is valid
        // for writes of that many bytes.
        unsafe { dst.add(i).write_volatile(*s) };
    }
}

/// A read-write shared mapping of a sealed memfd.
///
/// Made by [`SharedMemory::create`] or [`MemfdBuilder`] on the side that
/// creates the memory, or by [`SharedMemory::open`] on the side that
/// received the descriptor. Both sides may write at any time, so the memory
/// is reached only through [`as_ptr`](Self::as_ptr) or the volatile copies
/// [`read_at`](Self::read_at) and [`write_at`](Self::write_at), never
/// through a Rust reference.
///
/// The descriptor stays open for the life of this value (send it with
/// [`AsFd`]); the mapping is removed on drop.
///
/// ```
/// use shmem_seal::SharedMemory;
/// use std::os::fd::AsFd;
///
/// let mine = SharedMemory::create("ring", 4096)?;
/// mine.write_at(100, b"hello")?;
///
/// // The peer receives a duplicate of the descriptor (over a Unix socket
/// // with SCM_RIGHTS, in real life) and maps it after validation.
/// let received = mine.as_fd().try_clone_to_owned().unwrap();
/// let theirs = SharedMemory::open(received, 4096)?;
/// let mut buf = [0u8; 5];
/// theirs.read_at(100, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), shmem_seal::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    /// The mapping and its invariant (see [`SharedMapping`]); `fd` is the
    /// memfd it maps, from offset 0.
    mapping: SharedMapping,
    fd: OwnedFd,
}

impl SharedMemory {
    /// Creates a `len`-byte memfd named `name` with the default seals
    /// (shrink, grow, seal) and maps it; shorthand for
    /// `MemfdBuilder::new(name).create(len)`.
    ///
    /// ```
    /// use rustix::fs::SealFlags;
    /// use shmem_seal::SharedMemory;
    ///
    /// let mem = SharedMemory::create("ring", 1 << 20)?;
    /// assert_eq!(mem.len(), 1 << 20);
    /// assert!(mem.seals()?.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL));
    /// # Ok::<(), shmem_seal::Error>(())
    /// ```
    pub fn create(name: &str, len: usize) -> Result<SharedMemory, Error> {
        MemfdBuilder::new(name).create(len)
    }

    /// Starts a [`MemfdBuilder`] to choose seals, huge pages and mlock.
    pub fn builder(name: &str) -> MemfdBuilder {
        MemfdBuilder::new(name)
    }

    /// Maps a fresh, unshared memfd of `len` bytes (already sized).
    pub(crate) fn map_new(
        fd: OwnedFd,
        len: usize,
        huge_page: Option<u64>,
    ) -> Result<SharedMemory, Error> {
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&fd)
            .map_err(|e| match huge_page {
                // hugetlbfs reserves the pages at mmap time: ENOMEM means
                // none are left.
                Some(_) => huge_error(None, huge_page, e),
                None => Error::Map { len, source: e },
            })?;
        Ok(SharedMemory {
            mapping: SharedMapping {
                map,
                len,
                huge_page,
            },
            fd,
        })
    }

    /// Validates a memfd received from a peer and maps `len` bytes of it
    /// read-write.
    ///
    /// In this order, and refusing with its own error at each step:
    ///
    /// 1. it must be a memfd ([`Error::NotMemfd`]; an `O_PATH` descriptor
    ///    is [`NotMemfdReason::PathOnly`](crate::NotMemfdReason::PathOnly));
    /// 2. the descriptor must be open for reading and writing
    ///    ([`Error::NotReadable`], [`Error::NotWritable`]);
    /// 3. it must not be a hugetlb memfd ([`Error::HugetlbRefused`], see
    ///    below) nor sealed against writing
    ///    ([`Error::SealedAgainstWriting`]);
    /// 4. it must carry `F_SEAL_SHRINK` and `F_SEAL_SEAL`; we add whichever
    ///    the peer left out, both in one `F_ADD_SEALS`, and if that is
    ///    impossible we refuse ([`Error::CannotSeal`]). From then on nobody
    ///    can add a seal, so the write seals are read once more
    ///    ([`Error::SealedAgainstWriting`] if the peer slipped one in) and
    ///    that answer is final: the peer cannot make our `mmap` fail by
    ///    sealing the memfd against writing after we looked;
    /// 5. only then is its size read: below `len`, [`Error::TooSmall`]
    ///    (nothing is mapped, so a small file cannot raise `SIGBUS`);
    /// 6. exactly `len` bytes are mapped (rounded up to whole huge pages
    ///    for a hugetlb memfd), whatever the file's size.
    ///
    /// Every refusal caused by what the peer sent has
    /// [`Culprit::Peer`](crate::Culprit::Peer); an [`Error::Map`] after all
    /// checks passed is the system's (for example our address space is
    /// full).
    ///
    /// Adding `F_SEAL_SEAL` also stops the memfd's creator from adding
    /// seals later: seal everything before sending the descriptor, as
    /// [`MemfdBuilder`] does. The peer may have left out `F_SEAL_GROW`:
    /// growing the file is harmless to us, since our mapping length is our
    /// own.
    ///
    /// A hugetlb memfd is refused ([`Error::HugetlbRefused`]): a peer can
    /// punch a hole in it, and touching the hole when the huge page pool is
    /// empty raises `SIGBUS`. [`open_allowing_hugetlb`](Self::open_allowing_hugetlb)
    /// accepts that risk. (A tmpfs memfd has no such failure: a page
    /// faulted back into a hole comes from ordinary memory.)
    pub fn open(fd: OwnedFd, len: usize) -> Result<SharedMemory, Error> {
        Self::open_inner(fd, len, false)
    }

    /// Like [`open`](Self::open), but also accepts a hugetlb memfd, mapped
    /// for `len` rounded up to whole huge pages.
    ///
    /// The risk accepted: the peer (or anyone it gave the descriptor to)
    /// can punch a hole with `fallocate(FALLOC_FL_PUNCH_HOLE)`, which a
    /// writable memfd cannot be sealed against; if the system's huge page
    /// pool is empty when we next touch that hole, we get `SIGBUS`. Use it
    /// only where huge pages are reserved with room to spare, or the peer
    /// is trusted not to do that.
    pub fn open_allowing_hugetlb(fd: OwnedFd, len: usize) -> Result<SharedMemory, Error> {
        Self::open_inner(fd, len, true)
    }

    fn open_inner(fd: OwnedFd, len: usize, allow_hugetlb: bool) -> Result<SharedMemory, Error> {
        let checked = check_received(fd, len, Opener::ReadWrite { allow_hugetlb })?;
        let map = MmapOptions::new()
            .len(checked.map_len)
            .map_raw(&checked.fd)
            .map_err(|source| map_error(&checked, source))?;
        Ok(SharedMemory {
            mapping: SharedMapping {
                map,
                len,
                huge_page: checked.huge_page,
            },
            fd: checked.fd,
        })
    }

    /// The start of the mapping, valid for reads and writes of
    /// [`len`](Self::len) bytes for as long as `self` lives.
    ///
    /// The peer can write any byte at any time. Read and write through
    /// this pointer only with volatile or atomic accesses, load a value
    /// once and validate the local copy, and never make a `&`/`&mut`
    /// reference to the bytes.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.mapping.as_ptr()
    }

    /// The usable length in bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always `false`: an empty mapping cannot be made. Present because
    /// there is a [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// The seals on the memfd now.
    pub fn seals(&self) -> Result<SealFlags, Error> {
        fcntl_get_seals(&self.fd).map_err(Error::syscall("fcntl(F_GET_SEALS)"))
    }

    /// The huge page size in bytes, for a hugetlb memfd.
    pub fn huge_page_size(&self) -> Option<u64> {
        self.mapping.huge_page_size()
    }

    /// Locks the whole mapping in RAM (`mlock`), faulting every page in.
    ///
    /// ```
    /// let mem = shmem_seal::SharedMemory::create("locked", 4096)?;
    /// mem.lock()?;
    /// # Ok::<(), shmem_seal::Error>(())
    /// ```
    pub fn lock(&self) -> Result<(), Error> {
        let map = &self.mapping.map;
        map.lock().map_err(|source| Error::Lock {
            len: map.len(),
            source,
        })
    }

    /// Copies `buf.len()` bytes starting at `offset` out of the mapping,
    /// with volatile loads. What arrives is whatever the peer last wrote:
    /// validate it.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        bounds(offset, buf.len(), self.len())?;
        // SAFETY: the range is within `len` (checked above), and the type
        // invariant makes every byte of the first `len` readable.
        unsafe { copy_out(self.mapping.map.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the mapping at `offset`, with volatile stores.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        bounds(offset, data.len(), self.len())?;
        // SAFETY: the range is within `len` (checked above), and the
        // mapping is read-write for its whole length (type invariant).
        unsafe { copy_in(data, self.mapping.map.as_mut_ptr().add(offset)) };
        Ok(())
    }
}

impl SharedMemory {
    /// Keeps the mapping and closes the memfd descriptor, for a process
    /// that has nothing more to do with the descriptor (it was mapped, and
    /// a duplicate already went to the peer): one descriptor less per
    /// mapping. The mapping keeps the file alive, and the seals stay on
    /// it, so the mapping is as safe as before.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// let mem = shmem_seal::SharedMemory::create("ring", 4096)?;
    /// let for_the_peer = mem.as_fd().try_clone_to_owned().unwrap();
    /// let mapping = mem.into_mapping(); // our descriptor is closed
    /// assert_eq!(mapping.len(), 4096);
    /// # drop(for_the_peer);
    /// # Ok::<(), shmem_seal::Error>(())
    /// ```
    pub fn into_mapping(self) -> SharedMapping {
        // Dropping `self.fd` closes our descriptor; the mapping stays.
        self.mapping
    }
}

/// A [`SharedMemory`] whose descriptor was closed
/// ([`SharedMemory::into_mapping`]): the mapping alone, with the same
/// invariant (read-write, `len` bytes, on a file sealed against
/// shrinking) and the same rule: the peer writes it at any time, so no
/// Rust reference into it.
#[derive(Debug)]
pub struct SharedMapping {
    /// Invariant: a `MAP_SHARED` read-write mapping of a memfd from offset
    /// 0, `map.len() >= len` bytes long; the file is at least `map.len()`
    /// bytes and carries `F_SEAL_SHRINK`, so no access within the mapping
    /// can raise `SIGBUS`. `len` is the usable length: what the creator
    /// asked for (rounded up to the huge page size), or what the receiver
    /// expected.
    map: MmapRaw,
    len: usize,
    huge_page: Option<u64>,
}

impl SharedMapping {
    /// The start of the mapping, valid for reads and writes of
    /// [`len`](Self::len) bytes for as long as `self` lives; see
    /// [`SharedMemory::as_ptr`] for how to access it.
    pub fn as_ptr(&self) -> NonNull<u8> {
        // `MmapRaw` never holds a null pointer: memmap2 maps at least one
        // byte and reports a failed mmap as an error.
        NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null")
    }

    /// The usable length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The huge page size in bytes, for a hugetlb memfd.
    pub fn huge_page_size(&self) -> Option<u64> {
        self.huge_page
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A read-only shared mapping of a memfd that someone else may still
/// write, typically one its creator sealed with `F_SEAL_FUTURE_WRITE`
/// (see [`MemfdBuilder::read_only_for_peers`]).
///
/// The content can change under us, so, as with [`SharedMemory`], there is
/// no `&[u8]`: read through [`as_ptr`](Self::as_ptr) with volatile or
/// atomic loads, or with [`read_at`](Self::read_at). For memory that can
/// never change, and so can be a `&[u8]`, see
/// [`SealedBlob`](crate::SealedBlob).
///
/// ```
/// use shmem_seal::{ReadOnlyMemory, SharedMemory};
/// use std::os::fd::AsFd;
///
/// let writer = SharedMemory::create("feed", 4096)?;
/// writer.write_at(0, &[42])?;
/// let reader = ReadOnlyMemory::open(writer.as_fd().try_clone_to_owned().unwrap(), 4096)?;
/// let mut b = [0u8];
/// reader.read_at(0, &mut b)?;
/// assert_eq!(b, [42]);
/// # Ok::<(), shmem_seal::Error>(())
/// ```
#[derive(Debug)]
pub struct ReadOnlyMemory {
    /// Invariant: a `MAP_SHARED` `PROT_READ` mapping of `fd` from offset 0,
    /// `map.len() >= len` bytes; the file is at least `map.len()` bytes and
    /// carries `F_SEAL_SHRINK`.
    map: MmapRaw,
    len: usize,
    fd: OwnedFd,
}

impl ReadOnlyMemory {
    /// Validates a memfd received from a peer and maps `len` bytes of it
    /// read-only.
    ///
    /// The same checks, in the same order, as [`SharedMemory::open`]
    /// (memfd, readable descriptor, `F_SEAL_SHRINK` added if missing, then
    /// size), except that write seals and a read-only descriptor are fine
    /// here, and `F_SEAL_SEAL` is neither needed nor added: seals the peer
    /// adds later cannot stop a read-only mapping. A hugetlb memfd is
    /// accepted only if it is sealed against writing (`F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE`), which also forbids hole punching; otherwise
    /// it is [`Error::HugetlbRefused`] (see [`SharedMemory::open`] for why).
    pub fn open(fd: OwnedFd, len: usize) -> Result<ReadOnlyMemory, Error> {
        let checked = check_received(fd, len, Opener::ReadOnly)?;
        let map = MmapOptions::new()
            .len(checked.map_len)
            .map_raw_read_only(&checked.fd)
            .map_err(|source| map_error(&checked, source))?;
        Ok(ReadOnlyMemory {
            map,
            len,
            fd: checked.fd,
        })
    }

    /// Like [`open`](Self::open), but also requires that the memfd is
    /// sealed against writing by anyone but its creator: `F_SEAL_FUTURE_WRITE`
    /// (or `F_SEAL_WRITE`) must already be there, or it is refused with
    /// [`Error::NotWriteSealed`]. This is what a reader that shares the
    /// memory with *other* untrusted readers relies on (a broadcast
    /// subscriber): none of them, nor anyone they pass the descriptor to,
    /// can write the bytes, whatever they try (a writable `mmap`,
    /// `mprotect`, `write`/`pwrite`, a reopen through `/proc/self/fd`,
    /// hole punching); `F_SEAL_SHRINK` is added if missing (it fails with
    /// [`Error::CannotSeal`] through a read-only descriptor, so the
    /// creator should seal it too).
    ///
    /// ```
    /// use shmem_seal::{Error, MemfdBuilder, ReadOnlyMemory, SharedMemory};
    /// use std::os::fd::AsFd;
    ///
    /// let sealed = MemfdBuilder::new("feed").read_only_for_peers().create(4096)?;
    /// ReadOnlyMemory::open_write_sealed(sealed.as_fd().try_clone_to_owned().unwrap(), 4096)?;
    ///
    /// let writable = SharedMemory::create("feed", 4096)?;
    /// let refused = ReadOnlyMemory::open_write_sealed(writable.as_fd().try_clone_to_owned().unwrap(), 4096);
    /// assert!(matches!(refused, Err(Error::NotWriteSealed { .. })));
    /// # Ok::<(), shmem_seal::Error>(())
    /// ```
    pub fn open_write_sealed(fd: OwnedFd, len: usize) -> Result<ReadOnlyMemory, Error> {
        let checked = check_received(fd, len, Opener::WriteSealed)?;
        let map = MmapOptions::new()
            .len(checked.map_len)
            .map_raw_read_only(&checked.fd)
            .map_err(|source| map_error(&checked, source))?;
        Ok(ReadOnlyMemory {
            map,
            len,
            fd: checked.fd,
        })
    }

    /// The start of the mapping, valid for reads (only) of
    /// [`len`](Self::len) bytes for as long as `self` lives. Writing
    /// through it raises `SIGSEGV`.
    ///
    /// The bytes may change at any time: read them with volatile or atomic
    /// loads, once, and validate the local copy.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    /// The usable length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seals on the memfd now.
    pub fn seals(&self) -> Result<SealFlags, Error> {
        fcntl_get_seals(&self.fd).map_err(Error::syscall("fcntl(F_GET_SEALS)"))
    }

    /// Locks the whole mapping in RAM (`mlock`).
    pub fn lock(&self) -> Result<(), Error> {
        self.map.lock().map_err(|source| Error::Lock {
            len: self.map.len(),
            source,
        })
    }

    /// Copies `buf.len()` bytes starting at `offset` out of the mapping,
    /// with volatile loads.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        bounds(offset, buf.len(), self.len)?;
        // SAFETY: the range is within `len` (checked above), and the type
        // invariant makes every byte of the first `len` readable.
        unsafe { copy_out(self.map.as_ptr().add(offset), buf) };
        Ok(())
    }
}

impl AsFd for ReadOnlyMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
