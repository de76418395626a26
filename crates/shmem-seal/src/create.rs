//! Making new memfds: the builder, huge page sizes, and the
//! `memfd_create` call shared by every constructor.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{fstatfs, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;

use crate::check::{round_up, validate_len, MEMFD_NAME_MAX};
use crate::error::Error;
use crate::SharedMemory;

/// A huge page size for a hugetlb memfd (`MFD_HUGETLB`).
///
/// The kernel must have huge pages of that size reserved
/// (`/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages`), or creation fails
/// with [`Error::HugePagesUnavailable`]. Sizes the CPU does not support
/// fail the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HugePageSize {
    /// The kernel's default huge page size (`Hugepagesize` in
    /// `/proc/meminfo`; 2 MiB on x86-64).
    Default,
    /// 64 KiB.
    Size64KiB,
    /// 512 KiB.
    Size512KiB,
    /// 1 MiB.
    Size1MiB,
    /// 2 MiB (x86-64, arm64 with 4 KiB pages).
    Size2MiB,
    /// 8 MiB.
    Size8MiB,
    /// 16 MiB.
    Size16MiB,
    /// 32 MiB.
    Size32MiB,
    /// 256 MiB.
    Size256MiB,
    /// 512 MiB.
    Size512MiB,
    /// 1 GiB (x86-64 with `pdpe1gb`).
    Size1GiB,
    /// 2 GiB.
    Size2GiB,
    /// 16 GiB.
    Size16GiB,
}

impl HugePageSize {
    /// The size in bytes, or `None` for [`HugePageSize::Default`], which
    /// the kernel decides.
    ///
    /// ```
    /// use shmem_seal::HugePageSize;
    ///
    /// assert_eq!(HugePageSize::Size2MiB.bytes(), Some(2 << 20));
    /// assert_eq!(HugePageSize::Default.bytes(), None);
    /// ```
    pub fn bytes(self) -> Option<u64> {
        const K: u64 = 1 << 10;
        const M: u64 = 1 << 20;
        const G: u64 = 1 << 30;
        Some(match self {
            HugePageSize::Default => return None,
            HugePageSize::Size64KiB => 64 * K,
            HugePageSize::Size512KiB => 512 * K,
            HugePageSize::Size1MiB => M,
            HugePageSize::Size2MiB => 2 * M,
            HugePageSize::Size8MiB => 8 * M,
            HugePageSize::Size16MiB => 16 * M,
            HugePageSize::Size32MiB => 32 * M,
            HugePageSize::Size256MiB => 256 * M,
            HugePageSize::Size512MiB => 512 * M,
            HugePageSize::Size1GiB => G,
            HugePageSize::Size2GiB => 2 * G,
            HugePageSize::Size16GiB => 16 * G,
        })
    }

    /// The `memfd_create` flags that ask for this size.
    pub fn memfd_flags(self) -> MemfdFlags {
        MemfdFlags::HUGETLB
            | match self {
                HugePageSize::Default => MemfdFlags::empty(),
                HugePageSize::Size64KiB => MemfdFlags::HUGE_64KB,
                HugePageSize::Size512KiB => MemfdFlags::HUGE_512KB,
                HugePageSize::Size1MiB => MemfdFlags::HUGE_1MB,
                HugePageSize::Size2MiB => MemfdFlags::HUGE_2MB,
                HugePageSize::Size8MiB => MemfdFlags::HUGE_8MB,
                HugePageSize::Size16MiB => MemfdFlags::HUGE_16MB,
                HugePageSize::Size32MiB => MemfdFlags::HUGE_32MB,
                HugePageSize::Size256MiB => MemfdFlags::HUGE_256MB,
                HugePageSize::Size512MiB => MemfdFlags::HUGE_512MB,
                HugePageSize::Size1GiB => MemfdFlags::HUGE_1GB,
                HugePageSize::Size2GiB => MemfdFlags::HUGE_2GB,
                HugePageSize::Size16GiB => MemfdFlags::HUGE_16GB,
            }
    }
}

/// Turns an error from a hugetlb operation into [`Error::HugePagesUnavailable`]
/// when that is what it means.
pub(crate) fn huge_error(huge: Option<HugePageSize>, page: Option<u64>, e: io::Error) -> Error {
    let page_size = page.or_else(|| huge.and_then(HugePageSize::bytes));
    Error::HugePagesUnavailable {
        page_size: page_size.unwrap_or(0),
        source: e,
    }
}

