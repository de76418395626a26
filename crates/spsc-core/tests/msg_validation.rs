//! A message-ring peer that writes records and positions by hand, through
//! the byte offsets of `docs/LAYOUT.md`, as a peer in C would: honest
//! records (with a skip marker) are read back exactly; every lie (a bad
//! record length, a bad skip marker, an odd position, a header that does
//! not match) is caught, named, and sticky.

mod common;

use spsc_core::{
    Consumer, Corruption, Field, LayoutError, MsgConsumer, MsgLayout, MsgPopError, MsgProducer,
    MsgPushError, PopError, Producer, RawRegion, SetupError, DATA_OFFSET, SKIP_MARKER,
};

// One producer and one consumer per ring: movable to another thread, but
// neither shareable nor clonable.
static_assertions::assert_impl_all!(MsgProducer: Send);
static_assertions::assert_impl_all!(MsgConsumer: Send);
static_assertions::assert_not_impl_any!(MsgProducer: Clone, Sync);
static_assertions::assert_not_impl_any!(MsgConsumer: Clone, Sync);

const WRITE_POS: usize = 128;
const READ_POS: usize = 256;
const CAP: usize = 64;
const MAX: usize = 24;

fn poke64(region: RawRegion, offset: usize, value: u64) {
    // SAFETY: offsets used here are inside the region; the handles only
    // access it atomically or volatilely.
    unsafe { core::ptr::write_volatile(region.as_ptr().add(offset).cast::<u64>(), value) }
}

fn poke32(region: RawRegion, offset: usize, value: u32) {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::write_volatile(region.as_ptr().add(offset).cast::<u32>(), value) }
}

fn peek64(region: RawRegion, offset: usize) -> u64 {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u64>()) }
}

/// Writes a record header (and payload bytes `fill`) at data offset `at`.
fn record(region: RawRegion, at: usize, len: u32, fill: u8) {
    poke32(region, DATA_OFFSET + at, len);
    poke32(region, DATA_OFFSET + at + 4, 0);
    if len != SKIP_MARKER {
        for i in 0..len as usize {
            // SAFETY: the tests keep payloads inside the data area.
            unsafe {
                core::ptr::write_volatile(region.as_ptr().add(DATA_OFFSET + at + 8 + i), fill)
            }
        }
    }
}

/// A ring created by our consumer, with a peer producer writing by hand.
fn consumer_ring(buf: &mut common::Buffer) -> (RawRegion, MsgConsumer) {
    let region = buf.region();
    let rx = MsgConsumer::create(region, CAP, MAX).unwrap();
    (region, rx)
}

fn buffer() -> common::Buffer {
    common::Buffer::new(MsgLayout::new(CAP, MAX).unwrap().region_size(), 2)
}

/// Moves the read position to 48 (of 64) with six empty records.
fn walk_to_48(region: RawRegion, rx: &mut MsgConsumer) {
    for at in (0..48).step_by(8) {
        record(region, at, 0, 0);
    }
    poke64(region, WRITE_POS, 48);
    for _ in 0..6 {
        assert_eq!(rx.pop(&mut []), Ok(0));
    }
}

/// The consumer reports `expected` now, and on every later call.
fn assert_sticky(rx: &mut MsgConsumer, expected: Corruption) {
    assert_eq!(rx.read().unwrap_err(), PopError::Corrupted(expected));
    assert_eq!(
        rx.pop(&mut [0; MAX]).unwrap_err(),
        MsgPopError::Corrupted(expected)
    );
    assert_eq!(rx.prepare_wait().unwrap_err(), expected);
    assert_eq!(rx.corruption(), Some(expected));
}

#[test]
fn layout_rejects_impossible_message_geometry() {
    assert_eq!(
        MsgLayout::new(8, 0),
        Err(LayoutError::MessageCapacityTooSmall {
            capacity: 8,
            min: 16
        })
    );
    assert_eq!(
        MsgLayout::new(100, 0),
        Err(LayoutError::CapacityNotPowerOfTwo { capacity: 100 })
    );
    assert_eq!(
        MsgLayout::new(64, 25),
        Err(LayoutError::MaxMessageTooLarge {
            max_msg: 25,
            limit: 24
        })
    );
    assert!(MsgLayout::new(16, 0).is_ok());
    assert_eq!(MsgLayout::max_msg_limit(1 << 40), 0xFFFF_FFF8);
}

