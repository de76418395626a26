//! A hostile peer scribbles random values over every header field and the
//! data area while honest producer and consumer threads run hundreds of
//! thousands of operations. The honest side must only ever see `Ok`, full,
//! empty, or the corruption error, and must never write outside the region
//! (guard bytes around it are checked afterwards). The honest sides run in
//! the sleeper-barrier mode (declared, fence-free for a declared peer) and
//! take the element ring's inline copy, whose words the scribbler also
//! writes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use spsc_core::{Consumer, PopError, Producer, PushError, RawRegion, SetupError};

type Elem = [u8; 12];
const CAPACITY: usize = 64;

fn ops_per_side() -> u64 {
    if cfg!(debug_assertions) {
        300_000
    } else {
        3_000_000
    }
}

/// A small deterministic generator (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Sends a region to another thread; the test keeps the buffer alive until
/// every thread is joined.
#[derive(Clone, Copy)]
struct SendRegion(RawRegion);
// SAFETY: the region is only accessed through handles (atomic/volatile) and
// the scribbler's atomics; the buffer outlives all threads.
unsafe impl Send for SendRegion {}

/// Counts what an honest side saw.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    corrupt: AtomicU64,
}

/// A side stops after `ops_per_side()` operations once it has caught the
/// peer at least once, or after 20 times as many in any case (on two cores
/// the scribbler may be descheduled for a while).
fn done(seen: &Seen, i: u64, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
        || (i >= ops_per_side() && seen.corrupt.load(Ordering::Relaxed) > 0)
        || i >= 20 * ops_per_side()
}

/// The sleeper's barrier in a test of one process: a full fence (the
/// real one, `membarrier`, interrupts the other threads' CPUs; here only
/// the declaration and the waker's fence-free path matter).
fn fence_barrier() -> bool {
    std::sync::atomic::fence(Ordering::SeqCst);
    true
}

/// A fresh producer in the sleeper-barrier mode the sharedring ends use:
/// it declares the barrier and skips its fence for a peer that declares
/// (the scribbler flips both declaration words at random).
fn producer(region: RawRegion) -> Producer<Elem> {
    let mut tx = Producer::<Elem>::create(region, CAPACITY).unwrap();
    tx.declare_sleeper_barrier(fence_barrier);
    tx.set_registered_for_sleeper_barrier();
    tx
}

/// A consumer in the same mode.
fn consumer(mut rx: Consumer<Elem>) -> Consumer<Elem> {
    rx.declare_sleeper_barrier(fence_barrier);
    rx.set_registered_for_sleeper_barrier();
    rx
}

