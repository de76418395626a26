//! The broadcast ring against a model (proptest), including lapping, a
//! hostile publisher's arbitrary bytes, and a threaded torn-read check.
#![cfg(not(loom))]

mod common;

use common::Buffer;
use proptest::prelude::*;
use spsc_core::broadcast::{
    header, slot, BcastLayout, BcastPublisher, BcastRecvError, BcastSubscriber, StartAt,
    SubscriberWatch, BCAST_DATA_OFFSET,
};

#[derive(Debug, Clone)]
enum Op {
    /// Publish a message of this length filled with a byte derived from
    /// its sequence number.
    Publish(usize),
    /// Subscriber `k` receives once.
    Recv(usize),
    /// A new subscriber joins with this history.
    Join(u64),
}

fn ops(max_msg: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0..=max_msg).prop_map(Op::Publish),
            4 => (0usize..4).prop_map(Op::Recv),
            1 => (0u64..12).prop_map(Op::Join),
        ],
        0..300,
    )
}

fn fill(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

proptest! {
    #[test]
    fn subscribers_match_the_model(slots_log in 1u32..5, max_msg in 1usize..100, script in ops(99)) {
        let slots = 1usize << slots_log;
        let layout = BcastLayout::new(slots, max_msg).unwrap();
        let mut data = Buffer::new(layout.region_size(), 1);
        let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
        let mut published: Vec<Vec<u8>> = Vec::new();
        // Each subscriber: its control buffer, handle, watch, model cursor.
        let mut subs: Vec<(Buffer, BcastSubscriber, SubscriberWatch, u64)> = Vec::new();
        let join = |history: u64, publisher: &BcastPublisher, data: &mut Buffer, published: &Vec<Vec<u8>>| {
            let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
            let watch = SubscriberWatch::create(ctl.region(), publisher.head()).unwrap();
            let sub = BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::History(history)).unwrap();
            let head = published.len() as u64;
            let start = head.saturating_sub(history.min(slots as u64 - 1));
            (ctl, sub, watch, start)
        };
        subs.push(join(0, &publisher, &mut data, &published));
        let mut buf = vec![0u8; max_msg];
        for op in script {
            match op {
                Op::Publish(len) => {
                    let msg = fill(published.len() as u64, len);
                    match publisher.publish(&msg) {
                        Ok(seq) => {
                            prop_assert!(len <= max_msg);
                            prop_assert_eq!(seq, published.len() as u64);
                            published.push(msg);
                        }
                        Err(_) => prop_assert!(len > max_msg),
                    }
                }
                Op::Join(h) => {
                    let s = join(h, &publisher, &mut data, &published);
                    prop_assert_eq!(s.1.cursor(), s.3);
                    subs.push(s);
                }
                Op::Recv(k) => {
                    let head = published.len() as u64;
                    let Some((_, sub, watch, cursor)) = subs.get_mut(k) else { continue };
                    let got = sub.try_recv(&mut buf);
                    if *cursor == head {
                        prop_assert_eq!(got, Err(BcastRecvError::Empty));
                    } else if head - *cursor > slots as u64 {
                        let next = head - slots as u64;
                        prop_assert_eq!(got, Err(BcastRecvError::Lagged { missed: next - *cursor }));
                        *cursor = next;
                    } else {
                        let n = got.unwrap();
                        prop_assert_eq!(&buf[..n], &published[*cursor as usize][..]);
                        *cursor += 1;
                    }
                    prop_assert_eq!(sub.cursor(), *cursor);
                    prop_assert_eq!(watch.cursor(head), Ok(*cursor));
                }
            }
        }
        publisher.close();
        for (_, sub, _, _) in &mut subs {
            loop {
                match sub.try_recv(&mut buf) {
                    Ok(_) | Err(BcastRecvError::Lagged { .. }) => {}
                    Err(e) => { prop_assert_eq!(e, BcastRecvError::Closed); break; }
                }
            }
        }
        drop(subs);
        prop_assert!(data.guards_intact());
    }

    /// A hostile publisher: arbitrary bytes over the hot words and slot
    /// headers. The subscriber never panics, never reports a length above
    /// the maximum, and within `slots + 2` calls reaches a state it stays
    /// in (`Empty`, `Closed` or a sticky `Corrupted`): no endless loop.
    #[test]
    fn hostile_bytes_never_panic_or_loop(slots_log in 1u32..4, max_msg in 1usize..64,
        head in any::<u64>(), stamps in prop::collection::vec(any::<u64>(), 8),
        lens in prop::collection::vec(any::<u32>(), 8), start in 0u64..20) {
        let slots = 1usize << slots_log;
        let layout = BcastLayout::new(slots, max_msg).unwrap();
        let mut data = Buffer::new(layout.region_size(), 1);
        let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
        for i in 0..start { publisher.publish(&[i as u8]).unwrap(); }
        let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
        let mut sub = BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::History(start)).unwrap();
        let base = data.base();
        // SAFETY: test-only scribbling inside the region, as a hostile
        // publisher would; the handles only use atomics and volatile reads.
        unsafe {
            (base.add(header::HEAD) as *mut u64).write_volatile(head);
            for i in 0..slots {
                let s = base.add(BCAST_DATA_OFFSET + i * layout.slot_size());
                (s.add(slot::STAMP) as *mut u64).write_volatile(stamps[i]);
                (s.add(slot::LEN) as *mut u32).write_volatile(lens[i]);
            }
        }
        let mut buf = vec![0u8; max_msg];
        let mut terminal = None;
        for _ in 0..slots + 3 {
            match sub.try_recv(&mut buf) {
                Ok(n) => prop_assert!(n <= max_msg),
                Err(BcastRecvError::Lagged { missed }) => prop_assert!(missed >= 1),
                Err(e) => { terminal = Some(e); break; }
            }
        }
        let terminal = terminal.expect("reached a terminal state within slots + 3 calls");
        prop_assert_eq!(sub.try_recv(&mut buf), Err(terminal));
        let _ = sub;
        prop_assert!(data.guards_intact());
    }
}

