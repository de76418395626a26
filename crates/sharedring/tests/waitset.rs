//! `WaitSet` in one process: no wake-up is lost across many rings, a
//! sender is reported writable when room frees, a paused token is not
//! reported, a stalled handshake is ended by its deadline without
//! delaying a ring that streams, idle rings are not looked at, and a ring
//! reported after its close answers `Closed` at the first poll.

use std::time::{Duration, Instant};

use sharedring::{
    channel, msg_channel, Error, Handshake, HandshakeError, MsgReceiver, Options, Receiver, Sender,
    WaitSet,
};

#[test]
fn no_wake_up_is_lost_across_many_rings() {
    const RINGS: usize = 64;
    const PER_RING: u64 = 20_000;
    let mut set = WaitSet::new().unwrap();
    let mut senders = Vec::new();
    for t in 0..RINGS as u64 {
        let (tx, rx) = channel::<u64>(64).unwrap();
        set.insert(t, rx).unwrap();
        senders.push(tx);
    }
    // One thread sends to every ring in small, uneven bursts, so that
    // receivers go to sleep and are woken again and again.
    let producer = std::thread::spawn(move || {
        let mut sent = vec![0u64; RINGS];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        while sent.iter().any(|&s| s < PER_RING) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = (seed % RINGS as u64) as usize;
            let n = (1 + (seed >> 32) % 40).min(PER_RING - sent[r]);
            let vals: Vec<u64> = (sent[r]..sent[r] + n).collect();
            senders[r]
                .send(&vals, Some(Duration::from_secs(30)))
                .unwrap();
            sent[r] += n;
        }
        for tx in senders {
            tx.close().unwrap();
        }
    });
    let mut got = vec![0u64; RINGS];
    let mut ended = 0;
    let mut events = Vec::new();
    let mut buf = [0u64; 128];
    while ended < RINGS {
        set.wait(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        assert!(!events.is_empty(), "a wake-up was lost: {got:?}");
        for ev in events.drain(..) {
            let t = ev.token();
            let Some(rx) = set.get_mut::<Receiver<u64>>(t) else {
                continue;
            };
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for v in &buf[..n] {
                            assert_eq!(*v, got[t as usize]);
                            got[t as usize] += 1;
                        }
                    }
                    Err(Error::Closed) => {
                        set.discard(t);
                        ended += 1;
                        break;
                    }
                    Err(e) => panic!("ring {t}: {e}"),
                }
            }
        }
    }
    producer.join().unwrap();
    assert!(got.iter().all(|&g| g == PER_RING));
}

#[test]
fn a_sender_is_reported_writable_when_room_frees_and_not_while_paused() {
    let (mut tx, mut rx) = msg_channel(&Options::new().capacity_bytes(4096)).unwrap();
    while tx.try_send(&[7u8; 512]).unwrap() {}
    let mut set = WaitSet::new().unwrap();
    set.insert(1, tx).unwrap();
    set.want_room(1, 512);
    let mut events = Vec::new();
    set.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "a full ring reported writable");
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = Vec::new();
        rx.try_recv(&mut buf).unwrap().unwrap();
        rx
    });
    set.wait(&mut events, Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].is_writable() && !events[0].is_readable());
    let _rx = reader.join().unwrap();
    // Room is free; paused, it is not reported.
    set.pause(1);
    set.wait(&mut events, Some(Duration::from_millis(20)))
        .unwrap();
    assert!(events.is_empty());
    set.resume(1);
    set.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
    assert!(events[0].is_writable());
}

