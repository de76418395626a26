//! The markdown report: one table per criterion group (every row, its
//! probe, and its ratio to every other row of the group), the targets of
//! the project checked against the figures, and the syscall and idle
//! counts.

use std::fmt::Write as _;
use std::path::Path;

use super::collect::{Row, Table};
use super::counts::Counts;

/// Where and when the figures were taken.
pub struct Meta {
    /// `quick` or `full`.
    pub mode: String,
    /// UTC date.
    pub date: String,
    /// CPU model and count.
    pub cpu: String,
    /// Kernel.
    pub kernel: String,
    /// Load averages around the run.
    pub load: String,
}

/// A duration in ns, human-readable.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "n/a".into()
    } else if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// Bytes per second, human-readable (decimal units).
pub fn fmt_rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} GB/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.1} MB/s", bps / 1e6)
    } else {
        format!("{:.0} kB/s", bps / 1e3)
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "n/a".into()
    } else if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

fn probe_cell(r: &Row) -> String {
    match r.probe {
        Some((a, b)) => format!(
            "{:.0} / {:.0} ns{}{}",
            a,
            b,
            if r.attempts > 1 {
                format!(", try {}", r.attempts)
            } else {
                String::new()
            },
            if r.slow { ", **slow mode**" } else { "" }
        ),
        None => "n/a".into(),
    }
}

fn group_table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "### `{}`\n", t.group);
    let has_bytes = t.rows.iter().any(|r| r.bytes.is_some());
    let has_elems = t.rows.iter().any(|r| r.elements.is_some());
    let _ = write!(out, "| row | time per iteration (median, 95 % CI) |");
    if has_bytes {
        let _ = write!(out, " throughput |");
    } else if has_elems {
        let _ = write!(out, " elements/s |");
    }
    let _ = write!(out, " probe before / after |");
    for r in &t.rows {
        let _ = write!(out, " vs `{}` |", r.id);
    }
    let _ = writeln!(out);
    let cols = 3 + usize::from(has_bytes || has_elems) + t.rows.len();
    let _ = writeln!(out, "|{}", " --- |".repeat(cols));
    for r in &t.rows {
        let _ = write!(
            out,
            "| `{}` | {} ({} – {}) |",
            r.id,
            fmt_ns(r.ns),
            fmt_ns(r.ns_low),
            fmt_ns(r.ns_high)
        );
        if has_bytes {
            let _ = write!(out, " {} |", r.bytes_per_sec().map_or("".into(), fmt_rate));
        } else if has_elems {
            let eps = r.elements.map(|e| e as f64 / (r.ns * 1e-9));
            let _ = write!(
                out,
                " {} |",
                eps.map_or("".into(), |e| format!("{:.1} M/s", e / 1e6))
            );
        }
        let _ = write!(out, " {} |", probe_cell(r));
        for peer in &t.rows {
            if peer.id == r.id {
                let _ = write!(out, " – |");
            } else {
                // How many times faster the row is than the peer.
                let _ = write!(out, " {} |", fmt_ratio(peer.ns / r.ns));
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
}

/// One target: a description, the measured value and whether it holds.
struct Check {
    what: String,
    measured: String,
    met: Option<bool>,
}

fn find<'a>(tables: &'a [Table], group: &str, id: &str) -> Option<&'a Row> {
    tables.iter().find(|t| t.group == group)?.row(id)
}

/// `a` is how many times faster than `b` (time of b / time of a).
fn speedup(tables: &[Table], group: &str, a: &str, b: &str) -> Option<f64> {
    Some(find(tables, group, b)?.ns / find(tables, group, a)?.ns)
}

