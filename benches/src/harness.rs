//! Criterion rows wrapped with the probe.
//!
//! Each row runs as: probe, the criterion measurement, probe. If either
//! probe shows the slow mode (more than [`SLOW_FACTOR`] times the fastest
//! probe seen in this run), the row is measured again, up to a few
//! attempts; criterion keeps the last measurement. Before a row, a slow
//! probe is first waited out for a few seconds, since the slow episodes
//! are short. Every attempt is appended as one JSON line to
//! `target/bench-report/rows.jsonl` (group, row, probes, attempt, whether
//! it was slow), which `cargo xtask bench` joins with criterion's
//! estimates.
//!
//!
//! A round-trip row also gets [`Group::percentiles`]: a fixed number of
//! round trips timed one by one (outside criterion's estimate, right after
//! it, between probes of their own), whose p50, p99, p99.9, p99.99 and
//! maximum go to `target/bench-report/latency.jsonl`.
//!
//! A target ratio is measured once more by [`Group::paired`]: the subject
//! and its reference, both set up and kept alive side by side, are run in
//! alternating short batches (A B, B A, A B, …) after a warm-up, and the
//! ratio is the median of the per-pair ratios, with its quartiles as its
//! own spread. Both sides see the same host state (the slow mode, another
//! process's load, the CPU's frequency) within a few milliseconds of each
//! other, where criterion's separate rows are measured seconds or minutes
//! apart. The benches set the rows up afresh [`Mode::setups`] times and
//! compare them again each time: on the 2-vCPU VM one set-up of a row
//! (its rings, its memory, its peer process) can be a third faster than
//! another (a validated one-line round trip that reuses one line per
//! direction: 220 against 300 ns per iteration in two runs, which is why
//! the reference now walks a ring of lines), while it is steady over all
//! the batches of one set-up, so only several set-ups show it. Each comparison of each set-up
//! is one JSON line in `target/bench-report/paired.jsonl`.
//!
//! `SHAREDRING_BENCH_MODE=full` selects the long settings; anything else
//! (and plain `cargo bench`) the quick ones.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, Throughput};

use crate::probe::Probe;

/// A probe this many times slower than the run's fastest is the slow mode.
pub const SLOW_FACTOR: f64 = 1.6;

/// Quick (the default) or full settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Short measurements: the whole suite in a few minutes.
    Quick,
    /// Longer measurements, more samples, more reruns.
    Full,
}

impl Mode {
    /// The mode chosen by `SHAREDRING_BENCH_MODE`.
    pub fn from_env() -> Self {
        match std::env::var("SHAREDRING_BENCH_MODE").as_deref() {
            Ok("full") => Mode::Full,
            _ => Mode::Quick,
        }
    }

    /// How many times the rows of a paired comparison are set up afresh
    /// (new rings, new peers, new memory) and compared again.
    pub fn setups(self) -> usize {
        match self {
            Mode::Quick => 3,
            Mode::Full => 5,
        }
    }

    /// How long one batch of a paired comparison runs, and how many pairs
    /// are taken.
    fn pairing(self) -> (Duration, usize) {
        match self {
            Mode::Quick => (Duration::from_millis(1), 61),
            Mode::Full => (Duration::from_millis(3), 151),
        }
    }

    fn attempts(self) -> usize {
        match self {
            Mode::Quick => 3,
            Mode::Full => 5,
        }
    }
}

/// Where the report's inputs go: `$SHAREDRING_BENCH_REPORT`, or
/// `target/bench-report` found from this executable's path
/// (`target/<profile>/deps/<bench>`).
pub fn report_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHAREDRING_BENCH_REPORT") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("bench-report"))
        .unwrap_or_else(|| PathBuf::from("target/bench-report"))
}

/// Criterion plus the probe, for one bench binary.
pub struct Harness {
    criterion: Criterion,
    probe: Probe,
    fastest: f64,
    log: File,
    latency_log: File,
    paired_log: File,
    bench: String,
    mode: Mode,
}

