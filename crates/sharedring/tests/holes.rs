//! The classes of hole that an independent hostile-peer run found, each
//! played by a real peer process where the attack needs one:
//!
//! - a handshake that drips one byte at a time, in both directions, must
//!   end by one deadline for the whole handshake;
//! - a peer that mails its own socket end back to us and dies is gone;
//! - a listener bound under umask 000 is never reachable by another uid;
//! - a peer outside our PID namespace has no pid (not undefined
//!   behaviour, not an error);
//! - the peer cannot choose how much one message makes us allocate;
//! - a wake-up flooder on its own core cannot hold a call past its
//!   deadline;
//! - a peer caught cheating is reported gone.

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sharedring::shmem_seal::SharedMemory;
use sharedring::{
    Error, HandshakeError, Listener, MsgReceiver, MsgSender, Options, Receiver, RefusalReason,
    Sender,
};

/// Descriptor counts are per process: the tests of this file run one at
/// a time so that each count sees only its own test's descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether we may play another uid or make namespaces.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn skip(why: &str) {
    println!("SKIPPED: {why}");
}

fn pin_to_cpu(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------------
// 1. One deadline for the whole handshake
// ---------------------------------------------------------------------

#[test]
fn accept_ends_by_one_deadline_against_a_slow_drip_setup() {
    let _serial = serial();
    if let Some((_, sock)) = testkit::as_peer() {
        let setup = common::SetupFields::honest_u64_sender(64).encode();
        let memfd = common::sealed_memfd(512 + 64 * 8);
        let (data, room) = (common::eventfd_fd(), common::eventfd_fd());
        // 64 bytes, 150 ms apart: 9.6 s in all. Each gap is far below the
        // 1 s timeout, so a per-read timeout would never fire.
        testkit::drip(
            &sock,
            &setup,
            &[memfd.as_fd(), data.as_fd(), room.as_fd()],
            Duration::from_millis(150),
        );
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "accept_ends_by_one_deadline_against_a_slow_drip_setup",
        "drip",
    )
    .unwrap();
    let before = testkit::FdSnapshot::now();
    let sock_fd = sock.as_raw_fd();
    let start = Instant::now();
    let result = Receiver::<u64>::accept_with(
        sock,
        &Options::new().handshake_timeout(Some(Duration::from_secs(1))),
    );
    let took = start.elapsed();
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::TimedOut))),
        "{result:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "a 1 s handshake took {took:?}"
    );
    drop(result);
    child.kill().unwrap();
    child.wait().unwrap();
    let leaked = testkit::fds_leaked_since(&before);
    assert!(
        leaked.is_empty(),
        "the peer's descriptors are closed: {leaked:?}"
    );
    assert!(!before.still_open(sock_fd), "the socket is closed");
}

#[test]
fn create_ends_by_one_deadline_against_a_slow_drip_answer() {
    let _serial = serial();
    if let Some((_, sock)) = testkit::as_peer() {
        let mut b = [0u8; common::SETUP_LEN];
        let (_, _fds) = testkit::recv_fds(&sock, &mut b, 8).unwrap();
        // 16 bytes, 300 ms apart: 4.5 s for an answer that is due in 1 s.
        testkit::drip(&sock, &common::ack(0), &[], Duration::from_millis(300));
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "create_ends_by_one_deadline_against_a_slow_drip_answer",
        "drip",
    )
    .unwrap();
    let start = Instant::now();
    let result = Sender::<u64>::create_with(
        sock,
        &Options::new()
            .capacity_elements(64)
            .handshake_timeout(Some(Duration::from_secs(1))),
    );
    let took = start.elapsed();
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::TimedOut))),
        "{result:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "a 1 s handshake took {took:?}"
    );
    drop(result);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn handshake_works_over_a_non_blocking_socket() {
    let _serial = serial();
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let peer = std::thread::spawn(move || Receiver::<u64>::accept(b).map(|_| ()));
    let mut tx = Sender::<u64>::create(a, 64).expect("create over a non-blocking socket");
    peer.join()
        .unwrap()
        .expect("accept over a non-blocking socket");
    tx.try_send(&[1]).unwrap();
}

// ---------------------------------------------------------------------
// 2. A peer that hides its death
// ---------------------------------------------------------------------

