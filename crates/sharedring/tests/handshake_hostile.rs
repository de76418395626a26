//! A hostile peer during the handshake, played by a real second process.
//!
//! The hostile side encodes setup messages by hand from the documented
//! wire format and attaches real descriptors (memfds, eventfds, pipes,
//! sockets). For every case the honest side must return the specific
//! error that names what the peer did, must not crash, and must leave no
//! descriptor behind: `/proc/self/fd` is listed before each case, and
//! once the child has exited and every handle is dropped, no descriptor
//! opened since may be left (`testkit::fds_leaked_since`).
//!
//! Descriptor counts are per process, so the tests of this file never run
//! at the same time: each holds `SERIAL` for its whole length.

mod common;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Heard, SetupFields};
use sharedring::eventfd_notify::{self, NotEventfd};
use sharedring::shmem_seal::{self, NotMemfdReason};
use sharedring::{Error, HandshakeError, Options, Receiver, RefusalReason, Sender};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the others still run, one at a time.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The ring the hostile creators offer: 1024 `u64`s.
const CAP: u64 = 1024;
const REGION: u64 = common::DATA_OFFSET + CAP * 8;

/// How a hostile child reports what it heard back, as its exit code.
const EXIT_NOTHING: i32 = 2;
const EXIT_GARBAGE: i32 = 3;
const EXIT_ACK_BASE: i32 = 10;

fn exit_code(heard: Heard) -> i32 {
    match heard {
        Heard::Nothing => EXIT_NOTHING,
        Heard::Garbage => EXIT_GARBAGE,
        Heard::Ack(s) if s < 50 => EXIT_ACK_BASE + s as i32,
        Heard::Ack(_) => EXIT_GARBAGE,
    }
}

/// What the hostile side must have heard when the honest side is done.
#[derive(Debug, Clone, Copy)]
enum Hear {
    /// The child exits 0 (it did not wait for an answer, or it was the
    /// one expected to answer).
    Nothing,
    /// The socket closed without an answer.
    Silence,
    /// A refusal with this reason's code (or 0: accepted).
    Ack(u32),
}

impl Hear {
    fn exit_code(self) -> i32 {
        match self {
            Hear::Nothing => 0,
            Hear::Silence => EXIT_NOTHING,
            Hear::Ack(s) => EXIT_ACK_BASE + s as i32,
        }
    }
}

// Refusal codes from the protocol (`RefusalReason`).
const MESSAGE: u32 = 1;
const MISMATCH: u32 = 2;
const CAPACITY: u32 = 3;
const DESCRIPTORS: u32 = 4;
const RING: u32 = 5;

/// One hostile behaviour and what the honest side must make of it.
struct Case {
    role: &'static str,
    /// `None`: the honest side must succeed.
    expect: Option<fn(&HandshakeError) -> bool>,
    hear: Hear,
    /// The honest side may also accept (and the peer hear `Ack(0)`): for
    /// a case whose outcome depends on how the kernel splits the stream.
    also_ok: bool,
}

/// Runs `cases` of the test `test`, each against a fresh child, with the
/// honest side `honest`; returns a description of every case that failed.
fn run_cases(
    test: &str,
    cases: &[Case],
    honest: impl Fn(UnixStream) -> Result<(), Error>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let before = testkit::FdSnapshot::now();
        let (mut child, sock) = testkit::spawn_peer(test, case.role).expect("spawn peer");
        let start = Instant::now();
        let result = honest(sock);
        let took = start.elapsed();
        let accepted = case.also_ok && result.is_ok();
        let hear = if accepted { Hear::Ack(0) } else { case.hear };
        let verdict = match (&result, case.expect) {
            (Ok(()), None) => None,
            (Ok(()), Some(_)) if accepted => None,
            (Err(Error::Handshake(e)), Some(check)) if check(e) => None,
            (r, _) => Some(format!("{r:?}")),
        };
        let shown = format!("{result:?}");
        drop(result);
        let status = child.wait().expect("wait for the peer");
        let leaked = testkit::fds_leaked_since(&before);
        let mut problems = Vec::new();
        if let Some(got) = verdict {
            problems.push(format!("unexpected result {got}"));
        }
        if status.code() != Some(hear.exit_code()) {
            problems.push(format!(
                "peer should have heard {hear:?} (exit {}), it exited with {status}",
                hear.exit_code()
            ));
        }
        if !leaked.is_empty() {
            problems.push(format!("descriptors left open: {leaked:?}"));
        }
        // Every case is a few round trips; none may be slow.
        if took > Duration::from_secs(5) {
            problems.push(format!("took {took:?}"));
        }
        if problems.is_empty() {
            println!("{:28} -> {shown}", case.role);
        } else {
            failures.push(format!("{}: {}", case.role, problems.join("; ")));
        }
    }
    failures
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The honest receiver of the creator cases.
fn honest_receiver(sock: UnixStream) -> Result<(), Error> {
    Receiver::<u64>::accept_with(sock, &Options::new()).map(drop)
}

