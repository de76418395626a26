//! Layout v2 of the shared region. `docs/LAYOUT.md` at the top of the
//! repository is the normative description; this file must match it, and
//! the `static_assertions` below pin every offset so it cannot drift.
//!
//! All fields are in the native byte order of the machine (both processes
//! run on one machine); the magic detects a mismatch.

use core::mem::{align_of, size_of};

use crate::error::LayoutError;
use crate::sync::{AtomicU32, AtomicU64};

/// The first eight bytes of every ring: `"shrdring"` read as a
/// little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"shrdring");

/// The layout version this crate writes. It accepts this version, and
/// for rings of fixed-size elements (whose protocol version 2 did not
/// change) also [`VERSION_ELEMENTS_V1`].
pub const VERSION: u32 = 2;

/// The older layout version still accepted for rings of fixed-size
/// elements (`kind` 1): version 2 changed only the message ring's record
/// format, so a version-1 element ring is a valid version-2 one.
pub const VERSION_ELEMENTS_V1: u32 = 1;

/// `kind` of a ring of fixed-size elements.
pub const KIND_ELEMENTS: u32 = 1;

/// Offset of the data area from the start of the region, in bytes.
pub const DATA_OFFSET: usize = 512;

/// Offset of the producer's "closed" word in the header: a `u32` on the
/// producer's line, right after its write position. 0 while the stream
/// is open; the producer stores 1 (Release) after its last publication,
/// and a consumer that finds the ring empty takes any nonzero value as
/// the end of the stream (see [`Consumer::end_of_stream`](crate::Consumer::end_of_stream)).
/// It was padding before layout v2 was amended; the version stays 2.
pub const PRODUCER_CLOSED_OFFSET: usize = 136;

/// Offset of the inline copy's element count (`u32`), on the producer's
/// line: how many elements the inline copy holds. See [`INLINE_BYTES`].
pub const INLINE_COUNT_OFFSET: usize = 140;

/// Offset of the inline copy's tag (`u64`), on the producer's line: the
/// write position right after the elements of the inline copy.
pub const INLINE_END_OFFSET: usize = 144;

/// Offset of the inline copy's bytes, on the producer's line.
pub const INLINE_DATA_OFFSET: usize = 152;

/// The inline copy of an element ring (kind 1): a publication of at most
/// this many bytes may also be copied onto the producer's line, next to
/// the write position, so that a consumer that is caught up reads the
/// position and the elements from one cache line instead of two.
///
/// Optional on both sides (it lives in what was padding, zero at
/// creation): a producer that never writes it leaves the tag at 0, which
/// never matches a position a consumer reads from, and a consumer that
/// never reads it reads the slots as before. The slots stay the truth;
/// the copy is taken only if, around the copy, the tag equals the
/// position the consumer loaded and the count equals the elements it
/// takes (a sequence lock; `docs/LAYOUT.md`, "Element rings").
pub const INLINE_BYTES: usize = 40;

/// Offset of the consumer's sleeper-barrier declaration (`u32`), on the
/// wait words' line; [`PRODUCER_BARRIER_OFFSET`] is the producer's.
///
/// A side that stores [`SLEEPER_BARRIER`] in its own word promises to run
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after its fence and
/// before its re-check, every time it announces sleep. Its peer may then
/// skip the fence of its wake-up check, if the peer's process registered
/// with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`: the barrier makes the
/// peer's CPU pass a full fence instead. Zero at creation, so a peer that
/// never declares is always fenced for, and a peer that never reads the
/// declarations always fences (`docs/LAYOUT.md`, "Wake-ups").
pub const CONSUMER_BARRIER_OFFSET: usize = 392;

/// Offset of the producer's sleeper-barrier declaration (`u32`).
pub const PRODUCER_BARRIER_OFFSET: usize = 396;

/// The value of a sleeper-barrier declaration: "I run the barrier".
pub const SLEEPER_BARRIER: u32 = 1;

