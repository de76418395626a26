//! Wrong usage, tried as a new user would: every mistake gets its own
//! error variant, and its text names the fix.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use sharedring::{
    channel, msg_channel, End, Error, HandshakeError, MsgReceiver, MsgSender, Options, Receiver,
    RefusalReason, Sender,
};

fn both<A: Send + 'static, B>(
    a: impl FnOnce(UnixStream) -> A + Send + 'static,
    b: impl FnOnce(UnixStream) -> B,
) -> (A, B) {
    let (x, y) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || a(x));
    let rb = b(y);
    (t.join().unwrap(), rb)
}

fn text(r: &Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

#[test]
fn both_sides_calling_create_are_told_one_must_accept() {
    let (a, b) = both(
        |s| Sender::<u64>::create(s, 64),
        |s| Receiver::<u64>::create(s, 64),
    );
    for r in [a.map(drop), b.map(drop)] {
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::BothCreated))),
            "{r:?}"
        );
        assert!(text(&r).contains("must call accept"), "{}", text(&r));
    }
}

#[test]
fn both_sides_calling_accept_are_told_one_must_create() {
    let opts = Options::new().handshake_timeout(Some(Duration::from_millis(200)));
    let o2 = opts.clone();
    let (a, b) = both(
        move |s| Sender::<u64>::accept_with(s, &o2),
        |s| Receiver::<u64>::accept_with(s, &opts),
    );
    // One side times out; the other sees it hang up without an offer, or
    // times out too. Both are told what to do.
    for r in [a.map(drop), b.map(drop)] {
        assert!(
            matches!(
                r,
                Err(Error::Handshake(
                    HandshakeError::TimedOut | HandshakeError::ClosedBeforeOffer
                ))
            ),
            "{r:?}"
        );
        assert!(text(&r).contains("must call create"), "{}", text(&r));
    }
}

#[test]
fn two_senders_are_told_which_end_to_take() {
    let (created, accepted) = both(|s| Sender::<u64>::create(s, 64), Sender::<u64>::accept);
    let accepted = accepted.map(drop);
    assert!(
        matches!(
            accepted,
            Err(Error::Handshake(HandshakeError::SameEnd {
                end: End::Sender
            }))
        ),
        "{accepted:?}"
    );
    assert!(text(&accepted).contains("must be the Receiver"));
    let created = created.map(drop);
    assert!(
        matches!(
            created,
            Err(Error::Handshake(HandshakeError::Refused {
                reason: RefusalReason::Mismatch
            }))
        ),
        "{created:?}"
    );
    assert!(text(&created).contains("same end on both sides"));
}

#[test]
fn u64_against_f64_is_refused_naming_both_types() {
    let (created, accepted) = both(|s| Sender::<u64>::create(s, 64), Receiver::<f64>::accept);
    let accepted = accepted.map(drop);
    match &accepted {
        Err(Error::Handshake(HandshakeError::TypeMismatch { ours, peer })) => {
            assert!(ours.starts_with("f64 (8 B"), "{ours}");
            assert!(peer.starts_with("u64 (8 B"), "{peer}");
        }
        other => panic!("{other:?}"),
    }
    assert!(text(&accepted).contains("same element type"));
    assert!(matches!(
        created,
        Err(Error::Handshake(HandshakeError::Refused {
            reason: RefusalReason::Mismatch
        }))
    ));
}

#[test]
fn an_element_end_against_a_message_end_is_refused_by_kind() {
    let (_created, accepted) = both(
        |s| MsgSender::create(s, 4096).map(drop),
        |s| Receiver::<u8>::accept(s).map(drop),
    );
    assert!(
        matches!(
            accepted,
            Err(Error::Handshake(HandshakeError::WrongKind {
                found: 2,
                expected: 1
            }))
        ),
        "{accepted:?}"
    );
    assert!(text(&accepted).contains("use the matching end"));
}

#[test]
fn a_ring_above_our_own_limit_is_refused_before_anything_is_made() {
    let (a, _b) = UnixStream::pair().unwrap();
    let r = Sender::<u64>::create(a, 1 << 40).map(drop);
    match r {
        Err(Error::RingTooLarge { bytes, limit }) => {
            assert_eq!(bytes, 512 + (8u64 << 40));
            assert_eq!(limit, sharedring::DEFAULT_MAX_REGION as u64);
        }
        ref other => panic!("{other:?}"),
    }
    assert!(text(&r).contains("max_region"));
}

#[test]
fn the_creator_learns_why_a_capacity_was_refused() {
    let (created, accepted) = both(
        |s| Sender::<u64>::create(s, 1 << 16).map(drop),
        |s| Receiver::<u64>::accept_with(s, &Options::new().max_region(1 << 12)).map(drop),
    );
    match &accepted {
        Err(Error::Handshake(HandshakeError::BadCapacity {
            capacity, limit, ..
        })) => {
            assert_eq!((*capacity, *limit), (1 << 16, 1 << 12));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        created,
        Err(Error::Handshake(HandshakeError::Refused {
            reason: RefusalReason::Capacity
        }))
    ));
    assert!(text(&created).contains("Options::max_region"));
}

#[test]
fn a_one_gib_ring_fits_the_default_one_gib_limit() {
    // 2^27 u64 = 1 GiB of data; the 512-byte header comes on top.
    let (created, accepted) = both(
        |s| Sender::<u64>::create(s, 1 << 27).map(|tx| tx.capacity_elements()),
        |s| Receiver::<u64>::accept(s).map(|rx| rx.capacity_elements()),
    );
    assert_eq!(created.unwrap(), 1 << 27);
    assert_eq!(accepted.unwrap(), 1 << 27);
}

