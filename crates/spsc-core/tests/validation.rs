//! A peer that lies in the header or in its published position: every lie
//! is caught at attach time or at the next refresh, named, and sticky.
//!
//! The peer's writes are done through the byte offsets of `docs/LAYOUT.md`,
//! as a peer written in another language would.

mod common;

use spsc_core::{
    Consumer, Corruption, Field, LayoutError, PopError, Producer, PushError, RawRegion, RingLayout,
    SetupError,
};

/// Writes a little-endian-native `u64` at `offset` of the region, as the
/// peer would.
fn poke64(region: RawRegion, offset: usize, value: u64) {
    // SAFETY: offsets used here are inside the header; the tests own the
    // buffer, and the handles only access it atomically or volatilely.
    unsafe { core::ptr::write_volatile(region.as_ptr().add(offset).cast::<u64>(), value) }
}

fn poke32(region: RawRegion, offset: usize, value: u32) {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::write_volatile(region.as_ptr().add(offset).cast::<u32>(), value) }
}

const WRITE_POS: usize = 128;
const READ_POS: usize = 256;
const INLINE_COUNT: usize = 140;
const INLINE_END: usize = 144;
const INLINE_DATA: usize = 152;
const DATA: usize = 512;

/// The consumer takes the producer's inline copy (on the write position's
/// line) only when its tag is the write position it loaded and its count
/// is what it takes; otherwise it reads the slots. The slots are made to
/// differ from the copy here, so each answer shows which one was read.
#[test]
fn the_inline_copy_is_taken_only_when_its_tag_and_count_match() {
    let mut buf = common::buffer_for::<u64>(8);
    let region = buf.region();
    let mut tx = Producer::<u64>::create(region, 8).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 8).unwrap();

    // The producer copies a small publication inline: tag, count, bytes.
    tx.push(7).unwrap();
    assert_eq!(peek64(region, INLINE_END), 1);
    assert_eq!(peek32(region, INLINE_COUNT), 1);
    assert_eq!(peek64(region, INLINE_DATA), 7);
    poke64(region, DATA, 99); // the slot says otherwise
    assert_eq!(rx.pop(), Ok(7), "taken from the inline copy");

    // A tag that is not the write position: the slot.
    tx.push(8).unwrap();
    poke64(region, INLINE_END, 0);
    poke64(region, INLINE_DATA, 55);
    assert_eq!(rx.pop(), Ok(8), "read from the slot");

    // A count that is not what the consumer takes: the slots.
    tx.push_slice(&[1, 2]).unwrap();
    assert_eq!(peek32(region, INLINE_COUNT), 2);
    poke32(region, INLINE_COUNT, u32::MAX);
    poke64(region, INLINE_DATA, 55);
    let mut two = [0u64; 2];
    assert_eq!(rx.pop_slice(&mut two), Ok(2));
    assert_eq!(two, [1, 2]);

    // Taking fewer than were published: the slots (the copy holds the
    // whole publication).
    tx.push_slice(&[3, 4]).unwrap();
    poke64(region, INLINE_DATA, 55);
    let mut one = [0u64; 1];
    assert_eq!(rx.pop_slice(&mut one), Ok(1));
    assert_eq!(one, [3]);
    assert_eq!(rx.pop_slice(&mut one), Ok(1));
    assert_eq!(one, [4]);

    // More than fits inline (6 x 8 > 40 bytes): no copy, the tag stays.
    tx.push_slice(&[10, 11, 12, 13, 14, 15]).unwrap();
    assert_eq!(peek64(region, INLINE_END), 6);
    let mut six = [0u64; 6];
    assert_eq!(rx.pop_slice(&mut six), Ok(6));
    assert_eq!(six, [10, 11, 12, 13, 14, 15]);
    assert_eq!(rx.corruption(), None);
}

/// A producer that never writes the inline copy (a peer written from the
/// layout before the copy existed, which left the words at zero): the
/// consumer reads the slots.
#[test]
fn a_producer_without_the_inline_copy_is_read_from_the_slots() {
    let mut buf = common::buffer_for::<u64>(8);
    let region = buf.region();
    let mut rx = Consumer::<u64>::create(region, 8).unwrap();
    for (i, v) in [5u64, 6, 7].into_iter().enumerate() {
        poke64(region, DATA + 8 * i, v);
        poke64(region, WRITE_POS, i as u64 + 1);
        assert_eq!(rx.pop(), Ok(v));
    }
    assert_eq!(peek64(region, INLINE_END), 0);
}

