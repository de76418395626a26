//! The non-blocking handshake (`Handshake`), driven by a plain `poll`
//! loop in this process against real peer processes that use the
//! blocking calls:
//!
//! - it completes in both roles (creator and acceptor), for both ends of
//!   both kinds of ring, all eight handshakes in one loop at once;
//! - a slow-drip peer and a stalled peer do not delay another client's
//!   handshake driven by the same loop, and each ends by its deadline
//!   (which the machine checks itself: the loop only advances it when
//!   its socket is ready or its deadline passed, so it never spins);
//! - the async `create_async` / `accept_async` (feature `tokio`) complete
//!   against blocking peers, and hold their deadline.

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use sharedring::{
    Error, Handshake, HandshakeError, Interest, MsgReceiver, MsgSender, Options, Progress,
    Receiver, RingEnd, Sender,
};

const ELEMENTS: u64 = 1000;

/// Descriptor counts are per process: the tests of this file run one at
/// a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const MESSAGES: usize = 50;

/// Every end a loop may finish with.
enum Finished {
    Send(Sender<u64>),
    Recv(Receiver<u64>),
    MsgSend(MsgSender),
    MsgRecv(MsgReceiver),
}

macro_rules! finished {
    ($($ty:ty => $v:ident),*) => {$(
        impl From<$ty> for Finished {
            fn from(e: $ty) -> Self {
                Finished::$v(e)
            }
        }
    )*};
}
finished!(Sender<u64> => Send, Receiver<u64> => Recv, MsgSender => MsgSend, MsgReceiver => MsgRecv);

/// A pending handshake of any end, as the loop sees it.
trait Pending {
    fn fd(&self) -> BorrowedFd<'_>;
    fn interest(&self) -> Interest;
    fn deadline(&self) -> Option<Instant>;
    fn step(self: Box<Self>) -> Result<Result<Finished, Box<dyn Pending>>, Error>;
}

impl<E: RingEnd + Into<Finished> + 'static> Pending for Handshake<E> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
    fn interest(&self) -> Interest {
        Handshake::interest(self)
    }
    fn deadline(&self) -> Option<Instant> {
        Handshake::deadline(self)
    }
    fn step(self: Box<Self>) -> Result<Result<Finished, Box<dyn Pending>>, Error> {
        Ok(match (*self).advance()? {
            Progress::Done(end) => Ok(end.into()),
            Progress::Pending(p) => Err(Box::new(p)),
        })
    }
}

/// One handshake in the loop.
struct Slot {
    pending: Option<Box<dyn Pending>>,
    result: Option<Result<Finished, Error>>,
    /// How many times the loop advanced it.
    advances: usize,
}

impl Slot {
    fn new(p: impl Pending + 'static) -> Self {
        Self {
            pending: Some(Box::new(p)),
            result: None,
            advances: 0,
        }
    }
}

/// The event loop: `poll` on every pending handshake's socket for what it
/// wants, with the nearest deadline as the timeout; advance those that are
/// ready or past their deadline. Returns the slots' indices in the order
/// they finished.
fn drive(slots: &mut [Slot]) -> Vec<usize> {
    let mut order = Vec::new();
    // A bound so that a bug fails the test instead of hanging it.
    let give_up = Instant::now() + Duration::from_secs(60);
    // Every handshake is advanced once at the start (a creator's setup
    // message goes out then).
    let mut due: Vec<usize> = (0..slots.len()).collect();
    loop {
        for i in due.drain(..) {
            let slot = &mut slots[i];
            let Some(p) = slot.pending.take() else {
                continue;
            };
            slot.advances += 1;
            match p.step() {
                Ok(Ok(end)) => slot.result = Some(Ok(end)),
                Ok(Err(p)) => slot.pending = Some(p),
                Err(e) => slot.result = Some(Err(e)),
            }
            if slot.result.is_some() {
                order.push(i);
            }
        }
        let live: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].pending.is_some())
            .collect();
        if live.is_empty() {
            return order;
        }
        assert!(Instant::now() < give_up, "the loop never finished");
        let now = Instant::now();
        let nearest = live
            .iter()
            .filter_map(|&i| slots[i].pending.as_ref().unwrap().deadline())
            .min()
            .map(|d| d.saturating_duration_since(now));
        let ts = nearest.map(|d| Timespec {
            tv_sec: d.as_secs() as i64,
            // Rounded up to a millisecond so that we wake past it.
            tv_nsec: i64::from(d.subsec_nanos()) + 1_000_000,
        });
        let ts = ts.map(|t| {
            if t.tv_nsec >= 1_000_000_000 {
                Timespec {
                    tv_sec: t.tv_sec + 1,
                    tv_nsec: t.tv_nsec - 1_000_000_000,
                }
            } else {
                t
            }
        });
        let mut fds: Vec<PollFd<'_>> = live
            .iter()
            .map(|&i| {
                let p = slots[i].pending.as_ref().unwrap();
                let events = match p.interest() {
                    Interest::Readable => PollFlags::IN,
                    Interest::Writable => PollFlags::OUT,
                };
                PollFd::from_borrowed_fd(p.fd(), events)
            })
            .collect();
        match poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let now = Instant::now();
        for (k, &i) in live.iter().enumerate() {
            let past = slots[i]
                .pending
                .as_ref()
                .unwrap()
                .deadline()
                .is_some_and(|d| d <= now);
            if ready[k] || past {
                due.push(i);
            }
        }
    }
}