impl Harness {
    /// Pins this process to CPU 0, configures criterion for the mode (the
    /// command line still overrides), starts the probe and calibrates it.
    pub fn new(bench: &str) -> Self {
        crate::pin_to_cpu(0);
        let mode = Mode::from_env();
        let (warm, measure, samples) = match mode {
            Mode::Quick => (Duration::from_millis(200), Duration::from_millis(800), 10),
            Mode::Full => (Duration::from_secs(1), Duration::from_secs(3), 30),
        };
        let criterion = Criterion::default()
            .without_plots()
            .warm_up_time(warm)
            .measurement_time(measure)
            .sample_size(samples)
            .configure_from_args();
        let mut probe = Probe::start().expect("start the probe's peer");
        let fastest = (0..5).map(|_| probe.measure()).fold(f64::MAX, f64::min);
        eprintln!("probe: fastest of 5 = {fastest:.0} ns round trip");
        let dir = report_dir();
        std::fs::create_dir_all(&dir).expect("create the report directory");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rows.jsonl"))
            .expect("open rows.jsonl");
        let latency_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("latency.jsonl"))
            .expect("open latency.jsonl");
        let paired_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("paired.jsonl"))
            .expect("open paired.jsonl");
        Self {
            criterion,
            probe,
            fastest,
            log,
            latency_log,
            paired_log,
            bench: bench.to_owned(),
            mode,
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Opens a criterion group whose rows are probed.
    pub fn group(&mut self, name: &str) -> Group<'_> {
        Group {
            group: self.criterion.benchmark_group(name),
            probe: &mut self.probe,
            fastest: &mut self.fastest,
            log: &mut self.log,
            latency_log: &mut self.latency_log,
            paired_log: &mut self.paired_log,
            bench: &self.bench,
            name: name.to_owned(),
            attempts: self.mode.attempts(),
            mode: self.mode,
            measured: None,
            measured_ids: Vec::new(),
            setups: Vec::new(),
        }
    }

    /// Prints criterion's summary.
    pub fn finish(self) {
        self.criterion.final_summary();
    }
}

/// What one clock read (`Instant::now`) costs here: the median over
/// batches of back-to-back reads, ns. It is included in every sample of
/// [`Group::percentiles`].
pub fn clock_read_ns() -> f64 {
    let mut means: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..1000 {
                std::hint::black_box(Instant::now());
            }
            t.elapsed().as_nanos() as f64 / 1000.0
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[means.len() / 2]
}

/// A criterion group whose rows are probed.
pub struct Group<'a> {
    group: BenchmarkGroup<'a, WallTime>,
    probe: &'a mut Probe,
    fastest: &'a mut f64,
    log: &'a mut File,
    latency_log: &'a mut File,
    paired_log: &'a mut File,
    bench: &'a str,
    name: String,
    attempts: usize,
    mode: Mode,
    /// The last row criterion actually measured (not filtered out).
    measured: Option<String>,
    /// Every row criterion measured in this group.
    measured_ids: Vec<String>,
    /// How many set-ups each paired comparison has had so far.
    setups: Vec<((String, String), u32)>,
}

/// Whether a paired comparison's ratio is of throughputs or of times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ratio {
    /// The subject's throughput over the reference's (reference time over
    /// subject time): above 1 when the subject is faster.
    Throughput,
    /// The subject's time over the reference's (a round trip as a multiple
    /// of the reference's): below 1 when the subject is faster.
    Time,
}

/// How long this thread and the processes `pids` have waited, runnable,
/// for a CPU so far, ns (`run_delay` of `/proc/…/schedstat`: a preemption
/// by another process, or a wake-up that found the CPU busy; 0 for what
/// cannot be read).
fn run_delay(pids: &[u32]) -> u64 {
    let delay = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    delay("/proc/thread-self/schedstat")
        + pids
            .iter()
            .map(|p| delay(&format!("/proc/{p}/schedstat")))
            .sum::<u64>()
}

/// The quartiles of `v` (sorted in place): (first, median, third).
pub fn quartiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        // Linear interpolation between the closest ranks.
        let x = q * (v.len() - 1) as f64;
        let (i, f) = (x.floor() as usize, x - x.floor());
        if i + 1 < v.len() {
            v[i] * (1.0 - f) + v[i + 1] * f
        } else {
            v[i]
        }
    };
    (at(0.25), at(0.5), at(0.75))
}

