//! One server thread, many client processes, through a `WaitSet`:
//!
//! - `a_thousand_connections_with_a_hundred_hostile_on_one_thread`: a
//!   server process (this test binary re-executed) serves 1000
//!   connections: 900 honest ones from 9 client processes (100 each,
//!   themselves driven by a `WaitSet` of senders) stream 20 000 `u64` each,
//!   checked value by value; 100 are hostile: 40 answer the setup with
//!   garbage, 30 stay silent, and 30 belong to a process that reads half
//!   the setup message and dies (SIGKILL). Every honest stream completes,
//!   every hostile one is dropped, the silent handshakes are still pending
//!   when the last honest stream ends (a stall delays nobody), and the
//!   server has one thread.
//! - `the_descriptor_limit_is_survived`: a server with `RLIMIT_NOFILE` at
//!   64 (set in its own process), every descriptor taken at start, and 40
//!   clients at once: `accept` fails with `EMFILE` (the server backs off
//!   and retries) until it frees its ballast, as when clients leave; then
//!   ring creation keeps running out of descriptors (about 12 rings fit),
//!   the server drops that one client and backs off; every client (which
//!   retries a dropped connection) completes, and one more client is
//!   served afterwards.
//! - `gone_and_closed_are_told_apart`: a killed sender is reported gone, a
//!   closed one closed, for both kinds of ring.
//!
//! Client processes: rather than 1000 processes on a 2-core machine, 9
//! honest client processes open 100 connections each (the server sees
//! 1000 independent clients either way: one socket, one ring, one
//! handshake each).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use sharedring::{
    AcceptError, Error, Handshake, Listener, MsgReceiver, MsgSender, Options, Receiver, Sender,
    WaitSet,
};

const ROLE: &str = "SR_WS_ROLE";
const PATH: &str = "SR_WS_PATH";
const ARG: &str = "SR_WS_ARG";

const LISTENER: u64 = 0;
const STDIN: u64 = 1;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sr-ws-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Re-executes this test binary as `role` of `test`.
fn spawn(test: &str, role: &str, path: &Path, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(PATH, path)
        .env(ARG, arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines a child prints, as they come.
fn lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line starting with `prefix`, returning the lines before it.
fn until(rx: &mpsc::Receiver<String>, prefix: &str, within: Duration) -> (Vec<String>, String) {
    let end = Instant::now() + within;
    let mut before = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with(prefix) => return (before, l),
            Ok(l) => before.push(l),
            Err(_) => panic!("no {prefix:?} line within {within:?}; got {before:?}"),
        }
    }
}

fn role() -> Option<(String, PathBuf, String)> {
    let role = std::env::var(ROLE).ok()?;
    let path = PathBuf::from(std::env::var(PATH).unwrap());
    let arg = std::env::var(ARG).unwrap_or_default();
    Some((role, path, arg))
}

fn set_nofile(soft: u64) {
    let lim = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: lim.maximum,
        },
    )
    .unwrap();
}

fn raise_nofile() {
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        set_nofile(max);
    }
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------
// The server: one thread, one WaitSet.
// ---------------------------------------------------------------------

/// Per-ring state: values received, and how many were out of sequence.
#[derive(Default)]
struct Stream {
    count: u64,
    bad: u64,
}