/// The child's side: the blocking counterpart of `role`, then the data.
fn play_blocking_peer(role: &str, sock: std::os::unix::net::UnixStream) {
    let opts = Options::new()
        .capacity_elements(256)
        .handshake_timeout(Some(Duration::from_secs(30)));
    let msg_opts = Options::new()
        .capacity_bytes(4096)
        .handshake_timeout(Some(Duration::from_secs(30)));
    match role {
        // The parent accepts a Receiver: we create the Sender.
        "recv-accept" => send_elements(Sender::<u64>::create_with(sock, &opts).unwrap()),
        "recv-create" => send_elements(Sender::<u64>::accept_with(sock, &opts).unwrap()),
        "send-accept" => recv_elements(Receiver::<u64>::create_with(sock, &opts).unwrap()),
        "send-create" => recv_elements(Receiver::<u64>::accept_with(sock, &opts).unwrap()),
        "msgrecv-accept" => send_messages(MsgSender::create_with(sock, &msg_opts).unwrap()),
        "msgrecv-create" => send_messages(MsgSender::accept_with(sock, &msg_opts).unwrap()),
        "msgsend-accept" => recv_messages(MsgReceiver::create_with(sock, &msg_opts).unwrap()),
        "msgsend-create" => recv_messages(MsgReceiver::accept_with(sock, &msg_opts).unwrap()),
        other => panic!("unknown role {other}"),
    }
}

fn send_elements(mut tx: Sender<u64>) {
    let data: Vec<u64> = (1..=ELEMENTS).collect();
    tx.send(&data, Some(Duration::from_secs(30))).unwrap();
}

fn recv_elements(mut rx: Receiver<u64>) {
    let mut buf = [0u64; 64];
    let mut next = 1;
    while next <= ELEMENTS {
        let n = rx.recv(&mut buf, Some(Duration::from_secs(30))).unwrap();
        for &v in &buf[..n] {
            assert_eq!(v, next);
            next += 1;
        }
    }
}

fn send_messages(mut tx: MsgSender) {
    for i in 0..MESSAGES {
        tx.send(
            format!("message {i}").as_bytes(),
            Some(Duration::from_secs(30)),
        )
        .unwrap();
    }
}

