//! A message-ring peer that writes records and positions by hand, through
//! the byte offsets of `docs/LAYOUT.md` (layout version 2), as a peer in C
//! would: honest records (with a skip marker, and the previous lap's
//! header where the ring was full) are read back exactly; every lie (a
//! wrong sequence tag, a header two laps old, a bad record length, a bad
//! skip marker, a lying read position, a header that does not match) is
//! caught, named, and sticky; stale payload that looks like a header is
//! never taken for one.

mod common;

use spsc_core::{
    Consumer, Corruption, Field, LayoutError, MsgConsumer, MsgLayout, MsgPopError, MsgProducer,
    MsgPushError, PopError, Producer, RawRegion, SetupError, DATA_OFFSET, PENDING_MARKER,
    SKIP_MARKER,
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

fn peek32(region: RawRegion, offset: usize) -> u32 {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u32>()) }
}

fn peek64(region: RawRegion, offset: usize) -> u64 {
    // SAFETY: as in `poke64`.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u64>()) }
}

/// The sequence tag of a header at position `pos` (docs/LAYOUT.md).
fn tag(pos: u64) -> u32 {
    (pos / 8) as u32
}

/// The 8-byte header word: the tag in the high half, `len` in the low.
fn word(tag: u32, len: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(len)
}

/// Writes a header word at data offset `pos % CAP` with the tag of `pos`.
fn header(region: RawRegion, pos: u64, len: u32) {
    poke64(
        region,
        DATA_OFFSET + (pos % CAP as u64) as usize,
        word(tag(pos), len),
    );
}

/// Writes a record as an honest peer in C would: the payload bytes
/// `fill`, the pending word where the next record goes, then the header.
/// Returns the position after it.
fn record(region: RawRegion, pos: u64, len: u32, fill: u8) -> u64 {
    let at = (pos % CAP as u64) as usize;
    for i in 0..len as usize {
        // SAFETY: the tests keep payloads inside the data area.
        unsafe { core::ptr::write_volatile(region.as_ptr().add(DATA_OFFSET + at + 8 + i), fill) }
    }
    let end = pos + 8 + u64::from(len).div_ceil(8) * 8;
    header(region, end, PENDING_MARKER);
    header(region, pos, len);
    end
}

/// A ring created by our consumer, with a peer producer writing by hand.
fn consumer_ring(buf: &mut common::Buffer) -> (RawRegion, MsgConsumer) {
    let region = buf.region();
    let rx = MsgConsumer::create(region, CAP, MAX).unwrap();
    (region, rx)
}

/// A ring created by an honest producer, with our consumer attached.
fn honest_pair(buf: &mut common::Buffer) -> (RawRegion, MsgProducer, MsgConsumer) {
    let region = buf.region();
    let tx = MsgProducer::create(region, CAP, MAX).unwrap();
    let rx = MsgConsumer::attach(region, CAP, MAX).unwrap();
    (region, tx, rx)
}

fn buffer() -> common::Buffer {
    common::Buffer::new(MsgLayout::new(CAP, MAX).unwrap().region_size(), 2)
}

/// Moves the read position to 48 (of 64) with six empty records.
fn walk_to_48(region: RawRegion, rx: &mut MsgConsumer) {
    for pos in (0..48).step_by(8) {
        record(region, pos, 0, 0);
    }
    poke64(region, WRITE_POS, 48);
    for _ in 0..6 {
        assert_eq!(rx.pop(&mut []), Ok(0));
    }
    assert_eq!(rx.pop(&mut []), Err(MsgPopError::Empty));
}

/// The consumer reports `expected` now, and on every later call.
fn assert_sticky(rx: &mut MsgConsumer, expected: Corruption) {
    assert_eq!(rx.read().unwrap_err(), PopError::Corrupted(expected));
    assert_eq!(
        rx.pop(&mut [0; MAX]).unwrap_err(),
        MsgPopError::Corrupted(expected)
    );
    assert_eq!(
        rx.try_recv_into(&mut [0; MAX]),
        Err(MsgPopError::Corrupted(expected))
    );
    assert_eq!(rx.recv_many(4, |_| panic!("no record")), Err(expected));
    assert_eq!(rx.prepare_wait().unwrap_err(), expected);
    assert_eq!(rx.pending_bytes(), Err(expected));
    assert_eq!(rx.corruption(), Some(expected));
}

