//! Reading criterion's results generically: every
//! `target/criterion/**/new/benchmark.json` written during this run becomes
//! a row of its group, whatever bench produced it, joined with the probe
//! records of `rows.jsonl`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Criterion's function id.
    pub id: String,
    /// Median time per iteration, ns.
    pub ns: f64,
    /// The 95 % confidence interval of the median, ns.
    pub ns_low: f64,
    /// Upper end of that interval.
    pub ns_high: f64,
    /// Bytes per iteration, if the group declared a byte throughput.
    pub bytes: Option<u64>,
    /// Elements per iteration, if declared.
    pub elements: Option<u64>,
    /// Probe before and after the kept attempt, ns.
    pub probe: Option<(f64, f64)>,
    /// Attempts made and whether the kept one was still in the slow mode.
    pub attempts: u32,
    /// Whether the kept attempt's probes showed the slow mode.
    pub slow: bool,
}

impl Row {
    /// Bytes per second, when the row has a byte throughput.
    pub fn bytes_per_sec(&self) -> Option<f64> {
        self.bytes.map(|b| b as f64 / (self.ns * 1e-9))
    }
}

/// One criterion group, rows in the order they were measured.
#[derive(Debug, Clone)]
pub struct Table {
    /// The group id.
    pub group: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// The ratios measured interleaved in this group (`paired.jsonl`).
    pub pairs: Vec<Pair>,
}

/// A ratio measured interleaved by the bench harness (`Group::paired`):
/// subject and reference alive side by side, alternating short batches,
/// on one or more fresh set-ups of the two rows.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The subject row's id.
    pub subject: String,
    /// The reference row's id.
    pub reference: String,
    /// How many pairs of batches were kept, per set-up (the smallest).
    pub pairs: u64,
    /// How many were dropped because a process of the pair waited for a
    /// CPU, over all set-ups.
    pub dropped: u64,
    /// The comparison's speed-up (reference time over subject time): the
    /// median of the set-ups' medians of per-pair speed-ups.
    pub median: f64,
    /// The first quartile of the per-pair speed-ups (median over set-ups).
    pub q1: f64,
    /// The third quartile (median over set-ups).
    pub q3: f64,
    /// Each set-up's median, in order.
    pub setups: Vec<f64>,
    /// Whether a kept attempt's probes showed the slow mode.
    pub slow: bool,
    /// Whether, in some set-up, so few pairs ran unpreempted that the
    /// preempted ones were kept too.
    pub busy_host: bool,
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One set-up's record.
struct SetupRecord {
    median: f64,
    q1: f64,
    q3: f64,
    pairs: u64,
    dropped: u64,
    slow: bool,
    busy_host: bool,
}

/// Attaches the interleaved ratios of `paired.jsonl` to their groups: the
/// set-ups of each comparison of the last run (a record of set-up 1 starts
/// a new run) combined into one [`Pair`].
pub fn attach_pairs(tables: &mut [Table], paired_jsonl: &Path) {
    let mut found: Vec<((String, String, String), Vec<SetupRecord>)> = Vec::new();
    for line in std::fs::read_to_string(paired_jsonl)
        .unwrap_or_default()
        .lines()
    {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let s = |k: &str| v[k].as_str().unwrap_or("?").to_owned();
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let key = (s("group"), s("subject"), s("reference"));
        let rec = SetupRecord {
            median: f("speedup_median"),
            q1: f("speedup_q1"),
            q3: f("speedup_q3"),
            pairs: v["pairs"].as_u64().unwrap_or(0),
            dropped: v["pairs_dropped_preempted"].as_u64().unwrap_or(0),
            slow: v["slow"].as_bool().unwrap_or(false),
            busy_host: v["busy_host"].as_bool().unwrap_or(false),
        };
        let first_setup = v["setup"].as_u64().unwrap_or(1) <= 1;
        match found.iter_mut().find(|(k, _)| *k == key) {
            Some((_, recs)) if first_setup => *recs = vec![rec],
            Some((_, recs)) => recs.push(rec),
            None => found.push((key, vec![rec])),
        }
    }
    for ((group, subject, reference), recs) in found {
        let Some(t) = tables.iter_mut().find(|t| t.group == group) else {
            continue;
        };
        let of = |f: fn(&SetupRecord) -> f64| median(&recs.iter().map(f).collect::<Vec<_>>());
        let pair = Pair {
            subject,
            reference,
            pairs: recs.iter().map(|r| r.pairs).min().unwrap_or(0),
            dropped: recs.iter().map(|r| r.dropped).sum(),
            median: of(|r| r.median),
            q1: of(|r| r.q1),
            q3: of(|r| r.q3),
            setups: recs.iter().map(|r| r.median).collect(),
            slow: recs.iter().any(|r| r.slow),
            busy_host: recs.iter().any(|r| r.busy_host),
        };
        match t
            .pairs
            .iter_mut()
            .find(|p| p.subject == pair.subject && p.reference == pair.reference)
        {
            Some(earlier) => *earlier = pair,
            None => t.pairs.push(pair),
        }
    }
}

impl Table {
    /// The row with this id.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }
}

