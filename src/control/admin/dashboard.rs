//! `/dashboard`: a live view of the proxy for a browser, one self-contained HTML page
//! (`dashboard.html`: inline CSS and JavaScript, no external script, style sheet or
//! font, so it works offline and on an air-gapped host).
//!
//! The page is static: it polls the admin JSON that already exists
//! (`/stats?format=json&histogram_buckets=cumulative`, Envoy's parameter, and
//! `/clusters?format=json`) every second and keeps the history behind its charts in the
//! browser; latency percentiles of the last seconds come from the difference of the
//! histograms' bucket counts between polls, computed by the page. So the proxy holds no extra state for it,
//! a dashboard left open costs the admin thread two renders a second and nothing on the
//! workers, and the numbers it shows are exactly those `/stats` reports (including after
//! `/reset_counters`). The page is compiled into the binary (`include_str!`): no file to
//! install beside it, and it always matches the stat names of the binary serving it.

use crate::local_reply::Reply;

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// Answers `/dashboard`.
pub fn page() -> Reply {
    Reply::new(200, "text/html; charset=UTF-8", PAGE.as_bytes())
}
