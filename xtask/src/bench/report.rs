//! The markdown report: one table per criterion group (every row, its
//! probe, and its ratio to every other row of the group), the targets of
//! the project checked against the figures, and the syscall and idle
//! counts.

use std::fmt::Write as _;
use std::path::Path;

use super::collect::{Percentiles, Row, Table};
use super::counts::Counts;

/// Where and when the figures were taken.
pub struct Meta {
    /// `quick` or `full`.
    pub mode: String,
    /// UTC date.
    pub date: String,
    /// The host: CPU model, family/model/stepping, CPU count, kernel.
    pub host: String,
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

/// How a target bounds its ratio.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be above this.
    Above(f64),
    /// The ratio must be at most this.
    AtMost(f64),
}

/// One target: a stable key (for comparing runs), a description, the
/// measured ratio or figure, and whether it holds.
pub struct Check {
    /// Stable name of the target, the key in `ratios.json`.
    pub key: String,
    what: String,
    /// The ratio, for ratio targets (compared run to run).
    pub ratio: Option<f64>,
    measured: String,
    met: Option<bool>,
}

fn find<'a>(tables: &'a [Table], group: &str, id: &str) -> Option<&'a Row> {
    tables.iter().find(|t| t.group == group)?.row(id)
}

/// Time of `b` over time of `a`: above 1 when `a` is faster (for a
/// throughput row, `a`'s throughput as a multiple of `b`'s), from the two
/// criterion rows.
fn speedup(tables: &[Table], group: &str, a: &str, b: &str) -> Option<f64> {
    Some(find(tables, group, b)?.ns / find(tables, group, a)?.ns)
}

/// A target's ratio: measured interleaved (with its quartiles and the
/// number of pairs), or from two criterion rows.
#[derive(Debug, Clone)]
struct Measured {
    ratio: f64,
    /// First and third quartile of the per-pair ratios, the pairs kept
    /// and the pairs dropped (preempted).
    spread: Option<(f64, f64, u64, u64)>,
    /// Each set-up's ratio, when there were several.
    setups: Vec<f64>,
    slow: bool,
    /// The host was so busy that preempted pairs were kept.
    busy_host: bool,
}

/// The speed-up of `a` over `b` (see [`speedup`]): the interleaved
/// measurement if there is one, else the criterion rows.
fn measured_speedup(tables: &[Table], group: &str, a: &str, b: &str) -> Option<Measured> {
    let t = tables.iter().find(|t| t.group == group)?;
    if let Some(p) = t
        .pairs
        .iter()
        .find(|p| p.subject == a && p.reference == b && p.median.is_finite())
    {
        return Some(Measured {
            ratio: p.median,
            spread: Some((p.q1, p.q3, p.pairs, p.dropped)),
            setups: p.setups.clone(),
            slow: p.slow,
            busy_host: p.busy_host,
        });
    }
    speedup(tables, group, a, b).map(|ratio| Measured {
        ratio,
        spread: None,
        setups: Vec::new(),
        slow: false,
        busy_host: false,
    })
}

/// The slow-down of `a` against `b` (time of `a` over time of `b`; for
/// round trips, `a`'s round trip as a multiple of `b`'s), interleaved if
/// measured so.
fn measured_slowdown(tables: &[Table], group: &str, a: &str, b: &str) -> Option<Measured> {
    measured_speedup(tables, group, a, b).map(|m| Measured {
        ratio: 1.0 / m.ratio,
        spread: m.spread.map(|(q1, q3, n, d)| (1.0 / q3, 1.0 / q1, n, d)),
        setups: m.setups.iter().map(|r| 1.0 / r).collect(),
        slow: m.slow,
        busy_host: m.busy_host,
    })
}