fn sequence(seen: u32, expected: u32) -> Corruption {
    Corruption {
        field: Field::RecordSequence,
        seen: u64::from(seen),
        min: u64::from(expected),
        max: u64::from(expected),
    }
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
    // One lap must change the 32-bit sequence tag: capacity / 8 < 2^32.
    assert_eq!(
        MsgLayout::new(1 << 35, 64),
        Err(LayoutError::MessageCapacityTooLarge {
            capacity: 1 << 35,
            max: 1 << 34
        })
    );
    assert_eq!(spsc_core::MAX_MSG_CAPACITY, 1 << 34);
    assert_eq!(MsgLayout::max_msg_limit(1 << 40), 0xFFFF_FFF8);
}

#[test]
fn consumer_reads_hand_written_records_with_a_skip_marker() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // The creator left a pending word at position 0.
    assert_eq!(peek64(region, DATA_OFFSET), word(0, PENDING_MARKER));
    assert_eq!(rx.pop(&mut []), Err(MsgPopError::Empty));
    // Records of 24, 0 and 5 bytes at positions 0, 32 and 40: 56 bytes.
    // The consumer does not need the write position.
    let mut pos = record(region, 0, 24, 0xA1);
    pos = record(region, pos, 0, 0);
    pos = record(region, pos, 5, 0xA3);
    assert_eq!(pos, 56);
    let mut out = [0u8; MAX];
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(out, [0xA1; 24]);
    assert_eq!(rx.pop(&mut out), Ok(0));
    assert_eq!(rx.pop(&mut out), Ok(5));
    assert_eq!(out[..5], [0xA3; 5]);
    assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
    assert_eq!(peek64(region, READ_POS), 56);
    // A record of 9 bytes (16 padded, 24 in all) does not fit in the 8
    // bytes left: the record at position 64 (offset 0) first, then the
    // skip marker at 56 that leads to it.
    let end = record(region, 64, 9, 0xB0);
    header(region, 56, SKIP_MARKER);
    assert_eq!(rx.pending_bytes(), Ok(8 + 24));
    let r = rx.read().unwrap();
    assert_eq!(r.len(), 9);
    let mut nine = [0u8; 9];
    r.copy_to_slice(&mut nine);
    assert_eq!(nine, [0xB0; 9]);
    let _ = r.release();
    // The release covers the skip and the record.
    assert_eq!(peek64(region, READ_POS), 88);
    assert_eq!(end, 88);
    assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
}

#[test]
fn consumer_waits_on_the_previous_laps_header_without_taking_it() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // Two records of 24 bytes fill the ring to the last byte; an honest
    // producer then cannot write a pending word at 64 (offset 0 still
    // holds the first record's header, tag 0).
    record(region, 0, 24, 1);
    header(region, 32, 24);
    let mut out = [0u8; MAX];
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(peek64(region, DATA_OFFSET), word(0, 24));
    // At position 64 the consumer expects tag 8 and finds tag 0: the
    // previous lap, so not yet; a header that passes for a new one would
    // hand out the old bytes again.
    for _ in 0..3 {
        assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
        assert_eq!(rx.prepare_wait(), Ok(spsc_core::WaitCheck::Sleep));
        rx.finish_wait();
        assert_eq!(rx.pending_bytes(), Ok(0));
    }
    record(region, 64, 3, 7);
    assert_eq!(rx.pop(&mut out), Ok(3));
    assert_eq!(out[..3], [7; 3]);
}

#[test]
fn consumer_rejects_a_header_two_laps_old() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    // At 48, the header of position 48 - 128: an honest producer never
    // leaves one there (it writes a pending word, or the previous lap's
    // header stays), and its tag is not the previous lap's.
    let old = tag(48u64.wrapping_sub(128));
    poke64(region, DATA_OFFSET + 48, word(old, 0));
    assert_sticky(&mut rx, sequence(old, tag(48)));
}

#[test]
fn consumer_rejects_wrong_sequence_tags() {
    for bad in [tag(48) + 1, tag(48) - 1, tag(48) + 8, 0, u32::MAX] {
        let mut buf = buffer();
        let (region, mut rx) = consumer_ring(&mut buf);
        walk_to_48(region, &mut rx);
        poke64(region, DATA_OFFSET + 48, word(bad, 8));
        assert_sticky(&mut rx, sequence(bad, tag(48)));
    }
    // The pending word of another position is a lie too.
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    poke64(region, DATA_OFFSET + 48, word(tag(56), PENDING_MARKER));
    assert_sticky(&mut rx, sequence(tag(56), tag(48)));
}

