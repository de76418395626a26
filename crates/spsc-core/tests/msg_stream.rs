//! Two threads stream messages of random sizes (0 and the maximum
//! included) through a message ring, with every API on both sides (batches
//! included), random stalls, and the sleep/wake protocol (thread park/unpark
//! as the wake-up). The consumer checks every message's length and bytes,
//! both sides compare checksums, and no sleep may last until its timeout:
//! a lost wake-up fails the test.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use spsc_core::{
    MsgConsumer, MsgLayout, MsgPopError, MsgProducer, MsgPushError, PopError, RawRegion, WaitCheck,
};

const CAP: usize = 4096;
const MAX: usize = 1500;
/// Long enough that only a lost wake-up reaches it (a healthy run never
/// times out, so the length costs nothing; 10 s rather than 2 so that a
/// machine that stalls a thread for seconds is less likely to be taken
/// for a loss: see `docs/membarrier/README.md`, "A timeout is not yet a
/// lost wake-up").
const SLEEP: Duration = Duration::from_secs(10);

fn total_bytes() -> u64 {
    if cfg!(debug_assertions) {
        48 << 20
    } else {
        1 << 30
    }
}

struct SendRegion(RawRegion);
// SAFETY: the buffer outlives both threads; all access goes through handles.
unsafe impl Send for SendRegion {}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The length of message `i`: both sides derive it from the same seed.
fn length(i: u64) -> usize {
    let mut s = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let r = next(&mut s);
    match r % 8 {
        0 => 0,
        1 => MAX,
        2..=4 => (r >> 16) as usize % 64,
        _ => (r >> 16) as usize % (MAX + 1),
    }
}

fn byte(i: u64, k: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ (k as u8).wrapping_add((i >> 8) as u8)
}

fn fill(i: u64, dst: &mut [u8]) {
    for (k, b) in dst.iter_mut().enumerate() {
        *b = byte(i, k);
    }
}

