//! Envoy format strings: a line built from `%COMMAND%` operators, compiled once when a
//! worker's log is built and rendered into the worker's batch.
//!
//! Design: `config::log_format` parses and checks the operators when the config is
//! read; [`Compiled`] turns them into parts that index the request's captured headers
//! by position, so rendering a line is a walk over the parts with no lookup by name, no
//! parsing and, once the batch has grown, no allocation. Values follow Envoy's rules:
//! an absent value prints `-` (nothing with `omit_empty_values`), `%REQ(name):N%` keeps N
//! characters, times are UTC. In `json_format`, a value that is exactly one operator
//! keeps its type (a number for sizes, codes and durations; `null` when absent); every
//! other value is a string.

use std::io::Write as _;
use std::time::UNIX_EPOCH;

use super::entry::LogEntry;
use super::format::{json_string, text_field_raw};
use super::timestamp::{append_rfc3339_millis, civil_from_days, days_from_civil, push_padded};
use crate::config::format::Piece;
use crate::config::log_format::{self, HeaderOp, Op, TimePart};
use crate::config::AccessLogFormat;

/// A JSON key (none for a text format) and its parsed value.
type Field = (Option<String>, Vec<Piece<Op>>);

/// A format, ready to render.
#[derive(Debug, Clone)]
pub struct Compiled {
    kind: Kind,
    omit_empty: bool,
    /// The request headers to capture, in slot order (`:authority` is the request's
    /// authority).
    headers: Vec<String>,
    /// The response headers to capture, in slot order.
    response_headers: Vec<String>,
    /// Whether a line needs the connection's local address.
    local_address: bool,
    /// Whether a line prints when the request ended (`%REQUEST_DURATION%`).
    request_end: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Text(Vec<Part>),
    Json(Vec<(String, Vec<Part>)>),
}

/// One compiled piece.
#[derive(Debug, Clone)]
enum Part {
    Text(Box<[u8]>),
    Op(Op),
    /// A request header by capture slot, then its alternative, truncated.
    Header {
        first: Source,
        alternative: Option<Source>,
        max: Option<usize>,
    },
}

/// Where a `%REQ(...)%` or `%RESP(...)%` value comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Method,
    Path,
    Scheme,
    Slot(usize),
    /// A response header's capture slot.
    ResponseSlot(usize),
}

