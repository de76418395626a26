//! `cargo xtask bench [--full] [--compare <ratios.json>]`: runs every
//! criterion bench of the `sharedring-benches` crate (each row between two
//! probes; round-trip rows also timed one by one for their percentiles)
//! and the D-Bus comparison of `sharedring-dbus`, counts the syscalls per
//! streamed message and an idle receiver's CPU use, then writes
//! `target/bench-report/report.md`, `throughput.svg`, `latency.svg` and
//! `ratios.json`, prints the tables, and refreshes the committed copies in
//! `docs/bench/` and the table in the README's "Results" section.
//!
//! Every target is a ratio to a limit of the host measured in the same run
//! (the unchecked ring, copying or in place; the validated one-line round
//! trip; the futex ping-pong) or to shmem-ipc beside it, measured
//! interleaved (subject and reference alternating in short batches, the
//! median of the per-pair ratios, with its quartiles as its spread:
//! `paired.jsonl`); criterion's separate rows stand in only where no
//! interleaved ratio was measured. `ratios.json`
//! keeps those ratios: the next run compares its own with them (the copy
//! in `docs/bench/` as it was before the run, or the file given with
//! `--compare`) and the report says which targets moved by more than
//! 15 %.
//!
//! `--group server` runs only the server group (one server thread against
//! many client processes; `server.rs`), whose section the full report
//! appends.
//!
//! `--report-only` runs nothing: it renders `target/bench-report/` from
//! the criterion results and probe records already there (any age, e.g.
//! from single groups run with `cargo bench`), without the counts, and
//! leaves `docs/bench/` and the README alone.

mod charts;
mod collect;
mod counts;
mod report;
mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

/// Entry point of `cargo xtask bench`.
pub fn run(args: &[String]) -> ExitCode {
    let full = args.iter().any(|a| a == "--full");
    let report_only = args.iter().any(|a| a == "--report-only");
    let root = workspace_root();
    let compare_with = match args.iter().position(|a| a == "--compare") {
        Some(i) => match args.get(i + 1) {
            Some(f) => PathBuf::from(f),
            None => {
                eprintln!("==> --compare needs a file (a ratios.json of an earlier run)");
                return ExitCode::FAILURE;
            }
        },
        None => root.join("docs/bench/ratios.json"),
    };
    // Read before this run overwrites it.
    let previous = std::fs::read_to_string(&compare_with)
        .ok()
        .and_then(|t| report::Ratios::from_json(&t));
    if previous.is_none() {
        eprintln!(
            "==> no earlier ratios in {}: the report will not compare runs",
            compare_with.display()
        );
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = target.join("bench-report");
    if let Some(code) = server::run_group(args, &root, &out) {
        return code;
    }
    if !report_only {
        let _ = std::fs::remove_dir_all(&out);
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("==> cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let started = if report_only {
        SystemTime::UNIX_EPOCH
    } else {
        SystemTime::now()
    };
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
            "--features",
            "test-bus",
            "--bench",
            "dbus_throughput",
        ],
    ];
    for &args in runs.iter().filter(|_| !report_only) {
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
    let counts = if report_only {
        counts::Counts::default()
    } else {
        counts::measure(&root, full)
    };
    let load_after = loadavg();
    let mut tables = collect::tables(&target.join("criterion"), &out.join("rows.jsonl"), started);
    collect::attach_pairs(&mut tables, &out.join("paired.jsonl"));
    if tables.is_empty() {
        eprintln!("==> no criterion results newer than this run were found");
        return ExitCode::FAILURE;
    }
    let pcts = collect::percentiles(&out.join("latency.jsonl"));
    let meta = report::Meta {
        mode: mode.to_owned(),
        date: date(),
        host: host(),
        load: format!("{load_before} before, {load_after} after"),
    };
    let md = report::markdown(&meta, &tables, &pcts, &counts, previous.as_ref());
    let md = server::append(md, &out);
    let summary = report::readme_summary(&meta, &tables, &counts, previous.as_ref());
    let ratios = report::Ratios::of(&meta, &report::checks(&tables, &counts));
    let written = (|| -> std::io::Result<()> {
        std::fs::write(out.join("report.md"), &md)?;
        std::fs::write(out.join("ratios.json"), ratios.to_json())?;
        charts::throughput(&tables, &meta.host, &out.join("throughput.svg"))?;
        charts::latency(&tables, &meta.host, &out.join("latency.svg"))?;
        if report_only {
            return Ok(());
        }
        let docs = root.join("docs/bench");
        std::fs::create_dir_all(&docs)?;
        for f in ["report.md", "throughput.svg", "latency.svg", "ratios.json"] {
            std::fs::copy(out.join(f), docs.join(f))?;
        }
        report::update_readme(&root.join("README.md"), &summary)
    })();
    println!("{md}");
    match written {
        Ok(()) if report_only => {
            eprintln!("==> wrote {} (report only)", out.display());
            ExitCode::SUCCESS
        }
        Ok(()) => {
            eprintln!(
                "==> wrote {} (report.md, throughput.svg, latency.svg, ratios.json), copied to docs/bench/, README results refreshed",
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

/// The host as the report names it: CPU model with its family, model and
/// stepping numbers (from /proc/cpuinfo), the CPU count and the kernel.
fn host() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let numbers = match (field("cpu family"), field("model"), field("stepping")) {
        (Some(f), Some(m), Some(st)) => format!(" (family {f}, model {m}, stepping {st})"),
        (Some(f), Some(m), None) => format!(" (family {f}, model {m})"),
        _ => String::new(),
    };
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "Linux".into());
    format!("{model}{numbers}, {cpus} CPUs, {kernel}")
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown date".into(), |s| s.trim().to_owned())
}
