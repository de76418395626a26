//! The broadcast ring's shared layout, version 1. `docs/LAYOUT.md` ("Broadcast rings")
//! at the top of the repository is the normative description; the
//! constants here must match it.
//!
//! Two kinds of region:
//!
//! - the **data region**, written only by the publisher and mapped
//!   read-only by every subscriber (the kernel enforces it with
//!   `F_SEAL_FUTURE_WRITE`): a header line, the `head` line, the wake line,
//!   then `slots` fixed-size slots;
//! - one **control region** per subscriber, shared only between the
//!   publisher and that subscriber, which the subscriber writes (its
//!   cursor and its wait word) and the publisher only reads.
//!
//! All integers are native-endian; the magic detects a mismatch.

use super::error::BcastLayoutError;

/// The first eight bytes of a broadcast data region: `"shrdbcst"` read as
/// a little-endian `u64`.
pub const BCAST_MAGIC: u64 = u64::from_le_bytes(*b"shrdbcst");
/// The layout version this crate writes and accepts.
pub const BCAST_VERSION: u32 = 1;
/// `kind` of a broadcast ring (element rings are 1, message rings 2).
pub const KIND_BROADCAST: u32 = 3;

/// Offsets in the data region's header line (line 0).
pub mod header {
    /// `u64` magic, [`BCAST_MAGIC`](super::BCAST_MAGIC).
    pub const MAGIC: usize = 0;
    /// `u32` layout version, [`BCAST_VERSION`](super::BCAST_VERSION).
    pub const VERSION: usize = 8;
    /// `u32` kind, [`KIND_BROADCAST`](super::KIND_BROADCAST).
    pub const KIND: usize = 12;
    /// `u32` number of slots, a power of two.
    pub const SLOTS: usize = 16;
    /// `u32` bytes from one slot to the next.
    pub const SLOT_SIZE: usize = 20;
    /// `u32` largest payload of one message, in bytes.
    pub const MAX_MSG: usize = 24;
    /// `u32` flags: [`FLAG_SLEEPER_BARRIER`] or zero; any other bit is
    /// refused.
    pub const FLAGS: usize = 28;
    /// Flag bit 0: the publisher does not fence between storing the head
    /// and loading the wait words; a subscriber about to sleep must run
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after its own fence
    /// and before re-checking the head (the publisher's process registered
    /// for it before setting this bit). See `docs/LAYOUT.md`, "Sleeping
    /// and waking".
    pub const FLAG_SLEEPER_BARRIER: u32 = 1;
    /// `u64` offset of slot 0 from the start of the region,
    /// [`DATA_OFFSET`](super::BCAST_DATA_OFFSET).
    pub const DATA_OFFSET: usize = 32;
    /// `u64` head: the number of messages published so far (the sequence
    /// number of the next one). Alone in line 1.
    pub const HEAD: usize = 128;
    /// `u32` wake word (a futex word): the publisher adds one before each
    /// wake-up. Line 2.
    pub const WAKE: usize = 256;
    /// `u32` closed flag: 1 once the publisher has published its last
    /// message. Line 2.
    pub const CLOSED: usize = 260;
}

/// Offsets inside one slot.
pub mod slot {
    /// `u64` stamp: `2s+1` while message `s` is being written, `2s+2` once
    /// it is complete, 0 before any message used the slot.
    pub const STAMP: usize = 0;
    /// `u32` payload length in bytes.
    pub const LEN: usize = 8;
    /// First payload byte (the 4 bytes at 12 are zero).
    pub const PAYLOAD: usize = 16;
}

/// Offsets in a subscriber's control region.
pub mod control {
    /// `u64` cursor: the sequence number of the next message the
    /// subscriber will read. Written by the subscriber.
    pub const CURSOR: usize = 0;
    /// `u32` wait word: bit 0 "asleep or about to be", bits 1.. an
    /// announcement counter; bit 31 is reserved (0). Written by the
    /// subscriber. In a line of its own, apart from the cursor that the
    /// subscriber stores on every message: the publisher loads this word
    /// after every publication, and it stays a cache hit while the
    /// subscriber does not sleep.
    pub const WAIT: usize = 128;
    /// `u32` which wake-up the sleeper waits for: 0 the futex word, 1 the
    /// shared eventfd. Written by the subscriber.
    pub const WAIT_HOW: usize = 132;
    /// Size of the control region.
    pub const SIZE: usize = 256;
}