#[test]
fn consumer_reads_hand_written_records_with_a_skip_marker() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // Records of 24, 0 and 5 bytes at offsets 0, 32 and 40: 56 bytes.
    record(region, 0, 24, 0xA1);
    record(region, 32, 0, 0);
    record(region, 40, 5, 0xA3);
    poke64(region, WRITE_POS, 56);
    let mut out = [0u8; MAX];
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(out, [0xA1; 24]);
    assert_eq!(rx.pop(&mut out), Ok(0));
    assert_eq!(rx.pop(&mut out), Ok(5));
    assert_eq!(out[..5], [0xA3; 5]);
    assert_eq!(peek64(region, READ_POS), 56);
    // A record of 9 bytes (16 padded, 24 in all) does not fit in the 8
    // bytes left: a skip marker at 56, the record at 0.
    record(region, 56, SKIP_MARKER, 0);
    record(region, 0, 9, 0xB0);
    poke64(region, WRITE_POS, 56 + 8 + 24);
    let r = rx.read().unwrap();
    assert_eq!(r.len(), 9);
    let mut nine = [0u8; 9];
    r.copy_to_slice(&mut nine);
    assert_eq!(nine, [0xB0; 9]);
    let _ = r.release();
    // The release covers the skip and the record.
    assert_eq!(peek64(region, READ_POS), 88);
    assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
}

#[test]
fn consumer_rejects_length_above_the_maximum() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    record(region, 0, MAX as u32 + 1, 0);
    poke64(region, WRITE_POS, 64);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: 25,
            min: 0,
            max: 24,
        },
    );
}

#[test]
fn consumer_rejects_length_beyond_the_published_bytes() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // 17 bytes need 8 + 24, only 24 are published.
    record(region, 0, 17, 0);
    poke64(region, WRITE_POS, 24);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: 17,
            min: 0,
            max: 16,
        },
    );
}

#[test]
fn consumer_rejects_record_whose_padding_is_not_published() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // One payload byte needs a 16-byte record; the peer publishes 12 (an
    // odd position), which covers the byte but not the padding. Accepting
    // it would move our read position past the write position.
    record(region, 0, 1, 0);
    poke64(region, WRITE_POS, 12);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: 1,
            min: 0,
            max: 0,
        },
    );
}

#[test]
fn consumer_rejects_record_across_the_end_of_the_ring() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    // A record of 16 bytes at 48 would end at 72 > 64, although 24 bytes
    // are published and 16 is below the maximum.
    record(region, 48, 16, 0);
    poke64(region, WRITE_POS, 48 + 24);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: 16,
            min: 0,
            max: 8,
        },
    );
}

#[test]
fn consumer_rejects_skip_marker_at_offset_zero() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    record(region, 0, SKIP_MARKER, 0);
    poke64(region, WRITE_POS, 64);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::SkipMarker,
            seen: 64,
            min: 8,
            max: 56,
        },
    );
}

#[test]
fn consumer_rejects_skip_marker_without_a_published_record_after_it() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    // The skip covers 48..64 and is published, but nothing after it.
    record(region, 48, SKIP_MARKER, 0);
    poke64(region, WRITE_POS, 64);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::SkipMarker,
            seen: 16,
            min: 8,
            max: 8,
        },
    );
}

#[test]
fn consumer_rejects_a_second_skip_marker_after_a_skip() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    record(region, 48, SKIP_MARKER, 0);
    record(region, 0, SKIP_MARKER, 0);
    poke64(region, WRITE_POS, 48 + 16 + 8);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: u64::from(SKIP_MARKER),
            min: 0,
            max: 0,
        },
    );
}

#[test]
fn consumer_rejects_write_position_that_is_not_a_whole_record() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    record(region, 0, 0, 0);
    poke64(region, WRITE_POS, 12);
    assert_eq!(rx.pop(&mut []), Ok(0));
    // Four bytes left: less than a record header.
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::WritePosition,
            seen: 12,
            min: 16,
            max: 8 + 64,
        },
    );
}

