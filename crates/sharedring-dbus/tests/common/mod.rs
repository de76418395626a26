//! Helpers shared by the D-Bus test binaries: a real private bus, the
//! example programs as real processes, and descriptor counting.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sharedring_dbus::PrivateBus;

/// A private dbus-daemon. Panics (the test fails) if none can be started:
/// these tests never pass without a real bus.
pub fn bus() -> PrivateBus {
    PrivateBus::start().unwrap_or_else(|e| panic!("D-Bus tests need a real dbus-daemon: {e}"))
}

/// The path of one of this crate's examples, built by `cargo test`
/// (or built now if a narrower cargo command skipped them).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "sharedring-dbus", "--examples"])
            .status()
            .expect("run cargo build --examples");
        assert!(status.success(), "building the examples failed");
    }
    assert!(path.exists(), "example {} not found", path.display());
    path
}

/// A child process killed (if still running) when dropped, with its
/// stdout lines on a channel and its stderr passed on to ours and kept.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts an example against `bus`.
    pub fn example(bus: &PrivateBus, name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(example(name))
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn example");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The next line of output that contains `what`, within `within`.
    pub fn wait_for(&self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no line with {what:?} within {within:?}: {e}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number of descriptors this process has open.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits (generously: closes by watcher threads and zbus's own tasks are
/// asynchronous) until the count is back to `baseline`, and returns the
/// last count seen.
pub fn settled_fd_count(baseline: usize) -> usize {
    settled(baseline, fd_count)
}

/// The number of threads this process has, not counting idle threads of
/// the `blocking` crate's pool (`blocking-N`, which zbus and async-io use
/// to close sockets and read peer credentials): that pool keeps as many
/// threads as were ever busy at once while work keeps coming, and lets
/// each go after 500 ms without any, so its size follows the timing of
/// a run, not what the run leaked. A pool thread that is not waiting for
/// work (not in a futex wait) still counts.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| t.ok())
        .filter(|t| {
            let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
            let idle_in_pool =
                read("comm").starts_with("blocking-") && read("wchan").starts_with("futex");
            !idle_in_pool
        })
        .count()
}

/// The names of this process's threads, for a message about a leak.
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// Waits (generously) until `count()` is back to `baseline`, and returns
/// the last count seen.
pub fn settled(baseline: usize, count: fn() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = count();
        if n == baseline || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Descriptors and threads of this process, once both have stopped
/// changing (threads of finished setups and of zbus's helpers end
/// asynchronously).
pub fn quiet_baseline() -> (usize, usize) {
    let mut last = (fd_count(), thread_count());
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = (fd_count(), thread_count());
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(500) || Instant::now() >= deadline
        {
            return now;
        }
    }
}

/// Asserts that descriptors and threads are back to `baseline` (from
/// [`quiet_baseline`]).
pub fn assert_back_to(baseline: (usize, usize), before_names: &[String]) {
    let fds = settled(baseline.0, fd_count);
    let threads = settled(baseline.1, thread_count);
    assert_eq!(fds, baseline.0, "descriptors leaked");
    assert_eq!(
        threads,
        baseline.1,
        "threads leaked: before {before_names:?}, after {:?}; where each is: {}",
        thread_names(),
        thread_places()
    );
}

/// For a message about a leak: each thread's name, the kernel function
/// it waits in and its current system call.
pub fn thread_places() -> String {
    let read = |t: &std::path::Path, f: &str| {
        std::fs::read_to_string(t.join(f))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| t.ok())
        .map(|t| {
            let t = t.path();
            format!(
                "{} (wchan {}, syscall {})",
                read(&t, "comm"),
                read(&t, "wchan"),
                read(&t, "syscall")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A round trip to the bus daemon on `conn` (`GetId`): everything `conn`
/// sent before has been routed, and everything routed to `conn` before
/// the reply has been read by zbus and handed to its streams.
pub fn daemon_round_trip(conn: &zbus::blocking::Connection) -> zbus::Result<()> {
    conn.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "GetId",
        &(),
    )
    .map(drop)
}

/// Our user id, as the kernel reports it (the owner of `/proc/self`).
pub fn our_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// Messages as a third connection on the bus forges them: replies to
/// calls it never received, to any reply serial, and signals sent
/// straight to a victim. Each claims to come from `claimed` (the party
/// it impersonates); the daemon overwrites that field with the forger's
/// unique name, which is the point of these tests.
pub mod forge {
    use std::num::NonZeroU32;

    use sharedring_dbus::zbus::message::Builder;
    use sharedring_dbus::zbus::Message;

    /// A method call as if `victim` had sent it: the template that
    /// replies are addressed from.
    pub fn template(victim: &str) -> Message {
        Message::method_call("/", "Forged")
            .unwrap()
            .sender(victim)
            .unwrap()
            .build(&())
            .unwrap()
    }

    /// A method return to `template`'s victim for the call with serial
    /// `serial`, claiming to come from `claimed`.
    pub fn method_return(template: &Message, serial: u32, claimed: &str) -> Builder<'static> {
        Message::method_return(&template.header())
            .unwrap()
            .reply_serial(NonZeroU32::new(serial))
            .sender(claimed.to_owned())
            .unwrap()
    }

    /// An error reply `name`, likewise.
    pub fn error(template: &Message, serial: u32, claimed: &str, name: &str) -> Message {
        Message::error(&template.header(), name.to_owned())
            .unwrap()
            .reply_serial(NonZeroU32::new(serial))
            .sender(claimed.to_owned())
            .unwrap()
            .build(&("forged",))
            .unwrap()
    }

    /// The serial the next message built in this process gets (zbus
    /// counts serials per process); building the probe takes one.
    pub fn next_serial() -> u32 {
        template(":1.0").primary_header().serial_num().get() + 1
    }
}

/// The `i`-th value the example client sends.
pub fn client_value(i: u64) -> f64 {
    (i % 1024) as f64 * 0.5
}

/// The values of an `Open` reply, in the order of `REPLY_SIGNATURE`.
pub type OpenReply<'a> = (
    u32,
    u32,
    u32,
    u32,
    u64,
    u64,
    u32,
    u64,
    u32,
    sharedring_dbus::zbus::zvariant::Fd<'a>,
    sharedring_dbus::zbus::zvariant::Fd<'a>,
    sharedring_dbus::zbus::zvariant::Fd<'a>,
    sharedring_dbus::zbus::zvariant::Fd<'a>,
);

/// The `Open` reply body for `offer`'s values with the descriptors `fds`
/// (memory, data, room, hang-up), encoded field by field as a peer in
/// another language would: the one place the tests spell out the format.
pub fn open_reply<'a>(
    o: &sharedring::Offer,
    fds: [std::os::fd::BorrowedFd<'a>; 4],
) -> OpenReply<'a> {
    use sharedring_dbus::zbus::zvariant::Fd;
    let creator = match o.creator {
        sharedring::End::Sender => 1,
        sharedring::End::Receiver => 2,
    };
    let [memory, data, room, hangup] = fds;
    (
        o.kind.code(),
        creator,
        o.elem_size,
        o.elem_align,
        o.type_tag,
        o.capacity,
        o.max_msg,
        o.region_len,
        u32::from(o.hugetlb),
        Fd::from(memory),
        Fd::from(data),
        Fd::from(room),
        Fd::from(hangup),
    )
}