/// A publisher thread laps a slow reader thread over and over; every
/// message the reader accepts is intact (all its bytes agree with its
/// sequence number), sequence numbers only grow, and lags are counted.
#[test]
fn concurrent_reader_never_sees_a_torn_message() {
    let layout = BcastLayout::new(4, 256).unwrap();
    let mut data = Buffer::new(layout.region_size(), 1);
    let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
    let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
    let region = data.region();
    let mut sub = BcastSubscriber::attach(region, layout, ctl.region(), StartAt::Newest).unwrap();
    const N: u64 = 200_000;
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut msg = [0u8; 256];
            for seq in 0..N {
                let len = 8 + (seq as usize % 240);
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                msg[8..len].fill(seq as u8);
                publisher.publish(&msg[..len]).unwrap();
            }
            publisher.close();
        });
        let mut buf = [0u8; 256];
        let (mut got, mut missed, mut last) = (0u64, 0u64, None::<u64>);
        loop {
            match sub.try_recv(&mut buf) {
                Ok(n) => {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    assert_eq!(n, 8 + (seq as usize % 240), "length of {seq}");
                    assert!(
                        buf[8..n].iter().all(|&b| b == seq as u8),
                        "torn message {seq}"
                    );
                    assert!(last.is_none_or(|l| seq > l));
                    last = Some(seq);
                    got += 1;
                }
                Err(BcastRecvError::Lagged { missed: m }) => missed += m,
                Err(BcastRecvError::Empty) => std::hint::spin_loop(),
                Err(BcastRecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(got > 0);
        assert_eq!(
            got + missed,
            N,
            "every message is read or counted as missed"
        );
    });
}