#[test]
fn a_capacity_in_the_wrong_unit_is_named() {
    let r = msg_channel(&Options::new().capacity_elements(64)).map(drop);
    assert!(matches!(
        r,
        Err(Error::CapacityUnit {
            given: "elements",
            ring: "message"
        })
    ));
    assert!(text(&r).contains("Options::capacity_bytes"));
    let r = sharedring::channel_with::<u64>(&Options::new().capacity_bytes(64)).map(drop);
    assert!(matches!(r, Err(Error::CapacityUnit { .. })));
    assert!(text(&r).contains("Options::capacity_elements"));
}

/// Every non-blocking receive of every kind reports `PeerGone` once the
/// peer crashed and the ring drained (within the idle checks' period),
/// and `Closed` once the sender was dropped and the ring drained.
#[test]
fn every_non_blocking_receive_reports_the_end_or_peer_gone_after_the_drain() {
    for crashed in [true, false] {
        let until_gone = |mut f: Box<dyn FnMut() -> Result<usize, Error> + '_>, what: &str| {
            for _ in 0..10_000 {
                match f() {
                    Err(Error::PeerGone) if crashed => return,
                    Err(Error::Closed) if !crashed => return,
                    Err(e) => panic!("{what}: {e:?}"),
                    Ok(_) => {}
                }
            }
            panic!("{what} never reported the end (crashed: {crashed})");
        };
        fn finish<T: Send + 'static>(tx: T, crashed: bool) {
            if crashed {
                testkit::crash(tx);
            } else {
                drop(tx);
            }
        }
        let (tx, mut rx) = channel::<u64>(64).unwrap();
        finish(tx, crashed);
        until_gone(
            Box::new(|| rx.try_recv(&mut [0u64; 4]).map(|_| 0)),
            "Receiver::try_recv",
        );

        let opts = Options::new().capacity_bytes(4096);
        let mut buf = [0u8; 64];
        let (mut tx, mut rx) = msg_channel(&opts).unwrap();
        tx.send(b"committed", None).unwrap();
        finish(tx, crashed);
        assert_eq!(rx.try_recv_into(&mut buf).unwrap(), Some(9));
        until_gone(
            Box::new(|| rx.try_recv_into(&mut buf).map(|_| 0)),
            "MsgReceiver::try_recv_into",
        );

        let (tx, mut rx) = msg_channel(&opts).unwrap();
        finish(tx, crashed);
        until_gone(
            Box::new(|| rx.try_recv(&mut Vec::new()).map(|_| 0)),
            "MsgReceiver::try_recv",
        );

        let (tx, mut rx): (MsgSender, MsgReceiver) = msg_channel(&opts).unwrap();
        finish(tx, crashed);
        until_gone(
            Box::new(|| rx.try_recv_with(|r| r.len()).map(|_| 0)),
            "MsgReceiver::try_recv_with",
        );

        let (mut tx, mut rx) = msg_channel(&opts).unwrap();
        tx.send(b"a", None).unwrap();
        tx.send(b"b", None).unwrap();
        finish(tx, crashed);
        assert_eq!(rx.try_recv_many(8, |_| ()).unwrap(), 2);
        until_gone(
            Box::new(|| rx.try_recv_many(8, |_| ()).map(|_| 0)),
            "MsgReceiver::try_recv_many",
        );
        let end = rx.recv_many(8, Some(Duration::from_secs(5)), |_| ());
        if crashed {
            assert!(matches!(end, Err(Error::PeerGone)), "{end:?}");
        } else {
            assert!(matches!(end, Err(Error::Closed)), "{end:?}");
        }
    }
}

/// Running out of descriptors gives one variant and one message, wherever
/// it strikes: played in a child whose descriptor limit is tiny.
#[test]
fn running_out_of_descriptors_is_one_error_that_names_the_limit() {
    if std::env::var_os("SR_FD_LIMIT_CHILD").is_some() {
        let limit = rustix::process::Rlimit {
            current: Some(48),
            maximum: Some(48),
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
        let mut kept = Vec::new();
        let mut seen = Vec::new();
        // Each kind of set-up, until each has failed once.
        for round in 0..200 {
            let r = match round % 3 {
                0 => channel::<u64>(64).map(|p| kept.push(Box::new(p) as Box<dyn std::any::Any>)),
                1 => msg_channel(&Options::new().capacity_bytes(4096))
                    .map(|p| kept.push(Box::new(p) as Box<dyn std::any::Any>)),
                _ => {
                    let (x, y) = match UnixStream::pair() {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    let t = std::thread::spawn(move || Receiver::<u64>::accept(x));
                    let r = Sender::<u64>::create(y, 64);
                    let _ = t.join();
                    r.map(|p| kept.push(Box::new(p) as Box<dyn std::any::Any>))
                }
            };
            if let Err(e) = r {
                seen.push(e);
                if seen.len() >= 6 {
                    break;
                }
            }
        }
        let mut code = 0;
        for e in &seen {
            let ok = matches!(e, Error::OutOfDescriptors { limit: Some(48) })
                && e.to_string().contains("ulimit -n");
            if !ok {
                eprintln!("not the one error: {e:?} / {e}");
                code = 1;
            }
        }
        if seen.is_empty() {
            eprintln!("never ran out");
            code = 2;
        }
        std::process::exit(code);
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "running_out_of_descriptors_is_one_error_that_names_the_limit",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SR_FD_LIMIT_CHILD", "1")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}