fn ratio_check(key: String, what: String, m: Option<Measured>, bound: Bound) -> Check {
    let r = m.as_ref().map(|m| m.ratio);
    let met = r.map(|r| match bound {
        Bound::AtLeast(x) => r >= x,
        Bound::Above(x) => r > x,
        Bound::AtMost(x) => r <= x,
    });
    let measured = match &m {
        None => "n/a".into(),
        Some(Measured {
            ratio,
            spread: Some((lo, hi, n, dropped)),
            setups,
            slow,
            busy_host,
        }) => format!(
            "{} (quartiles {}–{}{}, {n} pairs{}{}{})",
            fmt_ratio(*ratio),
            fmt_ratio(*lo),
            fmt_ratio(*hi),
            if setups.len() > 1 {
                format!(
                    "; {} set-ups: {}",
                    setups.len(),
                    setups
                        .iter()
                        .map(|r| fmt_ratio(*r))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            if *dropped > 0 {
                format!(", {dropped} preempted pairs dropped")
            } else {
                String::new()
            },
            if *busy_host {
                ", **busy host**: preempted pairs kept"
            } else {
                ""
            },
            if *slow { ", **slow mode**" } else { "" }
        ),
        Some(Measured { ratio, .. }) => format!("{} (separate rows)", fmt_ratio(*ratio)),
    };
    Check {
        key,
        what,
        ratio: r,
        measured,
        met,
    }
}

/// The stream sizes measured in this run, smallest first.
fn stream_sizes(tables: &[Table]) -> Vec<String> {
    let mut sizes: Vec<String> = tables
        .iter()
        .filter_map(|t| t.group.strip_prefix("stream_"))
        .map(str::to_owned)
        .collect();
    sizes.sort_by_key(|s| size_bytes(s));
    sizes
}

fn size_bytes(label: &str) -> u64 {
    let (num, mult) = if let Some(n) = label.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = label.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (label.trim_end_matches('B'), 1)
    };
    num.parse::<u64>().unwrap_or(0) * mult
}

/// Every target, each a ratio to a limit (or a peer) measured in the
/// same run, then the syscall and idle counts.
pub fn checks(tables: &[Table], counts: &Counts) -> Vec<Check> {
    let mut v = Vec::new();
    // Round trips.
    for (id, name) in [
        ("sharedring-busy", "element ring"),
        ("sharedring-duplex-busy", "`Duplex`"),
    ] {
        v.push(ratio_check(
            format!("rtt_8B/{id}:validated-line"),
            format!(
                "8 B busy round trip, {name}: ≤ 1.1x the validated one-line round trip \
                 (time ratio)"
            ),
            measured_slowdown(tables, "rtt_8B", id, "validated-line"),
            Bound::AtMost(1.1),
        ));
        v.push(ratio_check(
            format!("rtt_8B/{id}:shmem-ipc-busy"),
            format!("8 B busy round trip, {name}: faster than shmem-ipc 0.3 busy (speed-up)"),
            measured_speedup(tables, "rtt_8B", id, "shmem-ipc-busy"),
            Bound::Above(1.0),
        ));
    }
    v.push(ratio_check(
        "rtt_8B/sharedring-park:futex".into(),
        "park-at-once round trip: ≤ 1.1x the futex ping-pong (time ratio)".into(),
        measured_slowdown(tables, "rtt_8B", "sharedring-park", "futex"),
        Bound::AtMost(1.1),
    ));
    v.push(ratio_check(
        "rtt_8B/sharedring-blocking:shmem-ipc-blocking".into(),
        "default blocking round trip: faster than shmem-ipc 0.3 blocking (speed-up)".into(),
        measured_speedup(
            tables,
            "rtt_8B",
            "sharedring-blocking",
            "shmem-ipc-blocking",
        ),
        Bound::Above(1.0),
    ));
    // Streaming.
    for size in stream_sizes(tables) {
        let g = format!("stream_{size}");
        if size_bytes(&size) >= 1 << 10 {
            v.push(ratio_check(
                format!("{g}/sharedring-copy:unchecked-copy"),
                format!("{size} streaming, copy: ≥ 0.95x the unchecked ring (throughput ratio)"),
                measured_speedup(tables, &g, "sharedring-copy", "unchecked-copy"),
                Bound::AtLeast(0.95),
            ));
        }
        v.push(ratio_check(
            format!("{g}/sharedring-inplace:unchecked-inplace"),
            format!(
                "{size} streaming, in place: ≥ 0.9x the unchecked ring in place \
                 (throughput ratio)"
            ),
            measured_speedup(tables, &g, "sharedring-inplace", "unchecked-inplace"),
            Bound::AtLeast(0.9),
        ));
        v.push(ratio_check(
            format!("{g}/sharedring-copy:shmem-ipc"),
            format!("{size} streaming, copy: faster than shmem-ipc 0.3 (throughput ratio)"),
            measured_speedup(tables, &g, "sharedring-copy", "shmem-ipc"),
            Bound::Above(1.0),
        ));
    }
    // Message rings.
    for t in tables.iter().filter(|t| t.group.starts_with("msg_stream_")) {
        let size = t.group.trim_start_matches("msg_stream_");
        v.push(ratio_check(
            format!("{}/sharedring-msg:sharedring-elements", t.group),
            format!("{size} messages: ≥ 0.9x the element ring (throughput ratio)"),
            measured_speedup(tables, &t.group, "sharedring-msg", "sharedring-elements"),
            Bound::AtLeast(0.9),
        ));
        if size == "64B" {
            v.push(ratio_check(
                format!("{}/sharedring-msg:shmem-ipc", t.group),
                format!("{size} messages: ≥ 1.5x shmem-ipc 0.3 (throughput ratio)"),
                measured_speedup(tables, &t.group, "sharedring-msg", "shmem-ipc"),
                Bound::AtLeast(1.5),
            ));
        }
    }
    // Broadcast (benches/broadcast.rs): the publisher's cost with 16
    // subscriber processes against its cost with one, interleaved.
    for t in tables
        .iter()
        .filter(|t| t.group.starts_with("broadcast_cost_"))
    {
        let size = t.group.trim_start_matches("broadcast_cost_");
        v.push(ratio_check(
            format!("{}/lossy-N16:lossy-N1", t.group),
            format!(
                "broadcast of {size} messages, lossy: the publisher's cost per message with \
                 16 subscribers ≤ 1.2x its cost with one (time ratio)"
            ),
            measured_slowdown(tables, &t.group, "lossy-N16", "lossy-N1"),
            Bound::AtMost(1.2),
        ));
    }
    // The C API (benches/c_api.rs).
    for t in tables.iter().filter(|t| t.group.starts_with("c_api_")) {
        let size = t.group.trim_start_matches("c_api_");
        v.push(ratio_check(
            format!("{}/c-api:rust-api", t.group),
            format!("{size} messages through the C API: ≥ 0.9x the Rust API (throughput ratio)"),
            measured_speedup(tables, &t.group, "c-api", "rust-api"),
            Bound::AtLeast(0.9),
        ));
    }
    for w in &counts.wakeups {
        v.push(Check {
            key: format!("syscalls/{}", w.size),
            what: format!(
                "streaming {} B, consumer keeping up: ≤ 1 syscall per 1000 messages",
                w.size
            ),
            ratio: None,
            measured: format!("{:.2} per 1000 ({})", w.per_1000, w.tool),
            met: Some(w.per_1000 <= 1.0),
        });
    }
    if let Some((cpu, secs)) = counts.idle_cpu {
        v.push(Check {
            key: "idle".into(),
            what: "idle receiver blocked in `recv`: < 1 % of one CPU".into(),
            ratio: None,
            measured: format!("{cpu:.3} % over {secs:.1} s"),
            met: Some(cpu < 1.0),
        });
    }
    v
}

/// The ratios of a run, kept next to the report so the next run can say
/// whether the two agree.
pub struct Ratios {
    /// When.
    pub date: String,
    /// The host, as named in the report.
    pub host: String,
    /// `quick` or `full`.
    pub mode: String,
    /// Target key and ratio.
    pub ratios: Vec<(String, f64)>,
}

impl Ratios {
    /// This run's ratios.
    pub fn of(meta: &Meta, checks: &[Check]) -> Self {
        Self {
            date: meta.date.clone(),
            host: meta.host.clone(),
            mode: meta.mode.clone(),
            ratios: checks
                .iter()
                .filter_map(|c| {
                    c.ratio
                        .filter(|r| r.is_finite())
                        .map(|r| (c.key.clone(), r))
                })
                .collect(),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        let ratios: serde_json::Map<String, serde_json::Value> = self
            .ratios
            .iter()
            .map(|(k, r)| (k.clone(), serde_json::json!(r)))
            .collect();
        let v = serde_json::json!({
            "date": self.date,
            "host": self.host,
            "mode": self.mode,
            "ratios": ratios,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// Parses what [`Ratios::to_json`] wrote.
    pub fn from_json(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v[k].as_str().unwrap_or("?").to_owned();
        Some(Self {
            date: s("date"),
            host: s("host"),
            mode: s("mode"),
            ratios: v["ratios"]
                .as_object()?
                .iter()
                .filter_map(|(k, r)| Some((k.clone(), r.as_f64()?)))
                .collect(),
        })
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.ratios.iter().find(|(k, _)| k == key).map(|(_, r)| *r)
    }
}

/// How far apart two runs' ratios may be and still agree.
pub const AGREEMENT: f64 = 0.15;

/// The relative change of a ratio from the previous run.
fn change(now: f64, before: f64) -> f64 {
    now / before - 1.0
}

fn agreement_cell(c: &Check, previous: Option<&Ratios>) -> String {
    match (c.ratio, previous.and_then(|p| p.get(&c.key))) {
        (Some(now), Some(before)) if now.is_finite() && before > 0.0 => {
            let d = change(now, before);
            if d.abs() <= AGREEMENT {
                format!("{} ({:+.0} %)", fmt_ratio(before), 100.0 * d)
            } else {
                format!("{} (**{:+.0} %**)", fmt_ratio(before), 100.0 * d)
            }
        }
        (Some(_), _) => "–".into(),
        (None, _) => "".into(),
    }
}

fn checks_table(out: &mut String, checks: &[Check], previous: Option<&Ratios>) {
    let _ = writeln!(
        out,
        "| target | measured | met | previous run (change) |\n| --- | ---: | :---: | ---: |"
    );
    for c in checks {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.what,
            c.measured,
            met,
            agreement_cell(c, previous)
        );
    }
    let _ = writeln!(out);
}

/// The paragraph on run-to-run agreement.
fn agreement(out: &mut String, meta: &Meta, checks: &[Check], previous: Option<&Ratios>) {
    let Some(p) = previous else {
        let _ = writeln!(
            out,
            "No previous run to compare with (`cargo xtask bench` compares with the \
             `ratios.json` kept next to the report, or with `--compare <file>`).\n"
        );
        return;
    };
    let _ = writeln!(
        out,
        "Compared with the previous run ({}, `{}` mode, on {}): a target ratio agrees \
         when it is within {:.0} % of that run's.",
        p.date,
        p.mode,
        p.host,
        100.0 * AGREEMENT
    );
    if p.host != meta.host {
        let _ = writeln!(
            out,
            "**The previous run was on another host**: its ratios are shown, but two \
             hosts are not expected to agree."
        );
    }
    if p.date.get(..10) != meta.date.get(..10) {
        let _ = writeln!(out, "The previous run was not on the same day.");
    }
    if p.mode != meta.mode {
        let _ = writeln!(out, "The previous run used the other mode (`{}`).", p.mode);
    }
    let compared: Vec<(&Check, f64, f64)> = checks
        .iter()
        .filter_map(|c| {
            let now = c.ratio.filter(|r| r.is_finite())?;
            Some((c, now, p.get(&c.key)?))
        })
        .collect();
    let off: Vec<&(&Check, f64, f64)> = compared
        .iter()
        .filter(|(_, now, before)| change(*now, *before).abs() > AGREEMENT)
        .collect();
    if off.is_empty() {
        let _ = writeln!(
            out,
            "All {} target ratios found in both runs agree.\n",
            compared.len()
        );
    } else {
        let _ = writeln!(
            out,
            "**{} of {} target ratios do not agree** with the previous run:\n",
            off.len(),
            compared.len()
        );
        for (c, now, before) in off {
            let _ = writeln!(
                out,
                "- {}: {} now, {} then ({:+.0} %)",
                c.what,
                fmt_ratio(*now),
                fmt_ratio(*before),
                100.0 * change(*now, *before)
            );
        }
        let _ = writeln!(out);
    }
}

fn host_line(out: &mut String, meta: &Meta) {
    let _ = writeln!(
        out,
        "*Figures from one host: {}; they hold for that host only.*\n",
        meta.host
    );
}

/// The hardware's limits measured in this run, and how close sharedring
/// comes to each.
fn limits(out: &mut String, tables: &[Table], pcts: &[Percentiles]) {
    let sizes = stream_sizes(tables);
    if !sizes.is_empty() {
        let _ = writeln!(
            out,
            "| size | `unchecked-copy` | `sharedring-copy` | of the limit | \
             `unchecked-inplace` | `sharedring-inplace` | of the limit | \
             `memcpy` (one thread, for scale) |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for size in &sizes {
            let g = format!("stream_{size}");
            let rate = |id: &str| {
                find(tables, &g, id)
                    .and_then(Row::bytes_per_sec)
                    .map_or("n/a".into(), fmt_rate)
            };
            let of = |a: &str, b: &str| {
                measured_speedup(tables, &g, a, b).map_or("n/a".into(), |m| fmt_ratio(m.ratio))
            };
            let _ = writeln!(
                out,
                "| {size} | {} | {} | {} | {} | {} | {} | {} |",
                rate("unchecked-copy"),
                rate("sharedring-copy"),
                of("sharedring-copy", "unchecked-copy"),
                rate("unchecked-inplace"),
                rate("sharedring-inplace"),
                of("sharedring-inplace", "unchecked-inplace"),
                rate("memcpy"),
            );
        }
        let _ = writeln!(out);
    }
    if tables.iter().any(|t| t.group == "rtt_8B") {
        let _ = writeln!(
            out,
            "| round-trip limit | median | sharedring row | median | time ratio | \
             ratio of the p50s |\n\
             | --- | ---: | --- | ---: | ---: | ---: |"
        );
        let p50 = |id: &str| {
            pcts.iter()
                .find(|p| p.group == "rtt_8B" && p.row == id)
                .map(|p| p.p[0])
        };
        for (limit, row) in [
            ("validated-line", "sharedring-busy"),
            ("validated-line", "sharedring-duplex-busy"),
            ("validated-line", "spsc-core-elem-busy"),
            ("validated-line", "spsc-core-msg-busy"),
            ("atomic-busy", "sharedring-busy"),
            ("futex", "sharedring-park"),
        ] {
            let ns = |id: &str| find(tables, "rtt_8B", id).map_or("n/a".into(), |r| fmt_ns(r.ns));
            let _ = writeln!(
                out,
                "| `{limit}` | {} | `{row}` | {} | {} | {} |",
                ns(limit),
                ns(row),
                measured_slowdown(tables, "rtt_8B", row, limit)
                    .map_or("n/a".into(), |m| fmt_ratio(m.ratio)),
                p50(row)
                    .zip(p50(limit))
                    .map_or("n/a".into(), |(a, b)| fmt_ratio(a / b))
            );
        }
        let _ = writeln!(
            out,
            "\n`spsc-core-elem-busy` and `spsc-core-msg-busy` are `spsc-core`'s halves \
             without the facade, driven as the facade's non-blocking calls drive them \
             (wake-up checks, the closed word on every empty poll); their distance from \
             `sharedring-busy` and `sharedring-duplex-busy` is what the facade costs."
        );
        let _ = writeln!(out);
    }
}

fn percentile_tables(out: &mut String, tables: &[Table], pcts: &[Percentiles]) {
    let mut groups: Vec<&str> = Vec::new();
    for p in pcts {
        if !groups.contains(&p.group.as_str()) {
            groups.push(&p.group);
        }
    }
    for g in groups {
        let _ = writeln!(
            out,
            "### `{g}`\n\n| row | round trips | p50 | p99 | p99.9 | p99.99 | max | criterion median | probe before / after |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for p in pcts.iter().filter(|p| p.group == g) {
            let median = find(tables, g, &p.row).map_or("n/a".into(), |r| fmt_ns(r.ns));
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {:.0} / {:.0} ns{} |",
                p.row,
                p.round_trips,
                fmt_ns(p.p[0]),
                fmt_ns(p.p[1]),
                fmt_ns(p.p[2]),
                fmt_ns(p.p[3]),
                fmt_ns(p.p[4]),
                median,
                p.probe.0,
                p.probe.1,
                if p.slow { ", **slow mode**" } else { "" }
            );
        }
        let _ = writeln!(out);
    }
}

/// The whole report.
pub fn markdown(
    meta: &Meta,
    tables: &[Table],
    pcts: &[Percentiles],
    counts: &Counts,
    previous: Option<&Ratios>,
) -> String {
    let checks = checks(tables, counts);
    let mut out = String::new();
    let _ = writeln!(out, "# sharedring benchmark report\n");
    let _ = writeln!(
        out,
        "`cargo xtask bench{}` on {}. **Host**: {} (load average {}). Every figure \
         below was measured on this host in this one run, side by side, and holds for \
         this host only. The two sides of every cross-process or cross-thread row run \
         on CPUs 0 and 1.\n",
        if meta.mode == "full" { " --full" } else { "" },
        meta.date,
        meta.host,
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
    host_line(&mut out, meta);
    let _ = writeln!(
        out,
        "Every target is a ratio to a limit of this host measured in this same run \
         (never to single-thread memcpy, which no cross-core transfer can reach), or \
         to shmem-ipc 0.3 measured beside it. The limits: `unchecked-copy` and \
         `unchecked-inplace` (a plain SPSC ring of the same size between the same two \
         pinned processes, no validation, no wake-ups; copied in and out, or written \
         and read in place), `validated-line` (a busy ping-pong through a ring of \
         64 one-line slots per direction, 4 KiB like the `Duplex` row's rings: each \
         message's sequence number, length and 8-byte payload share one cache line, \
         the header loaded once and checked; `validated-line-fixed`, which reuses one \
         line per direction, is shown for scale), `futex` (a futex ping-pong). A throughput ratio is \
         sharedring's throughput over the reference's; a time ratio is sharedring's \
         round trip over the reference's. Each ratio is measured **interleaved**: \
         subject and reference are set up side by side and run in alternating \
         batches of a few milliseconds (A B, B A, …, after a warm-up), so both see \
         the same state of the host; the ratio is the median of the per-pair \
         ratios, and the parentheses give their first and third quartiles (the \
         ratio's own spread in this run). The rows are set up afresh several \
         times (new rings, new memory, new peers) and compared again: the ratio \
         is the median over set-ups, each set-up's ratio is listed (one set-up \
         of a row can be a third faster than another here while it is steady \
         over all its batches), and so is the number of pairs (a pair during \
         which a process of either row waited for a CPU for more than 1 % of \
         the pair's time, preempted by another process or woken onto a busy \
         one, is dropped and taken again; many dropped pairs say the host was \
         busy). \"separate \
         rows\" marks a ratio of two criterion rows measured apart, where no \
         interleaved measurement was made. The \"of the limit\" and \"time ratio\" \
         columns of the limits below are the same interleaved ratios. The last \
         column is the previous run's ratio and the change from it; a change \
         beyond {:.0} % is in bold.\n",
        100.0 * AGREEMENT
    );
    checks_table(&mut out, &checks, previous);
    let _ = writeln!(out, "## Run-to-run agreement\n");
    agreement(&mut out, meta, &checks, previous);
    let _ = writeln!(out, "## The limits of this host\n");
    host_line(&mut out, meta);
    limits(&mut out, tables, pcts);
    let _ = writeln!(out, "## Round-trip percentiles\n");
    host_line(&mut out, meta);
    if pcts.is_empty() {
        let _ = writeln!(out, "Not measured.\n");
    } else {
        let _ = writeln!(
            out,
            "Each row's round trips timed one by one (one clock read per round trip, \
             its cost included: {}), right after criterion's estimate of the same row \
             (whose median is of per-sample means, so it includes the tail), between \
             probes of their own. p99.99 of fewer than 100 000 round trips rests on a \
             handful of samples.\n",
            pcts.iter()
                .map(|p| p.clock_read_ns)
                .find(|c| c.is_finite())
                .map_or("not recorded".into(), |c| format!(
                    "{c:.0} ns per read here"
                ))
        );
        percentile_tables(&mut out, tables, pcts);
    }
    let _ = writeln!(out, "## Wake-up syscalls and idle CPU\n");
    host_line(&mut out, meta);
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
    host_line(&mut out, meta);
    for t in tables {
        group_table(&mut out, t);
    }
    let _ = writeln!(
        out,
        "Charts: `throughput.svg` (the `stream_*` groups) and `latency.svg` (the \
         `rtt_*` groups), next to this file; from the same host and run."
    );
    out
}

/// The short table for the README: streaming at each size and the round
/// trips, with the key ratios.
pub fn readme_summary(
    meta: &Meta,
    tables: &[Table],
    counts: &Counts,
    previous: Option<&Ratios>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "From `cargo xtask bench{}` on {}, on one host: {}. Every figure from one \
         run on that host (they hold for it only), the two processes pinned to CPUs \
         0 and 1. Full tables, limits, percentiles, probes and every ratio: \
         [`docs/bench/report.md`](docs/bench/report.md).\n",
        if meta.mode == "full" { " --full" } else { "" },
        meta.date,
        meta.host
    );
    let streams: Vec<&Table> = tables
        .iter()
        .filter(|t| t.group.starts_with("stream_"))
        .collect();
    if !streams.is_empty() {
        let ids = [
            "sharedring-copy",
            "unchecked-copy",
            "sharedring-inplace",
            "unchecked-inplace",
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
    let _ = writeln!(
        out,
        "Targets (each a ratio to a limit of the host measured in the same run; see the \
         report):\n"
    );
    checks_table(&mut out, &checks(tables, counts), previous);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::collect::{attach_pairs, Pair};
    use crate::bench::counts::Counts;

    fn row(id: &str, ns: f64) -> Row {
        Row {
            id: id.into(),
            ns,
            ns_low: ns,
            ns_high: ns,
            bytes: None,
            elements: None,
            probe: None,
            attempts: 1,
            slow: false,
        }
    }

    fn table() -> Table {
        Table {
            group: "rtt_8B".into(),
            rows: vec![row("sharedring-busy", 600.0), row("validated-line", 300.0)],
            pairs: Vec::new(),
        }
    }

    /// Without an interleaved measurement the target falls back to the
    /// two criterion rows, and says so.
    #[test]
    fn a_target_without_pairs_is_the_ratio_of_the_separate_rows() {
        let m =
            measured_slowdown(&[table()], "rtt_8B", "sharedring-busy", "validated-line").unwrap();
        assert!((m.ratio - 2.0).abs() < 1e-9);
        assert!(m.spread.is_none());
        let c = ratio_check("k".into(), "w".into(), Some(m), Bound::AtMost(1.1));
        assert_eq!(c.met, Some(false));
        assert!(c.measured.contains("separate rows"), "{}", c.measured);
    }

    /// The broadcast group's interleaved ratio becomes the publisher-cost
    /// target, checked against 1.2x.
    #[test]
    fn the_broadcast_cost_group_is_a_target() {
        let t = Table {
            group: "broadcast_cost_64B".into(),
            rows: vec![row("lossy-N1", 100.0), row("lossy-N16", 130.0)],
            pairs: Vec::new(),
        };
        let counts = Counts {
            wakeups: Vec::new(),
            idle_cpu: None,
            notes: Vec::new(),
        };
        let all = checks(&[t], &counts);
        let c = all
            .iter()
            .find(|c| c.key == "broadcast_cost_64B/lossy-N16:lossy-N1")
            .expect("a broadcast check");
        assert!((c.ratio.unwrap() - 1.3).abs() < 1e-9);
        assert_eq!(c.met, Some(false));
        assert!(c.what.contains("16 subscribers"), "{}", c.what);
    }

    /// The interleaved record wins over the rows; a time ratio is the
    /// inverse of the recorded speed-up, its quartiles swapped.
    #[test]
    fn an_interleaved_pair_is_preferred_and_inverted_for_time_ratios() {
        let mut t = table();
        t.pairs.push(Pair {
            subject: "sharedring-busy".into(),
            reference: "validated-line".into(),
            pairs: 61,
            dropped: 3,
            median: 0.8,
            q1: 0.5,
            q3: 1.0,
            setups: vec![0.8],
            slow: false,
            busy_host: false,
        });
        let tables = [t];
        let m = measured_slowdown(&tables, "rtt_8B", "sharedring-busy", "validated-line").unwrap();
        assert!((m.ratio - 1.25).abs() < 1e-9);
        let (lo, hi, n, d) = m.spread.unwrap();
        assert!((lo - 1.0).abs() < 1e-9 && (hi - 2.0).abs() < 1e-9);
        assert_eq!((n, d), (61, 3));
        let c = ratio_check("k".into(), "w".into(), Some(m), Bound::AtMost(1.1));
        assert_eq!(c.met, Some(false));
        assert!(c.measured.contains("61 pairs"), "{}", c.measured);
        assert!(
            c.measured.contains("3 preempted pairs dropped"),
            "{}",
            c.measured
        );
    }

    /// `paired.jsonl` lines attach to their group; a later attempt of the
    /// same comparison replaces the earlier one; other groups are left
    /// alone.
    #[test]
    fn paired_records_attach_to_their_group_last_attempt_wins() {
        let dir = std::env::temp_dir().join(format!("xtask-paired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("paired.jsonl");
        let line = |median: f64, busy: bool| {
            serde_json::json!({
                "group": "rtt_8B", "subject": "sharedring-busy",
                "reference": "validated-line", "pairs": 61,
                "pairs_dropped_preempted": 0, "busy_host": busy,
                "speedup_median": median, "speedup_q1": median * 0.9,
                "speedup_q3": median * 1.1, "slow": false,
            })
            .to_string()
        };
        let other = serde_json::json!({"group": "nowhere", "subject": "a", "reference": "b"});
        std::fs::write(
            &file,
            format!(
                "{}\n{}\n{other}\nnot json\n",
                line(0.4, false),
                line(0.5, true)
            ),
        )
        .unwrap();
        let mut tables = [table()];
        attach_pairs(&mut tables, &file);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(tables[0].pairs.len(), 1);
        let p = &tables[0].pairs[0];
        assert!((p.median - 0.5).abs() < 1e-9);
        assert!(p.busy_host);
        let c = ratio_check(
            "k".into(),
            "w".into(),
            measured_slowdown(&tables, "rtt_8B", "sharedring-busy", "validated-line"),
            Bound::AtMost(1.1),
        );
        assert!(c.measured.contains("busy host"), "{}", c.measured);
    }

    /// The set-ups of one run combine: the ratio is the median of their
    /// medians and each is listed; a record of set-up 1 starts a new run,
    /// whose set-ups replace the earlier run's.
    #[test]
    fn set_ups_of_the_last_run_combine_into_their_median() {
        let dir = std::env::temp_dir().join(format!("xtask-setups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("paired.jsonl");
        let line = |setup: u64, median: f64| {
            serde_json::json!({
                "group": "rtt_8B", "subject": "sharedring-busy",
                "reference": "validated-line", "pairs": 61, "setup": setup,
                "speedup_median": median, "speedup_q1": median, "speedup_q3": median,
            })
            .to_string()
        };
        let lines = [
            line(1, 0.1),
            line(2, 0.1),
            line(1, 0.5),
            line(2, 0.4),
            line(3, 0.625),
        ];
        std::fs::write(&file, lines.join("\n")).unwrap();
        let mut tables = [table()];
        attach_pairs(&mut tables, &file);
        std::fs::remove_dir_all(&dir).unwrap();
        let p = &tables[0].pairs[0];
        assert_eq!(p.setups, vec![0.5, 0.4, 0.625]);
        assert!((p.median - 0.5).abs() < 1e-9);
        let c = ratio_check(
            "k".into(),
            "w".into(),
            measured_slowdown(&tables, "rtt_8B", "sharedring-busy", "validated-line"),
            Bound::AtMost(1.1),
        );
        assert!((c.ratio.unwrap() - 2.0).abs() < 1e-9);
        assert!(
            c.measured.contains("3 set-ups: 2.00x, 2.50x, 1.60x"),
            "{}",
            c.measured
        );
    }
}