/// Serves `Receiver<u64>` rings (this side creates them) until its stdin
/// closes. Prints: `ready`; per ring `closed <count> <bad> <pending>` or
/// `gone <count>`; per failed handshake `failed <error>`; per back-off
/// `retry_later` / `create_failed`; at the end `threads <start> <end>`.
///
/// With `ballast`, every free descriptor is taken at start (so `accept`
/// itself fails with `EMFILE`), and given back after five back-offs: the
/// limit lifted, as when clients leave.
fn serve(path: &Path, handshake_timeout: Duration, nofile: Option<u64>, ballast: bool) -> ! {
    match nofile {
        Some(n) => set_nofile(n),
        None => raise_nofile(),
    }
    // The test harness's main thread waits for this one, the server.
    let harness_and_server = threads();
    let mut set = WaitSet::new().unwrap();
    set.insert(LISTENER, Listener::bind(path).unwrap()).unwrap();
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    set.insert(STDIN, stdin).unwrap();
    let opts = Options::new()
        .capacity_elements(4096)
        .handshake_timeout(Some(handshake_timeout));
    let mut out = std::io::stdout().lock();
    let mut ballast_fds = Vec::new();
    if ballast {
        // Until EMFILE.
        while let Ok(fd) = rustix::io::dup(std::io::stdin()) {
            ballast_fds.push(fd);
        }
    }
    let mut emfiles = 0;
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut streams = std::collections::HashMap::<u64, Stream>::new();
    let (mut next, mut pending) = (2u64, 0usize);
    let mut paused_until: Option<Instant> = None;
    let mut events = Vec::new();
    let mut buf = vec![0u64; 4096];
    loop {
        let timeout = paused_until.map(|u| u.saturating_duration_since(Instant::now()));
        set.wait(&mut events, timeout).unwrap();
        if paused_until.is_some_and(|u| Instant::now() >= u) {
            paused_until = None;
            set.resume(LISTENER);
        }
        for mut ev in events.drain(..) {
            let token = ev.token();
            if token == LISTENER {
                loop {
                    let stream = match set.get_mut::<Listener>(LISTENER).unwrap().accept() {
                        Ok((s, _)) => s,
                        Err(AcceptError::WouldBlock) => break,
                        Err(AcceptError::Aborted(_)) => continue,
                        Err(e @ AcceptError::RetryLater(_)) => {
                            writeln!(out, "retry_later").unwrap();
                            emfiles += 1;
                            if emfiles == 5 && !ballast_fds.is_empty() {
                                ballast_fds.clear();
                                writeln!(out, "ballast_dropped").unwrap();
                            }
                            set.pause(LISTENER);
                            paused_until = Some(Instant::now() + e.retry_after().unwrap());
                            break;
                        }
                        Err(e) => panic!("listener broken: {e}"),
                    };
                    match Handshake::<Receiver<u64>>::create(stream, &opts) {
                        Ok(h) => {
                            set.insert(next, h).unwrap();
                            next += 1;
                            pending += 1;
                        }
                        Err(e) => {
                            // Out of descriptors for the ring: drop this
                            // client (it may retry) and back off.
                            writeln!(out, "create_failed {e}").unwrap();
                            set.pause(LISTENER);
                            paused_until = Some(Instant::now() + sharedring::ACCEPT_BACKOFF);
                            break;
                        }
                    }
                }
                continue;
            }
            if token == STDIN {
                writeln!(out, "threads {harness_and_server} {}", threads()).unwrap();
                out.flush().unwrap();
                drop(set); // removes the socket file and its lock
                std::process::exit(0);
            }
            if let Some(e) = ev.take_error() {
                pending -= 1;
                writeln!(out, "failed {e}").unwrap();
                continue;
            }
            if ev.is_done() {
                pending -= 1;
                streams.insert(token, Stream::default());
            }
            let Some(rx) = set.get_mut::<Receiver<u64>>(token) else {
                continue;
            };
            let st = streams.get_mut(&token).unwrap();
            // At most 16 batches per event: one busy ring must not
            // starve the others (it is reported again next time).
            let mut ended = None;
            for _ in 0..16 {
                match rx.try_recv(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for (i, v) in buf[..n].iter().enumerate() {
                            if *v != st.count + i as u64 {
                                st.bad += 1;
                            }
                        }
                        st.count += n as u64;
                    }
                    Err(e) => {
                        ended = Some(e);
                        break;
                    }
                }
            }
            match ended {
                Some(Error::Closed) => {
                    writeln!(out, "closed {} {} {pending}", st.count, st.bad).unwrap();
                }
                Some(e) => writeln!(out, "gone {} {e}", st.count).unwrap(),
                None => continue,
            }
            set.discard(token);
            streams.remove(&token);
        }
        out.flush().unwrap();
    }
}

// ---------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------

