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

/// One producing handle, as the stream driver sees it.
trait Sender: Send + 'static {
    /// Tries to send item `i`: `None` if full, else whether to wake.
    fn try_send(&mut self, i: usize) -> Option<bool>;
    /// Announces a wait for room for item `i`.
    fn prepare_wait(&mut self, i: usize) -> WaitCheck;
    fn finish_wait(&mut self);
}

/// One consuming handle, as the stream driver sees it.
trait Recv {
    /// Tries to receive item `i` and checks it: `None` if empty, else
    /// whether to wake.
    fn try_recv(&mut self, i: usize) -> Option<bool>;
    fn prepare_wait(&mut self) -> WaitCheck;
    fn finish_wait(&mut self);
}

/// The producer sends `items` items, sleeping when full; the consumer
/// receives them, sleeping when empty. Both use only `prepare_wait` and
/// the wake flags (`needs_wake`, commit, release) to decide whether to
/// block or wake.
fn stream_pair(items: usize, mut tx: impl Sender, mut rx: impl Recv) {
    let wake_consumer = Arc::new(Notify::new());
    let wake_producer = Arc::new(Notify::new());
    let producer = {
        let (wake_consumer, wake_producer) = (wake_consumer.clone(), wake_producer.clone());
        thread::spawn(move || {
            let mut next = 0;
            while next < items {
                match tx.try_send(next) {
                    Some(wake) => {
                        if wake {
                            wake_consumer.notify();
                        }
                        next += 1;
                    }
                    None => {
                        if tx.prepare_wait(next) == WaitCheck::Sleep {
                            wake_producer.wait();
                            tx.finish_wait();
                        }
                    }
                }
            }
        })
    };
    let mut expected = 0;
    while expected < items {
        match rx.try_recv(expected) {
            Some(wake) => {
                if wake {
                    wake_producer.notify();
                }
                expected += 1;
            }
            None => {
                if rx.prepare_wait() == WaitCheck::Sleep {
                    wake_consumer.wait();
                    rx.finish_wait();
                }
            }
        }
    }
    producer.join().unwrap();
}

/// The element ring, through `push`/`pop` or chunks of one.
struct ElemTx(Producer<u32>, bool);
struct ElemRx(Consumer<u32>, bool);

impl Sender for ElemTx {
    fn try_send(&mut self, i: usize) -> Option<bool> {
        let ElemTx(tx, chunked) = self;
        if *chunked {
            let mut chunk = tx.write_chunk(1).unwrap();
            if chunk.is_empty() {
                return None;
            }
            chunk.set(0, i as u32);
            Some(chunk.commit_all())
        } else {
            match tx.push(i as u32) {
                Ok(()) => Some(tx.needs_wake()),
                Err(PushError::Full(_)) => None,
                Err(e) => panic!("{e}"),
            }
        }
    }
    fn prepare_wait(&mut self, _: usize) -> WaitCheck {
        self.0.prepare_wait(1).unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
}

impl Recv for ElemRx {
    fn try_recv(&mut self, i: usize) -> Option<bool> {
        let ElemRx(rx, chunked) = self;
        let (value, wake) = if *chunked {
            let chunk = rx.read_chunk(1).unwrap();
            if chunk.is_empty() {
                return None;
            }
            let v = chunk.get(0);
            (v, chunk.release_all())
        } else {
            match rx.pop() {
                Ok(v) => (v, rx.needs_wake()),
                Err(PopError::Empty) => return None,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(value, i as u32, "stale or reordered value");
        Some(wake)
    }
    fn prepare_wait(&mut self) -> WaitCheck {
        self.0.prepare_wait().unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
}

fn stream(capacity: usize, items: usize, chunked: bool) {
    model(move || {
        let mut buf = Buffer::new::<u32>(capacity);
        let region = buf.region();
        let tx = Producer::<u32>::create(region, capacity).unwrap();
        let rx = Consumer::<u32>::attach(region, capacity).unwrap();
        stream_pair(items, ElemTx(tx, chunked), ElemRx(rx, chunked));
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

/// The message ring, through `reserve`/`read` (in place) or `push`/`pop`.
struct MsgTx(MsgProducer, bool);
struct MsgRx(MsgConsumer, bool);

impl Sender for MsgTx {
    fn try_send(&mut self, i: usize) -> Option<bool> {
        let MsgTx(tx, in_place) = self;
        let msg = message(i);
        let sent = if *in_place {
            tx.reserve(msg.len()).map(|mut reservation| {
                reservation.copy_from_slice(&msg);
                reservation.commit()
            })
        } else {
            tx.push(&msg).map(|()| tx.needs_wake())
        };
        match sent {
            Ok(wake) => Some(wake),
            Err(MsgPushError::Full) => None,
            Err(e) => panic!("{e}"),
        }
    }
    fn prepare_wait(&mut self, i: usize) -> WaitCheck {
        self.0.prepare_wait(message(i).len()).unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
}

impl Recv for MsgRx {
    fn try_recv(&mut self, i: usize) -> Option<bool> {
        let MsgRx(rx, in_place) = self;
        let mut out = [0u8; 8];
        let (n, wake) = if *in_place {
            match rx.read() {
                Ok(record) => {
                    let n = record.len();
                    record.copy_to_slice(&mut out[..n]);
                    (n, record.release())
                }
                Err(PopError::Empty) => return None,
                Err(e) => panic!("{e}"),
            }
        } else {
            match rx.pop(&mut out) {
                Ok(n) => (n, rx.needs_wake()),
                Err(MsgPopError::Empty) => return None,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(out[..n], message(i), "stale or reordered message");
        Some(wake)
    }
    fn prepare_wait(&mut self) -> WaitCheck {
        self.0.prepare_wait().unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
}

/// The message ring's stream: 32 bytes with messages of at most 8 (one
/// tracking cell per 8 bytes), so that the third message skips the tail
/// and must wait for the first to be released.
fn message_stream(messages: usize, in_place: bool) {
    const CAP: usize = 32;
    const MAX: usize = 8;
    model(move || {
        let mut buf = Buffer::new::<u8>(CAP);
        let region = buf.region();
        let tx = MsgProducer::create(region, CAP, MAX).unwrap();
        let rx = MsgConsumer::attach(region, CAP, MAX).unwrap();
        stream_pair(messages, MsgTx(tx, in_place), MsgRx(rx, in_place));
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