// ---------------------------------------------------------------------
// The hostile child
// ---------------------------------------------------------------------

/// In a re-executed child: play the role and leave.
fn play_if_child() {
    if let Some((role, sock)) = testkit::as_peer() {
        let code = if role == "honest-receiver-with-default-sigpipe" {
            honest_receiver_with_default_sigpipe(sock)
        } else {
            play(&role, &sock)
        };
        std::process::exit(code);
    }
}

/// The honest side as a process whose `SIGPIPE` is at its default
/// (terminate), as in a C program or a Rust one built with
/// `-Zon-broken-pipe=kill`: exits 0 if the handshake fails as it should.
fn honest_receiver_with_default_sigpipe(sock: UnixStream) -> i32 {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restoring the default disposition installs no handler, so
    // there is no handler code whose async-signal safety could matter.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.expect("SIGPIPE to default");
    match Receiver::<u64>::accept(sock) {
        Err(Error::Handshake(HandshakeError::ShortMessage { got: 10 })) => 0,
        other => {
            eprintln!("honest receiver: unexpected {other:?}");
            1
        }
    }
}

/// An honest offer, encoded by hand, with a valid ring header.
fn honest_offer() -> (SetupFields, Vec<OwnedFd>) {
    let memory = common::sealed_memfd(REGION);
    common::write_header(&memory, common::RING_MAGIC, 8, CAP);
    (
        SetupFields::honest_u64_sender(CAP),
        vec![memory, common::eventfd_fd(), common::eventfd_fd()],
    )
}

/// Sends `bytes` with `fds` attached, then reports the answer.
fn offer(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) -> i32 {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    testkit::send_fds(sock, bytes, &borrowed).expect("send the offer");
    exit_code(common::read_ack(sock))
}

