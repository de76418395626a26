//! spsc-core against rtrb: two threads in one process stream `u64` items,
//! side by side in one run. Rows: one push/pop per item, and chunks of 64
//! and 4096 items.
//!
//! Both rings have the same capacity, both consumers copy the items out, and
//! both producers copy them in; spsc-core additionally checks after every
//! chunk commit whether the peer sleeps (one fence), which rtrb has no
//! notion of.
//!
//! One more row, `spsc-core-msg/push_pop`, streams the same `u64` items
//! as 8-byte messages through the message ring (16-byte records with a
//! sequence-tagged header word each, layout v2): what an element ring with
//! a tag per slot would cost, the measurement behind keeping the element
//! ring's format (`docs/LAYOUT.md`).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::Throughput;
use sharedring_benches::harness::Harness;
use sharedring_benches::peer::PeerEnv;
use sharedring_benches::{pin_to_cpu, probe, HeapRegion};
use spsc_core::{
    Consumer, MsgConsumer, MsgPopError, MsgProducer, MsgPushError, PopError, Producer, PushError,
};

const CAPACITY: usize = 16 * 1024;

/// Streams `items` through spsc-core in batches of `batch` (1 = push/pop).
fn spsc_core_run(items: u64, batch: usize) -> Duration {
    let mut region = HeapRegion::for_ring::<u64>(CAPACITY);
    let mut tx = Producer::<u64>::create(region.region(), CAPACITY).unwrap();
    let mut rx = Consumer::<u64>::attach(region.region(), CAPACITY).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            if batch == 1 {
                let mut i = 0;
                while i < items {
                    match tx.push(i) {
                        Ok(()) => i += 1,
                        Err(PushError::Full(_)) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                let src: Vec<u64> = (0..batch as u64).collect();
                let mut sent = 0;
                while sent < items {
                    let want = batch.min((items - sent) as usize);
                    let mut chunk = tx.write_chunk(want).unwrap();
                    let n = chunk.copy_from_slice(&src[..want]);
                    let _wake = chunk.commit_all();
                    sent += n as u64;
                    if n == 0 {
                        std::hint::spin_loop();
                    }
                }
            }
        });
        let mut got = 0;
        if batch == 1 {
            while got < items {
                match rx.pop() {
                    Ok(v) => {
                        black_box(v);
                        got += 1;
                    }
                    Err(PopError::Empty) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        } else {
            let mut dst = vec![0u64; batch];
            while got < items {
                let chunk = rx.read_chunk(batch).unwrap();
                let n = chunk.copy_to_slice(&mut dst);
                let _wake = chunk.release_all();
                black_box(&dst);
                got += n as u64;
                if n == 0 {
                    std::hint::spin_loop();
                }
            }
        }
    });
    start.elapsed()
}

/// The same items as 8-byte messages through a message ring of the same
/// capacity in bytes of data (`CAPACITY` items of 16-byte records).
fn msg_run(items: u64) -> Duration {
    let cap = CAPACITY * 16;
    let mut region = HeapRegion::for_ring::<u8>(cap);
    let mut tx = MsgProducer::create(region.region(), cap, 64).unwrap();
    let mut rx = MsgConsumer::attach(region.region(), cap, 64).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            let mut i = 0;
            while i < items {
                match tx.push(&i.to_ne_bytes()) {
                    Ok(()) => i += 1,
                    Err(MsgPushError::Full) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut got = 0;
        let mut buf = [0u8; 8];
        while got < items {
            match rx.pop(&mut buf) {
                Ok(_) => {
                    black_box(u64::from_ne_bytes(buf));
                    got += 1;
                }
                Err(MsgPopError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    start.elapsed()
}

/// The same stream through rtrb.
fn rtrb_run(items: u64, batch: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            if batch == 1 {
                let mut i = 0;
                while i < items {
                    match tx.push(i) {
                        Ok(()) => i += 1,
                        Err(_) => std::hint::spin_loop(),
                    }
                }
            } else {
                let src: Vec<u64> = (0..batch as u64).collect();
                let mut sent = 0;
                while sent < items {
                    let want = batch.min((items - sent) as usize).min(tx.slots());
                    if want == 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                    let chunk = tx.write_chunk_uninit(want).unwrap();
                    let n = chunk.fill_from_iter(src[..want].iter().copied());
                    sent += n as u64;
                }
            }
        });
        let mut got = 0;
        if batch == 1 {
            while got < items {
                match rx.pop() {
                    Ok(v) => {
                        black_box(v);
                        got += 1;
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
        } else {
            let mut dst = vec![0u64; batch];
            while got < items {
                let n = batch.min(rx.slots());
                if n == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = rx.read_chunk(n).unwrap();
                let (a, b) = chunk.as_slices();
                dst[..a.len()].copy_from_slice(a);
                dst[a.len()..a.len() + b.len()].copy_from_slice(b);
                chunk.commit_all();
                black_box(&dst);
                got += n as u64;
            }
        }
    });
    start.elapsed()
}

fn main() {
    if let Some(env) = PeerEnv::from_env() {
        assert_eq!(env.role, probe::ROLE, "unknown peer role");
        return probe::run_peer(env);
    }
    let mut h = Harness::new("spsc_inprocess");
    let mut group = h.group("spsc_inprocess_u64");
    for batch in [1usize, 64, 4096] {
        // Each sample streams `iters` items; criterion divides by `iters`.
        group.throughput(Throughput::Elements(1));
        let label = if batch == 1 {
            "push_pop".to_string()
        } else {
            format!("chunk_{batch}")
        };
        group.row(&format!("spsc-core/{label}"), |b| {
            b.iter_custom(|iters| spsc_core_run(iters.max(batch as u64), batch))
        });
        group.row(&format!("rtrb/{label}"), |b| {
            b.iter_custom(|iters| rtrb_run(iters.max(batch as u64), batch))
        });
        if batch == 1 {
            group.row("spsc-core-msg/push_pop", |b| b.iter_custom(msg_run));
        }
    }
    group.finish();
    h.finish();
}