fn recv_messages(mut rx: MsgReceiver) {
    let mut buf = Vec::new();
    for i in 0..MESSAGES {
        rx.recv(&mut buf, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(buf, format!("message {i}").as_bytes());
    }
}

#[test]
fn loop_driven_handshakes_complete_against_blocking_peers_in_every_role() {
    let _serial = serial();
    if let Some((role, sock)) = testkit::as_peer() {
        play_blocking_peer(&role, sock);
        std::process::exit(0);
    }
    let roles = [
        "recv-accept",
        "recv-create",
        "send-accept",
        "send-create",
        "msgrecv-accept",
        "msgrecv-create",
        "msgsend-accept",
        "msgsend-create",
    ];
    let timeout = Some(Duration::from_secs(30));
    let opts = Options::new()
        .capacity_elements(256)
        .handshake_timeout(timeout);
    let msg_opts = Options::new()
        .capacity_bytes(4096)
        .handshake_timeout(timeout);
    let mut children = Vec::new();
    let mut slots = Vec::new();
    for role in roles {
        let (child, sock) = testkit::spawn_peer(
            "loop_driven_handshakes_complete_against_blocking_peers_in_every_role",
            role,
        )
        .unwrap();
        children.push(child);
        slots.push(match role {
            "recv-accept" => Slot::new(Handshake::<Receiver<u64>>::accept(sock, &opts).unwrap()),
            "recv-create" => Slot::new(Handshake::<Receiver<u64>>::create(sock, &opts).unwrap()),
            "send-accept" => Slot::new(Handshake::<Sender<u64>>::accept(sock, &opts).unwrap()),
            "send-create" => Slot::new(Handshake::<Sender<u64>>::create(sock, &opts).unwrap()),
            "msgrecv-accept" => {
                Slot::new(Handshake::<MsgReceiver>::accept(sock, &msg_opts).unwrap())
            }
            "msgrecv-create" => {
                Slot::new(Handshake::<MsgReceiver>::create(sock, &msg_opts).unwrap())
            }
            "msgsend-accept" => Slot::new(Handshake::<MsgSender>::accept(sock, &msg_opts).unwrap()),
            "msgsend-create" => Slot::new(Handshake::<MsgSender>::create(sock, &msg_opts).unwrap()),
            _ => unreachable!(),
        });
    }
    let order = drive(&mut slots);
    assert_eq!(order.len(), roles.len());
    for (slot, role) in slots.into_iter().zip(roles) {
        match slot.result.unwrap() {
            Ok(Finished::Recv(rx)) => recv_elements(rx),
            Ok(Finished::Send(tx)) => send_elements(tx),
            Ok(Finished::MsgRecv(rx)) => recv_messages(rx),
            Ok(Finished::MsgSend(tx)) => send_messages(tx),
            Err(e) => panic!("{role}: {e}"),
        }
    }
    for (mut child, role) in children.into_iter().zip(roles) {
        assert!(child.wait().unwrap().success(), "peer {role} failed");
    }
}

#[test]
fn a_slow_drip_and_a_stalled_peer_do_not_delay_another_client_in_the_same_loop() {
    let _serial = serial();
    const TEST: &str =
        "a_slow_drip_and_a_stalled_peer_do_not_delay_another_client_in_the_same_loop";
    if let Some((role, sock)) = testkit::as_peer() {
        match role.as_str() {
            "drip" => {
                let setup = common::SetupFields::honest_u64_sender(64).encode();
                let memfd = common::sealed_memfd(512 + 64 * 8);
                let (data, room) = (common::eventfd_fd(), common::eventfd_fd());
                // 64 bytes, 100 ms apart: 6.4 s in all, past the deadline.
                testkit::drip(
                    &sock,
                    &setup,
                    &[memfd.as_fd(), data.as_fd(), room.as_fd()],
                    Duration::from_millis(100),
                );
            }
            // Connected, silent, until the parent hangs up.
            "stall" => common::wait_for_hangup(&sock),
            "honest" => send_elements(
                Sender::<u64>::create_with(sock, &Options::new().capacity_elements(256)).unwrap(),
            ),
            other => panic!("unknown role {other}"),
        }
        std::process::exit(0);
    }
    let (mut drip_child, drip_sock) = testkit::spawn_peer(TEST, "drip").unwrap();
    let (mut stall_child, stall_sock) = testkit::spawn_peer(TEST, "stall").unwrap();
    let (mut honest_child, honest_sock) = testkit::spawn_peer(TEST, "honest").unwrap();
    let timeout = Duration::from_secs(4);
    let opts = Options::new().handshake_timeout(Some(timeout));
    let start = Instant::now();
    let mut slots = vec![
        Slot::new(Handshake::<Receiver<u64>>::accept(drip_sock, &opts).unwrap()),
        Slot::new(Handshake::<Receiver<u64>>::accept(stall_sock, &opts).unwrap()),
        Slot::new(Handshake::<Receiver<u64>>::accept(honest_sock, &opts).unwrap()),
    ];
    let order = drive(&mut slots);
    let took = start.elapsed();
    // The honest client finished first, while the other two were still
    // pending: neither held the loop up.
    assert_eq!(order[0], 2, "finishing order {order:?}");
    let mut results = slots.iter_mut().map(|s| s.result.take().unwrap());
    let (dripped, stalled, honest) = (
        results.next().unwrap(),
        results.next().unwrap(),
        results.next().unwrap(),
    );
    for r in [&dripped, &stalled] {
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::TimedOut))),
            "{:?}",
            r.as_ref().err()
        );
    }
    // One deadline for the whole handshake, however the peer drips.
    assert!(
        took < timeout + Duration::from_secs(3),
        "a {timeout:?} handshake took {took:?}"
    );
    // The loop advanced the silent one only when it was due: at the start
    // and at its deadline (no spinning).
    assert!(slots[1].advances <= 3, "{} advances", slots[1].advances);
    match honest {
        Ok(Finished::Recv(rx)) => recv_elements(rx),
        _ => panic!("the honest client's handshake failed"),
    }
    assert!(honest_child.wait().unwrap().success());
    drip_child.kill().unwrap();
    drip_child.wait().unwrap();
    stall_child.wait().unwrap();
}