const MAILED_VALUES: u64 = 1000;

/// The child: an honest sender that sends its values, then mails its own
/// end of the socket to us over that socket, and exits.
fn mail_own_end_and_die(sock: UnixStream) -> ! {
    let keep = sock.try_clone().unwrap();
    let mut tx = Sender::<u64>::accept(sock).unwrap();
    let values: Vec<u64> = (0..MAILED_VALUES).collect();
    tx.send(&values, None).unwrap();
    testkit::send_fds(&keep, b"x", &[keep.as_fd()]).unwrap();
    // Exit without closing anything by hand: the in-flight copy of our end
    // would keep the socket from hanging up.
    std::process::exit(0);
}

#[test]
fn a_blocked_receiver_sees_a_peer_that_mailed_its_own_socket_end_as_gone() {
    let _serial = serial();
    if let Some((_, sock)) = testkit::as_peer() {
        mail_own_end_and_die(sock);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "a_blocked_receiver_sees_a_peer_that_mailed_its_own_socket_end_as_gone",
        "mail",
    )
    .unwrap();
    let before = testkit::FdSnapshot::now();
    let sock_fd = sock.as_raw_fd();
    let mut rx =
        Receiver::<u64>::create_with(sock, &Options::new().capacity_elements(4096)).unwrap();
    let mut got = 0;
    let mut buf = [0u64; 256];
    let end = loop {
        match rx.recv(&mut buf, Some(Duration::from_secs(20))) {
            Ok(n) => got += n as u64,
            other => break other,
        }
    };
    assert!(matches!(end, Err(Error::PeerGone)), "{end:?}");
    assert_eq!(got, MAILED_VALUES, "everything committed arrives first");
    assert!(rx.is_peer_gone());
    child.wait().unwrap();
    drop(rx);
    let leaked = testkit::fds_leaked_since(&before);
    assert!(
        leaked.is_empty(),
        "the mailed descriptor is closed: {leaked:?}"
    );
    assert!(!before.still_open(sock_fd), "the socket is closed");
}

#[test]
fn a_polling_receiver_sees_a_peer_that_mailed_its_own_socket_end_as_gone() {
    let _serial = serial();
    if let Some((_, sock)) = testkit::as_peer() {
        mail_own_end_and_die(sock);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "a_polling_receiver_sees_a_peer_that_mailed_its_own_socket_end_as_gone",
        "mail",
    )
    .unwrap();
    let mut rx =
        Receiver::<u64>::create_with(sock, &Options::new().capacity_elements(4096)).unwrap();
    child.wait().unwrap();
    let mut got = 0;
    let mut buf = [0u64; 256];
    let start = Instant::now();
    let end = loop {
        match rx.try_recv(&mut buf) {
            Ok(n) => got += n as u64,
            Err(e) => break e,
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "try_recv never reported the dead peer"
        );
    };
    assert!(matches!(end, Error::PeerGone), "{end:?}");
    assert_eq!(got, MAILED_VALUES);
}

// ---------------------------------------------------------------------
// 3. The listener under umask 000, against another uid
// ---------------------------------------------------------------------

const BINDS: usize = 300;

/// A world-writable directory for the race (like /tmp), fresh per run.
fn race_dir(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// The attacker: as uid/gid 65534 on this thread, connects to every name
/// in `dir` (and to `s` inside every directory there) until `stop`
/// appears. Exits with the number of connections that got through.
fn spin_connect(dir: &Path) -> ! {
    // Credentials are per thread in Linux: drop them on this one, which
    // makes every connect below.
    rustix::thread::set_thread_groups(&[]).unwrap();
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(65534)).unwrap();
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
    let mut through = 0u8;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("stop").exists() && Instant::now() < deadline {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            for target in [e.path(), e.path().join("s")] {
                if UnixStream::connect(&target).is_ok() {
                    through = through.saturating_add(1);
                }
            }
        }
    }
    std::process::exit(i32::from(through));
}

