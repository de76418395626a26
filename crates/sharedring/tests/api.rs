//! The facade's behaviour in one process: full and empty rings, timeouts,
//! peer death in both directions, chunks, `io::Read`/`io::Write`, and an
//! idle blocked receiver that uses no CPU.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sharedring::{channel, channel_with, Error, Options};

#[test]
fn try_send_returns_zero_when_full_and_try_recv_zero_when_empty() {
    let (mut tx, mut rx) = channel::<u32>(4).unwrap();
    let mut buf = [0u32; 8];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 0);
    assert_eq!(tx.try_send(&[1, 2, 3, 4, 5, 6]).unwrap(), 4);
    assert_eq!(tx.try_send(&[7]).unwrap(), 0);
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(buf[..4], [1, 2, 3, 4]);
}

#[test]
fn send_times_out_with_the_count_sent() {
    let (mut tx, _rx) =
        channel_with::<u64>(&Options::new().capacity_elements(8).spin(Duration::ZERO)).unwrap();
    let start = Instant::now();
    let err = tx
        .send(&[0; 20], Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { done: 8 }), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn recv_times_out_on_an_empty_ring() {
    let (_tx, mut rx) = channel::<u8>(16).unwrap();
    let start = Instant::now();
    let err = rx
        .recv(&mut [0; 4], Some(Duration::from_millis(30)))
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { done: 0 }), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn receiver_drains_committed_data_before_peer_gone() {
    let (mut tx, mut rx) = channel::<u16>(64).unwrap();
    tx.send(&[1, 2, 3], None).unwrap();
    {
        let mut chunk = tx.write_chunk(2).unwrap();
        chunk.set(0, 4);
        chunk.set(1, 5);
        chunk.commit_all().unwrap();
    }
    // A crash: the stream is not closed (a drop would close it).
    testkit::crash(tx);
    let mut got = Vec::new();
    let mut buf = [0u16; 2];
    loop {
        match rx.recv(&mut buf, Some(Duration::from_secs(5))) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Error::PeerGone) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
    // And it stays gone.
    assert!(matches!(rx.recv(&mut buf, None), Err(Error::PeerGone)));
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::PeerGone)));
}

#[test]
fn blocked_sender_sees_peer_gone_at_once() {
    let (mut tx, rx) = channel::<u64>(4).unwrap();
    tx.send(&[0; 4], None).unwrap();
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(rx);
    });
    let start = Instant::now();
    let err = tx.send(&[1], Some(Duration::from_secs(10))).unwrap_err();
    assert!(matches!(err, Error::PeerGone), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    dropper.join().unwrap();
    assert!(matches!(tx.try_send(&[1]), Err(Error::PeerGone)));
}

#[test]
fn busy_polling_try_recv_notices_a_dead_peer() {
    let (tx, mut rx) = channel::<u64>(4).unwrap();
    testkit::crash(tx);
    let mut buf = [0u64; 1];
    let mut polls = 0;
    let gone = loop {
        match rx.try_recv(&mut buf) {
            Ok(0) => polls += 1,
            Err(Error::PeerGone) => break true,
            other => panic!("{other:?}"),
        }
        if polls > 100_000 {
            break false;
        }
    };
    assert!(gone, "try_recv never reported PeerGone");
}

#[test]
fn read_chunk_in_place_and_release_wakes_a_waiting_sender() {
    let (mut tx, mut rx) =
        channel_with::<u32>(&Options::new().capacity_elements(4).spin(Duration::ZERO)).unwrap();
    tx.send(&[10, 11, 12, 13], None).unwrap();
    let sender = std::thread::spawn(move || {
        // Blocks until the receiver releases room, then sends.
        tx.send(&[14, 15], Some(Duration::from_secs(10))).unwrap();
        tx
    });
    std::thread::sleep(Duration::from_millis(20));
    let chunk = rx.read_chunk(4).unwrap();
    assert_eq!(chunk.len(), 4);
    let mut out = [0u32; 4];
    assert_eq!(chunk.copy_to_slice(&mut out), 4);
    assert_eq!(out, [10, 11, 12, 13]);
    chunk.release_all().unwrap();
    let _tx = sender.join().unwrap();
    let mut buf = [0u32; 4];
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = rx.recv(&mut buf, Some(Duration::from_secs(10))).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, [14, 15]);
}

#[test]
fn ring_is_a_drop_in_pipe_for_io_copy() {
    let (mut tx, mut rx) = channel::<u8>(256).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let expected = data.clone();
    let writer = std::thread::spawn(move || {
        tx.write_all(&data).unwrap();
        tx.flush().unwrap();
    });
    let mut got = Vec::new();
    rx.read_to_end(&mut got).unwrap(); // EOF once the writer is gone
    writer.join().unwrap();
    assert_eq!(got, expected);
}

#[test]
fn write_to_a_gone_reader_is_broken_pipe() {
    let (mut tx, rx) = channel::<u8>(8).unwrap();
    drop(rx);
    tx.write_all(&[0; 8]).unwrap(); // fits: no syscall, no check
    let err = tx.write_all(&[0; 8]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn idle_blocked_receiver_uses_no_cpu_after_the_spin_budget() {
    let (_tx, mut rx) = channel_with::<u64>(
        &Options::new()
            .capacity_elements(64)
            .spin(Duration::from_micros(50)),
    )
    .unwrap();
    let cpu = thread_cpu();
    let wall = Instant::now();
    let err = rx
        .recv(&mut [0; 1], Some(Duration::from_millis(400)))
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }));
    let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
    // Parked: a handful of syscalls, far from a spinning core. The bound is
    // generous so a loaded machine cannot make it flake; the bench report
    // measures the real figure.
    assert!(
        cpu < wall / 10,
        "blocked recv used {cpu:?} of CPU in {wall:?}"
    );
}

/// An error-chain reporter prints `Display` of each link: no link may
/// repeat the text of the one below it.
#[test]
fn error_chains_print_every_piece_once() {
    let errno = sharedring::eventfd_notify::Error::Syscall {
        op: "poll",
        source: std::io::Error::from_raw_os_error(24),
    };
    let chains: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(Error::Eventfd(errno)),
        Box::new(Error::Handshake(sharedring::HandshakeError::Eventfd(
            sharedring::eventfd_notify::Error::Syscall {
                op: "eventfd",
                source: std::io::Error::from_raw_os_error(24),
            },
        ))),
        Box::new(Error::Handshake(sharedring::HandshakeError::Io(
            std::io::Error::from_raw_os_error(24),
        ))),
    ];
    for top in chains {
        let mut texts = vec![top.to_string()];
        let mut cur = top.source();
        while let Some(e) = cur {
            texts.push(e.to_string());
            cur = e.source();
        }
        for pair in texts.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} repeats its source {:?}",
                pair[0],
                pair[1]
            );
        }
        let all = texts.join(": ");
        assert!(
            all.matches("os error 24").count() + all.matches("Too many open files").count() >= 1,
            "the errno is still reported: {all}"
        );
        assert!(
            all.matches("os error 24").count() <= 1 && all.matches("errno").count() <= 1,
            "printed twice: {all}"
        );
    }
}