#[test]
fn consumer_rejects_write_position_beyond_capacity_as_the_element_ring_does() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    poke64(region, WRITE_POS, 72);
    assert!(matches!(
        rx.read(),
        Err(PopError::Corrupted(Corruption {
            field: Field::WritePosition,
            seen: 72,
            ..
        }))
    ));
}

#[test]
fn producer_rejects_read_position_beyond_its_write_position() {
    let mut buf = buffer();
    let region = buf.region();
    let mut tx = MsgProducer::create(region, CAP, MAX).unwrap();
    tx.push(&[1; 24]).unwrap();
    tx.push(&[2; 24]).unwrap();
    // Full; the peer claims to have read past what was written.
    poke64(region, READ_POS, 72);
    let expected = Corruption {
        field: Field::ReadPosition,
        seen: 72,
        min: 0,
        max: 64,
    };
    assert_eq!(tx.push(&[3]), Err(MsgPushError::Corrupted(expected)));
    assert_eq!(
        tx.reserve(0).unwrap_err(),
        MsgPushError::Corrupted(expected)
    );
    // Sticky even for a length that would be our caller's error.
    assert_eq!(
        tx.reserve(MAX + 1).unwrap_err(),
        MsgPushError::Corrupted(expected)
    );
    assert_eq!(tx.prepare_wait(1), Err(expected));
    assert_eq!(tx.corruption(), Some(expected));
}

#[test]
fn attach_rejects_a_header_that_is_not_ours() {
    let mut buf = buffer();
    let region = buf.region();
    MsgProducer::create(region, CAP, MAX).unwrap();
    assert_eq!(
        MsgConsumer::attach(region, CAP, 16).unwrap_err(),
        SetupError::MaxMessageMismatch {
            expected: 16,
            found: 24
        }
    );
    assert_eq!(
        MsgConsumer::attach(region, 32, 8).unwrap_err(),
        SetupError::CapacityMismatch {
            expected: 32,
            found: 64
        }
    );
    // An element ring is not a message ring, and vice versa.
    assert_eq!(
        Consumer::<u8>::attach(region, CAP).unwrap_err(),
        SetupError::WrongKind {
            expected: 1,
            found: 2
        }
    );
    Producer::<u8>::create(region, CAP).unwrap();
    assert_eq!(
        MsgConsumer::attach(region, CAP, MAX).unwrap_err(),
        SetupError::WrongKind {
            expected: 2,
            found: 1
        }
    );
    // The peer rewrites the maximum after creation.
    MsgConsumer::create(region, CAP, MAX).unwrap();
    poke32(region, 20, 1000);
    assert_eq!(
        MsgProducer::attach(region, CAP, MAX).unwrap_err(),
        SetupError::MaxMessageMismatch {
            expected: 24,
            found: 1000
        }
    );
}

#[test]
fn attach_rejects_own_position_that_is_not_record_aligned() {
    let mut buf = buffer();
    let region = buf.region();
    MsgProducer::create(region, CAP, MAX).unwrap();
    poke64(region, WRITE_POS, 4);
    poke64(region, READ_POS, 4);
    assert!(matches!(
        MsgConsumer::attach(region, CAP, MAX).unwrap_err(),
        SetupError::Corrupted(Corruption {
            field: Field::ReadPosition,
            seen: 4,
            ..
        })
    ));
    MsgConsumer::create(region, CAP, MAX).unwrap();
    poke64(region, WRITE_POS, 60);
    poke64(region, READ_POS, 8);
    assert!(matches!(
        MsgProducer::attach(region, CAP, MAX).unwrap_err(),
        SetupError::Corrupted(Corruption {
            field: Field::WritePosition,
            seen: 60,
            ..
        })
    ));
    // Aligned positions far into the counter's range are fine.
    poke64(region, WRITE_POS, 16);
    poke64(region, READ_POS, u64::MAX - 7);
    let mut tx = MsgProducer::attach(region, CAP, MAX).unwrap();
    assert_eq!(tx.free_bytes(), Ok(64 - 24));
}