/// Creates a memfd: close-on-exec, sealable, not executable where the
/// kernel knows `MFD_NOEXEC_SEAL` (6.3 and later; older kernels answer
/// `EINVAL` and we retry without it).
///
/// Returns the descriptor and, for hugetlb, the huge page size in bytes.
pub(crate) fn new_memfd(
    name: &str,
    huge: Option<HugePageSize>,
) -> Result<(OwnedFd, Option<u64>), Error> {
    if name.len() > MEMFD_NAME_MAX || name.contains('\0') {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "a memfd name has at most 249 bytes and no NUL",
        });
    }
    let base = MemfdFlags::CLOEXEC
        | MemfdFlags::ALLOW_SEALING
        | huge.map_or(MemfdFlags::empty(), HugePageSize::memfd_flags);
    let fd = match memfd_create(name, base | MemfdFlags::NOEXEC_SEAL) {
        Ok(fd) => fd,
        // The name was checked above, so EINVAL here means the kernel
        // predates MFD_NOEXEC_SEAL (or, for hugetlb, does not know the
        // page size; the retry reports that).
        Err(Errno::INVAL) => memfd_create(name, base).map_err(|e| match huge {
            Some(_) => huge_error(huge, None, e.into()),
            None => Error::syscall("memfd_create")(e),
        })?,
        // ENODEV: no hugetlbfs mount for that page size.
        Err(e) if huge.is_some() => return Err(huge_error(huge, None, e.into())),
        Err(e) => return Err(Error::syscall("memfd_create")(e)),
    };
    let page = match huge {
        None => None,
        // hugetlbfs reports its page size as the block size.
        Some(_) => Some(fstatfs(&fd).map_err(Error::syscall("fstatfs"))?.f_bsize as u64),
    };
    Ok((fd, page))
}

/// Sets the size of a fresh memfd.
pub(crate) fn set_len(fd: &OwnedFd, len: usize, page: Option<u64>) -> Result<(), Error> {
    ftruncate(fd, len as u64).map_err(|e| match page {
        Some(_) => huge_error(None, page, e.into()),
        None => Error::syscall("ftruncate")(e),
    })
}

/// Builds a new [`SharedMemory`]: chooses the seals, huge pages and mlock.
///
/// The order of work is: `memfd_create`, `ftruncate`, map read-write,
/// `mlock` if asked, then add the seals. Sealing last is what lets the
/// creator keep a writable mapping under `F_SEAL_FUTURE_WRITE` (see
/// [`MemfdBuilder::read_only_for_peers`]); nobody else has the descriptor
/// yet, so nothing can happen in between.
///
/// ```
/// use rustix::fs::SealFlags;
/// use shmem_seal::MemfdBuilder;
///
/// let mem = MemfdBuilder::new("ring")
///     .seals(SealFlags::SHRINK | SealFlags::GROW) // peer may add seals
///     .create(64 * 1024)?;
/// assert_eq!(mem.len(), 64 * 1024);
/// // F_SEAL_EXEC is there too where the kernel knows MFD_NOEXEC_SEAL.
/// assert_eq!(mem.seals()? - SealFlags::EXEC, SealFlags::SHRINK | SealFlags::GROW);
/// # Ok::<(), shmem_seal::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `create` is called"]
pub struct MemfdBuilder {
    name: String,
    seals: SealFlags,
    huge: Option<HugePageSize>,
    mlock: bool,
}

impl MemfdBuilder {
    /// The seals a new memory gets unless told otherwise: it can neither
    /// shrink nor grow, and nobody can change its seals any more.
    pub const DEFAULT_SEALS: SealFlags = SealFlags::SHRINK
        .union(SealFlags::GROW)
        .union(SealFlags::SEAL);

    /// Starts a builder for a memfd called `name` (shown in
    /// `/proc/<pid>/fd` as `/memfd:<name>`; at most 249 bytes, no NUL).
    pub fn new(name: &str) -> MemfdBuilder {
        MemfdBuilder {
            name: name.to_owned(),
            seals: Self::DEFAULT_SEALS,
            huge: None,
            mlock: false,
        }
    }

    /// Chooses the seals added once the memory is mapped (default:
    /// [`MemfdBuilder::DEFAULT_SEALS`]).
    ///
    /// `F_SEAL_SHRINK` is always added, whatever is asked: without it the
    /// peer could truncate the file under our mapping and our next access
    /// would raise `SIGBUS`. `F_SEAL_WRITE` is refused by
    /// [`create`](Self::create) with [`Error::InvalidSeals`], because it
    /// cannot be set while we hold a writable mapping: use
    /// [`SealedBlob::write_once`](crate::SealedBlob::write_once) for
    /// memory that never changes, or `F_SEAL_FUTURE_WRITE` (see
    /// [`read_only_for_peers`](Self::read_only_for_peers)).
    ///
    /// Leaving out `F_SEAL_SEAL` lets the peer add seals of its own:
    /// `F_SEAL_FUTURE_WRITE` then stops the peer's *new* writable mappings
    /// but not ours, and `F_SEAL_WRITE` fails for it while we hold our
    /// mapping.
    pub fn seals(mut self, seals: SealFlags) -> MemfdBuilder {
        self.seals = seals;
        self
    }