fn checks(tables: &[Table], counts: &Counts) -> Vec<Check> {
    let mut v = Vec::new();
    let mut at_least = |what: String, r: Option<f64>, min: f64| {
        v.push(Check {
            what,
            measured: r.map_or("n/a".into(), fmt_ratio),
            met: r.map(|r| r >= min),
        });
    };
    at_least(
        "64 B streaming, copy: ≥ 4x shmem-ipc 0.3".into(),
        speedup(tables, "stream_64B", "sharedring-copy", "shmem-ipc"),
        4.0,
    );
    at_least(
        "64 B streaming, copy: ≥ 50x Unix socket".into(),
        speedup(tables, "stream_64B", "sharedring-copy", "unix-socket"),
        50.0,
    );
    for size in ["4KiB", "64KiB", "1MiB"] {
        let g = format!("stream_{size}");
        at_least(
            format!("{size} streaming, copy: ≥ 0.9x memcpy"),
            speedup(tables, &g, "sharedring-copy", "memcpy"),
            0.9,
        );
        at_least(
            format!("{size} streaming, copy: ≥ 1.0x shmem-ipc 0.3"),
            speedup(tables, &g, "sharedring-copy", "shmem-ipc"),
            1.0,
        );
        at_least(
            format!("{size} streaming, in place: ≥ 1.0x memcpy"),
            speedup(tables, &g, "sharedring-inplace", "memcpy"),
            1.0,
        );
    }
    let mut at_most = |what: &str, a: &str, b: &str, max: f64| {
        let r = speedup(tables, "rtt_8B", b, a);
        v.push(Check {
            what: what.into(),
            measured: r.map_or("n/a".into(), fmt_ratio),
            met: r.map(|r| r <= max),
        });
    };
    at_most(
        "busy round trip: ≤ 1.2x the raw atomic ping-pong",
        "sharedring-busy",
        "atomic-busy",
        1.2,
    );
    at_most(
        "default blocking round trip: ≤ 3x the raw atomic ping-pong",
        "sharedring-blocking",
        "atomic-busy",
        3.0,
    );
    at_most(
        "park-at-once round trip: ≤ 1.1x the raw futex ping-pong",
        "sharedring-park",
        "futex",
        1.1,
    );
    let r = speedup(tables, "rtt_8B", "sharedring-blocking", "unix-socket");
    v.push(Check {
        what: "default blocking round trip: ≥ 20x better than the Unix socket".into(),
        measured: r.map_or("n/a".into(), fmt_ratio),
        met: r.map(|r| r >= 20.0),
    });
    for w in &counts.wakeups {
        v.push(Check {
            what: format!(
                "streaming {} B, consumer keeping up: ≤ 1 syscall per 1000 messages",
                w.size
            ),
            measured: format!("{:.2} per 1000 ({})", w.per_1000, w.tool),
            met: Some(w.per_1000 <= 1.0),
        });
    }
    if let Some((cpu, secs)) = counts.idle_cpu {
        v.push(Check {
            what: "idle receiver blocked in `recv`: < 1 % of one CPU".into(),
            measured: format!("{cpu:.3} % over {secs:.1} s"),
            met: Some(cpu < 1.0),
        });
    }
    v
}

fn checks_table(out: &mut String, tables: &[Table], counts: &Counts) {
    let _ = writeln!(out, "| target | measured | met |\n| --- | ---: | :---: |");
    for c in checks(tables, counts) {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {} |", c.what, c.measured, met);
    }
    let _ = writeln!(out);
}

/// The whole report.
pub fn markdown(meta: &Meta, tables: &[Table], counts: &Counts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# sharedring benchmark report\n");
    let _ = writeln!(
        out,
        "`cargo xtask bench{}` on {}, {}, {} (load average {}). Every figure \
         below was measured in this one run, side by side. The two sides of every \
         cross-process or cross-thread row run on CPUs 0 and 1.\n",
        if meta.mode == "full" { " --full" } else { "" },
        meta.date,
        meta.cpu,
        meta.kernel,
        meta.load
    );
    let _ = writeln!(
        out,
        "**Probe**: a raw cross-core atomic ping-pong (round trip, median of 31 \
         batches) run before and after every row. These virtual machines have a \
         slow mode in which everything cross-core is about 3x slower; a row whose \
         probes exceed 1.6x the run's fastest probe was measured again (\"try N\"), \
         and one still slow after the last try is marked **slow mode**. \
         **Ratios**: the cell in row A, column `vs B` says how many times faster A \
         is than B (B's time / A's time); above 1 means A is faster.\n"
    );
    let _ = writeln!(out, "## Targets\n");
    checks_table(&mut out, tables, counts);
    let _ = writeln!(out, "## Wake-up syscalls and idle CPU\n");
    if counts.wakeups.is_empty() && counts.idle_cpu.is_none() {
        let _ = writeln!(out, "Not measured.\n");
    }
    for w in &counts.wakeups {
        let _ = writeln!(
            out,
            "- streaming {} B messages through a default ring (blocking `send`/`recv`): \
             {:.3} syscalls of either process per 1000 messages, counted by `{}` \
             (difference of a short and a long run, so set-up is excluded)",
            w.size,
            w.per_1000,
            if w.tool == "perf" {
                "perf stat -e raw_syscalls:sys_enter"
            } else {
                "strace -f -c"
            }
        );
    }
    if let Some((cpu, secs)) = counts.idle_cpu {
        let _ = writeln!(
            out,
            "- a receiver blocked in `recv` on an empty ring for {secs:.1} s used \
             {cpu:.3} % of one CPU (its thread CPU time over the wall time)"
        );
    }
    for n in &counts.notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(out, "\n## All groups\n");
    for t in tables {
        group_table(&mut out, t);
    }
    let _ = writeln!(
        out,
        "Charts: `throughput.svg` (the `stream_*` groups) and `latency.svg` (the \
         `rtt_*` groups), next to this file."
    );
    out
}

