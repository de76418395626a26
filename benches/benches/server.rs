//! The `server` group: one server thread (this process, a `WaitSet`)
//! against N client connections from separate processes, each streaming
//! 4 KiB messages into a message ring the server created for it.
//!
//! For each N (16, 256, 1024 with `SHAREDRING_BENCH_MODE=full`; 16 and 256
//! otherwise; or the numbers given on the command line,
//! `cargo bench --bench server -- 16`):
//! - setup: the time from starting the client processes until all N rings
//!   are ready (handshakes done);
//! - descriptors per ring in the server (`/proc/self/fd` before and after);
//! - server memory per ring beyond the ring itself (`RssAnon` grows by
//!   the set's and ends' own state; `RssShmem` by the ring pages touched,
//!   shown beside the ring size);
//! - aggregate throughput over a fixed window against one ring alone
//!   (N = 1, measured first in the same run);
//! - fairness: the slowest ring's bytes over the fastest's in the window;
//! - server CPU (user + system, `CLOCK_PROCESS_CPUTIME_ID`) per GiB received;
//! - killing 10 % of the connections (SIGKILL to whole client processes)
//!   while the others stream: median and maximum time until the server
//!   reports each gone; once with everyone streaming at full speed, and
//!   once more (a second run) at a moderate load, all N connections paced
//!   together to a quarter of what one ring alone moved.
//!
//! Then 10 000 idle rings set up and held: setup time, descriptors and
//! memory (as many as the descriptor limit allows; the count is reported).
//!
//! Client processes: at most 64; above that each process opens several
//! connections (N / 64), all driven by one `WaitSet` of its own, so that
//! 1024 connections do not need 1024 processes on a small machine. The
//! server sees N independent clients either way. Results go to stdout and,
//! as a markdown section, to `$SHAREDRING_BENCH_REPORT/server.md` (the
//! `cargo xtask bench` report appends it).

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sharedring::{
    AcceptError, Event, Handshake, Listener, MsgReceiver, MsgSender, Options, WaitSet,
};

const ROLE: &str = "SR_SERVER_BENCH_ROLE";
const MSG: usize = 4096;
const MAX_PROCS: usize = 64;
const LISTENER: u64 = u64::MAX;
const STREAM_RING: usize = 1 << 18;
const IDLE_RING: usize = 1 << 16;

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        client(&role);
    }
    raise_nofile();
    let full = std::env::var("SHAREDRING_BENCH_MODE").is_ok_and(|m| m == "full");
    let mut ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let explicit = !ns.is_empty();
    if !explicit {
        ns = if full {
            vec![16, 256, 1024]
        } else {
            vec![16, 256]
        };
    }
    let window = if full {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    };
    let idle = std::env::var("SR_SERVER_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("sr-server-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut md = String::new();
    md.push_str("## server: one thread, many rings\n\n");
    md.push_str(&format!(
        "One server thread (a `WaitSet`) against N connections from separate client processes \
         (at most {MAX_PROCS}; more connections per process above that), each streaming {MSG}-byte \
         messages into a {} KiB message ring. Throughput window {window:?}. Host load average \
         before: {}.\n\n",
        STREAM_RING / 1024,
        loadavg()
    ));
    let single = stream_run(&dir, 1, window, 0);
    md.push_str(
        "| N | processes | all rings ready | fds per ring | RssAnon per ring | RssShmem per ring (ring size) | aggregate | vs one ring | fairness (min/max) | server CPU per GiB | kill 10 % at full load: median | max | noticed | kill 10 % at 25 % load: median | max | noticed |\n",
    );
    md.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    md.push_str(&single.row(single.gib_per_s, None));
    for &n in &ns {
        let r = stream_run(&dir, n, window, 0);
        // Again at a moderate load: all N together at a quarter of what
        // one ring alone moved, for the kill measurement.
        let quarter = single.gib_per_s * (1u64 << 30) as f64 / 4.0;
        let pace = (quarter / n as f64).max(MSG as f64) as u64;
        let moderate = stream_run(&dir, n, window / 2, pace);
        md.push_str(&r.row(single.gib_per_s, Some(&moderate)));
    }
    md.push('\n');
    if idle > 0 {
        md.push_str(&idle_run(&dir, idle));
    }
    md.push_str(&format!("\nLoad average after: {}.\n", loadavg()));
    let _ = std::fs::remove_dir_all(&dir);
    println!("{md}");
    let out = std::env::var_os("SHAREDRING_BENCH_REPORT").map(PathBuf::from);
    if let Some(out) = out {
        let _ = std::fs::create_dir_all(&out);
        std::fs::write(out.join("server.md"), &md).expect("write server.md");
        eprintln!("server bench: wrote {}", out.join("server.md").display());
    }
}

