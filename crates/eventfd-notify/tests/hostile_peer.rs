//! Each test plays a hostile peer in a real second process: this test
//! binary re-executed through `testkit::spawn_peer`, running only that test
//! in a role. The parent is the honest side and asserts what it is promised
//! (THREAT-MODEL.md, promises 3 and 4).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eventfd_notify::{Error, NotEventfd, Notifier, Waiter, Wake};
use rustix::fs::OFlags;
use rustix::net::RecvFlags;

const SATURATED: u64 = 0xffff_ffff_ffff_fffe;

/// Receives exactly `n` descriptors in one message from the other side.
fn recv_n(sock: &UnixStream, n: usize) -> Vec<OwnedFd> {
    let mut buf = [0u8; 16];
    let (_, fds) = testkit::recv_fds(sock, &mut buf, n).expect("recv_fds");
    assert_eq!(fds.len(), n, "expected {n} descriptors");
    fds
}

/// The peer's side: one byte means "I have done my hostile setup".
fn say_ready(mut sock: &UnixStream) {
    sock.write_all(b"R").expect("peer: write ready");
}

fn await_ready(mut sock: &UnixStream) {
    let mut b = [0u8; 1];
    sock.read_exact(&mut b)
        .expect("parent: read the peer's ready byte");
    assert_eq!(&b, b"R");
}

/// True once the parent has closed its end of `sock` (checked without
/// blocking). Lets a spinning peer stop when the test is over.
fn parent_gone(sock: &UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        rustix::net::recv(sock, &mut b, RecvFlags::DONTWAIT),
        Ok((0, _))
    )
}

/// Ends the peer once the test is over, whatever state it is in.
fn finish(mut child: Child, sock: UnixStream) {
    drop(sock);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `f` on a thread; fails the test if it has not returned in `limit`
/// rather than hanging the whole suite.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

/// Serialises the tests of this binary, so that descriptor counts see only
/// the test that takes them.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn clear_nonblock(fd: BorrowedFd<'_>) {
    rustix::fs::fcntl_setfl(fd, OFlags::empty()).expect("peer: fcntl");
}

#[test]
fn pipe_socket_memfd_and_regular_file_sent_as_eventfds_each_get_their_own_error() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let (pipe_r, _pipe_w) = rustix::pipe::pipe().unwrap();
        let (sock_a, _sock_b) = UnixStream::pair().unwrap();
        let memfd =
            rustix::fs::memfd_create("not-an-eventfd", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let file = tempfile_in_tmp();
        let real = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        // The real eventfd again, as an O_PATH descriptor: the only way to
        // reopen an eventfd through /proc (other modes get ENXIO).
        let path_only = {
            use std::os::fd::AsRawFd;
            rustix::fs::open(
                format!("/proc/self/fd/{}", real.as_raw_fd()).as_str(),
                OFlags::PATH | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
        };
        let fds = [
            pipe_r.as_fd(),
            sock_a.as_fd(),
            memfd.as_fd(),
            file.as_fd(),
            path_only.as_fd(),
            real.as_fd(),
        ];
        testkit::send_fds(&sock, b"fds", &fds).unwrap();
        std::process::exit(0);
    }
    let _serial = serial();
    let before = testkit::FdSnapshot::now();
    let (child, sock) = testkit::spawn_peer(
        "pipe_socket_memfd_and_regular_file_sent_as_eventfds_each_get_their_own_error",
        "send-wrong-fds",
    )
    .unwrap();
    let mut fds = recv_n(&sock, 6).into_iter();

    let pipe = fds.next().unwrap();
    assert!(matches!(
        Waiter::from_received(pipe),
        Err(Error::NotAnEventfd(NotEventfd::Pipe))
    ));
    let socket = fds.next().unwrap();
    assert!(matches!(
        Notifier::from_received(socket),
        Err(Error::NotAnEventfd(NotEventfd::Socket))
    ));
    let memfd = fds.next().unwrap();
    assert!(matches!(
        Waiter::from_received(memfd),
        Err(Error::NotAnEventfd(NotEventfd::Memfd))
    ));
    let file = fds.next().unwrap();
    match Notifier::from_received(file) {
        Err(e @ Error::NotAnEventfd(NotEventfd::RegularFile { .. })) => {
            // The message says what the peer did and what it sent.
            let msg = e.to_string();
            assert!(msg.contains("regular file"), "{msg}");
            assert!(msg.contains("eventfd-notify-test"), "{msg}");
        }
        other => panic!("expected RegularFile, got {other:?}"),
    }
    // An O_PATH descriptor of a real eventfd: its link says eventfd, but no
    // read or io_uring registration would work on it (EBADF).
    let path_only = fds.next().unwrap();
    for r in [
        Waiter::from_received(path_only.try_clone().unwrap()).err(),
        Notifier::from_received(path_only).err(),
    ] {
        match r {
            Some(e @ Error::NotAnEventfd(NotEventfd::PathOnly { .. })) => {
                assert!(e.to_string().contains("O_PATH"), "{e}");
            }
            other => panic!("expected PathOnly, got {other:?}"),
        }
    }
    // The genuine eventfd among them is accepted.
    let waiter = Waiter::from_received(fds.next().unwrap()).expect("a real eventfd is accepted");
    finish(child, sock);
    drop(waiter);
    let leaked = testkit::fds_leaked_since(&before);
    assert!(leaked.is_empty(), "descriptors leaked: {leaked:?}");
}

