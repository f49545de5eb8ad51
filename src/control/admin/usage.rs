//! `/usage`: each API consumer's requests, answers by status class and bytes, for usage
//! reports and billing (`?format=json`, the default, or `?format=csv`).
//!
//! Design: the figures are the `consumer.<name>.` counters `/stats` shows (the workers
//! count them at completion; `auth::consumers`), read with the same `/reset_counters`
//! offsets, so `/usage` and `/stats` always agree. `since` is when the counts started:
//! the process's start, or the last `/reset_counters`; `now` is when they were read. A
//! billing job reads `/usage`, then resets (`POST /reset_counters`), and bills the
//! difference between `since` and `now`. Rows come from the store's consumer scopes,
//! which it keeps by the consumer's name as configured (`StatsStore::consumer`): one row
//! per consumer under its exact name (`a.b` and `a_b` are two rows), never a name split
//! out of stat names. Only the first 1000 consumers have counters
//! (`snapshot::MAX_CONSUMER_STATS`); a consumer a reload removed keeps its row (and its
//! counts) until the process ends, so what it used before the reload is still billed.

use std::{collections::HashMap, fmt::Write, time::SystemTime};

use super::TEXT;
use crate::{control::ControlState, local_reply::Reply, stats::names::consumer, stats::Scope};

/// The columns after the consumer's name: `consumer::DEFS`, in its order (`rq_total` is
/// shown as `requests`).
const COLUMNS: usize = consumer::DEFS.len();

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
    let store = state.stats.borrow();
    let rows = rows(store.consumers(), &state.counter_offsets.borrow());
    let now = SystemTime::now();
    let since = state
        .counters_reset
        .get()
        .unwrap_or_else(|| now - state.started.elapsed());
    let (since, now) = (rfc3339(since), rfc3339(now));
    if csv {
        let out = csv_report(&rows, &since, &now);
        return Reply::new(200, "text/csv; charset=utf-8", out.as_bytes());
    }
    Reply::new(
        200,
        "application/json",
        json_report(&rows, &since, &now).as_bytes(),
    )
}

/// Each consumer's counts (`consumer::DEFS` order) less the `/reset_counters` offsets
/// (by full stat name, as `/stats` applies them), in the order given (by name).
fn rows<'a>(
    consumers: impl Iterator<Item = (&'a str, &'a std::sync::Arc<Scope>)>,
    offsets: &HashMap<String, u64>,
) -> Vec<(&'a str, [u64; COLUMNS])> {
    consumers
        .map(|(name, scope)| {
            let mut values = [0; COLUMNS];
            for (index, (value, def)) in values.iter_mut().zip(scope.defs()).enumerate() {
                let full = format!("{}{}", scope.prefix(), def.name);
                let offset = offsets.get(&full).copied().unwrap_or(0);
                *value = scope.sum(index).saturating_sub(offset);
            }
            (name, values)
        })
        .collect()
}

/// The CSV report: a header row, then a row per consumer.
fn csv_report(rows: &[(&str, [u64; COLUMNS])], since: &str, now: &str) -> String {
    let mut out = String::from("consumer,requests");
    for def in &consumer::DEFS[1..] {
        let _ = write!(out, ",{}", def.name);
    }
    out.push_str(",since,now\n");
    for (name, values) in rows {
        out.push_str(&csv_field(name));
        for v in values {
            let _ = write!(out, ",{v}");
        }
        let _ = writeln!(out, ",{since},{now}");
    }
    out
}

/// The JSON report: `{"since":..,"now":..,"consumers":[{"name":..,"requests":..,..}]}`.
fn json_report(rows: &[(&str, [u64; COLUMNS])], since: &str, now: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"since\":\"{since}\",\"now\":\"{now}\",\"consumers\":["
    );
    for (i, (name, values)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        crate::stats::render::json_string(name, &mut out);
        let _ = write!(out, ",\"requests\":{}", values[0]);
        for (def, v) in consumer::DEFS.iter().zip(values).skip(1) {
            let _ = write!(out, ",\"{}\":{v}", def.name);
        }
        out.push('}');
    }
    out.push_str("]}\n");
    out
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
    use std::collections::HashMap;

    use crate::stats::{names::consumer, StatsStore};

    #[test]
    fn the_columns_are_the_consumer_stats_in_order() {
        let names: Vec<&str> = consumer::DEFS.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "rq_total", "rq_1xx", "rq_2xx", "rq_3xx", "rq_4xx", "rq_5xx", "rx_bytes",
                "tx_bytes"
            ]
        );
        assert_eq!(
            super::csv_report(&[], "s", "n"),
            "consumer,requests,rq_1xx,rq_2xx,rq_3xx,rq_4xx,rq_5xx,rx_bytes,tx_bytes,since,now\n"
        );
    }

    /// The four consumers of the defect report: `a.b` and `a_b` (and `acme-corp` and
    /// `acme_corp`) were one row, and one Prometheus name, when names were sanitised into
    /// stat names; each is a row of its own under its exact name.
    #[test]
    fn one_row_per_consumer_under_its_configured_name() {
        let mut store = StatsStore::new(2);
        for (name, requests) in [("acme-corp", 1), ("a.b", 2), ("a_b", 1), ("acme_corp", 3)] {
            let scope = store.consumer(name);
            for i in 0..requests {
                let cells = scope.for_worker(i % 2);
                cells.get(consumer::RQ_TOTAL).inc();
                cells.get(consumer::status_class(200)).inc();
                cells.get(consumer::TX_BYTES).add(10);
            }
        }
        // A reset taken after one of `acme_corp`'s requests.
        let offsets = HashMap::from([("consumer.acme_corp.rq_total".to_owned(), 1)]);
        let rows = super::rows(store.consumers(), &offsets);
        let summary: Vec<(&str, u64, u64, u64)> = rows
            .iter()
            .map(|(name, v)| (*name, v[0], v[2], v[7]))
            .collect();
        assert_eq!(
            summary,
            [
                ("a.b", 2, 2, 20),
                ("a_b", 1, 1, 10),
                ("acme-corp", 1, 1, 10),
                ("acme_corp", 2, 3, 30)
            ]
        );

        let csv = super::csv_report(&rows, "S", "N");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[1..],
            [
                "a.b,2,0,2,0,0,0,0,20,S,N",
                "a_b,1,0,1,0,0,0,0,10,S,N",
                "acme-corp,1,0,1,0,0,0,0,10,S,N",
                "acme_corp,2,0,3,0,0,0,0,30,S,N"
            ]
        );

        let json: serde_json::Value =
            serde_json::from_str(&super::json_report(&rows, "S", "N")).unwrap();
        assert_eq!((&json["since"], &json["now"]), (&"S".into(), &"N".into()));
        let consumers = json["consumers"].as_array().unwrap();
        let names: Vec<&str> = consumers
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a.b", "a_b", "acme-corp", "acme_corp"]);
        let requests: Vec<u64> = consumers
            .iter()
            .map(|c| c["requests"].as_u64().unwrap())
            .collect();
        assert_eq!(requests, [2, 1, 1, 2]);
        assert_eq!(consumers[0]["rq_2xx"], 2);
        assert_eq!(consumers[0]["tx_bytes"], 20);
        assert!(consumers[0].get("rq_total").is_none(), "{json}");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(super::csv_field("alice"), "alice");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("a\"b"), "\"a\"\"b\"");
    }
}