/// Size of one padded line of the header.
///
/// 128 bytes, not 64: Intel's L2 spatial prefetcher fetches cache lines in
/// aligned pairs, so two hot words 64 bytes apart still bounce between the
/// producer's and the consumer's cores (crossbeam's `CachePadded` makes the
/// same choice on x86-64). On aarch64 big cores the line itself is 128 bytes.
pub const LINE: usize = 128;

/// Capacity of the loom tracking table; loom models use rings at most
/// this big.
#[cfg(loom)]
pub(crate) const LOOM_SLOTS: usize = 4;

/// The header at the start of the region.
///
/// Never create a `&Header`: the peer may write any byte of it at any time,
/// and a shared reference would promise the padding does not change. Fields
/// are reached through raw pointer projection (see `Shared`), which yields
/// `&AtomicU64`/`&AtomicU32` only: interior mutability makes those sound.
#[repr(C, align(128))]
pub(crate) struct Header {
    // Line 0: written once by the creator before the peer attaches; read
    // once by the attaching side, validated, and copied into private memory.
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) kind: AtomicU32,
    pub(crate) elem_size: AtomicU32,
    pub(crate) reserved0: AtomicU32,
    pub(crate) capacity: AtomicU64,
    pub(crate) data_offset: AtomicU64,
    pub(crate) _pad0: [u8; LINE - 40],

    // Line 1: written only by the producer, on every publication (the
    // closed word once, after the last one).
    pub(crate) write_pos: AtomicU64,
    pub(crate) producer_closed: AtomicU32,
    // The inline copy (element rings; `INLINE_BYTES`), on the same 64-byte
    // line as the write position.
    pub(crate) inline_count: AtomicU32,
    pub(crate) inline_end: AtomicU64,
    #[cfg(not(loom))]
    pub(crate) inline_data: [u8; INLINE_BYTES],
    /// Loom only: the inline bytes as 4-byte atomics, so that the model
    /// checker sees every access of the sequence lock.
    #[cfg(loom)]
    pub(crate) inline_data: [AtomicU32; INLINE_BYTES / 4],
    #[cfg(not(loom))]
    pub(crate) _pad1: [u8; LINE - 64],

    // Line 2: written only by the consumer, on every release.
    pub(crate) read_pos: AtomicU64,
    pub(crate) _pad2: [u8; LINE - 8],

    // Line 3: the wait words, each written only by its owner and only when
    // it goes to sleep or wakes. They must not share a line with a
    // position: the peer loads the wait word after every publication, and
    // a line that its owner writes on every operation would then move
    // between the cores on every message. A line written this rarely stays
    // shared in both caches, so the loads cost nothing.
    pub(crate) consumer_wait: AtomicU32,
    pub(crate) producer_wait: AtomicU32,
    // Each side's declaration that it runs the sleeper's barrier before
    // every re-check (`SLEEPER_BARRIER`), written once by its owner: on
    // the wait words' line, which the waker loads anyway.
    pub(crate) consumer_barrier: AtomicU32,
    pub(crate) producer_barrier: AtomicU32,
    #[cfg(not(loom))]
    pub(crate) _pad3: [u8; LINE - 16],

    /// Loom only: one tracked cell per slot, so that the model checker
    /// sees every data access and reports any that is not ordered by the
    /// protocol (a stale read or an overwrite before a read).
    #[cfg(loom)]
    pub(crate) track: [loom::cell::UnsafeCell<()>; LOOM_SLOTS],

    /// Loom only: the 8-byte record header words of a message ring, one
    /// per 8-byte unit of the data area. In a real region they are the
    /// data area's own bytes, accessed as `AtomicU64`; loom needs its own
    /// atomics to model them. (Stale values survive here even where a
    /// real region would hold payload bytes: the model is, if anything,
    /// harsher about stale headers.)
    #[cfg(loom)]
    pub(crate) record_words: [AtomicU64; LOOM_SLOTS],
}

#[cfg(not(loom))]
mod pinned {
    use super::*;
    use core::mem::offset_of;
    use static_assertions::const_assert_eq;

