//! Validation of a descriptor received from a peer, in the order that keeps
//! us safe: is it a memfd, may we use it the way we mean to, are the seals
//! we need there (add them if not), and only then how big is it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fcntl_getfl, fstat, fstatfs, open, readlinkat, FileType,
    Mode, OFlags, SealFlags, PROC_SUPER_MAGIC,
};
use rustix::io::Errno;

use crate::error::{Error, NotMemfdReason};

/// `TMPFS_MAGIC` from `<linux/magic.h>`: memfds without `MFD_HUGETLB` live
/// on the kernel's internal tmpfs mount.
const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `HUGETLBFS_MAGIC` from `<linux/magic.h>`: memfds made with
/// `MFD_HUGETLB` live on an internal hugetlbfs mount.
const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;

/// The longest name `memfd_create` accepts: `NAME_MAX` (255) less the
/// length of the `memfd:` prefix the kernel adds.
pub(crate) const MEMFD_NAME_MAX: usize = 249;

/// What we learned about a descriptor that passed [`check_memfd`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemfdInfo {
    /// The seals present when we looked.
    pub(crate) seals: SealFlags,
    /// `Some(huge page size in bytes)` for a hugetlb memfd.
    pub(crate) huge_page: Option<u64>,
    /// The descriptor's access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`).
    pub(crate) access: OFlags,
}

/// A received memfd that passed every check and may now be mapped for
/// `map_len` bytes without risk of `SIGBUS`.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) fd: OwnedFd,
    /// The expected length, rounded up to the huge page size for a
    /// hugetlb memfd (hugetlbfs mappings must cover whole huge pages, or
    /// `munmap` would fail). The file's size is at least this, and cannot
    /// shrink.
    pub(crate) map_len: usize,
    pub(crate) huge_page: Option<u64>,
}