impl Compiled {
    /// Compiles an Envoy format (`None` for the native formats). The config check has
    /// parsed it already; a format that no longer parses compiles to Envoy's default.
    pub fn new(format: &AccessLogFormat) -> Option<Compiled> {
        let parse = |text: &str| {
            log_format::parse(text)
                .or_else(|_| log_format::parse(log_format::DEFAULT))
                .unwrap_or_default()
        };
        let (pieces_of, omit_empty): (Vec<Field>, bool) = match format {
            AccessLogFormat::Text | AccessLogFormat::Json => return None,
            AccessLogFormat::EnvoyText {
                format,
                omit_empty_values,
            } => (vec![(None, parse(format))], *omit_empty_values),
            AccessLogFormat::EnvoyJson {
                fields,
                omit_empty_values,
            } => (
                fields
                    .iter()
                    .map(|(key, value)| (Some(key.clone()), parse(value)))
                    .collect(),
                *omit_empty_values,
            ),
        };
        let all: Vec<Piece<Op>> = pieces_of.iter().flat_map(|(_, p)| p.clone()).collect();
        let headers = log_format::request_headers(&all);
        let response_headers = log_format::response_headers(&all);
        let local_address = all
            .iter()
            .any(|p| matches!(p, Piece::Var(Op::LocalAddress { .. } | Op::LocalPort)));
        let request_end = all
            .iter()
            .any(|p| matches!(p, Piece::Var(Op::RequestDuration)));
        let compile = |pieces: &[Piece<Op>]| -> Vec<Part> {
            pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => Part::Text(t.as_bytes().into()),
                    Piece::Var(Op::Req(h)) => header_part(h, &headers),
                    Piece::Var(Op::Resp(h)) if !log_format::is_service_time(h) => {
                        response_part(h, &response_headers)
                    }
                    Piece::Var(op) => Part::Op(op.clone()),
                })
                .collect()
        };
        let kind = match format {
            AccessLogFormat::EnvoyJson { .. } => Kind::Json(
                pieces_of
                    .iter()
                    .map(|(key, pieces)| (key.clone().unwrap_or_default(), compile(pieces)))
                    .collect(),
            ),
            _ => Kind::Text(compile(&pieces_of[0].1)),
        };
        Some(Compiled {
            kind,
            omit_empty,
            headers,
            response_headers,
            local_address,
            request_end,
        })
    }

    /// The request headers a connection must capture for each line, in slot order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The response headers a connection must capture for each line, in slot order.
    pub fn response_headers(&self) -> &[String] {
        &self.response_headers
    }

    /// Whether lines print the connection's local address.
    pub fn needs_local_address(&self) -> bool {
        self.local_address
    }

    /// Whether a line prints when the request ended (a clock read when its head is
    /// parsed, only then).
    pub fn needs_request_end(&self) -> bool {
        self.request_end
    }

    /// Appends one line for `entry`.
    pub fn append(&self, entry: &LogEntry<'_>, out: &mut Vec<u8>) {
        match &self.kind {
            Kind::Text(parts) => {
                for part in parts {
                    let start = out.len();
                    if !render(part, entry, out) && !self.omit_empty {
                        out.truncate(start);
                        out.push(b'-');
                    }
                }
            }
            Kind::Json(fields) => {
                out.push(b'{');
                let mut first = true;
                let mut value = Vec::new();
                for (key, parts) in fields {
                    value.clear();
                    // One operator alone keeps its type: a number, or null when absent.
                    let typed = matches!(parts.as_slice(), [Part::Op(op)] if numeric(op));
                    let single = matches!(parts.as_slice(), [Part::Op(_) | Part::Header { .. }]);
                    let mut present = true;
                    for part in parts {
                        let start = value.len();
                        if !render(part, entry, &mut value) {
                            value.truncate(start);
                            if single {
                                present = false;
                            } else if !self.omit_empty {
                                value.push(b'-');
                            }
                        }
                    }
                    if !present && self.omit_empty {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    json_string(key.as_bytes(), out);
                    out.push(b':');
                    match (present, typed) {
                        (false, _) => out.extend_from_slice(b"null"),
                        (true, true) => out.extend_from_slice(&value),
                        (true, false) => json_string(&value, out),
                    }
                }
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

fn response_part(h: &HeaderOp, slots: &[String]) -> Part {
    let source = |name: &str| {
        Source::ResponseSlot(slots.iter().position(|s| s == name).unwrap_or(usize::MAX))
    };
    Part::Header {
        first: source(&h.name),
        alternative: h.alternative.as_deref().map(source),
        max: h.max,
    }
}

fn header_part(h: &HeaderOp, slots: &[String]) -> Part {
    let source = |name: &str| match name {
        ":method" => Source::Method,
        ":path" => Source::Path,
        ":scheme" => Source::Scheme,
        other => Source::Slot(slots.iter().position(|s| s == other).unwrap_or(usize::MAX)),
    };
    Part::Header {
        first: source(&h.name),
        alternative: h.alternative.as_deref().map(source),
        max: h.max,
    }
}

/// Operators whose value is a number (typed in JSON), as Envoy's formatters type
/// them: a header's value (`%RESP(...)%`, `%REQ(...)%`) is a string even when it reads
/// as a number; a count (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`) is a number.
fn numeric(op: &Op) -> bool {
    matches!(
        op,
        Op::ResponseCode
            | Op::BytesReceived
            | Op::BytesSent
            | Op::Duration
            | Op::RequestDuration
            | Op::ResponseDuration
            | Op::ResponseTxDuration
            | Op::LocalPort
            | Op::UpstreamRequestAttemptCount
    )
}

fn header_value<'e>(source: Source, entry: &LogEntry<'e>) -> Option<&'e [u8]> {
    let value = match source {
        Source::Method => entry.method,
        Source::Path => entry.path,
        Source::Scheme => b"http",
        Source::Slot(i) => return entry.details.headers?.get(i).filter(|v| !v.is_empty()),
        Source::ResponseSlot(i) => {
            return entry
                .details
                .response_headers?
                .get(i)
                .filter(|v| !v.is_empty())
        }
    };
    (!value.is_empty()).then_some(value)
}

/// Appends one part's value; false when it has none (the caller prints `-`).
fn render(part: &Part, entry: &LogEntry<'_>, out: &mut Vec<u8>) -> bool {
    let d = &entry.details;
    match part {
        Part::Text(t) => {
            out.extend_from_slice(t);
            true
        }
        Part::Header {
            first,
            alternative,
            max,
        } => {
            let value = header_value(*first, entry)
                .or_else(|| alternative.and_then(|a| header_value(a, entry)));
            let Some(value) = value else {
                return false;
            };
            let value = match max {
                Some(n) => truncate_chars(value, *n),
                None => value,
            };
            text_field_raw(value, out);
            true
        }
        Part::Op(op) => match op {
            Op::StartTime(None) => {
                append_rfc3339_millis(entry.start, out);
                true
            }
            Op::StartTime(Some(parts)) => {
                start_time(parts, entry, out);
                true
            }
            Op::Req(_) => false,
            Op::Resp(_) => match d.upstream_service_time {
                Some(t) => {
                    push_padded(out, u64::try_from(t.as_millis()).unwrap_or(u64::MAX), 1);
                    true
                }
                None => false,
            },
            Op::Protocol => {
                let known = entry.protocol != "-";
                if known {
                    out.extend_from_slice(entry.protocol.as_bytes());
                }
                known
            }
            Op::ResponseCode => {
                push_padded(out, u64::from(entry.status), 1);
                true
            }
            Op::ResponseFlags => {
                entry.flags.append_to(out);
                true
            }
            Op::ResponseFlagsLong => {
                entry.flags.append_long_to(out);
                true
            }
            // Envoy's: body bytes (HTTP), without the heads.
            Op::BytesReceived => {
                let heads = entry.details.heads.0;
                push_padded(out, entry.bytes_received.saturating_sub(heads), 1);
                true
            }
            Op::BytesSent => {
                let heads = entry.details.heads.1;
                push_padded(out, entry.bytes_sent.saturating_sub(heads), 1);
                true
            }
            Op::Duration => {
                let ms = u64::try_from(entry.duration.as_millis()).unwrap_or(u64::MAX);
                push_padded(out, ms, 1);
                true
            }
            Op::UpstreamHost => match entry.upstream {
                Some(host) => {
                    text_field_raw(host.as_bytes(), out);
                    true
                }
                None => false,
            },
            Op::UpstreamCluster => text_opt(d.cluster, out),
            Op::RouteName => text_opt(d.route.or(entry.route), out),
            Op::TraceId => match &entry.trace {
                Some(ids) => {
                    ids.append_trace_id(out);
                    true
                }
                None => false,
            },
            Op::SpanId => match &entry.trace {
                Some(ids) => {
                    ids.append_span_id(out);
                    true
                }
                None => false,
            },
            Op::UpstreamRequestAttemptCount => {
                push_padded(out, u64::from(entry.attempts), 1);
                true
            }
            Op::RequestDuration => millis(d.request_duration, out),
            Op::ResponseDuration => millis(d.response_duration, out),
            Op::ResponseTxDuration => millis(
                d.response_duration
                    .map(|first| entry.duration.saturating_sub(first)),
                out,
            ),
            Op::UpstreamProtocol => {
                if entry.attempts > 0 {
                    out.extend_from_slice(b"HTTP/1.1");
                }
                entry.attempts > 0
            }
            Op::RemoteAddress { port } => {
                let (client, client_port) = d.remote.unwrap_or((entry.client, 0));
                match client.ip() {
                    Some(ip) => {
                        address(ip, port.then_some(client_port), out);
                        true
                    }
                    None => false,
                }
            }
            Op::DirectRemoteAddress { port } => {
                match d.direct.and_then(|(p, n)| Some((p.ip()?, n))) {
                    Some((ip, n)) => {
                        address(ip, port.then_some(n), out);
                        true
                    }
                    None => false,
                }
            }
            Op::LocalAddress { port } => match d.local {
                Some(local) => {
                    address(local.ip(), port.then_some(local.port()), out);
                    true
                }
                None => false,
            },
            Op::LocalPort => match d.local {
                Some(local) => {
                    push_padded(out, u64::from(local.port()), 1);
                    true
                }
                None => false,
            },
            Op::Hostname => text_opt(Some(crate::process::hostname()), out),
            Op::RequestedServerName => text_opt(d.tls.and_then(|t| t.sni.as_deref()), out),
            Op::TlsVersion => text_opt(d.tls.map(|t| t.version), out),
            Op::PeerUriSan => text_opt(d.tls.map(|t| &*t.peer_uri_san), out),
            Op::PeerDnsSan => text_opt(d.tls.map(|t| &*t.peer_dns_san), out),
            Op::PeerSubject => text_opt(d.tls.map(|t| &*t.peer_subject), out),
            Op::PeerFingerprint256 => text_opt(d.tls.map(|t| &*t.peer_fingerprint_256), out),
            Op::LocalUriSan => text_opt(d.tls.map(|t| &*t.local_uri_san), out),
            Op::UpstreamTransportFailureReason => false,
        },
    }
}

/// Whole milliseconds, as Envoy's duration operators print them; false without one.
fn millis(value: Option<std::time::Duration>, out: &mut Vec<u8>) -> bool {
    match value {
        Some(t) => {
            push_padded(out, u64::try_from(t.as_millis()).unwrap_or(u64::MAX), 1);
            true
        }
        None => false,
    }
}

fn text_opt(value: Option<&str>, out: &mut Vec<u8>) -> bool {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => {
            text_field_raw(v.as_bytes(), out);
            true
        }
        None => false,
    }
}

/// `ip:port` (`[v6]:port`), or the bare address.
fn address(ip: std::net::IpAddr, port: Option<u16>, out: &mut Vec<u8>) {
    match (ip, port) {
        (ip, None) => {
            let _ = write!(out, "{ip}");
        }
        (std::net::IpAddr::V4(v4), Some(port)) => {
            let _ = write!(out, "{v4}:{port}");
        }
        (std::net::IpAddr::V6(v6), Some(port)) => {
            let _ = write!(out, "[{v6}]:{port}");
        }
    }
}

/// The first `n` characters (of UTF-8 text; bytes otherwise).
fn truncate_chars(value: &[u8], n: usize) -> &[u8] {
    match std::str::from_utf8(value) {
        Ok(text) => match text.char_indices().nth(n) {
            Some((at, _)) => &value[..at],
            None => value,
        },
        Err(_) => &value[..n.min(value.len())],
    }
}

fn start_time(parts: &[TimePart], entry: &LogEntry<'_>, out: &mut Vec<u8>) {
    let since = entry.start.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    for part in parts {
        match part {
            TimePart::Text(t) => out.extend_from_slice(t.as_bytes()),
            TimePart::Year => push_padded(out, year, 4),
            TimePart::Month => push_padded(out, u64::from(month), 2),
            TimePart::Day => push_padded(out, u64::from(day), 2),
            TimePart::Hour => push_padded(out, of_day / 3600, 2),
            TimePart::Minute => push_padded(out, of_day / 60 % 60, 2),
            TimePart::Second => push_padded(out, of_day % 60, 2),
            TimePart::EpochSeconds => push_padded(out, secs, 1),
            TimePart::Fraction(n) => {
                let nanos = u64::from(since.subsec_nanos());
                let digits = u32::from(*n);
                push_padded(out, nanos / 10u64.pow(9 - digits), *n as usize);
            }
            TimePart::Offset => out.extend_from_slice(b"+0000"),
            TimePart::Zone => out.extend_from_slice(b"UTC"),
            TimePart::DayOfYear => {
                push_padded(out, days - days_from_civil(year, 1, 1) + 1, 3);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::access_log::{Captured, Details, ResponseFlags, TlsDetails};
    use crate::peer::Peer;

    fn compiled(format: &str) -> Compiled {
        Compiled::new(&AccessLogFormat::EnvoyText {
            format: format.into(),
            omit_empty_values: false,
        })
        .expect("an Envoy format")
    }

    fn line(c: &Compiled, captured: &Captured) -> String {
        line_with(c, captured, None)
    }

    fn line_with(c: &Compiled, captured: &Captured, tls: Option<&TlsDetails>) -> String {
        let entry = LogEntry {
            start: UNIX_EPOCH + Duration::from_millis(1_795_294_800_123),
            duration: Duration::from_micros(3_999),
            listener: "l",
            client: Peer::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
            method: b"POST",
            path: b"/api/v1?x=1",
            protocol: "HTTP/1.1",
            status: 201,
            bytes_received: 154,
            bytes_sent: 12,
            upstream: Some("127.0.0.1:9001"),
            flags: ResponseFlags::NONE,
            consumer: None,
            route: None,
            trace: None,
            attempts: 0,
            details: Details {
                remote: Some((Peer::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))), 0)),
                direct: Some((Peer::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), 40_000)),
                local: Some("127.0.0.1:10000".parse().unwrap()),
                route: Some("api"),
                cluster: Some("app"),
                upstream_service_time: Some(Duration::from_millis(2)),
                request_duration: Some(Duration::from_micros(400)),
                response_duration: Some(Duration::from_micros(2_900)),
                headers: Some(captured),
                response_headers: None,
                tls,
                heads: (0, 0),
            },
        };
        let mut out = Vec::new();
        c.append(&entry, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn captured(c: &Compiled, values: &[(&str, &str)]) -> Captured {
        let mut captured = Captured::default();
        captured.reset(c.headers().len());
        for (name, value) in values {
            let slot = c.headers().iter().position(|h| h == name).unwrap();
            captured.set(slot, value.as_bytes());
        }
        captured
    }

    #[test]
    fn envoys_default_format() {
        let c = compiled(log_format::DEFAULT);
        let headers = captured(
            &c,
            &[
                ("x-forwarded-for", "10.0.0.7"),
                ("user-agent", "curl/8.5.0"),
                ("x-request-id", "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"),
                (":authority", "locations"),
            ],
        );
        assert_eq!(
            line(&c, &headers),
            "[2026-11-21T21:00:00.123Z] \"POST /api/v1?x=1 HTTP/1.1\" 201 - 154 12 3 2 \"10.0.0.7\" \"curl/8.5.0\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"127.0.0.1:9001\"\n"
        );
        // Absent headers print `-`; the original path wins over :path when set.
        let headers = captured(&c, &[("x-envoy-original-path", "/before")]);
        assert_eq!(
            line(&c, &headers),
            "[2026-11-21T21:00:00.123Z] \"POST /before HTTP/1.1\" 201 - 154 12 3 2 \"-\" \"-\" \"-\" \"-\" \"127.0.0.1:9001\"\n"
        );
    }

    #[test]
    fn operators_and_arguments() {
        let c = compiled("%REQ(USER-AGENT):4% %START_TIME(%s.%3f %F %T %j %z)% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_PORT% %ROUTE_NAME% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS_LONG% %REQUESTED_SERVER_NAME% 100%%\n");
        let headers = captured(&c, &[("user-agent", "curl/8.5.0\r\nX: y")]);
        assert_eq!(
            line(&c, &headers),
            "curl 1795294800.123 2026-11-21 21:00:00 325 +0000 10.0.0.7:0 127.0.0.1:40000 127.0.0.1:10000 10000 api app - - 100%\n"
        );
        // The timings in whole milliseconds (the entry: 3.999 ms in all, the upstream's
        // first byte at 2.9 ms); no upstream attempt: no upstream protocol.
        let c = compiled(
            "%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION% %DURATION% %UPSTREAM_PROTOCOL%",
        );
        assert_eq!(line(&c, &captured(&c, &[])), "0 2 1 3 -");
        // Control bytes in a value are escaped: a line stays one line.
        let c = compiled("%REQ(X)%");
        let headers = captured(&c, &[("x", "a\r\nb")]);
        assert_eq!(line(&c, &headers), "a\\x0d\\x0ab");
    }

    #[test]
    fn json_values_keep_their_types() {
        let c = Compiled::new(&AccessLogFormat::EnvoyJson {
            fields: vec![
                ("code".into(), "%RESPONSE_CODE%".into()),
                ("method".into(), "%REQ(:METHOD)%".into()),
                ("agent".into(), "%REQ(USER-AGENT)%".into()),
                ("both".into(), "%PROTOCOL% %REQ(USER-AGENT)%".into()),
                ("ms".into(), "%DURATION%".into()),
                ("tries".into(), "%UPSTREAM_REQUEST_ATTEMPT_COUNT%".into()),
                ("ust".into(), "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%".into()),
            ],
            omit_empty_values: false,
        })
        .unwrap();
        let headers = captured(&c, &[]);
        assert_eq!(
            line(&c, &headers),
            "{\"code\":201,\"method\":\"POST\",\"agent\":null,\"both\":\"HTTP/1.1 -\",\"ms\":3,\"tries\":0,\"ust\":\"2\"}\n"
        );
        let c = Compiled::new(&AccessLogFormat::EnvoyJson {
            fields: vec![("agent".into(), "%REQ(USER-AGENT)%".into())],
            omit_empty_values: true,
        })
        .unwrap();
        assert_eq!(line(&c, &captured(&c, &[])), "{}\n");
    }

    #[test]
    fn tls_operators_print_the_connections_facts() {
        let c = compiled("%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_PEER_DNS_SAN% %DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_PEER_FINGERPRINT_256% %DOWNSTREAM_LOCAL_URI_SAN%\n");
        let tls = TlsDetails {
            sni: Some("api.test".into()),
            version: "TLSv1.3",
            peer_uri_san: "spiffe://td/ns/a/sa/web".into(),
            peer_dns_san: "web.a,web.b".into(),
            peer_subject: "CN=web".into(),
            peer_fingerprint_256: "ab12".into(),
            local_uri_san: "spiffe://td/ns/b/sa/api".into(),
        };
        assert_eq!(
            line_with(&c, &Captured::default(), Some(&tls)),
            "api.test TLSv1.3 spiffe://td/ns/a/sa/web web.a,web.b CN=web ab12 spiffe://td/ns/b/sa/api\n"
        );
        // Plaintext: Envoy's `-` for each.
        assert_eq!(line(&c, &Captured::default()), "- - - - - - -\n");
    }
}
