//! Broadcast between real processes: delivery to several subscriber
//! processes, membership (join with history, listing, leaving, the
//! publisher dying), typed contracts, and waiting from an event loop.

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use sharedring::broadcast::{
    BroadcastError, BroadcastOptions, Delivery, MsgPublisher, MsgSubscriber, Publisher,
    SubscribeOptions, Subscriber,
};

const N: u64 = 20_000;

fn play_if_child() {
    let Some((role, sock)) = testkit::as_peer() else {
        return;
    };
    match role.as_str() {
        // Receives every one of N values in order (reliable publisher).
        "count" => {
            let mut sub = Subscriber::<u64>::join(sock, &SubscribeOptions::new()).unwrap();
            for want in 0..N {
                assert_eq!(sub.recv().unwrap(), want * 3);
            }
            assert!(matches!(sub.recv(), Err(BroadcastError::Closed)));
        }
        // The same, awaited on tokio (feature `tokio`).
        #[cfg(feature = "tokio")]
        "async-count" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut sub = Subscriber::<u64>::join(sock, &SubscribeOptions::new())
                    .unwrap()
                    .into_async()
                    .unwrap();
                for want in 0..N {
                    assert_eq!(sub.recv().await.unwrap(), want * 3);
                }
                assert!(matches!(sub.recv().await, Err(BroadcastError::Closed)));
            });
        }
        // A publisher that dies mid-stream.
        "dying-publisher" => {
            let mut p = Publisher::<u64>::new(&BroadcastOptions::new()).unwrap();
            p.add_subscriber(sock).unwrap();
            for i in 0..10 {
                p.publish(&i).unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
            // Exits with `p` alive: its Drop (which closes the stream)
            // never runs, as in a crash.
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// A reliable ring of 256 slots that waits up to a minute for a slow
/// subscriber (these tests check delivery, not the drop).
fn reliable_256() -> BroadcastOptions {
    BroadcastOptions::new()
        .slots(256)
        .delivery(Delivery::Reliable {
            max_lag: 256,
            timeout: Duration::from_secs(60),
        })
}

#[test]
fn reliable_publisher_delivers_every_message_to_every_subscriber_process() {
    play_if_child();
    let name = "reliable_publisher_delivers_every_message_to_every_subscriber_process";
    let mut publisher = Publisher::<u64>::new(&reliable_256()).unwrap();
    let mut children = Vec::new();
    for _ in 0..3 {
        let (child, sock) = testkit::spawn_peer(name, "count").unwrap();
        publisher.add_subscriber(sock).unwrap();
        children.push(child);
    }
    for i in 0..N {
        publisher.publish(&(i * 3)).unwrap();
    }
    let listed = publisher.inner().subscribers();
    assert_eq!(listed.len(), 3);
    for s in &listed {
        let creds = s.credentials.expect("credentials");
        assert_eq!(creds.uid, rustix::process::getuid().as_raw());
        assert!(s.lag <= 256);
    }
    drop(publisher);
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

#[test]
fn publisher_death_is_peer_gone_after_the_last_message() {
    play_if_child();
    let (mut child, sock) = testkit::spawn_peer(
        "publisher_death_is_peer_gone_after_the_last_message",
        "dying-publisher",
    )
    .unwrap();
    let mut sub = Subscriber::<u64>::join(sock, &SubscribeOptions::new()).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    loop {
        match sub.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => got.push(v),
            Err(BroadcastError::PeerGone) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // It may have published before we attached; what we got is in order.
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert!(child.wait().unwrap().success());
}

fn pair(publisher: &mut MsgPublisher, opts: &SubscribeOptions) -> MsgSubscriber {
    let (a, b) = UnixStream::pair().unwrap();
    publisher.add_subscriber(a).unwrap();
    MsgSubscriber::join(b, opts).unwrap()
}

#[test]
fn lossy_subscriber_lags_then_resumes_at_the_oldest_intact_message() {
    let mut publisher = MsgPublisher::new(&BroadcastOptions::new().slots(8).max_msg(16)).unwrap();
    let mut sub = pair(&mut publisher, &SubscribeOptions::new());
    for i in 0..20u8 {
        publisher.publish(&[i]).unwrap();
    }
    let mut buf = [0u8; 16];
    match sub.try_recv(&mut buf) {
        Err(BroadcastError::Lagged { missed: 12 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sub.try_recv(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], 12);
    assert_eq!(publisher.subscribers()[0].lag, 7);
}

/// Removing subscribers in any order keeps every remaining one's listing
/// (id, cursor, lag) its own, and the removed ones see the publisher gone.
#[test]
fn removing_subscribers_keeps_each_listing_its_own() {
    let mut publisher = MsgPublisher::new(&BroadcastOptions::new().slots(64).max_msg(16)).unwrap();
    let mut subs: Vec<MsgSubscriber> = (0..5)
        .map(|_| pair(&mut publisher, &SubscribeOptions::new()))
        .collect();
    for i in 0..10u8 {
        publisher.publish(&[i]).unwrap();
    }
    // Subscriber k reads k messages, so its lag is 10 - k.
    let mut buf = [0u8; 16];
    for (k, sub) in subs.iter_mut().enumerate() {
        for _ in 0..k {
            sub.try_recv(&mut buf).unwrap();
        }
    }
    let lag_of = |id: u64| 10 - (id - 1);
    assert!(publisher.remove(subs[1].id()));
    assert!(publisher.remove(subs[4].id()));
    assert!(!publisher.remove(subs[4].id()), "removed twice");
    let mut listed = publisher.subscribers();
    listed.sort_by_key(|s| s.id);
    let ids: Vec<u64> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [subs[0].id(), subs[2].id(), subs[3].id()]);
    for s in &listed {
        assert_eq!(s.lag, lag_of(s.id), "subscriber {}", s.id);
        assert_eq!(s.cursor, Some(10 - lag_of(s.id)));
    }
    // A removed subscriber reads what it had, then learns it was dropped.
    let removed = &mut subs[4];
    loop {
        match removed.recv(&mut buf) {
            Ok(_) => {}
            Err(BroadcastError::PeerGone) => break,
            Err(e) => panic!("removed subscriber: {e}"),
        }
    }
    // The others still get what comes next.
    publisher.publish(&[99]).unwrap();
    for k in [0, 2, 3] {
        while subs[k].try_recv(&mut buf).unwrap() == 1 && buf[0] != 99 {}
        assert_eq!(buf[0], 99, "subscriber {}", subs[k].id());
    }
}

#[test]
fn late_subscriber_gets_the_history_offered_and_no_more() {
    let mut publisher =
        MsgPublisher::new(&BroadcastOptions::new().slots(16).max_msg(8).history(4)).unwrap();
    for i in 0..10u8 {
        publisher.publish(&[i]).unwrap();
    }
    let mut newest = pair(&mut publisher, &SubscribeOptions::new());
    let mut greedy = pair(&mut publisher, &SubscribeOptions::new().history(100));
    let mut buf = [0u8; 8];
    assert!(matches!(
        newest.try_recv(&mut buf),
        Err(BroadcastError::Empty)
    ));
    let mut seen = Vec::new();
    while let Ok(1) = greedy.try_recv(&mut buf) {
        seen.push(buf[0]);
    }
    assert_eq!(seen, [6, 7, 8, 9]);
}

#[test]
fn a_subscriber_of_another_type_is_refused() {
    let mut publisher = Publisher::<u64>::new(&BroadcastOptions::new()).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    publisher.add_subscriber(a).unwrap();
    match Subscriber::<u32>::join(b, &SubscribeOptions::new()) {
        Err(BroadcastError::Refused { field, .. }) => assert_eq!(field, "element size"),
        other => panic!("{other:?}"),
    }
    // The refusal closed the socket: the publisher drops it once the
    // hang-up shows, which a child that another test is spawning can
    // delay (between its fork and its exec it holds a copy of every
    // descriptor, ours included).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !publisher.inner().subscribers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "refused subscriber never dropped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn event_loop_subscriber_is_woken_by_the_shared_eventfd() {
    let mut publisher = MsgPublisher::new(&BroadcastOptions::new().max_msg(8)).unwrap();
    let mut subs: Vec<MsgSubscriber> = (0..4)
        .map(|_| pair(&mut publisher, &SubscribeOptions::new()))
        .collect();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    for (i, s) in subs.iter().enumerate() {
        epoll::add(
            &ep,
            s.wait_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .unwrap();
    }
    for round in 0..3u8 {
        for s in &mut subs {
            assert!(s.arm(), "nothing to read yet");
        }
        let before = publisher.wake_syscalls();
        publisher.publish(&[round]).unwrap();
        // One eventfd write for four sleepers.
        assert_eq!(publisher.wake_syscalls() - before, 1);
        let mut events = Vec::with_capacity(8);
        common::epoll_wait_for(&ep, &mut events, Duration::from_secs(5));
        assert!(!events.is_empty(), "no edge");
        for s in &mut subs {
            let mut buf = [0u8; 8];
            assert_eq!(s.try_recv(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], round);
        }
    }
}

#[test]
fn latest_value_cell_gives_every_reader_the_newest_state() {
    let mut state = Publisher::<[u64; 4]>::new(&BroadcastOptions::latest_value()).unwrap();
    let mut readers: Vec<Subscriber<[u64; 4]>> = (0..3)
        .map(|_| {
            let (a, b) = UnixStream::pair().unwrap();
            state.add_subscriber(a).unwrap();
            Subscriber::join(b, &SubscribeOptions::new()).unwrap()
        })
        .collect();
    for r in &mut readers {
        assert!(matches!(r.latest(), Err(BroadcastError::Empty)));
    }
    for x in 0..1000u64 {
        state.publish(&[x, x + 1, x + 2, x + 3]).unwrap();
        if x % 97 == 0 {
            for r in &mut readers {
                assert_eq!(r.latest().unwrap(), (x, [x, x + 1, x + 2, x + 3]));
            }
        }
    }
    for r in &mut readers {
        assert_eq!(r.latest().unwrap(), (999, [999, 1000, 1001, 1002]));
        assert_eq!(r.latest().unwrap().0, 999, "a cell is read again and again");
    }
}

/// How a subscriber runs on tokio: `AsyncFd` over the shared eventfd
/// (tokio registers it edge-triggered), `arm` before each wait.
#[test]
fn subscriber_on_tokio_waits_with_asyncfd() {
    let mut publisher = MsgPublisher::new(&BroadcastOptions::new().max_msg(8)).unwrap();
    let mut sub = pair(&mut publisher, &SubscribeOptions::new());
    let feeder = std::thread::spawn(move || {
        for i in 0..5u8 {
            std::thread::sleep(Duration::from_millis(20));
            publisher.publish(&[i]).unwrap();
        }
        publisher
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        // SAFETY: the `AsyncFd` owns the duplicate for its whole life and
        // `OwnedFd::as_raw_fd` always returns that same descriptor.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                sub.wait_fd().try_clone_to_owned().unwrap(),
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(|e| e.into_parts().1)
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        while got.len() < 5 {
            match sub.try_recv(&mut buf) {
                Ok(1) => {
                    got.push(buf[0]);
                    continue;
                }
                Err(BroadcastError::Empty) => {}
                other => panic!("{other:?}"),
            }
            if sub.arm() {
                let ready = tokio::time::timeout(Duration::from_secs(10), fd.readable());
                let mut guard = ready.await.expect("woken within 10 s").unwrap();
                // Never read the shared eventfd: just forget the readiness.
                guard.clear_ready();
            }
        }
        got
    });
    assert_eq!(got, [0, 1, 2, 3, 4]);
    drop(feeder.join().unwrap());
}

/// A subscriber process awaiting on tokio gets every value of a reliable
/// publisher in order, across pauses long enough for it to sleep (each
/// burst must wake it), then the end of the stream.
#[cfg(feature = "tokio")]
#[test]
fn async_subscriber_process_gets_every_value_across_sleeps_then_closed() {
    play_if_child();
    let name = "async_subscriber_process_gets_every_value_across_sleeps_then_closed";
    let mut publisher = Publisher::<u64>::new(&reliable_256()).unwrap();
    let (mut child, sock) = testkit::spawn_peer(name, "async-count").unwrap();
    publisher.add_subscriber(sock).unwrap();
    for i in 0..N {
        if i % 2000 == 0 {
            // Longer than the subscriber's spin: it arms and awaits.
            std::thread::sleep(Duration::from_millis(5));
        }
        publisher.publish(&(i * 3)).unwrap();
    }
    drop(publisher);
    assert!(child.wait().unwrap().success());
}

/// An async subscriber hears a publisher process that dies without
/// closing: what it published, in order, then `PeerGone`.
#[cfg(feature = "tokio")]
#[test]
fn async_subscriber_hears_the_publisher_die() {
    play_if_child();
    let (mut child, sock) = testkit::spawn_peer(
        "async_subscriber_hears_the_publisher_die",
        "dying-publisher",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut sub = Subscriber::<u64>::join(sock, &SubscribeOptions::new())
            .unwrap()
            .into_async()
            .unwrap();
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), sub.recv()).await {
                Ok(Ok(v)) => got.push(v),
                Ok(Err(BroadcastError::PeerGone)) => break got,
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => panic!("no PeerGone within 30 s of a dead publisher"),
            }
        }
    });
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert!(child.wait().unwrap().success());
}

/// `into_async` outside a runtime is an error that names the fix, not
/// tokio's panic.
#[cfg(feature = "tokio")]
#[test]
fn into_async_outside_a_runtime_names_the_fix() {
    let mut publisher = MsgPublisher::new(&BroadcastOptions::new()).unwrap();
    let sub = pair(&mut publisher, &SubscribeOptions::new());
    let e = sub.into_async().unwrap_err();
    assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
}
