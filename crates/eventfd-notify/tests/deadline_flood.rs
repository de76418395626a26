//! A peer that refills the eventfd faster than we can poll must not keep a
//! wait (or a caller's loop of waits) past its deadline (issue 13, item 7).
//!
//! The flooder is a real second process (this test binary re-executed
//! through `testkit::spawn_peer`), pinned to another CPU than the waiting
//! thread when the machine has two, so that it really writes while we
//! poll. The waiting side loops the way a ring does: wait with the time
//! left until its own deadline, and after each `Woken` wait again. The
//! promise under test: `Woken` only ever comes while time remains, the
//! loop ends with `TimedOut` no earlier than the deadline, and no later
//! than the deadline plus a generous slack (a correctness bound for a
//! loaded machine, not a performance measurement).

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use eventfd_notify::{Waiter, Wake};
use rustix::io::{Errno, ReadWriteFlags};
use rustix::net::RecvFlags;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The deadline of each round of waits.
const DEADLINE: Duration = Duration::from_millis(200);
/// How far past its deadline a round may end before the test calls the
/// deadline broken. Generous on purpose: a loaded machine may not run us
/// for a while, and this bounds correctness, not speed.
const SLACK: Duration = Duration::from_secs(1);
/// Rounds per flooder: the odd ones use `wait_with_liveness`.
const ROUNDS: u32 = 6;

// ---------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------

/// Serialises the tests of this binary: one flooder at a time, and exact
/// descriptor counts.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Says a test could not do all it meant to, on stderr directly (the
/// harness captures `eprintln!` of passing tests; this must not be silent).
fn note(what: &str) {
    let _ = writeln!(std::io::stderr(), "NOTE {what}");
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    let set = sched_getaffinity(None).expect("sched_getaffinity");
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).expect("sched_setaffinity");
}

/// Kills and reaps the flooder if the test ends early (a failed
/// assertion), so that it does not spin on after us.
struct Flooder {
    child: Option<Child>,
    sock: UnixStream,
}