fn play(role: &str, sock: &UnixStream) -> i32 {
    let (mut s, mut fds) = honest_offer();
    match role {
        "honest" => {}
        "bad-magic" => s.magic = *b"notshrd!",
        "version-3" => s.version = 3,
        "kind-2" => s.kind = 2,
        "elem-size-4" => s.elem_size = 4,
        "same-role-as-ours" => s.creator = common::ROLE_RECEIVER,
        "role-7" => s.creator = 7,
        "capacity-2^40" => {
            s.capacity = 1 << 40;
            s.region_len = common::DATA_OFFSET + (8 << 40);
        }
        "capacity-u64-max" => {
            s.capacity = u64::MAX;
            s.region_len = u64::MAX;
        }
        "capacity-not-power-of-two" => {
            s.capacity = 1000;
            s.region_len = common::DATA_OFFSET + 8000;
        }
        "capacity-0" => {
            s.capacity = 0;
            s.region_len = common::DATA_OFFSET;
        }
        "region-len-disagrees" => s.region_len = common::DATA_OFFSET + 4096,
        "no-descriptors" => fds.clear(),
        "2-descriptors" => fds.truncate(2),
        "4-descriptors" => fds.push(common::eventfd_fd()),
        "20-descriptors" => fds.extend((0..17).map(|_| common::eventfd_fd())),
        "memfd-is-a-pipe" => fds[0] = common::pipe_fd(),
        "memfd-is-an-eventfd" => fds[0] = common::eventfd_fd(),
        "data-eventfd-is-a-memfd" => fds[1] = common::sealed_memfd(4096),
        "data-eventfd-is-a-pipe" => fds[1] = common::pipe_fd(),
        "room-eventfd-is-a-socket" => fds[2] = common::socket_fd(),
        "room-eventfd-is-a-pipe" => fds[2] = common::pipe_fd(),
        "memfd-4096-bytes" => fds[0] = common::sealed_memfd(4096),
        "memfd-0-bytes" => fds[0] = common::sealed_memfd(0),
        "memfd-unsealable-too-small" => fds[0] = common::memfd(4096, false),
        "memfd-o-path" => {
            // The honest memfd, reopened through /proc as a path-only
            // descriptor: F_GET_SEALS fails with EBADF on it.
            let path = format!("/proc/self/fd/{}", fds[0].as_raw_fd());
            fds[0] = rustix::fs::open(
                &path,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .expect("O_PATH reopen");
        }
        "memfd-write-only" => {
            let path = format!("/proc/self/fd/{}", fds[0].as_raw_fd());
            fds[0] = rustix::fs::open(
                &path,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .expect("O_WRONLY reopen");
        }
        "memfd-sealed-read-only" => {
            let m = common::memfd(REGION, true);
            rustix::fs::fcntl_add_seals(&m, rustix::fs::SealFlags::WRITE).expect("seal");
            fds[0] = m;
        }
        "header-bad-magic" => common::write_header(&fds[0], *b"garbage!", 8, CAP),
        "header-capacity-disagrees" => {
            common::write_header(&fds[0], common::RING_MAGIC, 8, CAP * 2)
        }
        "descriptors-on-second-half" => {
            // The first 32 bytes alone, then (after a pause, so the
            // receiver has most likely read them) the rest with the
            // descriptors: a receiver that reads the tail with `read`
            // never sees them, and the kernel closes them for it. If the
            // receiver was slower than the pause, the kernel hands it
            // both parts and the descriptors in one `recvmsg`, and the
            // offer is whole: both outcomes are correct.
            let bytes = s.encode();
            testkit::send_fds(sock, &bytes[..32], &[]).expect("send");
            std::thread::sleep(Duration::from_millis(100));
            return offer(sock, &bytes[32..], &fds);
        }
        "close-before-sending" => return 0,
        "close-after-10-bytes" => {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
            testkit::send_fds(sock, &s.encode()[..10], &borrowed).expect("send");
            return 0;
        }
        "silent" => {
            common::wait_for_hangup(sock);
            return exit_code(Heard::Nothing);
        }
        // The mirror: we accept what the honest creator offers, badly.
        acceptor => return play_acceptor(acceptor, sock),
    }
    offer(sock, &s.encode(), &fds)
}

fn play_acceptor(role: &str, sock: &UnixStream) -> i32 {
    use std::io::Write;
    if role == "acceptor-closes-at-once" {
        return 0;
    }
    let mut buf = [0u8; common::SETUP_LEN];
    let (n, fds) = testkit::recv_fds(sock, &mut buf, 8).expect("receive the offer");
    assert_eq!((n, fds.len()), (common::SETUP_LEN, 3), "honest offer");
    let mut w = sock;
    match role {
        "acceptor-closes-without-ack" => return 0,
        "acceptor-sends-malformed-ack" => w.write_all(b"HTTP/1.1 200 OK\n").expect("send"),
        "acceptor-sends-half-an-ack" => {
            w.write_all(&common::ack(0)[..8]).expect("send");
            return 0;
        }
        "acceptor-refuses" => w.write_all(&common::ack(CAPACITY)).expect("send"),
        "acceptor-refuses-with-unknown-code" => w.write_all(&common::ack(77)).expect("send"),
        "acceptor-silent" => {}
        other => panic!("unknown role {other}"),
    }
    common::wait_for_hangup(sock);
    0
}

// ---------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------

/// The control case: the hand-encoded honest offer is accepted, so every
/// refusal below is caused by the one thing its case changes.
#[test]
fn hand_encoded_honest_offer_is_accepted_and_acked() {
    play_if_child();
    let _serial = serial();
    assert_no_failures(run_cases(
        "hand_encoded_honest_offer_is_accepted_and_acked",
        &[Case {
            role: "honest",
            expect: None,
            hear: Hear::Ack(0),
            also_ok: false,
        }],
        honest_receiver,
    ));
}

#[test]
fn receiver_refuses_bad_message_fields_with_named_errors() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "bad-magic",
            expect: Some(|e| {
                matches!(e, HandshakeError::BadMagic { found }
                    if *found == u64::from_ne_bytes(*b"notshrd!"))
            }),
            hear: Hear::Ack(MESSAGE),
            also_ok: false,
        },
        Case {
            role: "version-3",
            expect: Some(|e| matches!(e, HandshakeError::UnsupportedVersion { found: 3 })),
            hear: Hear::Ack(MESSAGE),
            also_ok: false,
        },
        Case {
            role: "kind-2",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::WrongKind {
                        found: 2,
                        expected: 1
                    }
                )
            }),
            hear: Hear::Ack(MESSAGE),
            also_ok: false,
        },
        Case {
            role: "elem-size-4",
            expect: Some(|e| {
                // Our u64 against the peer's 4-byte type: both named.
                matches!(e, HandshakeError::TypeMismatch { ours, peer }
                    if ours.starts_with("u64 (8 B") && peer.contains("(4 B"))
            }),
            hear: Hear::Ack(MISMATCH),
            also_ok: false,
        },
        Case {
            role: "same-role-as-ours",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::SameEnd {
                        end: sharedring::End::Receiver
                    }
                )
            }),
            hear: Hear::Ack(MISMATCH),
            also_ok: false,
        },
        Case {
            role: "role-7",
            expect: Some(|e| matches!(e, HandshakeError::RoleMismatch { peer_role: 7 })),
            hear: Hear::Ack(MISMATCH),
            also_ok: false,
        },
        Case {
            role: "region-len-disagrees",
            expect: Some(|e| {
                matches!(e, HandshakeError::RegionLengthMismatch { expected, found }
                    if *expected == REGION && *found == common::DATA_OFFSET + 4096)
            }),
            hear: Hear::Ack(MISMATCH),
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_refuses_bad_message_fields_with_named_errors",
        &cases,
        honest_receiver,
    ));
}