/// The honest server: under umask 000, binds `BINDS` listeners in `dir`,
/// each with the default owner-only mode, and counts the connections that
/// reach any of them. Exits with that count (0 is right), or 100 if a
/// socket ends up with another mode.
fn bind_under_umask_000(dir: &Path) -> ! {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::empty());
    let mut reached = 0u8;
    for i in 0..BINDS {
        let path = dir.join(format!("server{i}.sock"));
        let listener = Listener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if mode != 0o600 {
            std::process::exit(100);
        }
        rustix::fs::fcntl_setfl(&listener, rustix::fs::OFlags::NONBLOCK).unwrap();
        while listener.accept().is_ok() {
            reached = reached.saturating_add(1);
        }
    }
    std::process::exit(i32::from(reached));
}

#[test]
fn a_listener_bound_under_umask_000_is_never_reachable_by_another_uid() {
    let _serial = serial();
    if let Ok(dir) = std::env::var("SR_RACE_DIR") {
        match std::env::var("SR_RACE_ROLE").as_deref() {
            Ok("attacker") => spin_connect(Path::new(&dir)),
            _ => bind_under_umask_000(Path::new(&dir)),
        }
    }
    if !is_root() {
        return skip("playing a second uid needs root (CI runs as root)");
    }
    let dir = race_dir("umask");
    let spawn = |role: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "a_listener_bound_under_umask_000_is_never_reachable_by_another_uid",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SR_RACE_DIR", &dir)
            .env("SR_RACE_ROLE", role)
            .spawn()
            .unwrap()
    };
    let mut attacker = spawn("attacker");
    let mut server = spawn("server");
    let served = server.wait().unwrap();
    std::fs::write(dir.join("stop"), b"").unwrap();
    let attacked = attacker.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        served.code(),
        Some(0),
        "the server saw connections (or a mode other than 0600, exit 100)"
    );
    assert_eq!(attacked.code(), Some(0), "the other uid got through");
}

