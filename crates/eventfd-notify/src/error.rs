//! The one error type of this crate.

use std::fmt;
use std::io;

use rustix::io::Errno;

/// What a descriptor handed over as an eventfd really was.
///
/// Each kind is its own variant so that a caller (and a test) can tell a
/// peer that sent a pipe from one that sent a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotEventfd {
    /// A pipe or FIFO (`S_IFIFO`).
    Pipe,
    /// A socket of any family (`S_IFSOCK`).
    Socket,
    /// A memfd (a regular file whose `/proc/self/fd` link reads `/memfd:…`).
    Memfd,
    /// A regular file, with the path the kernel reports for it.
    RegularFile {
        /// What `/proc/self/fd/N` links to.
        path: String,
    },
    /// A directory.
    Directory,
    /// A character or block device.
    Device,
    /// Some other anonymous inode (timerfd, signalfd, epoll, pidfd, …): the
    /// bracketed name of `anon_inode:[name]`.
    OtherAnonInode {
        /// The anon inode's name, e.g. `timerfd`.
        name: String,
    },
    /// An `O_PATH` descriptor (of an eventfd or of anything else): it names
    /// a file but allows no I/O, so it can neither be read nor registered
    /// with io_uring (`EBADF`).
    PathOnly {
        /// What `/proc/self/fd/N` links to.
        link: String,
    },
    /// Anything else, with what `/proc/self/fd/N` links to.
    Other {
        /// What `/proc/self/fd/N` links to.
        link: String,
    },
}

impl fmt::Display for NotEventfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pipe => f.write_str("a pipe"),
            Self::Socket => f.write_str("a socket"),
            Self::Memfd => f.write_str("a memfd"),
            Self::RegularFile { path } => write!(f, "a regular file ({path})"),
            Self::Directory => f.write_str("a directory"),
            Self::Device => f.write_str("a device node"),
            Self::OtherAnonInode { name } => write!(f, "an anonymous inode of kind {name}"),
            Self::PathOnly { link } => {
                write!(f, "an O_PATH descriptor, which allows no I/O ({link})")
            }
            Self::Other { link } => write!(f, "something else ({link})"),
        }
    }
}

/// Everything that can go wrong in this crate.
///
/// Each variant says who is at fault: the peer (it handed us a wrong
/// descriptor), our caller (a bad liveness descriptor), or the kernel or
/// environment (a syscall failed; the errno is kept, never hidden).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer (or whoever handed us the descriptor) gave us something that
    /// is not an eventfd.
    NotAnEventfd(NotEventfd),
    /// The peer gave us an eventfd created with `EFD_SEMAPHORE`. Each read
    /// of such an eventfd consumes only 1 from the counter, so a peer that
    /// writes `0xfffffffffffffffe` once would keep every later wait returning
    /// "woken" at once: a busy loop it could impose on us. Refused.
    SemaphoreEventfd,
    /// We could not inspect a received descriptor through `/proc/self`
    /// (not mounted, or not readable): the environment's fault.
    Inspect {
        /// The `/proc` path we tried to read.
        path: String,
        /// The error from reading it.
        source: io::Error,
    },
    /// The liveness descriptor our caller passed to a wait is not open
    /// (`POLLNVAL`): the caller's fault.
    InvalidLiveness,
    /// A system call failed for a reason not listed above. `op` names it,
    /// `source` is what the kernel said (its errno). The same shape as
    /// `shmem_seal::Error::Syscall`.
    Syscall {
        /// The operation that failed, e.g. `"eventfd"` or `"poll"`.
        op: &'static str,
        /// The kernel's error (`raw_os_error` is the errno).
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn syscall(op: &'static str) -> impl FnOnce(Errno) -> Self {
        move |errno| Self::Syscall {
            op,
            source: errno.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnEventfd(kind) => {
                write!(
                    f,
                    "the peer handed over {kind} where an eventfd was expected"
                )
            }
            Self::SemaphoreEventfd => f.write_str(
                "the peer handed over an eventfd in semaphore mode (EFD_SEMAPHORE), \
                 which it could use to keep us busy-waiting",
            ),
            Self::Inspect { path, source: _ } => {
                write!(f, "cannot inspect a received descriptor through {path}")
            }
            Self::InvalidLiveness => {
                f.write_str("the liveness descriptor passed by the caller is not open (POLLNVAL)")
            }
            Self::Syscall { op, source: _ } => write!(f, "the kernel failed {op}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Inspect { source, .. } => Some(source),
            Self::Syscall { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Syscall { source, .. } => source,
            Error::Inspect { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_repeats_the_source() {
        let errors = [
            Error::Syscall {
                op: "poll",
                source: Errno::NOMEM.into(),
            },
            Error::Inspect {
                path: "/proc/self/fd/3".into(),
                source: io::Error::from_raw_os_error(Errno::NOENT.raw_os_error()),
            },
        ];
        for e in errors {
            let src = std::error::Error::source(&e)
                .expect("has a source")
                .to_string();
            let msg = e.to_string();
            let bare = src.split(" (os error").next().unwrap();
            assert!(!msg.contains(bare), "{msg:?} repeats its source {src:?}");
        }
    }
}
