//! Message rings: variable-size byte records over the same header, positions
//! and sleep/wake protocol as the element ring (header `kind` 2).
//!
//! The ring's capacity counts bytes. Each record is an 8-byte header word
//! (the payload length in its low half, a sequence *tag* in its high half)
//! followed by the payload, padded to a multiple of 8 bytes, so every
//! record and every payload starts 8-aligned. Records never wrap: when a
//! record does not fit before the end of the ring, a *skip marker* (a
//! header whose length is [`SKIP_MARKER`]) fills the tail and the record
//! starts at offset 0. `docs/LAYOUT.md` specifies the format for a peer in
//! another language.
//!
//! Layout version 2: the consumer does not wait for the producer's write
//! position, it waits for the next record's header word, which shares its
//! cache line with the start of the payload. The tag is the low 32 bits of
//! the record's position divided by 8, so a header written one lap earlier
//! at the same offset carries another tag. With every record the producer
//! also writes a *pending* word ([`PENDING_MARKER`] with the next
//! position's tag) where the next header will go, unless that word still
//! holds the oldest unreleased header (a ring filled to the last byte):
//! the consumer therefore finds at its position either that pending word,
//! the header of the previous lap, or the new header, and nothing else
//! from an honest producer. The argument is in `docs/LAYOUT.md`.
//!
//! Both halves wrap the element ring's halves over `u8` slots: the position
//! bookkeeping, its validation, the cached read position and the wait
//! words are the very same code. What this module adds is placement (skip
//! or not), the header words, and the validation of every header the peer
//! wrote: loaded once, tag checked, length checked against the maximum
//! message size and the end of the ring.

use core::fmt;

use crate::error::{Corruption, Field, LayoutError, SetupError};
use crate::layout::RingLayout;
use crate::producer::checked_shared;
use crate::region::{RawRegion, Shared};
use crate::sync::Ordering;

mod consumer;
mod producer;

pub use consumer::{MsgConsumer, Record};
pub use producer::{MsgProducer, Reservation};

/// `kind` of a ring of variable-size message records.
pub const KIND_MESSAGES: u32 = 2;

/// Size of a record header in bytes: one 8-byte word, the `u32` length in
/// its low half and the `u32` sequence tag in its high half.
pub const RECORD_HEADER: usize = 8;

/// Every record starts at a multiple of this many bytes from the data
/// area's start, and its size is a multiple of it.
pub const RECORD_ALIGN: usize = 8;

/// The length value that marks a skip: the rest of the ring up to its end
/// is padding, and the next record starts at offset 0.
pub const SKIP_MARKER: u32 = u32::MAX;

/// The length value of a *pending* word: no record has been written at
/// this position yet. The producer writes one (with the position's tag)
/// where the next record header will go.
pub const PENDING_MARKER: u32 = u32::MAX - 1;

/// The smallest capacity of a message ring, in bytes: room for two
/// records of an empty message.
pub const MIN_MSG_CAPACITY: usize = 2 * RECORD_HEADER;

/// The largest capacity of a message ring, in bytes (16 GiB): one lap
/// must change the 32-bit sequence tag, `capacity / 8 < 2^32`, so that a
/// header from the previous lap never carries the tag of the current one.
pub const MAX_MSG_CAPACITY: usize = 1 << 34;

/// The sequence tag of a record header at free-running byte position
/// `pos`: the low 32 bits of `pos / 8`. (Positions wrap modulo 2^64, and
/// 2^61 is a multiple of 2^32, so the tag wraps consistently with them.)
#[inline(always)]
pub(crate) const fn tag(pos: u64) -> u32 {
    (pos >> 3) as u32
}

/// The header word of a record of length `len` (or a marker) at `pos`.
#[inline(always)]
pub(crate) const fn header_word(pos: u64, len: u32) -> u64 {
    ((tag(pos) as u64) << 32) | len as u64
}

/// The pending word at `pos`: nothing written here yet.
#[inline(always)]
pub(crate) const fn pending_word(pos: u64) -> u64 {
    header_word(pos, PENDING_MARKER)
}

