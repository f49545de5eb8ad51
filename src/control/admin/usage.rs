//! `/usage`: each API consumer's requests, answers by status class and bytes, for usage
//! reports and billing (`?format=json`, the default, or `?format=csv`).
//!
//! Design: the figures are the `consumer.<name>.` counters `/stats` shows (the workers
//! count them at completion; `auth::consumers`), read with the same `/reset_counters`
//! offsets, so `/usage` and `/stats` always agree. `since` is when the counts started:
//! the process's start, or the last `/reset_counters`; `now` is when they were read. A
//! billing job reads `/usage`, then resets (`POST /reset_counters`), and bills the
//! difference between `since` and `now`. Consumer names are as in stat names
//! (characters outside `[A-Za-z0-9_-@]` as `_`); only the first 1000 consumers have
//! counters (`snapshot::MAX_CONSUMER_STATS`).

use std::{collections::BTreeMap, fmt::Write, time::SystemTime};

use super::TEXT;
use crate::{control::ControlState, local_reply::Reply, stats::Kind};

/// The columns, in order, after the consumer's name: the stat names under
/// `consumer.<name>.`.
const COLUMNS: [&str; 8] = [
    "rq_total", "rq_1xx", "rq_2xx", "rq_3xx", "rq_4xx", "rq_5xx", "rx_bytes", "tx_bytes",
];

/// Answers `/usage`.
pub fn usage(state: &ControlState, format: Option<&str>) -> Reply {
    let csv = match format {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Reply::new(
                400,
                TEXT,
                format!("unsupported format {other:?}: use json or csv\n").as_bytes(),
            )
        }
    };
    let lines = state.stats.borrow().lines(Vec::new());
    let offsets = state.counter_offsets.borrow();
    let mut consumers: BTreeMap<&str, [u64; COLUMNS.len()]> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.kind == Kind::Counter) {
        let Some(rest) = line.name.strip_prefix("consumer.") else {
            continue;
        };
        let Some((name, stat)) = rest.split_once('.') else {
            continue;
        };
        let Some(column) = COLUMNS.iter().position(|c| *c == stat) else {
            continue;
        };
        let offset = offsets.get(&line.name).copied().unwrap_or(0);
        consumers.entry(name).or_default()[column] = line.value.saturating_sub(offset);
    }
    let now = SystemTime::now();
    let since = state
        .counters_reset
        .get()
        .unwrap_or_else(|| now - state.started.elapsed());
    let (since, now) = (rfc3339(since), rfc3339(now));
    let mut out = String::new();
    if csv {
        out.push_str(
            "consumer,requests,rq_1xx,rq_2xx,rq_3xx,rq_4xx,rq_5xx,rx_bytes,tx_bytes,since,now\n",
        );
        for (name, values) in &consumers {
            out.push_str(&csv_field(name));
            for v in values {
                let _ = write!(out, ",{v}");
            }
            let _ = writeln!(out, ",{since},{now}");
        }
        return Reply::new(200, "text/csv; charset=utf-8", out.as_bytes());
    }
    let _ = write!(
        out,
        "{{\"since\":\"{since}\",\"now\":\"{now}\",\"consumers\":["
    );
    for (i, (name, values)) in consumers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        crate::stats::render::json_string(name, &mut out);
        let _ = write!(out, ",\"requests\":{}", values[0]);
        for (column, v) in COLUMNS.iter().zip(values).skip(1) {
            let _ = write!(out, ",\"{column}\":{v}");
        }
        out.push('}');
    }
    out.push_str("]}\n");
    Reply::new(200, "application/json", out.as_bytes())
}

/// RFC 3339 in UTC, with milliseconds.
fn rfc3339(at: SystemTime) -> String {
    let mut out = Vec::new();
    crate::access_log::timestamp::append_rfc3339_millis(at, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(super::csv_field("alice"), "alice");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("a\"b"), "\"a\"\"b\"");
    }
}
