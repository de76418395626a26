//! A third connection sends `NameOwnerChanged` signals saying that the
//! other side left the bus: straight to each side (a unicast signal is
//! delivered whatever the victim's match rules), and broadcast. Each has
//! the daemon's path, interface, member and arguments, and claims the
//! daemon as its sender; only the sender field the daemon writes tells
//! them apart. Neither ring may report `PeerGone` because of them; the
//! real departure must still be noticed. One test in this binary, so that
//! nothing else opens descriptors or threads while they are counted.

mod common;

use std::time::Duration;

use common::{assert_back_to, bus, quiet_baseline, thread_names};
use sharedring::{Error as RingError, Options, Receiver, Sender};
use sharedring_dbus::zbus::blocking::Connection;
use sharedring_dbus::zbus::Message;
use sharedring_dbus::{open, RingServer, DEFAULT_PATH};

const LONG: Duration = Duration::from_secs(10);

/// How long a ring gets to (wrongly) react to a forged departure. A watcher
/// that believed one acts within microseconds; this only has to be long
/// enough not to miss that on a loaded machine.
const REACTION: Duration = Duration::from_secs(2);

/// `NameOwnerChanged(name, old, new)` as the daemon would send it, to
/// `destination` (or broadcast), claiming to come from the daemon.
fn name_owner_changed(destination: Option<&str>, name: &str, old: &str, new: &str) -> Message {
    let mut b = Message::signal(
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "NameOwnerChanged",
    )
    .unwrap()
    .sender("org.freedesktop.DBus")
    .unwrap();
    if let Some(d) = destination {
        b = b.destination(d.to_owned()).unwrap();
    }
    b.build(&(name, old, new)).unwrap()
}

/// Everything the stranger sends to make `victim` believe `peer` left.
fn forgeries(stranger: &str, victim: &str, peer: &str) -> Vec<Message> {
    let daemon = "org.freedesktop.DBus";
    vec![
        // A stream that tracked who owns the daemon's name from such
        // signals would take the stranger's next ones for the daemon's.
        name_owner_changed(Some(victim), daemon, daemon, stranger),
        name_owner_changed(Some(victim), peer, peer, ""),
        name_owner_changed(Some(victim), peer, peer, stranger),
        name_owner_changed(Some(victim), peer, peer, ""),
        name_owner_changed(None, peer, peer, ""),
    ]
}

/// [`common::daemon_round_trip`], which must succeed.
fn sync(conn: &Connection) {
    common::daemon_round_trip(conn).unwrap();
}

#[test]
fn a_strangers_name_owner_changed_never_ends_a_ring() {
    let bus = bus();
    let server_conn = bus.connect().unwrap();
    let server = RingServer::<Receiver<u64>>::serve(
        &server_conn,
        DEFAULT_PATH,
        &Options::new().capacity_elements(1024),
    )
    .unwrap();
    let server_name = server_conn.unique_name().unwrap().to_string();
    let stranger = bus.connect().unwrap();
    let stranger_name = stranger.unique_name().unwrap().to_string();

    // Warm up with a genuine ring.
    let warm_conn = bus.connect().unwrap();
    let warm: Sender<u64> = open(&warm_conn, &server_name, DEFAULT_PATH, &Options::new()).unwrap();
    drop((warm, server.accept(Some(LONG)).unwrap()));
    let baseline = quiet_baseline();
    let names = thread_names();

    let client_conn = bus.connect().unwrap();
    let client_name = client_conn.unique_name().unwrap().to_string();
    let mut tx: Sender<u64> =
        open(&client_conn, &server_name, DEFAULT_PATH, &Options::new()).unwrap();
    let (mut rx, caller) = server.accept(Some(LONG)).unwrap();
    assert_eq!(caller.name.as_str(), client_name);

    let msgs = forgeries(&stranger_name, &client_name, &server_name)
        .into_iter()
        .chain(forgeries(&stranger_name, &server_name, &client_name));
    for _ in 0..3 {
        for msg in msgs.clone() {
            stranger.send(&msg).unwrap();
        }
    }
    sync(&stranger);
    sync(&client_conn);
    sync(&server_conn);

    // Had either watcher believed a forgery, it would have hung up its
    // ring, and the hang-up socket would have told the other side: the
    // receiver would see PeerGone instead of a timeout.
    let mut buf = [0u64; 8];
    match rx.recv(&mut buf, Some(REACTION)) {
        Err(RingError::TimedOut { .. }) => {}
        other => panic!("the server's ring reacted to forged signals: {other:?}"),
    }
    tx.send(&[1, 2, 3], Some(LONG)).unwrap();
    assert_eq!(rx.recv(&mut buf, Some(LONG)).unwrap(), 3);
    assert_eq!(&buf[..3], &[1, 2, 3]);

    // The daemon's own signal is still believed: the client leaves.
    client_conn.close().unwrap();
    match rx.recv(&mut buf, Some(LONG)) {
        Err(RingError::PeerGone) => {}
        other => panic!("the server's ring missed the client's departure: {other:?}"),
    }
    let big = vec![0u64; 4096];
    match tx.send(&big, Some(LONG)) {
        Err(RingError::PeerGone) => {}
        other => panic!("the client's ring outlived its connection: {other:?}"),
    }
    drop((tx, rx));
    assert_back_to(baseline, &names);
}
