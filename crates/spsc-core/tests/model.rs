//! Model-based tests: random sequences of every operation, over random
//! capacities and element sizes, checked against a `VecDeque`.

mod common;

use std::collections::VecDeque;
use std::fmt::Debug;

use proptest::prelude::*;
use spsc_core::{Consumer, PopError, Producer, PushError, WaitCheck};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Debug, Clone)]
enum Op {
    Push,
    Pop,
    PushSlice(usize),
    PopSlice(usize),
    /// Reserve up to `max`, write all, commit `commit` of them (clamped).
    WriteChunk {
        max: usize,
        commit: usize,
    },
    /// Read up to `max`, check all, release `release` of them (clamped).
    ReadChunk {
        max: usize,
        release: usize,
    },
    /// Consumer announces sleep (and stays asleep until its next operation).
    ConsumerWaits,
    /// Producer checks whether the consumer needs a wake-up.
    ProducerChecks,
    /// Producer announces it waits for `want` slots.
    ProducerWaits(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Push),
        Just(Op::Pop),
        (0usize..80).prop_map(Op::PushSlice),
        (0usize..80).prop_map(Op::PopSlice),
        (0usize..80, 0usize..80).prop_map(|(max, commit)| Op::WriteChunk { max, commit }),
        (0usize..80, 0usize..80).prop_map(|(max, release)| Op::ReadChunk { max, release }),
        Just(Op::ConsumerWaits),
        Just(Op::ProducerChecks),
        (1usize..80).prop_map(Op::ProducerWaits),
    ]
}

/// Element `i` of the stream: a byte pattern derived from `i`, so that any
/// misplaced or stale element shows.
fn element<T: FromBytes>(i: u64) -> T {
    let mut bytes = vec![0u8; size_of::<T>()];
    for (k, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k as u64 * 7) >> (k % 5)) as u8 ^ (i as u8);
    }
    T::read_from_bytes(&bytes).unwrap()
}

fn run<T>(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError>
where
    T: FromBytes + IntoBytes + Immutable + Copy + PartialEq + Debug,
{
    let mut buf = common::buffer_for::<T>(capacity);
    let region = buf.region();
    let mut tx = Producer::<T>::create(region, capacity).unwrap();
    let mut rx = Consumer::<T>::attach(region, capacity).unwrap();
    let mut model: VecDeque<T> = VecDeque::new();
    let mut next = 0u64;
    let mut fresh = |n: usize| -> Vec<T> {
        (0..n)
            .map(|_| {
                next += 1;
                element::<T>(next)
            })
            .collect()
    };
    // Whether the consumer announced sleep and has not withdrawn it, and
    // whether the producer already reported the wake-up for it.
    let mut asleep = false;
    let mut woken = false;

    for op in ops {
        if asleep && matches!(op, Op::Pop | Op::PopSlice(_) | Op::ReadChunk { .. }) {
            rx.finish_wait();
            asleep = false;
        }
        match *op {
            Op::Push => {
                let v = fresh(1)[0];
                match tx.push(v) {
                    Ok(()) => model.push_back(v),
                    Err(PushError::Full(back)) => {
                        prop_assert_eq!(model.len(), capacity);
                        prop_assert_eq!(back, v);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Pop => match rx.pop() {
                Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                Err(PopError::Empty) => prop_assert!(model.is_empty()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            },
            Op::PushSlice(n) => {
                let src = fresh(n);
                let pushed = tx.push_slice(&src).unwrap();
                prop_assert_eq!(pushed, n.min(capacity - model.len()));
                model.extend(&src[..pushed]);
            }
            Op::PopSlice(n) => {
                let mut dst = vec![element::<T>(0); n];
                let popped = rx.pop_slice(&mut dst).unwrap();
                prop_assert_eq!(popped, n.min(model.len()));
                for v in &dst[..popped] {
                    prop_assert_eq!(Some(*v), model.pop_front());
                }
            }
            Op::WriteChunk { max, commit } => {
                let free = capacity - model.len();
                let mut chunk = tx.write_chunk(max).unwrap();
                prop_assert_eq!(chunk.len(), max.min(free));
                let src = fresh(chunk.len());
                // Alternate the two ways of writing in place.
                if commit % 2 == 0 {
                    prop_assert_eq!(chunk.copy_from_slice(&src), src.len());
                } else {
                    for (i, v) in src.iter().enumerate() {
                        chunk.set(i, *v);
                    }
                }
                let n = commit.min(chunk.len());
                let wake = chunk.commit(n);
                prop_assert_eq!(wake, asleep && !woken);
                woken |= wake;
                model.extend(&src[..n]);
            }
            Op::ReadChunk { max, release } => {
                let chunk = rx.read_chunk(max).unwrap();
                prop_assert_eq!(chunk.len(), max.min(model.len()));
                let mut copied = vec![element::<T>(0); chunk.len()];
                prop_assert_eq!(chunk.copy_to_slice(&mut copied), chunk.len());
                for (i, v) in model.iter().take(chunk.len()).enumerate() {
                    prop_assert_eq!(chunk.get(i), *v);
                    prop_assert_eq!(copied[i], *v);
                }
                let n = release.min(chunk.len());
                let _ = chunk.release(n);
                model.drain(..n);
            }
            Op::ConsumerWaits => {
                if asleep {
                    rx.finish_wait();
                }
                match rx.prepare_wait().unwrap() {
                    WaitCheck::Ready => {
                        prop_assert!(!model.is_empty());
                        asleep = false;
                    }
                    WaitCheck::Sleep => {
                        prop_assert!(model.is_empty());
                        asleep = true;
                        woken = false;
                    }
                }
            }
            Op::ProducerChecks => {
                let wake = tx.needs_wake();
                prop_assert_eq!(wake, asleep && !woken);
                woken |= wake;
            }
            Op::ProducerWaits(want) => {
                let free = capacity - model.len();
                match tx.prepare_wait(want).unwrap() {
                    WaitCheck::Ready => prop_assert!(free >= want.min(capacity)),
                    WaitCheck::Sleep => {
                        prop_assert!(free < want.min(capacity));
                        prop_assert!(rx.needs_wake());
                        prop_assert!(!rx.needs_wake());
                        tx.finish_wait();
                    }
                }
            }
        }
        prop_assert_eq!(tx.slots().unwrap(), capacity - model.len());
        prop_assert_eq!(rx.slots().unwrap(), model.len());
    }
    Ok(())
}

fn capacity() -> impl Strategy<Value = usize> {
    (0u32..7).prop_map(|k| 1usize << k)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn u8_ring_matches_vecdeque(cap in capacity(), ops in prop::collection::vec(op(), 0..100)) {
        run::<u8>(cap, &ops)?;
    }

    #[test]
    fn u64_ring_matches_vecdeque(cap in capacity(), ops in prop::collection::vec(op(), 0..100)) {
        run::<u64>(cap, &ops)?;
    }

    #[test]
    fn odd_sized_ring_matches_vecdeque(cap in capacity(), ops in prop::collection::vec(op(), 0..100)) {
        run::<[u8; 5]>(cap, &ops)?;
    }

    #[test]
    fn wide_ring_matches_vecdeque(cap in capacity(), ops in prop::collection::vec(op(), 0..100)) {
        run::<[u32; 9]>(cap, &ops)?;
    }
}