#[test]
fn receiver_refuses_huge_or_malformed_capacities_before_mapping() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "capacity-2^40",
            expect: Some(|e| {
                matches!(e, HandshakeError::BadCapacity { capacity, region_bytes: Some(_), .. }
                    if *capacity == 1 << 40)
            }),
            hear: Hear::Ack(CAPACITY),
            also_ok: false,
        },
        Case {
            role: "capacity-u64-max",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::BadCapacity {
                        capacity: u64::MAX,
                        region_bytes: None,
                        ..
                    }
                )
            }),
            hear: Hear::Ack(CAPACITY),
            also_ok: false,
        },
        Case {
            role: "capacity-not-power-of-two",
            expect: Some(|e| matches!(e, HandshakeError::BadCapacity { capacity: 1000, .. })),
            hear: Hear::Ack(CAPACITY),
            also_ok: false,
        },
        Case {
            role: "capacity-0",
            expect: Some(|e| matches!(e, HandshakeError::BadCapacity { capacity: 0, .. })),
            hear: Hear::Ack(CAPACITY),
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_refuses_huge_or_malformed_capacities_before_mapping",
        &cases,
        honest_receiver,
    ));
}

#[test]
fn receiver_refuses_missing_or_extra_descriptors_and_closes_them_all() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "no-descriptors",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::DescriptorCount {
                        expected: 3,
                        got: 0
                    }
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "2-descriptors",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::DescriptorCount {
                        expected: 3,
                        got: 2
                    }
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "4-descriptors",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::DescriptorCount {
                        expected: 3,
                        got: 4
                    }
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "20-descriptors",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::DescriptorsTruncated
                        | HandshakeError::DescriptorCount { got: 20, .. }
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "descriptors-on-second-half",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::DescriptorCount {
                        expected: 3,
                        got: 0
                    }
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: true,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_refuses_missing_or_extra_descriptors_and_closes_them_all",
        &cases,
        honest_receiver,
    ));
}