proptest! {
    /// The latest-value cell: after any number of publications, `try_latest`
    /// returns the last one (and its sequence number), again and again,
    /// and `try_recv` then waits for the next.
    #[test]
    fn latest_is_always_the_newest_message(slots_log in 1u32..4, counts in prop::collection::vec(0usize..20, 1..10)) {
        let slots = 1usize << slots_log;
        let layout = BcastLayout::new(slots, 16).unwrap();
        let mut data = Buffer::new(layout.region_size(), 1);
        let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
        let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
        let _watch = SubscriberWatch::create(ctl.region(), 0).unwrap();
        let mut sub = BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
        let mut buf = [0u8; 16];
        prop_assert_eq!(sub.try_latest(&mut buf), Err(BcastRecvError::Empty));
        let mut seq = 0u64;
        for k in counts {
            for _ in 0..k {
                publisher.publish(&fill(seq, 1 + seq as usize % 16)).unwrap();
                seq += 1;
            }
            if seq == 0 {
                continue;
            }
            for _ in 0..2 {
                let (s, n) = sub.try_latest(&mut buf).unwrap();
                prop_assert_eq!(s, seq - 1);
                prop_assert_eq!(&buf[..n], &fill(seq - 1, 1 + (seq - 1) as usize % 16)[..]);
            }
            prop_assert_eq!(sub.try_recv(&mut buf), Err(BcastRecvError::Empty));
        }
    }
}

/// A reader of the latest value while a publisher thread overwrites a
/// two-slot cell as fast as it can: every value returned is intact and
/// sequence numbers never go back.
#[test]
fn concurrent_latest_reader_never_sees_a_torn_value() {
    let layout = BcastLayout::new(2, 64).unwrap();
    let mut data = Buffer::new(layout.region_size(), 1);
    let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
    let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
    let _watch = SubscriberWatch::create(ctl.region(), 0).unwrap();
    let mut sub =
        BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
    const N: u64 = 300_000;
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..N {
                let mut m = [seq as u8; 64];
                m[..8].copy_from_slice(&seq.to_le_bytes());
                publisher.publish(&m).unwrap();
            }
        });
        let mut buf = [0u8; 64];
        let mut last = 0u64;
        let mut reads = 0u64;
        while last + 1 < N {
            match sub.try_latest(&mut buf) {
                Ok((seq, 64)) => {
                    assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), seq);
                    assert!(buf[8..].iter().all(|&b| b == seq as u8), "torn value {seq}");
                    assert!(seq >= last);
                    last = seq;
                    reads += 1;
                }
                Ok((_, n)) => panic!("length {n}"),
                Err(BcastRecvError::Empty | BcastRecvError::Lagged { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(reads > 0);
    });
}

/// The start the publisher offers through the control region is not
/// believed beyond the head.
#[test]
fn offered_start_beyond_the_head_is_not_believed() {
    let layout = BcastLayout::new(8, 8).unwrap();
    let mut data = Buffer::new(layout.region_size(), 1);
    let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
    let mut publisher = BcastPublisher::create(data.region(), layout).unwrap();
    for i in 0..5u8 {
        publisher.publish(&[i]).unwrap();
    }
    let _watch = SubscriberWatch::create(ctl.region(), u64::MAX).unwrap();
    let sub = BcastSubscriber::attach(
        data.region(),
        layout,
        ctl.region(),
        StartAt::Offered { history: 2 },
    )
    .unwrap();
    assert_eq!(sub.cursor(), 3, "head 5, less the history of 2");
    let _watch = SubscriberWatch::create(ctl.region(), 1).unwrap();
    let sub = BcastSubscriber::attach(
        data.region(),
        layout,
        ctl.region(),
        StartAt::Offered { history: 0 },
    )
    .unwrap();
    assert_eq!(sub.cursor(), 1, "an offered start in the past is kept");
}

