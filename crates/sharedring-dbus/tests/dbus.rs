//! Rings set up over a real dbus-daemon: data, both ends, refusals, and
//! peer death from `NameOwnerChanged` with real processes killed.

mod common;

use std::time::{Duration, Instant};

use common::{bus, client_value, Proc};
use sharedring::{Error as RingError, Options, Receiver, Sender};
use sharedring_dbus::{errors, open, Error, RingServer, BACKLOG, DEFAULT_PATH};

const LONG: Duration = Duration::from_secs(10);

#[test]
fn client_sender_streams_to_server_receiver_in_order() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<Receiver<u64>>::serve(
        &server_conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(1024),
    )
    .unwrap();
    let server_name = server_conn.unique_name().unwrap().to_string();
    let client_conn = bus.connect().unwrap();
    const N: u64 = 1_000_000;
    let producer = std::thread::spawn(move || {
        let mut tx: Sender<u64> =
            open(&client_conn, &server_name, DEFAULT_PATH, &Options::new()).unwrap();
        let data: Vec<u64> = (0..N).collect();
        for chunk in data.chunks(777) {
            tx.send(chunk, Some(LONG)).unwrap();
        }
    });
    let (mut rx, caller) = server.accept(Some(LONG)).unwrap();
    assert_eq!(caller.pid, Some(std::process::id()));
    let mut buf = vec![0u64; 4096];
    let mut next = 0u64;
    loop {
        match rx.recv(&mut buf, Some(LONG)) {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, next, "values arrive intact and in order");
                    next += 1;
                }
            }
            // The client's sender was dropped when it was done: the end.
            Err(RingError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    // The end came only after everything the client committed.
    assert_eq!(next, N);
}

#[test]
fn server_may_keep_the_sending_end() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<Sender<u32>>::serve(
        &server_conn,
        "/test/Out",
        &Options::new().capacity_elements(64),
    )
    .unwrap();
    let server_name = server_conn.unique_name().unwrap().to_string();
    let client_conn = bus.connect().unwrap();
    let mut rx: Receiver<u32> =
        open(&client_conn, &server_name, "/test/Out", &Options::new()).unwrap();
    let (mut tx, _) = server.accept(Some(LONG)).unwrap();
    let data: Vec<u32> = (0..10_000).collect();
    let feeder = std::thread::spawn(move || tx.send(&data, Some(LONG)).unwrap());
    let mut got = Vec::new();
    let mut buf = [0u32; 100];
    while got.len() < 10_000 {
        let n = rx.recv(&mut buf, Some(LONG)).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    feeder.join().unwrap();
    assert!(got.iter().copied().eq(0..10_000));
}

#[test]
fn mismatched_requests_are_refused_by_name() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let _server =
        RingServer::<Receiver<f64>>::serve(&server_conn, DEFAULT_PATH, &Options::new()).unwrap();
    let name = server_conn.unique_name().unwrap().to_string();
    let client = bus.connect().unwrap();

    // Wrong element size.
    let e = open::<Sender<u32>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap_err();
    match &e {
        Error::Refused { name, message } => {
            assert_eq!(name, errors::MISMATCH);
            let message = message.as_deref().unwrap();
            assert!(message.contains("8 B with type tag"), "{e}");
            assert!(message.contains("same element type"), "{e}");
        }
        e => panic!("expected a refusal, got {e:?}"),
    }
    // Same size, another type: u64 against the service's f64.
    let e = open::<Sender<u64>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { name, .. } if name == errors::MISMATCH),
        "{e:?}"
    );
    // Another kind of ring.
    let e =
        open::<sharedring::MsgSender>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap_err();
    match &e {
        Error::Refused { name, message } => {
            assert_eq!(name, errors::MISMATCH);
            assert!(message.as_deref().unwrap().contains("kind 1"), "{e}");
        }
        e => panic!("expected a refusal, got {e:?}"),
    }
    // The end the server keeps.
    let e = open::<Receiver<f64>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { name, .. } if name == errors::MISMATCH),
        "{e:?}"
    );
    // Nobody at that path, and nobody with that name.
    let e = open::<Sender<f64>>(&client, &name, "/nowhere", &Options::new()).unwrap_err();
    assert!(matches!(e, Error::Bus(_)), "{e:?}");
    let e = open::<Sender<f64>>(
        &client,
        "org.sharedring.Nobody",
        DEFAULT_PATH,
        &Options::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("NameHasNoOwner"), "{e}");
}