/// Recreates a handle after the peer was caught: a fresh header, as an
/// application that drops the peer and starts over would.
fn honest_producer(region: RawRegion, seen: &Seen, stop: &AtomicBool) {
    let mut rng = Rng::new(0x5eed);
    let mut tx = producer(region);
    for i in 0.. {
        if done(seen, i, stop) {
            break;
        }
        let result: Result<(), spsc_core::Corruption> = match rng.next_u32() % 4 {
            0 => match tx.push([i as u8; 12]) {
                Ok(()) | Err(PushError::Full(_)) => Ok(()),
                Err(PushError::Corrupted(c)) => Err(c),
            },
            1 => tx.push_slice(&[[1; 12]; 5]).map(drop),
            2 => tx.write_chunk(7).map(|mut chunk| {
                let len = chunk.len();
                chunk.copy_from_slice(&[[2; 12]; 7]);
                if len > 0 {
                    chunk.set(len - 1, [3; 12]);
                }
                let _ = chunk.commit(len / 2);
            }),
            _ => {
                let _ = tx.needs_wake();
                tx.prepare_wait(3).map(|_| tx.finish_wait())
            }
        };
        match result {
            Ok(()) => seen.ok.fetch_add(1, Ordering::Relaxed),
            Err(c) => {
                // Sticky, then start over.
                assert_eq!(tx.push([0; 12]), Err(PushError::Corrupted(c)));
                tx = producer(region);
                seen.corrupt.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

fn honest_consumer(region: RawRegion, seen: &Seen, stop: &AtomicBool) {
    let mut rng = Rng::new(0xfeed);
    // The scribbler may have broken the header already; only the typed
    // errors are acceptable, and then we start a ring of our own.
    let mut rx = consumer(match Consumer::<Elem>::attach(region, CAPACITY) {
        Ok(rx) => rx,
        Err(SetupError::Layout(e)) => panic!("our own layout is valid: {e}"),
        Err(_) => Consumer::<Elem>::create(region, CAPACITY).unwrap(),
    });
    let mut out = [[0u8; 12]; 9];
    for i in 0.. {
        if done(seen, i, stop) {
            break;
        }
        let result: Result<(), spsc_core::Corruption> = match rng.next_u32() % 4 {
            0 => match rx.pop() {
                Ok(_) | Err(PopError::Empty) => Ok(()),
                Err(PopError::Corrupted(c)) => Err(c),
            },
            1 => rx.pop_slice(&mut out).map(drop),
            2 => rx.read_chunk(9).map(|chunk| {
                let n = chunk.copy_to_slice(&mut out);
                if n > 0 {
                    let _ = chunk.get(n - 1);
                }
                let _ = chunk.release(n);
            }),
            _ => {
                let _ = rx.needs_wake();
                rx.prepare_wait().map(|_| rx.finish_wait())
            }
        };
        match result {
            Ok(()) => seen.ok.fetch_add(1, Ordering::Relaxed),
            Err(c) => {
                assert_eq!(rx.pop(), Err(PopError::Corrupted(c)));
                rx = consumer(Consumer::<Elem>::create(region, CAPACITY).unwrap());
                seen.corrupt.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Writes random values at random offsets of the region (header and data),
/// with a bias towards the control words so corruption is frequent.
fn scribble(region: RawRegion, stop: &AtomicBool, started: &AtomicBool) {
    let mut rng = Rng::new(0xbad);
    let len = region.len();
    // The control words, the inline copy (count, tag, bytes) and the
    // sleeper-barrier declarations.
    let hot = [
        0usize, 8, 12, 16, 24, 32, 128, 136, 144, 152, 256, 384, 388, 392, 396,
    ];
    while !stop.load(Ordering::Relaxed) {
        let offset = if rng.next_u32() % 2 == 0 {
            hot[rng.next_u32() as usize % hot.len()]
        } else {
            (rng.next_u32() as usize % (len - 8)) & !7
        };
        let value = match rng.next_u32() % 4 {
            0 => rng.next_u64(),
            1 => rng.next_u64() % 256,
            2 => u64::MAX - rng.next_u64() % 256,
            _ => 0,
        };
        // SAFETY: `offset + 8 <= len`, 8-aligned (the region is); an atomic
        // store is what a concurrent peer amounts to.
        let word = unsafe { AtomicU64::from_ptr(region.as_ptr().add(offset).cast()) };
        word.store(value, Ordering::Relaxed);
        if rng.next_u32() % 8 == 0 {
            // And an odd byte somewhere, unaligned.
            let at = rng.next_u32() as usize % len;
            // SAFETY: `at < len`.
            unsafe { AtomicU8::from_ptr(region.as_ptr().add(at)) }
                .store(rng.next_u32() as u8, Ordering::Relaxed);
        }
        started.store(true, Ordering::Release);
        std::hint::spin_loop();
    }
}

#[test]
fn honest_sides_see_only_ok_or_corruption_while_peer_scribbles() {
    let mut buf = common::buffer_for::<Elem>(CAPACITY);
    let region = SendRegion(buf.region());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([Seen::default(), Seen::default()]);

    let scribbler = {
        let (stop, started) = (stop.clone(), started.clone());
        std::thread::spawn(move || {
            let r = region;
            scribble(r.0, &stop, &started)
        })
    };
    // The honest sides start once the peer is scribbling.
    while !started.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let producer = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let r = region;
            honest_producer(r.0, &seen[0], &stop)
        })
    };
    let consumer = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let r = region;
            honest_consumer(r.0, &seen[1], &stop)
        })
    };
    let p = producer.join();
    let c = consumer.join();
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
    p.expect("honest producer panicked");
    c.expect("honest consumer panicked");

    let total: u64 = seen
        .iter()
        .map(|s| s.ok.load(Ordering::Relaxed) + s.corrupt.load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "producer: {} ok, {} corrupt; consumer: {} ok, {} corrupt",
        seen[0].ok.load(Ordering::Relaxed),
        seen[0].corrupt.load(Ordering::Relaxed),
        seen[1].ok.load(Ordering::Relaxed),
        seen[1].corrupt.load(Ordering::Relaxed)
    );
    assert!(total >= 2 * ops_per_side());
    // The scribbler was effective: both sides caught it at least once.
    assert!(
        seen[0].corrupt.load(Ordering::Relaxed) > 0,
        "producer never saw corruption"
    );
    assert!(
        seen[1].corrupt.load(Ordering::Relaxed) > 0,
        "consumer never saw corruption"
    );
    assert!(buf.guards_intact(), "a write landed outside the region");
}
