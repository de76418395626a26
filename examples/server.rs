//! A server with many clients, without D-Bus: a server listens on a socket path and
//! gives each client its own ring; each client streams `f64` values; the
//! server prints a sum per client and notices a client that exits or is
//! killed.
//!
//! ```sh
//! cargo run --release --example server -- /tmp/sharedring.sock &
//! cargo run --release --example client -- /tmp/sharedring.sock 1000000
//! ```
//!
//! With `--once`, the server stops after its first client (for scripts).

use std::path::PathBuf;

use sharedring::{Error, Listener, Receiver};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/sharedring.sock".into()));
    let once = args.any(|a| a == "--once");
    let listener = Listener::bind(&path)?;
    let me = rustix_uid();
    println!("server: listening on {} (mode 0600)", path.display());
    loop {
        let (stream, creds) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // One client's failed connection (or a descriptor limit)
                // must not take down the clients already served.
                eprintln!("server: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let pid = creds.pid.unwrap_or(0); // 0: not visible in our PID namespace
        if creds.uid != me {
            println!("server: refusing pid {pid} (uid {})", creds.uid);
            continue;
        }
        let handle = std::thread::spawn(move || serve(stream, pid));
        if once {
            handle.join().expect("client thread panicked");
            return Ok(());
        }
    }
}

fn serve(stream: std::os::unix::net::UnixStream, pid: i32) {
    let mut rx = match Receiver::<f64>::create(stream, 1 << 14) {
        Ok(rx) => rx,
        Err(e) => {
            println!("server: client {pid}: setup failed: {e}");
            return;
        }
    };
    let mut buf = vec![0f64; 4096];
    let (mut sum, mut count) = (0f64, 0u64);
    let outcome = loop {
        match rx.recv(&mut buf, None) {
            Ok(n) => {
                sum += buf[..n].iter().sum::<f64>();
                count += n as u64;
            }
            Err(Error::Closed) => break "finished".to_string(),
            Err(Error::PeerGone) => break "vanished (crashed or killed)".to_string(),
            Err(e) => break format!("dropped ({e})"),
        }
    };
    println!("server: client {pid} {outcome} after {count} values, sum = {sum}");
}

fn rustix_uid() -> u32 {
    // The owner of our own process, as the kernel reports it for sockets.
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    sharedring::peer_credentials(&a).expect("SO_PEERCRED").uid
}
