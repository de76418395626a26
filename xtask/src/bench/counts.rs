//! Counting what criterion cannot: syscalls per streamed message (wake-ups
//! included) and an idle receiver's CPU use.
//!
//! The stream bench binary has two non-criterion modes for this. Syscalls
//! are counted by the kernel, outside our code, so they cannot be fooled:
//! `perf stat -e raw_syscalls:sys_enter` (a tracepoint count, no slowdown)
//! where perf works, else `strace -f -c`. Each count runs twice, with a
//! short and a long stream, and the difference divided by the difference
//! in messages removes the set-up's syscalls (process start, handshake).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Syscalls per 1000 messages for one message size.
#[derive(Debug, Clone)]
pub struct Wakeups {
    /// Message size in bytes.
    pub size: usize,
    /// Syscalls (both processes) per 1000 messages.
    pub per_1000: f64,
    /// The counter used.
    pub tool: &'static str,
}

/// What the counting modes measured.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Per message size.
    pub wakeups: Vec<Wakeups>,
    /// CPU % of a receiver blocked in `recv` on an empty ring, and for how
    /// long it was measured.
    pub idle_cpu: Option<(f64, f64)>,
    /// Why something could not be measured.
    pub notes: Vec<String>,
}

fn stream_binary(root: &Path) -> Option<PathBuf> {
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "sharedring-benches",
            "--bench",
            "stream",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"]["name"] == "stream")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
}

fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"])
        .output()
        .is_ok_and(|o| o.status.success() && parse_perf(&o.stderr).is_some())
}

fn parse_perf(stderr: &[u8]) -> Option<f64> {
    String::from_utf8_lossy(stderr)
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
}

fn parse_strace(file: &Path) -> Option<f64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| {
            // "100.00    0.001  1  1234   12 total": calls is the 4th field.
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3).and_then(|c| c.parse().ok())
        })
}

/// Total syscalls of `exe --wakeups n size`, both processes.
fn count(exe: &Path, tool: &str, n: u64, size: usize, tmp: &Path) -> Option<f64> {
    let args = ["--wakeups".to_owned(), n.to_string(), size.to_string()];
    if tool == "perf" {
        let o = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--"])
            .arg(exe)
            .args(&args)
            .output()
            .ok()?;
        o.status.success().then(|| parse_perf(&o.stderr)).flatten()
    } else {
        let file = tmp.join("strace.txt");
        let o = Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&file)
            .arg(exe)
            .args(&args)
            .output()
            .ok()?;
        o.status.success().then(|| parse_strace(&file)).flatten()
    }
}

/// Runs the counting modes.
pub fn measure(root: &Path, full: bool) -> Counts {
    let mut counts = Counts::default();
    let Some(exe) = stream_binary(root) else {
        counts
            .notes
            .push("the stream bench binary was not found: no syscall counts".into());
        return counts;
    };
    let tool = if perf_works() {
        Some("perf")
    } else if Command::new("strace").arg("-V").output().is_ok() {
        Some("strace")
    } else {
        None
    };
    let tmp = std::env::temp_dir();
    match tool {
        None => counts.notes.push(
            "neither `perf` (with tracepoints) nor `strace` is installed, so wake-up \
             syscalls were not counted: `apt-get install strace` (or linux-perf) and rerun"
                .into(),
        ),
        Some(tool) => {
            let (short, long) = if full {
                (200_000, 5_200_000)
            } else {
                (100_000, 1_100_000)
            };
            for size in [8usize, 64, 4096] {
                eprintln!("==> syscalls per message, {size} B, counted by {tool}");
                let a = count(&exe, tool, short, size, &tmp);
                let b = count(&exe, tool, long, size, &tmp);
                match (a, b) {
                    (Some(a), Some(b)) => counts.wakeups.push(Wakeups {
                        size,
                        per_1000: (b - a).max(0.0) / (long - short) as f64 * 1000.0,
                        tool,
                    }),
                    _ => counts
                        .notes
                        .push(format!("counting syscalls with {tool} failed for {size} B")),
                }
            }
        }
    }
    eprintln!("==> idle receiver CPU use");
    let secs = if full { "5" } else { "2" };
    match Command::new(&exe).args(["--idle", secs]).output() {
        Ok(o) if o.status.success() => {
            let v: Option<Value> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| serde_json::from_str(l).ok());
            if let Some(v) = v {
                counts.idle_cpu = Some((
                    v["cpu_percent"].as_f64().unwrap_or(f64::NAN),
                    v["idle_seconds"].as_f64().unwrap_or(f64::NAN),
                ));
            }
        }
        _ => counts.notes.push("the idle measurement failed".into()),
    }
    counts
}