/// A regular file, already unlinked, for the peer to send.
fn tempfile_in_tmp() -> std::fs::File {
    let path = std::env::temp_dir().join(format!("eventfd-notify-test-{}", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    // Keep the path in the link for the parent's message check: the kernel
    // appends " (deleted)" after an unlink, which still contains the name.
    std::fs::remove_file(&path).unwrap();
    f
}

#[test]
fn notify_returns_promptly_when_peer_saturates_the_counter_and_clears_o_nonblock() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let fd = recv_n(&sock, 1).pop().unwrap();
        rustix::io::write(&fd, &SATURATED.to_ne_bytes()).unwrap();
        clear_nonblock(fd.as_fd());
        say_ready(&sock);
        // Never read; keep clearing O_NONBLOCK in case the honest side sets
        // it again, until the test is over.
        let mut i = 0u32;
        loop {
            clear_nonblock(fd.as_fd());
            i = i.wrapping_add(1);
            if i % 1024 == 0 && parent_gone(&sock) {
                std::process::exit(0);
            }
        }
    }
    let _serial = serial();
    let (child, sock) = testkit::spawn_peer(
        "notify_returns_promptly_when_peer_saturates_the_counter_and_clears_o_nonblock",
        "saturate-and-block",
    )
    .unwrap();
    let notifier = Notifier::new().unwrap();
    testkit::send_fds(&sock, b"efd", &[notifier.as_fd()]).unwrap();
    await_ready(&sock);

    // The scenario is real: the shared description is blocking now, and
    // the counter is saturated (a plain write(1) would sleep forever).
    let flags = rustix::fs::fcntl_getfl(&notifier).unwrap();
    assert!(!flags.contains(OFlags::NONBLOCK));
    assert!(
        !rustix::event::poll(
            &mut [rustix::event::PollFd::new(
                &notifier,
                rustix::event::PollFlags::OUT
            )],
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0
            })
        )
        .map(|n| n > 0)
        .unwrap(),
        "the counter should be saturated (not writable)"
    );

    let notifier = within(Duration::from_secs(1), "notify() x100", move || {
        for _ in 0..100 {
            notifier.notify().expect("a saturated counter is success");
        }
        notifier
    });
    // The wake-up is there for whoever waits.
    let waiter = Waiter::from_received(notifier.try_clone_fd().unwrap()).unwrap();
    assert!(waiter.try_wait().unwrap());
    finish(child, sock);
}

