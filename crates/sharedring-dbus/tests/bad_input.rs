//! A hostile or vanishing peer during the D-Bus setup: each case gets a
//! clear error, and no descriptor leaks. All cases are in one test so that
//! no other test in this binary opens or closes descriptors while
//! `/proc/self/fd` is counted.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{bus, fd_count, settled_fd_count};
use sharedring::{Error as RingError, HandshakeError, Offer, Options, Receiver, Sender};
use sharedring_dbus::zbus::blocking::{Connection, MessageIterator};
use sharedring_dbus::zbus::message::Type;
use sharedring_dbus::zbus::zvariant::Fd;
use sharedring_dbus::zbus::Message;
use sharedring_dbus::{errors, open, Error, PrivateBus, RingServer, DEFAULT_PATH, INTERFACE};

const LONG: Duration = Duration::from_secs(10);

/// What the hostile service does with one `Open` call.
type Answer = Box<dyn FnOnce(&Connection, &Message) + Send>;

/// A service on its own connection that answers one `Open` call with
/// `answer`, then leaves the bus. Returns the client's result.
fn against(bus: &PrivateBus, client: &Connection, answer: Answer) -> Result<Sender<f64>, Error> {
    let hostile = bus.connect().unwrap();
    let name = hostile.unique_name().unwrap().to_string();
    let calls = MessageIterator::from(&hostile);
    let service = std::thread::spawn(move || {
        for msg in calls {
            let msg = msg.unwrap();
            let header = msg.header();
            if header.message_type() == Type::MethodCall
                && header.member().is_some_and(|m| m.as_str() == "Open")
            {
                answer(&hostile, &msg);
                return;
            }
        }
    });
    let result = open::<Sender<f64>>(client, &name, DEFAULT_PATH, &Options::new());
    service.join().unwrap();
    result
}

/// A genuine offer for a `Sender<f64>` (the hostile service keeps the
/// receiver), to be tampered with.
fn genuine(capacity: usize) -> Offer {
    let (_rx, offer) =
        Receiver::<f64>::create_offer(&Options::new().capacity_elements(capacity), None).unwrap();
    offer
}

/// Replies with the offer's values and the given descriptors.
fn reply(conn: &Connection, call: &Message, o: &Offer, fds: [&OwnedFd; 4]) {
    let body = common::open_reply(o, fds.map(|f| f.as_fd()));
    let msg = Message::method_return(&call.header())
        .unwrap()
        .build(&body)
        .unwrap();
    conn.send(&msg).unwrap();
}

fn socket() -> OwnedFd {
    UnixStream::pair().unwrap().0.into()
}