    /// Adds `F_SEAL_FUTURE_WRITE` to the seals: we keep writing through our
    /// mapping, and every mapping made from the descriptor from now on
    /// (by the peer, by anyone it passes the descriptor to) is read-only.
    ///
    /// What this guarantees, on the kernels this project targets (Linux
    /// 5.1 added the seal; 6.18 was checked):
    ///
    /// - a new `mmap` with `PROT_WRITE` and `MAP_SHARED` fails with
    ///   `EPERM`; `write(2)`, `pwrite(2)` and `fallocate(2)` hole punching
    ///   fail; a read-only shared mapping cannot be `mprotect`ed to
    ///   writable. So peers cannot write our memory.
    ///
    /// What it does **not** guarantee:
    ///
    /// - the content does not stay still: we (and any child that inherited
    ///   our mapping across `fork`) keep writing. A receiver must treat the
    ///   bytes as changing under it and read them only through raw
    ///   pointers with volatile or atomic loads, which is why
    ///   [`ReadOnlyMemory`](crate::ReadOnlyMemory) gives no `&[u8]`;
    /// - writable mappings that existed *before* the seal stay writable:
    ///   seal before the descriptor leaves the process, as this builder
    ///   does;
    /// - pages pinned for I/O before the seal (an `io_uring` registered
    ///   buffer, for example) can still be written by that I/O.
    ///
    /// For memory that no-one can change, use
    /// [`SealedBlob`](crate::SealedBlob) (`F_SEAL_WRITE`).
    ///
    /// ```
    /// use rustix::fs::SealFlags;
    /// use shmem_seal::{MemfdBuilder, ReadOnlyMemory};
    /// use std::os::fd::AsFd;
    ///
    /// let mine = MemfdBuilder::new("status").read_only_for_peers().create(4096)?;
    /// assert!(mine.seals()?.contains(SealFlags::FUTURE_WRITE));
    /// mine.write_at(0, b"v1")?;
    ///
    /// // What the peer does with the descriptor it received:
    /// let received = mine.as_fd().try_clone_to_owned().unwrap();
    /// let theirs = ReadOnlyMemory::open(received, 4096)?;
    /// let mut buf = [0u8; 2];
    /// theirs.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"v1");
    ///
    /// mine.write_at(0, b"v2")?; // we keep writing; they see it
    /// theirs.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"v2");
    /// # Ok::<(), shmem_seal::Error>(())
    /// ```
    pub fn read_only_for_peers(mut self) -> MemfdBuilder {
        self.seals |= SealFlags::FUTURE_WRITE;
        self
    }

    /// Backs the memory with huge pages of `size`; the length given to
    /// [`create`](Self::create) is rounded up to a whole number of them.
    ///
    /// Fails at `create` with [`Error::HugePagesUnavailable`] when the
    /// kernel has none to give.
    ///
    /// A risk that tmpfs memory does not have: a peer holding the
    /// descriptor can punch a hole in a hugetlb memfd (`fallocate`), and if
    /// the huge page pool is empty when we next touch the hole, we get
    /// `SIGBUS` (`mlock` does not prevent it). Sealing with
    /// `F_SEAL_FUTURE_WRITE` ([`read_only_for_peers`](Self::read_only_for_peers))
    /// forbids hole punching, so a hugetlb memory that peers only read is
    /// safe. For the same reason [`SharedMemory::open`] refuses hugetlb
    /// memfds unless asked with [`SharedMemory::open_allowing_hugetlb`].
    ///
    /// ```
    /// use shmem_seal::{Error, HugePageSize, MemfdBuilder};
    ///
    /// match MemfdBuilder::new("big").hugetlb(HugePageSize::Size2MiB).create(3 << 20) {
    ///     Ok(mem) => assert_eq!(mem.len(), 4 << 20), // rounded up
    ///     Err(Error::HugePagesUnavailable { page_size, .. }) => assert_eq!(page_size, 2 << 20),
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    pub fn hugetlb(mut self, size: HugePageSize) -> MemfdBuilder {
        self.huge = Some(size);
        self
    }

    /// Locks the mapping in RAM (`mlock`) as it is created, which also
    /// faults every page in. Fails with [`Error::Lock`] beyond
    /// `RLIMIT_MEMLOCK`.
    pub fn mlock(mut self, lock: bool) -> MemfdBuilder {
        self.mlock = lock;
        self
    }

    /// Creates, sizes, maps (and locks, if asked) the memfd, then seals it.
    ///
    /// The memory starts zeroed. [`SharedMemory::len`] is `len`, rounded up
    /// to the huge page size with [`hugetlb`](Self::hugetlb).
    pub fn create(&self, len: usize) -> Result<SharedMemory, Error> {
        validate_len(len)?;
        if self.seals.contains(SealFlags::WRITE) {
            return Err(Error::InvalidSeals {
                seals: self.seals,
                reason: "F_SEAL_WRITE cannot be set while we hold a writable mapping; \
                         use SealedBlob::write_once or F_SEAL_FUTURE_WRITE",
            });
        }
        let (fd, page) = new_memfd(&self.name, self.huge)?;
        let len = round_up(len, page)?;
        set_len(&fd, len, page)?;
        let mem = SharedMemory::map_new(fd, len, page)?;
        if self.mlock {
            mem.lock()?;
        }
        rustix::fs::fcntl_add_seals(mem.as_fd(), self.seals | SealFlags::SHRINK)
            .map_err(Error::syscall("fcntl(F_ADD_SEALS)"))?;
        Ok(mem)
    }
}
