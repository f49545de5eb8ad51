//! Hand-written SVG plots: no scripts, no fonts to fetch, so a page that inlines them
//! works offline and the README can commit them.
//!
//! The latency plot is drawn the way HdrHistogram's plotter draws a percentile
//! distribution: x is the percentile on a log scale of 1/(1−p), so 90%, 99%, 99.9%,
//! 99.99% sit at equal steps (each tick is "one more nine"), and y is the latency on a
//! linear scale. Points are hdrhistogram's quantile iteration (5 ticks per half
//! distance, as the Java `outputPercentileDistribution` prints), without the final
//! p100 point, whose x is infinite. The rate plot is requests per second over the
//! measured phase.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Canvas and plot area, in SVG user units.
const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;

/// Line colours, distinguishable and readable on white.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One line on a plot: `(x, y)` in data units.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// The percentile distribution of a histogram in microseconds: x = 1/(1−q), y = µs.
    pub fn from_histogram(name: &str, h: &Histogram<u64>) -> Series {
        let points = h
            .iter_quantiles(5)
            .map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64))
            .filter(|&(q, _)| q < 1.0)
            .map(|(q, us)| (1.0 / (1.0 - q), us))
            .collect();
        Series {
            name: name.to_string(),
            points,
        }
    }
}

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound (1, 2 or 5 times a power of ten) at or above `v`, and its step.
fn nice_axis(v: f64) -> (f64, f64) {
    let v = if v > 0.0 { v } else { 1.0 };
    let magnitude = 10f64.powf(v.log10().floor());
    let step = [0.1, 0.2, 0.25, 0.5, 1.0, 2.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| v / s <= 6.0)
        .unwrap_or(2.0 * magnitude);
    ((v / step).ceil() * step, step)
}

/// Latency tick labels in a unit that fits the axis.
fn latency_label(us: f64, max_us: f64) -> String {
    if max_us >= 10_000.0 {
        format!("{} ms", trim(us / 1e3))
    } else {
        format!("{} µs", trim(us))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The percentile tick label for 1/(1−p) = 10^k: 0%, 90%, 99%, 99.9%, …
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".into(),
        1 => "90%".into(),
        _ => format!(
            "99{}{}%",
            if k > 2 { "." } else { "" },
            "9".repeat(k as usize - 2)
        ),
    }
}

/// Axes, grid, labels and legend around the plot area; returns the SVG with the
/// lines drawn by `x` and `y` mappings (data to user units).
struct Frame {
    out: String,
}

impl Frame {
    fn new(title: &str, x_label: &str, y_label: &str) -> Frame {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            out,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            escape(title)
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            HEIGHT - 12.0,
            escape(x_label)
        );
        let _ = write!(
            out,
            r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
            escape(y_label)
        );
        Frame { out }
    }

    fn x_tick(&mut self, x: f64, label: &str) {
        let _ = write!(
            self.out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 18.0,
            escape(label)
        );
    }

    fn y_tick(&mut self, y: f64, label: &str) {
        let _ = write!(
            self.out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(label)
        );
    }

    fn line(&mut self, i: usize, points: impl Iterator<Item = (f64, f64)>) {
        let path: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            self.out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLOURS[i % COLOURS.len()],
            path.join(" ")
        );
    }

    fn finish(mut self, names: &[&str]) -> String {
        let _ = write!(
            self.out,
            r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM
        );
        for (i, name) in names.iter().enumerate() {
            let y = TOP + 18.0 + 18.0 * i as f64;
            let _ = write!(
                self.out,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + 12.0,
                y - 4.0,
                LEFT + 36.0,
                y - 4.0,
                COLOURS[i % COLOURS.len()],
                LEFT + 42.0,
                y,
                escape(name)
            );
        }
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn plot_x(fraction: f64) -> f64 {
    LEFT + fraction * (WIDTH - LEFT - RIGHT)
}

fn plot_y(fraction: f64) -> f64 {
    HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)
}

/// Latency by percentile, every series on the same axes (y in µs).
pub fn percentile_plot(series: &[Series], title: &str) -> String {
    let max_inv = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    // At least up to 99%; one decade past the data so the last points are not on the edge.
    let decades = (max_inv.log10().ceil() as u32).max(2);
    let max_us = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let (top, step) = nice_axis(max_us * 1.05);
    let mut f = Frame::new(title, "percentile", "latency");
    for k in 0..=decades {
        f.x_tick(
            plot_x(f64::from(k) / f64::from(decades)),
            &percentile_label(k),
        );
    }
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        f.y_tick(plot_y(v / top), &latency_label(v, top));
        v += step;
    }
    for (i, s) in series.iter().enumerate() {
        f.line(
            i,
            s.points.iter().map(|&(inv, us)| {
                (
                    plot_x(inv.max(1.0).log10() / f64::from(decades)),
                    plot_y(us / top),
                )
            }),
        );
    }
    f.finish(&series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
}

/// Requests per second over time: `points` are (second, requests in that second).
pub fn rate_plot(series: &[Series], title: &str) -> String {
    let max_t = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let max_r = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let (x_top, x_step) = nice_axis(max_t);
    let (y_top, y_step) = nice_axis(max_r * 1.1);
    let mut f = Frame::new(title, "seconds into the measured phase", "requests/s");
    let mut t = 0.0;
    while t <= x_top + x_step / 2.0 {
        f.x_tick(plot_x(t / x_top), &trim(t));
        t += x_step;
    }
    let mut r = 0.0;
    while r <= y_top + y_step / 2.0 {
        f.y_tick(plot_y(r / y_top), &trim(r));
        r += y_step;
    }
    for (i, s) in series.iter().enumerate() {
        f.line(
            i,
            s.points
                .iter()
                .map(|&(t, r)| (plot_x(t / x_top), plot_y(r / y_top))),
        );
    }
    f.finish(&series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_and_lines() {
        let mut h = crate::histo::new_histogram();
        for v in 1..=10_000u64 {
            h.record(100 + v % 900).unwrap();
        }
        let s = Series::from_histogram("a<b", &h);
        assert!(s.points.iter().all(|p| p.0.is_finite()));
        let svg = percentile_plot(&[s], "t");
        for label in [
            "0%",
            "90%",
            "99%",
            "99.9%",
            "99.99%",
            "percentile",
            "a&lt;b",
        ] {
            assert!(svg.contains(&format!(">{label}<")), "no {label} in {svg}");
        }
        assert!(svg.contains("<polyline"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_axis(7.3), (8.0, 2.0));
        assert_eq!(nice_axis(950.0), (1000.0, 200.0));
        assert_eq!(percentile_label(5), "99.999%");
        assert_eq!(latency_label(1500.0, 2000.0), "1500 µs");
        assert_eq!(latency_label(15_000.0, 20_000.0), "15 ms");
    }
}
