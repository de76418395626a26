//! A hostile peer scribbles over a message ring while an honest producer
//! and an honest consumer run hundreds of thousands of operations on it:
//! random record lengths (small, at and around the maximum, huge), skip
//! markers at random record offsets, whole header words with plausible
//! sequence tags (the right one, the previous lap's, two laps old, off by
//! one) and pending words, plausible-but-wrong positions, and random
//! header words and bytes.
//!
//! The honest sides must see only valid records (never longer than the
//! maximum, always inside the data area), full, empty, or the corruption
//! error (sticky); they must never panic, and never write outside the
//! region: guard bytes around it are checked afterwards.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use spsc_core::{
    Corruption, Field, MsgConsumer, MsgLayout, MsgPopError, MsgProducer, MsgPushError, PopError,
    RawRegion, SetupError, DATA_OFFSET, PENDING_MARKER, SKIP_MARKER,
};

const CAP: usize = 256;
const MAX: usize = 64;

fn ops_per_side() -> u64 {
    if cfg!(debug_assertions) {
        1_000_000
    } else {
        5_000_000
    }
}

/// xorshift64: deterministic, so a failure can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The region, movable to the threads; the buffer outlives them all.
#[derive(Clone, Copy)]
struct Shared(RawRegion);
// SAFETY: the region is only accessed through handles (atomic/volatile)
// and the scribbler's atomics; the buffer outlives every thread.
unsafe impl Send for Shared {}

impl Shared {
    /// The region (a method, so that closures capture the whole `Send`
    /// wrapper rather than its field).
    fn get(self) -> RawRegion {
        self.0
    }
}

/// What the honest sides saw, by kind of corruption.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    /// Messages committed (producer) or records accepted (consumer).
    messages: AtomicU64,
    record_length: AtomicU64,
    skip_marker: AtomicU64,
    sequence: AtomicU64,
    positions: AtomicU64,
}