fn peek64(region: RawRegion, offset: usize) -> u64 {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u64>()) }
}

fn peek32(region: RawRegion, offset: usize) -> u32 {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u32>()) }
}

#[test]
fn layout_rejects_impossible_geometry() {
    assert_eq!(RingLayout::new::<()>(8), Err(LayoutError::ZeroSizedElement));
    assert_eq!(
        RingLayout::new::<u32>(0),
        Err(LayoutError::CapacityNotPowerOfTwo { capacity: 0 })
    );
    assert_eq!(
        RingLayout::new::<u32>(1000),
        Err(LayoutError::CapacityNotPowerOfTwo { capacity: 1000 })
    );
    assert!(matches!(
        RingLayout::new::<u64>(1 << 62),
        Err(LayoutError::TooLarge { .. })
    ));
}

#[test]
fn attach_rejects_each_wrong_header_field() {
    let mut buf = common::buffer_for::<u64>(16);
    let region = buf.region();
    let cases: [(usize, u64, bool, SetupError); 5] = [
        (
            0,
            0xdead_beef,
            false,
            SetupError::BadMagic { found: 0xdead_beef },
        ),
        (8, 3, true, SetupError::UnsupportedVersion { found: 3 }),
        (
            12,
            7,
            true,
            SetupError::WrongKind {
                expected: 1,
                found: 7,
            },
        ),
        (
            16,
            4,
            true,
            SetupError::ElementSizeMismatch {
                expected: 8,
                found: 4,
            },
        ),
        (
            32,
            384,
            false,
            SetupError::DataOffsetMismatch {
                expected: 512,
                found: 384,
            },
        ),
    ];
    for (offset, value, is32, expected) in cases {
        Producer::<u64>::create(region, 16).unwrap();
        if is32 {
            poke32(region, offset, value as u32);
        } else {
            poke64(region, offset, value);
        }
        assert_eq!(Consumer::<u64>::attach(region, 16).unwrap_err(), expected);
    }
    // Capacity: the header says 16, we expect 8.
    Producer::<u64>::create(region, 16).unwrap();
    assert_eq!(
        Consumer::<u64>::attach(region, 8).unwrap_err(),
        SetupError::CapacityMismatch {
            expected: 8,
            found: 16
        }
    );
    // A different element type of the same capacity.
    assert_eq!(
        Consumer::<u32>::attach(region, 16).unwrap_err(),
        SetupError::ElementSizeMismatch {
            expected: 4,
            found: 8
        }
    );
}

#[test]
fn attach_rejects_a_region_too_small_or_misaligned() {
    let mut buf = common::buffer_for::<u64>(16);
    let region = buf.region();
    let needed = RingLayout::new::<u64>(16).unwrap().region_size();
    // SAFETY: a prefix of a valid region is valid.
    let short = unsafe {
        RawRegion::new(
            core::ptr::NonNull::new(region.as_ptr()).unwrap(),
            needed - 1,
        )
    };
    assert_eq!(
        Consumer::<u64>::attach(short, 16).unwrap_err(),
        SetupError::RegionTooSmall {
            needed,
            len: needed - 1
        }
    );
    // SAFETY: one byte in, still inside the buffer (which has guard lines).
    let skewed = unsafe {
        RawRegion::new(
            core::ptr::NonNull::new(region.as_ptr().add(4)).unwrap(),
            needed,
        )
    };
    assert!(matches!(
        Producer::<u64>::create(skewed, 16),
        Err(SetupError::Misaligned { required: 8, .. })
    ));
}

#[test]
fn attach_rejects_inconsistent_positions() {
    let mut buf = common::buffer_for::<u32>(8);
    let region = buf.region();
    Producer::<u32>::create(region, 8).unwrap();
    poke64(region, WRITE_POS, 100);
    poke64(region, READ_POS, 91); // 9 ahead of a capacity of 8
    assert!(matches!(
        Consumer::<u32>::attach(region, 8).unwrap_err(),
        SetupError::Corrupted(Corruption {
            field: Field::WritePosition,
            seen: 100,
            ..
        })
    ));
    assert!(matches!(
        Producer::<u32>::attach(region, 8).unwrap_err(),
        SetupError::Corrupted(Corruption {
            field: Field::ReadPosition,
            seen: 91,
            ..
        })
    ));
    // A consistent pair far into the counter's range is fine (wrapping).
    poke64(region, WRITE_POS, 3);
    poke64(region, READ_POS, u64::MAX - 2);
    let mut rx = Consumer::<u32>::attach(region, 8).unwrap();
    assert_eq!(rx.slots().unwrap(), 6);
}

