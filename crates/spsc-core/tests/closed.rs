//! The producer-closed word against a model, and against a hostile
//! producer that sets it (to any nonzero value, or back to 0) and keeps
//! publishing: the consumer delivers exactly what was published, in
//! order, reports the end only when the word is set and the ring is
//! empty, and never reads outside the region (guard bytes around it are
//! checked afterwards). Both ring kinds.

// The `drop`s mark where the handles end, before the guard bytes are read.
#![allow(clippy::drop_non_drop)]

mod common;

use common::{buffer_for, Buffer};
use proptest::prelude::*;
use spsc_core::{
    Consumer, MsgConsumer, MsgLayout, MsgPopError, MsgProducer, PopError, Producer,
    PRODUCER_CLOSED_OFFSET,
};

/// One step of the hostile producer or of the honest consumer.
#[derive(Debug, Clone)]
enum Op {
    /// The producer publishes up to this many items.
    Push(usize),
    /// The producer stores this value in the closed word (0 reopens,
    /// which an honest producer never does).
    SetClosed(u32),
    /// The honest `close` (store 1, wake-up check).
    Close,
    /// The consumer takes up to this many items.
    Pop(usize),
    /// The consumer asks whether the stream has ended.
    CheckEnd,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..12).prop_map(Op::Push),
        1 => prop_oneof![Just(0u32), Just(1), any::<u32>()].prop_map(Op::SetClosed),
        1 => Just(Op::Close),
        3 => (0usize..12).prop_map(Op::Pop),
        2 => Just(Op::CheckEnd),
    ]
}

/// Stores `value` in the closed word the way another process would: a
/// plain write to the shared bytes.
fn set_closed(buf: &mut Buffer, value: u32) {
    // SAFETY: offset 136 lies in the header of the region, 4-aligned; the
    // handles only access it atomically.
    unsafe {
        buf.base()
            .add(PRODUCER_CLOSED_OFFSET)
            .cast::<u32>()
            .write_volatile(value)
    };
}

fn word(buf: &mut Buffer) -> u32 {
    // SAFETY: as in `set_closed`.
    unsafe {
        buf.base()
            .add(PRODUCER_CLOSED_OFFSET)
            .cast::<u32>()
            .read_volatile()
    }
}