fn not_memfd(e: &HandshakeError, want: NotMemfdReason) -> bool {
    matches!(e, HandshakeError::Memory(shmem_seal::Error::NotMemfd { reason, .. }) if *reason == want)
}

fn not_eventfd(e: &HandshakeError, want: NotEventfd) -> bool {
    matches!(e, HandshakeError::Eventfd(eventfd_notify::Error::NotAnEventfd(kind)) if *kind == want)
}

#[test]
fn receiver_names_wrong_kind_descriptors() {
    use rustix::fs::FileType;
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "memfd-is-a-pipe",
            expect: Some(|e| not_memfd(e, NotMemfdReason::NotRegularFile(FileType::Fifo))),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "memfd-is-an-eventfd",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Memory(shmem_seal::Error::NotMemfd { .. })
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "data-eventfd-is-a-memfd",
            expect: Some(|e| not_eventfd(e, NotEventfd::Memfd)),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "data-eventfd-is-a-pipe",
            expect: Some(|e| not_eventfd(e, NotEventfd::Pipe)),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "room-eventfd-is-a-socket",
            expect: Some(|e| not_eventfd(e, NotEventfd::Socket)),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "room-eventfd-is-a-pipe",
            expect: Some(|e| not_eventfd(e, NotEventfd::Pipe)),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_names_wrong_kind_descriptors",
        &cases,
        honest_receiver,
    ));
}

#[test]
fn receiver_refuses_small_or_badly_sealed_memfds_without_sigbus() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "memfd-4096-bytes",
            expect: Some(|e| {
                matches!(e, HandshakeError::Memory(shmem_seal::Error::TooSmall { expected, actual: 4096 })
                    if *expected == REGION)
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "memfd-0-bytes",
            expect: Some(|e| {
                matches!(e, HandshakeError::Memory(shmem_seal::Error::TooSmall { expected, actual: 0 })
                    if *expected == REGION)
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            // Too small, and cannot be sealed against shrinking: refused
            // for the seal, before its size means anything.
            role: "memfd-unsealable-too-small",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Memory(shmem_seal::Error::CannotSeal { .. })
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            // The peer's fault, not a system error.
            role: "memfd-o-path",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Memory(shmem_seal::Error::NotMemfd {
                        reason: NotMemfdReason::PathOnly,
                        ..
                    })
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "memfd-write-only",
            expect: Some(|e| matches!(e, HandshakeError::Memory(shmem_seal::Error::NotReadable))),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "memfd-sealed-read-only",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Memory(shmem_seal::Error::SealedAgainstWriting { .. })
                )
            }),
            hear: Hear::Ack(DESCRIPTORS),
            also_ok: false,
        },
        Case {
            role: "header-bad-magic",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Ring(sharedring::spsc_core::SetupError::BadMagic { .. })
                )
            }),
            hear: Hear::Ack(RING),
            also_ok: false,
        },
        Case {
            role: "header-capacity-disagrees",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Ring(sharedring::spsc_core::SetupError::CapacityMismatch {
                        expected: 1024,
                        found: 2048
                    })
                )
            }),
            hear: Hear::Ack(RING),
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_refuses_small_or_badly_sealed_memfds_without_sigbus",
        &cases,
        honest_receiver,
    ));
}

#[test]
fn receiver_reports_a_creator_that_hangs_up_mid_handshake() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "close-before-sending",
            expect: Some(|e| matches!(e, HandshakeError::ClosedBeforeOffer)),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "close-after-10-bytes",
            expect: Some(|e| matches!(e, HandshakeError::ShortMessage { got: 10 })),
            hear: Hear::Nothing,
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "receiver_reports_a_creator_that_hangs_up_mid_handshake",
        &cases,
        honest_receiver,
    ));
}