// ---------------------------------------------------------------------
// Measurements of this process.
// ---------------------------------------------------------------------

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// (RssAnon, RssShmem) in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("RssAnon:"), kb("RssShmem:"))
}

fn cpu() -> Duration {
    // User + system time of this process (its one server thread).
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The soft descriptor limit up to the hard one; with the privilege to
/// (root in CI), the hard one first up to 65536 (within `fs.nr_open`):
/// 10 000 idle rings need 30 000 descriptors, and a common hard limit is
/// 20 000 or less. Without it, the bench reports how many rings fit.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANT: u64 = 65_536;
    let lim = getrlimit(Resource::Nofile);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(WANT);
    let want = WANT.min(nr_open);
    if lim.maximum.is_some_and(|max| max < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return;
        }
    }
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

fn nofile() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------
// The server side.
// ---------------------------------------------------------------------

struct Ring {
    pid: i32,
    bytes: u64,
}

struct Server {
    set: WaitSet,
    rings: HashMap<u64, Ring>,
    pending: HashMap<u64, i32>,
    next: u64,
    failed: usize,
    paused_until: Option<Instant>,
    events: Vec<Event>,
    buf: Vec<u8>,
    opts: Options,
}

impl Server {
    fn new(path: &Path, ring: usize) -> Self {
        let mut set = WaitSet::new().unwrap();
        set.insert(LISTENER, Listener::bind(path).unwrap()).unwrap();
        Self {
            set,
            rings: HashMap::new(),
            pending: HashMap::new(),
            next: 0,
            failed: 0,
            paused_until: None,
            events: Vec::new(),
            buf: Vec::with_capacity(MSG),
            opts: Options::new()
                .capacity_bytes(ring)
                .max_msg(MSG)
                .handshake_timeout(Some(Duration::from_secs(120))),
        }
    }

    /// One round of the loop; returns the tokens reported gone.
    fn round(&mut self, timeout: Duration) -> Vec<u64> {
        let mut timeout = timeout;
        if let Some(u) = self.paused_until {
            timeout = timeout.min(u.saturating_duration_since(Instant::now()));
        }
        let mut events = std::mem::take(&mut self.events);
        self.set.wait(&mut events, Some(timeout)).unwrap();
        if self.paused_until.is_some_and(|u| Instant::now() >= u) {
            self.paused_until = None;
            self.set.resume(LISTENER);
        }
        let mut gone = Vec::new();
        for mut ev in events.drain(..) {
            let t = ev.token();
            if t == LISTENER {
                self.accept();
                continue;
            }
            if ev.take_error().is_some() {
                self.pending.remove(&t);
                self.failed += 1;
                continue;
            }
            if ev.is_done() {
                if let Some(pid) = self.pending.remove(&t) {
                    self.rings.insert(t, Ring { pid, bytes: 0 });
                }
            }
            if ev.is_gone() || ev.is_closed() {
                gone.push(t);
                self.rings.remove(&t);
                self.set.discard(t);
                continue;
            }
            if let (Some(rx), Some(ring)) =
                (self.set.get_mut::<MsgReceiver>(t), self.rings.get_mut(&t))
            {
                for _ in 0..64 {
                    match rx.try_recv(&mut self.buf) {
                        Ok(Some(n)) => ring.bytes += n as u64,
                        _ => break,
                    }
                }
            }
        }
        self.events = events;
        gone
    }