const CAP: usize = 8;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn element_ring_ends_exactly_when_closed_and_drained(ops in prop::collection::vec(op(), 1..80)) {
        let mut buf = buffer_for::<u64>(CAP);
        let region = buf.region();
        let mut tx = Producer::<u64>::create(region, CAP).unwrap();
        let mut rx = Consumer::<u64>::attach(region, CAP).unwrap();
        let (mut pushed, mut popped) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Push(n) => {
                    let items: Vec<u64> = (pushed..pushed + n as u64).collect();
                    let sent = tx.push_slice(&items).unwrap();
                    prop_assert_eq!(sent as u64, (n as u64).min(CAP as u64 - (pushed - popped)));
                    pushed += sent as u64;
                }
                Op::SetClosed(v) => set_closed(&mut buf, v),
                Op::Close => {
                    let _wake = tx.close();
                    prop_assert_eq!(word(&mut buf), 1);
                }
                Op::Pop(n) => {
                    for _ in 0..n {
                        match rx.pop() {
                            Ok(v) => {
                                prop_assert_eq!(v, popped, "in order, nothing lost");
                                popped += 1;
                            }
                            Err(PopError::Empty) => {
                                prop_assert_eq!(popped, pushed);
                                break;
                            }
                            Err(e) => prop_assert!(false, "honest positions: {}", e),
                        }
                    }
                }
                Op::CheckEnd => {
                    let ended = rx.end_of_stream().unwrap();
                    // Any nonzero value is the mark; the end needs the
                    // ring to be drained too.
                    prop_assert_eq!(ended, word(&mut buf) != 0 && popped == pushed);
                }
            }
        }
        drop((tx, rx));
        prop_assert!(buf.guards_intact());
    }

    #[test]
    fn message_ring_ends_exactly_when_closed_and_drained(ops in prop::collection::vec(op(), 1..80)) {
        const MCAP: usize = 128;
        const MAX: usize = 24;
        let layout = MsgLayout::new(MCAP, MAX).unwrap();
        let mut buf = Buffer::new(layout.region_size(), 2);
        let region = buf.region();
        let mut tx = MsgProducer::create(region, MCAP, MAX).unwrap();
        let mut rx = MsgConsumer::attach(region, MCAP, MAX).unwrap();
        let (mut pushed, mut popped) = (0u64, 0u64);
        let message = |i: u64| vec![i as u8; (i % 20) as usize];
        for op in ops {
            match op {
                Op::Push(n) => {
                    for _ in 0..n {
                        match tx.push(&message(pushed)) {
                            Ok(()) => pushed += 1,
                            Err(spsc_core::MsgPushError::Full) => break,
                            Err(e) => prop_assert!(false, "{}", e),
                        }
                    }
                }
                Op::SetClosed(v) => set_closed(&mut buf, v),
                Op::Close => {
                    let _wake = tx.close();
                    prop_assert_eq!(word(&mut buf), 1);
                }
                Op::Pop(n) => {
                    for _ in 0..n {
                        let mut out = [0u8; MAX];
                        match rx.pop(&mut out) {
                            Ok(len) => {
                                prop_assert_eq!(&out[..len], &message(popped)[..]);
                                popped += 1;
                            }
                            Err(MsgPopError::Empty) => {
                                prop_assert_eq!(popped, pushed);
                                break;
                            }
                            Err(e) => prop_assert!(false, "honest records: {}", e),
                        }
                    }
                }
                Op::CheckEnd => {
                    let ended = rx.end_of_stream().unwrap();
                    prop_assert_eq!(ended, word(&mut buf) != 0 && popped == pushed);
                }
            }
        }
        drop((tx, rx));
        prop_assert!(buf.guards_intact());
    }
}

/// A hostile producer on another thread sets the mark early and keeps
/// publishing, and scribbles the word with random values; the consumer
/// takes what it sees until it sees the end, and everything it took is
/// the producer's sequence in order.
#[test]
fn a_producer_that_closes_and_keeps_writing_is_delivered_then_ended() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let mut buf = buffer_for::<u64>(64);
    let region = buf.region();
    let mut tx = Producer::<u64>::create(region, 64).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 64).unwrap();
    // SAFETY: the word is 4-aligned inside the header; every access to it
    // (ours and the handles') is atomic.
    let word = unsafe { AtomicU32::from_ptr(buf.base().add(PRODUCER_CLOSED_OFFSET).cast()) };
    struct Movable<T>(T);
    // SAFETY: the producer points into `buf`, which outlives the thread
    // (joined before `buf` is dropped).
    unsafe impl<T> Send for Movable<T> {}
    let mut tx_box = Movable(&mut tx);
    std::thread::scope(|s| {
        let tx = &mut tx_box;
        let writer = s.spawn(move || {
            let tx = &mut tx.0;
            let _ = tx.close(); // closed before anything was sent
            let mut next = 0u64;
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for round in 0..20_000u64 {
                if tx.push(next).is_ok() {
                    next += 1;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if round % 7 == 0 {
                    word.store(seed as u32 | 1, Ordering::Relaxed);
                }
            }
            next
        });
        let mut expected = 0u64;
        loop {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, expected, "in order");
                    expected += 1;
                }
                Err(PopError::Empty) => {
                    if rx.end_of_stream().unwrap() {
                        break;
                    }
                }
                Err(e) => panic!("honest positions: {e}"),
            }
        }
        let sent = writer.join().unwrap();
        assert!(expected <= sent);
    });
    drop((tx, rx));
    assert!(buf.guards_intact());
}
