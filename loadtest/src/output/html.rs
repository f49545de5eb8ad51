//! One self-contained HTML page per run (`--html`): the latency-by-percentile plot, the
//! rate over time, the summary table and the run's parameters.
//!
//! Self-contained means no network and no scripts: the plots are inline SVG from
//! [`super::svg`], the style is a few inline CSS rules, so the file can be mailed,
//! attached to an issue or opened from a CI artifact as it is. `compare` builds its page
//! from the same helpers.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::svg::{self, escape, Series};
use crate::report::fmt_us;
use crate::run::RunResult;

/// The percentiles of the summary table.
pub const TABLE_PERCENTILES: [f64; 7] = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// A complete page around `body` (already HTML).
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;\
         padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}td:first-child,\
         th:first-child{{text-align:left}}svg{{max-width:100%;height:auto}}</style>\n\
         </head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// An HTML table; cells are escaped.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn percentile_row(name: &str, h: &Histogram<u64>) -> Vec<String> {
    let mut row = vec![name.to_string()];
    for p in TABLE_PERCENTILES {
        row.push(if h.is_empty() {
            "-".into()
        } else {
            fmt_us(h.value_at_percentile(p) as f64)
        });
    }
    row
}

/// The latency table: corrected, uncorrected and late start at each percentile.
fn latency_table(r: &RunResult) -> String {
    let h = &r.histograms;
    let headers = ["", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "max"];
    let mut rows = vec![percentile_row("latency", &h.latency)];
    if r.params.rate.is_some() {
        rows.push(percentile_row("uncorrected", &h.uncorrected));
        rows.push(percentile_row("late start", &h.late_start));
    }
    table(&headers, &rows)
}

/// Requests per second over the measured phase, one point per second.
pub fn rate_series(name: &str, per_second: &[u64]) -> Series {
    Series {
        name: name.to_string(),
        points: per_second
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as f64 + 0.5, n as f64))
            .collect(),
    }
}

/// The page of one run.
pub fn page(r: &RunResult) -> String {
    let p = &r.params;
    let c = &r.counts;
    let urls: Vec<String> = p
        .urls
        .iter()
        .map(|u| format!("http://{}{}", u.authority, u.path))
        .collect();
    let mut body = String::new();
    let _ = writeln!(body, "<h1>ringway-load run</h1>");
    let _ = writeln!(
        body,
        "<p>{} — measured phase started {}</p>",
        escape(&urls.join(" ")),
        escape(&super::fortio::rfc3339(r.measure_started))
    );
    body.push_str(&svg::percentile_plot(
        &[Series::from_histogram("latency", &r.histograms.latency)],
        "Latency by percentile",
    ));
    let _ = writeln!(body, "<h2>Summary</h2>");
    let mut summary = vec![
        vec!["requests completed".into(), c.completed.to_string()],
        vec!["requests/s".into(), format!("{:.2}", r.rate())],
        vec!["errors".into(), c.errors.total().to_string()],
        vec![
            "errors by kind".into(),
            format!(
                "connect {}, timeout {}, read {}, write {}, malformed {}",
                c.errors.connect,
                c.errors.timeout,
                c.errors.read,
                c.errors.write,
                c.errors.malformed
            ),
        ],
        vec![
            "status classes".into(),
            format!(
                "1xx {}, 2xx {}, 3xx {}, 4xx {}, 5xx {}",
                c.status[0], c.status[1], c.status[2], c.status[3], c.status[4]
            ),
        ],
        vec![
            "connections opened".into(),
            c.connections_opened.to_string(),
        ],
    ];
    if !r.histograms.latency.is_empty() {
        let h = &r.histograms.latency;
        summary.push(vec![
            "latency mean / stdev".into(),
            format!("{} / {}", fmt_us(h.mean()), fmt_us(h.stdev())),
        ]);
    }
    if let Some((total, user, system)) = r.cpu_per_request_us() {
        summary.push(vec![
            "generator CPU per request".into(),
            format!("{total:.2} µs (user {user:.2}, system {system:.2})"),
        ]);
    }
    body.push_str(&table(&["", ""], &summary));
    body.push_str(&latency_table(r));
    let _ = writeln!(body, "<h2>Rate over time</h2>");
    body.push_str(&svg::rate_plot(
        &[rate_series("completed", &r.histograms.intervals.counts())],
        "Requests per second",
    ));
    let _ = writeln!(body, "<h2>Parameters</h2>");
    let params = vec![
        vec!["URLs".into(), urls.join(" ")],
        vec![
            "load model".into(),
            match p.rate {
                Some(rate) => format!("open loop at {rate} requests/s"),
                None => "closed loop".into(),
            },
        ],
        vec!["connections".into(), p.connections.to_string()],
        vec!["threads".into(), r.placement.clone()],
        vec![
            "duration".into(),
            format!("{:.1} s", p.duration.as_secs_f64()),
        ],
        vec!["warmup".into(), format!("{:.1} s", p.warmup.as_secs_f64())],
        vec![
            "timeout".into(),
            format!("{:.1} s", p.timeout.as_secs_f64()),
        ],
        vec![
            "request".into(),
            format!(
                "{} with {} extra headers, {} B body",
                p.request.method,
                p.request.headers.len(),
                p.request.body_size
            ),
        ],
        vec![
            "requests per connection".into(),
            p.requests_per_connection
                .map_or("unlimited".into(), |n| n.to_string()),
        ],
    ];
    body.push_str(&table(&["parameter", "value"], &params));
    document("ringway-load run", &body)
}