#[test]
fn consumer_treats_the_previous_laps_tag_with_any_length_as_not_yet() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    for len in [0, 8, MAX as u32 + 1, SKIP_MARKER, PENDING_MARKER] {
        poke64(
            region,
            DATA_OFFSET + 48,
            word(tag(48u64.wrapping_sub(64)), len),
        );
        assert_eq!(rx.pop(&mut []), Err(MsgPopError::Empty));
    }
    assert_eq!(rx.corruption(), None);
}

#[test]
fn stale_payload_that_looks_like_the_next_header_is_never_taken_for_it() {
    // An honest producer, and payload chosen to look exactly like the
    // headers of positions one lap later: without the pending word the
    // producer writes after each record, the consumer would take them for
    // records.
    let mut buf = buffer();
    let (_, mut tx, mut rx) = honest_pair(&mut buf);
    let mut a = Vec::new();
    for pos in [72u64, 80, 88] {
        a.extend_from_slice(&word(tag(pos), 0).to_ne_bytes());
    }
    tx.push(&a).unwrap(); // position 0, payload at offsets 8..32
    tx.push(&[2; 24]).unwrap(); // position 32, ends at 64
    let mut out = [0u8; MAX];
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(rx.pop(&mut out), Ok(24));
    assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
    tx.push(&[]).unwrap(); // position 64 (offset 0), ends at 72 (offset 8)
    assert_eq!(rx.pop(&mut out), Ok(0));
    for _ in 0..3 {
        assert_eq!(rx.pop(&mut out), Err(MsgPopError::Empty));
        assert_eq!(rx.pending_bytes(), Ok(0));
    }
    tx.push(b"real").unwrap();
    assert_eq!(rx.pop(&mut out), Ok(4));
    assert_eq!(&out[..4], b"real");
    assert_eq!(rx.corruption(), None);
}

#[test]
fn consumer_rejects_length_above_the_maximum() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    header(region, 0, MAX as u32 + 1);
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
fn consumer_rejects_record_across_the_end_of_the_ring() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    // A record of 16 bytes at 48 would end at 72 > 64, although 16 is
    // below the maximum.
    header(region, 48, 16);
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
    header(region, 0, SKIP_MARKER);
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
fn consumer_rejects_skip_marker_without_a_record_after_it() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    // The skip covers 48..64; offset 0 still holds the header of
    // position 0 (tag 0), not that of position 64 (tag 8). An honest
    // producer stores the record before the marker.
    header(region, 48, SKIP_MARKER);
    assert_sticky(&mut rx, sequence(0, tag(64)));
}

#[test]
fn consumer_rejects_a_pending_word_after_a_skip() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    header(region, 64, PENDING_MARKER);
    header(region, 48, SKIP_MARKER);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: u64::from(PENDING_MARKER),
            min: 0,
            max: MAX as u64,
        },
    );
}

#[test]
fn consumer_rejects_a_second_skip_marker_after_a_skip() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    walk_to_48(region, &mut rx);
    header(region, 64, SKIP_MARKER);
    header(region, 48, SKIP_MARKER);
    assert_sticky(
        &mut rx,
        Corruption {
            field: Field::RecordLength,
            seen: u64::from(SKIP_MARKER),
            min: 0,
            max: MAX as u64,
        },
    );
}

/// A hostile producer that marks its stream closed over a forged record:
/// the end of the stream is not reported (the closed word only ends a
/// drained stream), the forgery is, as by a receive, and it sticks. The
/// closed word over an empty or honest ring ends the stream only once
/// everything published is received.
#[test]
fn the_closed_mark_over_a_forged_record_reports_the_forgery() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    let end = record(region, 0, 3, 7);
    poke32(region, 136, 1);
    assert_eq!(rx.end_of_stream(), Ok(false)); // a record is still there
    assert_eq!(rx.pop(&mut [0; MAX]), Ok(3));
    assert_eq!(rx.end_of_stream(), Ok(true));
    // The next header with the tag of a later lap: a lie, closed or not.
    poke64(
        region,
        DATA_OFFSET + (end % CAP as u64) as usize,
        word(tag(end) + 99, 1),
    );
    let expected = sequence(tag(end) + 99, tag(end));
    assert_eq!(rx.end_of_stream(), Err(expected));
    assert_eq!(rx.corruption(), Some(expected));
    assert_eq!(rx.end_of_stream(), Err(expected));
    assert_eq!(rx.pop(&mut [0; MAX]), Err(MsgPopError::Corrupted(expected)));
}