/// `conns` connections from this one process, each a `Sender<u64>` that
/// streams `0..values` and closes, all driven by one `WaitSet`. A
/// connection whose handshake fails (the server out of descriptors) is
/// retried with a new one. Prints `done <retries>`.
fn honest_clients(path: &Path, conns: usize, values: u64) -> ! {
    raise_nofile();
    let opts = Options::new().handshake_timeout(Some(Duration::from_secs(60)));
    let mut set = WaitSet::new().unwrap();
    let mut sent = std::collections::HashMap::<u64, u64>::new();
    let connect = |set: &mut WaitSet, token: u64| {
        let stream = UnixStream::connect(path).unwrap();
        set.insert(
            token,
            Handshake::<Sender<u64>>::accept(stream, &opts).unwrap(),
        )
        .unwrap();
    };
    for t in 0..conns as u64 {
        connect(&mut set, t);
    }
    let (mut next, mut retries, mut finished) = (conns as u64, 0u64, 0usize);
    let mut events = Vec::new();
    let mut chunk = vec![0u64; 1024];
    let mut progress = Instant::now();
    while finished < conns {
        set.wait(&mut events, Some(Duration::from_secs(60)))
            .unwrap();
        if events.is_empty() {
            // Only handshake steps (or nothing at all) happened.
            assert!(
                progress.elapsed() < Duration::from_secs(60),
                "clients stalled for 60 s"
            );
            continue;
        }
        progress = Instant::now();
        for mut ev in events.drain(..) {
            let token = ev.token();
            if let Some(e) = ev.take_error() {
                // Refused or dropped by a server out of descriptors.
                let _ = e;
                retries += 1;
                std::thread::sleep(Duration::from_millis(2));
                connect(&mut set, next);
                next += 1;
                continue;
            }
            if ev.is_done() {
                sent.insert(token, 0);
                set.want_room(token, 256);
            }
            if ev.is_gone() {
                panic!("server gone for client token {token}");
            }
            let Some(tx) = set.get_mut::<Sender<u64>>(token) else {
                continue;
            };
            let s = sent.get_mut(&token).unwrap();
            while *s < values {
                let n = ((values - *s) as usize).min(chunk.len());
                for (i, v) in chunk[..n].iter_mut().enumerate() {
                    *v = *s + i as u64;
                }
                let put = tx.try_send(&chunk[..n]).unwrap();
                if put == 0 {
                    break;
                }
                *s += put as u64;
            }
            if *s == values {
                let tx: Sender<u64> = set.remove(token).unwrap();
                tx.close().unwrap();
                finished += 1;
            }
        }
    }
    println!("done {retries}");
    std::process::exit(0);
}

/// Hostile: `garbage` connections that answer the setup with garbage and
/// `silent` ones that never answer; stays alive until killed.
fn hostile_stay(path: &Path, garbage: usize, silent: usize) -> ! {
    raise_nofile();
    let mut socks = Vec::new();
    for i in 0..garbage + silent {
        let mut s = UnixStream::connect(path).unwrap();
        if i < garbage {
            s.write_all(&[0xA5u8; 64]).unwrap();
        }
        socks.push(s);
    }
    println!("connected");
    std::thread::sleep(Duration::from_secs(600));
    std::process::exit(0);
}

/// Hostile: reads half of each setup message, then dies by SIGKILL.
fn hostile_die(path: &Path, conns: usize) -> ! {
    raise_nofile();
    let mut socks = Vec::new();
    for _ in 0..conns {
        socks.push(UnixStream::connect(path).unwrap());
    }
    for s in &mut socks {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut half = [0u8; 32];
        let _ = std::io::Read::read_exact(s, &mut half);
    }
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL");
}

