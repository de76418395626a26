//! Errors: who did what wrong, with the values seen.

use core::fmt;

/// A ring geometry that the caller asked for and that cannot exist.
///
/// These are errors of *our caller*, found before any shared memory is
/// touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The element type has size zero; a ring of nothing is not supported.
    ZeroSizedElement,
    /// The element type is larger than the layout can describe (4 GiB).
    ElementTooLarge {
        /// Size of the element type in bytes.
        size: usize,
    },
    /// The element type needs an alignment above the 128 bytes the data
    /// area is aligned to.
    AlignmentTooLarge {
        /// Alignment of the element type in bytes.
        align: usize,
    },
    /// The capacity is zero or not a power of two.
    CapacityNotPowerOfTwo {
        /// The capacity asked for, in elements.
        capacity: usize,
    },
    /// `capacity * element size` plus the header does not fit in `usize`.
    TooLarge {
        /// The capacity asked for, in elements.
        capacity: usize,
        /// Size of the element type in bytes.
        elem_size: usize,
    },
    /// A message ring's capacity is below the smallest one the record
    /// format supports.
    MessageCapacityTooSmall {
        /// The capacity asked for, in bytes.
        capacity: usize,
        /// The smallest capacity, in bytes.
        min: usize,
    },
    /// A message ring's maximum message size is above what its capacity
    /// allows (a largest record must fit in half the ring).
    MaxMessageTooLarge {
        /// The maximum message size asked for, in bytes.
        max_msg: usize,
        /// The largest allowed for this capacity, in bytes.
        limit: usize,
    },
    /// A message ring's capacity is above the largest one whose record
    /// sequence tags tell one lap from the next (16 GiB).
    MessageCapacityTooLarge {
        /// The capacity asked for, in bytes.
        capacity: usize,
        /// The largest capacity, in bytes.
        max: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ZeroSizedElement => f.write_str("zero-sized element types are not supported"),
            Self::ElementTooLarge { size } => {
                write!(f, "element size {size} B exceeds the layout's 4 GiB limit")
            }
            Self::AlignmentTooLarge { align } => {
                write!(
                    f,
                    "element alignment {align} B exceeds the data area's 128 B alignment"
                )
            }
            Self::CapacityNotPowerOfTwo { capacity } => {
                write!(f, "capacity {capacity} is not a non-zero power of two")
            }
            Self::TooLarge {
                capacity,
                elem_size,
            } => write!(
                f,
                "a ring of {capacity} elements of {elem_size} B does not fit in the address space"
            ),
            Self::MessageCapacityTooSmall { capacity, min } => {
                write!(
                    f,
                    "message ring capacity {capacity} B is below the minimum of {min} B"
                )
            }
            Self::MaxMessageTooLarge { max_msg, limit } => write!(
                f,
                "maximum message size {max_msg} B exceeds the limit of {limit} B for this capacity"
            ),
            Self::MessageCapacityTooLarge { capacity, max } => write!(
                f,
                "message ring capacity {capacity} B exceeds the maximum of {max} B"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// Which shared control word a peer corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// The producer's published write position.
    WritePosition,
    /// The consumer's published read position.
    ReadPosition,
    /// The length in a message record's header (message rings): above the
    /// maximum message size, or beyond the published bytes or the end of
    /// the ring. `seen` is the length, `max` the largest valid one there.
    RecordLength,
    /// A skip marker (message rings) whose skipped tail is not followed by
    /// a published record header. `seen` is the number of bytes it would
    /// skip (the whole ring for a marker at offset 0).
    SkipMarker,
    /// The sequence tag in a message record's header (message rings,
    /// layout version 2): neither the tag of the position we read at (the
    /// low 32 bits of `position / 8`) nor the previous lap's. `seen` is the
    /// tag found, `min` and `max` the tag expected.
    RecordSequence,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WritePosition => "write position",
            Self::ReadPosition => "read position",
            Self::RecordLength => "record length",
            Self::SkipMarker => "skip marker",
            Self::RecordSequence => "record sequence tag",
        })
    }
}

/// The peer broke the protocol: a position it published is impossible.
///
/// Positions are free-running `u64` counters (wrapping); the valid range is
/// given in the same coordinates. Once a handle has reported a corruption
/// it reports the same corruption on every later call: a peer caught
/// cheating is treated as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// The control word that holds an impossible value.
    pub field: Field,
    /// The value loaded from shared memory.
    pub seen: u64,
    /// The lowest value that would have been valid.
    pub min: u64,
    /// The highest value that would have been valid.
    pub max: u64,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer corrupted the shared {}: saw {}, valid range is {}..={} (wrapping)",
            self.field, self.seen, self.min, self.max
        )
    }
}

