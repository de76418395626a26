//! End of stream against a crash, across real processes: a sender that
//! calls `close` leaves its data and then `Error::Closed`; one that exits
//! without it, or is killed, leaves its data and then `Error::PeerGone`.
//! Both kinds of ring; and a closed stream is seen while the peer's
//! socket stays open (a `Duplex` whose other ring lives on).

use std::time::Duration;

use sharedring::{Duplex, Error, MsgReceiver, MsgSender, Receiver, Sender};

const T: Option<Duration> = Some(Duration::from_secs(30));

fn peer(role: &str, sock: std::os::unix::net::UnixStream) {
    match role {
        "elements-close" | "elements-exit" | "elements-kill" => {
            let mut tx = Sender::<u64>::create(sock, 256).unwrap();
            tx.send(&(1..=1000).collect::<Vec<u64>>(), T).unwrap();
            match role {
                "elements-close" => tx.close().unwrap(),
                "elements-exit" => drop(tx),
                // Wait to be killed, the end still open.
                _ => std::thread::sleep(Duration::from_secs(60)),
            }
        }
        "messages-close" | "messages-exit" => {
            let mut tx = MsgSender::create(sock, 4096).unwrap();
            for i in 0..10u8 {
                tx.send(&[i; 100], T).unwrap();
            }
            if role == "messages-close" {
                tx.close().unwrap();
            }
        }
        other => panic!("unknown role {other}"),
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
    rx.recv(&mut buf, T).unwrap_err()
}

#[test]
fn a_closed_stream_ends_with_closed_and_a_vanished_sender_with_peer_gone() {
    const TEST: &str = "a_closed_stream_ends_with_closed_and_a_vanished_sender_with_peer_gone";
    if let Some((role, sock)) = testkit::as_peer() {
        peer(&role, sock);
        std::process::exit(0);
    }
    for (role, closed) in [
        ("elements-close", true),
        ("elements-exit", false),
        ("messages-close", true),
        ("messages-exit", false),
    ] {
        let (mut child, sock) = testkit::spawn_peer(TEST, role).unwrap();
        let end = if role.starts_with("elements") {
            drain_elements(sock)
        } else {
            drain_messages(sock)
        };
        if closed {
            assert!(matches!(end, Error::Closed), "{role}: {end}");
        } else {
            assert!(matches!(end, Error::PeerGone), "{role}: {end}");
        }
        assert!(child.wait().unwrap().success(), "{role}");
    }
    // Killed mid-stream: its data, then PeerGone.
    let (mut child, sock) = testkit::spawn_peer(TEST, "elements-kill").unwrap();
    let mut rx = Receiver::<u64>::accept(sock).unwrap();
    let mut buf = [0u64; 1000];
    let mut got = 0;
    while got < 1000 {
        got += rx.recv(&mut buf[got..], T).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(rx.recv(&mut buf, T), Err(Error::PeerGone)));
}

#[test]
fn a_polling_receiver_sees_a_closed_stream_while_the_socket_stays_open() {
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
    // The socket is still open (the client's other ring): the mark is
    // looked at every so often by a polling receiver.
    let mut polls = 0u32;
    let end = loop {
        match server.rx.try_recv(&mut buf) {
            Ok(None) => polls += 1,
            Ok(Some(_)) => panic!("nothing more was sent"),
            Err(e) => break e,
        }
        assert!(polls < 1_000_000, "the closed stream was never noticed");
    };
    assert!(matches!(end, Error::Closed), "{end}");
    // The other direction still works.
    server.tx.send(b"still here", T).unwrap();
}
