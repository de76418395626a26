//! Loom model checks of the broadcast ring's sequence protocol (a reader
//! never accepts a torn or stale message, even while being lapped) and its
//! sleep/wake protocol (no lost wake-up), over the very same code.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p spsc-core --release --test bcast_loom
//! ```
#![cfg(loom)]

use core::ptr::NonNull;

use loom::sync::{Arc, Notify};
use loom::thread;
use spsc_core::broadcast::{
    BcastLayout, BcastPublisher, BcastRecvError, BcastSubscriber, BcastWait, StartAt,
    SubscriberWatch, WaitHow,
};
use spsc_core::RawRegion;

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Line([u8; 128]);

struct Buffer(Box<[Line]>);

impl Buffer {
    fn new(len: usize) -> Self {
        Self(vec![Line([0; 128]); len.div_ceil(128)].into_boxed_slice())
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

/// A message whose two 8-byte words both hold `seq`.
fn message(seq: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..].copy_from_slice(&seq.to_le_bytes());
    m
}

#[test]
fn lapped_reader_never_accepts_a_torn_or_stale_message() {
    model(|| {
        let layout = BcastLayout::new(2, 16).unwrap();
        let mut data = Buffer::new(layout.region_size());
        let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE);
        let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
        // The publisher initialises the control region (under loom this
        // constructs its atomics).
        let _watch = SubscriberWatch::create(ctl.region(), 0).unwrap();
        let mut sub =
            BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
        let data = Arc::new(data);
        let keep = data.clone();
        let t = thread::spawn(move || {
            // Three messages into two slots: message 2 overwrites message 0.
            for seq in 0..3 {
                publisher.publish(&message(seq)).unwrap();
            }
            drop(keep);
        });
        let mut buf = [0u8; 16];
        let mut next_min = 0u64;
        for _ in 0..3 {
            match sub.try_recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, 16);
                    let a = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    let b = u64::from_le_bytes(buf[8..].try_into().unwrap());
                    assert_eq!(a, b, "torn message");
                    assert!(a >= next_min, "stale or repeated message {a}");
                    assert_eq!(a, sub.cursor() - 1, "message matches its sequence number");
                    next_min = a + 1;
                }
                Err(BcastRecvError::Lagged { missed }) => {
                    assert!(missed >= 1);
                    next_min = sub.cursor();
                }
                Err(BcastRecvError::Empty) => {}
                Err(e) => panic!("{e}"),
            }
        }
        t.join().unwrap();
        drop(data);
    });
}

#[test]
fn sleeping_subscriber_is_always_woken() {
    model(|| {
        let layout = BcastLayout::new(2, 8).unwrap();
        let mut data = Buffer::new(layout.region_size());
        let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE);
        let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
        let mut watch = SubscriberWatch::create(ctl.region(), 0).unwrap();
        let mut sub =
            BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
        let futex = Arc::new(Notify::new());
        let waker = futex.clone();
        let t = thread::spawn(move || {
            publisher.publish(&[7]).unwrap();
            let need = publisher.wake_scan([&mut watch]);
            if need.futex {
                waker.notify();
            }
            assert!(!need.eventfd);
        });
        let mut buf = [0u8; 8];
        loop {
            match sub.try_recv(&mut buf) {
                Ok(1) => {
                    assert_eq!(buf[0], 7);
                    break;
                }
                Err(BcastRecvError::Empty) => match sub.prepare_wait(WaitHow::Futex, || true) {
                    BcastWait::Ready => {}
                    BcastWait::Sleep { .. } => {
                        futex.wait();
                        sub.finish_wait();
                    }
                },
                other => panic!("{other:?}"),
            }
        }
        t.join().unwrap();
    });
}
