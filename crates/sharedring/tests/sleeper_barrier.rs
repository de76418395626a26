//! Ends that spin before they park declare the sleeper's barrier: they run
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` before each sleep, and
//! their peer's wake-up checks skip the fence (this process registers for
//! the barrier when it makes an end). Here both directions sleep on every
//! round: a receiver on an empty ring, a sender on a full one. A lost
//! wake-up would leave one of them asleep until its 10 s timeout, which
//! fails the test. (`ONE_SPIN` is the shortest budget that still
//! declares; a budget of zero keeps the fences instead.)

use std::time::Duration;

use sharedring::Options;

const ROUNDS: u64 = 20_000;
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));
const ONE_SPIN: Duration = Duration::from_nanos(1);

#[test]
fn element_rings_wake_every_sleeper_without_the_wakers_fence() {
    let opts = Options::new().capacity_elements(1).spin(ONE_SPIN);
    let (mut to_peer, mut peer_rx) = sharedring::channel_with::<u64>(&opts).unwrap();
    let (mut peer_tx, mut from_peer) = sharedring::channel_with::<u64>(&opts).unwrap();
    let peer = std::thread::spawn(move || {
        let mut v = [0u64; 1];
        for i in 0..ROUNDS {
            for k in 0..2 {
                assert_eq!(peer_rx.recv(&mut v, TIMEOUT).expect("peer recv"), 1);
                assert_eq!(v[0], 2 * i + k);
            }
            peer_tx.send(&[i], TIMEOUT).expect("peer send");
        }
    });
    let mut v = [0u64; 1];
    for i in 0..ROUNDS {
        // The second send waits for room (capacity 1): the sender sleeps
        // until the peer's receive wakes it.
        to_peer.send(&[2 * i], TIMEOUT).expect("send");
        to_peer.send(&[2 * i + 1], TIMEOUT).expect("send");
        assert_eq!(from_peer.recv(&mut v, TIMEOUT).expect("recv"), 1);
        assert_eq!(v[0], i);
    }
    peer.join().unwrap();
}

#[test]
fn message_rings_wake_every_sleeper_without_the_wakers_fence() {
    // 64 bytes hold two records of a 24-byte message (32 bytes each), so
    // the third send of a round sleeps for room too.
    let opts = Options::new().capacity_bytes(64).max_msg(24).spin(ONE_SPIN);
    let (mut to_peer, mut peer_rx) = sharedring::msg_channel(&opts).unwrap();
    let (mut peer_tx, mut from_peer) = sharedring::msg_channel(&opts).unwrap();
    let peer = std::thread::spawn(move || {
        let mut b = [0u8; 24];
        for i in 0..ROUNDS {
            for _ in 0..3 {
                peer_rx.recv_into(&mut b, TIMEOUT).expect("peer recv");
            }
            peer_tx.send(&i.to_ne_bytes(), TIMEOUT).expect("peer send");
        }
    });
    let mut b = [0u8; 24];
    for i in 0..ROUNDS {
        for k in 0..3 {
            to_peer.send(&[k; 24], TIMEOUT).expect("send");
        }
        assert_eq!(from_peer.recv_into(&mut b, TIMEOUT).expect("recv"), 8);
        assert_eq!(b[..8], i.to_ne_bytes());
    }
    peer.join().unwrap();
}