fn dispatch() -> bool {
    let Some((role, path, arg)) = role() else {
        return false;
    };
    let nums: Vec<u64> = arg.split(',').filter_map(|s| s.parse().ok()).collect();
    match role.as_str() {
        "server" => serve(
            &path,
            Duration::from_secs(nums[0]),
            nums.get(1).copied(),
            nums.get(2) == Some(&1),
        ),
        "honest" => honest_clients(&path, nums[0] as usize, nums[1]),
        "stay" => hostile_stay(&path, nums[0] as usize, nums[1] as usize),
        "die" => hostile_die(&path, nums[0] as usize),
        "gone_closed" => gone_closed_peer(&path, &arg),
        other => panic!("unknown role {other}"),
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("child {} did not exit within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_thousand_connections_with_a_hundred_hostile_on_one_thread() {
    if dispatch() {
        return;
    }
    const TEST: &str = "a_thousand_connections_with_a_hundred_hostile_on_one_thread";
    const VALUES: u64 = 20_000;
    let start = Instant::now();
    let path = dir().join("thousand.sock");
    // A long handshake deadline: the silent clients must still be pending
    // when the honest ones are all done.
    let mut server = spawn(TEST, "server", &path, "120");
    let out = lines(server.stdout.take().unwrap());
    until(&out, "ready", Duration::from_secs(30));

    let mut stay = spawn(TEST, "stay", &path, "40,30");
    let mut die = spawn(TEST, "die", &path, "30");
    let mut honest: Vec<Child> = (0..9)
        .map(|_| spawn(TEST, "honest", &path, &format!("100,{VALUES}")))
        .collect();
    for c in &mut honest {
        assert!(wait_exit(c, Duration::from_secs(120)).success());
    }
    assert!(!wait_exit(&mut die, Duration::from_secs(60)).success());

    // Collect the server's report until 900 streams ended and the 70
    // early hostile connections failed.
    let (mut closed, mut failed, mut pending_at_last) = (0, 0, 0usize);
    let end = Instant::now() + Duration::from_secs(60);
    while closed < 900 || failed < 70 {
        let line = out
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                panic!("server report stopped at {closed} closed, {failed} failed")
            });
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "closed" => {
                assert_eq!(f[1].parse::<u64>().unwrap(), VALUES, "{line}");
                assert_eq!(f[2], "0", "values out of sequence: {line}");
                closed += 1;
                pending_at_last = f[3].parse().unwrap();
            }
            "failed" => failed += 1,
            _ => panic!("unexpected server line: {line}"),
        }
    }
    assert_eq!(closed, 900);
    // The silent handshakes stalled nobody: still pending when the last
    // honest stream ended.
    assert!(
        pending_at_last >= 30,
        "only {pending_at_last} handshakes pending at the last close"
    );
    // Kill the silent ones' process: their 30 handshakes fail now.
    stay.kill().unwrap();
    stay.wait().unwrap();
    while failed < 100 {
        let line = out
            .recv_timeout(Duration::from_secs(30))
            .expect("the silent handshakes' end not reported");
        assert!(line.starts_with("failed"), "unexpected server line: {line}");
        failed += 1;
    }
    drop(server.stdin.take());
    let (_, threads) = until(&out, "threads", Duration::from_secs(30));
    // `threads <at start> <at end>`: the harness's main thread and the
    // server's, and no other thread ever started.
    assert_eq!(
        threads, "threads 2 2",
        "the server used more than one thread"
    );
    assert!(wait_exit(&mut server, Duration::from_secs(10)).success());
    assert!(!path.exists(), "socket file left behind");
    eprintln!(
        "1000 connections (100 hostile) served in {:?}",
        start.elapsed()
    );
}

#[test]
fn the_descriptor_limit_is_survived() {
    if dispatch() {
        return;
    }
    const TEST: &str = "the_descriptor_limit_is_survived";
    let path = dir().join("emfile.sock");
    // 64 descriptors, all taken at start until five `accept`s failed.
    let mut server = spawn(TEST, "server", &path, "30,64,1");
    let out = lines(server.stdout.take().unwrap());
    until(&out, "ready", Duration::from_secs(30));
    // 40 rings at once need about 200 descriptors in the server.
    let mut clients = spawn(TEST, "honest", &path, "40,50000");
    let mut client_out = lines(clients.stdout.take().unwrap());
    assert!(wait_exit(&mut clients, Duration::from_secs(120)).success());
    let (_, done) = until(&client_out, "done", Duration::from_secs(5));
    let (mut closed, mut backoffs, mut emfile) = (0, 0, 0);
    while closed < 40 {
        let line = out
            .recv_timeout(Duration::from_secs(30))
            .expect("server report stopped");
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "closed" => {
                assert_eq!(f[1], "50000", "{line}");
                assert_eq!(f[2], "0", "{line}");
                closed += 1;
            }
            "retry_later" => {
                emfile += 1;
                backoffs += 1;
            }
            "create_failed" => backoffs += 1,
            "failed" | "ballast_dropped" => {}
            _ => panic!("unexpected server line: {line}"),
        }
    }
    assert!(emfile >= 5, "accept never failed with EMFILE ({done})");
    // Still serving once the clients are gone.
    let mut late = spawn(TEST, "honest", &path, "1,1000");
    client_out = lines(late.stdout.take().unwrap());
    assert!(wait_exit(&mut late, Duration::from_secs(60)).success());
    until(&client_out, "done", Duration::from_secs(5));
    let (_, last) = until(&out, "closed", Duration::from_secs(30));
    assert!(last.starts_with("closed 1000 0"), "{last}");
    drop(server.stdin.take());
    until(&out, "threads", Duration::from_secs(30));
    assert!(wait_exit(&mut server, Duration::from_secs(10)).success());
    eprintln!("{backoffs} back-offs ({emfile} of them accept's EMFILE); clients: {done}");
}