#[test]
fn a_stalled_handshake_ends_by_its_deadline_and_closes_its_descriptors() {
    let _serial = serial();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let before = testkit::FdSnapshot::now();
    let ours_fd = std::os::fd::AsRawFd::as_raw_fd(&ours);
    let timeout = Duration::from_millis(300);
    let opts = Options::new()
        .capacity_elements(64)
        .handshake_timeout(Some(timeout));
    // A creator: its ring exists, its setup message goes out, no answer
    // ever comes.
    let mut pending = Handshake::<Sender<u64>>::create(ours, &opts).unwrap();
    let start = Instant::now();
    let err = loop {
        let events = match pending.interest() {
            Interest::Readable => PollFlags::IN,
            Interest::Writable => PollFlags::OUT,
        };
        let left = pending.time_left().unwrap();
        let mut fds = [PollFd::new(&pending, events)];
        common::poll_for(&mut fds, left);
        match pending.advance() {
            Ok(Progress::Pending(p)) => pending = p,
            Ok(Progress::Done(_)) => panic!("nobody answered"),
            Err(e) => break e,
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never timed out");
    };
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TimedOut)),
        "{err}"
    );
    assert!(start.elapsed() >= timeout);
    // The socket, the memfd, the eventfds: all closed.
    let leaked = testkit::fds_leaked_since(&before);
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(!before.still_open(ours_fd), "the socket is closed");
    drop(theirs);
}

#[cfg(feature = "tokio")]
#[test]
fn async_create_and_accept_complete_against_blocking_peers_and_hold_the_deadline() {
    let _serial = serial();
    const TEST: &str =
        "async_create_and_accept_complete_against_blocking_peers_and_hold_the_deadline";
    if let Some((role, sock)) = testkit::as_peer() {
        play_blocking_peer(&role, sock);
        std::process::exit(0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = Options::new().capacity_elements(256);
        let msg_opts = Options::new().capacity_bytes(4096);
        // We create a Sender; the peer accepts with the blocking call.
        let (mut c1, s1) = testkit::spawn_peer(TEST, "send-create").unwrap();
        // We accept a MsgReceiver; the peer creates with the blocking call.
        let (mut c2, s2) = testkit::spawn_peer(TEST, "msgrecv-accept").unwrap();
        // Both handshakes at once, on one runtime, as spawned tasks.
        let tx = tokio::spawn(async move { Sender::<u64>::create_async(s1, &opts).await });
        let rx = tokio::spawn(async move { MsgReceiver::accept_async(s2, &msg_opts).await });
        let mut tx = tx.await.unwrap().unwrap().into_async().unwrap();
        let mut rx = rx.await.unwrap().unwrap().into_async().unwrap();
        let data: Vec<u64> = (1..=ELEMENTS).collect();
        tx.send(&data).await.unwrap();
        let mut buf = Vec::new();
        for i in 0..MESSAGES {
            rx.recv(&mut buf).await.unwrap();
            assert_eq!(buf, format!("message {i}").as_bytes());
        }
        assert!(c1.wait().unwrap().success());
        assert!(c2.wait().unwrap().success());

        // A silent peer: the async accept ends by its deadline.
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let r =
            Receiver::<u64>::accept_async(ours, &Options::new().handshake_timeout(Some(timeout)))
                .await;
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::TimedOut))),
            "{r:?}"
        );
        assert!(start.elapsed() >= timeout);
        assert!(start.elapsed() < timeout + Duration::from_secs(10));
    });
}
