//! Shared memory that a hostile peer cannot use against us.
//!
//! Two processes that do not trust each other share memory through a
//! memfd. This crate makes that safe for the honest side:
//!
//! - **Creating**: [`SharedMemory::create`] and [`MemfdBuilder`] make a
//!   close-on-exec, non-executable memfd, map it, and seal it against
//!   shrinking, growing and further sealing (the builder chooses the seals,
//!   huge pages and `mlock`).
//! - **Receiving**: [`SharedMemory::open`], [`ReadOnlyMemory::open`] and
//!   [`SealedBlob::open`] take a descriptor from the peer and check, in
//!   this order, that it *is* a memfd, that the descriptor allows the
//!   mapping we want, that it is sealed against shrinking (adding the seal
//!   if the peer left it out; a read-write opener also adds `F_SEAL_SEAL`,
//!   so the peer cannot seal the memory against writing behind our back),
//!   and only then that it is big enough, before mapping exactly the length
//!   *we* expect. A small memfd is an [`Error::TooSmall`], never a
//!   `SIGBUS`; anything wrong with what the peer sent is an error whose
//!   [`Error::culprit`] is [`Culprit::Peer`].
//! - **Write-once blobs**: [`SealedBlob::write_once`] fills memory through
//!   a private `&mut [u8]` and seals it against writing; receivers get a
//!   `&[u8]`, which is sound because nobody can write it any more.
//!
//! Memory the peer can write is never exposed as `&[u8]` or `&mut [u8]`:
//! [`SharedMemory`] and [`ReadOnlyMemory`] hand out raw pointers and
//! volatile, bounds-checked copies. Every refusal is an [`Error`] that
//! names what was wrong (the sizes or seals seen) and, through
//! [`Error::culprit`], who did it.
//!
//! ```
//! use shmem_seal::{Culprit, Error, SharedMemory};
//! use std::os::fd::{AsFd, OwnedFd};
//!
//! // The creating side: 64 KiB, sealed, mapped.
//! let mine = SharedMemory::create("ring", 64 * 1024)?;
//! mine.write_at(0, b"hi")?;
//!
//! // The receiving side validates before it maps.
//! let received: OwnedFd = mine.as_fd().try_clone_to_owned().unwrap();
//! let theirs = SharedMemory::open(received, 64 * 1024)?;
//! let mut buf = [0u8; 2];
//! theirs.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hi");
//!
//! // Expecting more than the peer gave is refused, not a crash.
//! let received = mine.as_fd().try_clone_to_owned().unwrap();
//! match SharedMemory::open(received, 1 << 20) {
//!     Err(e @ Error::TooSmall { expected: 1048576, actual: 65536 }) => {
//!         assert_eq!(e.culprit(), Culprit::Peer)
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), shmem_seal::Error>(())
//! ```
//!
//! # Linux facts this crate relies on
//!
//! Checked on Linux 6.18:
//!
//! - `F_GET_SEALS` answers `EINVAL` for anything not on tmpfs or
//!   hugetlbfs (disk files, pipes, sockets, `/dev/zero`). For a tmpfs file
//!   that is not a memfd (`/dev/shm/x`, `O_TMPFILE`) it answers
//!   `F_SEAL_SEAL`, as for a memfd made without `MFD_ALLOW_SEALING`; the
//!   `/proc/self/fd` link (`/memfd:name (deleted)`) tells them apart.
//! - `F_ADD_SEALS` answers `EPERM` when `F_SEAL_SEAL` is set *or* when the
//!   descriptor is not open for writing, and `EBUSY` for `F_SEAL_WRITE`
//!   while a writable shared mapping exists.
//! - An `O_PATH` descriptor of a memfd (opened through `/proc/<pid>/fd`)
//!   passes `fstat` and `fstatfs`, but `F_GET_SEALS` answers `EBADF`; a
//!   write-only one takes seals, but `mmap` answers `EACCES`. Both are
//!   refused before any of that, from `F_GETFL`.
//! - A read-write `mmap` of a memfd sealed with `F_SEAL_WRITE` or
//!   `F_SEAL_FUTURE_WRITE` fails with `EPERM`; a read-only `MAP_SHARED`
//!   one succeeds (since Linux 6.7; before, `F_SEAL_WRITE` refused it too).
//! - With no huge pages reserved, `memfd_create(MFD_HUGETLB)` and
//!   `ftruncate` succeed and `mmap` fails with `ENOMEM`; a page size with
//!   no hugetlbfs mount fails `memfd_create` with `ENODEV`; `ftruncate` to
//!   a length that is not a whole number of huge pages fails with `EINVAL`.
//! - A hole punched (`fallocate(FALLOC_FL_PUNCH_HOLE)`) in a hugetlb memfd
//!   that is sealed only against resizing raises `SIGBUS` in every process
//!   that touches it while the huge page pool is empty. Hence
//!   [`SharedMemory::open`] refuses hugetlb memfds unless asked
//!   ([`SharedMemory::open_allowing_hugetlb`]); write seals forbid hole
//!   punching, so [`SealedBlob`] and a write-sealed [`ReadOnlyMemory`]
//!   accept them.
//!
//! # References
//!
//! - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
//! - [`fcntl(2)`, file seals](https://man7.org/linux/man-pages/man2/fcntl.2.html)

#![deny(missing_docs, missing_debug_implementations)]

mod blob;
mod check;
mod create;
mod error;
mod shared;

pub use blob::SealedBlob;
pub use create::{HugePageSize, MemfdBuilder};
pub use error::{Culprit, Error, NotMemfdReason};
pub use shared::{ReadOnlyMemory, SharedMapping, SharedMemory};

/// Re-exported so callers name seals and memfd flags with the same types
/// as this crate: [`SealFlags`](rustix::fs::SealFlags),
/// [`MemfdFlags`](rustix::fs::MemfdFlags).
pub use rustix;