/// The header's flags carry who orders wake-ups; a subscriber learns it
/// there, runs the barrier it is given only when asked, and refuses any
/// flag bit no version defines.
#[test]
fn wake_order_travels_in_the_header_flags() {
    use spsc_core::broadcast::{BcastSetupError, BcastWait, WaitHow, WakeOrder};
    let layout = BcastLayout::new(4, 8).unwrap();
    for order in [WakeOrder::PublisherFence, WakeOrder::SleeperBarrier] {
        let mut data = Buffer::new(layout.region_size(), 1);
        let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
        let publisher = BcastPublisher::create_ordered(data.region(), layout, order).unwrap();
        assert_eq!(publisher.wake_order(), order);
        let mut sub =
            BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
        assert_eq!(sub.wake_order(), order);
        let mut ran = false;
        let r = sub.prepare_wait(WaitHow::Futex, || {
            ran = true;
            true
        });
        assert!(matches!(r, BcastWait::Sleep { .. }));
        assert_eq!(ran, order == WakeOrder::SleeperBarrier);
        sub.finish_wait();
        // A barrier that fails: no sleep (the caller polls instead).
        if order == WakeOrder::SleeperBarrier {
            assert_eq!(sub.prepare_wait(WaitHow::Futex, || false), BcastWait::Ready);
        }
    }
    let mut data = Buffer::new(layout.region_size(), 1);
    let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
    BcastPublisher::create(data.region(), layout).unwrap();
    // SAFETY: the flags word is inside the region, and no one else uses it.
    unsafe { data.base().add(header::FLAGS).cast::<u32>().write(2) };
    match BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest) {
        Err(BcastSetupError::HeaderMismatch { found: 2, .. }) => {}
        other => panic!("unknown flag accepted: {other:?}"),
    }
}

/// A wake-up that the publisher makes after seeing an announcement, even
/// from the scan of a message the subscriber has already read (a scan
/// that ran late: the publisher was interrupted between its store of the
/// head and its loads of the wait words), must leave the value the
/// subscriber sleeps on stale. The publisher wakes each announcement
/// once: a subscriber sleeping on the incremented value would sleep
/// through the next message. (The stress race in
/// `sharedring/tests/broadcast_wake_order.rs` lost wake-ups this way
/// before the subscriber loaded the value ahead of its announcement.)
#[test]
fn a_late_scan_that_wakes_an_announcement_cannot_be_slept_through() {
    use spsc_core::broadcast::{BcastWait, WaitHow, WakeOrder};
    let layout = BcastLayout::new(4, 8).unwrap();
    let mut data = Buffer::new(layout.region_size(), 1);
    let mut ctl = Buffer::new(spsc_core::broadcast::control::SIZE, 1);
    // The sleeper-barrier order only to run the publisher's late scan at
    // the one point the subscriber hands out: inside its announcement
    // window. The property is the subscriber's, whatever the order.
    let mut publisher =
        BcastPublisher::create_ordered(data.region(), layout, WakeOrder::SleeperBarrier).unwrap();
    let mut watch = SubscriberWatch::create(ctl.region(), 0).unwrap();
    let mut sub =
        BcastSubscriber::attach(data.region(), layout, ctl.region(), StartAt::Newest).unwrap();
    publisher.publish(&[1]).unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(sub.try_recv(&mut buf), Ok(1)));
    assert!(matches!(sub.try_recv(&mut buf), Err(BcastRecvError::Empty)));
    let wake_word = publisher.wake_word();
    // Message 0's scan, late: it sees the announcement and wakes it.
    let wait = sub.prepare_wait(WaitHow::Futex, || {
        assert!(publisher.wake_scan([&mut watch]).futex);
        true
    });
    let BcastWait::Sleep { futex_value } = wait else {
        panic!("nothing new, yet {wait:?}");
    };
    // Message 1: its scan finds that announcement already woken.
    publisher.publish(&[2]).unwrap();
    let need = publisher.wake_scan([&mut watch]);
    // SAFETY: the wake word is an aligned word of `data`, alive here;
    // nothing writes it concurrently.
    let now = unsafe { wake_word.read_volatile() };
    assert!(
        need.futex || now != futex_value,
        "the subscriber would sleep on {futex_value} through message 1"
    );
}
