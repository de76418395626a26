//! The one error type of this crate, and who is to blame for each case.

use std::fmt;
use std::io;

use rustix::fs::{FileType, SealFlags};
use rustix::io::Errno;

/// Who caused an [`Error`].
///
/// A peer caught sending something wrong should be treated as gone (see the
/// threat model): nothing it says afterwards can be trusted. A caller error
/// is a bug on our side of the socket; a system error is the kernel or a
/// resource limit saying no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    /// Our own caller asked for something impossible.
    Caller,
    /// The peer that sent the descriptor.
    Peer,
    /// The kernel or a resource limit (memory, locked-memory limit, huge
    /// pages) refused.
    System,
}

/// Why a received descriptor is not a memfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotMemfdReason {
    /// Not a regular file at all: a pipe (`Fifo`), a socket, a device such
    /// as `/dev/zero` (`CharacterDevice`), a directory.
    NotRegularFile(FileType),
    /// A regular file on a filesystem without seals (`F_GET_SEALS` fails
    /// with `EINVAL`): ext4, xfs, btrfs and the like.
    NoSealSupport,
    /// A file on tmpfs (or hugetlbfs) that was not made by
    /// `memfd_create`, for example `/dev/shm/x` or an `O_TMPFILE`: its
    /// `/proc/self/fd` link does not start with `/memfd:`.
    NotFromMemfdCreate,
    /// An `O_PATH` descriptor: it names a file (perhaps a memfd) but allows
    /// no I/O, no seals and no mapping (`F_GET_SEALS` fails with `EBADF`).
    PathOnly,
}