/// What a batch call ([`MsgConsumer::recv_many`],
/// [`MsgProducer::push_many`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use = "if `wake` is true, the peer is asleep and must be woken"]
pub struct Batch {
    /// The number of messages received (or sent).
    pub messages: usize,
    /// Whether the peer announced it sleeps and must be woken; the fence
    /// this needs was paid once for the whole batch.
    pub wake: bool,
}

/// `RECORD_HEADER` and `RECORD_ALIGN` in position arithmetic.
const HEADER: u64 = RECORD_HEADER as u64;
const ALIGN: u64 = RECORD_ALIGN as u64;

/// The number of ring bytes a record of `len` payload bytes occupies.
/// `len` fits in a `u32`, so this cannot overflow.
const fn record_size(len: u64) -> u64 {
    HEADER + ((len + ALIGN - 1) & !(ALIGN - 1))
}

/// The geometry of a message ring: capacity in bytes and maximum message
/// size, checked, and the region size they need.
///
/// The capacity is a power of two of at least [`MIN_MSG_CAPACITY`] bytes.
/// The largest record (header plus padded payload) must fit in half the
/// ring, so that a message of the maximum size can always be placed in an
/// empty ring, whatever the position: `max_msg <= capacity / 2 - 8`.
///
/// ```
/// use spsc_core::MsgLayout;
///
/// let layout = MsgLayout::new(4096, 1000)?;
/// assert_eq!(layout.region_size(), 512 + 4096);
/// assert_eq!(MsgLayout::max_msg_limit(4096), 2040);
/// assert!(MsgLayout::new(4096, 2041).is_err());
/// # Ok::<(), spsc_core::LayoutError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgLayout {
    ring: RingLayout,
    max_msg: usize,
}

impl MsgLayout {
    /// Checks the geometry of a ring of `capacity` bytes carrying messages
    /// of at most `max_msg` bytes.
    pub fn new(capacity: usize, max_msg: usize) -> Result<Self, LayoutError> {
        let ring = RingLayout::new::<u8>(capacity)?;
        if capacity > MAX_MSG_CAPACITY {
            return Err(LayoutError::MessageCapacityTooLarge {
                capacity,
                max: MAX_MSG_CAPACITY,
            });
        }
        if capacity < MIN_MSG_CAPACITY {
            return Err(LayoutError::MessageCapacityTooSmall {
                capacity,
                min: MIN_MSG_CAPACITY,
            });
        }
        let limit = Self::max_msg_limit(capacity);
        if max_msg > limit {
            return Err(LayoutError::MaxMessageTooLarge { max_msg, limit });
        }
        Ok(Self { ring, max_msg })
    }