impl Tally {
    fn count(&self, c: Corruption) {
        let counter = match c.field {
            Field::RecordLength => &self.record_length,
            Field::SkipMarker => &self.skip_marker,
            Field::RecordSequence => &self.sequence,
            _ => &self.positions,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn caught(&self) -> u64 {
        self.record_length.load(Ordering::Relaxed)
            + self.skip_marker.load(Ordering::Relaxed)
            + self.sequence.load(Ordering::Relaxed)
            + self.positions.load(Ordering::Relaxed)
    }
}

/// Checks that `[ptr, ptr + len)` lies inside the data area.
fn inside_data(region: RawRegion, ptr: *const u8, len: usize) {
    let data = region.as_ptr() as usize + DATA_OFFSET;
    let at = ptr as usize;
    assert!(
        at >= data && at + len <= data + CAP,
        "{len} bytes at data offset {} are outside the ring",
        at as isize - data as isize
    );
    assert!(len <= MAX, "a record of {len} bytes exceeds the maximum");
}

/// A side stops after `ops_per_side()` operations once the peer has been
/// caught in the ways it must be caught, or after 20 times as many in any
/// case (on two cores the scribbler may be descheduled for a while).
fn done(i: u64, enough: bool, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || (i >= ops_per_side() && enough) || i >= 20 * ops_per_side()
}

fn honest_producer(region: RawRegion, tally: &Tally, stop: &AtomicBool) {
    let mut state = 0x5eed_1234_u64;
    let mut tx = fresh_producer(region);
    let src = [0x5Au8; MAX];
    for i in 0.. {
        let enough = tally.caught() > 0 && tally.messages.load(Ordering::Relaxed) > 0;
        if done(i, enough, stop) {
            break;
        }
        let r = next(&mut state);
        let len = (r >> 8) as usize % (MAX + 1);
        let result: Result<(), MsgPushError> = match r % 5 {
            4 => tx
                .push_many(&[&src[..len], &src[..len / 2], &[]])
                .map(|batch| {
                    tally
                        .messages
                        .fetch_add(batch.messages as u64, Ordering::Relaxed);
                }),
            0 => tx.push(&src[..len]).map(|()| {
                tally.messages.fetch_add(1, Ordering::Relaxed);
            }),
            1 => tx.reserve(len).map(|mut reservation| {
                inside_data(region, reservation.as_mut_ptr(), reservation.len());
                reservation.write_at(len / 2, &src[len / 2..len]);
                reservation.truncate(len - len / 3);
                // Commit three times in four; otherwise abandon.
                if r >> 20 & 3 != 0 {
                    let _ = reservation.commit();
                    tally.messages.fetch_add(1, Ordering::Relaxed);
                }
            }),
            2 => {
                let _ = tx.needs_wake();
                tx.prepare_wait(len)
                    .map(|_| tx.finish_wait())
                    .map_err(MsgPushError::Corrupted)
            }
            _ => tx.free_bytes().map(drop).map_err(MsgPushError::Corrupted),
        };
        match result {
            Ok(()) | Err(MsgPushError::Full) => {}
            Err(MsgPushError::TooLarge { .. }) => panic!("our lengths are within the maximum"),
            Err(MsgPushError::Corrupted(c)) => {
                tally.count(c);
                // Sticky, then start over.
                assert_eq!(tx.push(&[]), Err(MsgPushError::Corrupted(c)));
                assert_eq!(tx.corruption(), Some(c));
                tx = fresh_producer(region);
            }
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A new handle after the peer was caught, as an application that drops
/// the peer and reconnects would: it attaches (taking the positions in the
/// header, which keeps the other honest side in step), or if the scribbler
/// broke the header, creates a ring of its own. Only typed setup errors
/// are acceptable.
macro_rules! fresh {
    ($name:ident, $handle:ty) => {
        fn $name(region: RawRegion) -> $handle {
            match <$handle>::attach(region, CAP, MAX) {
                Ok(handle) => handle,
                Err(SetupError::Layout(e)) => panic!("our own layout is valid: {e}"),
                Err(_) => <$handle>::create(region, CAP, MAX).unwrap(),
            }
        }
    };
}
fresh!(fresh_producer, MsgProducer);
fresh!(fresh_consumer, MsgConsumer);

fn honest_consumer(region: RawRegion, tally: &Tally, stop: &AtomicBool) {
    let mut state = 0xfeed_5678_u64;
    let mut rx = fresh_consumer(region);
    let mut out = [0u8; MAX];
    for i in 0.. {
        let enough = tally.record_length.load(Ordering::Relaxed) > 0
            && tally.skip_marker.load(Ordering::Relaxed) > 0
            && tally.sequence.load(Ordering::Relaxed) > 0
            && tally.messages.load(Ordering::Relaxed) > 0;
        if done(i, enough, stop) {
            break;
        }
        let r = next(&mut state);
        if r % 64 == 0 {
            // Fall behind now and then, so that the ring fills and long
            // (and too long) records can look published.
            for _ in 0..2000 {
                std::hint::spin_loop();
            }
        }
        let result: Result<(), Corruption> = match r % 5 {
            4 => rx
                .recv_many((r >> 8) as usize % 4, |record| {
                    inside_data(region, record.as_ptr(), record.len());
                    let len = record.len();
                    record.copy_to_slice(&mut out[..len]);
                })
                .map(|batch| {
                    tally
                        .messages
                        .fetch_add(batch.messages as u64, Ordering::Relaxed);
                }),
            0 => match rx.read() {
                Ok(record) => {
                    tally.messages.fetch_add(1, Ordering::Relaxed);
                    inside_data(region, record.as_ptr(), record.len());
                    let len = record.len();
                    record.copy_to_slice(&mut out[..len]);
                    if len > 0 {
                        record.read_at(len - 1, &mut out[..1]);
                    }
                    if r >> 20 & 3 != 0 {
                        let _ = record.release();
                    }
                    Ok(())
                }
                Err(PopError::Empty) => Ok(()),
                Err(PopError::Corrupted(c)) => Err(c),
            },
            1 => match rx.pop(&mut out) {
                Ok(n) => {
                    tally.messages.fetch_add(1, Ordering::Relaxed);
                    assert!(n <= MAX);
                    Ok(())
                }
                Err(MsgPopError::Empty) => Ok(()),
                Err(MsgPopError::BufferTooSmall { len, .. }) => {
                    panic!("a record of {len} bytes passed validation with a maximum of {MAX}")
                }
                Err(MsgPopError::Corrupted(c)) => Err(c),
            },
            2 => match rx.pop(&mut out[..(r >> 8) as usize % 8]) {
                Err(MsgPopError::Corrupted(c)) => Err(c),
                _ => Ok(()),
            },
            _ => {
                let _ = rx.needs_wake();
                rx.prepare_wait().map(|_| rx.finish_wait())
            }
        };
        if let Err(c) = result {
            tally.count(c);
            assert_eq!(rx.read().unwrap_err(), PopError::Corrupted(c));
            assert_eq!(rx.corruption(), Some(c));
            rx = fresh_consumer(region);
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A value a peer might write as a record length.
fn length_word(state: &mut u64) -> u32 {
    let r = next(state);
    match r % 6 {
        0 => SKIP_MARKER,
        1 => (r >> 8) as u32 % (MAX as u32 + 16),
        2 => MAX as u32 + 1 + (r >> 8) as u32 % 8,
        3 => CAP as u32 - (r >> 8) as u32 % 16,
        4 => (r >> 32) as u32,
        _ => 0,
    }
}

/// Writes at random over the region: record length words at record
/// offsets, positions near the honest ones, header words, and bytes.
fn scribble(region: RawRegion, stop: &AtomicBool, started: &AtomicBool) {
    let mut state = 0xbad_c0de_u64;
    let base = region.as_ptr();
    let word64 = |offset: usize| {
        // SAFETY: every offset used is 8-aligned and 8 bytes inside the
        // region; an atomic access is what a concurrent peer amounts to.
        unsafe { AtomicU64::from_ptr(base.add(offset).cast()) }
    };
    let hot = [0usize, 8, 16, 24, 32, 384, 388];
    while !stop.load(Ordering::Relaxed) {
        let r = next(&mut state);
        match r % 10 {
            8 | 9 => {
                // A whole header word near the consumer's position, with a
                // plausible tag: its own, the previous lap's, two laps old,
                // off by one, or a pending word.
                let pos = word64(256)
                    .load(Ordering::Relaxed)
                    .wrapping_add(((r >> 8) % 8) * 8)
                    & !7;
                let tag = (pos >> 3) as u32;
                let lap = (CAP / 8) as u32;
                let tag = match (r >> 16) % 5 {
                    0 => tag,
                    1 => tag.wrapping_sub(lap),
                    2 => tag.wrapping_sub(2 * lap),
                    3 => tag.wrapping_add(1),
                    _ => tag.wrapping_sub(1),
                };
                let len = if (r >> 24) % 4 == 0 {
                    PENDING_MARKER
                } else {
                    length_word(&mut state)
                };
                word64(DATA_OFFSET + (pos % CAP as u64) as usize)
                    .store((u64::from(tag) << 32) | u64::from(len), Ordering::Relaxed);
            }
            0..=3 => {
                let at = DATA_OFFSET + ((r >> 8) as usize % (CAP / 8)) * 8;
                // SAFETY: a record header offset inside the data area.
                unsafe { AtomicU32::from_ptr(base.add(at).cast()) }
                    .store(length_word(&mut state), Ordering::Relaxed);
            }
            4 | 5 => {
                // A position that looks right: the honest one moved by a
                // few records, or a little off the record grid.
                let pos = word64(if r & 256 == 0 { 128 } else { 256 });
                let delta = ((r >> 16) % 17) as i64 * 8 - 64 + ((r >> 24) % 16 == 0) as i64 * 4;
                pos.store(
                    pos.load(Ordering::Relaxed).wrapping_add(delta as u64),
                    Ordering::Relaxed,
                );
            }
            6 => word64(hot[(r >> 8) as usize % hot.len()])
                .store(next(&mut state) % 512, Ordering::Relaxed),
            _ => {
                let at = (r >> 8) as usize % region.len();
                // SAFETY: `at < len`.
                unsafe { AtomicU8::from_ptr(base.add(at)) }.store(r as u8, Ordering::Relaxed);
            }
        }
        started.store(true, Ordering::Release);
        // Let the honest sides make progress between lies.
        for _ in 0..(r >> 40) % 64 {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn honest_sides_see_only_valid_records_or_corruption_while_peer_scribbles() {
    let mut buf = common::Buffer::new(MsgLayout::new(CAP, MAX).unwrap().region_size(), 2);
    let region = Shared(buf.region());
    let (stop, started) = (&AtomicBool::new(false), &AtomicBool::new(false));
    let tally = &[Tally::default(), Tally::default()];

    // The honest sides start once the peer is scribbling, and the peer
    // stops once both are done.
    let (p, c) = std::thread::scope(|s| {
        let scribbler = s.spawn(move || scribble(region.get(), stop, started));
        while !started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let p = s.spawn(move || honest_producer(region.get(), &tally[0], stop));
        let c = s.spawn(move || honest_consumer(region.get(), &tally[1], stop));
        let joined = (p.join(), c.join());
        stop.store(true, Ordering::Relaxed);
        scribbler.join().expect("scribbler panicked");
        joined
    });
    p.expect("honest producer panicked");
    c.expect("honest consumer panicked");

    for (side, t) in ["producer", "consumer"].iter().zip(tally.iter()) {
        eprintln!(
            "{side}: {} ops, {} messages; caught {} record lengths, {} skip markers, \
             {} sequence tags, {} positions",
            t.ops.load(Ordering::Relaxed),
            t.messages.load(Ordering::Relaxed),
            t.record_length.load(Ordering::Relaxed),
            t.skip_marker.load(Ordering::Relaxed),
            t.sequence.load(Ordering::Relaxed),
            t.positions.load(Ordering::Relaxed),
        );
        assert!(t.ops.load(Ordering::Relaxed) >= ops_per_side());
        assert!(
            t.messages.load(Ordering::Relaxed) > 0,
            "no {side} message got through"
        );
    }
    // The scribbler was effective: every kind of lie was caught.
    assert!(tally[0].caught() > 0, "producer never caught the peer");
    assert!(tally[1].record_length.load(Ordering::Relaxed) > 0);
    assert!(tally[1].skip_marker.load(Ordering::Relaxed) > 0);
    assert!(tally[1].sequence.load(Ordering::Relaxed) > 0);
    assert!(buf.guards_intact(), "a write landed outside the region");
}
