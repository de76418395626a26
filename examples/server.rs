//! A server with many clients on one thread, without D-Bus: it listens on
//! a socket path and gives each client its own ring, all driven by one
//! [`WaitSet`] (epoll): the listener, every pending handshake, every
//! ring, and Ctrl+C. A client says what it streams with one byte before
//! the handshake: `e` for `f64` values (an element ring), `m` for byte
//! messages (a message ring).
//!
//! ```sh
//! cargo run --release --example server -- /tmp/sharedring.sock &
//! cargo run --release --example client -- /tmp/sharedring.sock 1000000
//! cargo run --release --example client -- /tmp/sharedring.sock 10000 --messages 4096
//! ```
//!
//! What it shows:
//! - it raises its soft descriptor limit to the hard one at start (a ring
//!   costs the server a few descriptors, see ARCHITECTURE.md) and says so;
//! - it checks each client's credentials (`SO_PEERCRED`): a client of
//!   another user is refused before any ring exists;
//! - a client that closed its stream ("finished") is told apart from one
//!   that was killed or crashed ("killed");
//! - running out of descriptors pauses `accept` for a few milliseconds and
//!   drops at most the one client whose ring could not be made: the
//!   clients already served never notice;
//! - a client that connects and says nothing is dropped after a deadline,
//!   and a stalled handshake costs no thread;
//! - Ctrl+C (or SIGTERM) ends it cleanly: the socket file is removed, and
//!   it prints a summary.
//!
//! With `--once`, the server stops after its first client (for scripts).

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use sharedring::{
    AcceptError, Error, Handshake, Listener, MsgReceiver, Options, Receiver, WaitSet,
    ACCEPT_BACKOFF,
};

const LISTENER: u64 = 0;
const STOP: u64 = 1;
/// How long a client may take to say what it streams.
const GREETING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client stands.
enum State {
    /// Connected; its one-byte greeting is due by the deadline.
    Greeting(UnixStream),
    /// The ring handshake runs inside the WaitSet.
    Handshaking,
    /// Streaming into a ring: `f64` values summed, or messages counted.
    Values {
        count: u64,
        sum: f64,
    },
    Messages {
        count: u64,
        bytes: u64,
    },
}

struct Client {
    pid: i32,
    since: Instant,
    state: State,
}

#[derive(Default)]
struct Summary {
    finished: u64,
    killed: u64,
    refused: u64,
    failed: u64,
    peak: usize,
    backoffs: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/sharedring.sock".into()));
    let once = args.any(|a| a == "--once");

    raise_descriptor_limit();
    // Ctrl+C and SIGTERM arrive as a readable descriptor in the WaitSet
    // (a signalfd: rustix has none, so nix's), never as a handler that
    // interrupts the loop: the loop ends, the Listener drops, the socket
    // file goes.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;

    let mut set = WaitSet::new()?;
    set.insert(LISTENER, Listener::bind(&path)?)?;
    set.insert(STOP, signals.as_fd().try_clone_to_owned()?)?;
    let me = rustix::process::geteuid().as_raw();
    println!(
        "server: listening on {} (mode 0600, one thread); Ctrl+C to stop",
        path.display()
    );

    let element_opts = Options::new().capacity_elements(1 << 14);
    let message_opts = Options::new().capacity_bytes(1 << 18).max_msg(1 << 16);
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut greetings: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut summary = Summary::default();
    let mut accept_paused_until: Option<Instant> = None;
    let mut next_token = 2u64;
    let mut events = Vec::new();
    let mut values = vec![0f64; 4096];
    let mut msg = Vec::new();

    'serve: loop {
        // Sleep until an event, the next greeting deadline, or the end
        // of an accept back-off.
        let next_timer = [greetings.front().map(|g| g.0), accept_paused_until]
            .into_iter()
            .flatten()
            .min();
        let timeout = next_timer.map(|t| t.saturating_duration_since(Instant::now()));
        set.wait(&mut events, timeout)?;

        let now = Instant::now();
        if accept_paused_until.is_some_and(|t| now >= t) {
            accept_paused_until = None;
            set.resume(LISTENER);
        }
        while greetings.front().is_some_and(|g| now >= g.0) {
            let (_, token) = greetings.pop_front().unwrap();
            if let Some(c) = clients.get(&token) {
                if matches!(c.state, State::Greeting(_)) {
                    println!("server: client {} said nothing in time: dropped", c.pid);
                    clients.remove(&token);
                    set.discard(token);
                    summary.failed += 1;
                }
            }
        }

