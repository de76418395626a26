//! Hostile peers of a broadcast, as real processes, both ways.
//!
//! Subscribers: one that tries every write on the real data memfd it was
//! given, scribbles its own control region, floods wake-ups and then
//! stalls; liars about their cursor in reliable mode; one killed while
//! reading. Publishers: a memfd without `F_SEAL_FUTURE_WRITE`, header and
//! offer lies, and one that toggles sequence stamps, length and head.

mod broadcast_attacks;
mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::thread::futex;
use sharedring::broadcast::{
    BroadcastError, BroadcastOptions, Delivery, MsgPublisher, MsgSubscriber, SubscribeOptions,
};
use sharedring::shmem_seal::{self, MemfdBuilder, ReadOnlyMemory, SharedMemory};
use sharedring::spsc_core::broadcast::{
    control, header, slot, BcastLayout, BcastSetupError, BCAST_DATA_OFFSET, BCAST_MAGIC,
    BCAST_VERSION, KIND_BROADCAST,
};

const SLOTS: usize = 64;
const MAX_MSG: usize = 256;

/// The message of sequence number `seq`: its length and every byte follow
/// from `seq`, so a torn or misplaced message shows.
fn message(seq: u64, buf: &mut [u8; MAX_MSG]) -> usize {
    let len = 8 + (seq as usize * 7) % (MAX_MSG - 8);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..len].fill((seq % 251) as u8);
    len
}

fn check_message(buf: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(
        buf.len(),
        8 + (seq as usize * 7) % (MAX_MSG - 8),
        "length of {seq}"
    );
    assert!(
        buf[8..].iter().all(|&b| b == (seq % 251) as u8),
        "torn message {seq}"
    );
    seq
}

// ---------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------

