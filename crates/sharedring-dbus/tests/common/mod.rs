//! Helpers shared by the D-Bus test binaries: a real private bus, the
//! example programs as real processes, and descriptor counting.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
/// stdout lines on a channel.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts an example against `bus`.
    pub fn example(bus: &PrivateBus, name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(example(name))
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
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
        Self { child, lines }
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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = fd_count();
        if n == baseline || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `i`-th value the example client sends.
pub fn client_value(i: u64) -> f64 {
    (i % 1024) as f64 * 0.5
}
