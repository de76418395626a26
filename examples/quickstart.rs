//! The README's quick start: two processes, one ring of `u64`.
//!
//! Process A binds a socket, starts process B (a second copy of this
//! program, told where the socket is), checks who connected, and streams
//! numbers to it; B connects, accepts the ring, and adds up what arrives
//! until A closes the stream. `cargo run --example quickstart`; `cargo test` runs it
//! too.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sharedring::{Error, Listener, Receiver, Sender};

/// Set in process B's environment: the path of A's socket.
const SOCKET_VAR: &str = "QUICKSTART_SOCKET";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var_os(SOCKET_VAR) {
        None => process_a(),
        Some(path) => process_b(path.into()),
    }
}

/// Process A: listens, starts B, and streams 1, 2, ..., 1 000 000 to it.
fn process_a() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("quickstart-{}.sock", std::process::id()));
    let listener = Listener::bind(&path)?; // mode 0600, removed on drop
    let b = Command::new(std::env::current_exe()?)
        .env(SOCKET_VAR, &path)
        .stdout(Stdio::piped())
        .spawn()?;

    let (stream, peer) = listener.accept()?;
    if peer.pid != Some(b.id() as i32) {
        // Refuse a stranger before any ring exists.
        return Err(format!("unexpected peer {peer:?}").into());
    }
    let mut tx = Sender::<u64>::create(stream, 4096)?; // capacity in elements
    let data: Vec<u64> = (1..=1_000_000).collect();
    tx.send(&data, None)?; // blocks only while the ring is full
    drop(tx); // the end: B drains the ring, then sees Closed

    let sum: u64 = data.iter().sum();
    let expected = format!("B: {} values, sum {sum}\n", data.len());
    let out = b.wait_with_output()?;
    let report = String::from_utf8(out.stdout)?;
    print!("{report}");
    if !out.status.success() || report != expected {
        return Err(format!("B ({}) did not print {expected:?}", out.status).into());
    }
    println!("A: B received everything");
    Ok(())
}

/// Process B: connects to A's socket, accepts the ring, and sums what
/// arrives until A closes the stream.
fn process_b(path: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let stream = UnixStream::connect(path)?;
    let mut rx = Receiver::<u64>::accept(stream)?; // validates all that A sent
    let mut buf = [0u64; 1024];
    let (mut count, mut sum) = (0, 0u64);
    loop {
        match rx.recv(&mut buf, None) {
            Ok(n) => {
                count += n;
                sum += buf[..n].iter().sum::<u64>();
            }
            Err(Error::Closed) => break, // after everything A sent
            Err(e) => return Err(e.into()),
        }
    }
    println!("B: {count} values, sum {sum}");
    Ok(())
}
