//! The two line formats, appended to a caller-owned buffer.
//!
//! Design: formatting writes straight into the worker's current batch (`Vec<u8>`), so a
//! warm buffer means no allocation per line: numbers and the timestamp are written digit
//! by digit, the client address through `io::Write` on the `Vec` (no `String`). Bytes
//! that came from the client (method and target) are escaped so that a client cannot end
//! a line, open a quote or fake a field: a log line is one request, always.
//!
//! **Text** (Envoy's default format, reordered slightly and with fields quoted where
//! they can hold spaces), one line per request, fields separated by one space:
//!
//! ```text
//! [START] "METHOD TARGET PROTOCOL" STATUS FLAGS BYTES_RECEIVED BYTES_SENT DURATION_MS "CLIENT" "UPSTREAM" LISTENER
//! [2026-11-21T21:00:00.123Z] "GET /path HTTP/1.1" 200 - 0 9 3 "127.0.0.1" "127.0.0.1:9001" public
//! ```
//!
//! `START` is RFC 3339 UTC with milliseconds; `FLAGS` are Envoy's short response flags
//! joined by `,`, or `-`; `DURATION_MS` is whole milliseconds; a missing method, target,
//! protocol or upstream is `-`. In METHOD and TARGET, bytes other than printable ASCII
//! (`!`..`~`) are written `\xHH`, and `"` and `\` are written `\"` and `\\`.
//!
//! **JSON**: one object per line with these keys, in this order:
//! `start_time` (string), `method` (string or null), `path` (the raw target: string or
//! null), `protocol` (string or null), `status` (number, 0 when nothing was sent),
//! `response_flags` (string, as in text), `bytes_received`, `bytes_sent`, `duration_ms`
//! (numbers), `client` (string), `upstream` (string or null), `listener` (string),
//! `consumer` (who authentication found the client to be: the API consumer, else the
//! token's subject; string or null), `route` (the route's name: string or null),
//! `trace_id` and `span_id` (lower hex: the request's trace and its own span, on a
//! listener with tracing; else null), `attempts` (upstream attempts made: number).
//! Strings are escaped per RFC 8259 (`\"`, `\\`, `\n`, `\r`, `\t`, `\u00XX` for other
//! controls and DEL, `\u2028`/`\u2029` for JavaScript's sake); bytes that are not UTF-8
//! become U+FFFD, since JSON strings are Unicode text.

use std::io::Write as _;

use super::entry::LogEntry;
use super::envoy::Compiled;
use super::timestamp::{append_rfc3339_millis, push_padded};
use crate::config::AccessLogFormat;

/// A line format ready to render: a native one, or a compiled Envoy format string.
#[derive(Debug, Clone)]
pub enum LineFormat {
    Text,
    Json,
    Envoy(Box<Compiled>),
}

impl LineFormat {
    /// Compiles `format` (once per worker log).
    pub fn new(format: &AccessLogFormat) -> LineFormat {
        match Compiled::new(format) {
            Some(compiled) => LineFormat::Envoy(Box::new(compiled)),
            None if *format == AccessLogFormat::Json => LineFormat::Json,
            None => LineFormat::Text,
        }
    }

    /// The request headers a connection must capture for its lines.
    pub fn headers(&self) -> &[String] {
        match self {
            LineFormat::Envoy(compiled) => compiled.headers(),
            LineFormat::Text | LineFormat::Json => &[],
        }
    }

    /// The response headers each line prints, in slot order.
    pub fn response_headers(&self) -> &[String] {
        match self {
            LineFormat::Envoy(compiled) => compiled.response_headers(),
            LineFormat::Text | LineFormat::Json => &[],
        }
    }

    /// Whether lines print the connection's local address.
    pub fn needs_local_address(&self) -> bool {
        matches!(self, LineFormat::Envoy(c) if c.needs_local_address())
    }

    /// Whether lines print when the request ended.
    pub fn needs_request_end(&self) -> bool {
        matches!(self, LineFormat::Envoy(c) if c.needs_request_end())
    }
}

/// Appends one line for `entry` in `format` (the native formats end it with a newline;
/// an Envoy format string ends it as it says).
pub fn append_line(format: &LineFormat, entry: &LogEntry<'_>, out: &mut Vec<u8>) {
    match format {
        LineFormat::Text => append_text(entry, out),
        LineFormat::Json => append_json(entry, out),
        LineFormat::Envoy(compiled) => compiled.append(entry, out),
    }
}

