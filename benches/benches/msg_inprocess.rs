//! Message rings against the element ring: two threads in one process
//! move messages of about 64 B, 1 KiB and 64 KiB (sizes vary by up to
//! ±12.5%, deterministically).
//!
//! Rows, per size:
//! - `msg_in_place`: `reserve` + `copy_from_slice` + `commit` (one fence
//!   each), `read` + `copy_to_slice` + `release` (one fence each);
//! - `msg_push_pop`: `push` / `pop`, no fence per message (a real user
//!   would call `needs_wake` once per batch);
//! - `msg_batch`: `push_many` of up to 16 messages and `recv_many` of up
//!   to 64 into the caller's buffer: one position store and one wake-up
//!   check (fence) per batch on each side;
//! - `elem_chunk`: the same bytes through `Producer<u8>`'s chunk API, one
//!   `write_chunk`/`commit_all` per message (one fence each) and the
//!   consumer reading chunks of up to the maximum message size.
//!
//! A second group, `roundtrip_8B`, bounces one 8-byte value between two
//! threads pinned to CPUs 0 and 1, through two rings (one each way): a raw
//! atomic ping-pong (one word per direction, the floor), the element ring
//! (`u64`, `push`/`pop`), and the message ring (8-byte messages,
//! `push`/`pop`). Time per iteration is one round trip.
//!
//! Every row copies each byte in and out once. Throughput is reported in
//! bytes; time per iteration is time per message. A side that finds the
//! ring full (empty) spins briefly, then yields: on a small or busy
//! machine the two threads may share a core, and pure spinning would then
//! measure the scheduler's time slice rather than the ring.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sharedring_benches::{pin_to_cpu, HeapRegion};
use spsc_core::{
    Consumer, MsgConsumer, MsgPopError, MsgProducer, MsgPushError, PopError, Producer,
};

/// Capacity of every ring, in bytes: room for four of the largest
/// messages.
const CAPACITY: usize = 256 * 1024;
/// The largest message of any row.
const MAX_MSG: usize = 64 * 1024 + 8 * 1024;

/// Waits a little for the peer: spin, and yield every 64th time.
fn backoff(idle: &mut u32) {
    *idle += 1;
    if *idle % 64 == 0 {
        thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// The size of message `i` for a row of `base` bytes: `base` ± 12.5%.
fn size(base: usize, i: u64) -> usize {
    let spread = base / 4;
    base - base / 8 + (i.wrapping_mul(7919) % spread as u64) as usize
}

#[derive(Clone, Copy, PartialEq)]
enum Row {
    MsgInPlace,
    MsgPushPop,
    MsgBatch,
    ElemChunk,
}

/// Streams `messages` messages of about `base` bytes through the message
/// ring.
fn msg_run(messages: u64, base: usize, row: Row) -> Duration {
    let mut region = HeapRegion::for_ring::<u8>(CAPACITY);
    let mut tx = MsgProducer::create(region.region(), CAPACITY, MAX_MSG).unwrap();
    let mut rx = MsgConsumer::attach(region.region(), CAPACITY, MAX_MSG).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            let src = vec![0xA5u8; MAX_MSG];
            let mut idle = 0;
            let mut i = 0;
            while i < messages {
                let len = size(base, i);
                let sent = if row == Row::MsgInPlace {
                    tx.reserve(len).map(|mut r| {
                        r.copy_from_slice(&src[..len]);
                        let _wake = r.commit();
                    })
                } else {
                    tx.push(&src[..len])
                };
                match sent {
                    Ok(()) => i += 1,
                    Err(MsgPushError::Full) => backoff(&mut idle),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut dst = vec![0u8; MAX_MSG];
        let mut idle = 0;
        let mut got = 0;
        while got < messages {
            let received = if row == Row::MsgInPlace {
                match rx.read() {
                    Ok(record) => {
                        let n = record.len();
                        record.copy_to_slice(&mut dst[..n]);
                        let _wake = record.release();
                        true
                    }
                    Err(PopError::Empty) => false,
                    Err(e) => panic!("{e}"),
                }
            } else {
                match rx.pop(&mut dst) {
                    Ok(_) => true,
                    Err(MsgPopError::Empty) => false,
                    Err(e) => panic!("{e}"),
                }
            };
            if received {
                black_box(&dst);
                got += 1;
            } else {
                backoff(&mut idle);
            }
        }
    });
    start.elapsed()
}

/// Streams `messages` messages of about `base` bytes through the message
/// ring in batches: `push_many` of up to 16, `recv_many` of up to 64.
fn msg_batch_run(messages: u64, base: usize) -> Duration {
    let mut region = HeapRegion::for_ring::<u8>(CAPACITY);
    let mut tx = MsgProducer::create(region.region(), CAPACITY, MAX_MSG).unwrap();
    let mut rx = MsgConsumer::attach(region.region(), CAPACITY, MAX_MSG).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            let src = vec![0xA5u8; MAX_MSG];
            let mut idle = 0;
            let mut i = 0;
            while i < messages {
                let want = 16.min(messages - i) as usize;
                let msgs: [&[u8]; 16] = std::array::from_fn(|k| &src[..size(base, i + k as u64)]);
                let batch = tx.push_many(&msgs[..want]).unwrap();
                let _wake = batch.wake;
                if batch.messages == 0 {
                    backoff(&mut idle);
                }
                i += batch.messages as u64;
            }
        });
        let mut dst = vec![0u8; MAX_MSG];
        let mut idle = 0;
        let mut got = 0;
        while got < messages {
            let batch = rx
                .recv_many(64, |record| {
                    record.copy_to_slice(&mut dst[..record.len()]);
                    black_box(&dst);
                })
                .unwrap();
            let _wake = batch.wake;
            if batch.messages == 0 {
                backoff(&mut idle);
            }
            got += batch.messages as u64;
        }
    });
    start.elapsed()
}

