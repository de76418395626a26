//! A hostile peer after setup: a real second process that completes the
//! handshake by hand, maps the ring, and then scribbles over the whole
//! mapping while the honest side keeps using its API.
//!
//! The scribbler first plays a plausible liar for a while (positions that
//! move the right way, garbage data, random wait flags and header
//! fields), so the honest side moves real (garbage) data while it is
//! scribbled; then it writes random bytes anywhere and random words at
//! the control words. The honest side must see only `Ok`, `TimedOut`,
//! `Corrupted` (and from then on only the same `Corrupted`: the peer is
//! treated as gone), or `PeerGone` after the scribbler has exited; never a
//! crash, a hang, or any other error.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use sharedring::shmem_seal::SharedMemory;
use sharedring::spsc_core::Corruption;
use sharedring::{Error, Receiver, Sender, WaitSet};

/// The scribbler's minimum running time, in two phases.
const PLAUSIBLE_FOR: Duration = Duration::from_millis(400);
const SCRIBBLE_FOR: Duration = Duration::from_millis(1000);
/// ... and minimum iterations per phase, so that a descheduled child on a
/// loaded machine still does its work.
const MIN_ROUNDS: u64 = 2000;
/// The honest side must be done long before this: the "no hang" bound.
const HANG_BOUND: Duration = Duration::from_secs(30);

const CAPACITY: usize = 1024;

// ---------------------------------------------------------------------
// The scribbler (child)
// ---------------------------------------------------------------------

fn play_if_child() {
    if let Some((role, sock)) = testkit::as_peer() {
        scribbler(&role, &sock);
        std::process::exit(0);
    }
}

/// A 32-bit wait word of the mapping as an atomic.
fn wait_word(shm: &SharedMemory, offset: usize) -> &AtomicU32 {
    assert!(offset % 4 == 0 && offset + 4 <= shm.len());
    // SAFETY: as in `word`, for a 4-aligned 32-bit word.
    unsafe { AtomicU32::from_ptr(shm.as_ptr().as_ptr().add(offset).cast()) }
}

/// A control word of the mapping as an atomic.
fn word(shm: &SharedMemory, offset: usize) -> &AtomicU64 {
    assert!(offset % 8 == 0 && offset + 8 <= shm.len());
    // SAFETY: the offset is 8-aligned within a page-aligned mapping of
    // `shm.len()` bytes (checked above), which lives as long as the
    // returned reference (tied to `shm`). In this process the word is only
    // ever accessed atomically, or by the volatile byte copies of
    // `write_at`, never through a non-atomic reference; what the other
    // process does to it is outside this process's memory model.
    unsafe { AtomicU64::from_ptr(shm.as_ptr().as_ptr().add(offset).cast()) }
}

/// Random bytes at a random place in `range`.
fn scribble_bytes(shm: &SharedMemory, rng: &mut Rng, range: std::ops::Range<usize>) {
    let mut junk = [0u8; 64];
    for b in junk.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    let len = 1 + rng.below(64) as usize;
    let at = range.start + rng.below((range.end - range.start - len) as u64) as usize;
    shm.write_at(at, &junk[..len]).expect("in bounds");
}

