//! A third connection answers the client's pending `Open` before the
//! service does: the client must still get the service's ring.
//!
//! The order is arranged, not hoped for: the service holds its answer
//! until the stranger's forgeries have been routed by the daemon (the
//! stranger's next call to the daemon returns only after the daemon has
//! read and queued everything the stranger sent before it). So every
//! forgery reaches the client while its call is pending and before the
//! true reply; a client that believed replies by serial alone would take
//! the first forgery. One test in this binary, so that nothing else opens
//! descriptors or threads while they are counted.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use common::{assert_back_to, bus, forge, quiet_baseline, thread_names};
use sharedring::{Offer, Options, Receiver, Sender};
use sharedring_dbus::zbus::blocking::{Connection, MessageIterator};
use sharedring_dbus::zbus::message::Type;
use sharedring_dbus::zbus::Message;
use sharedring_dbus::{errors, open, DEFAULT_PATH};

const LONG: Duration = Duration::from_secs(10);

/// The honest service's ring size; the stranger's is different.
const HONEST_CAPACITY: usize = 1024;
const FORGED_CAPACITY: usize = 64;

/// What the stranger answers the client's pending call with.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// Nothing: the honest exchange alone.
    None,
    /// A ring of its own, at the call's serial.
    Ring,
    /// The interface's refusal, at the call's serial.
    Refusal,
    /// The daemon's "recipient left" error, at the call's serial.
    DaemonError,
    /// Rings at every serial in a window around the call's.
    RingWindow,
    /// All of the above, several times over.
    Everything,
}

/// The `Open` reply body for `offer`, with `hangup` as the hang-up socket.
fn ring_reply(
    template: &Message,
    serial: u32,
    claimed: &str,
    offer: &Offer,
    hangup: &OwnedFd,
) -> Message {
    let body = common::open_reply(
        offer,
        [
            offer.fds.memory.as_fd(),
            offer.fds.data.as_fd(),
            offer.fds.room.as_fd(),
            hangup.as_fd(),
        ],
    );
    forge::method_return(template, serial, claimed)
        .build(&body)
        .unwrap()
}

/// The forgeries for a call with serial `serial` from `victim`, claiming
/// to come from `service` (the daemon rewrites that).
fn forgeries(
    forgery: Forgery,
    victim: &str,
    service: &str,
    serial: u32,
) -> (Vec<Message>, Receiver<f64>) {
    let (rx, offer) =
        Receiver::<f64>::create_offer(&Options::new().capacity_elements(FORGED_CAPACITY), None)
            .unwrap();
    let hangup: OwnedFd = UnixStream::pair().unwrap().0.into();
    let template = forge::template(victim);
    let ring = |s| ring_reply(&template, s, service, &offer, &hangup);
    let refusal = |s| forge::error(&template, s, service, errors::BUSY);
    let daemon_error = |s| {
        forge::error(
            &template,
            s,
            "org.freedesktop.DBus",
            "org.freedesktop.DBus.Error.NoReply",
        )
    };
    let window = || (serial.saturating_sub(8).max(1)..=serial + 8).map(ring);
    let msgs = match forgery {
        Forgery::None => Vec::new(),
        Forgery::Ring => vec![ring(serial)],
        Forgery::Refusal => vec![refusal(serial)],
        Forgery::DaemonError => vec![daemon_error(serial)],
        Forgery::RingWindow => window().collect(),
        Forgery::Everything => (0..4)
            .flat_map(|_| [refusal(serial), daemon_error(serial), ring(serial)])
            .chain(window())
            .collect(),
    };
    (msgs, rx)
}

/// One `Open` from `client` to the honest `service`, with `forgery` sent
/// by `stranger` at the call's serial before the service answers.
fn round(client: &Connection, service: &Connection, stranger: &Connection, forgery: Forgery) {
    let service_name = service.unique_name().unwrap().to_string();
    let (call_tx, call_rx) = mpsc::channel::<(u32, String)>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let calls = MessageIterator::from(service);
    let svc = service.clone();
    let honest = std::thread::spawn(move || {
        for msg in calls {
            let msg = msg.unwrap();
            let header = msg.header();
            if header.message_type() != Type::MethodCall
                || header.member().is_none_or(|m| m.as_str() != "Open")
            {
                continue;
            }
            let serial = header.primary().serial_num().get();
            call_tx
                .send((serial, header.sender().unwrap().to_string()))
                .unwrap();
            // Answer only once the stranger's forgeries are on their way.
            go_rx.recv().unwrap();
            let (rx, offer) = Receiver::<f64>::create_offer(
                &Options::new().capacity_elements(HONEST_CAPACITY),
                None,
            )
            .unwrap();
            let hangup: OwnedFd = UnixStream::pair().unwrap().0.into();
            let template = forge::template(header.sender().unwrap().as_str());
            // A genuine reply: the daemon sets our name as its sender.
            let reply = ring_reply(
                &template,
                serial,
                svc.unique_name().unwrap().as_str(),
                &offer,
                &hangup,
            );
            svc.send(&reply).unwrap();
            return rx;
        }
        panic!("the service's connection closed before the call");
    });
    let stranger = stranger.clone();
    let forger = std::thread::spawn(move || {
        let (serial, victim) = call_rx.recv().unwrap();
        let (msgs, forged_rx) = forgeries(forgery, &victim, &service_name, serial);
        for msg in &msgs {
            stranger.send(msg).unwrap();
        }
        // A round trip to the daemon: everything sent before it has been
        // routed to the client when it returns.
        common::daemon_round_trip(&stranger).unwrap();
        go_tx.send(()).unwrap();
        (msgs.len(), forged_rx)
    });

    let result = open::<Sender<f64>>(
        client,
        service.unique_name().unwrap().as_str(),
        DEFAULT_PATH,
        &Options::new(),
    );
    let mut honest_rx = honest.join().unwrap();
    let (sent, mut forged_rx) = forger.join().unwrap();
    let mut tx = result.unwrap_or_else(|e| panic!("{forgery:?} ({sent} forged): open failed: {e}"));
    assert_eq!(
        tx.capacity_elements(),
        honest_rx.capacity_elements(),
        "{forgery:?} ({sent} forged): the client took a ring of {} elements, the service's has {}",
        tx.capacity_elements(),
        honest_rx.capacity_elements()
    );
    // The ring is the service's: what the client sends arrives there.
    let marker = [sent as f64 + 0.5];
    tx.send(&marker, Some(LONG)).unwrap();
    let mut buf = [0f64; 4];
    assert_eq!(honest_rx.recv(&mut buf, Some(LONG)).unwrap(), 1);
    assert_eq!(buf[0], marker[0], "{forgery:?}");
    assert_eq!(
        forged_rx.try_recv(&mut buf).unwrap(),
        0,
        "{forgery:?}: data reached the stranger"
    );
}

#[test]
fn a_strangers_replies_to_open_never_give_the_client_a_ring() {
    let bus = bus();
    let client = bus.connect().unwrap();
    let service = bus.connect().unwrap();
    let stranger = bus.connect().unwrap();

    // Warm up zbus's and async-io's threads and descriptors made once per
    // process with an honest exchange.
    round(&client, &service, &stranger, Forgery::None);
    let baseline = quiet_baseline();
    let names = thread_names();

    for forgery in [
        Forgery::Ring,
        Forgery::Refusal,
        Forgery::DaemonError,
        Forgery::RingWindow,
        Forgery::Everything,
        Forgery::None,
    ] {
        round(&client, &service, &stranger, forgery);
    }
    assert_back_to(baseline, &names);
}