/// The short table for the README: streaming at each size and the round
/// trips, with the key ratios.
pub fn readme_summary(meta: &Meta, tables: &[Table], counts: &Counts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "From `cargo xtask bench{}` on {} ({}, {}); every figure from one run, \
         the two processes pinned to CPUs 0 and 1. Full tables, probes and \
         every ratio: [`docs/bench/report.md`](docs/bench/report.md).\n",
        if meta.mode == "full" { " --full" } else { "" },
        meta.date,
        meta.cpu,
        meta.kernel
    );
    let streams: Vec<&Table> = tables
        .iter()
        .filter(|t| t.group.starts_with("stream_"))
        .collect();
    if !streams.is_empty() {
        let ids = [
            "sharedring-copy",
            "sharedring-inplace",
            "shmem-ipc",
            "unix-socket",
            "pipe",
            "memcpy",
        ];
        let _ = write!(out, "| streaming, one call per message |");
        for id in ids {
            let _ = write!(out, " `{id}` |");
        }
        let _ = writeln!(out, "\n| --- |{}", " ---: |".repeat(ids.len()));
        for t in &streams {
            let _ = write!(out, "| {} |", t.group.trim_start_matches("stream_"));
            for id in ids {
                let cell = t
                    .row(id)
                    .and_then(Row::bytes_per_sec)
                    .map_or("n/a".into(), fmt_rate);
                let _ = write!(out, " {cell} |");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
    if let Some(t) = tables.iter().find(|t| t.group == "rtt_8B") {
        let _ = writeln!(
            out,
            "| round trip, 8 bytes | median | vs Unix socket |\n| --- | ---: | ---: |"
        );
        let sock = t.row("unix-socket").map(|r| r.ns);
        for r in &t.rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                r.id,
                fmt_ns(r.ns),
                sock.map_or("n/a".into(), |s| fmt_ratio(s / r.ns))
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Targets:\n");
    checks_table(&mut out, tables, counts);
    let _ = writeln!(
        out,
        "![throughput](docs/bench/throughput.svg)\n\n![latency](docs/bench/latency.svg)"
    );
    out
}

const BEGIN: &str = "<!-- bench-results:begin (cargo xtask bench rewrites this part) -->";
const END: &str = "<!-- bench-results:end -->";

/// Replaces the part of the README between the markers (or, the first
/// time, the body of its "Results" section) with `summary`.
pub fn update_readme(path: &Path, summary: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let block = format!("{BEGIN}\n{summary}{END}");
    let new = if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
        format!("{}{}{}", &text[..b], block, &text[e + END.len()..])
    } else if let Some(start) = text.find("## Results\n") {
        let body = start + "## Results\n".len();
        let end = text[body..]
            .find("\n## ")
            .map_or(text.len(), |i| body + i + 1);
        format!("{}\n{}\n\n{}", &text[..body], block, &text[end..])
    } else {
        format!("{text}\n## Results\n\n{block}\n")
    };
    std::fs::write(path, new)
}