#[test]
fn consumer_does_not_use_the_write_position_hint() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    // A write position beyond the capacity, or off the record grid,
    // neither delivers a record nor hides one, nor changes the count: the
    // header words decide.
    for lie in [72, 12, u64::MAX] {
        poke64(region, WRITE_POS, lie);
        assert_eq!(rx.pop(&mut []), Err(MsgPopError::Empty));
        assert_eq!(rx.pending_bytes(), Ok(0));
    }
    let end = record(region, 0, 1, 9);
    assert_eq!(rx.pending_bytes(), Ok(16));
    // A second record counts once its header is published, whatever the
    // hint says.
    poke64(region, WRITE_POS, 0);
    let end = record(region, end, 20, 7);
    assert_eq!(rx.pending_bytes(), Ok(16 + 32));
    poke64(region, WRITE_POS, 40);
    assert_eq!(rx.pending_bytes(), Ok(16 + 32));
    // A corrupted record after the first stops the count before it
    // (the receive that reaches it reports it) and poisons nothing.
    header(region, end, 9999);
    assert_eq!(rx.pending_bytes(), Ok(16 + 32));
    assert_eq!(rx.pop(&mut [0; 1]), Ok(1));
    assert_eq!(rx.pending_bytes(), Ok(32));
    assert_eq!(rx.corruption(), None);
}

/// A lying producer that fills the whole ring with the smallest records
/// makes the count walk the most headers it can: one per 8 bytes, and it
/// stops at the capacity.
#[test]
fn pending_bytes_walks_at_most_the_ring() {
    let mut buf = buffer();
    let (region, mut rx) = consumer_ring(&mut buf);
    for pos in (0..CAP as u64).step_by(8) {
        header(region, pos, 0);
    }
    assert_eq!(rx.pending_bytes(), Ok(CAP));
    assert_eq!(rx.pop(&mut []), Ok(0));
    assert_eq!(rx.pending_bytes(), Ok(CAP - 8));
    assert_eq!(rx.corruption(), None);
}

/// The producer stores its write position in the header as a lagging
/// hint: not with every record (its line is the closed word's, which a
/// waiting consumer loads), but once half a ring has been published since
/// the last store, after a batch, and before the closed mark.
#[test]
fn producer_stores_the_write_position_hint_lazily() {
    let mut buf = buffer();
    let (region, mut tx, mut rx) = honest_pair(&mut buf);
    tx.push(&[1; 8]).unwrap(); // 16 bytes: less than half of 64
    assert_eq!(peek64(region, WRITE_POS), 0);
    assert_eq!(rx.pop(&mut [0; 8]), Ok(8)); // delivered all the same
    tx.push(&[2; 16]).unwrap(); // 16 + 24 = 40: half passed
    assert_eq!(peek64(region, WRITE_POS), 40);
    assert_eq!(rx.pop(&mut [0; 16]), Ok(16));
    tx.push(&[3]).unwrap();
    assert_eq!(peek64(region, WRITE_POS), 40);
    let batch = tx.push_many(&[&[4u8][..]]).unwrap();
    assert_eq!(batch.messages, 1);
    // 56 + a skip of 8 + a record of 16
    assert_eq!(peek64(region, WRITE_POS), 80);
    tx.push(&[5]).unwrap();
    assert_eq!(peek64(region, WRITE_POS), 80);
    let _wake = tx.close();
    assert_eq!(peek64(region, WRITE_POS), 96);
    assert_eq!(peek32(region, 136), 1);
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

#[test]
fn version_2_is_written_and_version_1_accepted_only_for_element_rings() {
    let mut buf = buffer();
    let region = buf.region();
    MsgProducer::create(region, CAP, MAX).unwrap();
    assert_eq!(spsc_core::VERSION, 2);
    assert_eq!(peek64(region, 8) as u32, 2);
    // A version-1 message ring has no sequence tags: refused.
    poke32(region, 8, 1);
    assert_eq!(
        MsgConsumer::attach(region, CAP, MAX).unwrap_err(),
        SetupError::UnsupportedVersion { found: 1 }
    );
    // An element ring's protocol did not change: version 1 is accepted,
    // and unknown versions are refused.
    Producer::<u8>::create(region, CAP).unwrap();
    assert_eq!(peek64(region, 8) as u32, 2);
    for (version, ok) in [(1, true), (2, true), (0, false), (3, false)] {
        poke32(region, 8, version);
        let attached = Consumer::<u8>::attach(region, CAP);
        if ok {
            attached.unwrap();
        } else {
            assert_eq!(
                attached.unwrap_err(),
                SetupError::UnsupportedVersion { found: version }
            );
        }
    }
}