#[test]
fn consumer_rejects_write_position_beyond_capacity() {
    let mut buf = common::buffer_for::<u64>(8);
    let region = buf.region();
    let _tx = Producer::<u64>::create(region, 8).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 8).unwrap();
    poke64(region, WRITE_POS, 9);
    let expected = Corruption {
        field: Field::WritePosition,
        seen: 9,
        min: 0,
        max: 8,
    };
    assert_eq!(rx.pop(), Err(PopError::Corrupted(expected)));
    // Sticky: even after the peer "repairs" the word.
    poke64(region, WRITE_POS, 0);
    assert_eq!(rx.pop(), Err(PopError::Corrupted(expected)));
    assert_eq!(rx.pop_slice(&mut [0; 4]), Err(expected));
    assert_eq!(rx.read_chunk(4).unwrap_err(), expected);
    assert_eq!(rx.prepare_wait().unwrap_err(), expected);
    assert_eq!(rx.corruption(), Some(expected));
}

#[test]
fn consumer_rejects_write_position_moving_backwards() {
    let mut buf = common::buffer_for::<u64>(8);
    let region = buf.region();
    let mut tx = Producer::<u64>::create(region, 8).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 8).unwrap();
    tx.push_slice(&[1, 2, 3, 4]).unwrap();
    assert_eq!(rx.pop(), Ok(1));
    // Consumer has seen write = 4 and read 1; the peer now claims 2.
    poke64(region, WRITE_POS, 2);
    let mut out = [0u64; 8];
    // Three are still cached: they come out without a refresh.
    assert_eq!(rx.pop_slice(&mut out[..3]), Ok(3));
    assert_eq!(
        rx.pop(),
        Err(PopError::Corrupted(Corruption {
            field: Field::WritePosition,
            seen: 2,
            min: 4,
            max: 12
        }))
    );
}

#[test]
fn producer_rejects_read_position_beyond_write_or_backwards() {
    let mut buf = common::buffer_for::<u16>(4);
    let region = buf.region();
    let mut tx = Producer::<u16>::create(region, 4).unwrap();
    let _rx = Consumer::<u16>::attach(region, 4).unwrap();
    assert_eq!(tx.push_slice(&[1, 2, 3, 4]), Ok(4));
    // The consumer claims to have read 5 of 4 written.
    poke64(region, READ_POS, 5);
    let expected = Corruption {
        field: Field::ReadPosition,
        seen: 5,
        min: 0,
        max: 4,
    };
    assert_eq!(tx.push(9), Err(PushError::Corrupted(expected)));
    assert_eq!(tx.write_chunk(1).unwrap_err(), expected);
    assert_eq!(tx.slots(), Err(expected));

    let mut buf = common::buffer_for::<u16>(4);
    let region = buf.region();
    let mut tx = Producer::<u16>::create(region, 4).unwrap();
    let mut rx = Consumer::<u16>::attach(region, 4).unwrap();
    tx.push_slice(&[1, 2, 3, 4]).unwrap();
    rx.pop_slice(&mut [0; 2]).unwrap();
    assert_eq!(tx.push_slice(&[5]), Ok(1)); // refreshed: read = 2
    poke64(region, READ_POS, 1); // backwards
    assert_eq!(
        tx.push_slice(&[6, 7]),
        Err(Corruption {
            field: Field::ReadPosition,
            seen: 1,
            min: 2,
            max: 5
        })
    );
}

#[test]
fn corruption_errors_name_the_field_and_values() {
    let c = Corruption {
        field: Field::WritePosition,
        seen: 99,
        min: 4,
        max: 12,
    };
    let text = c.to_string();
    assert!(text.contains("write position"), "{text}");
    assert!(text.contains("99") && text.contains("4..=12"), "{text}");
    let e = SetupError::CapacityMismatch {
        expected: 8,
        found: 16,
    };
    assert!(e.to_string().contains("16") && e.to_string().contains('8'));
}
