//! Two real processes (this test binary re-executed as the peer), a real
//! memfd, real eventfds and a real Unix socket.
//!
//! - 1 GiB of `u64` in random chunk sizes with random stalls on both sides,
//!   every value checked in order, once with each side as the creator.
//! - The peer is killed with SIGKILL mid-stream: the receiver gets every
//!   committed element, then `PeerGone`, within 1 s; a blocked sender gets
//!   `PeerGone` within 1 s.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use sharedring::{Error, Options, Receiver, Sender};

const TOTAL: u64 = (1 << 30) / 8;

/// Element `i` of every stream.
fn value(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7)
}

/// xorshift64: random sizes and stalls, reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Sends `value(0..total)` (forever if `total` is `None`) in random chunk
/// sizes through every sending API, with random stalls.
fn stream_out(tx: &mut Sender<u64>, total: Option<u64>, seed: u64) -> Result<(), Error> {
    let mut rng = Rng(seed);
    let mut batch = vec![0u64; 8192];
    let mut next = 0u64;
    while total.is_none_or(|t| next < t) {
        let r = rng.next();
        let want = (r % 8192 + 1).min(total.map_or(u64::MAX, |t| t - next)) as usize;
        for (k, v) in batch[..want].iter_mut().enumerate() {
            *v = value(next + k as u64);
        }
        match r % 3 {
            0 => tx.send(&batch[..want], None)?,
            1 => {
                let mut sent = 0;
                while sent < want {
                    sent += tx.try_send(&batch[sent..want])?;
                    if sent < want {
                        tx.wait_writable(want - sent, None)?;
                    }
                }
            }
            _ => {
                let mut sent = 0;
                while sent < want {
                    tx.wait_writable(1, None)?;
                    let mut chunk = tx.write_chunk(want - sent)?;
                    let n = chunk.copy_from_slice(&batch[sent..want]);
                    chunk.commit_all()?;
                    sent += n;
                }
            }
        }
        next += want as u64;
        if r % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

/// Receives until `PeerGone`, checking every value, with random chunk
/// sizes and stalls; returns how many arrived.
fn stream_in(rx: &mut Receiver<u64>, seed: u64) -> u64 {
    let mut rng = Rng(seed);
    let mut buf = vec![0u64; 8192];
    let mut next = 0u64;
    loop {
        let r = rng.next();
        let want = (r % 8192 + 1) as usize;
        let got = if r % 2 == 0 {
            match rx.recv(&mut buf[..want], Some(Duration::from_secs(30))) {
                Ok(n) => n,
                Err(Error::PeerGone) => return next,
                Err(e) => panic!("recv: {e}"),
            }
        } else {
            match rx.wait_readable(Some(Duration::from_secs(30))) {
                Ok(()) => {}
                Err(Error::PeerGone) => return next,
                Err(e) => panic!("wait_readable: {e}"),
            }
            let chunk = rx.read_chunk(want).unwrap();
            let n = chunk.copy_to_slice(&mut buf);
            chunk.release_all().unwrap();
            n
        };
        for &v in &buf[..got] {
            assert_eq!(v, value(next), "element {next} wrong");
            next += 1;
        }
        if r % 1000 == 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn opts() -> Options {
    // 64 Ki elements (512 KiB): small enough that both sides wrap often.
    Options::new().capacity_elements(1 << 16)
}

fn as_peer() -> Option<(String, UnixStream)> {
    testkit::as_peer()
}

#[test]
fn one_gib_streams_intact_when_the_receiver_creates() {
    if let Some((role, sock)) = as_peer() {
        assert_eq!(role, "sender-accepts");
        let mut tx = Sender::<u64>::accept(sock).unwrap();
        stream_out(&mut tx, Some(TOTAL), 1).unwrap();
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "one_gib_streams_intact_when_the_receiver_creates",
        "sender-accepts",
    )
    .unwrap();
    let mut rx = Receiver::<u64>::create_with(sock, &opts()).unwrap();
    assert_eq!(stream_in(&mut rx, 2), TOTAL);
    assert!(child.wait().unwrap().success());
}

#[test]
fn one_gib_streams_intact_when_the_sender_creates() {
    if let Some((role, sock)) = as_peer() {
        assert_eq!(role, "sender-creates");
        let mut tx = Sender::<u64>::create_with(sock, &opts()).unwrap();
        stream_out(&mut tx, Some(TOTAL), 3).unwrap();
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "one_gib_streams_intact_when_the_sender_creates",
        "sender-creates",
    )
    .unwrap();
    let mut rx = Receiver::<u64>::accept(sock).unwrap();
    assert_eq!(stream_in(&mut rx, 4), TOTAL);
    assert!(child.wait().unwrap().success());
}

#[test]
fn killed_sender_leaves_all_committed_data_then_peer_gone() {
    if let Some((_, sock)) = as_peer() {
        let mut tx = Sender::<u64>::accept(sock).unwrap();
        // Streams until killed.
        let _ = stream_out(&mut tx, None, 5);
        std::process::exit(0);
    }
    let (mut child, sock) = testkit::spawn_peer(
        "killed_sender_leaves_all_committed_data_then_peer_gone",
        "sender",
    )
    .unwrap();
    let mut rx = Receiver::<u64>::create_with(sock, &opts()).unwrap();
    let mut buf = vec![0u64; 4096];
    let mut next = 0u64;
    while next < 4_000_000 {
        let n = rx.recv(&mut buf, Some(Duration::from_secs(30))).unwrap();
        for &v in &buf[..n] {
            assert_eq!(v, value(next));
            next += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    loop {
        match rx.recv(&mut buf, Some(Duration::from_secs(5))) {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, value(next), "element {next} wrong after the kill");
                    next += 1;
                }
            }
            Err(Error::PeerGone) => break,
            Err(e) => panic!("expected PeerGone, got {e}"),
        }
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(1), "PeerGone took {took:?}");
    // Everything the peer published was delivered: the ring is empty.
    assert_eq!(rx.consumer_without_wake().slots().unwrap(), 0);
    let status = child.wait().unwrap();
    assert!(!status.success(), "the peer was killed, not finished");
}

#[test]
fn blocked_sender_gets_peer_gone_when_the_receiver_is_killed() {
    if let Some((_, sock)) = as_peer() {
        let mut rx = Receiver::<u64>::accept(sock).unwrap();
        let mut buf = [0u64; 1024];
        rx.recv(&mut buf, None).unwrap();
        // Stop reading; wait to be killed.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let (mut child, sock) = testkit::spawn_peer(
        "blocked_sender_gets_peer_gone_when_the_receiver_is_killed",
        "receiver",
    )
    .unwrap();
    let mut tx = Sender::<u64>::create_with(sock, &Options::new().capacity_elements(1024)).unwrap();
    // Fill the ring so the next send blocks.
    tx.send(&[7; 1024], Some(Duration::from_secs(30))).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        child.kill().unwrap();
        (Instant::now(), child)
    });
    let err = tx
        .send(&vec![9u64; 1 << 20], Some(Duration::from_secs(30)))
        .unwrap_err();
    let done = Instant::now();
    let (killed, mut child) = killer.join().unwrap();
    assert!(
        matches!(err, Error::PeerGone),
        "expected PeerGone, got {err}"
    );
    let took = done.saturating_duration_since(killed);
    assert!(
        took < Duration::from_secs(1),
        "PeerGone took {took:?} after the kill"
    );
    let _ = child.wait();
}