#[test]
fn wait_keeps_its_deadline_when_peer_steals_every_notification_and_clears_o_nonblock() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let fd = recv_n(&sock, 1).pop().unwrap();
        clear_nonblock(fd.as_fd());
        let mut buf = [0u8; 8];
        // Phase 1: make the eventfd readable and steal it back at once,
        // over and over: our poll sees readiness, and by the time we read,
        // the counter is usually drained again.
        let phase1_end = Instant::now() + Duration::from_millis(600);
        while Instant::now() < phase1_end {
            rustix::io::write(&fd, &1u64.to_ne_bytes()).unwrap();
            clear_nonblock(fd.as_fd());
            // Blocking read (O_NONBLOCK is clear): if we won the race it
            // would block, so only read what poll says is there.
            let mut pfd = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if rustix::event::poll(&mut pfd, Some(&zero)).unwrap() > 0 {
                let _ = rustix::io::preadv2(
                    &fd,
                    &mut [std::io::IoSliceMut::new(&mut buf)],
                    u64::MAX,
                    rustix::io::ReadWriteFlags::NOWAIT,
                );
            }
        }
        say_ready(&sock);
        // Phase 2: the counter is (and stays) drained, O_NONBLOCK is clear,
        // and a stealing read sits blocked on it in another thread while
        // this thread kicks the wait queue with zero-valued writes.
        let stealer = fd.try_clone().unwrap();
        std::thread::spawn(move || loop {
            let _ = rustix::io::read(&stealer, &mut [0u8; 8]);
        });
        loop {
            rustix::io::write(&fd, &0u64.to_ne_bytes()).unwrap();
            clear_nonblock(fd.as_fd());
            if parent_gone(&sock) {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let _serial = serial();
    let (child, sock) = testkit::spawn_peer(
        "wait_keeps_its_deadline_when_peer_steals_every_notification_and_clears_o_nonblock",
        "steal",
    )
    .unwrap();
    let waiter = Waiter::new().unwrap();
    testkit::send_fds(&sock, b"efd", &[waiter.as_fd()]).unwrap();

    // Phase 1: each wait returns by its deadline (generous bound: 2 s),
    // without error. It may legitimately win a race and see "woken".
    let waiter = within(Duration::from_secs(10), "phase-1 waits", move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400) {
            let t = Instant::now();
            let r = waiter.wait(Some(Duration::from_millis(100)));
            let took = t.elapsed();
            assert!(took < Duration::from_secs(2), "wait took {took:?}");
            match r {
                Ok(Wake::TimedOut) => assert!(took >= Duration::from_millis(100)),
                Ok(Wake::Woken) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        waiter
    });
    await_ready(&sock);
    // Phase 2: nothing is ever left for us; the description is blocking.
    assert!(!rustix::fs::fcntl_getfl(&waiter)
        .unwrap()
        .contains(OFlags::NONBLOCK));
    let (r, took) = within(Duration::from_secs(2), "wait(100 ms)", move || {
        let t = Instant::now();
        let r = waiter.wait(Some(Duration::from_millis(100)));
        (r, t.elapsed())
    });
    assert_eq!(r.unwrap(), Wake::TimedOut);
    assert!(
        took >= Duration::from_millis(100),
        "returned early: {took:?}"
    );
    finish(child, sock);
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[test]
fn wait_under_a_wake_up_flood_returns_without_error_or_busy_spin() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let fd = recv_n(&sock, 1).pop().unwrap();
        say_ready(&sock);
        // Bursts of real wake-ups, saturations and empty kicks, with short
        // pauses, until the test is over.
        loop {
            for i in 0..2000u64 {
                let v: u64 = match i % 3 {
                    0 => 1,
                    1 => 0,
                    _ => SATURATED,
                };
                // Non-blocking (the description was made so by us): a
                // write that would overflow the counter just fails.
                let _ = rustix::io::write(&fd, &v.to_ne_bytes());
            }
            if parent_gone(&sock) {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _serial = serial();
    let (child, sock) = testkit::spawn_peer(
        "wait_under_a_wake_up_flood_returns_without_error_or_busy_spin",
        "flood",
    )
    .unwrap();
    let waiter = Waiter::new().unwrap();
    testkit::send_fds(&sock, b"efd", &[waiter.as_fd()]).unwrap();
    await_ready(&sock);

    let (woken, wall, cpu) = within(Duration::from_secs(10), "the waiting loop", move || {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let mut woken = 0u32;
        while start.elapsed() < Duration::from_millis(500) {
            match waiter.wait(Some(Duration::from_millis(50))) {
                Ok(Wake::Woken) => woken += 1,
                Ok(Wake::TimedOut) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (woken, start.elapsed(), thread_cpu() - cpu0)
    });
    eprintln!("flood: {woken} wake-ups, {cpu:?} CPU in {wall:?}");
    assert!(woken > 0, "the flood should have woken us");
    // A waiter that spins burns ~all of the wall time; ours sleeps in poll
    // between bursts. Half the wall time is a generous, non-flaky bound.
    assert!(
        cpu < wall / 2,
        "waiting used {cpu:?} of CPU in {wall:?} ({woken} wake-ups)"
    );
    finish(child, sock);
}

#[test]
fn wait_with_liveness_delivers_pending_notification_then_reports_peer_gone() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let fd = recv_n(&sock, 1).pop().unwrap();
        let notifier = Notifier::from_received(fd).unwrap();
        notifier.notify().unwrap();
        // Die without a goodbye.
        std::process::exit(0);
    }
    let _serial = serial();
    let (mut child, sock) = testkit::spawn_peer(
        "wait_with_liveness_delivers_pending_notification_then_reports_peer_gone",
        "notify-and-die",
    )
    .unwrap();
    let waiter = Waiter::new().unwrap();
    testkit::send_fds(&sock, b"efd", &[waiter.as_fd()]).unwrap();
    assert!(child.wait().unwrap().success());

    let limit = Some(Duration::from_secs(10));
    assert_eq!(
        waiter.wait_with_liveness(&sock, limit).unwrap(),
        Wake::Woken,
        "what the peer sent before dying is delivered first"
    );
    let t = Instant::now();
    assert_eq!(
        waiter.wait_with_liveness(&sock, limit).unwrap(),
        Wake::PeerGone
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn wait_with_liveness_wakes_up_when_the_peer_dies_mid_wait() {
    if let Some((_role, sock)) = testkit::as_peer() {
        let mut b = [0u8; 1];
        // Die when told to, without notifying.
        let _ = (&sock).read(&mut b);
        std::process::exit(0);
    }
    let _serial = serial();
    let (mut child, sock) = testkit::spawn_peer(
        "wait_with_liveness_wakes_up_when_the_peer_dies_mid_wait",
        "die",
    )
    .unwrap();
    let waiter = Waiter::new().unwrap();
    let sock2 = sock.try_clone().unwrap();
    let waiting = std::thread::spawn(move || {
        waiter.wait_with_liveness(&sock2, Some(Duration::from_secs(30)))
    });
    std::thread::sleep(Duration::from_millis(50));
    (&sock).write_all(b"x").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(waiting.join().unwrap().unwrap(), Wake::PeerGone);
}