#[test]
fn a_flood_of_unaccepted_calls_is_bounded_by_the_backlog() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<Receiver<u8>>::serve(
        &server_conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(64),
    )
    .unwrap();
    let name = server_conn.unique_name().unwrap().to_string();
    let client = bus.connect().unwrap();
    let mut rings = Vec::new();
    for _ in 0..BACKLOG {
        rings.push(open::<Sender<u8>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap());
    }
    let e = open::<Sender<u8>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { name, .. } if name == errors::BUSY),
        "{e:?}"
    );
    // Accepting one makes room for one more.
    let _first = server.accept(Some(LONG)).unwrap();
    rings.push(open::<Sender<u8>>(&client, &name, DEFAULT_PATH, &Options::new()).unwrap());
}

#[test]
fn closing_the_callers_connection_is_peer_gone_on_both_sides() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server =
        RingServer::<Receiver<u64>>::serve(&server_conn, DEFAULT_PATH, &Options::new()).unwrap();
    let name = server_conn.unique_name().unwrap().to_string();
    let client_conn = bus.connect().unwrap();
    let mut tx: Sender<u64> = open(&client_conn, &name, DEFAULT_PATH, &Options::new()).unwrap();
    let (mut rx, _) = server.accept(Some(LONG)).unwrap();
    tx.send(&[1, 2, 3], None).unwrap();

    // The ring ends are alive and hold no socket with each other: only the
    // bus can tell the server that the client left.
    client_conn.close().unwrap();
    let start = Instant::now();
    let mut buf = [0u64; 8];
    assert_eq!(
        rx.recv(&mut buf, Some(LONG)).unwrap(),
        3,
        "committed data first"
    );
    match rx.recv(&mut buf, Some(LONG)) {
        Err(RingError::PeerGone) => {}
        other => panic!("expected PeerGone, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The client can no longer watch its peer: its ring reports it too.
    let big = vec![0u64; 1 << 20];
    match tx.send(&big, Some(LONG)) {
        Err(RingError::PeerGone) => {}
        other => panic!("expected PeerGone, got {other:?}"),
    }
}

#[test]
fn dropping_a_ring_while_staying_on_the_bus_ends_it_for_the_other_side() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server =
        RingServer::<Receiver<u64>>::serve(&server_conn, DEFAULT_PATH, &Options::new()).unwrap();
    let name = server_conn.unique_name().unwrap().to_string();
    let client_conn = bus.connect().unwrap();

    // The client drops its end; both connections stay on the bus.
    let mut tx: Sender<u64> = open(&client_conn, &name, DEFAULT_PATH, &Options::new()).unwrap();
    let (mut rx, _) = server.accept(Some(LONG)).unwrap();
    tx.send(&[7, 8], None).unwrap();
    drop(tx); // a clean close: the end of the stream
    let mut buf = [0u64; 4];
    assert_eq!(rx.recv(&mut buf, Some(LONG)).unwrap(), 2);
    assert!(matches!(
        rx.recv(&mut buf, Some(LONG)),
        Err(RingError::Closed)
    ));

    // The server drops its end.
    let mut tx: Sender<u64> = open(&client_conn, &name, DEFAULT_PATH, &Options::new()).unwrap();
    let (rx, _) = server.accept(Some(LONG)).unwrap();
    drop(rx);
    let big = vec![0u64; 1 << 20];
    assert!(matches!(
        tx.send(&big, Some(LONG)),
        Err(RingError::PeerGone)
    ));
}