fn play_if_child() {
    let Some((role, sock)) = testkit::as_peer() else {
        return;
    };
    match role.as_str() {
        "attack-all" => attack_all(sock),
        "honest" => honest(sock),
        "cursor-ahead" => lying_cursor(sock, true),
        "cursor-stuck" => lying_cursor(sock, false),
        "reader" => reader(sock),
        r if r.starts_with("pub-") => hostile_publisher(r, sock),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// The offer and descriptors, received by hand (no validation).
struct Raw {
    region_len: usize,
    data: OwnedFd,
    control: OwnedFd,
    event: OwnedFd,
}

fn raw_join(sock: &UnixStream) -> Raw {
    let mut b = [0u8; 64];
    let (n, fds) = testkit::recv_fds(sock, &mut b, 3).unwrap();
    assert_eq!((n, fds.len()), (64, 3));
    let mut fds = fds.into_iter();
    Raw {
        region_len: u64::from_ne_bytes(b[24..32].try_into().unwrap()) as usize,
        data: fds.next().unwrap(),
        control: fds.next().unwrap(),
        event: fds.next().unwrap(),
    }
}

/// Tries every write on the data memfd, reports over the socket, then
/// scribbles its control region and floods wake-ups for a while, then
/// stalls until killed.
fn attack_all(mut sock: UnixStream) {
    let raw = raw_join(&sock);
    let data_dup = raw.data.try_clone().unwrap();
    let data = ReadOnlyMemory::open(raw.data, raw.region_len).unwrap();
    let attempts =
        broadcast_attacks::try_every_write(data_dup.as_fd(), raw.region_len, data.as_ptr());
    let ctl = SharedMemory::open(raw.control, 4096).unwrap();
    // SAFETY: 4-aligned words of the mappings, which live to the end.
    let wake = unsafe { AtomicU32::from_ptr(data.as_ptr().add(header::WAKE) as *mut u32) };
    let mut rng = Rng::new(Rng::seed());
    let until = Instant::now() + Duration::from_millis(800);
    let mut rounds = 0u64;
    while Instant::now() < until || rounds < 2000 {
        rounds += 1;
        // Scribble our own control region: any cursor, wait word, mode.
        // SAFETY: inside the 4096-byte read-write control mapping.
        unsafe {
            AtomicU64::from_ptr(ctl.as_ptr().as_ptr().add(control::CURSOR).cast())
                .store(rng.next_u64(), Ordering::Relaxed);
            AtomicU32::from_ptr(ctl.as_ptr().as_ptr().add(control::WAIT).cast())
                .store(rng.next_u64() as u32, Ordering::Relaxed);
            AtomicU32::from_ptr(ctl.as_ptr().as_ptr().add(control::WAIT_HOW).cast())
                .store(rng.next_u64() as u32, Ordering::Relaxed);
            let off = rng.below(4096) as usize;
            ctl.as_ptr()
                .as_ptr()
                .add(off)
                .write_volatile(rng.next_u64() as u8);
        }
        // Flood wake-ups: everyone's futex, the shared eventfd (clear its
        // O_NONBLOCK, which is shared with the publisher's copy, saturate
        // it, sometimes drain it).
        let _ = futex::wake(wake, futex::Flags::empty(), i32::MAX as u32);
        let _ = rustix::fs::fcntl_setfl(&raw.event, rustix::fs::OFlags::NONBLOCK);
        let _ = rustix::io::write(&raw.event, &(u64::MAX - 1).to_ne_bytes());
        let _ = rustix::fs::fcntl_setfl(&raw.event, rustix::fs::OFlags::empty());
        if rng.below(2) == 0 {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&raw.event, &mut b);
        }
    }
    let _ = sock.write_all(broadcast_attacks::report(&attempts).as_bytes());
    let _ = sock.shutdown(std::net::Shutdown::Write);
    // Stall: never read, never leave.
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// An honest subscriber process: reads to the end, checks every message,
/// and exits 0 only if it received something and nothing was torn.
fn honest(sock: UnixStream) {
    let mut sub = MsgSubscriber::join(sock, &SubscribeOptions::new()).unwrap();
    let mut buf = [0u8; MAX_MSG];
    let (mut got, mut last) = (0u64, None::<u64>);
    loop {
        match sub.recv(&mut buf) {
            Ok(n) => {
                let seq = check_message(&buf[..n]);
                assert!(last.is_none_or(|l| seq > l));
                last = Some(seq);
                got += 1;
            }
            Err(BroadcastError::Lagged { .. }) => {}
            Err(BroadcastError::Closed) => break,
            Err(e) => panic!("honest subscriber: {e}"),
        }
    }
    assert!(got > 0);
}

/// Reliable-mode liars: publish an impossible cursor (ahead of the head)
/// or a cursor that never moves, and never read.
fn lying_cursor(sock: UnixStream, ahead: bool) {
    let raw = raw_join(&sock);
    let _data = ReadOnlyMemory::open(raw.data, raw.region_len).unwrap();
    let ctl = SharedMemory::open(raw.control, 4096).unwrap();
    // SAFETY: offset 0 of the 4096-byte control mapping, 8-aligned.
    let cursor = unsafe { AtomicU64::from_ptr(ctl.as_ptr().as_ptr().cast()) };
    loop {
        cursor.store(if ahead { 1 << 40 } else { 0 }, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads forever (until killed mid-read).
fn reader(sock: UnixStream) {
    let mut sub = MsgSubscriber::join(sock, &SubscribeOptions::new()).unwrap();
    let mut buf = [0u8; MAX_MSG];
    loop {
        match sub.recv(&mut buf) {
            Ok(n) => {
                check_message(&buf[..n]);
            }
            Err(BroadcastError::Lagged { .. }) => {}
            Err(_) => return,
        }
    }
}

/// A publisher that lies, by role.
fn hostile_publisher(role: &str, sock: UnixStream) {
    let layout = BcastLayout::new(SLOTS, MAX_MSG).unwrap();
    let size = layout.region_size();
    let builder = MemfdBuilder::new("hostile-broadcast");
    let data = if role == "pub-no-future-write" {
        builder.create(size).unwrap()
    } else {
        builder.read_only_for_peers().create(size).unwrap()
    };
    let w32 = |off: usize, v: u32| data.write_at(off, &v.to_ne_bytes()).unwrap();
    let w64 = |off: usize, v: u64| data.write_at(off, &v.to_ne_bytes()).unwrap();
    w32(header::VERSION, BCAST_VERSION);
    w32(header::KIND, KIND_BROADCAST);
    w32(
        header::SLOTS,
        if role == "pub-header-lie" {
            SLOTS as u32 * 2
        } else {
            SLOTS as u32
        },
    );
    w32(header::SLOT_SIZE, layout.slot_size() as u32);
    w32(header::MAX_MSG, MAX_MSG as u32);
    if role == "pub-flags-lie" {
        // A flag bit no version defines, beside the one that is.
        w32(header::FLAGS, header::FLAG_SLEEPER_BARRIER | 4);
    }
    w64(header::DATA_OFFSET, BCAST_DATA_OFFSET as u64);
    w64(header::MAGIC, BCAST_MAGIC);
    let ctl = SharedMemory::create("hostile-control", 4096).unwrap();
    let event = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
    let mut offer = [0u8; 64];
    offer[0..8].copy_from_slice(b"shrdbofr");
    offer[8..12].copy_from_slice(&1u32.to_ne_bytes());
    offer[12..16].copy_from_slice(&KIND_BROADCAST.to_ne_bytes());
    offer[16..20].copy_from_slice(&(SLOTS as u32).to_ne_bytes());
    offer[20..24].copy_from_slice(&(MAX_MSG as u32).to_ne_bytes());
    let region_len = if role == "pub-region-lie" {
        size as u64 * 4
    } else {
        size as u64
    };
    offer[24..32].copy_from_slice(&region_len.to_ne_bytes());
    let pipe = common::pipe_fd();
    let fds: Vec<_> = if role == "pub-two-fds" {
        vec![data.as_fd(), ctl.as_fd()]
    } else if role == "pub-pipe-as-data" {
        vec![pipe.as_fd(), ctl.as_fd(), event.as_fd()]
    } else {
        vec![data.as_fd(), ctl.as_fd(), event.as_fd()]
    };
    testkit::send_fds(&sock, &offer, &fds).unwrap();
    if role != "pub-toggle" {
        common::wait_for_hangup(&sock);
        return;
    }
    // Toggle stamps, lengths and the head at random, forever: mostly
    // plausible values near the head (so reads get far into the
    // protocol), sometimes nonsense.
    let base = data.as_ptr().as_ptr();
    let mut rng = Rng::new(Rng::seed());
    let mut head = 0u64;
    loop {
        let seq = head.saturating_sub(rng.below(SLOTS as u64 + 2));
        let s = BCAST_DATA_OFFSET + (seq % SLOTS as u64) as usize * layout.slot_size();
        // SAFETY: 8- and 4-aligned words inside our own mapping.
        unsafe {
            let stamp = AtomicU64::from_ptr(base.add(s + slot::STAMP).cast());
            let len = AtomicU32::from_ptr(base.add(s + slot::LEN).cast());
            let h = AtomicU64::from_ptr(base.add(header::HEAD).cast());
            match rng.below(100) {
                0..=29 => stamp.store(seq.wrapping_mul(2).wrapping_add(2), Ordering::Release),
                30..=44 => stamp.store(seq.wrapping_mul(2).wrapping_add(1), Ordering::Release),
                45..=49 => stamp.store(rng.next_u64(), Ordering::Release),
                50..=69 => len.store(rng.below(MAX_MSG as u64 + 1) as u32, Ordering::Release),
                70..=72 => len.store(rng.next_u64() as u32, Ordering::Release),
                73..=98 => {
                    head += rng.below(3);
                    h.store(head, Ordering::Release)
                }
                _ if rng.below(1000) == 0 => h.store(rng.next_u64(), Ordering::Release),
                _ => {}
            }
        }
    }
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------
// Hostile subscribers
// ---------------------------------------------------------------------

#[test]
fn hostile_subscriber_cannot_write_disturb_or_block_the_publisher() {
    play_if_child();
    let name = "hostile_subscriber_cannot_write_disturb_or_block_the_publisher";
    let opts = BroadcastOptions::new().slots(SLOTS).max_msg(MAX_MSG);
    let mut publisher = MsgPublisher::new(&opts).unwrap();
    let (attacker, mut attack_sock) = testkit::spawn_peer(name, "attack-all").unwrap();
    publisher
        .add_subscriber(attack_sock.try_clone().unwrap())
        .unwrap();
    let (honest, honest_sock) = testkit::spawn_peer(name, "honest").unwrap();
    publisher.add_subscriber(honest_sock).unwrap();
    // An honest subscriber here too, reading after every publication: it
    // must get every message, intact, whatever the attacker does.
    let (a, b) = UnixStream::pair().unwrap();
    publisher.add_subscriber(a).unwrap();
    let mut local = MsgSubscriber::join(b, &SubscribeOptions::new()).unwrap();
    // And an event-loop subscriber, waiting edge-triggered on the shared
    // eventfd that the attacker saturates and sets blocking.
    let (a, b) = UnixStream::pair().unwrap();
    publisher.add_subscriber(a).unwrap();
    let mut evloop = MsgSubscriber::join(b, &SubscribeOptions::new()).unwrap();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    epoll::add(
        &ep,
        evloop.wait_fd(),
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    )
    .unwrap();

    let mut msg = [0u8; MAX_MSG];
    let mut buf = [0u8; MAX_MSG];
    let started = Instant::now();
    let mut seq = 0u64;
    // Publish while the attacker scribbles and floods (it runs >= 800 ms).
    while started.elapsed() < Duration::from_millis(1500) || seq < 20_000 {
        let len = message(seq, &mut msg);
        let check_evloop = seq % 1024 == 0;
        if check_evloop {
            while !matches!(evloop.try_recv(&mut buf), Err(BroadcastError::Empty)) {}
            assert!(evloop.arm());
        }
        let t = Instant::now();
        assert_eq!(publisher.publish(&msg[..len]).unwrap(), seq);
        // Never blocked: generous for a loaded 2-core machine.
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "publish took {:?}",
            t.elapsed()
        );
        if check_evloop {
            let mut events = Vec::with_capacity(4);
            common::epoll_wait_for(&ep, &mut events, Duration::from_secs(5));
            assert!(
                !events.is_empty(),
                "event-loop subscriber not woken for {seq}"
            );
            let n = evloop.try_recv(&mut buf).unwrap();
            assert_eq!(check_message(&buf[..n]), seq);
        }
        let n = local.try_recv(&mut buf).unwrap();
        assert_eq!(check_message(&buf[..n]), seq);
        seq += 1;
    }
    // Wake-ups: at most one futex wake and one eventfd signal per
    // message, whatever the attacker floods.
    assert!(
        publisher.wake_syscalls() <= 2 * seq,
        "{} for {seq}",
        publisher.wake_syscalls()
    );
    eprintln!(
        "published {seq}, wake syscalls {}",
        publisher.wake_syscalls()
    );
    let mut report = String::new();
    attack_sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    attack_sock.read_to_string(&mut report).unwrap();
    assert_eq!(report.lines().count(), 15, "{report}");
    assert!(
        report.lines().all(|l| l.contains(": refused (")),
        "{report}"
    );
    drop(publisher); // closes: the honest child reads to the end
    let mut honest = honest;
    assert!(honest.wait().unwrap().success(), "honest subscriber failed");
    kill(attacker);
}

#[test]
fn reliable_publisher_drops_cursor_liars_within_its_timeout() {
    play_if_child();
    let name = "reliable_publisher_drops_cursor_liars_within_its_timeout";
    let timeout = Duration::from_millis(200);
    let opts = BroadcastOptions::new()
        .slots(16)
        .max_msg(MAX_MSG)
        .delivery(Delivery::Reliable {
            max_lag: 8,
            timeout,
        });
    let mut publisher = MsgPublisher::new(&opts).unwrap();
    let (ahead, ahead_sock) = testkit::spawn_peer(name, "cursor-ahead").unwrap();
    let ahead_id = publisher.add_subscriber(ahead_sock).unwrap();
    let (stuck, stuck_sock) = testkit::spawn_peer(name, "cursor-stuck").unwrap();
    let stuck_id = publisher.add_subscriber(stuck_sock).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let local_id = publisher.add_subscriber(a).unwrap();
    let mut local = MsgSubscriber::join(b, &SubscribeOptions::new()).unwrap();
    assert!(local.is_reliable());
    // Let the liars map and start lying.
    std::thread::sleep(Duration::from_millis(300));

    let mut msg = [0u8; MAX_MSG];
    let mut buf = [0u8; MAX_MSG];
    let started = Instant::now();
    for seq in 0..200u64 {
        let len = message(seq, &mut msg);
        publisher.publish(&msg[..len]).unwrap();
        let n = local.try_recv(&mut buf).unwrap();
        assert_eq!(check_message(&buf[..n]), seq);
    }
    let took = started.elapsed();
    // The stuck liar cost one timeout (it blocked at lag 8), once.
    assert!(took >= timeout, "{took:?}");
    assert!(
        took < timeout * 20,
        "one liar delayed the others by {took:?}"
    );
    let ids: Vec<u64> = publisher.subscribers().iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        vec![local_id],
        "liars {ahead_id} and {stuck_id} dropped"
    );
    kill(ahead);
    kill(stuck);
}

#[test]
fn subscriber_killed_mid_read_is_reaped_and_the_publisher_carries_on() {
    play_if_child();
    let name = "subscriber_killed_mid_read_is_reaped_and_the_publisher_carries_on";
    let mut publisher =
        MsgPublisher::new(&BroadcastOptions::new().slots(SLOTS).max_msg(MAX_MSG)).unwrap();
    let (child, sock) = testkit::spawn_peer(name, "reader").unwrap();
    publisher.add_subscriber(sock).unwrap();
    let mut msg = [0u8; MAX_MSG];
    let mut seq = 0u64;
    let mut publish_for = |publisher: &mut MsgPublisher, d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d {
            let len = message(seq, &mut msg);
            publisher.publish(&msg[..len]).unwrap();
            seq += 1;
        }
    };
    publish_for(&mut publisher, Duration::from_millis(300));
    assert_eq!(publisher.subscribers().len(), 1);
    kill(child);
    publish_for(&mut publisher, Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !publisher.subscribers().is_empty() {
        assert!(Instant::now() < deadline, "dead subscriber never reaped");
        publish_for(&mut publisher, Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------
// Hostile publishers
// ---------------------------------------------------------------------

fn join_hostile(name: &str, role: &str) -> (Child, Result<MsgSubscriber, BroadcastError>) {
    let (child, sock) = testkit::spawn_peer(name, role).unwrap();
    let r = MsgSubscriber::join(
        sock,
        &SubscribeOptions::new().handshake_timeout(Duration::from_secs(20)),
    );
    (child, r)
}

#[test]
fn publisher_lies_in_the_offer_or_header_are_refused() {
    play_if_child();
    let name = "publisher_lies_in_the_offer_or_header_are_refused";
    let (c, r) = join_hostile(name, "pub-no-future-write");
    match r {
        Err(BroadcastError::Memory(e @ shmem_seal::Error::NotWriteSealed { .. })) => {
            assert_eq!(e.culprit(), shmem_seal::Culprit::Peer)
        }
        other => panic!("memfd without FUTURE_WRITE: {other:?}"),
    }
    kill(c);
    let (c, r) = join_hostile(name, "pub-header-lie");
    assert!(
        matches!(r, Err(BroadcastError::Setup(_))),
        "header slot count lie: {r:?}"
    );
    kill(c);
    let (c, r) = join_hostile(name, "pub-flags-lie");
    assert!(
        matches!(
            r,
            Err(BroadcastError::Setup(BcastSetupError::HeaderMismatch {
                found: 5,
                ..
            }))
        ),
        "unknown header flag: {r:?}"
    );
    kill(c);
    let (c, r) = join_hostile(name, "pub-region-lie");
    assert!(
        matches!(
            r,
            Err(BroadcastError::Refused {
                field: "data region length",
                ..
            })
        ),
        "region length lie: {r:?}"
    );
    kill(c);
    let (c, r) = join_hostile(name, "pub-two-fds");
    assert!(
        matches!(
            r,
            Err(BroadcastError::DescriptorCount {
                expected: 3,
                got: 2
            })
        ),
        "{r:?}"
    );
    kill(c);
    let (c, r) = join_hostile(name, "pub-pipe-as-data");
    assert!(
        matches!(
            r,
            Err(BroadcastError::Memory(shmem_seal::Error::NotMemfd { .. }))
        ),
        "{r:?}"
    );
    kill(c);
}

#[test]
fn toggling_publisher_never_yields_a_bad_message_nor_hangs_the_subscriber() {
    play_if_child();
    let name = "toggling_publisher_never_yields_a_bad_message_nor_hangs_the_subscriber";
    // Three publishers, three random streams: each subscriber ends in a
    // sticky corruption, having got there only through valid outcomes.
    for round in 0..3 {
        let (child, r) = join_hostile(name, "pub-toggle");
        let mut sub = r.unwrap();
        let mut buf = [0u8; MAX_MSG];
        let started = Instant::now();
        let (mut ok, mut lagged, mut empty, mut corrupted) = (0u64, 0u64, 0u64, None);
        let mut calls = 0u64;
        while started.elapsed() < Duration::from_millis(800) || calls < 100_000 {
            calls += 1;
            let t = Instant::now();
            let r = sub.try_recv(&mut buf);
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "one call took {:?}",
                t.elapsed()
            );
            match r {
                Ok(n) => {
                    assert!(n <= MAX_MSG);
                    ok += 1;
                }
                Err(BroadcastError::Lagged { missed }) => {
                    assert!(missed >= 1);
                    lagged += 1;
                }
                Err(BroadcastError::Empty) => empty += 1,
                Err(BroadcastError::Corrupted(c)) => {
                    // Sticky: the publisher is treated as gone.
                    assert!(corrupted.is_none_or(|p| p == c), "{c} after {corrupted:?}");
                    corrupted = Some(c);
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        eprintln!(
            "round {round}: ok {ok}, lagged {lagged}, empty {empty}, corrupted {corrupted:?}"
        );
        assert!(corrupted.is_some(), "the toggling was never caught");
        kill(child);
    }
}
