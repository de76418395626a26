//! The main demo: two processes stream through a ring, then ping-pong,
//! and the same is measured over a Unix socket for comparison.
//!
//! ```sh
//! cargo run --release --example demo            # 1 GiB
//! cargo run --release --example demo -- 256M    # another amount
//! ```
//!
//! The parent spawns itself as the child and hands it one end of a socket
//! pair; every ring is set up over that socket.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sharedring::{Options, Receiver, Sender};

type BoxError = Box<dyn std::error::Error>;

const ROUND_TRIPS: usize = 50_000;
const SOCKET_CHUNK: usize = 64 * 1024;
/// Elements per send and receive call in the streaming phase (64 KiB).
const BATCH: usize = 8192;

fn parse_bytes(s: &str) -> Result<u64, BoxError> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    Ok((n * mult).max(8) / 8 * 8)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let fd: i32 = args[2].parse()?;
        let bytes: u64 = args[3].parse()?;
        // SAFETY: the parent passed us this descriptor (inherited across
        // exec without close-on-exec) and nothing else in this process
        // owns it.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        pin_to_cpu(1);
        return child(sock, bytes);
    }
    let bytes = match args.get(1) {
        Some(s) => parse_bytes(s)?,
        None => 1 << 30,
    };
    parent(bytes)
}

fn parent(bytes: u64) -> Result<(), BoxError> {
    let (ours, theirs) = UnixStream::pair()?;
    // Let the child inherit its end: clear close-on-exec on it alone.
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--child",
            &theirs.as_raw_fd().to_string(),
            &bytes.to_string(),
        ])
        .spawn()?;
    drop(theirs);
    let pinned = pin_to_cpu(0);

    // Three rings over the one socket: a stream, and a ping and a pong.
    let mut rx = Receiver::<u64>::create(ours.try_clone()?, 1 << 17)?;
    let ping_opts = Options::new().capacity_elements(64);
    let mut ping = Sender::<u64>::create_with(ours.try_clone()?, &ping_opts)?;
    let mut pong = Receiver::<u64>::create_with(ours.try_clone()?, &ping_opts)?;

    println!(
        "sharedring demo: two processes{}, {} of u64",
        if pinned { " on CPUs 0 and 1" } else { "" },
        human(bytes)
    );

    // 1. Streaming through the ring: the child copies batches in, we copy
    //    them out into a private buffer and checksum them.
    let n = bytes / 8;
    let start = Instant::now();
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut batch = vec![0u64; BATCH];
    while got < n {
        let k = rx.recv(&mut batch, None)?;
        for v in &batch[..k] {
            sum = sum.wrapping_add(*v);
        }
        got += k as u64;
    }
    let ring_secs = start.elapsed().as_secs_f64();
    let expected = (n as u128 * (n as u128).saturating_sub(1) / 2) as u64;
    if sum != expected {
        return Err(format!("checksum mismatch: {sum:#x} != {expected:#x}").into());
    }
    let ring_gibs = bytes as f64 / ring_secs / (1u64 << 30) as f64;

    // 2. Ring round trips: default blocking calls (spin, then park).
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    let mut one = [0u64; 1];
    for i in 0..ROUND_TRIPS as u64 {
        let t = Instant::now();
        ping.send(&[i], None)?;
        pong.recv(&mut one, None)?;
        rtts.push(t.elapsed());
        if one[0] != i {
            return Err("pong out of order".into());
        }
    }
    let (ring_med, ring_p99) = percentiles(&mut rtts);

    // 3. The same stream over the Unix socket.
    let mut sock = ours;
    let start = Instant::now();
    let mut left = bytes;
    let mut buf = vec![0u8; SOCKET_CHUNK];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got = sock.read(&mut buf[..want])?;
        if got == 0 {
            return Err("child closed the socket early".into());
        }
        left -= got as u64;
    }
    let sock_gibs = bytes as f64 / start.elapsed().as_secs_f64() / (1u64 << 30) as f64;

    // 4. Socket round trips.
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    let mut word = [0u8; 8];
    for i in 0..ROUND_TRIPS as u64 {
        let t = Instant::now();
        sock.write_all(&i.to_ne_bytes())?;
        sock.read_exact(&mut word)?;
        rtts.push(t.elapsed());
    }
    let (sock_med, sock_p99) = percentiles(&mut rtts);

    drop((rx, ping, pong, sock));
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }

    println!();
    println!(
        "| {:<22} | {:>12} | {:>12} | {:>8} |",
        "", "sharedring", "Unix socket", "ratio"
    );
    println!("|{:-<24}|{:->14}|{:->14}|{:->10}|", "", "", "", "");
    println!(
        "| {:<22} | {:>8.2} GiB/s | {:>6.2} GiB/s | {:>7.1}x |",
        "throughput",
        ring_gibs,
        sock_gibs,
        ring_gibs / sock_gibs
    );
    println!(
        "| {:<22} | {:>12} | {:>12} | {:>7.1}x |",
        "round trip, median",
        fmt_dur(ring_med),
        fmt_dur(sock_med),
        sock_med.as_secs_f64() / ring_med.as_secs_f64()
    );
    println!(
        "| {:<22} | {:>12} | {:>12} | {:>7.1}x |",
        "round trip, p99",
        fmt_dur(ring_p99),
        fmt_dur(sock_p99),
        sock_p99.as_secs_f64() / ring_p99.as_secs_f64()
    );
    println!();
    println!("checksum of {n} values verified; {ROUND_TRIPS} round trips of 8 bytes each way.");
    Ok(())
}

fn child(sock: UnixStream, bytes: u64) -> Result<(), BoxError> {
    let mut tx = Sender::<u64>::accept(sock.try_clone()?)?;
    let mut ping = Receiver::<u64>::accept(sock.try_clone()?)?;
    let mut pong = Sender::<u64>::accept(sock.try_clone()?)?;

    // 1. Stream 0..n in batches.
    let n = bytes / 8;
    let mut batch = vec![0u64; BATCH];
    let mut next = 0u64;
    while next < n {
        let k = (n - next).min(BATCH as u64) as usize;
        for (i, v) in batch[..k].iter_mut().enumerate() {
            *v = next + i as u64;
        }
        tx.send(&batch[..k], None)?;
        next += k as u64;
    }

    // 2. Answer every ping.
    let mut one = [0u64; 1];
    for _ in 0..ROUND_TRIPS {
        ping.recv(&mut one, None)?;
        pong.send(&one, None)?;
    }

    // 3. The same bytes over the socket.
    let mut sock = sock;
    let buf = vec![0xA5u8; SOCKET_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        sock.write_all(&buf[..want])?;
        left -= want as u64;
    }

    // 4. Echo 8-byte words.
    let mut word = [0u8; 8];
    for _ in 0..ROUND_TRIPS {
        sock.read_exact(&mut word)?;
        sock.write_all(&word)?;
    }
    Ok(())
}

/// Pins this process to one CPU, if the machine has two or more. Without
/// pinning, the scheduler sometimes puts both processes on one CPU, where
/// spinning cannot help and every figure changes: the demo measures the
/// two-core case, side by side for the ring and the socket.
fn pin_to_cpu(cpu: usize) -> bool {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return false;
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else {
        format!("{:.1} µs", ns as f64 / 1000.0)
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}