    fn accept(&mut self) {
        loop {
            let listener = self.set.get_mut::<Listener>(LISTENER).unwrap();
            let (stream, creds) = match listener.accept() {
                Ok(c) => c,
                Err(AcceptError::WouldBlock) => return,
                Err(AcceptError::Aborted(_)) => continue,
                Err(e) => {
                    let wait = e.retry_after().expect("listener broken");
                    self.set.pause(LISTENER);
                    self.paused_until = Some(Instant::now() + wait);
                    return;
                }
            };
            match Handshake::<MsgReceiver>::create(stream, &self.opts) {
                Ok(h) => {
                    self.set.insert(self.next, h).unwrap();
                    self.pending.insert(self.next, creds.pid.unwrap_or(0));
                    self.next += 1;
                }
                Err(_) => {
                    // Out of descriptors: this client goes; back off.
                    self.failed += 1;
                    self.set.pause(LISTENER);
                    self.paused_until = Some(Instant::now() + sharedring::ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}

/// Starts client processes for `n` connections in `mode`.
fn spawn_clients(path: &Path, n: usize, mode: &str, pace: u64) -> Vec<(Child, usize)> {
    let procs = n.min(MAX_PROCS);
    (0..procs)
        .map(|p| {
            let conns = n / procs + usize::from(p < n % procs);
            let child = Command::new(std::env::current_exe().unwrap())
                .env(ROLE, format!("{mode},{},{conns},{pace}", path.display()))
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            (child, conns)
        })
        .collect()
}

fn kill_all(clients: &mut Vec<(Child, usize)>) {
    for (c, _) in clients.iter_mut() {
        let _ = c.kill();
    }
    for (c, _) in clients.iter_mut() {
        let _ = c.wait();
    }
    clients.clear();
}

struct StreamResult {
    n: usize,
    procs: usize,
    ready: Duration,
    fds_per_ring: f64,
    anon_per_ring: f64,
    shmem_per_ring: f64,
    gib_per_s: f64,
    fairness: f64,
    cpu_per_gib: Duration,
    kill_median: Option<Duration>,
    kill_max: Option<Duration>,
    killed: usize,
    noticed: usize,
}

impl StreamResult {
    fn row(&self, single: f64, moderate: Option<&StreamResult>) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("–".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        };
        let (mm, mx, mn) = match moderate {
            Some(m) => (
                ms(m.kill_median),
                ms(m.kill_max),
                format!("{}/{}", m.noticed, m.killed),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        format!(
            "| {} | {} | {:.1} ms | {:.2} | {:.1} KiB | {:.1} KiB ({} KiB) | {:.2} GiB/s | {:.2}x | {:.2} | {:.2} s | {} | {} | {}/{} | {mm} | {mx} | {mn} |\n",
            self.n,
            self.procs,
            self.ready.as_secs_f64() * 1e3,
            self.fds_per_ring,
            self.anon_per_ring / 1024.0,
            self.shmem_per_ring / 1024.0,
            STREAM_RING / 1024,
            self.gib_per_s,
            self.gib_per_s / single,
            self.fairness,
            self.cpu_per_gib.as_secs_f64(),
            ms(self.kill_median),
            ms(self.kill_max),
            self.noticed,
            self.killed,
        )
    }
}

/// One run with `n` connections; `pace`: bytes per second per connection
/// (0: as fast as the rings take them).
fn stream_run(dir: &Path, n: usize, window: Duration, pace: u64) -> StreamResult {
    let path = dir.join(format!("stream-{n}-{pace}.sock"));
    let (anon_before, shmem_before) = rss();
    let mut server = Server::new(&path, STREAM_RING);
    // After the listener, its lock and the epoll set: per ring only.
    let fds_before = fds();
    let start = Instant::now();
    let mut clients = spawn_clients(&path, n, "stream", pace);
    let procs = clients.len();
    while server.rings.len() < n {
        server.round(Duration::from_millis(100));
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "only {} of {n} rings ready after 300 s ({} failed)",
            server.rings.len(),
            server.failed
        );
    }
    let ready = start.elapsed();
    let fds_per_ring = (fds() - fds_before) as f64 / n as f64;
    // Warm up, then the window.
    let warm = Instant::now();
    while warm.elapsed() < window / 4 {
        server.round(Duration::from_millis(10));
    }
    for r in server.rings.values_mut() {
        r.bytes = 0;
    }
    let cpu0 = cpu();
    let t0 = Instant::now();
    while t0.elapsed() < window {
        server.round(Duration::from_millis(10));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu_used = cpu() - cpu0;
    let (anon_after, shmem_after) = rss();
    let bytes: Vec<u64> = server.rings.values().map(|r| r.bytes).collect();
    let total: u64 = bytes.iter().sum();
    let gib = total as f64 / (1u64 << 30) as f64;
    let fairness = match (bytes.iter().min(), bytes.iter().max()) {
        (Some(&lo), Some(&hi)) if hi > 0 => lo as f64 / hi as f64,
        _ => 0.0,
    };
    // Kill 10 % of the connections (whole processes) while the rest
    // stream; time until each is reported gone.
    let (mut kill_median, mut kill_max, mut killed, mut noticed) = (None, None, 0, 0);
    if n >= 10 {
        let want = n.div_ceil(10);
        let mut victims = Vec::new();
        let mut count = 0;
        for (c, conns) in clients.iter() {
            if count >= want {
                break;
            }
            victims.push(c.id() as i32);
            count += conns;
        }
        let tokens: Vec<u64> = server
            .rings
            .iter()
            .filter(|(_, r)| victims.contains(&r.pid))
            .map(|(t, _)| *t)
            .collect();
        killed = tokens.len();
        let mut when = HashMap::new();
        let t_kill = Instant::now();
        for (c, _) in clients.iter_mut() {
            if victims.contains(&(c.id() as i32)) {
                let _ = c.kill();
                when.insert(c.id() as i32, Instant::now());
            }
        }
        let _ = t_kill;
        let mut lat = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while lat.len() < killed && Instant::now() < end {
            let pids: HashMap<u64, i32> = tokens
                .iter()
                .filter_map(|t| server.rings.get(t).map(|r| (*t, r.pid)))
                .collect();
            for t in server.round(Duration::from_millis(10)) {
                if let Some(pid) = pids.get(&t) {
                    lat.push(when[pid].elapsed());
                }
            }
        }
        noticed = lat.len();
        lat.sort();
        kill_median = lat.get(lat.len() / 2).copied();
        kill_max = lat.last().copied();
    }
    kill_all(&mut clients);
    drop(server);
    StreamResult {
        n,
        procs,
        ready,
        fds_per_ring,
        anon_per_ring: anon_after.saturating_sub(anon_before) as f64 / n as f64,
        shmem_per_ring: shmem_after.saturating_sub(shmem_before) as f64 / n as f64,
        gib_per_s: gib / secs,
        fairness,
        cpu_per_gib: if gib > 0.0 {
            cpu_used.div_f64(gib)
        } else {
            Duration::ZERO
        },
        kill_median,
        kill_max,
        killed,
        noticed,
    }
}

fn idle_run(dir: &Path, n: usize) -> String {
    let path = dir.join("idle.sock");
    let (anon_before, shmem_before) = rss();
    let mut server = Server::new(&path, IDLE_RING);
    let fds_before = fds();
    let start = Instant::now();
    let mut clients = spawn_clients(&path, n, "idle", 0);
    let mut last_progress = (Instant::now(), 0);
    while server.rings.len() + server.failed < n {
        server.round(Duration::from_millis(100));
        let got = server.rings.len();
        if got != last_progress.1 {
            last_progress = (Instant::now(), got);
        } else if last_progress.0.elapsed() > Duration::from_secs(2) {
            // No new ring for 2 s: the descriptor limit (the server drops
            // each client it cannot make a ring for, and backs off), or
            // the clients gave up. Hold what is set up.
            break;
        }
    }
    let ready = last_progress.0.duration_since(start);
    let rings = server.rings.len();
    let fds_used = fds() - fds_before;
    let (anon, shmem) = rss();
    // Idle: a wait that finds nothing costs no work per ring.
    let t = Instant::now();
    let cpu0 = cpu();
    for _ in 0..100 {
        server.round(Duration::ZERO);
    }
    let per_wait = t.elapsed() / 100;
    let cpu_idle = (cpu() - cpu0) / 100;
    kill_all(&mut clients);
    drop(server);
    let per = |x: u64| x as f64 / rings.max(1) as f64 / 1024.0;
    format!(
        "### {n} idle rings, set up and held\n\n\
         | rings ready | not set up (descriptor limit {}) | setup time (to the last ring) | server fds | fds per ring | RssAnon per ring | RssShmem per ring (ring {} KiB) | one empty wait (wall / CPU) |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
         | {rings} | {} | {:.2} s | {fds_used} | {:.2} | {:.1} KiB | {:.1} KiB | {:.1} µs / {:.1} µs |\n",
        nofile(),
        IDLE_RING / 1024,
        server_failed_hint(n, rings),
        ready.as_secs_f64(),
        fds_used as f64 / rings.max(1) as f64,
        per(anon.saturating_sub(anon_before)),
        per(shmem.saturating_sub(shmem_before)),
        per_wait.as_secs_f64() * 1e6,
        cpu_idle.as_secs_f64() * 1e6,
    )
}

fn server_failed_hint(n: usize, rings: usize) -> usize {
    n - rings
}

// ---------------------------------------------------------------------
// Client processes.
// ---------------------------------------------------------------------

/// `stream,<path>,<conns>,<pace>`: streams 4 KiB messages on every
/// connection, as fast as the rings take them (pace 0) or at `pace` bytes
/// per second each, until killed. `idle,<path>,<conns>`: sets
/// the rings up and holds them.
fn client(role: &str) -> ! {
    raise_nofile();
    let mut parts = role.split(',');
    let mode = parts.next().unwrap().to_owned();
    let path = PathBuf::from(parts.next().unwrap());
    let conns: usize = parts.next().unwrap().parse().unwrap();
    let pace: u64 = parts.next().map_or(0, |p| p.parse().unwrap());
    let opts = Options::new().handshake_timeout(Some(Duration::from_secs(120)));
    let mut set = WaitSet::new().unwrap();
    let mut live = 0;
    for t in 0..conns as u64 {
        let Ok(stream) = UnixStream::connect(&path) else {
            continue;
        };
        let Ok(h) = Handshake::<MsgSender>::accept(stream, &opts) else {
            continue;
        };
        set.insert(t, h).unwrap();
        live += 1;
    }
    let msg = vec![0x42u8; MSG];
    let mut events = Vec::new();
    let streaming = mode == "stream";
    // Paced: (start, bytes sent) per connection; over budget, a token is
    // paused until the next round (every 2 ms).
    let mut budget: HashMap<u64, (Instant, u64)> = HashMap::new();
    let mut paused: Vec<u64> = Vec::new();
    while live > 0 {
        let timeout = if paused.is_empty() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(2)
        };
        set.wait(&mut events, Some(timeout)).unwrap();
        for t in paused.drain(..) {
            set.resume(t);
        }
        for mut ev in events.drain(..) {
            let t = ev.token();
            if ev.take_error().is_some() || ev.is_gone() {
                set.discard(t);
                live -= 1;
                continue;
            }
            if ev.is_done() {
                if streaming {
                    set.want_room(t, MSG);
                } else {
                    set.pause(t); // idle: only the server's death matters
                }
            }
            if !streaming {
                continue;
            }
            let (since, sent) = budget.entry(t).or_insert((Instant::now(), 0));
            let allowed = if pace == 0 {
                u64::MAX
            } else {
                (since.elapsed().as_secs_f64() * pace as f64) as u64 + MSG as u64
            };
            if *sent >= allowed {
                set.pause(t);
                paused.push(t);
                continue;
            }
            if let Some(tx) = set.get_mut::<MsgSender>(t) {
                for _ in 0..64 {
                    if *sent >= allowed {
                        break;
                    }
                    match tx.try_send(&msg) {
                        Ok(true) => *sent += MSG as u64,
                        _ => break,
                    }
                }
            }
        }
    }
    std::process::exit(0);
}