/// Runs `f`, asserting it took about the 200 ms handshake timeout: never
/// less (the timeout cannot fire early), and well under 2 s.
fn timed<R>(f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "handshake timeout of 200 ms took {took:?}"
    );
    r
}

#[test]
fn silent_peer_times_the_handshake_out_promptly() {
    play_if_child();
    let _serial = serial();
    let opts = Options::new().handshake_timeout(Some(Duration::from_millis(200)));
    let mut failures = run_cases(
        "silent_peer_times_the_handshake_out_promptly",
        &[Case {
            role: "silent",
            expect: Some(|e| matches!(e, HandshakeError::TimedOut)),
            hear: Hear::Silence,
            also_ok: false,
        }],
        |sock| timed(|| Receiver::<u64>::accept_with(sock, &opts).map(drop)),
    );
    failures.extend(run_cases(
        "silent_peer_times_the_handshake_out_promptly",
        &[Case {
            role: "acceptor-silent",
            expect: Some(|e| matches!(e, HandshakeError::TimedOut)),
            hear: Hear::Nothing,
            also_ok: false,
        }],
        |sock| {
            let opts = opts.clone().capacity_elements(1024);
            timed(|| Sender::<u64>::create_with(sock, &opts).map(drop))
        },
    ));
    assert_no_failures(failures);
}

#[test]
fn creator_reports_an_acceptor_that_misbehaves() {
    play_if_child();
    let _serial = serial();
    let cases = [
        Case {
            role: "acceptor-closes-at-once",
            expect: Some(|e| matches!(e, HandshakeError::PeerClosed)),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "acceptor-closes-without-ack",
            expect: Some(|e| matches!(e, HandshakeError::PeerClosed)),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "acceptor-sends-half-an-ack",
            expect: Some(|e| matches!(e, HandshakeError::PeerClosed)),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "acceptor-sends-malformed-ack",
            expect: Some(|e| matches!(e, HandshakeError::BadAck)),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "acceptor-refuses",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Refused {
                        reason: RefusalReason::Capacity
                    }
                )
            }),
            hear: Hear::Nothing,
            also_ok: false,
        },
        Case {
            role: "acceptor-refuses-with-unknown-code",
            expect: Some(|e| {
                matches!(
                    e,
                    HandshakeError::Refused {
                        reason: RefusalReason::Other(77)
                    }
                )
            }),
            hear: Hear::Nothing,
            also_ok: false,
        },
    ];
    assert_no_failures(run_cases(
        "creator_reports_an_acceptor_that_misbehaves",
        &cases,
        |sock| Sender::<u64>::create(sock, 1024).map(drop),
    ));
}

/// Refusing an offer sends the peer a refusal, best effort. A peer that
/// has already hung up must not turn that write into a `SIGPIPE` that
/// kills a process which left `SIGPIPE` at its default (Rust's runtime
/// ignores it, C programs and `-Zon-broken-pipe=kill` builds do not).
#[test]
fn refusing_a_creator_that_hung_up_raises_no_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    play_if_child();
    let _serial = serial();
    let (mut child, sock) = testkit::spawn_peer(
        "refusing_a_creator_that_hung_up_raises_no_sigpipe",
        "honest-receiver-with-default-sigpipe",
    )
    .expect("spawn the honest side");
    // Ten bytes of a setup message, then hang up: the honest side reads
    // them, hits end of file, refuses with `ShortMessage`, and writes its
    // refusal to a socket whose peer is gone (EPIPE, every time).
    let bytes = SetupFields::honest_u64_sender(CAP).encode();
    testkit::send_fds(&sock, &bytes[..10], &[]).expect("send");
    drop(sock);
    let status = child.wait().expect("wait for the honest side");
    assert_eq!(
        status.signal(),
        None,
        "the honest side was killed by signal {:?}",
        status.signal()
    );
    assert!(status.success(), "the honest side failed: {status}");
}
