//! Two threads stream a long sequence of `u64` through a ring with random
//! batch sizes, every API, random stalls, and the sleep/wake protocol (with
//! thread park/unpark as the wake-up); the consumer checks every value and
//! both sides compare checksums.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use spsc_core::{Consumer, PopError, Producer, PushError, RawRegion, WaitCheck};

fn total() -> u64 {
    if cfg!(debug_assertions) {
        20_000_000
    } else {
        100_000_000
    }
}

struct SendRegion(RawRegion);
// SAFETY: the buffer outlives both threads; all access goes through handles.
unsafe impl Send for SendRegion {}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn two_threads_stream_every_value_in_order() {
    const CAP: usize = 1024;
    let mut buf = common::buffer_for::<u64>(CAP);
    let region = SendRegion(buf.region());
    let consumer_thread: Arc<std::sync::OnceLock<thread::Thread>> = Arc::default();

    let tx_thread = {
        let consumer_thread = consumer_thread.clone();
        thread::spawn(move || {
            let r = region;
            let mut tx = Producer::<u64>::create(r.0, CAP).unwrap();
            let wake_consumer = |tx: &mut Producer<u64>| {
                if tx.needs_wake() {
                    consumer_thread.wait().unpark();
                }
            };
            let mut state = 0x1234_5678_9abc_def1u64;
            let mut next = 0u64;
            let mut sum = 0u64;
            let mut batch = vec![0u64; 300];
            while next < total() {
                let r = rng(&mut state);
                let want = (r % 300 + 1).min(total() - next) as usize;
                let sent = match r % 3 {
                    0 => match tx.push(next) {
                        Ok(()) => 1,
                        Err(PushError::Full(_)) => 0,
                        Err(e) => panic!("{e}"),
                    },
                    1 => {
                        for (i, v) in batch[..want].iter_mut().enumerate() {
                            *v = next + i as u64;
                        }
                        tx.push_slice(&batch[..want]).unwrap()
                    }
                    _ => {
                        let mut chunk = tx.write_chunk(want).unwrap();
                        for i in 0..chunk.len() {
                            chunk.set(i, next + i as u64);
                        }
                        let n = chunk.len();
                        if chunk.commit_all() {
                            consumer_thread.wait().unpark();
                        }
                        n
                    }
                };
                for v in next..next + sent as u64 {
                    sum = sum.wrapping_add(v.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                }
                next += sent as u64;
                wake_consumer(&mut tx);
                if sent == 0 {
                    // Full: announce, re-check, sleep until the consumer
                    // frees room.
                    if tx.prepare_wait(1).unwrap() == WaitCheck::Sleep {
                        thread::park_timeout(Duration::from_millis(50));
                    }
                    tx.finish_wait();
                } else if r % 4096 == 0 {
                    thread::sleep(Duration::from_micros(200)); // random stall
                }
            }
            sum
        })
    };

    let _ = consumer_thread.set(thread::current());
    let mut rx = loop {
        match Consumer::<u64>::attach(buf.region(), CAP) {
            Ok(rx) => break rx,
            // The producer has not written the header yet.
            Err(spsc_core::SetupError::BadMagic { .. }) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    let producer = tx_thread.thread().clone();
    let mut state = 0xfeed_beef_u64;
    let mut expected = 0u64;
    let mut sum = 0u64;
    let mut out = vec![0u64; 300];
    while expected < total() {
        let r = rng(&mut state);
        let want = (r % 300) as usize + 1;
        let got = match r % 3 {
            0 => match rx.pop() {
                Ok(v) => {
                    out[0] = v;
                    1
                }
                Err(PopError::Empty) => 0,
                Err(e) => panic!("{e}"),
            },
            1 => rx.pop_slice(&mut out[..want]).unwrap(),
            _ => {
                let chunk = rx.read_chunk(want).unwrap();
                let n = chunk.copy_to_slice(&mut out);
                if chunk.release_all() {
                    producer.unpark();
                }
                n
            }
        };
        for &v in &out[..got] {
            assert_eq!(v, expected, "value out of order");
            sum = sum.wrapping_add(v.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            expected += 1;
        }
        if rx.needs_wake() {
            producer.unpark();
        }
        if got == 0 {
            if rx.prepare_wait().unwrap() == WaitCheck::Sleep {
                thread::park_timeout(Duration::from_millis(50));
            }
            rx.finish_wait();
        } else if r % 4096 == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    let sent_sum = tx_thread.join().unwrap();
    assert_eq!(sum, sent_sum, "checksums differ");
    assert_eq!(rx.slots().unwrap(), 0);
    assert!(buf.guards_intact());
}