fn find_results(dir: &Path, since: SystemTime, out: &mut Vec<(SystemTime, Value, Value)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let bench = path.join("benchmark.json");
            let est = path.join("estimates.json");
            let modified = std::fs::metadata(&est).and_then(|m| m.modified());
            let (Ok(modified), Ok(b), Ok(e)) = (
                modified,
                std::fs::read_to_string(&bench),
                std::fs::read_to_string(&est),
            ) else {
                continue;
            };
            if modified < since {
                continue;
            }
            if let (Ok(b), Ok(e)) = (serde_json::from_str(&b), serde_json::from_str(&e)) {
                out.push((modified, b, e));
            }
        } else {
            find_results(&path, since, out);
        }
    }
}

/// The groups measured since `since`, with their probe records.
pub fn tables(criterion: &Path, rows_jsonl: &Path, since: SystemTime) -> Vec<Table> {
    let mut found = Vec::new();
    find_results(criterion, since, &mut found);
    found.sort_by_key(|(t, _, _)| *t);
    // The last probe record of each (group, row).
    let mut probes: BTreeMap<(String, String), (f64, f64, u32, bool)> = BTreeMap::new();
    for line in std::fs::read_to_string(rows_jsonl)
        .unwrap_or_default()
        .lines()
    {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let key = (
            v["group"].as_str().unwrap_or("").to_owned(),
            v["row"].as_str().unwrap_or("").to_owned(),
        );
        probes.insert(
            key,
            (
                v["probe_before_ns"].as_f64().unwrap_or(f64::NAN),
                v["probe_after_ns"].as_f64().unwrap_or(f64::NAN),
                v["attempt"].as_u64().unwrap_or(1) as u32,
                v["slow"].as_bool().unwrap_or(false),
            ),
        );
    }
    let mut tables: Vec<Table> = Vec::new();
    for (_, b, e) in found {
        let group = b["group_id"].as_str().unwrap_or("?").to_owned();
        let mut id = b["function_id"].as_str().unwrap_or("").to_owned();
        if let Some(v) = b["value_str"].as_str() {
            id = if id.is_empty() {
                v.to_owned()
            } else {
                format!("{id}/{v}")
            };
        }
        // A rerun of a row is `<id>~<attempt>` in criterion; keep the last
        // attempt (results are sorted by time) under the plain ID.
        if let Some((base, n)) = id.rsplit_once('~') {
            if n.parse::<u32>().is_ok() {
                id = base.to_owned();
            }
        }
        let median = &e["median"];
        let probe = probes.get(&(group.clone(), id.clone()));
        let row = Row {
            id,
            ns: median["point_estimate"].as_f64().unwrap_or(f64::NAN),
            ns_low: median["confidence_interval"]["lower_bound"]
                .as_f64()
                .unwrap_or(f64::NAN),
            ns_high: median["confidence_interval"]["upper_bound"]
                .as_f64()
                .unwrap_or(f64::NAN),
            bytes: b["throughput"]["Bytes"]
                .as_u64()
                .or_else(|| b["throughput"]["BytesDecimal"].as_u64()),
            elements: b["throughput"]["Elements"].as_u64(),
            probe: probe.map(|p| (p.0, p.1)),
            attempts: probe.map_or(1, |p| p.2),
            slow: probe.is_some_and(|p| p.3),
        };
        match tables.iter_mut().find(|t| t.group == group) {
            Some(t) => match t.rows.iter_mut().find(|r| r.id == row.id) {
                Some(earlier) => *earlier = row,
                None => t.rows.push(row),
            },
            None => tables.push(Table {
                group,
                rows: vec![row],
                pairs: Vec::new(),
            }),
        }
    }
    tables
}

/// The latency percentiles of one round-trip row, from `latency.jsonl`.
#[derive(Debug, Clone)]
pub struct Percentiles {
    /// The criterion group.
    pub group: String,
    /// The row id.
    pub row: String,
    /// Round trips timed.
    pub round_trips: u64,
    /// p50, p99, p99.9, p99.99 and the maximum, ns.
    pub p: [f64; 5],
    /// Probe before and after, ns.
    pub probe: (f64, f64),
    /// Whether the kept attempt was in the slow mode.
    pub slow: bool,
    /// What one clock read cost, ns (included in every sample).
    pub clock_read_ns: f64,
}

/// The percentile records of this run (the last attempt of each row), in
/// the order the rows were measured.
pub fn percentiles(latency_jsonl: &Path) -> Vec<Percentiles> {
    let mut out: Vec<Percentiles> = Vec::new();
    for line in std::fs::read_to_string(latency_jsonl)
        .unwrap_or_default()
        .lines()
    {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let rec = Percentiles {
            group: v["group"].as_str().unwrap_or("?").to_owned(),
            row: v["row"].as_str().unwrap_or("?").to_owned(),
            round_trips: v["round_trips"].as_u64().unwrap_or(0),
            p: [
                f("p50_ns"),
                f("p99_ns"),
                f("p999_ns"),
                f("p9999_ns"),
                f("max_ns"),
            ],
            probe: (f("probe_before_ns"), f("probe_after_ns")),
            slow: v["slow"].as_bool().unwrap_or(false),
            clock_read_ns: f("clock_read_ns"),
        };
        match out
            .iter_mut()
            .find(|p| p.group == rec.group && p.row == rec.row)
        {
            Some(earlier) => *earlier = rec,
            None => out.push(rec),
        }
    }
    out
}
