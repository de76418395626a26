//! Message rings and the duplex pair: sizes at the edges, errors, peer
//! death, and two real processes exchanging 1 GiB of randomly sized,
//! checksummed messages.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use sharedring::{msg_channel, Duplex, Error, MsgReceiver, MsgSender, Options};

fn opts(capacity: usize) -> Options {
    Options::new().capacity_bytes(capacity)
}

#[test]
fn empty_and_maximum_messages_round_trip() {
    let (mut tx, mut rx) = msg_channel(&opts(4096)).unwrap();
    let max = tx.max_msg();
    assert_eq!(max, 2040);
    let big: Vec<u8> = (0..max).map(|i| i as u8).collect();
    tx.send(&[], None).unwrap();
    tx.send(&big, None).unwrap();
    let mut buf = vec![1, 2, 3];
    assert_eq!(rx.recv(&mut buf, None).unwrap(), 0);
    assert!(buf.is_empty());
    assert_eq!(rx.recv(&mut buf, None).unwrap(), max);
    assert_eq!(buf, big);
}

#[test]
fn too_large_message_is_the_callers_error_and_sends_nothing() {
    let (mut tx, mut rx) = msg_channel(&opts(1024).max_msg(100)).unwrap();
    assert!(matches!(
        tx.send(&[0; 101], None),
        Err(Error::MessageTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        tx.try_send(&[0; 101]),
        Err(Error::MessageTooLarge { .. })
    ));
    assert_eq!(rx.try_recv(&mut Vec::new()).unwrap(), None);
}

#[test]
fn small_buffer_leaves_the_message_in_the_ring() {
    let (mut tx, mut rx) = msg_channel(&opts(1024)).unwrap();
    tx.send(b"0123456789", None).unwrap();
    assert!(matches!(
        rx.try_recv_into(&mut [0; 4]),
        Err(Error::BufferTooSmall { len: 10, buf: 4 })
    ));
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv_into(&mut buf).unwrap(), Some(10));
    assert_eq!(&buf[..10], b"0123456789");
}

#[test]
fn full_ring_blocks_send_until_timeout_and_try_send_says_false() {
    let (mut tx, _rx) = msg_channel(&opts(256).spin(Duration::ZERO)).unwrap();
    let mut sent = 0;
    while tx.try_send(&[7; 50]).unwrap() {
        sent += 1;
    }
    assert!(sent >= 3, "a 256-byte ring holds a few 50-byte messages");
    assert!(matches!(
        tx.send(&[7; 50], Some(Duration::from_millis(30))),
        Err(Error::TimedOut { .. })
    ));
}

#[test]
fn receiver_gets_committed_messages_then_peer_gone() {
    let (mut tx, mut rx) = msg_channel(&opts(4096)).unwrap();
    tx.send(b"one", None).unwrap();
    tx.send_with(3, None, |r| r.copy_from_slice(b"two"))
        .unwrap();
    // A crash: the stream is not closed (a drop would close it).
    testkit::crash(tx);
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf, Some(Duration::from_secs(5))).unwrap(), 3);
    assert_eq!(buf, b"one");
    let second = rx
        .recv_with(Some(Duration::from_secs(5)), |r| {
            let mut out = [0u8; 3];
            r.copy_to_slice(&mut out);
            out
        })
        .unwrap();
    assert_eq!(&second, b"two");
    assert!(matches!(
        rx.recv(&mut buf, Some(Duration::from_secs(5))),
        Err(Error::PeerGone)
    ));
}

#[test]
fn accepting_side_refuses_a_larger_maximum_than_it_allows() {
    let (a, b) = UnixStream::pair().unwrap();
    let creator = std::thread::spawn(move || MsgSender::create_with(a, &opts(1 << 16)));
    let err = MsgReceiver::accept_with(b, &Options::new().max_msg(1000)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Handshake(sharedring::HandshakeError::BadMaxMessage { limit: 1000, .. })
        ),
        "{err}"
    );
    let refused = creator.join().unwrap().unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Handshake(sharedring::HandshakeError::Refused { .. })
        ),
        "{refused}"
    );
}

const TOTAL: u64 = 1 << 30;

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Message `k`'s bytes: its length and contents follow from `k` and the
/// sender's generator, and carry an FNV-style checksum in the last 8 bytes
/// (when long enough) so each message checks itself.
fn fill(msg: &mut [u8], seed: u64) {
    let mut s = seed | 1;
    for b in msg.iter_mut() {
        *b = rng(&mut s) as u8;
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn two_processes_exchange_a_gib_of_random_sized_messages() {
    if let Some((_, sock)) = testkit::as_peer() {
        let mut tx = MsgSender::accept(sock).unwrap();
        let mut state = 0x5eed_u64;
        let mut sent = 0u64;
        let mut k = 0u64;
        let mut msg = vec![0u8; 70_000];
        let mut sum = 0u64;
        while sent < TOTAL {
            let len = (rng(&mut state) % 70_000) as usize;
            fill(&mut msg[..len], k);
            tx.send(&msg[..len], None).unwrap();
            sum = sum.wrapping_add(fnv(&msg[..len]));
            sent += len as u64;
            k += 1;
        }
        // The checksum of everything, as the last message.
        tx.send(&sum.to_ne_bytes(), None).unwrap();
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "two_processes_exchange_a_gib_of_random_sized_messages",
        "sender",
    )
    .unwrap();
    let mut rx = MsgReceiver::create_with(sock, &opts(1 << 20)).unwrap();
    let mut buf = Vec::new();
    let mut got = 0u64;
    let mut k = 0u64;
    let mut state = 0x5eed_u64;
    let mut sum = 0u64;
    let mut expected = vec![0u8; 70_000];
    while got < TOTAL {
        let len = rx.recv(&mut buf, Some(Duration::from_secs(30))).unwrap();
        let want = (rng(&mut state) % 70_000) as usize;
        assert_eq!(len, want, "message {k} has the wrong length");
        fill(&mut expected[..len], k);
        assert!(buf == expected[..len], "message {k} differs");
        sum = sum.wrapping_add(fnv(&buf));
        got += len as u64;
        k += 1;
    }
    rx.recv(&mut buf, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(buf, sum.to_ne_bytes(), "checksums differ");
    assert!(matches!(
        rx.recv(&mut buf, Some(Duration::from_secs(30))),
        Err(Error::PeerGone)
    ));
    assert!(child.wait().unwrap().success());
}

#[test]
fn duplex_answers_every_request_across_processes() {
    if let Some((_, sock)) = testkit::as_peer() {
        let mut d = Duplex::accept(sock).unwrap();
        let mut req = Vec::new();
        while d.rx.recv(&mut req, None).is_ok() {
            let sum = req.iter().map(|&b| b as u64).sum::<u64>();
            d.tx.send(&sum.to_ne_bytes(), None).unwrap();
        }
        std::process::exit(0);
    }
    let (mut child, sock) =
        testkit::spawn_peer("duplex_answers_every_request_across_processes", "server").unwrap();
    let mut d = Duplex::create_with(sock, &opts(1 << 16)).unwrap();
    let mut state = 42u64;
    let mut resp = Vec::new();
    for _ in 0..10_000 {
        let len = (rng(&mut state) % 3000) as usize;
        let req: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        d.request(&req, &mut resp, Some(Duration::from_secs(30)))
            .unwrap();
        let sum = req.iter().map(|&b| b as u64).sum::<u64>();
        assert_eq!(resp, sum.to_ne_bytes());
    }
    drop(d);
    assert!(child.wait().unwrap().success());
}