    const_assert_eq!(offset_of!(Header, magic), 0);
    const_assert_eq!(offset_of!(Header, version), 8);
    const_assert_eq!(offset_of!(Header, kind), 12);
    const_assert_eq!(offset_of!(Header, elem_size), 16);
    const_assert_eq!(offset_of!(Header, reserved0), 20);
    const_assert_eq!(offset_of!(Header, capacity), 24);
    const_assert_eq!(offset_of!(Header, data_offset), 32);
    const_assert_eq!(offset_of!(Header, write_pos), 128);
    const_assert_eq!(offset_of!(Header, producer_closed), PRODUCER_CLOSED_OFFSET);
    const_assert_eq!(PRODUCER_CLOSED_OFFSET, 136);
    const_assert_eq!(offset_of!(Header, inline_count), INLINE_COUNT_OFFSET);
    const_assert_eq!(offset_of!(Header, inline_end), INLINE_END_OFFSET);
    const_assert_eq!(offset_of!(Header, inline_data), INLINE_DATA_OFFSET);
    // The inline copy shares the 64-byte line of the write position.
    const_assert_eq!(INLINE_DATA_OFFSET + INLINE_BYTES, 192);
    const_assert_eq!(offset_of!(Header, read_pos), 256);
    const_assert_eq!(offset_of!(Header, consumer_wait), 384);
    const_assert_eq!(offset_of!(Header, producer_wait), 388);
    const_assert_eq!(
        offset_of!(Header, consumer_barrier),
        CONSUMER_BARRIER_OFFSET
    );
    const_assert_eq!(
        offset_of!(Header, producer_barrier),
        PRODUCER_BARRIER_OFFSET
    );
    const_assert_eq!(size_of::<Header>(), DATA_OFFSET);
    const_assert_eq!(align_of::<Header>(), LINE);
    const_assert_eq!(DATA_OFFSET % LINE, 0);
}

/// Where the data area starts: the layout's offset, or (under loom, whose
/// atomics are bigger) just past the header.
pub(crate) const fn data_offset() -> usize {
    #[cfg(loom)]
    {
        size_of::<Header>().div_ceil(LINE) * LINE
    }
    #[cfg(not(loom))]
    {
        DATA_OFFSET
    }
}

/// The geometry of a ring of fixed-size elements: element size and
/// capacity, checked, and the region size they need.
///
/// ```
/// let layout = spsc_core::RingLayout::new::<u64>(1024)?;
/// assert_eq!(layout.capacity(), 1024);
/// assert_eq!(layout.region_size(), 512 + 1024 * 8);
/// # Ok::<(), spsc_core::LayoutError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    elem_size: usize,
    capacity: usize,
    region_size: usize,
}

impl RingLayout {
    /// Checks the geometry of a ring of `capacity` elements of type `T`.
    ///
    /// `capacity` must be a non-zero power of two, so that a position maps
    /// to a slot with a mask, and positions may wrap around `u64` freely.
    pub fn new<T>(capacity: usize) -> Result<Self, LayoutError> {
        let elem_size = size_of::<T>();
        if elem_size == 0 {
            return Err(LayoutError::ZeroSizedElement);
        }
        if u32::try_from(elem_size).is_err() {
            return Err(LayoutError::ElementTooLarge { size: elem_size });
        }
        if align_of::<T>() > LINE {
            return Err(LayoutError::AlignmentTooLarge {
                align: align_of::<T>(),
            });
        }
        if !capacity.is_power_of_two() {
            return Err(LayoutError::CapacityNotPowerOfTwo { capacity });
        }
        let region_size = capacity
            .checked_mul(elem_size)
            .and_then(|data| data.checked_add(data_offset()))
            // Keep every byte offset representable as an `isize`, as
            // pointer arithmetic requires.
            .filter(|&total| total <= isize::MAX as usize)
            .ok_or(LayoutError::TooLarge {
                capacity,
                elem_size,
            })?;
        Ok(Self {
            elem_size,
            capacity,
            region_size,
        })
    }

    /// The capacity in elements.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The size of one element in bytes.
    pub fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// The number of bytes the whole region needs: header plus data.
    pub fn region_size(&self) -> usize {
        self.region_size
    }

    /// The offset of the data area from the start of the region.
    pub fn data_offset(&self) -> usize {
        data_offset()
    }
}