fn scribbler(role: &str, sock: &UnixStream) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    eprintln!("scribbler {role}: seed {seed:#x}");

    // The handshake by hand: take the offer, map it, accept it.
    let mut msg = [0u8; common::SETUP_LEN];
    let (n, mut fds) = testkit::recv_fds(sock, &mut msg, 8).expect("receive the offer");
    assert_eq!((n, fds.len()), (common::SETUP_LEN, 3), "honest offer");
    let capacity = u64::from_ne_bytes(msg[24..32].try_into().unwrap());
    let region_len = u64::from_ne_bytes(msg[32..40].try_into().unwrap()) as usize;
    let shm = SharedMemory::open(fds.remove(0), region_len).expect("map the ring");
    let _eventfds = fds; // Held, never used: we send no wake-ups.
    (&mut &*sock)
        .write_all(&common::ack(0))
        .expect("send the ack");

    let producer = match role {
        "scribble-as-producer" => true,
        "scribble-as-consumer" => false,
        other => panic!("unknown role {other}"),
    };
    let data = common::DATA_OFFSET as usize..region_len;
    let start = Instant::now();

    // Phase 1: a plausible liar. Positions move forward within the rules,
    // so the honest side keeps working while its data, the wait flags and
    // the header fields are scribbled.
    let mut rounds = 0u64;
    let mut own = word(
        &shm,
        if producer {
            common::WRITE_POS
        } else {
            common::READ_POS
        },
    )
    .load(Ordering::Acquire);
    while start.elapsed() < PLAUSIBLE_FOR || rounds < MIN_ROUNDS {
        rounds += 1;
        scribble_bytes(&shm, &mut rng, data.clone());
        let header_field = 8 * rng.below(5) as usize;
        word(&shm, header_field).store(rng.next_u64(), Ordering::Relaxed);
        if producer {
            let read = word(&shm, common::READ_POS).load(Ordering::Acquire);
            let free = capacity - own.wrapping_sub(read);
            if free > 0 {
                own = own.wrapping_add(1 + rng.below(free));
                word(&shm, common::WRITE_POS).store(own, Ordering::Release);
            }
            wait_word(&shm, common::PRODUCER_WAIT).store(rng.next_u64() as u32, Ordering::Relaxed);
        } else {
            let write = word(&shm, common::WRITE_POS).load(Ordering::Acquire);
            let filled = write.wrapping_sub(own);
            if filled > 0 {
                own = own.wrapping_add(1 + rng.below(filled));
                word(&shm, common::READ_POS).store(own, Ordering::Release);
            }
            wait_word(&shm, common::CONSUMER_WAIT).store(rng.next_u64() as u32, Ordering::Relaxed);
        }
        if rounds % 64 == 0 {
            std::thread::yield_now();
        }
    }

    // Phase 2: anything anywhere.
    let control = [
        common::WRITE_POS,
        common::READ_POS,
        // Both wait words at once.
        common::CONSUMER_WAIT,
        0,
        8,
        16,
        24,
        32,
    ];
    let mut rounds = 0u64;
    while start.elapsed() < SCRIBBLE_FOR || rounds < MIN_ROUNDS {
        rounds += 1;
        scribble_bytes(&shm, &mut rng, 0..region_len);
        let at = control[rng.below(control.len() as u64) as usize];
        word(&shm, at).store(rng.next_u64(), Ordering::Relaxed);
        if rounds % 64 == 0 {
            std::thread::yield_now();
        }
    }
    eprintln!("scribbler {role}: done after {:?}", start.elapsed());
}

// ---------------------------------------------------------------------
// The honest side (parent)
// ---------------------------------------------------------------------

/// What the honest side has seen so far; checks each new result against
/// the rules.
#[derive(Debug, Default)]
struct Seen {
    ok: u64,
    elements: u64,
    timed_out: u64,
    corrupted: Option<Corruption>,
    corrupted_calls: u64,
    gone: bool,
    /// The stream's end as the (scribbled) closed word says: a hostile
    /// producer may fake it (THREAT-MODEL, "End of stream"); it is then
    /// the receiver's end, sticky, instead of `Corrupted`.
    closed: bool,
}

impl Seen {
    fn record(&mut self, op: &str, result: Result<usize, Error>, child_exited: bool) {
        match result {
            Ok(n) | Err(Error::TimedOut { done: n }) => {
                assert!(
                    self.corrupted.is_none() && !self.gone,
                    "{op} returned {result:?} after {:?}",
                    self.end()
                );
                if result.is_ok() {
                    self.ok += 1;
                } else {
                    self.timed_out += 1;
                }
                self.elements += n as u64;
            }
            Err(Error::Corrupted(c)) => {
                assert!(!self.gone, "{op}: Corrupted after PeerGone");
                if let Some(first) = self.corrupted {
                    assert_eq!(c, first, "{op}: a different corruption later");
                }
                self.corrupted = Some(c);
                self.corrupted_calls += 1;
            }
            Err(Error::Closed) => {
                assert!(
                    self.corrupted.is_none() && !self.gone,
                    "{op}: Closed after {:?}",
                    self.end()
                );
                self.closed = true;
            }
            Err(Error::PeerGone) => {
                assert!(self.corrupted.is_none(), "{op}: PeerGone after Corrupted");
                assert!(!self.closed, "{op}: PeerGone after Closed");
                assert!(
                    child_exited,
                    "{op}: PeerGone while the scribbler still runs"
                );
                self.gone = true;
            }
            Err(other) => panic!("{op}: an error the rules do not allow: {other:?}"),
        }
    }

    fn end(&self) -> Option<String> {
        match (self.corrupted, self.closed, self.gone) {
            (Some(c), _, _) => Some(format!("Corrupted({c})")),
            (None, true, _) => Some("Closed".into()),
            (None, false, true) => Some("PeerGone".into()),
            (None, false, false) => None,
        }
    }
}

