//! `compare`'s tables and page: medians with their spread (min–max) over repetitions,
//! and the proxies' costs as differences from the direct path.
//!
//! A difference is taken per repetition (proxy in repetition *i* minus direct in
//! repetition *i*, which ran moments apart) before the median, so a slow drift of the
//! machine cancels instead of landing on whichever target ran during it.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::targets::Target;
use super::Regime;
use crate::output::html::{document, table};
use crate::output::svg::{self, escape, Series};
use crate::report::fmt_us;

/// What one measurement gave.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub target: Target,
    pub repetition: usize,
    pub rate: f64,
    pub errors: u64,
    pub latency: Histogram<u64>,
    /// The proxy's own CPU per request, µs (none for the direct path).
    pub proxy_cpu_us: Option<f64>,
    /// Of that, system time: the kernel working for the proxy.
    pub proxy_system_us: Option<f64>,
    /// The whole machine's busy CPU per request, µs.
    pub machine_cpu_us: Option<f64>,
    /// The generator's JSON.
    pub json: std::path::PathBuf,
}

/// Median and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

pub fn cell(s: Option<Spread>, fmt: &dyn Fn(f64) -> String) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

fn us(v: f64) -> String {
    format!("{v:.2}")
}

fn rate(v: f64) -> String {
    format!("{v:.0}")
}

/// Signed latency difference in µs, with a unit.
fn delta_us(v: f64) -> String {
    let sign = if v < 0.0 { "−" } else { "+" };
    format!("{sign}{}", fmt_us(v.abs()))
}

/// The rows of one regime's measurements, target by target (in first-seen order).
fn by_target(ms: &[Measurement]) -> Vec<(Target, Vec<&Measurement>)> {
    let mut out: Vec<(Target, Vec<&Measurement>)> = Vec::new();
    for m in ms {
        match out.iter_mut().find(|(t, _)| *t == m.target) {
            Some((_, v)) => v.push(m),
            None => out.push((m.target, vec![m])),
        }
    }
    out
}

/// Per-repetition differences `f(target) − f(direct)`.
fn minus_direct(
    ms: &[Measurement],
    mine: &[&Measurement],
    f: impl Fn(&Measurement) -> Option<f64>,
) -> Option<Spread> {
    let diffs: Vec<f64> = mine
        .iter()
        .filter_map(|m| {
            let direct = ms
                .iter()
                .find(|d| d.target == Target::Direct && d.repetition == m.repetition)?;
            Some(f(m)? - f(direct)?)
        })
        .collect();
    spread(&diffs)
}

/// One regime's table: (headers, rows).
pub fn table_rows(regime: Regime, ms: &[Measurement]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let groups = by_target(ms);
    let s = |v: &[&Measurement], f: &dyn Fn(&Measurement) -> Option<f64>| {
        spread(&v.iter().filter_map(|m| f(m)).collect::<Vec<_>>())
    };
    let errors = |v: &[&Measurement]| v.iter().map(|m| m.errors).sum::<u64>().to_string();
    match regime {
        // Regimes 4 and 5 measure no requests; their tables come from `memory`.
        Regime::Memory | Regime::Start => (Vec::new(), Vec::new()),
        Regime::Saturated => (
            vec![
                "target",
                "requests/s",
                "proxy CPU µs/request",
                "of which system",
                "errors",
            ],
            groups
                .iter()
                .map(|(t, v)| {
                    vec![
                        t.name().to_string(),
                        cell(s(v, &|m| Some(m.rate)), &rate),
                        cell(s(v, &|m| m.proxy_cpu_us), &us),
                        cell(s(v, &|m| m.proxy_system_us), &us),
                        errors(v),
                    ]
                })
                .collect(),
        ),
        Regime::Hop => (
            vec![
                "target",
                "requests/s",
                "machine CPU µs/request",
                "hop cost µs/request (− direct)",
                "proxy CPU µs/request",
                "errors",
            ],
            groups
                .iter()
                .map(|(t, v)| {
                    let hop = if *t == Target::Direct {
                        None
                    } else {
                        minus_direct(ms, v, |m| m.machine_cpu_us)
                    };
                    vec![
                        t.name().to_string(),
                        cell(s(v, &|m| Some(m.rate)), &rate),
                        cell(s(v, &|m| m.machine_cpu_us), &us),
                        cell(hop, &us),
                        // The proxy's own process tree: with `--conn-rate` on TLS
                        // targets, its CPU per handshake (the hop cost also holds the
                        // generator's side of each handshake).
                        cell(s(v, &|m| m.proxy_cpu_us), &us),
                        errors(v),
                    ]
                })
                .collect(),
        ),
        Regime::Latency => {
            let q = |p: f64| {
                move |m: &Measurement| -> Option<f64> {
                    (!m.latency.is_empty()).then(|| m.latency.value_at_percentile(p) as f64)
                }
            };
            let mut headers = vec!["target", "p50", "p90", "p99", "p99.9"];
            headers.extend([
                "added p50",
                "added p90",
                "added p99",
                "added p99.9",
                "errors",
            ]);
            let rows = groups
                .iter()
                .map(|(t, v)| {
                    let mut row = vec![t.name().to_string()];
                    for p in [50.0, 90.0, 99.0, 99.9] {
                        row.push(cell(s(v, &q(p)), &fmt_us));
                    }
                    for p in [50.0, 90.0, 99.0, 99.9] {
                        row.push(if *t == Target::Direct {
                            "–".into()
                        } else {
                            cell(minus_direct(ms, v, q(p)), &delta_us)
                        });
                    }
                    row.push(errors(v));
                    row
                })
                .collect();
            (headers, rows)
        }
    }
}

