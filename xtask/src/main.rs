//! Project chores, run as `cargo xtask <task>`.
//!
//! - `cargo xtask ci`: the checks that `.ci/run` performs (formatting,
//!   clippy, docs, the test suite, the loom model checks, and the README's
//!   demo), in the same order.
//! - `cargo xtask bench [--full]`: every benchmark side by side, then
//!   `target/bench-report/report.md` and charts (see [`mod@bench`]).

mod bench;

use std::process::{Command, ExitCode};

/// One step of the CI sequence: a program, its arguments, and extra
/// environment variables.
struct Step {
    what: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// The CI sequence. `.ci/run` runs exactly these commands (it only adds the
/// installation of what they need), so keep the two in step.
const CI_STEPS: &[Step] = &[
    Step {
        what: "formatting",
        program: "cargo",
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
    },
    Step {
        what: "clippy",
        program: "cargo",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        what: "clippy with every feature",
        program: "cargo",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        what: "docs",
        program: "cargo",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
    Step {
        what: "test suite (the README's test command)",
        program: "cargo",
        args: &["test", "--workspace", "--all-features"],
        env: &[],
    },
    Step {
        what: "loom model checks of spsc-core",
        program: "cargo",
        args: &["test", "-p", "spsc-core", "--release", "--test", "loom"],
        env: &[
            ("RUSTFLAGS", "--cfg loom"),
            ("CARGO_TARGET_DIR", "target/loom"),
        ],
    },
    Step {
        what: "the README's demo, on 256 MiB",
        program: "cargo",
        args: &["run", "--release", "--example", "demo", "--", "256M"],
        env: &[],
    },
];

fn run(step: &Step) -> bool {
    eprintln!(
        "==> {}: {} {}",
        step.what,
        step.program,
        step.args.join(" ")
    );
    let mut cmd = Command::new(step.program);
    cmd.args(step.args);
    for (k, v) in step.env {
        cmd.env(k, v);
    }
    match cmd.status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            eprintln!("==> {} failed: {status}", step.what);
            false
        }
        Err(e) => {
            eprintln!("==> {} could not start `{}`: {e}", step.what, step.program);
            false
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <task>\n\ntasks:\n  ci               run the checks of .ci/run\n  bench [--full]   run the benchmarks, write target/bench-report/"
    );
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => {
            for step in CI_STEPS {
                if !run(step) {
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("==> all CI steps passed");
            ExitCode::SUCCESS
        }
        Some("bench") => bench::run(&args[1..]),
        _ => usage(),
    }
}
