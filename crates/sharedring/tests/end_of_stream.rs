//! End of stream against a crash, across real processes. A sender that
//! calls `close`, or is dropped, leaves its data and then `Error::Closed`;
//! one that is killed (SIGKILL), aborts, or panics with the end alive
//! leaves its data and then `Error::PeerGone`. Both kinds of ring. A
//! receiver blocked in `recv` (with a deadline, with none, or async) while
//! the peer's socket stays open (a `Duplex` whose other ring lives on, an
//! offer without a liveness descriptor) is woken by the close and sees
//! `Closed` at once. A hostile sender that sets the closed word and keeps
//! sending is drained up to the end and never crashes us.

use std::time::{Duration, Instant};

use sharedring::{Duplex, Error, MsgReceiver, MsgSender, Options, Receiver, Sender};

const T: Option<Duration> = Some(Duration::from_secs(30));

/// How the sending process ends its stream after sending everything.
fn finish<E: Send + 'static>(role: &str, end: E) {
    if role.ends_with("-close") || role.ends_with("-drop") {
        // `close` is in the callers; a drop is a clean close too.
        drop(end);
    } else if role.ends_with("-kill") {
        // Wait to be killed, the end still open.
        std::thread::sleep(Duration::from_secs(60));
        drop(end);
    } else if role.ends_with("-abort") {
        std::process::abort();
    } else if role.ends_with("-panic") {
        // A thread that panics with the end alive: the unwinding drops it
        // while panicking. Then the process exits with a failure.
        let panicked = std::thread::spawn(move || {
            let _alive = end;
            panic!("the sender panics with its end alive (expected by the test)");
        })
        .join();
        assert!(panicked.is_err());
        std::process::exit(3);
    } else {
        panic!("unknown role {role}");
    }
}

fn peer(role: &str, sock: std::os::unix::net::UnixStream) {
    if role.starts_with("elements-") {
        let mut tx = Sender::<u64>::create(sock, 256).unwrap();
        tx.send(&(1..=1000).collect::<Vec<u64>>(), T).unwrap();
        if role == "elements-close" {
            tx.close().unwrap();
            return;
        }
        finish(role, tx);
    } else if role.starts_with("messages-") {
        let mut tx = MsgSender::create(sock, 4096).unwrap();
        for i in 0..10u8 {
            tx.send(&[i; 100], T).unwrap();
        }
        if role == "messages-close" {
            tx.close().unwrap();
            return;
        }
        finish(role, tx);
    } else {
        panic!("unknown role {role}");
    }
}

/// Receives 1..=1000, then returns what the receiver says next.
fn drain_elements(sock: std::os::unix::net::UnixStream) -> Error {
    let mut rx = Receiver::<u64>::accept(sock).unwrap();
    let mut buf = [0u64; 64];
    let mut next = 1;
    loop {
        match rx.recv(&mut buf, T) {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, next);
                    next += 1;
                }
            }
            Err(e) => {
                assert_eq!(next, 1001, "everything sent arrives first");
                // And the answer stays.
                let again = rx.try_recv(&mut buf).unwrap_err();
                assert_eq!(again.to_string(), e.to_string());
                return e;
            }
        }
    }
}

fn drain_messages(sock: std::os::unix::net::UnixStream) -> Error {
    let mut rx = MsgReceiver::accept(sock).unwrap();
    let mut buf = Vec::new();
    for i in 0..10u8 {
        rx.recv(&mut buf, T).unwrap();
        assert_eq!(buf, [i; 100]);
    }
    let end = rx.recv(&mut buf, T).unwrap_err();
    let again = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(again.to_string(), end.to_string());
    end
}