#[test]
fn listener_refuses_to_replace_an_existing_path() {
    let _serial = serial();
    let dir = race_dir("exists");
    let path = dir.join("taken.sock");
    std::fs::write(&path, b"not ours").unwrap();
    let err = Listener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("remove it first"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not ours");
    // No temporary directory is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------
// 4. A peer outside our PID namespace
// ---------------------------------------------------------------------

#[test]
fn a_peer_outside_our_pid_namespace_has_no_pid() {
    let _serial = serial();
    if let Ok(path) = std::env::var("SR_PIDNS_SOCKET") {
        // In a new PID namespace: the parent that connects is invisible.
        let listener = Listener::bind(&path).unwrap();
        let code = match listener.accept() {
            Ok((_, creds)) if creds.pid.is_none() && creds.uid == 0 => 0,
            Ok((_, creds)) => {
                eprintln!("credentials {creds:?}");
                3
            }
            Err(e) => {
                eprintln!("accept: {e}");
                4
            }
        };
        std::process::exit(code);
    }
    if !is_root() {
        return skip("a PID namespace needs root (CI runs as root)");
    }
    let dir = race_dir("pidns");
    let path = dir.join("ns.sock");
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "a_peer_outside_our_pid_namespace_has_no_pid",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SR_PIDNS_SOCKET", &path)
        .spawn()
        .expect("unshare(1) from util-linux");
    let start = Instant::now();
    let sock = loop {
        if let Ok(s) = UnixStream::connect(&path) {
            break s;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the namespaced listener exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no listener");
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = child.wait().unwrap();
    drop(sock);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(0), "{status}");
}

// ---------------------------------------------------------------------
// 5. The peer does not size our allocations
// ---------------------------------------------------------------------

#[test]
fn an_accepting_receiver_refuses_a_peer_chosen_message_size_above_its_limit() {
    let _serial = serial();
    let (a, b) = UnixStream::pair().unwrap();
    // 128 MiB messages: one would make `recv` allocate 128 MiB.
    let bomb = Options::new().capacity_bytes(1 << 29).max_msg(128 << 20);
    let creator = std::thread::spawn(move || MsgSender::create_with(a, &bomb).map(drop));
    let err = MsgReceiver::accept(b).unwrap_err();
    match &err {
        Error::Handshake(HandshakeError::BadMaxMessage { max_msg, limit }) => {
            assert_eq!(*max_msg, 128 << 20);
            assert_eq!(*limit, sharedring::DEFAULT_MAX_MSG as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Options::max_msg"), "{err}");
    let refused = creator.join().unwrap().unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Handshake(HandshakeError::Refused {
                reason: RefusalReason::Capacity
            })
        ),
        "{refused:?}"
    );
}

#[test]
fn defaults_on_both_sides_agree_on_the_message_size() {
    let _serial = serial();
    let (a, b) = UnixStream::pair().unwrap();
    let big = Options::new().capacity_bytes(1 << 24); // could carry 8 MiB messages
    let creator = std::thread::spawn(move || MsgSender::create_with(a, &big));
    let rx = MsgReceiver::accept(b).expect("default limits accept default rings");
    let tx = creator.join().unwrap().unwrap();
    assert_eq!(tx.max_msg(), sharedring::DEFAULT_MAX_MSG);
    drop(rx);
}

// ---------------------------------------------------------------------
// 7. A wake-up flooder on its own core
// ---------------------------------------------------------------------

/// On a two-core host a single flooder process rarely beats our poll and
/// read; `park::tests::the_deadline_holds_when_every_park_is_woken_at_once`
/// plays the flooder that always wins. This one is the real thing.
#[test]
fn a_receive_deadline_holds_against_a_wakeup_flooder_on_another_core() {
    let _serial = serial();
    if let Some((_, sock)) = testkit::as_peer() {
        pin_to_cpu(1);
        let mut tx = Sender::<u64>::accept(sock).unwrap();
        let fd = tx.notifier().as_fd().try_clone_to_owned().unwrap();
        // A watchdog ends the flood when the honest side hangs up (or
        // after a bound in any case); the flood itself does nothing but
        // write, as fast as it can.
        std::thread::spawn(move || {
            let start = Instant::now();
            while !tx.is_peer_gone() && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::process::exit(0);
        });
        let one = 1u64.to_ne_bytes();
        loop {
            let _ = rustix::io::write(&fd, &one);
        }
    }
    let pinned = cpus() >= 2 && pin_to_cpu(0);
    println!("flooder on its own core: {pinned}");
    let (mut child, sock) = testkit::spawn_peer(
        "a_receive_deadline_holds_against_a_wakeup_flooder_on_another_core",
        "flood",
    )
    .unwrap();
    let mut rx = Receiver::<u64>::create_with(
        sock,
        &Options::new().capacity_elements(64).spin(Duration::ZERO),
    )
    .unwrap();
    let mut buf = [0u64; 8];
    let deadline = Duration::from_millis(200);
    let start = Instant::now();
    for round in 0..5 {
        let call = Instant::now();
        let r = rx.recv(&mut buf, Some(deadline));
        assert!(
            matches!(r, Err(Error::TimedOut { done: 0 })),
            "round {round}: {r:?}"
        );
        // A correctness bound, not a speed target: generous for a loaded
        // machine, far below "forever".
        assert!(call.elapsed() < deadline + Duration::from_secs(3));
    }
    assert!(start.elapsed() < Duration::from_secs(15));
    drop(rx);
    child.wait().unwrap();
}

// ---------------------------------------------------------------------
// 8. Treated as gone
// ---------------------------------------------------------------------

#[test]
fn a_peer_caught_cheating_is_reported_gone_while_its_process_lives() {
    let _serial = serial();
    let (live_ours, live_theirs) = UnixStream::pair().unwrap();
    let (tx, offer) =
        Sender::<u64>::create_offer(&Options::new().capacity_elements(64), None).unwrap();
    let memory: OwnedFd = offer.fds.memory.try_clone().unwrap();
    let len = offer.region_len as usize;
    let mut rx =
        Receiver::<u64>::from_offer(offer, &Options::new(), Some(live_ours.into())).unwrap();
    assert!(!rx.is_peer_gone());
    // The "peer" publishes a write position beyond the capacity.
    let shm = SharedMemory::open(memory, len).unwrap();
    shm.write_at(common::WRITE_POS, &(1u64 << 40).to_ne_bytes())
        .unwrap();
    let mut buf = [0u64; 8];
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Corrupted(_))));
    assert!(rx.is_peer_gone(), "a cheater is treated as gone");
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Corrupted(_))));
    drop((tx, live_theirs));
}