    /// The largest maximum message size a ring of `capacity` bytes (a
    /// power of two, at least [`MIN_MSG_CAPACITY`]) allows: half the ring
    /// minus a record header, and below [`SKIP_MARKER`].
    ///
    /// ```
    /// assert_eq!(spsc_core::MsgLayout::max_msg_limit(16), 0);
    /// assert_eq!(spsc_core::MsgLayout::max_msg_limit(1 << 20), (1 << 19) - 8);
    /// ```
    pub const fn max_msg_limit(capacity: usize) -> usize {
        let half = (capacity / 2).saturating_sub(RECORD_HEADER);
        let below_marker = SKIP_MARKER as usize & !(RECORD_ALIGN - 1);
        if half < below_marker {
            half
        } else {
            below_marker
        }
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The maximum message size in bytes.
    pub fn max_msg(&self) -> usize {
        self.max_msg
    }

    /// The number of bytes the whole region needs: header plus data.
    pub fn region_size(&self) -> usize {
        self.ring.region_size()
    }

    /// The offset of the data area from the start of the region.
    pub fn data_offset(&self) -> usize {
        self.ring.data_offset()
    }
}

/// Checks the geometry and the region, then writes a fresh header
/// (`create`) or validates the creator's against what *we* expect: layout
/// version, kind, capacity, and the maximum message size (loaded once).
fn open(
    region: RawRegion,
    capacity: usize,
    max_msg: usize,
    create: bool,
) -> Result<Shared, SetupError> {
    let layout = MsgLayout::new(capacity, max_msg)?;
    let shared = checked_shared::<u8>(region, layout.capacity())?;
    // `MsgLayout` keeps `max_msg` below `SKIP_MARKER`.
    let max_msg = max_msg as u32;
    if create {
        // The first record goes at position 0: a pending word there, so
        // that whatever the data area held is never taken for a record.
        // Relaxed: the magic's Release store in `init_with` publishes it.
        // (Under loom, `init_with` builds the header words, so it comes
        // after.)
        #[cfg(not(loom))]
        shared
            .record_word(0)
            .store(pending_word(0), Ordering::Relaxed);
        shared.init_with(KIND_MESSAGES, 1, max_msg);
        #[cfg(loom)]
        shared
            .record_word(0)
            .store(pending_word(0), Ordering::Relaxed);
        return Ok(shared);
    }
    shared.validate(KIND_MESSAGES, 1)?;
    let found = shared.reserved();
    if found != max_msg {
        return Err(SetupError::MaxMessageMismatch {
            expected: max_msg,
            found,
        });
    }
    Ok(shared)
}

/// Checks at attach time that our own position, read back from the
/// header, is record-aligned: every record header we later touch lies at
/// that position plus multiples of 8, and must not straddle the ring's end.
fn check_aligned(own: u64, field: Field) -> Result<(), SetupError> {
    if own % ALIGN == 0 {
        return Ok(());
    }
    Err(SetupError::Corrupted(Corruption {
        field,
        seen: own,
        min: own & !(ALIGN - 1),
        max: own & !(ALIGN - 1),
    }))
}

/// Why [`MsgProducer::reserve`] or [`MsgProducer::push`] did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgPushError {
    /// Not enough contiguous room for the record yet.
    Full,
    /// The message is longer than the ring's maximum message size (our
    /// caller's error).
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The ring's maximum message size.
        max: usize,
    },
    /// The peer corrupted the ring.
    Corrupted(Corruption),
}

impl fmt::Display for MsgPushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("message ring is full"),
            Self::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} B exceeds the ring's maximum of {max} B"
                )
            }
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for MsgPushError {}

impl From<Corruption> for MsgPushError {
    fn from(c: Corruption) -> Self {
        Self::Corrupted(c)
    }
}

/// Why [`MsgConsumer::pop`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgPopError {
    /// The ring is empty.
    Empty,
    /// The next message is longer than the buffer; it stays in the ring.
    BufferTooSmall {
        /// The message's length.
        len: usize,
        /// The buffer's length.
        buf: usize,
    },
    /// The peer corrupted the ring.
    Corrupted(Corruption),
}

impl fmt::Display for MsgPopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("message ring is empty"),
            Self::BufferTooSmall { len, buf } => {
                write!(f, "message of {len} B does not fit a buffer of {buf} B")
            }
            Self::Corrupted(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for MsgPopError {}

impl From<Corruption> for MsgPopError {
    fn from(c: Corruption) -> Self {
        Self::Corrupted(c)
    }
}

/// Builds a region for a message ring over a leaked heap buffer, for the
/// examples in these docs. It expands in the caller's crate, which has
/// `std`.
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_msg_region {
    ($cap:expr, $max:expr) => {{
        let layout = $crate::MsgLayout::new($cap, $max).unwrap();
        let words = ::std::vec![0u128; layout.region_size().div_ceil(16)].leak();
        let ptr = ::core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer is leaked, so it outlives the handles, and it
        // is never accessed except through them.
        unsafe { $crate::RawRegion::new(ptr, layout.region_size()) }
    }};
}

/// Builds an in-process message pair over a leaked heap buffer, for the
/// examples in these docs.
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_msg_pair {
    ($cap:expr, $max:expr) => {{
        let region = $crate::__doc_msg_region!($cap, $max);
        (
            $crate::MsgProducer::create(region, $cap, $max).unwrap(),
            $crate::MsgConsumer::attach(region, $cap, $max).unwrap(),
        )
    }};
}