fn expect(what: &str, result: Result<Sender<f64>, Error>, ok: impl Fn(&Error) -> bool) {
    match result {
        Err(e) if ok(&e) => println!("{what}: {e}"),
        Err(e) => panic!("{what}: unexpected error {e:?}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

fn handshake(e: &Error) -> Option<&HandshakeError> {
    match e {
        Error::Ring(RingError::Handshake(h)) => Some(h),
        _ => None,
    }
}

#[test]
fn bad_input_gets_clear_errors_and_leaks_no_descriptors() {
    let bus = bus();
    let client = bus.connect().unwrap();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<Receiver<f64>>::serve(
        &server_conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(1024),
    )
    .unwrap();
    let server_name = server_conn.unique_name().unwrap().to_string();

    // Warm up (zbus's and async-io's threads, reactors, and descriptors
    // made once per process) with a genuine ring, and the harness with a
    // genuine reply, so that they are not counted as leaks.
    let mut tx: Sender<f64> = open(&client, &server_name, DEFAULT_PATH, &Options::new()).unwrap();
    let (rx, _) = server.accept(Some(LONG)).unwrap();
    tx.send(&[1.0], None).unwrap();
    drop((tx, rx));
    let fine = against(
        &bus,
        &client,
        Box::new(|c, m| {
            let o = genuine(64);
            let h = socket();
            reply(c, m, &o, [&o.fds.memory, &o.fds.data, &o.fds.room, &h]);
        }),
    );
    assert!(fine.is_ok(), "{fine:?}");
    drop(fine);
    std::thread::sleep(Duration::from_millis(200));
    let before = fd_count();

    // Too few descriptors: a reply of the wrong signature.
    expect(
        "three descriptors",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let o = genuine(64);
                let body = (
                    1u32,
                    2u32,
                    8u32,
                    8u32,
                    o.type_tag,
                    o.capacity,
                    0u32,
                    o.region_len,
                    0u32,
                    Fd::from(o.fds.memory.as_fd()),
                    Fd::from(o.fds.data.as_fd()),
                    Fd::from(o.fds.room.as_fd()),
                );
                let msg = Message::method_return(&m.header())
                    .unwrap()
                    .build(&body)
                    .unwrap();
                c.send(&msg).unwrap();
            }),
        ),
        |e| matches!(e, Error::ReplySignature { found, .. } if found == "uuuuttutuhhh"),
    );

    // Strings where descriptors belong.
    expect(
        "strings for descriptors",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let body = (
                    1u32, 2u32, 8u32, 8u32, 0u64, 64u64, 0u32, 4096u64, 0u32, "m", "d", "r", "h",
                );
                let msg = Message::method_return(&m.header())
                    .unwrap()
                    .build(&body)
                    .unwrap();
                c.send(&msg).unwrap();
            }),
        ),
        |e| matches!(e, Error::ReplySignature { found, .. } if found == "uuuuttutussss"),
    );

    // One descriptor sent four times: the signature is right but only one
    // descriptor is attached... or four copies, depending on the sender's
    // library; either way the memfd is not an eventfd.
    expect(
        "one descriptor four times",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let o = genuine(64);
                let fd = &o.fds.memory;
                reply(c, m, &o, [fd, fd, fd, fd]);
            }),
        ),
        |e| {
            matches!(
                handshake(e),
                Some(HandshakeError::DescriptorCount { got: 1, .. } | HandshakeError::Eventfd(_))
            ) || matches!(e, Error::HangupNotSocket)
        },
    );

    // A socket where the memfd belongs.
    expect(
        "socket as memory",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let o = genuine(64);
                let (s, h) = (socket(), socket());
                reply(c, m, &o, [&s, &o.fds.data, &o.fds.room, &h]);
            }),
        ),
        |e| matches!(handshake(e), Some(HandshakeError::Memory(_))),
    );

    // A memfd where an eventfd belongs.
    expect(
        "memfd as eventfd",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let o = genuine(64);
                let h = socket();
                reply(c, m, &o, [&o.fds.memory, &o.fds.memory, &o.fds.room, &h]);
            }),
        ),
        |e| matches!(handshake(e), Some(HandshakeError::Eventfd(_))),
    );

    // An eventfd as the hang-up socket.
    expect(
        "eventfd as hang-up socket",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let o = genuine(64);
                reply(
                    c,
                    m,
                    &o,
                    [&o.fds.memory, &o.fds.data, &o.fds.room, &o.fds.data],
                );
            }),
        ),
        |e| matches!(e, Error::HangupNotSocket),
    );

    // A memfd too small for the ring it claims (mapping it would SIGBUS).
    expect(
        "memfd too small",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let small = genuine(64);
                let big = genuine(1 << 14);
                let h = socket();
                reply(
                    c,
                    m,
                    &big,
                    [&small.fds.memory, &small.fds.data, &small.fds.room, &h],
                );
            }),
        ),
        |e| matches!(handshake(e), Some(HandshakeError::Memory(_))),
    );

    // Wrong values: the same role as ours, another element size, a huge
    // capacity, unknown flags.
    let tamper = |f: fn(&mut (u32, u32, u64, u64, u32))| {
        against(
            &bus,
            &client,
            Box::new(move |c, m| {
                let o = genuine(64);
                let mut v = (2u32, o.elem_size, o.capacity, o.region_len, 0u32);
                f(&mut v);
                let h = socket();
                let body = (
                    1u32,
                    v.0,
                    v.1,
                    o.elem_align,
                    o.type_tag,
                    v.2,
                    0u32,
                    v.3,
                    v.4,
                    Fd::from(o.fds.memory.as_fd()),
                    Fd::from(o.fds.data.as_fd()),
                    Fd::from(o.fds.room.as_fd()),
                    Fd::from(h.as_fd()),
                );
                let msg = Message::method_return(&m.header())
                    .unwrap()
                    .build(&body)
                    .unwrap();
                c.send(&msg).unwrap();
            }),
        )
    };
    expect("same role", tamper(|v| v.0 = 1), |e| {
        matches!(
            handshake(e),
            Some(HandshakeError::RoleMismatch { peer_role: 1 })
        )
    });
    expect("unknown role", tamper(|v| v.0 = 9), |e| {
        matches!(
            handshake(e),
            Some(HandshakeError::RoleMismatch { peer_role: 9 })
        )
    });
    expect("element size", tamper(|v| v.1 = 4), |e| {
        matches!(
            handshake(e),
            Some(HandshakeError::TypeMismatch { peer, .. }) if peer.contains("(4 B")
        )
    });
    expect("huge capacity", tamper(|v| v.2 = 1 << 60), |e| {
        matches!(handshake(e), Some(HandshakeError::BadCapacity { .. }))
    });
    expect("region length", tamper(|v| v.3 += 4096), |e| {
        matches!(
            handshake(e),
            Some(HandshakeError::RegionLengthMismatch { .. })
        )
    });
    expect("flags", tamper(|v| v.4 = 6), |e| {
        matches!(e, Error::UnknownFlags { flags: 6 })
    });

    // An error reply under the interface's names is a refusal; the
    // service leaving the bus without answering is told by the daemon
    // twice: its NoReply error to our call and its NameOwnerChanged
    // signal, whichever we read first.
    expect(
        "refusal",
        against(
            &bus,
            &client,
            Box::new(|c, m| {
                let msg = Message::error(&m.header(), errors::BUSY)
                    .unwrap()
                    .build(&("try later",))
                    .unwrap();
                c.send(&msg).unwrap();
            }),
        ),
        |e| matches!(e, Error::Refused { name, message } if name == errors::BUSY && message.as_deref() == Some("try later")),
    );
    expect(
        "service leaves mid-setup",
        against(&bus, &client, Box::new(|_, _| {})),
        |e| {
            matches!(e, Error::PeerGone)
                || matches!(e, Error::Bus(z) if z.to_string().contains("NoReply"))
        },
    );

    // A client that calls and leaves the bus before the answer: the real
    // service either refuses (the caller is gone) or hands out a ring that
    // reports PeerGone; either way it goes on serving.
    for _ in 0..3 {
        let quitter = bus.connect().unwrap();
        let call = Message::method_call(DEFAULT_PATH, "Open")
            .unwrap()
            .destination(server_name.as_str())
            .unwrap()
            .interface(INTERFACE)
            .unwrap()
            .build(&(1u32, 1u32, 8u32, <f64 as sharedring::Element>::TAG.hash()))
            .unwrap();
        quitter.send(&call).unwrap();
        quitter.close().unwrap();
        match server.accept(Some(Duration::from_secs(2))) {
            Ok((mut rx, _)) => {
                let mut buf = [0f64; 4];
                assert!(matches!(
                    rx.recv(&mut buf, Some(LONG)),
                    Err(RingError::PeerGone)
                ));
            }
            Err(Error::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    // A call with arguments of the wrong types never reaches the ring code.
    let e = client
        .call_method(
            Some(server_name.as_str()),
            DEFAULT_PATH,
            Some(INTERFACE),
            "Open",
            &("sender",),
        )
        .unwrap_err();
    assert!(
        matches!(&e, sharedring_dbus::zbus::Error::MethodError(..))
            && e.to_string().contains("(uuut)"),
        "{e}"
    );
    // The service still works.
    let mut tx: Sender<f64> = open(&client, &server_name, DEFAULT_PATH, &Options::new()).unwrap();
    let (mut rx, _) = server.accept(Some(LONG)).unwrap();
    tx.send(&[2.5], None).unwrap();
    let mut buf = [0f64; 4];
    assert_eq!(rx.recv(&mut buf, Some(LONG)).unwrap(), 1);
    drop((tx, rx));

    let after = settled_fd_count(before);
    assert_eq!(before, after, "descriptors leaked");
}