/// Drives `step` (one API call, chosen by the round number) until the
/// honest side has reached its end state and the scribbler has exited;
/// then makes more calls, which must all repeat that end state.
fn drive(child: &mut Child, mut step: impl FnMut(u64) -> (&'static str, Result<usize, Error>)) {
    let start = Instant::now();
    let mut seen = Seen::default();
    let mut exited = false;
    let mut round = 0u64;
    while !(exited && seen.end().is_some()) {
        assert!(
            start.elapsed() < HANG_BOUND,
            "the honest side did not finish within {HANG_BOUND:?}: {seen:?}"
        );
        // Whether the child had exited *before* this call: a PeerGone is
        // only allowed then.
        exited = exited || child.try_wait().expect("try_wait").is_some();
        let (op, result) = step(round);
        seen.record(op, result, exited);
        round += 1;
    }
    let status = child.wait().expect("wait for the scribbler");
    assert!(status.success(), "the scribbler failed: {status}");
    println!("after {round} calls in {:?}: {seen:?}", start.elapsed());

    assert!(
        seen.corrupted.is_some() || seen.closed,
        "the scribbler never caused a Corrupted (nor scribbled the closed word \
         of an empty ring): {seen:?}"
    );
    assert!(
        seen.ok > 0 && seen.elements > 0,
        "no data moved during the plausible phase: {seen:?}"
    );
    // Sticky: the peer caught cheating is gone for good, on every call
    // (and a stream ended by the closed word stays ended).
    let first = seen.corrupted;
    for round in 0..64 {
        let (op, result) = step(round);
        match result {
            Err(Error::Corrupted(c)) => assert_eq!(Some(c), first, "{op}"),
            Err(Error::Closed) if first.is_none() && seen.closed => {}
            other => panic!("{op} after {:?} returned {other:?}", seen.end()),
        }
    }
}

#[test]
fn receiver_survives_a_scribbling_sender() {
    play_if_child();
    let (mut child, sock) = testkit::spawn_peer(
        "receiver_survives_a_scribbling_sender",
        "scribble-as-producer",
    )
    .expect("spawn the scribbler");
    let mut rx = Receiver::<u64>::create(sock, CAPACITY).expect("handshake");
    let mut buf = vec![0u64; 300];
    let short = Some(Duration::from_millis(5));
    drive(&mut child, |round| match round % 4 {
        0 => ("try_recv", rx.try_recv(&mut buf)),
        1 => ("recv", rx.recv(&mut buf, short)),
        2 => ("wait_readable", rx.wait_readable(short).map(|()| 0)),
        _ => (
            "read_chunk",
            rx.read_chunk(200).and_then(|chunk| {
                let n = chunk.len();
                let mut sink = 0u64;
                for i in 0..n {
                    sink ^= chunk.get(i);
                }
                std::hint::black_box(sink);
                chunk.release_all().map(|()| n)
            }),
        ),
    });
}

#[test]
fn sender_survives_a_scribbling_receiver() {
    play_if_child();
    let (mut child, sock) = testkit::spawn_peer(
        "sender_survives_a_scribbling_receiver",
        "scribble-as-consumer",
    )
    .expect("spawn the scribbler");
    let mut tx = Sender::<u64>::create(sock, CAPACITY).expect("handshake");
    let src: Vec<u64> = (0..300).collect();
    let short = Some(Duration::from_millis(5));
    drive(&mut child, |round| match round % 4 {
        0 => ("try_send", tx.try_send(&src)),
        1 => ("send", tx.send(&src, short).map(|()| src.len())),
        2 => ("wait_writable", tx.wait_writable(64, short).map(|()| 0)),
        _ => (
            "write_chunk",
            tx.write_chunk(200).and_then(|mut chunk| {
                let n = chunk.len();
                for i in 0..n {
                    chunk.set(i, i as u64);
                }
                chunk.commit_all().map(|()| n)
            }),
        ),
    });
}

/// The receiving end held in a `WaitSet`, the way a one-thread server
/// holds it, against the same scribbling sender: the set's wait never
/// fails or hangs for the peer's doing, the end follows the same rules as
/// above, and the set reports the cheating (or exited) peer as gone.
#[test]
fn a_waitset_survives_a_scribbling_sender_and_reports_it_gone() {
    play_if_child();
    let (mut child, sock) = testkit::spawn_peer(
        "a_waitset_survives_a_scribbling_sender_and_reports_it_gone",
        "scribble-as-producer",
    )
    .expect("spawn the scribbler");
    let rx = Receiver::<u64>::create(sock, CAPACITY).expect("handshake");
    let mut set = WaitSet::new().expect("an epoll set");
    set.insert(1, rx).expect("register the end");
    let mut events = Vec::new();
    let mut buf = vec![0u64; 300];
    let mut reported_end = false;
    let short = Some(Duration::from_millis(5));
    drive(&mut child, |_| {
        set.wait(&mut events, short)
            .expect("a peer never makes the wait fail");
        for ev in &events {
            assert_eq!(ev.token(), 1);
            assert!(ev.error().is_none(), "{:?}", ev.error());
            reported_end |= ev.is_gone() || ev.is_closed();
        }
        let rx = set
            .get_mut::<Receiver<u64>>(1)
            .expect("the end stays in the set");
        ("WaitSet::wait + try_recv", rx.try_recv(&mut buf))
    });
    // One more wait: an end that is gone is reported, once.
    set.wait(&mut events, short).expect("wait");
    reported_end |= events.iter().any(|ev| ev.is_gone() || ev.is_closed());
    assert!(
        reported_end,
        "the set never reported the cheating (or exited) peer"
    );
}