/// Offset of slot 0 from the start of the data region.
pub const BCAST_DATA_OFFSET: usize = 384;
/// Slots are a multiple of this many bytes apart, so that two slots never
/// share a cache line.
pub const SLOT_ALIGN: usize = 64;
/// The most slots a ring may have (2^24).
pub const MAX_SLOTS: usize = 1 << 24;
/// The largest message (16 MiB).
pub const MAX_BCAST_MSG: usize = 1 << 24;

/// The geometry of a broadcast ring: how many slots, of what size.
///
/// Both sides compute it from the two numbers they agreed on (slot count
/// and maximum message size), never from the peer's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BcastLayout {
    slots: usize,
    max_msg: usize,
    slot_size: usize,
}

impl BcastLayout {
    /// A ring of `slots` slots (a power of two, 2 to 2^24) for messages
    /// of up to `max_msg` bytes (1 to 16 MiB).
    pub fn new(slots: usize, max_msg: usize) -> Result<Self, BcastLayoutError> {
        if !slots.is_power_of_two() || !(2..=MAX_SLOTS).contains(&slots) {
            return Err(BcastLayoutError::Slots { slots });
        }
        if max_msg == 0 || max_msg > MAX_BCAST_MSG {
            return Err(BcastLayoutError::MaxMessage { max_msg });
        }
        let slot_size = (slot::PAYLOAD + max_msg).div_ceil(SLOT_ALIGN) * SLOT_ALIGN;
        // At most 2^24 * (2^24 + 64) bytes: fits in a 64-bit usize; refuse
        // on smaller targets.
        if slot_size
            .checked_mul(slots)
            .and_then(|n| n.checked_add(BCAST_DATA_OFFSET))
            .is_none()
        {
            return Err(BcastLayoutError::TooLarge { slots, max_msg });
        }
        Ok(Self {
            slots,
            max_msg,
            slot_size,
        })
    }

    /// Number of slots: how many messages the ring holds.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Largest payload of one message, in bytes.
    pub fn max_msg(&self) -> usize {
        self.max_msg
    }

    /// Bytes from one slot to the next.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Bytes the data region needs.
    pub fn region_size(&self) -> usize {
        let size = BCAST_DATA_OFFSET + self.slots * self.slot_size;
        #[cfg(loom)]
        let size = size.max(128 + core::mem::size_of::<super::view::LoomRegion>());
        size
    }
}

// Pinned against the tables of `docs/LAYOUT.md` ("Broadcast rings"): changing any of
// these is a layout change (new version, new history entry).
static_assertions::const_assert_eq!(BCAST_MAGIC, 0x7473_6362_6472_6873);
static_assertions::const_assert_eq!(BCAST_VERSION, 1);
static_assertions::const_assert_eq!(KIND_BROADCAST, 3);
static_assertions::const_assert_eq!(header::MAGIC, 0);
static_assertions::const_assert_eq!(header::VERSION, 8);
static_assertions::const_assert_eq!(header::KIND, 12);
static_assertions::const_assert_eq!(header::SLOTS, 16);
static_assertions::const_assert_eq!(header::SLOT_SIZE, 20);
static_assertions::const_assert_eq!(header::MAX_MSG, 24);
static_assertions::const_assert_eq!(header::FLAGS, 28);
static_assertions::const_assert_eq!(header::DATA_OFFSET, 32);
static_assertions::const_assert_eq!(header::HEAD, 128);
static_assertions::const_assert_eq!(header::WAKE, 256);
static_assertions::const_assert_eq!(header::CLOSED, 260);
static_assertions::const_assert_eq!(BCAST_DATA_OFFSET, 384);
static_assertions::const_assert_eq!(slot::STAMP, 0);
static_assertions::const_assert_eq!(slot::LEN, 8);
static_assertions::const_assert_eq!(slot::PAYLOAD, 16);
static_assertions::const_assert_eq!(SLOT_ALIGN, 64);
static_assertions::const_assert_eq!(control::CURSOR, 0);
static_assertions::const_assert_eq!(control::WAIT, 128);
static_assertions::const_assert_eq!(control::WAIT_HOW, 132);
static_assertions::const_assert_eq!(control::SIZE, 256);
