//! The two log-scale charts, drawn with plotters' SVG backend.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::collect::Table;
use super::report::fmt_ns;

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The host, under the chart: its figures hold for that host only.
fn host_footer(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    host: &str,
) -> std::io::Result<()> {
    let (_, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!("Measured on {host}, one run"),
        (16, h as i32 - 18),
        ("sans-serif", 13),
    ))
    .map_err(err)
}

fn size_label(b: f64) -> String {
    let b = b.round() as u64;
    match b {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Throughput (GB/s, log) against message size (log), one line per row id
/// across the `stream_*` groups.
pub fn throughput(tables: &[Table], host: &str, path: &Path) -> std::io::Result<()> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for t in tables.iter().filter(|t| t.group.starts_with("stream_")) {
        for r in &t.rows {
            if let (Some(b), Some(bps)) = (r.bytes, r.bytes_per_sec()) {
                series
                    .entry(r.id.clone())
                    .or_default()
                    .push((b as f64, bps / 1e9));
            }
        }
    }
    let points = series.values().flatten();
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if series.is_empty() {
        xmin = 1.0;
        xmax = 2.0;
        ymin = 0.1;
        ymax = 1.0;
    }
    let root = SVGBackend::new(path, (960, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Streaming throughput, one send call per message (log-log)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (xmin / 1.5..xmax * 1.5).log_scale(),
            (ymin / 2.0..ymax * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc("GB/s")
        .x_label_formatter(&|x| size_label(*x))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(err)?;
    for (i, (id, mut pts)) in series.into_iter().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = PALETTE[i % PALETTE.len()];
        let dashed = id.starts_with("memcpy");
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: true,
            stroke_width: if dashed { 1 } else { 2 },
        };
        chart
            .draw_series(LineSeries::new(pts.clone(), style))
            .map_err(err)?
            .label(id)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    host_footer(&root, host)?;
    root.present().map_err(err)
}

/// Round-trip times as horizontal bars on a log axis, for the `rtt_*`
/// groups.
pub fn latency(tables: &[Table], host: &str, path: &Path) -> std::io::Result<()> {
    let rows: Vec<(String, f64)> = tables
        .iter()
        .filter(|t| t.group.starts_with("rtt"))
        .flat_map(|t| {
            let prefix = if tables.iter().filter(|t| t.group.starts_with("rtt")).count() > 1 {
                format!("{}/", t.group)
            } else {
                String::new()
            };
            t.rows
                .iter()
                .map(move |r| (format!("{prefix}{}", r.id), r.ns))
        })
        .collect();
    let n = rows.len().max(1);
    let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(r.1), hi.max(r.1))
    });
    let (lo, hi) = if rows.is_empty() {
        (1.0, 10.0)
    } else {
        (lo / 2.0, hi * 3.0)
    };
    let root = SVGBackend::new(path, (960, 140 + 36 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Round trip of an 8-byte message (median, log scale)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(200)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("round trip")
        .x_label_formatter(&|x| fmt_ns(*x))
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let f = y.fract();
            if (f - 0.5).abs() < 0.01 {
                labels.get(*y as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (id, ns))| {
            let color = if id.contains("sharedring") {
                PALETTE[0]
            } else {
                PALETTE[7]
            };
            Rectangle::new(
                [(lo, i as f64 + 0.15), (*ns, i as f64 + 0.85)],
                color.filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, ns))| {
            Text::new(
                fmt_ns(*ns),
                (*ns * 1.08, i as f64 + 0.35),
                ("sans-serif", 14),
            )
        }))
        .map_err(err)?;
    host_footer(&root, host)?;
    root.present().map_err(err)
}