/// Appends the text line for `entry`.
pub fn append_text(entry: &LogEntry<'_>, out: &mut Vec<u8>) {
    out.push(b'[');
    append_rfc3339_millis(entry.start, out);
    out.extend_from_slice(b"] \"");
    text_field(entry.method, out);
    out.push(b' ');
    text_field(entry.path, out);
    out.push(b' ');
    text_field(entry.protocol.as_bytes(), out);
    out.extend_from_slice(b"\" ");
    push_padded(out, u64::from(entry.status), 1);
    out.push(b' ');
    entry.flags.append_to(out);
    out.push(b' ');
    push_padded(out, entry.bytes_received, 1);
    out.push(b' ');
    push_padded(out, entry.bytes_sent, 1);
    out.push(b' ');
    push_padded(out, duration_ms(entry), 1);
    out.extend_from_slice(b" \"");
    let _ = write!(out, "{}", entry.client);
    out.extend_from_slice(b"\" \"");
    text_field(entry.upstream.unwrap_or("").as_bytes(), out);
    out.extend_from_slice(b"\" ");
    text_field(entry.listener.as_bytes(), out);
    out.push(b'\n');
}

/// Appends the JSON line for `entry`.
pub fn append_json(entry: &LogEntry<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"start_time\":\"");
    append_rfc3339_millis(entry.start, out);
    out.extend_from_slice(b"\",\"method\":");
    json_string_or_null(entry.method, out);
    out.extend_from_slice(b",\"path\":");
    json_string_or_null(entry.path, out);
    out.extend_from_slice(b",\"protocol\":");
    let protocol = if entry.protocol == "-" {
        ""
    } else {
        entry.protocol
    };
    json_string_or_null(protocol.as_bytes(), out);
    out.extend_from_slice(b",\"status\":");
    push_padded(out, u64::from(entry.status), 1);
    out.extend_from_slice(b",\"response_flags\":\"");
    entry.flags.append_to(out);
    out.extend_from_slice(b"\",\"bytes_received\":");
    push_padded(out, entry.bytes_received, 1);
    out.extend_from_slice(b",\"bytes_sent\":");
    push_padded(out, entry.bytes_sent, 1);
    out.extend_from_slice(b",\"duration_ms\":");
    push_padded(out, duration_ms(entry), 1);
    out.extend_from_slice(b",\"client\":\"");
    let _ = write!(out, "{}", entry.client);
    out.extend_from_slice(b"\",\"upstream\":");
    json_string_or_null(entry.upstream.unwrap_or("").as_bytes(), out);
    out.extend_from_slice(b",\"listener\":");
    json_string(entry.listener.as_bytes(), out);
    out.extend_from_slice(b",\"consumer\":");
    json_string_or_null(entry.consumer.unwrap_or("").as_bytes(), out);
    out.extend_from_slice(b",\"route\":");
    json_string_or_null(entry.route.unwrap_or("").as_bytes(), out);
    match &entry.trace {
        Some(ids) => {
            out.extend_from_slice(b",\"trace_id\":\"");
            ids.append_trace_id(out);
            out.extend_from_slice(b"\",\"span_id\":\"");
            ids.append_span_id(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b",\"trace_id\":null,\"span_id\":null"),
    }
    out.extend_from_slice(b",\"attempts\":");
    push_padded(out, u64::from(entry.attempts), 1);
    out.extend_from_slice(b"}\n");
}

fn duration_ms(entry: &LogEntry<'_>) -> u64 {
    u64::try_from(entry.duration.as_millis()).unwrap_or(u64::MAX)
}

/// A text field: `-` when empty, else the bytes with everything but printable ASCII
/// escaped, so the line stays one line and its quotes stay ours.
fn text_field(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        out.push(b'-');
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'!'..=b'~' => out.push(b),
            _ => push_hex_escape(b"\\x", b, out),
        }
    }
}

fn push_hex_escape(prefix: &[u8], b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(prefix);
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// A value of an Envoy format string: printed as received, as Envoy does, except control
/// bytes (`\xHH`), so that a line stays one line.
pub(super) fn text_field_raw(bytes: &[u8], out: &mut Vec<u8>) {
    // Almost every value has no control byte: one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        if b < 0x20 || b == 0x7f {
            push_hex_escape(b"\\x", b, out);
        } else {
            out.push(b);
        }
    }
}

/// `null` for an empty field (unknown), else a JSON string.
fn json_string_or_null(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        json_string(bytes, out);
    }
}

