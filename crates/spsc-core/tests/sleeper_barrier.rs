//! The sleeper's barrier (`SLEEPER_BARRIER`): a side that declares it
//! stores the declaration at its `LAYOUT.md` offset, runs the barrier on
//! every announcement (after its fence, before its re-check), does not
//! sleep on an announcement whose barrier failed, and can withdraw the
//! declaration (store 0, then one barrier). Whether a registered waker
//! skips its fence cannot be observed from one thread; that it still
//! reports every announced sleeper is checked here, and sharedring's
//! `sleeper_barrier` test races real processes' threads through real
//! `membarrier` calls.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use spsc_core::{
    Consumer, MsgConsumer, MsgProducer, Producer, RawRegion, WaitCheck, CONSUMER_BARRIER_OFFSET,
    PRODUCER_BARRIER_OFFSET, SLEEPER_BARRIER,
};

fn peek32(region: RawRegion, offset: usize) -> u32 {
    // SAFETY: the offsets are inside the header; the test owns the buffer.
    unsafe { core::ptr::read_volatile(region.as_ptr().add(offset).cast::<u32>()) }
}

static CONSUMER_RUNS: AtomicUsize = AtomicUsize::new(0);
static PRODUCER_RUNS: AtomicUsize = AtomicUsize::new(0);

fn consumer_barrier() -> bool {
    CONSUMER_RUNS.fetch_add(1, Ordering::SeqCst);
    true
}

fn producer_barrier() -> bool {
    PRODUCER_RUNS.fetch_add(1, Ordering::SeqCst);
    true
}

static MSG_RUNS: AtomicUsize = AtomicUsize::new(0);

fn msg_barrier() -> bool {
    MSG_RUNS.fetch_add(1, Ordering::SeqCst);
    true
}

fn failing_barrier() -> bool {
    false
}

#[test]
fn a_declared_element_ring_side_runs_its_barrier_on_every_announcement() {
    let mut buf = common::buffer_for::<u64>(4);
    let region = buf.region();
    let mut tx = Producer::<u64>::create(region, 4).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 4).unwrap();
    assert_eq!(peek32(region, CONSUMER_BARRIER_OFFSET), 0);
    assert_eq!(peek32(region, PRODUCER_BARRIER_OFFSET), 0);

    rx.declare_sleeper_barrier(consumer_barrier);
    tx.declare_sleeper_barrier(producer_barrier);
    tx.set_registered_for_sleeper_barrier();
    rx.set_registered_for_sleeper_barrier();
    assert_eq!(peek32(region, CONSUMER_BARRIER_OFFSET), SLEEPER_BARRIER);
    assert_eq!(peek32(region, PRODUCER_BARRIER_OFFSET), SLEEPER_BARRIER);

    // The consumer sleeps on an empty ring: one barrier per announcement,
    // and the (fence-free, registered) producer still sees the sleeper.
    let before = CONSUMER_RUNS.load(Ordering::SeqCst);
    assert_eq!(rx.prepare_wait().unwrap(), WaitCheck::Sleep);
    assert_eq!(CONSUMER_RUNS.load(Ordering::SeqCst), before + 1);
    tx.push(7).unwrap();
    assert!(tx.needs_wake(), "the announced sleeper is reported");
    rx.finish_wait();
    assert_eq!(rx.prepare_wait().unwrap(), WaitCheck::Ready);
    assert_eq!(CONSUMER_RUNS.load(Ordering::SeqCst), before + 2);
    assert_eq!(rx.pop(), Ok(7));

    // The producer sleeps on a full ring, likewise.
    tx.push_slice(&[1, 2, 3, 4]).unwrap();
    let before = PRODUCER_RUNS.load(Ordering::SeqCst);
    assert_eq!(tx.prepare_wait(1).unwrap(), WaitCheck::Sleep);
    assert_eq!(PRODUCER_RUNS.load(Ordering::SeqCst), before + 1);
    assert_eq!(rx.pop(), Ok(1));
    assert!(rx.needs_wake(), "the announced sleeper is reported");
    tx.finish_wait();

    // Withdrawn: 0 in the header, one last barrier, then none.
    let before = CONSUMER_RUNS.load(Ordering::SeqCst);
    assert!(rx.withdraw_sleeper_barrier());
    assert_eq!(peek32(region, CONSUMER_BARRIER_OFFSET), 0);
    assert_eq!(CONSUMER_RUNS.load(Ordering::SeqCst), before + 1);
    let _ = rx.pop_slice(&mut [0; 4]).unwrap();
    assert_eq!(rx.prepare_wait().unwrap(), WaitCheck::Sleep);
    assert_eq!(CONSUMER_RUNS.load(Ordering::SeqCst), before + 1);
    rx.finish_wait();
}

#[test]
fn a_failed_barrier_is_never_slept_on() {
    let mut buf = common::buffer_for::<u64>(4);
    let region = buf.region();
    let mut tx = Producer::<u64>::create(region, 4).unwrap();
    let mut rx = Consumer::<u64>::attach(region, 4).unwrap();
    rx.declare_sleeper_barrier(failing_barrier);
    tx.declare_sleeper_barrier(failing_barrier);
    // Empty ring, full ring: without the barrier the peer may have
    // skipped its fence, so neither side may sleep.
    assert_eq!(rx.prepare_wait().unwrap(), WaitCheck::Ready);
    tx.push_slice(&[1, 2, 3, 4]).unwrap();
    assert_eq!(tx.prepare_wait(1).unwrap(), WaitCheck::Ready);
    // Nor withdraw: the declaration stays.
    assert!(!rx.withdraw_sleeper_barrier());
    assert_eq!(peek32(region, CONSUMER_BARRIER_OFFSET), SLEEPER_BARRIER);
}

#[test]
fn a_declared_message_ring_side_runs_its_barrier_on_every_announcement() {
    let layout = spsc_core::MsgLayout::new(1024, 64).unwrap();
    let mut buf = common::Buffer::new(layout.region_size(), 1);
    let region = buf.region();
    let mut tx = MsgProducer::create(region, 1024, 64).unwrap();
    let mut rx = MsgConsumer::attach(region, 1024, 64).unwrap();
    rx.declare_sleeper_barrier(failing_barrier);
    assert_eq!(peek32(region, CONSUMER_BARRIER_OFFSET), SLEEPER_BARRIER);
    assert_eq!(
        rx.prepare_wait().unwrap(),
        WaitCheck::Ready,
        "failed barrier"
    );
    assert!(!rx.withdraw_sleeper_barrier());
    // A fresh declaration replaces the failing one.
    rx.declare_sleeper_barrier(msg_barrier);
    assert_eq!(rx.prepare_wait().unwrap(), WaitCheck::Sleep);
    assert_eq!(MSG_RUNS.load(Ordering::SeqCst), 1);
    tx.set_registered_for_sleeper_barrier();
    tx.push(b"wake").unwrap();
    assert!(tx.needs_wake(), "the announced sleeper is reported");
    rx.finish_wait();
    tx.declare_sleeper_barrier(msg_barrier);
    assert_eq!(peek32(region, PRODUCER_BARRIER_OFFSET), SLEEPER_BARRIER);
    assert!(tx.withdraw_sleeper_barrier());
    assert_eq!(
        MSG_RUNS.load(Ordering::SeqCst),
        2,
        "one barrier to withdraw"
    );
    assert_eq!(peek32(region, PRODUCER_BARRIER_OFFSET), 0);
}