#[test]
fn a_closed_or_dropped_stream_ends_with_closed_and_a_crash_with_peer_gone() {
    const TEST: &str = "a_closed_or_dropped_stream_ends_with_closed_and_a_crash_with_peer_gone";
    if let Some((role, sock)) = testkit::as_peer() {
        peer(&role, sock);
        std::process::exit(0);
    }
    // (role, the end the receiver must see, whether the peer exits cleanly)
    let cases = [
        ("elements-close", true, true),
        ("elements-drop", true, true),
        ("elements-kill", false, false),
        ("elements-abort", false, false),
        ("elements-panic", false, false),
        ("messages-close", true, true),
        ("messages-drop", true, true),
        ("messages-kill", false, false),
        ("messages-panic", false, false),
    ];
    for (role, closed, clean_exit) in cases {
        let (mut child, sock) = testkit::spawn_peer(TEST, role).unwrap();
        let drain = std::thread::spawn(move || {
            if role.starts_with("elements") {
                drain_elements(sock)
            } else {
                drain_messages(sock)
            }
        });
        if role.ends_with("-kill") {
            // Killed once everything is sent (and so received, or in the
            // ring: the drain checks that it all arrives first).
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
        }
        let end = drain.join().unwrap();
        if closed {
            assert!(matches!(end, Error::Closed), "{role}: {end}");
        } else {
            assert!(matches!(end, Error::PeerGone), "{role}: {end}");
        }
        let status = child.wait().unwrap();
        assert_eq!(status.success(), clean_exit, "{role}: {status}");
    }
}

/// A peer that stores the closed word through its own producer (as a C
/// peer could, at any time) and then keeps sending, and one that also
/// scribbles the word: the receiver gets every value committed before the
/// mark, in order, then `Closed`, and nothing breaks.
#[test]
fn a_sender_that_marks_its_stream_closed_and_keeps_sending_is_drained_then_ended() {
    const TEST: &str =
        "a_sender_that_marks_its_stream_closed_and_keeps_sending_is_drained_then_ended";
    if let Some((role, sock)) = testkit::as_peer() {
        match role.as_str() {
            "elements" => {
                let mut tx = Sender::<u64>::create(sock, 64).unwrap();
                tx.send(&(1..=500).collect::<Vec<u64>>(), T).unwrap();
                // The close's own wake-up check says whether to wake (a
                // second check would not: that sleep counts as woken).
                if tx.producer_without_wake().close() {
                    tx.notifier().notify().unwrap();
                }
                // Keep sending after the mark until the receiver is gone.
                let mut next = 501u64;
                while tx.send(&[next], T).is_ok() {
                    next += 1;
                }
            }
            "messages" => {
                let mut tx = MsgSender::create(sock, 1024).unwrap();
                for i in 0..50u32 {
                    tx.send(&i.to_ne_bytes(), T).unwrap();
                }
                // The close's own wake-up check says whether to wake (a
                // second check would not: that sleep counts as woken).
                if tx.producer_without_wake().close() {
                    tx.notifier().notify().unwrap();
                }
                let mut i = 50u32;
                while tx.send(&i.to_ne_bytes(), T).is_ok() {
                    i += 1;
                }
            }
            other => panic!("unknown role {other}"),
        }
        std::process::exit(0);
    }

    let (mut child, sock) = testkit::spawn_peer(TEST, "elements").unwrap();
    let mut rx = Receiver::<u64>::accept(sock).unwrap();
    let mut buf = [0u64; 16];
    let mut next = 1u64;
    let end = loop {
        match rx.recv(&mut buf, T) {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, next, "in order");
                    next += 1;
                }
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::Closed), "{end}");
    assert!(
        next > 500,
        "everything before the mark arrived (got {next})"
    );
    assert!(matches!(rx.recv(&mut buf, T), Err(Error::Closed)));
    drop(rx);
    assert!(child.wait().unwrap().success());

    let (mut child, sock) = testkit::spawn_peer(TEST, "messages").unwrap();
    let mut rx = MsgReceiver::accept(sock).unwrap();
    let mut next = 0u32;
    let end = loop {
        let mut b = [0u8; 4];
        match rx.recv_into(&mut b, T) {
            Ok(4) => {
                assert_eq!(u32::from_ne_bytes(b), next, "in order");
                next += 1;
            }
            Ok(n) => panic!("a message of {n} bytes"),
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::Closed), "{end}");
    assert!(
        next >= 50,
        "everything before the mark arrived (got {next})"
    );
    drop(rx);
    assert!(child.wait().unwrap().success());
}