#[test]
fn a_stalled_handshake_ends_by_its_deadline_and_delays_no_ring() {
    let mut set = WaitSet::new().unwrap();
    let start = Instant::now();
    // A peer that never answers.
    let (a, _silent) = std::os::unix::net::UnixStream::pair().unwrap();
    let opts = Options::new().handshake_timeout(Some(Duration::from_millis(300)));
    set.insert(1, Handshake::<MsgReceiver>::accept(a, &opts).unwrap())
        .unwrap();
    // A ring that streams meanwhile.
    let (mut tx, rx) = channel::<u32>(64).unwrap();
    set.insert(2, rx).unwrap();
    let mut events = Vec::new();
    let (mut received, mut failed_at) = (0u32, None);
    while failed_at.is_none() {
        tx.try_send(&[received]).unwrap();
        set.wait(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        for ev in events.iter_mut() {
            match ev.token() {
                1 => {
                    let e = ev.take_error().expect("the stalled handshake did not fail");
                    assert!(
                        matches!(e, Error::Handshake(HandshakeError::TimedOut)),
                        "{e}"
                    );
                    failed_at = Some(start.elapsed());
                }
                2 => {
                    let rx = set.get_mut::<Receiver<u32>>(2).unwrap();
                    let mut buf = [0u32; 64];
                    received += rx.try_recv(&mut buf).unwrap() as u32;
                }
                t => panic!("unexpected token {t}"),
            }
        }
    }
    assert!(failed_at.unwrap() >= Duration::from_millis(300));
    assert!(!set.contains(1), "a failed handshake stays in the set");
    // The ring was served all along (one value per round until then).
    assert!(received > 0);
}

#[test]
fn a_finished_handshake_becomes_its_end_under_the_same_token() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = std::thread::spawn(move || {
        let mut tx = Sender::<u16>::create(b, 64).unwrap();
        tx.send(&[1, 2, 3], None).unwrap();
        tx.close().unwrap();
    });
    let mut set = WaitSet::new().unwrap();
    set.insert(
        9,
        Handshake::<Receiver<u16>>::accept(a, &Options::new()).unwrap(),
    )
    .unwrap();
    assert!(
        set.insert(9, channel::<u8>(64).unwrap().0).is_err(),
        "token reused"
    );
    let mut events = Vec::new();
    let mut done = false;
    while !done {
        set.wait(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        assert!(!events.is_empty());
        done = events.iter().any(|e| e.is_done());
    }
    peer.join().unwrap();
    assert!(set.get_mut::<Handshake<Receiver<u16>>>(9).is_none());
    let mut rx: Receiver<u16> = set.remove(9).unwrap();
    let mut buf = [0u16; 8];
    assert_eq!(rx.recv(&mut buf, Some(Duration::from_secs(5))).unwrap(), 3);
    assert!(set.is_empty());
}

#[test]
fn idle_rings_are_not_reported() {
    let mut set = WaitSet::new().unwrap();
    let mut keep = Vec::new();
    for t in 0..500u64 {
        let (tx, rx) = channel::<u8>(64).unwrap();
        set.insert(t, rx).unwrap();
        keep.push(tx);
    }
    let mut events = Vec::new();
    set.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
    keep[123].send(&[1], None).unwrap();
    set.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
    let tokens: Vec<u64> = events.iter().map(|e| e.token()).collect();
    assert_eq!(tokens, [123]);
}

#[test]
fn a_ring_reported_after_its_close_answers_closed_at_the_first_poll() {
    // A receiver that polled its ring empty a few times (so its count of
    // empty polls is away from the one that looks at the closed word),
    // then was armed by the set: the close wakes the set, and the first
    // poll after that wait reports the end, not "empty". No liveness
    // descriptor: the closed word is the only news.
    let mut set = WaitSet::new().unwrap();
    let opts = Options::new().capacity_elements(64);
    let (tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
    let rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
    set.insert(7, rx).unwrap();
    let mut buf = [0u64; 4];
    for _ in 0..5 {
        let rx = set.get_mut::<Receiver<u64>>(7).unwrap();
        assert_eq!(rx.try_recv(&mut buf).unwrap(), 0);
    }
    let mut events = Vec::new();
    set.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
    tx.close().unwrap();
    set.wait(&mut events, Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(events.iter().map(|e| e.token()).collect::<Vec<_>>(), [7]);
    let rx = set.get_mut::<Receiver<u64>>(7).unwrap();
    let end = rx.try_recv(&mut buf).unwrap_err();
    assert!(matches!(end, Error::Closed), "{end}");
}
