//! Descriptors per ring end, counted in `/proc/self/fd`: 3 while idle
//! (the liveness socket, our eventfd, the peer's eventfd; the memfd is
//! closed once mapped), 4 once the end has woken a sleeping peer (its
//! notifier's io_uring), whether the ring was set up over a socket
//! handshake or from an offer. One test in this binary, so that nothing
//! else opens descriptors while it counts.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use sharedring::{MsgReceiver, MsgSender, Options, Receiver, Sender};
use spsc_core::WaitCheck;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const PAIRS: usize = 16;

/// Makes `a` sleep-announce and `b` wake it, in both directions, so that
/// both ends have made their io_uring.
fn wake_both_ways(tx: &mut Sender<u64>, rx: &mut Receiver<u64>) {
    // The receiver announces sleep; the send wakes it.
    assert_eq!(
        rx.consumer_without_wake().prepare_wait().unwrap(),
        WaitCheck::Sleep
    );
    tx.send(&[1; 4], None).unwrap();
    rx.consumer_without_wake().finish_wait();
    // The ring is full (capacity 4); the sender announces a wait for room,
    // the receive wakes it.
    assert_eq!(
        tx.producer_without_wake().prepare_wait(1).unwrap(),
        WaitCheck::Sleep
    );
    assert_eq!(rx.recv(&mut [0; 4], None).unwrap(), 4);
    tx.producer_without_wake().finish_wait();
}

#[test]
fn a_ring_end_holds_three_descriptors_idle_and_four_after_waking_its_peer() {
    let opts = Options::new().capacity_elements(4).spin(Duration::ZERO);
    // Warm up whatever the process opens once (the io_uring probe).
    drop(sharedring::channel_with::<u64>(&opts).unwrap());

    // Over a socket handshake.
    let before = open_descriptors();
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let (a, b) = UnixStream::pair().unwrap();
        let o = opts.clone();
        let peer = std::thread::spawn(move || Receiver::<u64>::accept_with(b, &o).unwrap());
        let tx = Sender::<u64>::create_with(a, &opts).unwrap();
        pairs.push((tx, peer.join().unwrap()));
    }
    let idle = open_descriptors() - before;
    assert_eq!(idle, PAIRS * 2 * 3, "3 per idle end (handshake)");
    for (tx, rx) in &mut pairs {
        wake_both_ways(tx, rx);
    }
    let woken = open_descriptors() - before;
    assert_eq!(
        woken,
        PAIRS * 2 * 4,
        "4 per end after a wake-up (handshake)"
    );
    drop(pairs);
    assert_eq!(open_descriptors(), before, "all closed on drop");

    // From offers (as `channel` and the D-Bus companion make them), and
    // for message rings.
    let before = open_descriptors();
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        pairs.push(sharedring::channel_with::<u64>(&opts).unwrap());
    }
    let mopts = Options::new().capacity_bytes(4096);
    let mut msg_pairs: Vec<(MsgSender, MsgReceiver)> = Vec::new();
    for _ in 0..PAIRS {
        msg_pairs.push(sharedring::msg_channel(&mopts).unwrap());
    }
    let idle = open_descriptors() - before;
    assert_eq!(idle, 2 * PAIRS * 2 * 3, "3 per idle end (offers)");
    for (tx, rx) in &mut pairs {
        wake_both_ways(tx, rx);
    }
    for (tx, rx) in &mut msg_pairs {
        assert_eq!(
            rx.consumer_without_wake().prepare_wait().unwrap(),
            WaitCheck::Sleep
        );
        tx.send(b"wake", None).unwrap();
        rx.consumer_without_wake().finish_wait();
    }
    let woken = open_descriptors() - before;
    // Element ends woke both ways (4 each); message senders woke their
    // receivers (4), message receivers never had to wake anyone (3).
    assert_eq!(
        woken,
        PAIRS * 2 * 4 + PAIRS * (4 + 3),
        "offers, after wake-ups"
    );
    assert!(woken <= 2 * PAIRS * 2 * 4);
    drop((pairs, msg_pairs));
    assert_eq!(open_descriptors(), before, "all closed on drop");
}