/// The same bytes through the element ring's chunk API.
fn elem_run(messages: u64, base: usize) -> Duration {
    let mut region = HeapRegion::for_ring::<u8>(CAPACITY);
    let mut tx = Producer::<u8>::create(region.region(), CAPACITY).unwrap();
    let mut rx = Consumer::<u8>::attach(region.region(), CAPACITY).unwrap();
    let total: u64 = (0..messages).map(|i| size(base, i) as u64).sum();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            let src = vec![0xA5u8; MAX_MSG];
            let mut idle = 0;
            for i in 0..messages {
                let len = size(base, i);
                let mut sent = 0;
                while sent < len {
                    let mut chunk = tx.write_chunk(len - sent).unwrap();
                    let n = chunk.copy_from_slice(&src[sent..len]);
                    let _wake = chunk.commit_all();
                    sent += n;
                    if n == 0 {
                        backoff(&mut idle);
                    }
                }
            }
        });
        let mut dst = vec![0u8; MAX_MSG];
        let mut idle = 0;
        let mut got = 0;
        while got < total {
            let chunk = rx.read_chunk(MAX_MSG).unwrap();
            let n = chunk.copy_to_slice(&mut dst);
            let _wake = chunk.release_all();
            black_box(&dst);
            got += n as u64;
            if n == 0 {
                backoff(&mut idle);
            }
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("msg_inprocess");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    for (label, base) in [("64B", 64usize), ("1KiB", 1024), ("64KiB", 64 * 1024)] {
        // Each iteration is one message; the mean message size is `base`
        // (within a byte or two).
        group.throughput(Throughput::Bytes(base as u64));
        for (name, row) in [
            ("msg_in_place", Row::MsgInPlace),
            ("msg_push_pop", Row::MsgPushPop),
            ("msg_batch", Row::MsgBatch),
            ("elem_chunk", Row::ElemChunk),
        ] {
            group.bench_with_input(BenchmarkId::new(name, label), &base, |b, &base| {
                b.iter_custom(|iters| match row {
                    Row::ElemChunk => elem_run(iters, base),
                    Row::MsgBatch => msg_batch_run(iters, base),
                    _ => msg_run(iters, base, row),
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("roundtrip_8B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    group.throughput(Throughput::Elements(1));
    for name in ["atomic", "elem_u64", "msg_8B"] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| match name {
                "atomic" => atomic_roundtrip(iters),
                "elem_u64" => elem_roundtrip(iters),
                _ => msg_roundtrip(iters),
            })
        });
    }
    group.finish();
}

/// Spins for the peer, yielding now and then (two vCPUs, shared host).
fn spin(idle: &mut u32) {
    *idle += 1;
    if *idle % 4096 == 0 {
        thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Two threads, pinned to CPUs 0 and 1: `ping` runs on the measuring
/// thread, `pong` on the other.
fn pinned_pair(ping: impl FnOnce() + Send, pong: impl FnOnce() + Send) -> Duration {
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            pong();
        });
        pin_to_cpu(0);
        let start = Instant::now();
        ping();
        start.elapsed()
    })
}

/// The floor: one atomic word per direction, each on its own line pair.
fn atomic_roundtrip(iters: u64) -> Duration {
    #[repr(align(128))]
    struct Word(AtomicU64);
    let (there, back) = (Word(AtomicU64::new(0)), Word(AtomicU64::new(0)));
    let (there, back) = (&there.0, &back.0);
    pinned_pair(
        || {
            let mut idle = 0;
            for i in 1..=iters {
                there.store(i, Ordering::Release);
                while back.load(Ordering::Acquire) != i {
                    spin(&mut idle);
                }
            }
        },
        || {
            let mut idle = 0;
            for i in 1..=iters {
                while there.load(Ordering::Acquire) != i {
                    spin(&mut idle);
                }
                back.store(i, Ordering::Release);
            }
        },
    )
}

/// One `u64` each way through two element rings.
fn elem_roundtrip(iters: u64) -> Duration {
    const CAP: usize = 512;
    let (mut r1, mut r2) = (
        HeapRegion::for_ring::<u64>(CAP),
        HeapRegion::for_ring::<u64>(CAP),
    );
    let mut tx1 = Producer::<u64>::create(r1.region(), CAP).unwrap();
    let mut rx1 = Consumer::<u64>::attach(r1.region(), CAP).unwrap();
    let mut tx2 = Producer::<u64>::create(r2.region(), CAP).unwrap();
    let mut rx2 = Consumer::<u64>::attach(r2.region(), CAP).unwrap();
    pinned_pair(
        move || {
            let mut idle = 0;
            for i in 0..iters {
                tx1.push(i).unwrap();
                loop {
                    match rx2.pop() {
                        Ok(v) => break assert_eq!(v, i),
                        Err(PopError::Empty) => spin(&mut idle),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        },
        move || {
            let mut idle = 0;
            for _ in 0..iters {
                let v = loop {
                    match rx1.pop() {
                        Ok(v) => break v,
                        Err(PopError::Empty) => spin(&mut idle),
                        Err(e) => panic!("{e}"),
                    }
                };
                tx2.push(v).unwrap();
            }
        },
    )
}

/// One 8-byte message each way through two message rings.
fn msg_roundtrip(iters: u64) -> Duration {
    const CAP: usize = 4096;
    let (mut r1, mut r2) = (
        HeapRegion::for_ring::<u8>(CAP),
        HeapRegion::for_ring::<u8>(CAP),
    );
    let mut tx1 = MsgProducer::create(r1.region(), CAP, 64).unwrap();
    let mut rx1 = MsgConsumer::attach(r1.region(), CAP, 64).unwrap();
    let mut tx2 = MsgProducer::create(r2.region(), CAP, 64).unwrap();
    let mut rx2 = MsgConsumer::attach(r2.region(), CAP, 64).unwrap();
    pinned_pair(
        move || {
            let mut idle = 0;
            let mut buf = [0u8; 8];
            for i in 0..iters {
                tx1.push(&i.to_ne_bytes()).unwrap();
                loop {
                    match rx2.pop(&mut buf) {
                        Ok(_) => break assert_eq!(u64::from_ne_bytes(buf), i),
                        Err(MsgPopError::Empty) => spin(&mut idle),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        },
        move || {
            let mut idle = 0;
            let mut buf = [0u8; 8];
            for _ in 0..iters {
                loop {
                    match rx1.pop(&mut buf) {
                        Ok(_) => break,
                        Err(MsgPopError::Empty) => spin(&mut idle),
                        Err(e) => panic!("{e}"),
                    }
                }
                tx2.push(&buf).unwrap();
            }
        },
    )
}

criterion_group!(benches, bench);
criterion_main!(benches);