/// A Markdown table (what the README shows and the terminal prints).
pub fn markdown(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        headers
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { " --- |" } else { " ---: |" })
            .collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// Every target's latency (all repetitions merged) on one percentile plot.
pub fn latency_plot(ms: &[Measurement], title: &str) -> String {
    let series: Vec<Series> = by_target(ms)
        .iter()
        .map(|(t, v)| {
            let mut merged = crate::histo::new_histogram();
            for m in v {
                let _ = merged.add(&m.latency);
            }
            Series::from_histogram(t.name(), &merged)
        })
        .collect();
    svg::percentile_plot(&series, title)
}

/// A regime with a table and nothing to plot (memory, start to ready).
#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub description: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The page: per regime its description, table and plot; the table-only regimes; then
/// the setup.
pub fn page(
    sections: &[(Regime, String, Vec<Measurement>)],
    others: &[Section],
    setup: &[(String, String)],
) -> String {
    let mut body = String::from("<h1>ringway-load compare</h1>\n");
    for (regime, description, ms) in sections {
        let _ = writeln!(
            body,
            "<h2>{}</h2>\n<p>{}</p>",
            escape(regime.title()),
            escape(description)
        );
        let (headers, rows) = table_rows(*regime, ms);
        body.push_str(&table(&headers, &rows));
        body.push_str(&latency_plot(
            ms,
            &format!("{}: latency by percentile", regime.title()),
        ));
        let runs: Vec<String> = ms
            .iter()
            .filter_map(|m| m.json.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect();
        let _ = writeln!(body, "<p>Runs: {}</p>", escape(&runs.join(", ")));
    }
    for section in others {
        let _ = writeln!(
            body,
            "<h2>{}</h2>\n<p>{}</p>",
            escape(&section.title),
            escape(&section.description)
        );
        let headers: Vec<&str> = section.headers.iter().map(String::as_str).collect();
        body.push_str(&table(&headers, &section.rows));
    }
    body.push_str("<h2>Setup</h2>\n");
    let rows: Vec<Vec<String>> = setup
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    body.push_str(&table(&["", ""], &rows));
    document("ringway-load compare", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(target: Target, repetition: usize, machine: f64, p50: u64) -> Measurement {
        let mut latency = crate::histo::new_histogram();
        latency.record(p50).unwrap();
        Measurement {
            target,
            repetition,
            rate: 1000.0,
            errors: 0,
            latency,
            proxy_cpu_us: Some(machine / 2.0),
            proxy_system_us: Some(machine / 4.0),
            machine_cpu_us: Some(machine),
            json: "x.json".into(),
        }
    }

    #[test]
    fn medians_spread_and_paired_differences() {
        assert_eq!(
            spread(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(spread(&[1.0, 2.0]).unwrap().median, 1.5);
        let ms = vec![
            m(Target::Direct, 0, 10.0, 100),
            m(Target::Ringway, 0, 15.0, 130),
            m(Target::Direct, 1, 20.0, 100),
            m(Target::Ringway, 1, 26.0, 140),
        ];
        let (_, rows) = table_rows(Regime::Hop, &ms);
        assert_eq!(rows[1][3], "5.50 (5.00–6.00)");
        let (headers, rows) = table_rows(Regime::Saturated, &ms);
        assert_eq!(headers[3], "of which system");
        assert_eq!(rows[1][2], "10.25 (7.50–13.00)");
        assert_eq!(rows[1][3], "5.12 (3.75–6.50)");
        let (headers, rows) = table_rows(Regime::Latency, &ms);
        assert_eq!(headers[5], "added p50");
        assert_eq!(rows[1][5], "+35us (+30us–+40us)");
        assert!(markdown(&headers, &rows).contains("| ringway |"));
    }
}