fn checksum(sum: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(sum, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Sleeps until unparked; counts a sleep that ran to its timeout.
fn sleep(lost: &AtomicU64) {
    let start = Instant::now();
    thread::park_timeout(SLEEP);
    if start.elapsed() >= SLEEP {
        lost.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn two_threads_stream_random_sized_messages_intact_and_in_order() {
    let layout = MsgLayout::new(CAP, MAX).unwrap();
    let mut buf = common::Buffer::new(layout.region_size(), 2);
    let region = SendRegion(buf.region());
    let consumer_thread: Arc<OnceLock<thread::Thread>> = Arc::default();
    let lost = Arc::new(AtomicU64::new(0));

    let tx_thread = {
        let (consumer_thread, lost) = (consumer_thread.clone(), lost.clone());
        thread::spawn(move || {
            let r = region;
            let mut tx = MsgProducer::create(r.0, CAP, MAX).unwrap();
            let mut state = 0x1234_5678_9abc_def1u64;
            let mut msg = vec![0u8; MAX];
            let (mut i, mut bytes, mut sum) = (0u64, 0u64, 0u64);
            while bytes < total_bytes() {
                let len = length(i);
                fill(i, &mut msg[..len]);
                let r = next(&mut state);
                if r % 4 == 3 {
                    // A batch of up to three messages, none past the end
                    // of the stream (the consumer stops there).
                    let mut batch = Vec::new();
                    let mut end = bytes;
                    while batch.len() < 3 && end < total_bytes() {
                        let k = i + batch.len() as u64;
                        let mut m = vec![0u8; length(k)];
                        fill(k, &mut m);
                        end += m.len() as u64;
                        batch.push(m);
                    }
                    let sent = tx.push_many(&batch).unwrap();
                    if sent.wake {
                        consumer_thread.wait().unpark();
                    }
                    for m in &batch[..sent.messages] {
                        sum = checksum(sum, m);
                        bytes += m.len() as u64;
                        i += 1;
                    }
                    if sent.messages == 0 {
                        if tx.prepare_wait(batch[0].len()).unwrap() == WaitCheck::Sleep {
                            sleep(&lost);
                        }
                        tx.finish_wait();
                    }
                    continue;
                }
                let sent = match r % 3 {
                    0 => match tx.push(&msg[..len]) {
                        Ok(()) => {
                            if tx.needs_wake() {
                                consumer_thread.wait().unpark();
                            }
                            true
                        }
                        Err(MsgPushError::Full) => false,
                        Err(e) => panic!("{e}"),
                    },
                    // Reserve the most, write in two pieces, keep `len`.
                    1 => match tx.reserve(MAX) {
                        Ok(mut reservation) => {
                            reservation.write_at(len / 3, &msg[len / 3..len]);
                            reservation.write_at(0, &msg[..len / 3]);
                            reservation.truncate(len);
                            if reservation.commit() {
                                consumer_thread.wait().unpark();
                            }
                            true
                        }
                        Err(MsgPushError::Full) => false,
                        Err(e) => panic!("{e}"),
                    },
                    _ => match tx.reserve(len) {
                        Ok(mut reservation) => {
                            reservation.copy_from_slice(&msg[..len]);
                            if reservation.commit() {
                                consumer_thread.wait().unpark();
                            }
                            true
                        }
                        Err(MsgPushError::Full) => false,
                        Err(e) => panic!("{e}"),
                    },
                };
                if sent {
                    sum = checksum(sum, &msg[..len]);
                    bytes += len as u64;
                    i += 1;
                    if r % 8192 == 0 {
                        thread::sleep(Duration::from_micros(200)); // random stall
                    }
                } else {
                    // Full: announce, re-check, sleep until the consumer
                    // frees room for the message we hold.
                    let want = if r % 3 == 1 { MAX } else { len };
                    if tx.prepare_wait(want).unwrap() == WaitCheck::Sleep {
                        sleep(&lost);
                    }
                    tx.finish_wait();
                }
            }
            (i, sum)
        })
    };

    let _ = consumer_thread.set(thread::current());
    let producer = tx_thread.thread().clone();
    let mut rx = loop {
        match MsgConsumer::attach(buf.region(), CAP, MAX) {
            Ok(rx) => break rx,
            // The producer has not written the header yet.
            Err(spsc_core::SetupError::BadMagic { .. }) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    let mut state = 0xfeed_beef_u64;
    let mut out = vec![0u8; MAX];
    let mut expected = vec![0u8; MAX];
    let (mut i, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    while bytes < total_bytes() {
        let r = next(&mut state);
        if r % 4 == 3 {
            // A batch of up to four messages, each checked in place.
            let batch = rx
                .recv_many(4, |record| {
                    let n = record.len();
                    assert_eq!(n, length(i), "message {i} has the wrong length");
                    record.copy_to_slice(&mut out[..n]);
                    fill(i, &mut expected[..n]);
                    assert!(out[..n] == expected[..n], "message {i} is corrupted");
                    sum = checksum(sum, &out[..n]);
                    bytes += n as u64;
                    i += 1;
                })
                .unwrap();
            if batch.wake {
                producer.unpark();
            }
            if batch.messages == 0 {
                if rx.prepare_wait().unwrap() == WaitCheck::Sleep {
                    sleep(&lost);
                }
                rx.finish_wait();
            }
            continue;
        }
        let got = match r % 3 {
            0 => match rx.pop(&mut out) {
                Ok(n) => {
                    if rx.needs_wake() {
                        producer.unpark();
                    }
                    Some(n)
                }
                Err(MsgPopError::Empty) => None,
                Err(e) => panic!("{e}"),
            },
            // Too small a buffer first: the message must stay.
            1 => match rx.pop(&mut out[..length(i).saturating_sub(1)]) {
                Err(MsgPopError::BufferTooSmall { len, .. }) => {
                    assert_eq!(len, length(i));
                    let n = rx.pop(&mut out).unwrap();
                    if rx.needs_wake() {
                        producer.unpark();
                    }
                    Some(n)
                }
                Ok(0) => Some(0),
                Err(MsgPopError::Empty) => None,
                other => panic!("{other:?}"),
            },
            _ => match rx.read() {
                Ok(record) => {
                    let n = record.len();
                    let half = n / 2;
                    record.read_at(half, &mut out[half..n]);
                    record.read_at(0, &mut out[..half]);
                    if record.release() {
                        producer.unpark();
                    }
                    Some(n)
                }
                Err(PopError::Empty) => None,
                Err(e) => panic!("{e}"),
            },
        };
        match got {
            Some(n) => {
                assert_eq!(n, length(i), "message {i} has the wrong length");
                fill(i, &mut expected[..n]);
                assert!(out[..n] == expected[..n], "message {i} is corrupted");
                sum = checksum(sum, &out[..n]);
                bytes += n as u64;
                i += 1;
                if r % 8192 == 0 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
            None => {
                if rx.prepare_wait().unwrap() == WaitCheck::Sleep {
                    sleep(&lost);
                }
                rx.finish_wait();
            }
        }
    }
    let (sent, sent_sum) = tx_thread.join().unwrap();
    assert_eq!((i, sum), (sent, sent_sum), "counts or checksums differ");
    assert_eq!(rx.pending_bytes().unwrap(), 0);
    assert_eq!(lost.load(Ordering::Relaxed), 0, "a wake-up was lost");
    assert!(buf.guards_intact());
}
