//! The `server` example on tokio instead of a `WaitSet`: one task per
//! client on a single-threaded runtime, the async ring ends, and the same
//! behaviour (credentials checked, finished told from killed, accept backed
//! off when out of descriptors, a greeting deadline, Ctrl+C removes the
//! socket, a summary). Use it with the same `client` example:
//!
//! ```sh
//! cargo run --release -p sharedring-examples --features tokio --example server_tokio -- /tmp/sharedring.sock &
//! cargo run --release --example client -- /tmp/sharedring.sock 1000000
//! cargo run --release --example client -- /tmp/sharedring.sock 10000 --messages 4096
//! ```
//!
//! With `--once`, the server stops after its first client.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sharedring::{AcceptError, Error, Listener, MsgReceiver, Options, Receiver};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;

const GREETING_TIMEOUT: Duration = Duration::from_secs(5);

/// `AsyncFd` wants `AsRawFd`; the listener offers `AsFd`.
struct Fd(Listener);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[derive(Default)]
struct Summary {
    finished: u64,
    killed: u64,
    refused: u64,
    failed: u64,
    backoffs: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/sharedring.sock".into()));
    let once = args.any(|a| a == "--once");
    raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let summary = Rc::new(RefCell::new(Summary::default()));
    let listener = Listener::bind(&path)?;
    listener.set_nonblocking(true)?;
    println!(
        "server_tokio: listening on {} (mode 0600, one thread); Ctrl+C to stop",
        path.display()
    );
    let listener = local.block_on(&runtime, {
        let summary = summary.clone();
        async move { serve(listener, once, summary).await }
    })?;
    drop(listener); // removes the socket file and its lock
    let s = summary.borrow();
    println!(
        "server_tokio: {} finished, {} killed or crashed, {} refused, {} failed before streaming; \
         {} accept back-offs",
        s.finished, s.killed, s.refused, s.failed, s.backoffs
    );
    Ok(())
}

async fn serve(
    listener: Listener,
    once: bool,
    summary: Rc<RefCell<Summary>>,
) -> std::io::Result<Listener> {
    // SAFETY: the `AsyncFd` owns the listener for its whole life (until
    // `into_inner`), and `Fd::as_raw_fd` always returns its one descriptor.
    let listener = unsafe { AsyncFd::register(Fd(listener)) }.map_err(|e| e.into_parts().1)?;
    let me = rustix::process::geteuid().as_raw();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            _ = done_rx.recv(), if once => break,
            guard = listener.readable() => {
                let mut guard = guard?;
                match guard.get_inner().0.accept() {
                    Ok((stream, creds)) => {
                        let pid = creds.pid.unwrap_or(0);
                        if creds.uid != me {
                            println!(
                                "server_tokio: refusing pid {pid}: it runs as uid {}, this server as uid {me}",
                                creds.uid
                            );
                            summary.borrow_mut().refused += 1;
                            continue;
                        }
                        println!("server_tokio: client {pid} connected");
                        let summary = summary.clone();
                        let done = done_tx.clone();
                        tokio::task::spawn_local(async move {
                            client(stream, pid, summary).await;
                            let _ = done.send(());
                        });
                    }
                    Err(AcceptError::WouldBlock) => guard.clear_ready(),
                    Err(AcceptError::Aborted(_)) => {}
                    Err(e) => {
                        // Out of descriptors or memory: back off; the
                        // served clients' tasks go on meanwhile.
                        let Some(wait) = e.retry_after() else {
                            return Err(e.into());
                        };
                        if summary.borrow().backoffs == 0 {
                            println!("server_tokio: {e}");
                        }
                        summary.borrow_mut().backoffs += 1;
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
    println!("server_tokio: stopping");
    Ok(listener.into_inner().0)
}

/// One client: greeting, ring, stream, one line at the end.
async fn client(stream: std::os::unix::net::UnixStream, pid: i32, summary: Rc<RefCell<Summary>>) {
    let since = Instant::now();
    let greeting = async {
        stream.set_nonblocking(true)?;
        let mut s = tokio::net::UnixStream::from_std(stream)?;
        let kind = s.read_u8().await?;
        Ok::<_, std::io::Error>((kind, s.into_std()?))
    };
    let (kind, stream) = match tokio::time::timeout(GREETING_TIMEOUT, greeting).await {
        Ok(Ok(g)) => g,
        _ => {
            println!("server_tokio: client {pid} said nothing in time: dropped");
            summary.borrow_mut().failed += 1;
            return;
        }
    };
    let result = match kind {
        b'e' => values(stream).await,
        b'm' => messages(stream).await,
        _ => {
            println!("server_tokio: client {pid}: bad greeting: dropped");
            summary.borrow_mut().failed += 1;
            return;
        }
    };
    let secs = since.elapsed().as_secs_f64();
    let mut s = summary.borrow_mut();
    match result {
        Ok((what, Error::Closed)) => {
            s.finished += 1;
            println!("server_tokio: client {pid} finished: {what} in {secs:.2} s");
        }
        Ok((what, Error::PeerGone)) => {
            s.killed += 1;
            println!("server_tokio: client {pid} was killed or crashed after {what} ({secs:.2} s)");
        }
        Ok((what, e)) => {
            s.killed += 1;
            println!("server_tokio: client {pid} dropped after {what}: {e}");
        }
        Err(e) => {
            s.failed += 1;
            println!("server_tokio: client {pid}: ring setup failed: {e}");
        }
    }
}

async fn values(stream: std::os::unix::net::UnixStream) -> Result<(String, Error), Error> {
    let opts = Options::new().capacity_elements(1 << 14);
    let mut rx = Receiver::<f64>::create_async(stream, &opts)
        .await?
        .into_async()?;
    let mut buf = vec![0f64; 4096];
    let (mut count, mut sum) = (0u64, 0f64);
    loop {
        // The async ends yield to the scheduler (tokio's budget), so one
        // fast client does not starve the others.
        match rx.recv(&mut buf).await {
            Ok(n) => {
                count += n as u64;
                sum += buf[..n].iter().sum::<f64>();
            }
            Err(e) => return Ok((format!("{count} values, sum = {sum}"), e)),
        }
    }
}

async fn messages(stream: std::os::unix::net::UnixStream) -> Result<(String, Error), Error> {
    let opts = Options::new().capacity_bytes(1 << 18).max_msg(1 << 16);
    let mut rx = MsgReceiver::create_async(stream, &opts)
        .await?
        .into_async()?;
    let mut buf = Vec::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    loop {
        match rx.recv(&mut buf).await {
            Ok(n) => {
                count += 1;
                bytes += n as u64;
            }
            Err(e) => return Ok((format!("{count} messages, {bytes} bytes"), e)),
        }
    }
}

/// Raises the soft descriptor limit to the hard one, and says so.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let show = |l: Option<u64>| l.map_or("unlimited".to_string(), |l| l.to_string());
    let (soft, hard) = (show(lim.current), show(lim.maximum));
    if lim.current == lim.maximum {
        println!("server_tokio: descriptor limit {soft} (the hard limit)");
        return;
    }
    lim.current = lim.maximum;
    match setrlimit(Resource::Nofile, lim) {
        Ok(()) => println!("server_tokio: descriptor limit raised from {soft} to {hard}"),
        Err(e) => println!("server_tokio: descriptor limit {soft} (raising failed: {e})"),
    }
}