#[test]
fn killed_client_process_is_peer_gone_after_its_data() {
    let bus = bus();
    let conn = bus.connect().unwrap();
    let server = RingServer::<Receiver<f64>>::serve(
        &conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(1 << 12),
    )
    .unwrap();
    conn.request_name("org.sharedring.TestKillClient").unwrap();
    let mut client = Proc::example(
        &bus,
        "dbus-client",
        &["--name", "org.sharedring.TestKillClient", "1000000000000"],
    );
    let (mut rx, caller) = server.accept(Some(LONG)).unwrap();
    assert_eq!(caller.pid, Some(client.child.id()));
    let mut buf = vec![0f64; 1000];
    let mut i = 0u64;
    while i < 200_000 {
        let n = rx.recv(&mut buf, Some(LONG)).unwrap();
        for &v in &buf[..n] {
            assert_eq!(v, client_value(i));
            i += 1;
        }
    }
    client.child.kill().unwrap(); // SIGKILL, mid-stream
    let killed = Instant::now();
    let end = loop {
        match rx.recv(&mut buf, Some(LONG)) {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, client_value(i), "everything committed arrives intact");
                    i += 1;
                }
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(end, RingError::PeerGone), "{end:?}");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
}

#[test]
fn killed_server_process_is_peer_gone_for_the_client() {
    let bus = bus();
    let mut server = Proc::example(
        &bus,
        "dbus-server",
        &["--name", "org.sharedring.TestKillServer"],
    );
    server.wait_for("serving", LONG);
    let conn = bus.connect().unwrap();
    let mut tx: Sender<f64> = open(
        &conn,
        "org.sharedring.TestKillServer",
        DEFAULT_PATH,
        &Options::new(),
    )
    .unwrap();
    let batch = vec![1.0f64; 4096];
    for _ in 0..100 {
        tx.send(&batch, Some(LONG)).unwrap();
    }
    server.child.kill().unwrap();
    let killed = Instant::now();
    let end = loop {
        if let Err(e) = tx.send(&batch, Some(LONG)) {
            break e;
        }
        assert!(killed.elapsed() < LONG, "the sender never noticed");
    };
    assert!(matches!(end, RingError::PeerGone), "{end:?}");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
}

#[test]
fn examples_stream_and_sum_over_a_real_bus() {
    let bus = bus();
    let server = Proc::example(
        &bus,
        "dbus-server",
        &["--name", "org.sharedring.TestExamples", "--once"],
    );
    server.wait_for("serving", LONG);
    let mut client = Proc::example(
        &bus,
        "dbus-client",
        &["--name", "org.sharedring.TestExamples", "1000000"],
    );
    let sent = client.wait_for("sent 1000000 values", Duration::from_secs(60));
    assert!(client.child.wait().unwrap().success());
    let got = server.wait_for("finished after 1000000 values", Duration::from_secs(60));
    let sum = |line: &str| line.rsplit("sum = ").next().unwrap().to_string();
    assert_eq!(sum(&sent), sum(&got), "client: {sent}\nserver: {got}");
}

#[test]
fn message_rings_go_over_dbus() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<sharedring::MsgReceiver>::serve(
        &server_conn,
        DEFAULT_PATH,
        &Options::new().capacity_bytes(1 << 14).max_msg(1000),
    )
    .unwrap();
    let name = server_conn.unique_name().unwrap().to_string();
    let client = bus.connect().unwrap();
    let mut tx: sharedring::MsgSender =
        open(&client, &name, DEFAULT_PATH, &Options::new()).unwrap();
    assert_eq!(tx.max_msg(), 1000);
    let (mut rx, _caller) = server.accept(Some(Duration::from_secs(10))).unwrap();
    for len in [0usize, 1, 999, 1000, 7] {
        let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
        tx.send(&msg, Some(Duration::from_secs(10))).unwrap();
    }
    let mut buf = Vec::new();
    for len in [0usize, 1, 999, 1000, 7] {
        assert_eq!(
            rx.recv(&mut buf, Some(Duration::from_secs(10))).unwrap(),
            len
        );
        assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
    }
    assert!(matches!(
        tx.send(&[0; 1001], None),
        Err(sharedring::Error::MessageTooLarge {
            len: 1001,
            max: 1000
        })
    ));
    drop(tx);
    assert!(matches!(
        rx.recv(&mut buf, Some(Duration::from_secs(10))),
        Err(sharedring::Error::Closed)
    ));
}
