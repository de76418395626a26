//! The broadcast ring's errors.

use core::fmt;

/// A broadcast geometry that cannot exist (our caller's error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BcastLayoutError {
    /// The slot count is not a power of two between 2 and 2^24.
    Slots {
        /// The slot count asked for.
        slots: usize,
    },
    /// The maximum message size is 0 or above 16 MiB.
    MaxMessage {
        /// The maximum message size asked for, in bytes.
        max_msg: usize,
    },
    /// The region would not fit in the address space.
    TooLarge {
        /// The slot count asked for.
        slots: usize,
        /// The maximum message size asked for, in bytes.
        max_msg: usize,
    },
}

impl fmt::Display for BcastLayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Slots { slots } => write!(
                f,
                "broadcast slot count {slots} is not a power of two between 2 and {}",
                super::layout::MAX_SLOTS
            ),
            Self::MaxMessage { max_msg } => write!(
                f,
                "broadcast maximum message size {max_msg} B is not between 1 B and {} B",
                super::layout::MAX_BCAST_MSG
            ),
            Self::TooLarge { slots, max_msg } => write!(
                f,
                "a broadcast ring of {slots} slots of {max_msg} B does not fit in the address space"
            ),
        }
    }
}

impl core::error::Error for BcastLayoutError {}

/// Why a broadcast ring could not be created in, or attached to, a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BcastSetupError {
    /// The geometry asked for is impossible (our caller's error).
    Layout(BcastLayoutError),
    /// The region is shorter than the layout needs (our caller's error).
    RegionTooSmall {
        /// Bytes the layout needs.
        needed: usize,
        /// Bytes the region has.
        len: usize,
    },
    /// The region's address is not 64-byte aligned (our caller's error).
    Misaligned {
        /// The region's address.
        addr: usize,
    },
    /// A header field differs from what we expect (the publisher's error,
    /// or a mismatch between the two sides' settings).
    HeaderMismatch {
        /// The field's name, as in `docs/LAYOUT.md` ("Broadcast rings").
        field: &'static str,
        /// The value we expect.
        expected: u64,
        /// The value found.
        found: u64,
    },
}

impl fmt::Display for BcastSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Layout(e) => write!(f, "invalid broadcast layout: {e}"),
            Self::RegionTooSmall { needed, len } => write!(
                f,
                "region of {len} B is smaller than the {needed} B the broadcast ring needs"
            ),
            Self::Misaligned { addr } => {
                write!(f, "region address {addr:#x} is not aligned to 64 B")
            }
            Self::HeaderMismatch {
                field,
                expected,
                found,
            } => write!(
                f,
                "publisher's broadcast header has {field} = {found:#x}, expected {expected:#x}"
            ),
        }
    }
}

impl core::error::Error for BcastSetupError {}

impl From<BcastLayoutError> for BcastSetupError {
    fn from(e: BcastLayoutError) -> Self {
        Self::Layout(e)
    }
}

/// The publisher broke the protocol: what it wrote is impossible for an
/// honest publisher. The subscriber that sees one reports it on every later
/// call (a publisher caught lying is treated as gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BcastCorruption {
    /// `head` went backwards.
    HeadBackwards {
        /// The head seen now.
        seen: u64,
        /// The head seen before.
        before: u64,
    },
    /// A slot the published head covers carries a stamp older than the
    /// message it should hold (or one marked as still being written).
    StaleStamp {
        /// The message's sequence number.
        seq: u64,
        /// The stamp seen.
        stamp: u64,
    },
    /// A complete message's length is above the maximum message size.
    Length {
        /// The message's sequence number.
        seq: u64,
        /// The length seen.
        len: u32,
        /// The maximum message size.
        max: u32,
    },
}

impl fmt::Display for BcastCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HeadBackwards { seen, before } => write!(
                f,
                "publisher corrupted the broadcast head: it went back from {before} to {seen}"
            ),
            Self::StaleStamp { seq, stamp } => write!(
                f,
                "publisher corrupted the broadcast ring: message {seq} is published but its \
                 slot's stamp is {stamp}, expected at least {}",
                seq.wrapping_mul(2).wrapping_add(2)
            ),
            Self::Length { seq, len, max } => write!(
                f,
                "publisher corrupted the broadcast ring: message {seq} has length {len} B, \
                 above the maximum of {max} B"
            ),
        }
    }
}

impl core::error::Error for BcastCorruption {}

/// Why [`BcastSubscriber::try_recv`](super::BcastSubscriber::try_recv)
/// returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BcastRecvError {
    /// Nothing new has been published.
    Empty,
    /// The publisher overwrote `missed` messages before we read them; the
    /// next call returns the oldest message still intact.
    Lagged {
        /// How many messages were lost.
        missed: u64,
    },
    /// The publisher closed the ring and every message has been read.
    Closed,
    /// The next message is `needed` bytes, more than the buffer holds. It
    /// is not consumed: call again with a larger buffer.
    BufferTooSmall {
        /// The message's length in bytes.
        needed: usize,
    },
    /// The publisher broke the protocol (see [`BcastCorruption`]).
    Corrupted(BcastCorruption),
}

impl fmt::Display for BcastRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("no new message"),
            Self::Lagged { missed } => write!(
                f,
                "fell behind: the publisher overwrote {missed} messages before they were read"
            ),
            Self::Closed => f.write_str("the publisher closed the broadcast ring"),
            Self::BufferTooSmall { needed } => write!(
                f,
                "the next message is {needed} B, larger than the buffer; call again with a \
                 buffer of at least the maximum message size"
            ),
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for BcastRecvError {}

/// Why [`BcastPublisher::publish`](super::BcastPublisher::publish) did not
/// publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BcastPublishError {
    /// The message is longer than the ring's maximum message size.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The maximum message size in bytes.
        max: usize,
    },
    /// The ring was closed with [`close`](super::BcastPublisher::close).
    Closed,
}

impl fmt::Display for BcastPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooLarge { len, max } => write!(
                f,
                "message of {len} B exceeds the broadcast ring's maximum message size of {max} B"
            ),
            Self::Closed => f.write_str("the broadcast ring is closed"),
        }
    }
}

impl core::error::Error for BcastPublishError {}