/// What `/proc/self/fd/<fd>` links to, if procfs can tell.
///
/// The directory is opened per call (not cached), because `/proc/self`
/// resolves at open time and a cached handle would point at the parent
/// after a `fork`. We check that it really is procfs (`PROC_SUPER_MAGIC`),
/// so a directory mounted over `/proc` cannot lie to us.
fn proc_link(fd: BorrowedFd<'_>) -> Option<String> {
    let dir = open(
        "/proc/self/fd",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    if fstatfs(&dir).ok()?.f_type != PROC_SUPER_MAGIC {
        return None;
    }
    let link = readlinkat(&dir, fd.as_raw_fd().to_string().as_str(), Vec::new()).ok()?;
    Some(String::from_utf8_lossy(link.as_bytes()).into_owned())
}

fn not_memfd(fd: BorrowedFd<'_>, reason: NotMemfdReason) -> Error {
    Error::NotMemfd {
        reason,
        link: proc_link(fd),
    }
}

/// Refuses anything that is not a memfd.
///
/// How we tell, in order (each step is cheap, and each alone has a gap that
/// the others close):
///
/// 0. `F_GETFL`: it must not be an `O_PATH` descriptor. Such a descriptor
///    passes `fstat` and `fstatfs` like the file it names, but every call
///    that touches the file itself (`F_GET_SEALS`, `mmap`) fails with
///    `EBADF`, which would otherwise look like a failure of the system.
/// 1. `fstat`: it must be a regular file. This refuses pipes, sockets,
///    `/dev/zero` and other devices, directories.
/// 2. `F_GET_SEALS` must succeed. The kernel answers `EINVAL` for any file
///    that is not on tmpfs or hugetlbfs, so this refuses regular files on
///    disk filesystems.
/// 3. Its `/proc/self/fd` link must start with `/memfd:`. `memfd_create(2)`
///    documents that prefix as what the link shows; it is what tells a memfd
///    from a tmpfs file such as `/dev/shm/x` or an `O_TMPFILE` (which pass
///    steps 1 and 2: on Linux 6.18, `F_GET_SEALS` on them returns
///    `F_SEAL_SEAL`). A tmpfs file can only spoof the prefix if it sits at
///    `/memfd:*` in *our* root directory.
///
/// Safety never rests on step 3: if procfs is not mounted, step 3 is
/// skipped, and a tmpfs file is then refused as "cannot seal" by
/// [`ensure_seals`], because a tmpfs file is born with `F_SEAL_SEAL` and
/// so can never get `F_SEAL_SHRINK`.
pub(crate) fn check_memfd(fd: BorrowedFd<'_>) -> Result<MemfdInfo, Error> {
    let flags = fcntl_getfl(fd).map_err(Error::syscall("fcntl(F_GETFL)"))?;
    if flags.contains(OFlags::PATH) {
        return Err(not_memfd(fd, NotMemfdReason::PathOnly));
    }
    let st = fstat(fd).map_err(Error::syscall("fstat"))?;
    let file_type = FileType::from_raw_mode(st.st_mode);
    if file_type != FileType::RegularFile {
        return Err(not_memfd(fd, NotMemfdReason::NotRegularFile(file_type)));
    }
    let seals = match fcntl_get_seals(fd) {
        Ok(seals) => seals,
        Err(Errno::INVAL) => return Err(not_memfd(fd, NotMemfdReason::NoSealSupport)),
        Err(e) => return Err(Error::syscall("fcntl(F_GET_SEALS)")(e)),
    };
    if let Some(link) = proc_link(fd) {
        if !link.starts_with("/memfd:") {
            return Err(Error::NotMemfd {
                reason: NotMemfdReason::NotFromMemfdCreate,
                link: Some(link),
            });
        }
    }
    let fs = fstatfs(fd).map_err(Error::syscall("fstatfs"))?;
    // The magic numbers are 32-bit; `f_type` is wider on 64-bit targets
    // and signed on some, so compare the low 32 bits.
    let huge_page = match fs.f_type as u32 {
        TMPFS_MAGIC => None,
        HUGETLBFS_MAGIC => Some(fs.f_bsize as u64),
        // Seals work but the filesystem is neither: not a memfd we know.
        _ => return Err(not_memfd(fd, NotMemfdReason::NoSealSupport)),
    };
    Ok(MemfdInfo {
        seals,
        huge_page,
        access: flags & OFlags::RWMODE,
    })
}

/// Makes sure every seal in `required` is present, adding the missing ones.
///
/// Returns the seals present afterwards.
pub(crate) fn ensure_seals(
    fd: BorrowedFd<'_>,
    current: SealFlags,
    required: SealFlags,
) -> Result<SealFlags, Error> {
    let missing = required.difference(current);
    if missing.is_empty() {
        return Ok(current);
    }
    match fcntl_add_seals(fd, missing) {
        Ok(()) => {}
        // A writable shared mapping (or pinned pages) exists; only
        // `F_SEAL_WRITE` can fail this way.
        Err(source @ Errno::BUSY) => {
            return Err(Error::WriteSealBusy {
                seals: current,
                source,
            })
        }
        // `F_SEAL_SEAL` is set (memfd made without `MFD_ALLOW_SEALING`,
        // or sealed by the peer) or the descriptor is not writable.
        Err(source @ Errno::PERM) => {
            return Err(Error::CannotSeal {
                seals: current,
                missing,
                source,
            })
        }
        Err(e) => return Err(Error::syscall("fcntl(F_ADD_SEALS)")(e)),
    }
    let now = fcntl_get_seals(fd).map_err(Error::syscall("fcntl(F_GET_SEALS)"))?;
    debug_assert!(now.contains(required), "seals cannot be removed");
    Ok(now)
}

/// Refuses a length of zero or one that no file can have.
pub(crate) fn validate_len(len: usize) -> Result<(), Error> {
    if len == 0 {
        return Err(Error::InvalidLength {
            len: 0,
            reason: "a mapping cannot be empty",
        });
    }
    if i64::try_from(len).is_err() {
        return Err(Error::InvalidLength {
            len: len as u64,
            reason: "larger than a file offset",
        });
    }
    Ok(())
}

/// Rounds `len` up to a whole number of huge pages, if there are any.
pub(crate) fn round_up(len: usize, huge_page: Option<u64>) -> Result<usize, Error> {
    let Some(page) = huge_page else {
        return Ok(len);
    };
    let page = usize::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .ok_or(Error::Syscall {
            op: "fstatfs (huge page size is not a power of two)",
            source: Errno::INVAL,
        })?;
    let rounded =
        len.checked_add(page - 1)
            .map(|n| n & !(page - 1))
            .ok_or(Error::InvalidLength {
                len: len as u64,
                reason: "overflows when rounded up to the huge page size",
            })?;
    validate_len(rounded)?;
    Ok(rounded)
}

/// The size of the file, in bytes.
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> Result<u64, Error> {
    let st = fstat(fd).map_err(Error::syscall("fstat"))?;
    // A file size is never negative; treat a nonsense answer as 0 so it is
    // refused as too small.
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Who is opening a received memfd, which decides what is checked and
/// which seals are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opener {
    /// [`SharedMemory`](crate::SharedMemory): a read-write mapping.
    ReadWrite {
        /// Whether a hugetlb memfd is acceptable.
        allow_hugetlb: bool,
    },
    /// [`ReadOnlyMemory`](crate::ReadOnlyMemory): a read-only mapping of
    /// memory someone else may still write.
    ReadOnly,
    /// [`SealedBlob`](crate::SealedBlob): a read-only mapping of memory
    /// nobody can write.
    Blob,
    /// [`ReadOnlyMemory::open_write_sealed`](crate::ReadOnlyMemory::open_write_sealed):
    /// a read-only mapping of memory that only its creator can still
    /// write (`F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE` must be there
    /// already: we cannot add `F_SEAL_FUTURE_WRITE` for the creator).
    WriteSealed,
}

/// Seals that make a read-write mapping impossible.
const WRITE_SEALS: SealFlags = SealFlags::WRITE.union(SealFlags::FUTURE_WRITE);

impl Opener {
    /// The seals the memfd must carry before its size is read and it is
    /// mapped; missing ones are added in one `F_ADD_SEALS`.
    ///
    /// A read-write opener also freezes the seals (`F_SEAL_SEAL`): we read
    /// them, decide the memfd is writable, then map it, and without
    /// `F_SEAL_SEAL` the peer could add `F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE` in between, making our `mmap` fail with `EPERM`
    /// as if the system had refused. Read-only mappings are not affected by
    /// seals added later (on Linux 6.7 and later, which stopped counting a
    /// read-only `MAP_SHARED` mapping as writable), so the other openers
    /// leave the peer free to add seals, and accept read-only descriptors
    /// of memfds that lack `F_SEAL_SEAL` (through which no seal can be
    /// added).
    fn required_seals(self) -> SealFlags {
        match self {
            Opener::ReadWrite { .. } => SealFlags::SHRINK | SealFlags::SEAL,
            Opener::ReadOnly | Opener::WriteSealed => SealFlags::SHRINK,
            Opener::Blob => SealFlags::SHRINK | SealFlags::WRITE,
        }
    }
}

/// The whole receive path, in this order:
///
/// 1. the caller's length;
/// 2. is it a memfd ([`check_memfd`]);
/// 3. the descriptor's access mode (readable; writable for a read-write
///    opener) and, for a read-write opener, hugetlb and write seals: all
///    refusals that need no change to the peer's memfd;
/// 4. the seals the opener needs, added if missing;
/// 5. for a read-write opener, the write seals again: they are frozen now;
/// 6. only then the size.
///
/// Maps nothing. Every refusal caused by what the peer sent is an error
/// whose [`culprit`](Error::culprit) is the peer.
pub(crate) fn check_received(fd: OwnedFd, len: usize, opener: Opener) -> Result<Checked, Error> {
    validate_len(len)?;
    let info = check_memfd(fd.as_fd())?;
    if info.access == OFlags::WRONLY {
        return Err(Error::NotReadable);
    }
    match opener {
        Opener::ReadWrite { allow_hugetlb } => {
            if info.access != OFlags::RDWR {
                return Err(Error::NotWritable);
            }
            if let (Some(page_size), false) = (info.huge_page, allow_hugetlb) {
                return Err(Error::HugetlbRefused { page_size });
            }
            if info.seals.intersects(WRITE_SEALS) {
                return Err(Error::SealedAgainstWriting { seals: info.seals });
            }
        }
        // Write seals also forbid hole punching, which is what makes a
        // hugetlb memfd dangerous (see `SharedMemory::open`). Seals are
        // never removed, so what we read still holds.
        Opener::ReadOnly => {
            if let (Some(page_size), false) = (info.huge_page, info.seals.intersects(WRITE_SEALS)) {
                return Err(Error::HugetlbRefused { page_size });
            }
        }
        Opener::Blob => {}
        // Seals are never removed: what we read now holds for the life of
        // the memfd. A write seal also forbids hole punching, so a hugetlb
        // memfd is safe here.
        Opener::WriteSealed => {
            if !info.seals.intersects(WRITE_SEALS) {
                return Err(Error::NotWriteSealed { seals: info.seals });
            }
        }
    }
    let seals = ensure_seals(fd.as_fd(), info.seals, opener.required_seals())?;
    // The peer may have added a write seal after we first read the seals
    // and before our F_SEAL_SEAL went on; `seals` was read after that, so
    // for a read-write opener it is final.
    if matches!(opener, Opener::ReadWrite { .. }) && seals.intersects(WRITE_SEALS) {
        return Err(Error::SealedAgainstWriting { seals });
    }
    // Only now that the file cannot shrink does its size mean anything.
    let map_len = round_up(len, info.huge_page)?;
    let actual = file_size(fd.as_fd())?;
    if actual < map_len as u64 {
        return Err(Error::TooSmall {
            expected: map_len as u64,
            actual,
        });
    }
    Ok(Checked {
        fd,
        map_len,
        huge_page: info.huge_page,
    })
}