impl<'a> Group<'a> {
    /// The criterion group, for its settings.
    pub fn settings(&mut self) -> &mut BenchmarkGroup<'a, WallTime> {
        &mut self.group
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Sets the throughput of the following rows.
    pub fn throughput(&mut self, t: Throughput) {
        self.group.throughput(t);
    }

    /// Lowers the fastest probe seen, ignoring values below half of it: a
    /// cross-core round trip cannot suddenly take half the time, so such a
    /// value is a measuring glitch, and trusting it would make every later
    /// row look slow.
    fn note_fastest(&mut self, ns: f64) {
        if ns >= 0.5 * *self.fastest {
            *self.fastest = self.fastest.min(ns);
        }
    }

    fn is_slow(&self, ns: f64) -> bool {
        ns > SLOW_FACTOR * *self.fastest
    }

    /// A probe, waiting out a slow episode for up to about 3 seconds.
    fn settled_probe(&mut self) -> f64 {
        let mut ns = self.probe.measure();
        for _ in 0..6 {
            self.note_fastest(ns);
            if !self.is_slow(ns) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            ns = self.probe.measure();
        }
        ns
    }

    /// Measures one row between two probes, again while they show the
    /// slow mode.
    pub fn row<F: FnMut(&mut Bencher)>(&mut self, id: &str, mut f: F) {
        for attempt in 1..=self.attempts {
            let before = self.settled_probe();
            // Criterion refuses a second row with the same ID in a group, so
            // a rerun is `<id>~<attempt>`; `cargo xtask bench` keeps the
            // last attempt of each row under its plain ID.
            let criterion_id = if attempt == 1 {
                id.to_owned()
            } else {
                format!("{id}~{attempt}")
            };
            let mut ran = false;
            self.group.bench_function(criterion_id, |b| {
                ran = true;
                f(b)
            });
            if !ran {
                // Filtered out on the command line: no probe, no record.
                self.measured = None;
                return;
            }
            self.measured = Some(id.to_owned());
            if !self.measured_ids.iter().any(|m| m == id) {
                self.measured_ids.push(id.to_owned());
            }
            let after = self.probe.measure();
            self.note_fastest(after);
            let slow = self.is_slow(before) || self.is_slow(after);
            let line = serde_json::json!({
                "bench": self.bench,
                "group": self.name,
                "row": id,
                "attempt": attempt,
                "probe_before_ns": before,
                "probe_after_ns": after,
                "probe_fastest_ns": *self.fastest,
                "slow": slow,
                "unix_time": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            });
            let _ = writeln!(self.log, "{line}");
            eprintln!(
                "    probe {before:.0} ns before, {after:.0} ns after (fastest {:.0}){}",
                *self.fastest,
                if slow && attempt < self.attempts {
                    ": slow mode, measuring again"
                } else if slow {
                    ": slow mode, out of attempts"
                } else {
                    ""
                }
            );
            if !slow {
                break;
            }
        }
    }

