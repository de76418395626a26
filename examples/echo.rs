//! Request/response over a duplex pair of message rings: the client sends
//! requests of random sizes, a server process answers each one with the
//! same bytes, and the client checks every answer.
//!
//! ```sh
//! cargo run --release --example echo            # 100000 requests
//! cargo run --release --example echo -- 5000
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sharedring::{Duplex, Error};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--server") {
        let fd: i32 = args[2].parse()?;
        // SAFETY: inherited from the parent, owned by nothing else here.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        return server(sock);
    }
    let requests: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);

    let (ours, theirs) = UnixStream::pair()?;
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--server", &theirs.as_raw_fd().to_string()])
        .spawn()?;
    drop(theirs);

    let mut duplex = Duplex::create(ours, 1 << 20)?;
    let mut state = 0x9e37_79b9_u64;
    let mut request = vec![0u8; 65_536];
    let mut response = Vec::new();
    let mut rtts = Vec::with_capacity(requests);
    let mut bytes = 0u64;
    for k in 0..requests {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Mostly small requests, now and then a big one.
        let len = if state % 16 == 0 {
            (state >> 8) as usize % request.len()
        } else {
            (state >> 8) as usize % 256
        };
        for (i, b) in request[..len].iter_mut().enumerate() {
            *b = (k + i) as u8;
        }
        let start = Instant::now();
        duplex.request(
            &request[..len],
            &mut response,
            Some(Duration::from_secs(10)),
        )?;
        rtts.push(start.elapsed());
        if response != request[..len] {
            return Err(format!("response {k} differs from its request").into());
        }
        bytes += len as u64;
    }
    drop(duplex);
    let status = child.wait()?;
    rtts.sort_unstable();
    println!(
        "echo: {requests} requests ({:.1} MiB) answered and checked; round trip median {:?}, p99 {:?}",
        bytes as f64 / (1 << 20) as f64,
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100]
    );
    if !status.success() {
        return Err(format!("server failed: {status}").into());
    }
    Ok(())
}

fn server(sock: UnixStream) -> Result<(), Box<dyn std::error::Error>> {
    let mut duplex = Duplex::accept(sock)?;
    let mut request = Vec::new();
    loop {
        match duplex.rx.recv(&mut request, None) {
            Ok(_) => duplex.tx.send(&request, None)?,
            // The client closed its end (or is gone): done.
            Err(Error::Closed | Error::PeerGone) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
