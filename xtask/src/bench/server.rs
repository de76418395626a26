//! The `server` bench group (`benches/benches/server.rs`: one server
//! thread, a `WaitSet`, against N client processes): not criterion, so it
//! writes its own markdown section, `server.md`, into the report
//! directory, and the report appends it.
//!
//! `cargo xtask bench --group server [--full] [N ...]` runs only this
//! group and prints its section (for a quick look, or to rerun it on a
//! quiet machine); it leaves `docs/bench/` alone.

use std::path::Path;
use std::process::{Command, ExitCode};

/// Runs only the server group if `args` ask for it (`--group server`).
pub fn run_group(args: &[String], root: &Path, out: &Path) -> Option<ExitCode> {
    let at = args.iter().position(|a| a == "--group")?;
    if args.get(at + 1).map(String::as_str) != Some("server") {
        return None;
    }
    let full = args.iter().any(|a| a == "--full");
    // Numbers on the command line choose N (e.g. `--group server 16`).
    let ns: Vec<&String> = args.iter().filter(|a| a.parse::<usize>().is_ok()).collect();
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("==> cannot create {}: {e}", out.display());
        return Some(ExitCode::FAILURE);
    }
    eprintln!("==> cargo bench -p sharedring-benches --bench server (only the server group)");
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "sharedring-benches",
            "--bench",
            "server",
            "--",
        ])
        .args(ns)
        .env("SHAREDRING_BENCH_MODE", if full { "full" } else { "quick" })
        .env("SHAREDRING_BENCH_REPORT", out)
        .status();
    Some(match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("==> the server bench failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("==> could not run cargo: {e}");
            ExitCode::FAILURE
        }
    })
}

/// The report with the server group's section appended, if it ran.
pub fn append(mut md: String, out: &Path) -> String {
    if let Ok(section) = std::fs::read_to_string(out.join("server.md")) {
        md.push_str("\n\n");
        md.push_str(&section);
    }
    md
}
