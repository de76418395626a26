//! Project chores, run as `cargo xtask <task>`.
//!
//! - `cargo xtask ci`: the checks that `.ci/run` performs (formatting, the
//!   README's quick start against `examples/quickstart.rs`, every crate's
//!   `rust-version` against its dependencies', clippy, docs and links left
//!   unresolved in them, the test suite, the loom model checks, and the
//!   README's demo), in the same order.
//! - `cargo xtask check <quickstart|rust-versions|docs|doc-links>`: one
//!   of the steps of `ci` that is not a cargo command (see
//!   [`mod@checks`]); `doc-links` looks at the docs the last `cargo doc`
//!   wrote.
//! - `cargo xtask c-header`, `cargo xtask c-lib [--out DIR] [--prefix
//!   PREFIX]`, `cargo xtask c-examples`: the C library's header, the
//!   library with its `sharedring.pc`, and the C examples built and run
//!   (see [`mod@c`]).
//! - `cargo xtask bench [--full]`: every benchmark side by side, then
//!   `target/bench-report/report.md` and charts (see [`mod@bench`]).

mod bench;
mod c;
mod checks;

use std::process::{Command, ExitCode};

/// One step of the CI sequence: a command, or a step of [`mod@checks`].
struct Step {
    what: &'static str,
    action: Action,
}

enum Action {
    /// A program, its arguments, and extra environment variables.
    Run {
        program: &'static str,
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
    },
    /// A step of [`mod@checks`], by the name `cargo xtask check` knows it.
    Here(&'static str, fn() -> Result<(), String>),
}

/// The CI sequence. `.ci/run` runs it through `cargo xtask ci` (it only
/// adds the installation of what the steps need), so keep the two in step.
const CI_STEPS: &[Step] = &[
    Step {
        what: "formatting",
        action: Action::Run {
            program: "cargo",
            args: &["fmt", "--all", "--", "--check"],
            env: &[],
        },
    },
    Step {
        what: "the README's quick start is examples/quickstart.rs",
        action: Action::Here("quickstart", checks::quickstart),
    },
    Step {
        what: "no crate claims a lower rust-version than its dependencies",
        action: Action::Here("rust-versions", checks::rust_versions),
    },
    Step {
        what: "the committed C header is what crates/sharedring-c generates",
        action: Action::Here("c-header", checks::c_header),
    },
    Step {
        what: "clippy",
        action: Action::Run {
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
    },
    Step {
        what: "clippy with every feature",
        action: Action::Run {
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
    },
    Step {
        what: "docs, every crate after those it links to (`cargo doc --no-deps -p ..`)",
        action: Action::Here("docs", checks::docs),
    },
    Step {
        what: "no doc link left unresolved as literal text",
        action: Action::Here("doc-links", checks::doc_links),
    },
    Step {
        what: "test suite (the README's test command)",
        action: Action::Run {
            program: "cargo",
            args: &["test", "--workspace", "--all-features"],
            env: &[],
        },
    },
    Step {
        what: "loom model checks of spsc-core",
        action: Action::Run {
            program: "cargo",
            args: &["test", "-p", "spsc-core", "--release", "--test", "loom"],
            env: &[
                ("RUSTFLAGS", "--cfg loom"),
                ("CARGO_TARGET_DIR", "target/loom"),
            ],
        },
    },
    Step {
        what: "the README's demo, on 256 MiB",
        action: Action::Run {
            program: "cargo",
            args: &["run", "--release", "--example", "demo", "--", "256M"],
            env: &[],
        },
    },
];

fn run(step: &Step) -> bool {
    let (program, args, env) = match step.action {
        Action::Run { program, args, env } => (program, args, env),
        Action::Here(name, check) => {
            eprintln!("==> {}: cargo xtask check {name}", step.what);
            return match check() {
                Ok(()) => true,
                Err(problems) => {
                    eprintln!("{problems}");
                    eprintln!("==> {} failed", step.what);
                    false
                }
            };
        }
    };
    eprintln!("==> {}: {} {}", step.what, program, args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            eprintln!("==> {} failed: {status}", step.what);
            false
        }
        Err(e) => {
            eprintln!("==> {} could not start `{program}`: {e}", step.what);
            false
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <task>\n\ntasks:\n  ci               run the checks of .ci/run\n  check <name>     run one step of ci: quickstart, rust-versions, c-header, docs or doc-links\n  c-header         write crates/sharedring-c/include/sharedring.h (cbindgen)\n  c-lib [--out DIR] [--prefix P]  build the C library, header and sharedring.pc into DIR\n  c-examples       build and run examples/c against each other and the Rust c_partner\n  bench [--full]   run the benchmarks, write target/bench-report/"
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
        Some("check") => {
            let name = args.get(1).map(String::as_str);
            let Some(step) = CI_STEPS
                .iter()
                .find(|s| matches!(s.action, Action::Here(n, _) if Some(n) == name))
            else {
                return usage();
            };
            if run(step) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("bench") => bench::run(&args[1..]),
        Some(task @ ("c-header" | "c-lib" | "c-examples")) => {
            let done = match task {
                "c-header" => c::write_header(),
                "c-lib" => c::lib(&args[1..]).map(drop),
                _ => c::examples(),
            };
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