/// A receiver blocked in `recv` with a long deadline, on a `Duplex` whose
/// socket stays open (the peer's other ring lives on): the close wakes it
/// and it reports `Closed` long before the deadline. Real processes.
#[test]
fn a_blocked_duplex_receiver_sees_the_close_at_once() {
    const TEST: &str = "a_blocked_duplex_receiver_sees_the_close_at_once";
    if let Some((_, sock)) = testkit::as_peer() {
        let Duplex { tx, mut rx } = Duplex::create(sock, 4096).unwrap();
        // Let the parent block first.
        std::thread::sleep(Duration::from_millis(200));
        tx.close().unwrap();
        // Keep the socket open until the parent says it saw the end.
        let mut buf = Vec::new();
        rx.recv(&mut buf, T).unwrap();
        assert_eq!(buf, b"seen");
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(TEST, "duplex").unwrap();
    let mut server = Duplex::accept(sock).unwrap();
    let mut buf = Vec::new();
    let start = Instant::now();
    let end = server
        .rx
        .recv(&mut buf, Some(Duration::from_secs(60)))
        .unwrap_err();
    assert!(matches!(end, Error::Closed), "{end}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "woken by the close, not by the deadline ({:?})",
        start.elapsed()
    );
    server.tx.send(b"seen", T).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Without any liveness descriptor (an offer moved by other means), the
/// closed word is the only news: blocked receivers of both kinds, with and
/// without a deadline, wake and report `Closed`.
#[test]
fn a_blocked_receiver_without_liveness_is_woken_by_the_close() {
    let opts = Options::new().capacity_elements(64).spin(Duration::ZERO);
    for deadline in [None, Some(Duration::from_secs(60))] {
        let (tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
        let mut rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let r = rx.recv(&mut [0u64; 4], deadline);
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        tx.close().unwrap();
        let (r, waited) = waiter.join().unwrap();
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");

        let mopts = Options::new().capacity_bytes(4096).spin(Duration::ZERO);
        let (tx, offer) = MsgSender::create_offer(&mopts, None).unwrap();
        let mut rx = MsgReceiver::from_offer(offer, &Options::new(), None).unwrap();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let r = rx.recv(&mut Vec::new(), deadline);
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(tx); // a drop closes too
        let (r, waited) = waiter.join().unwrap();
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }
}

/// The async ends: a receiver task parked on its eventfd, no liveness
/// descriptor; the close wakes it.
#[cfg(feature = "tokio")]
#[test]
fn an_async_receiver_is_woken_by_the_close() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = Options::new().capacity_elements(64).spin(Duration::ZERO);
        let (tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
        let rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
        let mut rx = rx.into_async().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut tx = tx;
            tx.send(&[7], None).unwrap();
            tx.close().unwrap();
        });
        let mut buf = [0u64; 4];
        let within = Duration::from_secs(10);
        assert_eq!(
            tokio::time::timeout(within, rx.recv(&mut buf))
                .await
                .unwrap()
                .unwrap(),
            1
        );
        let end = tokio::time::timeout(within, rx.recv(&mut buf))
            .await
            .expect("woken by the close");
        assert!(matches!(end, Err(Error::Closed)), "{end:?}");
        closer.join().unwrap();

        let mopts = Options::new().capacity_bytes(4096).spin(Duration::ZERO);
        let (tx, offer) = MsgSender::create_offer(&mopts, None).unwrap();
        let rx = MsgReceiver::from_offer(offer, &Options::new(), None).unwrap();
        let mut rx = rx.into_async().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(tx);
        });
        let end = tokio::time::timeout(within, rx.recv(&mut Vec::new()))
            .await
            .expect("woken by the drop");
        assert!(matches!(end, Err(Error::Closed)), "{end:?}");
        closer.join().unwrap();
    });
}

#[test]
fn a_polling_receiver_sees_a_closed_stream_at_once_while_the_socket_stays_open() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || Duplex::accept(b).unwrap());
    let client = Duplex::create(a, 4096).unwrap();
    let mut server = server.join().unwrap();
    let Duplex {
        tx,
        rx: _keeps_the_socket_open,
    } = client;
    let mut tx = tx;
    tx.send(b"bye", T).unwrap();
    tx.close().unwrap();
    let mut buf = Vec::new();
    assert_eq!(server.rx.try_recv(&mut buf).unwrap(), Some(3));
    // The socket is still open (the client's other ring): the closed word
    // is looked at by every poll that finds the ring empty.
    let end = server.rx.try_recv(&mut buf).unwrap_err();
    assert!(matches!(end, Error::Closed), "{end}");
    assert!(matches!(server.rx.try_recv(&mut buf), Err(Error::Closed)));
    // The other direction still works.
    server.tx.send(b"still here", T).unwrap();
}

