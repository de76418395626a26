//! `cargo xtask bench [--full]`: runs every criterion bench of the
//! `sharedring-benches` crate (each row between two probes) and the D-Bus
//! comparison of `sharedring-dbus`, counts the
//! syscalls per streamed message and an idle receiver's CPU use, then
//! writes `target/bench-report/report.md`, `throughput.svg` and
//! `latency.svg`, prints the tables, and refreshes the committed copies in
//! `docs/bench/` and the table in the README's "Results" section.

mod charts;
mod collect;
mod counts;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

/// Entry point of `cargo xtask bench`.
pub fn run(args: &[String]) -> ExitCode {
    let full = args.iter().any(|a| a == "--full");
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = target.join("bench-report");
    let _ = std::fs::remove_dir_all(&out);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("==> cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let started = SystemTime::now();
    let load_before = loadavg();
    let mode = if full { "full" } else { "quick" };
    // The project's own benches, then D-Bus beside sharedring and a Unix
    // socket (it starts a private dbus-daemon, and fails without one).
    let runs: [&[&str]; 2] = [
        &["bench", "-p", "sharedring-benches"],
        &[
            "bench",
            "-p",
            "sharedring-dbus",
            "--bench",
            "dbus_throughput",
        ],
    ];
    for args in runs {
        eprintln!(
            "==> cargo {} ({mode} mode); load average {}",
            args.join(" "),
            loadavg()
        );
        let status = Command::new("cargo")
            .current_dir(&root)
            .args(args)
            .env("SHAREDRING_BENCH_MODE", mode)
            .env("SHAREDRING_BENCH_REPORT", &out)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("==> the benches failed: {s}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("==> could not run cargo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let counts = counts::measure(&root, full);
    let load_after = loadavg();
    let tables = collect::tables(&target.join("criterion"), &out.join("rows.jsonl"), started);
    if tables.is_empty() {
        eprintln!("==> no criterion results newer than this run were found");
        return ExitCode::FAILURE;
    }
    let meta = report::Meta {
        mode: mode.to_owned(),
        date: date(),
        cpu: cpu_model(),
        kernel: kernel(),
        load: format!("{load_before} before, {load_after} after"),
    };
    let md = report::markdown(&meta, &tables, &counts);
    let summary = report::readme_summary(&meta, &tables, &counts);
    let written = (|| -> std::io::Result<()> {
        std::fs::write(out.join("report.md"), &md)?;
        charts::throughput(&tables, &out.join("throughput.svg"))?;
        charts::latency(&tables, &out.join("latency.svg"))?;
        let docs = root.join("docs/bench");
        std::fs::create_dir_all(&docs)?;
        for f in ["report.md", "throughput.svg", "latency.svg"] {
            std::fs::copy(out.join(f), docs.join(f))?;
        }
        report::update_readme(&root.join("README.md"), &summary)
    })();
    println!("{md}");
    match written {
        Ok(()) => {
            eprintln!(
                "==> wrote {} (report.md, throughput.svg, latency.svg), copied to docs/bench/, README results refreshed",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("==> writing the report failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    format!("{model}, {cpus} CPUs")
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "Linux".into())
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown date".into(), |s| s.trim().to_owned())
}