/// Everything that can go wrong in this crate.
///
/// Each variant says what went wrong; [`Error::culprit`] says who did it.
/// Kernel error numbers are kept as the [`source`](std::error::Error::source)
/// (an [`Errno`] or an [`io::Error`]), never replaced by a string.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Our caller asked for a length this crate cannot provide (zero, or
    /// more than a file offset can hold).
    InvalidLength {
        /// The length asked for, in bytes.
        len: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Our caller gave a memfd name the kernel would refuse.
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Our caller asked the builder for seals it cannot honour (for
    /// example `F_SEAL_WRITE` on a memory the caller wants to keep writing).
    InvalidSeals {
        /// The seals asked for.
        seals: SealFlags,
        /// Why they are refused.
        reason: &'static str,
    },
    /// Our caller asked to copy outside the mapping.
    OutOfBounds {
        /// Start of the requested range.
        offset: usize,
        /// Length of the requested range.
        len: usize,
        /// Length of the mapping.
        size: usize,
    },
    /// The peer sent a descriptor that is not a memfd.
    NotMemfd {
        /// Which check failed.
        reason: NotMemfdReason,
        /// What `/proc/self/fd` says the descriptor is (`pipe:[1234]`,
        /// `/dev/zero`, `/tmp/file`), when procfs could tell.
        link: Option<String>,
    },
    /// The peer sent a memfd that lacks seals we need, and they cannot be
    /// added: it was created without `MFD_ALLOW_SEALING`, or already carries
    /// `F_SEAL_SEAL`, or was reopened read-only (the kernel answers `EPERM`).
    CannotSeal {
        /// The seals present on the memfd.
        seals: SealFlags,
        /// The seals we needed and tried to add.
        missing: SealFlags,
        /// The kernel's answer to `F_ADD_SEALS`.
        source: Errno,
    },
    /// `F_SEAL_WRITE` could not be added because someone (normally the
    /// peer) still holds a writable shared mapping of the memfd, or has its
    /// pages pinned for I/O (the kernel answers `EBUSY`).
    WriteSealBusy {
        /// The seals present on the memfd.
        seals: SealFlags,
        /// The kernel's answer to `F_ADD_SEALS`.
        source: Errno,
    },
    /// The peer sent a memfd, sealed against shrinking, that is smaller
    /// than the length we expect. Nothing was mapped.
    TooSmall {
        /// The length we need, in bytes (rounded up to the huge page size
        /// for a hugetlb memfd).
        expected: u64,
        /// The size of the memfd, in bytes.
        actual: u64,
    },
    /// The peer sent a memfd sealed against writing (`F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE`) where a writable one was expected. Open it
    /// with [`ReadOnlyMemory::open`](crate::ReadOnlyMemory::open) or
    /// [`SealedBlob::open`](crate::SealedBlob::open) instead.
    SealedAgainstWriting {
        /// The seals present on the memfd.
        seals: SealFlags,
    },
    /// The peer sent a memfd that is *not* sealed against writing
    /// (`F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE`) where we rely on nobody
    /// but its creator being able to write it (see
    /// [`ReadOnlyMemory::open_write_sealed`](crate::ReadOnlyMemory::open_write_sealed)):
    /// anyone else holding the descriptor could write it. The creator must
    /// seal it with `F_SEAL_FUTURE_WRITE` before sending it, for example with
    /// [`MemfdBuilder::read_only_for_peers`](crate::MemfdBuilder::read_only_for_peers).
    NotWriteSealed {
        /// The seals present on the memfd.
        seals: SealFlags,
    },
    /// The peer sent a hugetlb memfd that is not sealed against writing,
    /// to an opener that does not accept that risk: anyone holding the
    /// descriptor can punch a hole in it (`fallocate`), and if the huge
    /// page pool is empty when we next touch that hole, the kernel raises
    /// `SIGBUS`. See [`SharedMemory::open_allowing_hugetlb`](crate::SharedMemory::open_allowing_hugetlb).
    HugetlbRefused {
        /// The memfd's huge page size, in bytes.
        page_size: u64,
    },
    /// The peer sent a descriptor opened without write access where a
    /// writable one was expected.
    NotWritable,
    /// The peer sent a descriptor opened write-only (`O_WRONLY`, for example
    /// a memfd reopened through `/proc/<pid>/fd`): it cannot be mapped at
    /// all, since every mapping needs read access (`mmap` would fail with
    /// `EACCES`).
    NotReadable,
    /// The kernel has no huge pages of the requested size to give: none
    /// configured (`HugePages_Total: 0`), none free, or no hugetlbfs mount
    /// for that page size.
    HugePagesUnavailable {
        /// The huge page size asked for, in bytes (0: the kernel's default
        /// size, when even that could not be learned).
        page_size: u64,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `mlock` of the mapping failed, usually because of
    /// `RLIMIT_MEMLOCK` (`ulimit -l`).
    Lock {
        /// The length that was to be locked, in bytes.
        len: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `mmap` failed.
    Map {
        /// The length that was to be mapped, in bytes.
        len: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Another system call failed.
    Syscall {
        /// The call that failed, e.g. `"memfd_create"`.
        op: &'static str,
        /// The kernel's answer.
        source: Errno,
    },
}

impl Error {
    /// Who is to blame for this error.
    ///
    /// ```
    /// use shmem_seal::{Culprit, Error};
    ///
    /// let e = Error::TooSmall { expected: 4096, actual: 0 };
    /// assert_eq!(e.culprit(), Culprit::Peer);
    /// ```
    pub fn culprit(&self) -> Culprit {
        match self {
            Error::InvalidLength { .. }
            | Error::InvalidName { .. }
            | Error::InvalidSeals { .. }
            | Error::OutOfBounds { .. } => Culprit::Caller,
            Error::NotMemfd { .. }
            | Error::CannotSeal { .. }
            | Error::WriteSealBusy { .. }
            | Error::TooSmall { .. }
            | Error::SealedAgainstWriting { .. }
            | Error::NotWriteSealed { .. }
            | Error::HugetlbRefused { .. }
            | Error::NotWritable
            | Error::NotReadable => Culprit::Peer,
            Error::HugePagesUnavailable { .. }
            | Error::Lock { .. }
            | Error::Map { .. }
            | Error::Syscall { .. } => Culprit::System,
        }
    }

    pub(crate) fn syscall(op: &'static str) -> impl FnOnce(Errno) -> Error {
        move |source| Error::Syscall { op, source }
    }
}

impl fmt::Display for NotMemfdReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotMemfdReason::NotRegularFile(t) => {
                let what = match t {
                    FileType::Fifo => "a pipe or FIFO",
                    FileType::Socket => "a socket",
                    FileType::CharacterDevice => "a character device",
                    FileType::BlockDevice => "a block device",
                    FileType::Directory => "a directory",
                    FileType::Symlink => "a symbolic link",
                    _ => "not a regular file",
                };
                f.write_str(what)
            }
            NotMemfdReason::NoSealSupport => {
                f.write_str("a regular file on a filesystem without seals")
            }
            NotMemfdReason::NotFromMemfdCreate => {
                f.write_str("a tmpfs file not created by memfd_create")
            }
            NotMemfdReason::PathOnly => {
                f.write_str("an O_PATH descriptor, which allows no I/O, seals or mapping")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidLength { len, reason } => {
                write!(
                    f,
                    "caller asked for an invalid length of {len} bytes: {reason}"
                )
            }
            Error::InvalidName { name, reason } => {
                write!(f, "caller gave an invalid memfd name {name:?}: {reason}")
            }
            Error::InvalidSeals { seals, reason } => {
                write!(f, "caller asked for seals {seals:?}: {reason}")
            }
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "caller asked for {len} bytes at offset {offset} of a {size}-byte mapping"
            ),
            Error::NotMemfd { reason, link } => {
                write!(f, "peer sent a descriptor that is not a memfd: {reason}")?;
                if let Some(link) = link {
                    write!(f, " ({link})")?;
                }
                Ok(())
            }
            Error::CannotSeal {
                seals,
                missing,
                source: _,
            } => write!(
                f,
                "peer sent a memfd that cannot be sealed: it has seals {seals:?} and \
                 the kernel refused to add {missing:?} (created without \
                 MFD_ALLOW_SEALING, already sealed with F_SEAL_SEAL, or not open \
                 for writing)"
            ),
            Error::WriteSealBusy { seals, source: _ } => write!(
                f,
                "cannot seal the peer's memfd against writing: someone still holds \
                 a writable mapping of it (seals {seals:?})"
            ),
            Error::TooSmall { expected, actual } => write!(
                f,
                "peer sent a memfd too small: {actual} bytes, expected at least {expected}"
            ),
            Error::NotWriteSealed { seals } => write!(
                f,
                "peer sent a memfd that is not sealed against writing (seals {seals:?}), so \
                 others holding it could write it; its creator must add F_SEAL_FUTURE_WRITE \
                 before sending it (MemfdBuilder::read_only_for_peers)"
            ),
            Error::SealedAgainstWriting { seals } => write!(
                f,
                "peer sent a memfd sealed against writing ({seals:?}) where a writable \
                 one was expected"
            ),
            Error::HugetlbRefused { page_size } => write!(
                f,
                "peer sent a hugetlb memfd ({page_size}-byte pages) not sealed against \
                 writing: a hole it punches could raise SIGBUS when the huge page pool \
                 is empty"
            ),
            Error::NotWritable => f.write_str(
                "peer sent a descriptor without write access where a writable one was expected",
            ),
            Error::NotReadable => {
                f.write_str("peer sent a write-only descriptor, which cannot be mapped")
            }
            Error::HugePagesUnavailable {
                page_size,
                source: _,
            } => {
                if *page_size == 0 {
                    f.write_str("no huge pages of the default size available")
                } else {
                    write!(
                        f,
                        "no huge pages of {page_size} bytes available; \
                         see HugePages_Total in /proc/meminfo"
                    )
                }
            }
            Error::Lock { len, source: _ } => {
                write!(f, "cannot mlock {len} bytes; check ulimit -l")
            }
            Error::Map { len, source: _ } => write!(f, "cannot map {len} bytes"),
            Error::Syscall { op, source: _ } => write!(f, "{op} failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CannotSeal { source, .. }
            | Error::WriteSealBusy { source, .. }
            | Error::Syscall { source, .. } => Some(source),
            Error::HugePagesUnavailable { source, .. }
            | Error::Lock { source, .. }
            | Error::Map { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// Takes the [`io::ErrorKind`] of the kernel's error number where
    /// there is one, `InvalidData` for a peer's fault and `InvalidInput` for
    /// a caller's; the [`Error`] itself (and its errno) stays reachable
    /// through [`io::Error::get_ref`].
    fn from(e: Error) -> io::Error {
        let errno = match &e {
            Error::CannotSeal { source, .. }
            | Error::WriteSealBusy { source, .. }
            | Error::Syscall { source, .. } => Some(source.raw_os_error()),
            Error::HugePagesUnavailable { source, .. }
            | Error::Lock { source, .. }
            | Error::Map { source, .. } => source.raw_os_error(),
            _ => None,
        };
        let kind = match (errno, e.culprit()) {
            (Some(n), _) => io::Error::from_raw_os_error(n).kind(),
            (None, Culprit::Caller) => io::ErrorKind::InvalidInput,
            (None, _) => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