/// A JSON string of arbitrary bytes: UTF-8 kept, invalid sequences as U+FFFD.
pub(super) fn json_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                // ASCII, so the cast is exact.
                c if c.is_ascii_control() => push_hex_escape(b"\\u00", c as u8, out),
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr, Ipv6Addr},
        time::{Duration, UNIX_EPOCH},
    };

    use super::*;
    use crate::access_log::ResponseFlags;

    fn entry() -> LogEntry<'static> {
        LogEntry {
            start: UNIX_EPOCH + Duration::from_millis(1_795_294_800_123),
            duration: Duration::from_micros(3_999),
            listener: "public",
            client: crate::peer::Peer::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            method: b"GET",
            path: b"/path?q=1",
            protocol: "HTTP/1.1",
            status: 200,
            bytes_received: 0,
            bytes_sent: 9,
            upstream: Some("127.0.0.1:9001"),
            flags: ResponseFlags::NONE,
            consumer: None,
            route: None,
            trace: None,
            attempts: 0,
            details: Default::default(),
        }
    }

    fn text(entry: &LogEntry<'_>) -> String {
        let mut out = Vec::new();
        append_line(&LineFormat::Text, entry, &mut out);
        String::from_utf8(out).expect("text lines are ASCII")
    }

    fn json(entry: &LogEntry<'_>) -> String {
        let mut out = Vec::new();
        append_line(&LineFormat::Json, entry, &mut out);
        String::from_utf8(out).expect("JSON lines are UTF-8")
    }

    #[test]
    fn text_line() {
        assert_eq!(
            text(&entry()),
            "[2026-11-21T21:00:00.123Z] \"GET /path?q=1 HTTP/1.1\" 200 - 0 9 3 \"127.0.0.1\" \"127.0.0.1:9001\" public\n"
        );
        let local = LogEntry {
            client: crate::peer::Peer::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            method: b"",
            path: b"",
            protocol: "-",
            status: 400,
            upstream: None,
            flags: ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            consumer: None,
            bytes_received: 12,
            ..entry()
        };
        assert_eq!(
            text(&local),
            "[2026-11-21T21:00:00.123Z] \"- - -\" 400 DPE 12 9 3 \"::1\" \"-\" public\n"
        );
    }

    #[test]
    fn text_escapes_what_could_forge_a_line() {
        let nasty = LogEntry {
            method: b"G\"ET",
            path: b"/a b\n[2026] \"GET / HTTP/1.1\" 200\\\x7f\xff",
            ..entry()
        };
        let line = text(&nasty);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(
            line.contains(
                r#""G\"ET /a\x20b\x0a[2026]\x20\"GET\x20/\x20HTTP/1.1\"\x20200\\\x7f\xff HTTP/1.1""#
            ),
            "{line}"
        );
    }

    #[test]
    fn json_line() {
        assert_eq!(
            json(&entry()),
            "{\"start_time\":\"2026-11-21T21:00:00.123Z\",\"method\":\"GET\",\"path\":\"/path?q=1\",\
             \"protocol\":\"HTTP/1.1\",\"status\":200,\"response_flags\":\"-\",\"bytes_received\":0,\
             \"bytes_sent\":9,\"duration_ms\":3,\"client\":\"127.0.0.1\",\"upstream\":\"127.0.0.1:9001\",\
             \"listener\":\"public\",\"consumer\":null,\"route\":null,\"trace_id\":null,\"span_id\":null,\"attempts\":0}\n"
        );
        let local = LogEntry {
            method: b"",
            path: b"",
            protocol: "-",
            upstream: None,
            flags: ResponseFlags::NO_ROUTE | ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
            consumer: None,
            ..entry()
        };
        let line = json(&local);
        assert!(
            line.contains("\"method\":null,\"path\":null,\"protocol\":null,"),
            "{line}"
        );
        assert!(line.contains("\"response_flags\":\"NR,DC\""), "{line}");
        assert!(line.contains("\"upstream\":null,"), "{line}");
    }

    #[test]
    fn json_escapes_arbitrary_bytes() {
        let nasty = LogEntry {
            path: "/\"\\\n\r\t\x01\x7f é\u{2028}".as_bytes(),
            ..entry()
        };
        let line = json(&nasty);
        assert!(
            line.contains(r#""path":"/\"\\\n\r\t\u0001\u007f é\u2028","#),
            "{line}"
        );
        let invalid = LogEntry {
            path: b"/a\xffb\xc3",
            ..entry()
        };
        assert!(json(&invalid).contains("\"path\":\"/a\u{fffd}b\u{fffd}\","));
    }

    #[test]
    fn warm_buffer_does_not_reallocate() {
        let mut out = Vec::with_capacity(4096);
        append_text(&entry(), &mut out);
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        for _ in 0..10 {
            out.clear();
            append_text(&entry(), &mut out);
            append_json(&entry(), &mut out);
        }
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
    }
}