    /// Times `n` round trips one by one for row `id`, if it was the last
    /// row [`Group::row`] measured (not filtered out on the command line): `start(n)` readies the peer for `n` round trips,
    /// then `rt(i)` is one round trip. One clock read per round trip (the
    /// read's own cost, [`clock_read_ns`], is in every sample and recorded
    /// beside the percentiles). Measured between
    /// probes and again while they show the slow mode, like a row; the
    /// percentiles of the kept attempt are appended to `latency.jsonl`.
    pub fn percentiles(
        &mut self,
        id: &str,
        n: u64,
        mut start: impl FnMut(u64),
        mut rt: impl FnMut(u64),
    ) {
        if self.measured.as_deref() != Some(id) {
            return;
        }
        let n = n.max(1);
        let mut samples: Vec<u64> = Vec::with_capacity(n as usize);
        for attempt in 1..=self.attempts {
            let before = self.settled_probe();
            samples.clear();
            start(n);
            let mut prev = Instant::now();
            for i in 0..n {
                rt(i);
                let now = Instant::now();
                samples.push(now.duration_since(prev).as_nanos() as u64);
                prev = now;
            }
            let after = self.probe.measure();
            self.note_fastest(after);
            let slow = self.is_slow(before) || self.is_slow(after);
            if slow && attempt < self.attempts {
                eprintln!("    percentiles of {id}: slow mode, measuring again");
                continue;
            }
            samples.sort_unstable();
            let clock = clock_read_ns();
            let p = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, samples.len()) - 1];
            let mean = samples.iter().sum::<u64>() as f64 / n as f64;
            let line = serde_json::json!({
                "bench": self.bench,
                "group": self.name,
                "row": id,
                "round_trips": n,
                "attempt": attempt,
                "p50_ns": p(0.50),
                "p99_ns": p(0.99),
                "p999_ns": p(0.999),
                "p9999_ns": p(0.9999),
                "max_ns": samples[samples.len() - 1],
                "mean_ns": mean,
                "clock_read_ns": clock,
                "probe_before_ns": before,
                "probe_after_ns": after,
                "slow": slow,
            });
            let _ = writeln!(self.latency_log, "{line}");
            eprintln!(
                "    {id}: {n} round trips, p50 {} ns, p99 {} ns, p99.9 {} ns, p99.99 {} ns, max {} ns",
                p(0.50),
                p(0.99),
                p(0.999),
                p(0.9999),
                samples[samples.len() - 1]
            );
            break;
        }
    }

    /// Whether criterion measured row `id` of this group (it was not
    /// filtered out on the command line).
    pub fn was_measured(&self, id: &str) -> bool {
        self.measured_ids.iter().any(|m| m == id)
    }

    /// Measures the ratio of `subject` to `reference` interleaved, if
    /// criterion measured both rows (neither was filtered out): `a(n)` and
    /// `b(n)` each run a batch of `n` iterations of the subject and of the
    /// reference (set up and alive side by side) and return its time.
    ///
    /// Each side's `n` is calibrated to the mode's batch time; then both
    /// warm up (a few batches each, not counted) and run in
    /// alternating pairs, the order swapped every pair (A B, B A, …) so
    /// neither side always runs first. The ratio of each pair is
    /// computed; the median of those is the comparison's ratio and their
    /// quartiles its spread. One JSON line in `paired.jsonl` keeps it as a
    /// speed-up (reference time over subject time, whatever `kind`; `kind`
    /// only says how the report shows it). Between probes, and again while
    /// they show the slow mode, like a row.
    ///
    /// `peers` are the process ids of the subject's and the reference's
    /// peers: a pair during which this thread or one of them waited for a
    /// CPU (kernel's `run_delay`) for more than 1 % of the pair's time
    /// (on a busy host another process took the CPU, or a woken side found
    /// it taken) is dropped and taken again, up to three times the pairs
    /// wanted; the
    /// record says how many were dropped. If fewer than a third of the
    /// pairs wanted ran unpreempted, every pair taken counts and the record
    /// is marked `busy_host`.
    pub fn paired(
        &mut self,
        subject: &str,
        reference: &str,
        kind: Ratio,
        peers: &[u32],
        mut a: impl FnMut(u64) -> Duration,
        mut b: impl FnMut(u64) -> Duration,
    ) {
        if !self.was_measured(subject) || !self.was_measured(reference) {
            return;
        }
        let key = (subject.to_owned(), reference.to_owned());
        let setup = match self.setups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.setups.push((key, 1));
                1
            }
        };
        let (batch, pairs) = self.mode.pairing();
        // Calibrate each side: the smallest power of two whose batch takes
        // at least the batch time and at least 20 times a batch of one, so
        // that the batch's fixed cost (the command that wakes the peer) is
        // at most 5 % of it. Each side gets its own count: a subject 100
        // times faster than its reference (a spinning round trip against a
        // sleeping one) would otherwise run batches of nothing but fixed
        // cost. The fastest of three tries counts, so that a batch that
        // lost the CPU to another process does not end the search early.
        let calibrate = |f: &mut dyn FnMut(u64) -> Duration| {
            let mut fastest = |n: u64| (0..3).map(|_| f(n)).min().unwrap_or_default();
            let fixed = fastest(1);
            let mut n = 1u64;
            while n < 1 << 30 {
                n *= 2;
                let t = fastest(n);
                if t >= batch && t >= 20 * fixed {
                    break;
                }
            }
            n
        };
        let (na, nb) = (calibrate(&mut a), calibrate(&mut b));
        for attempt in 1..=self.attempts {
            let before = self.settled_probe();
            for _ in 0..3 {
                a(na);
                b(nb);
            }
            let (mut speedups, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new());
            // The preempted pairs too, in case too few are clean.
            let (mut all_s, mut all_a, mut all_b) = (Vec::new(), Vec::new(), Vec::new());
            let (mut i, mut dropped) = (0, 0);
            while speedups.len() < pairs && i < 3 * pairs {
                let delay = run_delay(peers);
                let (x, y) = if i % 2 == 0 {
                    let x = a(na);
                    (x, b(nb))
                } else {
                    let y = b(nb);
                    (a(na), y)
                };
                i += 1;
                let (x, y) = (x.as_nanos() as f64, y.as_nanos() as f64);
                // Per iteration.
                let (xa, yb) = (x / na as f64, y / nb as f64);
                all_s.push(yb / xa);
                all_a.push(xa);
                all_b.push(yb);
                // Waiting for a CPU for more than 1 % of the pair's time:
                // the host, not the rows, decided this pair. A row that
                // sleeps and is woken (10 us or more per iteration: park,
                // futex, sockets) waits a little for its CPU at every
                // wake-up by design; 2 us per iteration of such a row is
                // allowed for that.
                let waited = run_delay(peers).saturating_sub(delay) as f64;
                let woken = |per: f64, n: u64| {
                    if per >= 10_000.0 {
                        2_000.0 * n as f64
                    } else {
                        0.0
                    }
                };
                if waited > 0.01 * (x + y) + woken(xa, na) + woken(yb, nb) {
                    dropped += 1;
                    continue;
                }
                speedups.push(yb / xa);
                ta.push(xa);
                tb.push(yb);
            }
            // A host so busy that fewer than a third of the pairs ran
            // unpreempted: every pair counts, and the record says so.
            let busy_host = speedups.len() < pairs / 3;
            if busy_host {
                (speedups, ta, tb) = (all_s, all_a, all_b);
            }
            let after = self.probe.measure();
            self.note_fastest(after);
            let slow = self.is_slow(before) || self.is_slow(after);
            if slow && attempt < self.attempts {
                eprintln!("    {subject} / {reference} paired: slow mode, measuring again");
                continue;
            }
            let got = speedups.len();
            let (q1, median, q3) = quartiles(&mut speedups);
            let (min, max) = (speedups[0], speedups[speedups.len() - 1]);
            let (_, a_ns, _) = quartiles(&mut ta);
            let (_, b_ns, _) = quartiles(&mut tb);
            let line = serde_json::json!({
                "bench": self.bench,
                "group": self.name,
                "subject": subject,
                "reference": reference,
                "kind": match kind { Ratio::Throughput => "throughput", Ratio::Time => "time" },
                "pairs": speedups.len(),
                "pairs_dropped_preempted": if busy_host { 0 } else { dropped },
                "busy_host": busy_host,
                "batch_iterations": [na, nb],
                "speedup_median": median,
                "speedup_q1": q1,
                "speedup_q3": q3,
                "speedup_min": min,
                "speedup_max": max,
                "subject_ns": a_ns,
                "reference_ns": b_ns,
                "setup": setup,
                "attempt": attempt,
                "probe_before_ns": before,
                "probe_after_ns": after,
                "slow": slow,
            });
            let _ = writeln!(self.paired_log, "{line}");
            let show = |r: f64| match kind {
                Ratio::Throughput => r,
                Ratio::Time => 1.0 / r,
            };
            let (lo, hi) = match kind {
                Ratio::Throughput => (q1, q3),
                Ratio::Time => (1.0 / q3, 1.0 / q1),
            };
            eprintln!(
                "    {subject} / {reference} ({}), set-up {setup}, {got} interleaved pairs of {na}/{nb} ({dropped} preempted{}): \
                 median {:.3}x, quartiles {lo:.3}–{hi:.3}x ({a_ns:.1} vs {b_ns:.1} ns per iteration)",
                match kind {
                    Ratio::Throughput => "throughput ratio",
                    Ratio::Time => "time ratio",
                },
                if busy_host { ", all kept: busy host" } else { ", dropped" },
                show(median),
            );
            break;
        }
    }

    /// Closes the group.
    pub fn finish(self) {
        self.group.finish();
    }
}