impl core::error::Error for Corruption {}

/// Why a ring could not be created in, or attached to, a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// The geometry we asked for is impossible (our caller's error).
    Layout(LayoutError),
    /// The region is shorter than the layout needs (our caller's error).
    RegionTooSmall {
        /// Bytes the layout needs.
        needed: usize,
        /// Bytes the region has.
        len: usize,
    },
    /// The region's address is not aligned enough (our caller's error).
    Misaligned {
        /// The region's address.
        addr: usize,
        /// The alignment it needs.
        required: usize,
    },
    /// The header does not start with the ring magic: not a ring, or one
    /// in another byte order (the peer's error).
    BadMagic {
        /// The value found.
        found: u64,
    },
    /// The header's layout version is not one we speak (the peer's error).
    UnsupportedVersion {
        /// The value found.
        found: u32,
    },
    /// The header describes another kind of ring (the peer's error).
    WrongKind {
        /// The kind we expected.
        expected: u32,
        /// The kind found.
        found: u32,
    },
    /// The header's element size differs from our element type's (the
    /// peer's error).
    ElementSizeMismatch {
        /// Size of our element type.
        expected: u32,
        /// Size found in the header.
        found: u32,
    },
    /// The header's capacity differs from the one we expect (the peer's
    /// error).
    CapacityMismatch {
        /// Capacity we expect.
        expected: u64,
        /// Capacity found in the header.
        found: u64,
    },
    /// The header's data offset is not the layout's (the peer's error).
    DataOffsetMismatch {
        /// Offset the layout prescribes.
        expected: u64,
        /// Offset found in the header.
        found: u64,
    },
    /// The header's maximum message size (message rings) differs from the
    /// one we expect (the peer's error).
    MaxMessageMismatch {
        /// Maximum message size we expect, in bytes.
        expected: u32,
        /// Maximum message size found in the header, in bytes.
        found: u32,
    },
    /// The published positions are inconsistent (the peer's error).
    Corrupted(Corruption),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Layout(e) => write!(f, "invalid ring layout: {e}"),
            Self::RegionTooSmall { needed, len } => {
                write!(
                    f,
                    "region of {len} B is smaller than the {needed} B the ring needs"
                )
            }
            Self::Misaligned { addr, required } => {
                write!(f, "region address {addr:#x} is not aligned to {required} B")
            }
            Self::BadMagic { found } => {
                write!(
                    f,
                    "peer's header has magic {found:#018x}, not a sharedring ring"
                )
            }
            Self::UnsupportedVersion { found } => {
                write!(
                    f,
                    "peer's header has layout version {found}, we speak version {} \
                     (and {} for element rings)",
                    crate::layout::VERSION,
                    crate::layout::VERSION_ELEMENTS_V1
                )
            }
            Self::WrongKind { expected, found } => {
                write!(
                    f,
                    "peer's header is a ring of kind {found}, expected kind {expected}"
                )
            }
            Self::ElementSizeMismatch { expected, found } => write!(
                f,
                "peer's header has element size {found} B, our element type has {expected} B"
            ),
            Self::CapacityMismatch { expected, found } => {
                write!(f, "peer's header has capacity {found}, expected {expected}")
            }
            Self::DataOffsetMismatch { expected, found } => {
                write!(
                    f,
                    "peer's header has data offset {found}, the layout requires {expected}"
                )
            }
            Self::MaxMessageMismatch { expected, found } => write!(
                f,
                "peer's header has maximum message size {found} B, expected {expected} B"
            ),
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Layout(e) => Some(e),
            Self::Corrupted(c) => Some(c),
            _ => None,
        }
    }
}

impl From<LayoutError> for SetupError {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<Corruption> for SetupError {
    fn from(c: Corruption) -> Self {
        Self::Corrupted(c)
    }
}

/// Why [`Producer::push`](crate::Producer::push) did not push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// The ring is full; the value is handed back.
    Full(T),
    /// The peer corrupted the ring. The value was not pushed; element
    /// types are plain data, so nothing is lost but the bytes.
    Corrupted(Corruption),
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("ring is full"),
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl<T: fmt::Debug> core::error::Error for PushError<T> {}

/// Why [`Consumer::pop`](crate::Consumer::pop) returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopError {
    /// The ring is empty.
    Empty,
    /// The peer corrupted the ring.
    Corrupted(Corruption),
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring is empty"),
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for PopError {}