// ---------------------------------------------------------------------
// Gone and closed, both kinds of ring.
// ---------------------------------------------------------------------

/// The peer: accepts one ring of the kind `arg` names over `path`, sends
/// a little, then closes or dies.
fn gone_closed_peer(path: &Path, arg: &str) -> ! {
    let stream = UnixStream::connect(path).unwrap();
    let (msg, close) = (arg.starts_with("msg"), arg.ends_with("close"));
    // The end stays alive until the process ends: a drop would close the
    // stream cleanly, which the "kill" cases must not do.
    if msg {
        let mut tx = MsgSender::accept(stream).unwrap();
        tx.send(b"hello", None).unwrap();
        if close {
            tx.close().unwrap();
            std::process::exit(0);
        }
        kill_self(tx)
    } else {
        let mut tx = Sender::<u64>::accept(stream).unwrap();
        tx.send(&[1, 2, 3], None).unwrap();
        if close {
            tx.close().unwrap();
            std::process::exit(0);
        }
        kill_self(tx)
    }
}

/// SIGKILLs this process while `_end` is still open (never dropped).
fn kill_self<E>(_end: E) -> ! {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL");
}

#[test]
fn gone_and_closed_are_told_apart() {
    if dispatch() {
        return;
    }
    const TEST: &str = "gone_and_closed_are_told_apart";
    let path = dir().join("gone-closed.sock");
    let listener = Listener::bind(&path).unwrap();
    let mut set = WaitSet::new().unwrap();
    for (i, how) in ["elem-close", "elem-kill", "msg-close", "msg-kill"]
        .into_iter()
        .enumerate()
    {
        let mut peer = spawn(TEST, "gone_closed", &path, how);
        let (stream, _) = listener.accept().unwrap();
        let token = 10 + i as u64;
        if how.starts_with("msg") {
            let opts = Options::new().capacity_bytes(4096);
            set.insert(
                token,
                Handshake::<MsgReceiver>::create(stream, &opts).unwrap(),
            )
            .unwrap();
        } else {
            let opts = Options::new().capacity_elements(64);
            set.insert(
                token,
                Handshake::<Receiver<u64>>::create(stream, &opts).unwrap(),
            )
            .unwrap();
        }
        let (mut readable, mut ended) = (false, None);
        let mut events = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while ended.is_none() {
            assert!(Instant::now() < end, "{how}: no end reported");
            set.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
            for ev in &events {
                assert_eq!(ev.token(), token);
                assert!(ev.error().is_none(), "{how}: {:?}", ev.error());
                readable |= ev.is_readable();
                if ev.is_gone() || ev.is_closed() {
                    ended = Some((ev.is_gone(), ev.is_closed()));
                }
            }
        }
        assert!(readable, "{how}: data never reported");
        let want = if how.ends_with("close") {
            (false, true)
        } else {
            (true, false)
        };
        assert_eq!(ended, Some(want), "{how}: (gone, closed)");
        // What was sent is still there, then the matching end of stream.
        let result = if how.starts_with("msg") {
            let rx = set.get_mut::<MsgReceiver>(token).unwrap();
            let mut buf = Vec::new();
            assert_eq!(rx.try_recv(&mut buf).unwrap(), Some(5));
            rx.try_recv(&mut buf).map(|_| ())
        } else {
            let rx = set.get_mut::<Receiver<u64>>(token).unwrap();
            let mut buf = [0u64; 8];
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 3);
            rx.try_recv(&mut buf).map(|_| ())
        };
        match (how.ends_with("close"), result) {
            (true, Err(Error::Closed)) | (false, Err(Error::PeerGone)) => {}
            (_, other) => panic!("{how}: end of stream {other:?}"),
        }
        assert!(set.discard(token));
        wait_exit(&mut peer, Duration::from_secs(10));
    }
}