#[test]
fn an_in_place_reader_gets_everything_then_closed_even_without_liveness() {
    // `read_chunk` is the in-place receive: the end of the stream must
    // reach it as it reaches `try_recv` (the C API's in-place read relies
    // on it), with no socket to hang up.
    let opts = Options::new().capacity_elements(64);
    let (mut tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
    let mut rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
    assert_eq!(rx.read_chunk(8).unwrap().len(), 0, "open and empty");
    tx.send(&[1, 2, 3], None).unwrap();
    tx.close().unwrap();
    let chunk = rx.read_chunk(8).unwrap();
    assert_eq!(
        (0..chunk.len()).map(|i| chunk.get(i)).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    chunk.release_all().unwrap();
    for _ in 0..2 {
        assert!(matches!(rx.read_chunk(8), Err(Error::Closed)), "sticky");
    }
}

/// How many non-blocking polls of an empty ring may pass after a close
/// before the receiver reports it (the facade looks at the closed word on
/// the first empty poll after data or a wait, then on every 16th).
const CLOSE_SEEN_WITHIN: usize = 16;

#[test]
fn a_receiver_polling_an_empty_ring_sees_the_close_within_16_polls() {
    // No liveness descriptor: the closed word is the only news. The
    // receiver has polled the empty ring `before` times when the close
    // lands (every phase of the count, and past the socket check's 1024).
    let opts = Options::new().capacity_elements(64);
    for before in [1usize, 2, 15, 16, 17, 31, 1023, 1024, 1025, 3000] {
        let (tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
        let mut rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
        let mut buf = [0u64; 4];
        for _ in 0..before {
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 0, "open and empty");
        }
        tx.close().unwrap();
        let polls = (1..=CLOSE_SEEN_WITHIN)
            .find(|_| match rx.try_recv(&mut buf) {
                Ok(0) => false,
                Err(Error::Closed) => true,
                other => panic!("element ring, {before} polls before: {other:?}"),
            })
            .unwrap_or_else(|| panic!("element ring: the close unseen after {before} + 16 polls"));
        assert!(
            matches!(rx.try_recv(&mut buf), Err(Error::Closed)),
            "sticky after {polls}"
        );

        let mopts = Options::new().capacity_bytes(4096);
        let (tx, offer) = MsgSender::create_offer(&mopts, None).unwrap();
        let mut rx = MsgReceiver::from_offer(offer, &Options::new(), None).unwrap();
        let mut buf = [0u8; 16];
        for _ in 0..before {
            assert_eq!(rx.try_recv_into(&mut buf).unwrap(), None, "open and empty");
        }
        tx.close().unwrap();
        (1..=CLOSE_SEEN_WITHIN)
            .find(|_| match rx.try_recv_into(&mut buf) {
                Ok(None) => false,
                Err(Error::Closed) => true,
                other => panic!("message ring, {before} polls before: {other:?}"),
            })
            .unwrap_or_else(|| panic!("message ring: the close unseen after {before} + 16 polls"));
    }
}

#[test]
fn the_first_poll_after_a_wait_sees_the_close_at_once() {
    // A receiver that polled the ring empty a few times (away from the
    // count's looking phase), then waited (a blocking receive that timed
    // out, both within the spin budget and past it), sees a close that
    // landed since at its first poll: event loops poll once per wake-up.
    let opts = Options::new().capacity_elements(64);
    for wait in [Duration::from_micros(1), Duration::from_millis(5)] {
        let (tx, offer) = Sender::<u64>::create_offer(&opts, None).unwrap();
        let mut rx = Receiver::<u64>::from_offer(offer, &Options::new(), None).unwrap();
        let mut buf = [0u64; 4];
        for _ in 0..5 {
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 0);
        }
        let timed_out = rx.recv(&mut buf, Some(wait)).unwrap_err();
        assert!(
            matches!(timed_out, Error::TimedOut { done: 0 }),
            "{timed_out}"
        );
        tx.close().unwrap();
        let end = rx.try_recv(&mut buf).unwrap_err();
        assert!(
            matches!(end, Error::Closed),
            "after waiting {wait:?}: {end}"
        );
    }
}