        for mut event in events.drain(..) {
            let token = event.token();
            match token {
                STOP => {
                    println!("server: stopping");
                    break 'serve;
                }
                LISTENER => {
                    accept_all(
                        &mut set,
                        me,
                        &mut clients,
                        &mut greetings,
                        &mut next_token,
                        &mut summary,
                        &mut accept_paused_until,
                    );
                    continue;
                }
                _ => {}
            }
            let Some(client) = clients.get_mut(&token) else {
                continue;
            };
            if let Some(e) = event.take_error() {
                println!("server: client {}: ring setup failed: {e}", client.pid);
                clients.remove(&token);
                summary.failed += 1;
                continue;
            }
            match &mut client.state {
                State::Greeting(_) => {
                    let State::Greeting(mut stream) =
                        std::mem::replace(&mut client.state, State::Handshaking)
                    else {
                        unreachable!()
                    };
                    // The set holds a duplicate of the socket, to tell us
                    // it is readable; the greeting is read here.
                    set.discard(token);
                    let mut kind = [0u8; 1];
                    let pending = match stream.read(&mut kind) {
                        Ok(1) if kind[0] == b'e' => {
                            Handshake::<Receiver<f64>>::create(stream, &element_opts)
                                .map(|h| set.insert(token, h))
                        }
                        Ok(1) if kind[0] == b'm' => {
                            Handshake::<MsgReceiver>::create(stream, &message_opts)
                                .map(|h| set.insert(token, h))
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            // Spurious: wait on.
                            client.state = State::Greeting(stream);
                            if let Ok(dup) = client_fd(&client.state) {
                                let _ = set.insert(token, dup);
                            }
                            continue;
                        }
                        _ => {
                            println!("server: client {}: bad greeting: dropped", client.pid);
                            clients.remove(&token);
                            summary.failed += 1;
                            continue;
                        }
                    };
                    match pending {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) | Err(Error::Io(e)) => {
                            println!("server: client {}: cannot set up ({e})", client.pid);
                            clients.remove(&token);
                            summary.failed += 1;
                        }
                        Err(e) => {
                            // Out of descriptors or memory for the ring:
                            // this client goes, the others stay; accept
                            // less for a moment.
                            println!("server: client {}: no ring ({e}); backing off", client.pid);
                            clients.remove(&token);
                            summary.failed += 1;
                            summary.backoffs += 1;
                            set.pause(LISTENER);
                            accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                        }
                    }
                }
                State::Handshaking => {
                    if !event.is_done() {
                        continue;
                    }
                    client.state = if set.get_mut::<Receiver<f64>>(token).is_some() {
                        State::Values { count: 0, sum: 0.0 }
                    } else {
                        State::Messages { count: 0, bytes: 0 }
                    };
                    let served = clients
                        .values()
                        .filter(|c| {
                            matches!(c.state, State::Values { .. } | State::Messages { .. })
                        })
                        .count();
                    summary.peak = summary.peak.max(served);
                    // Ready data is reported on the next wait.
                }
                State::Values { count, sum } => {
                    let rx = set
                        .get_mut::<Receiver<f64>>(token)
                        .expect("an element ring");
                    // A few batches per event: a fast client must not
                    // starve the others (it is reported again).
                    let mut end = None;
                    for _ in 0..16 {
                        match rx.try_recv(&mut values) {
                            Ok(0) => break,
                            Ok(n) => {
                                *sum += values[..n].iter().sum::<f64>();
                                *count += n as u64;
                            }
                            Err(e) => {
                                end = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = end {
                        let what = format!("{count} values, sum = {sum}");
                        finish(&mut set, &mut clients, token, e, &what, &mut summary);
                        if once {
                            break 'serve;
                        }
                    }
                }
                State::Messages { count, bytes } => {
                    let rx = set.get_mut::<MsgReceiver>(token).expect("a message ring");
                    let mut end = None;
                    for _ in 0..64 {
                        match rx.try_recv(&mut msg) {
                            Ok(None) => break,
                            Ok(Some(n)) => {
                                *count += 1;
                                *bytes += n as u64;
                            }
                            Err(e) => {
                                end = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = end {
                        let what = format!("{count} messages, {bytes} bytes");
                        finish(&mut set, &mut clients, token, e, &what, &mut summary);
                        if once {
                            break 'serve;
                        }
                    }
                }
            }
        }
    }
    drop(set); // the Listener inside removes the socket file and its lock
    println!(
        "server: {} finished, {} killed or crashed, {} refused, {} failed before streaming; \
         at most {} streaming at once; {} accept back-offs",
        summary.finished,
        summary.killed,
        summary.refused,
        summary.failed,
        summary.peak,
        summary.backoffs
    );
    Ok(())
}

/// Accepts every waiting client: checks its credentials, then waits for
/// its greeting (in the set, with a deadline).
fn accept_all(
    set: &mut WaitSet,
    me: u32,
    clients: &mut HashMap<u64, Client>,
    greetings: &mut VecDeque<(Instant, u64)>,
    next_token: &mut u64,
    summary: &mut Summary,
    paused_until: &mut Option<Instant>,
) {
    loop {
        let listener = set.get_mut::<Listener>(LISTENER).expect("the listener");
        let (stream, creds) = match listener.accept() {
            Ok(c) => c,
            Err(AcceptError::WouldBlock) => return,
            Err(AcceptError::Aborted(_)) => continue,
            Err(e) => {
                // Out of descriptors (EMFILE) or kernel memory: not
                // fatal. Stop accepting for a moment; clients wait in the
                // backlog, and those served go on.
                if summary.backoffs == 0 || e.retry_after().is_none() {
                    println!("server: {e}");
                }
                summary.backoffs += 1;
                set.pause(LISTENER);
                *paused_until = Some(Instant::now() + e.retry_after().unwrap_or(ACCEPT_BACKOFF));
                return;
            }
        };
        let pid = creds.pid.unwrap_or(0); // 0: not visible in our PID namespace
        if creds.uid != me {
            println!(
                "server: refusing pid {pid}: it runs as uid {}, this server as uid {me}",
                creds.uid
            );
            summary.refused += 1;
            continue;
        }
        let token = *next_token;
        *next_token += 1;
        let state = State::Greeting(stream);
        let registered = client_fd(&state).and_then(|fd| set.insert(token, fd));
        if let Err(e) = registered {
            println!("server: client {pid}: {e}; dropped");
            summary.failed += 1;
            continue;
        }
        println!("server: client {pid} connected");
        greetings.push_back((Instant::now() + GREETING_TIMEOUT, token));
        clients.insert(
            token,
            Client {
                pid,
                since: Instant::now(),
                state,
            },
        );
    }
}

/// A duplicate of a greeting client's socket for the set to watch
/// (non-blocking, so that a spurious wake-up cannot block the loop).
fn client_fd(state: &State) -> std::io::Result<OwnedFd> {
    let State::Greeting(stream) = state else {
        unreachable!("only greeting clients are watched by descriptor")
    };
    stream.set_nonblocking(true)?;
    stream.as_fd().try_clone_to_owned()
}

/// A ring's stream ended: one line, `finished` or `killed`.
fn finish(
    set: &mut WaitSet,
    clients: &mut HashMap<u64, Client>,
    token: u64,
    end: Error,
    what: &str,
    summary: &mut Summary,
) {
    let client = clients.remove(&token).expect("a client");
    set.discard(token);
    let secs = client.since.elapsed().as_secs_f64();
    match end {
        Error::Closed => {
            summary.finished += 1;
            println!(
                "server: client {} finished: {what} in {secs:.2} s",
                client.pid
            );
        }
        Error::PeerGone => {
            summary.killed += 1;
            println!(
                "server: client {} was killed or crashed after {what} ({secs:.2} s)",
                client.pid
            );
        }
        e => {
            summary.killed += 1;
            println!("server: client {} dropped after {what}: {e}", client.pid);
        }
    }
}

/// Raises the soft descriptor limit to the hard one, and says so.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let (soft, hard) = (lim.current, lim.maximum);
    if soft == hard {
        println!("server: descriptor limit {}", show(soft));
        return;
    }
    lim.current = hard;
    match setrlimit(Resource::Nofile, lim) {
        Ok(()) => println!(
            "server: descriptor limit raised from {} to {}",
            show(soft),
            show(hard)
        ),
        Err(e) => println!(
            "server: descriptor limit {} (raising it to {} failed: {e})",
            show(soft),
            show(hard)
        ),
    }
}

fn show(limit: Option<u64>) -> String {
    limit.map_or("unlimited".into(), |l| l.to_string())
}
