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
//! assertions. Message-ring header words are loom atomics of their own
//! (one per 8 bytes), so a header taken from the wrong lap shows as a
//! stale or reordered message, or as a corruption panic.
#![cfg(loom)]

use core::ptr::NonNull;
use std::collections::VecDeque;

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
    /// Closes the stream: whether to wake.
    fn close(&mut self) -> bool;
}

/// One consuming handle, as the stream driver sees it.
trait Recv {
    /// Tries to receive item `i` and checks it: `None` if empty, else
    /// whether to wake.
    fn try_recv(&mut self, i: usize) -> Option<bool>;
    fn prepare_wait(&mut self) -> WaitCheck;
    fn finish_wait(&mut self);
    /// Whether the stream has ended (call on an empty ring).
    fn end_of_stream(&mut self) -> bool;
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

/// The producer sends `items` items and closes the stream (waking the
/// consumer if the close says so); the consumer receives until the ring
/// is empty *and* `end_of_stream` says the stream ended, and must have
/// received every item by then. A close whose mark could be seen before
/// the last publication (a Relaxed store or load of the closed word)
/// fails the count; a close that does not wake a sleeping consumer
/// deadlocks, which loom reports.
fn closing_pair(items: usize, mut tx: impl Sender, mut rx: impl Recv) {
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
            if tx.close() {
                wake_consumer.notify();
            }
        })
    };
    let mut expected = 0;
    loop {
        match rx.try_recv(expected) {
            Some(wake) => {
                if wake {
                    wake_producer.notify();
                }
                expected += 1;
            }
            None => {
                if rx.end_of_stream() {
                    break;
                }
                if rx.prepare_wait() == WaitCheck::Sleep {
                    wake_consumer.wait();
                    rx.finish_wait();
                }
            }
        }
    }
    assert_eq!(
        expected, items,
        "the end was reported before everything arrived"
    );
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
    fn close(&mut self) -> bool {
        self.0.close()
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
    fn end_of_stream(&mut self) -> bool {
        self.0.end_of_stream().unwrap()
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

/// A producer that checks for a sleeping consumer only when it closes:
/// no fence of a wake-up check lies between its last publication and its
/// close, so only the close's own Release orders the two (a SeqCst fence
/// before a Relaxed store would act as a release fence and hide the bug
/// these models look for).
struct QuietElemTx(Producer<u32>);

impl Sender for QuietElemTx {
    fn try_send(&mut self, i: usize) -> Option<bool> {
        match self.0.push(i as u32) {
            Ok(()) => Some(false),
            Err(PushError::Full(_)) => None,
            Err(e) => panic!("{e}"),
        }
    }
    fn prepare_wait(&mut self, _: usize) -> WaitCheck {
        self.0.prepare_wait(1).unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
    fn close(&mut self) -> bool {
        self.0.close()
    }
}

/// [`QuietElemTx`] for the message ring.
struct QuietMsgTx(MsgProducer);

impl Sender for QuietMsgTx {
    fn try_send(&mut self, i: usize) -> Option<bool> {
        match self.0.push(&message(i)) {
            Ok(()) => Some(false),
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
    fn close(&mut self) -> bool {
        self.0.close()
    }
}

#[test]
fn the_end_of_stream_comes_after_every_element_and_wakes_a_sleeper() {
    // Capacity 1: the producer also sleeps for room before it closes.
    for (capacity, items) in [(1, 2), (2, 2)] {
        model(move || {
            let mut buf = Buffer::new::<u32>(capacity);
            let region = buf.region();
            let tx = Producer::<u32>::create(region, capacity).unwrap();
            let rx = Consumer::<u32>::attach(region, capacity).unwrap();
            closing_pair(items, ElemTx(tx, false), ElemRx(rx, false));
            drop(buf);
        });
    }
}

#[test]
fn the_end_of_stream_is_ordered_by_the_close_itself() {
    model(|| {
        let mut buf = Buffer::new::<u32>(2);
        let region = buf.region();
        let tx = Producer::<u32>::create(region, 2).unwrap();
        let rx = Consumer::<u32>::attach(region, 2).unwrap();
        closing_pair(2, QuietElemTx(tx), ElemRx(rx, false));
        drop(buf);
    });
    model(|| {
        let mut buf = Buffer::new::<u8>(32);
        let region = buf.region();
        let tx = MsgProducer::create(region, 32, 8).unwrap();
        let rx = MsgConsumer::attach(region, 32, 8).unwrap();
        closing_pair(
            2,
            QuietMsgTx(tx),
            MsgRx(rx, Api::PushPop, message, VecDeque::new()),
        );
        drop(buf);
    });
}

#[test]
fn the_end_of_stream_comes_after_every_message_and_wakes_a_sleeper() {
    const CAP: usize = 32;
    const MAX: usize = 8;
    for api in [Api::PushPop, Api::Batch] {
        model(move || {
            let mut buf = Buffer::new::<u8>(CAP);
            let region = buf.region();
            let tx = MsgProducer::create(region, CAP, MAX).unwrap();
            let rx = MsgConsumer::attach(region, CAP, MAX).unwrap();
            closing_pair(
                2,
                MsgTx(tx, api, message),
                MsgRx(rx, api, message, VecDeque::new()),
            );
            drop(buf);
        });
    }
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

/// How a message-ring model moves messages.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    /// `reserve`/`commit`, `read`/`release`.
    InPlace,
    /// `push`/`pop`, `needs_wake` after each.
    PushPop,
    /// `push_many` of one message, `recv_many` of all there are: the
    /// batch paths (position published once per batch, one wake check).
    Batch,
}

/// The message ring, through the API of `Api`, with message lengths from
/// `lengths`.
struct MsgTx(MsgProducer, Api, fn(usize) -> Vec<u8>);
struct MsgRx(MsgConsumer, Api, fn(usize) -> Vec<u8>, VecDeque<Vec<u8>>);

impl Sender for MsgTx {
    fn try_send(&mut self, i: usize) -> Option<bool> {
        let MsgTx(tx, api, message) = self;
        let msg = message(i);
        let sent = match api {
            Api::InPlace => tx.reserve(msg.len()).map(|mut reservation| {
                reservation.copy_from_slice(&msg);
                reservation.commit()
            }),
            Api::PushPop => tx.push(&msg).map(|()| tx.needs_wake()),
            Api::Batch => match tx.push_many(&[&msg]) {
                Ok(batch) if batch.messages == 0 => Err(MsgPushError::Full),
                Ok(batch) => Ok(batch.wake),
                Err(e) => Err(e),
            },
        };
        match sent {
            Ok(wake) => Some(wake),
            Err(MsgPushError::Full) => None,
            Err(e) => panic!("{e}"),
        }
    }
    fn prepare_wait(&mut self, i: usize) -> WaitCheck {
        self.0.prepare_wait((self.2)(i).len()).unwrap()
    }
    fn finish_wait(&mut self) {
        self.0.finish_wait()
    }
    fn close(&mut self) -> bool {
        self.0.close()
    }
}

impl Recv for MsgRx {
    fn try_recv(&mut self, i: usize) -> Option<bool> {
        let MsgRx(rx, api, message, received) = self;
        let mut out = [0u8; 8];
        let (n, wake) = match api {
            Api::InPlace => match rx.read() {
                Ok(record) => {
                    let n = record.len();
                    record.copy_to_slice(&mut out[..n]);
                    (n, record.release())
                }
                Err(PopError::Empty) => return None,
                Err(e) => panic!("{e}"),
            },
            Api::PushPop => match rx.pop(&mut out) {
                Ok(n) => (n, rx.needs_wake()),
                Err(MsgPopError::Empty) => return None,
                Err(e) => panic!("{e}"),
            },
            Api::Batch => {
                // Everything there now in one batch (one position store,
                // one wake check); the driver takes one message per call.
                let mut wake = false;
                if received.is_empty() {
                    let batch = rx
                        .recv_many(usize::MAX, |record| {
                            let mut m = vec![0; record.len()];
                            record.copy_to_slice(&mut m);
                            received.push_back(m);
                        })
                        .unwrap();
                    if batch.messages == 0 {
                        return None;
                    }
                    wake = batch.wake;
                }
                let m = received.pop_front().unwrap();
                out[..m.len()].copy_from_slice(&m);
                (m.len(), wake)
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
    fn end_of_stream(&mut self) -> bool {
        self.0.end_of_stream().unwrap()
    }
}

/// Message `i` of the exact-fill models: 8 bytes each, records of 16, so
/// that two fill the 32-byte ring to the last byte. The producer then
/// writes no pending word after the second, and the consumer, at position
/// 32, finds the first record's header (the previous lap's tag) until the
/// third record is written there.
fn full_message(i: usize) -> Vec<u8> {
    (0..8).map(|k| (i * 16 + k + 1) as u8).collect()
}

/// The message ring's stream: 32 bytes with messages of at most 8 (one
/// tracking cell per 8 bytes).
fn message_stream(messages: usize, api: Api, message: fn(usize) -> Vec<u8>) {
    const CAP: usize = 32;
    const MAX: usize = 8;
    model(move || {
        let mut buf = Buffer::new::<u8>(CAP);
        let region = buf.region();
        let tx = MsgProducer::create(region, CAP, MAX).unwrap();
        let rx = MsgConsumer::attach(region, CAP, MAX).unwrap();
        stream_pair(
            messages,
            MsgTx(tx, api, message),
            MsgRx(rx, api, message, VecDeque::new()),
        );
        drop(buf);
    });
}

// With `message`, the third message skips the tail and must wait for the
// first to be released.

#[test]
fn message_ring_no_lost_wakeup_or_stale_read_across_a_skip_with_push_pop() {
    message_stream(3, Api::PushPop, message);
}

#[test]
fn message_ring_no_lost_wakeup_or_stale_read_across_a_skip_in_place() {
    message_stream(3, Api::InPlace, message);
}

#[test]
fn message_ring_no_lost_wakeup_or_stale_read_across_a_skip_in_batches() {
    message_stream(3, Api::Batch, message);
}

#[test]
fn message_ring_never_takes_the_previous_laps_header_for_a_new_one() {
    message_stream(3, Api::PushPop, full_message);
}

#[test]
fn message_ring_never_takes_the_previous_laps_header_for_a_new_one_in_place() {
    message_stream(3, Api::InPlace, full_message);
}

#[test]
fn message_ring_never_takes_the_previous_laps_header_for_a_new_one_in_batches() {
    message_stream(3, Api::Batch, full_message);
}