impl Flooder {
    /// Asks the flooder to stop, returns how many times it wrote, and
    /// checks it exited cleanly.
    fn stop(mut self) -> u64 {
        (&self.sock).write_all(b"S").expect("send stop");
        let mut count = [0u8; 8];
        (&self.sock)
            .read_exact(&mut count)
            .expect("the flooder's count");
        let status = self.child.take().unwrap().wait().expect("wait flooder");
        assert!(status.success(), "flooder failed: {status}");
        u64::from_ne_bytes(count)
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the parent said, without blocking: `Some(b'S')` to stop, `Some(0)`
/// when it hung up, `None` when it said nothing yet.
fn parent_says(sock: &UnixStream) -> Option<u8> {
    let mut b = [0u8; 1];
    match rustix::net::recv(sock, &mut b, RecvFlags::DONTWAIT) {
        Ok((0, _)) => Some(0),
        Ok(_) => Some(b[0]),
        Err(_) => None,
    }
}

/// The flooder: `role` is `<kind>:<cpu>` (`-` for no pinning). Writes a
/// first notification, says ready, then floods until told to stop, and
/// reports how many write attempts it made.
fn flood(role: &str, sock: UnixStream) -> ! {
    let (kind, cpu) = role.split_once(':').expect("role kind:cpu");
    if let Ok(cpu) = cpu.parse() {
        pin_to(cpu);
    }
    let mut buf = [0u8; 16];
    let (_, mut fds) = testkit::recv_fds(&sock, &mut buf, 1).expect("recv eventfd");
    let fd: OwnedFd = fds.pop().expect("one eventfd");
    let one = 1u64.to_ne_bytes();
    rustix::io::write(&fd, &one).expect("first write");
    (&sock).write_all(b"R").expect("ready");
    let mut count = 0u64;
    let mut drained = [0u8; 8];
    loop {
        if kind == "drain-refill" {
            // Take back whatever is there (never blocking, whatever
            // O_NONBLOCK says), then make it readable again.
            let _ = rustix::io::preadv2(
                &fd,
                &mut [IoSliceMut::new(&mut drained)],
                u64::MAX,
                ReadWriteFlags::NOWAIT,
            );
        }
        match rustix::io::write(&fd, &one) {
            Ok(_) | Err(Errno::AGAIN) => {}
            Err(e) => panic!("flooder write: {e}"),
        }
        count += 1;
        if count % 1024 == 0 {
            match parent_says(&sock) {
                Some(b'S') => {
                    (&sock).write_all(&count.to_ne_bytes()).expect("count");
                    std::process::exit(0);
                }
                Some(_) => std::process::exit(0),
                None => {}
            }
        }
    }
}

/// One round: waits, with the time left until a deadline `DEADLINE` away,
/// until a wait says `TimedOut`. Returns (calls, woken).
fn round(waiter: &Waiter, liveness: Option<BorrowedFd<'_>>, name: &str) -> (u32, u32) {
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let (mut calls, mut woken) = (0u32, 0u32);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = match liveness {
            Some(sock) => waiter.wait_with_liveness(sock, Some(left)),
            None => waiter.wait(Some(left)),
        };
        calls += 1;
        match r.expect("a flood is not an error") {
            Wake::Woken => {
                // The promise: a call given no time cannot say `Woken`.
                assert!(
                    !left.is_zero(),
                    "{name}: Woken with no time left, after {calls} calls"
                );
                woken += 1;
            }
            Wake::TimedOut => break,
            Wake::PeerGone => panic!("{name}: PeerGone, but the flooder is alive"),
        }
        let spent = start.elapsed();
        assert!(
            spent < DEADLINE + SLACK,
            "{name}: still woken {spent:?} after a {DEADLINE:?} deadline \
             ({calls} calls, {woken} woken): the deadline does not hold"
        );
    }
    let spent = start.elapsed();
    assert!(
        spent >= DEADLINE,
        "{name}: TimedOut after {spent:?}, before the {DEADLINE:?} deadline"
    );
    assert!(
        spent < DEADLINE + SLACK,
        "{name}: {calls} calls with a {DEADLINE:?} deadline took {spent:?}"
    );
    (calls, woken)
}

/// The whole case for one kind of flooder.
fn run(test_name: &str, kind: &str) {
    let _serial = serial();
    let before = testkit::FdSnapshot::now();
    {
        let cpus = allowed_cpus();
        let (waiter_cpu, flooder_cpu) = match cpus[..] {
            [a, b, ..] => (Some(a), Some(b)),
            _ => {
                note(&format!(
                    "{test_name}: only CPU {cpus:?} available, flooder runs unpinned"
                ));
                (None, None)
            }
        };
        let role = format!(
            "{kind}:{}",
            flooder_cpu.map_or_else(|| "-".to_owned(), |c| c.to_string())
        );
        let (child, sock) = testkit::spawn_peer(test_name, &role).expect("spawn flooder");
        let flooder = Flooder {
            child: Some(child),
            sock,
        };
        let waiter = Waiter::new().unwrap();
        testkit::send_fds(&flooder.sock, b"efd", &[waiter.as_fd()]).expect("send eventfd");
        let mut r = [0u8; 1];
        (&flooder.sock).read_exact(&mut r).expect("flooder ready");
        assert_eq!(&r, b"R");

        let results = std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(cpu) = waiter_cpu {
                    pin_to(cpu);
                }
                (0..ROUNDS)
                    .map(|i| {
                        let liveness = (i % 2 == 1).then(|| flooder.sock.as_fd());
                        let name = format!("{kind} round {i}");
                        round(&waiter, liveness, &name)
                    })
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let writes = flooder.stop();
        note(&format!(
            "{test_name}: {writes} flooder writes; (calls, woken) per round: {results:?}"
        ));
        assert!(writes > 0, "the flooder never wrote");
        if kind == "write" {
            // Nothing but us ever reads, and the flooder wrote before the
            // first round: every round starts with a notification pending.
            for (i, (_, woken)) in results.iter().enumerate() {
                assert!(*woken > 0, "round {i}: the flood never woke us");
            }
        }
    }
    let leaked = testkit::fds_leaked_since(&before);
    assert!(leaked.is_empty(), "descriptors leaked: {leaked:?}");
}

// ---------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------

#[test]
fn deadline_holds_while_a_peer_on_another_cpu_writes_as_fast_as_it_can() {
    if let Some((role, sock)) = testkit::as_peer() {
        flood(&role, sock);
    }
    run(
        "deadline_holds_while_a_peer_on_another_cpu_writes_as_fast_as_it_can",
        "write",
    );
}

#[test]
fn deadline_holds_while_a_peer_on_another_cpu_drains_and_refills() {
    if let Some((role, sock)) = testkit::as_peer() {
        flood(&role, sock);
    }
    run(
        "deadline_holds_while_a_peer_on_another_cpu_drains_and_refills",
        "drain-refill",
    );
}
