//! The broadcast ends' one error type.

use std::fmt;
use std::io;

use spsc_core::broadcast::{BcastCorruption, BcastLayoutError, BcastSetupError};

/// Everything that can go wrong with a [`Publisher`](super::Publisher) or
/// a [`Subscriber`](super::Subscriber).
#[derive(Debug)]
#[non_exhaustive]
pub enum BroadcastError {
    /// Nothing new to read (non-blocking calls only).
    Empty,
    /// The publisher overwrote `missed` messages before this subscriber
    /// read them (lossy mode, or a subscriber the reliable publisher
    /// dropped); the next read returns the oldest message still intact.
    Lagged {
        /// How many messages were lost.
        missed: u64,
    },
    /// The publisher closed the stream and every message was read.
    Closed,
    /// The other side is gone: the publisher died (or dropped this
    /// subscriber), as its socket hung up.
    PeerGone,
    /// A blocking call's timeout passed.
    TimedOut,
    /// The message is larger than the ring's maximum message size.
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The next message is larger than the buffer given; it was not
    /// consumed.
    BufferTooSmall {
        /// The message's length.
        needed: usize,
    },
    /// A typed subscriber got a message whose length is not its type's
    /// size: the publisher broke the contract.
    WrongSize {
        /// The type's size.
        expected: usize,
        /// The message's length.
        found: usize,
    },
    /// The publisher broke the ring's protocol; this subscriber treats it
    /// as gone from now on.
    Corrupted(BcastCorruption),
    /// The publisher's offer does not match what we accept: names the
    /// field, what we expected or allow, and what was offered.
    Refused {
        /// The setup message field, as in `docs/LAYOUT.md` ("Broadcast rings").
        field: &'static str,
        /// What we expected (or the most we accept).
        expected: u64,
        /// What the publisher sent.
        found: u64,
    },
    /// The publisher's offer came with the wrong number of descriptors.
    DescriptorCount {
        /// How many the protocol sends.
        expected: usize,
        /// How many arrived.
        got: usize,
    },
    /// The handshake did not complete within its deadline.
    HandshakeTimedOut,
    /// The publisher leaves the wake-up ordering to its sleeping
    /// subscribers (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`), which
    /// this process cannot call (Linux before 4.16, or a seccomp filter).
    SleeperBarrierUnavailable,
    /// Our caller asked for an impossible geometry.
    Layout(BcastLayoutError),
    /// The ring's header did not match (see [`BcastSetupError`]).
    Setup(BcastSetupError),
    /// Creating, checking or mapping shared memory failed; a memfd without
    /// `F_SEAL_FUTURE_WRITE` is
    /// [`shmem_seal::Error::NotWriteSealed`](crate::shmem_seal::Error::NotWriteSealed).
    Memory(shmem_seal::Error),
    /// Creating or checking an eventfd failed.
    Eventfd(eventfd_notify::Error),
    /// A socket or other system call failed.
    Io(io::Error),
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no new message"),
            Self::Lagged { missed } => write!(
                f,
                "this subscriber fell behind and lost {missed} messages; reading resumes at \
                 the oldest one still in the ring (read faster, or ask for more slots)"
            ),
            Self::Closed => f.write_str("the publisher closed the broadcast"),
            Self::PeerGone => f.write_str(
                "the publisher is gone (it exited, or dropped this subscriber for lagging)",
            ),
            Self::TimedOut => f.write_str("timed out"),
            Self::MessageTooLarge { len, max } => write!(
                f,
                "message of {len} B exceeds the maximum message size of {max} B \
                 (BroadcastOptions::max_msg)"
            ),
            Self::BufferTooSmall { needed } => write!(
                f,
                "the next message is {needed} B, larger than the buffer given; pass a buffer of \
                 at least max_msg() bytes"
            ),
            Self::WrongSize { expected, found } => write!(
                f,
                "publisher sent a {found} B message to a typed subscriber of a {expected} B type"
            ),
            Self::Corrupted(c) => write!(f, "{c}"),
            Self::Refused {
                field,
                expected,
                found,
            } => write!(
                f,
                "refused the publisher's offer: {field} is {found}, expected {expected} \
                 (check both sides' options and types)"
            ),
            Self::DescriptorCount { expected, got } => write!(
                f,
                "publisher's offer came with {got} descriptors, the protocol sends {expected}"
            ),
            Self::HandshakeTimedOut => {
                f.write_str("the broadcast handshake did not complete within its deadline")
            }
            Self::SleeperBarrierUnavailable => f.write_str(
                "the publisher leaves wake-up ordering to its subscribers, which must call \
                 membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), and this process cannot (Linux \
                 before 4.16, or a seccomp filter refuses it): allow membarrier here, or create \
                 the publisher with BroadcastOptions::publisher_fence(true)",
            ),
            Self::Layout(e) => write!(f, "{e}"),
            Self::Setup(e) => write!(f, "{e}"),
            Self::Memory(e) => write!(f, "{e}"),
            Self::Eventfd(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BroadcastError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Corrupted(e) => Some(e),
            Self::Layout(e) => Some(e),
            Self::Setup(e) => Some(e),
            Self::Memory(e) => Some(e),
            Self::Eventfd(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for BroadcastError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<rustix::io::Errno> for BroadcastError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

impl From<shmem_seal::Error> for BroadcastError {
    fn from(e: shmem_seal::Error) -> Self {
        Self::Memory(e)
    }
}

impl From<eventfd_notify::Error> for BroadcastError {
    fn from(e: eventfd_notify::Error) -> Self {
        Self::Eventfd(e)
    }
}

impl From<BcastLayoutError> for BroadcastError {
    fn from(e: BcastLayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<BcastSetupError> for BroadcastError {
    fn from(e: BcastSetupError) -> Self {
        Self::Setup(e)
    }
}
