//! Loom model checks of publication, consumption and the sleep/wake
//! protocol, for the element ring and the message ring, over the very same
//! code (`--cfg loom` swaps in loom's atomics and tracks every slot
//! access; message rings track one cell per 8 bytes).
//!
//! Run with:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p spsc-core --release --test loom
//! ```
//!
//! A lost wake-up shows as a deadlock (both sides blocked on their
//! `Notify`), which loom reports; a stale or racy slot access shows as a
//! causality violation on the slot's tracking cell; a wrong value fails the
//! assertions.
#![cfg(loom)]

use core::ptr::NonNull;

use loom::sync::{Arc, Notify};
use loom::thread;
use spsc_core::{
    Consumer, MsgConsumer, MsgPopError, MsgProducer, MsgPushError, PopError, Producer, PushError,
    RawRegion, RingLayout, WaitCheck,
};

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Line([u8; 128]);

struct Buffer(Box<[Line]>);

impl Buffer {
    fn new<T>(capacity: usize) -> Self {
        let size = RingLayout::new::<T>(capacity).unwrap().region_size();
        Self(vec![Line([0; 128]); size.div_ceil(128)].into_boxed_slice())
    }

    fn region(&mut self) -> RawRegion {
        let len = self.0.len() * 128;
        // SAFETY: the buffer outlives the handles of each model run.
        unsafe { RawRegion::new(NonNull::new(self.0.as_mut_ptr().cast()).unwrap(), len) }
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// The producer sends `items` values into a ring of `capacity`, sleeping
/// when full; the consumer receives them, sleeping when empty. Both use
/// only `prepare_wait`/`needs_wake` to decide whether to block or wake.
fn stream(capacity: usize, items: u32, chunked: bool) {
    model(move || {
        let mut buf = Buffer::new::<u32>(capacity);
        let region = buf.region();
        let mut tx = Producer::<u32>::create(region, capacity).unwrap();
        let mut rx = Consumer::<u32>::attach(region, capacity).unwrap();
        let wake_consumer = Arc::new(Notify::new());
        let wake_producer = Arc::new(Notify::new());

        let producer = {
            let (wake_consumer, wake_producer) = (wake_consumer.clone(), wake_producer.clone());
            thread::spawn(move || {
                let mut next = 0;
                while next < items {
                    let sent = if chunked {
                        let mut chunk = tx.write_chunk(1).unwrap();
                        if chunk.is_empty() {
                            false
                        } else {
                            chunk.set(0, next);
                            if chunk.commit_all() {
                                wake_consumer.notify();
                            }
                            true
                        }
                    } else {
                        match tx.push(next) {
                            Ok(()) => {
                                if tx.needs_wake() {
                                    wake_consumer.notify();
                                }
                                true
                            }
                            Err(PushError::Full(_)) => false,
                            Err(e) => panic!("{e}"),
                        }
                    };
                    if sent {
                        next += 1;
                    } else if tx.prepare_wait(1).unwrap() == WaitCheck::Sleep {
                        wake_producer.wait();
                        tx.finish_wait();
                    }
                }
            })
        };

        let mut expected = 0;
        while expected < items {
            let got = if chunked {
                let chunk = rx.read_chunk(1).unwrap();
                if chunk.is_empty() {
                    None
                } else {
                    let v = chunk.get(0);
                    if chunk.release_all() {
                        wake_producer.notify();
                    }
                    Some(v)
                }
            } else {
                match rx.pop() {
                    Ok(v) => {
                        if rx.needs_wake() {
                            wake_producer.notify();
                        }
                        Some(v)
                    }
                    Err(PopError::Empty) => None,
                    Err(e) => panic!("{e}"),
                }
            };
            match got {
                Some(v) => {
                    assert_eq!(v, expected, "stale or reordered value");
                    expected += 1;
                }
                None => {
                    if rx.prepare_wait().unwrap() == WaitCheck::Sleep {
                        wake_consumer.wait();
                        rx.finish_wait();
                    }
                }
            }
        }
        producer.join().unwrap();
        drop(buf);
    });
}

#[test]
fn no_lost_wakeup_or_stale_read_with_push_pop() {
    stream(1, 3, false);
}

#[test]
fn no_lost_wakeup_or_stale_read_with_chunks() {
    stream(2, 3, true);
}

/// Message `i` of the message-ring models: lengths that make the third
/// record skip the ring's tail (capacity 32: records of 16 and 8 bytes,
/// then 8 bytes left before the end for a record of 16).
fn message(i: usize) -> Vec<u8> {
    let len = [8, 0, 5][i % 3];
    (0..len).map(|k| (i * 16 + k) as u8).collect()
}

/// The message ring's version of `stream`: a ring of 32 bytes with
/// messages of at most 8 (one tracking cell per 8 bytes), sleeping when
/// full or empty, through `reserve`/`read` (`in_place`) or `push`/`pop`.
fn message_stream(messages: usize, in_place: bool) {
    const CAP: usize = 32;
    const MAX: usize = 8;
    model(move || {
        let mut buf = Buffer::new::<u8>(CAP);
        let region = buf.region();
        let mut tx = MsgProducer::create(region, CAP, MAX).unwrap();
        let mut rx = MsgConsumer::attach(region, CAP, MAX).unwrap();
        let wake_consumer = Arc::new(Notify::new());
        let wake_producer = Arc::new(Notify::new());

        let producer = {
            let (wake_consumer, wake_producer) = (wake_consumer.clone(), wake_producer.clone());
            thread::spawn(move || {
                let mut next = 0;
                while next < messages {
                    let msg = message(next);
                    let sent = if in_place {
                        match tx.reserve(msg.len()) {
                            Ok(mut reservation) => {
                                reservation.copy_from_slice(&msg);
                                if reservation.commit() {
                                    wake_consumer.notify();
                                }
                                true
                            }
                            Err(MsgPushError::Full) => false,
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        match tx.push(&msg) {
                            Ok(()) => {
                                if tx.needs_wake() {
                                    wake_consumer.notify();
                                }
                                true
                            }
                            Err(MsgPushError::Full) => false,
                            Err(e) => panic!("{e}"),
                        }
                    };
                    if sent {
                        next += 1;
                    } else if tx.prepare_wait(msg.len()).unwrap() == WaitCheck::Sleep {
                        wake_producer.wait();
                        tx.finish_wait();
                    }
                }
            })
        };

        let mut expected = 0;
        let mut out = [0u8; MAX];
        while expected < messages {
            let got = if in_place {
                match rx.read() {
                    Ok(record) => {
                        let n = record.len();
                        record.copy_to_slice(&mut out[..n]);
                        if record.release() {
                            wake_producer.notify();
                        }
                        Some(n)
                    }
                    Err(PopError::Empty) => None,
                    Err(e) => panic!("{e}"),
                }
            } else {
                match rx.pop(&mut out) {
                    Ok(n) => {
                        if rx.needs_wake() {
                            wake_producer.notify();
                        }
                        Some(n)
                    }
                    Err(MsgPopError::Empty) => None,
                    Err(e) => panic!("{e}"),
                }
            };
            match got {
                Some(n) => {
                    assert_eq!(out[..n], message(expected), "stale or reordered message");
                    expected += 1;
                }
                None => {
                    if rx.prepare_wait().unwrap() == WaitCheck::Sleep {
                        wake_consumer.wait();
                        rx.finish_wait();
                    }
                }
            }
        }
        producer.join().unwrap();
        drop(buf);
    });
}

#[test]
fn message_ring_no_lost_wakeup_or_stale_read_across_a_skip_with_push_pop() {
    message_stream(3, false);
}

#[test]
fn message_ring_no_lost_wakeup_or_stale_read_across_a_skip_in_place() {
    message_stream(3, true);
}
