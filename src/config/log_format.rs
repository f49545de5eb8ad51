//! Envoy's access-log format strings: `%COMMAND%` operators with their arguments,
//! parsed and checked when the config is read, rendered by `access_log::envoy`.
//!
//! Design: the operators ringway can fill are parsed into [`Op`]s, with `REQ(A?B):N`
//! (a request header, else another, truncated to N characters), `RESP(...)` (the
//! response headers ringway itself adds) and `START_TIME(format)` (a strftime subset,
//! compiled here into [`TimePart`]s so a line is formatted without parsing anything).
//! An operator ringway cannot fill yet is refused by name, never printed as text or `-`.
//! [`DEFAULT`] is Envoy's default format, used when a logger gives none.

use super::format::{split, Piece};

/// Envoy's default access-log format (`docs/root/configuration/observability/access_log/usage.rst`).
pub const DEFAULT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// One command operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `%START_TIME%`: RFC 3339 UTC with milliseconds; with an argument, that format.
    StartTime(Option<Vec<TimePart>>),
    /// `%REQ(name?alternative):max%`: names lower-cased; `:method`, `:path`,
    /// `:authority`, `:scheme` are the request line's parts.
    Req(HeaderOp),
    /// `%RESP(name?alternative):max%`, for the response headers ringway adds
    /// (`x-envoy-upstream-service-time`).
    Resp(HeaderOp),
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseFlagsLong,
    BytesReceived,
    BytesSent,
    /// Milliseconds from the first byte of the request to the last of the response.
    Duration,
    /// `ip:port` of the endpoint the request went to.
    UpstreamHost,
    UpstreamCluster,
    /// The client as the trust policy resolved it (`x-forwarded-for`, PROXY protocol).
    RemoteAddress {
        port: bool,
    },
    /// The TCP peer.
    DirectRemoteAddress {
        port: bool,
    },
    /// The address the client connected to.
    LocalAddress {
        port: bool,
    },
    LocalPort,
    RouteName,
    Hostname,
    /// The server name the client sent in its TLS handshake (`-` on plaintext).
    RequestedServerName,
    /// The connection's TLS version (`TLSv1.3`).
    TlsVersion,
    /// The client certificate's URI subject alt names, comma-separated.
    PeerUriSan,
    /// Its DNS subject alt names, comma-separated.
    PeerDnsSan,
    /// Its subject.
    PeerSubject,
    /// Its SHA-256, hex.
    PeerFingerprint256,
    /// Our certificate's URI subject alt names.
    LocalUriSan,
    /// Empty until TLS exists (no transport failures other than the connection's).
    UpstreamTransportFailureReason,
    /// The request's trace id (`-` on a listener without tracing).
    TraceId,
    /// ringway's: the span id of the request's own span.
    SpanId,
    /// Upstream attempts made (Envoy's `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    UpstreamRequestAttemptCount,
    /// Milliseconds from the request's first byte to its last (Envoy's
    /// `%REQUEST_DURATION%`); `-` when the request did not complete.
    RequestDuration,
    /// Milliseconds from the request's first byte to the first of the upstream's
    /// response (`%RESPONSE_DURATION%`); `-` without one.
    ResponseDuration,
    /// Milliseconds from the upstream response's first byte to the client's last
    /// (`%RESPONSE_TX_DURATION%`); `-` without an upstream response.
    ResponseTxDuration,
    /// `HTTP/1.1` when the request went upstream, else `-` (`%UPSTREAM_PROTOCOL%`).
    UpstreamProtocol,
}

/// A header operator's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOp {
    pub name: String,
    pub alternative: Option<String>,
    /// At most this many characters.
    pub max: Option<usize>,
}

/// One part of a `START_TIME` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimePart {
    Text(String),
    /// `%Y`.
    Year,
    /// `%m`.
    Month,
    /// `%d`.
    Day,
    /// `%H`.
    Hour,
    /// `%M`.
    Minute,
    /// `%S`.
    Second,
    /// `%s`: seconds since the epoch.
    EpochSeconds,
    /// `%f` (9), `%3f`, `%6f`, `%9f`, ...: the second's fraction in this many digits.
    Fraction(u8),
    /// `%z`: `+0000` (times are UTC).
    Offset,
    /// `%Z`: `UTC`.
    Zone,
    /// `%j`: day of the year, 001..366.
    DayOfYear,
}

/// Operators Envoy has that ringway cannot fill yet: refused by name.
const NOT_YET: &[&str] = &[
    "REQUEST_TX_DURATION",
    "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS",
    "UPSTREAM_LOCAL_ADDRESS",
    "TRAILER",
    "DYNAMIC_METADATA",
    "FILTER_STATE",
    "UPSTREAM_METADATA",
    "DOWNSTREAM_TLS_CIPHER",
    "TRACE_ID",
    "CEL",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
];

/// The response header `%RESP(...)%` prints from the upstream's service time, whether or
/// not the response carries it (`suppress_envoy_headers`).
pub const SERVICE_TIME: &str = "x-envoy-upstream-service-time";

/// Parses a format string.
pub fn parse(text: &str) -> Result<Vec<Piece<Op>>, String> {
    split(text, operator)
}

fn operator(spec: &str) -> Result<Op, String> {
    let (name, arg, max) = match spec.find('(') {
        Some(open) => {
            let close = spec
                .rfind(')')
                .filter(|&c| c > open)
                .ok_or_else(|| format!("%{spec}%: `(` without `)`"))?;
            let max = match spec[close + 1..].strip_prefix(':') {
                Some(n) => Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("%{spec}%: `:{n}` is not a length"))?,
                ),
                None if spec.len() > close + 1 => {
                    return Err(format!("%{spec}%: unexpected text after `)`"))
                }
                None => None,
            };
            (&spec[..open], Some(&spec[open + 1..close]), max)
        }
        None => (spec, None, None),
    };
    let plain = |op: Op| match arg {
        None => Ok(op),
        Some(_) => Err(format!("%{name}% takes no argument")),
    };
    match name {
        "START_TIME" => Ok(Op::StartTime(arg.map(time_format).transpose()?)),
        "REQ" | "RESP" => {
            let arg = arg.ok_or_else(|| format!("%{name}% needs a header name: %{name}(name)%"))?;
            let (first, alternative) = match arg.split_once('?') {
                Some((a, b)) => (a, Some(b)),
                None => (arg, None),
            };
            let header = |h: &str| -> Result<String, String> {
                let h = h.to_ascii_lowercase();
                let valid = !h.is_empty()
                    && h.strip_prefix(':')
                        .unwrap_or(&h)
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid {
                    return Err(format!("%{spec}%: {h:?} is not a header name"));
                }
                if name == "RESP" && h.starts_with(':') {
                    return Err(format!(
                        "%{spec}%: a response has no pseudo-header {h:?} (`%RESPONSE_CODE%` is its status)"
                    ));
                }
                Ok(h)
            };
            let op = HeaderOp {
                name: header(first)?,
                alternative: alternative.map(header).transpose()?,
                max,
            };
            Ok(if name == "REQ" {
                Op::Req(op)
            } else {
                Op::Resp(op)
            })
        }
        "PROTOCOL" => plain(Op::Protocol),
        "RESPONSE_CODE" => plain(Op::ResponseCode),
        "RESPONSE_FLAGS" => plain(Op::ResponseFlags),
        "RESPONSE_FLAGS_LONG" => plain(Op::ResponseFlagsLong),
        "BYTES_RECEIVED" => plain(Op::BytesReceived),
        "BYTES_SENT" => plain(Op::BytesSent),
        "DURATION" => plain(Op::Duration),
        "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => plain(Op::UpstreamHost),
        "UPSTREAM_CLUSTER" => plain(Op::UpstreamCluster),
        "DOWNSTREAM_REMOTE_ADDRESS" => plain(Op::RemoteAddress { port: true }),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => plain(Op::RemoteAddress { port: false }),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => plain(Op::DirectRemoteAddress { port: true }),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            plain(Op::DirectRemoteAddress { port: false })
        }
        "DOWNSTREAM_LOCAL_ADDRESS" => plain(Op::LocalAddress { port: true }),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => plain(Op::LocalAddress { port: false }),
        "DOWNSTREAM_LOCAL_PORT" => plain(Op::LocalPort),
        "ROUTE_NAME" => plain(Op::RouteName),
        "TRACE_ID" => plain(Op::TraceId),
        "SPAN_ID" => plain(Op::SpanId),
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => plain(Op::UpstreamRequestAttemptCount),
        "REQUEST_DURATION" => plain(Op::RequestDuration),
        "RESPONSE_DURATION" => plain(Op::ResponseDuration),
        "RESPONSE_TX_DURATION" => plain(Op::ResponseTxDuration),
        "UPSTREAM_PROTOCOL" => plain(Op::UpstreamProtocol),
        "HOSTNAME" => plain(Op::Hostname),
        "REQUESTED_SERVER_NAME" => plain(Op::RequestedServerName),
        "DOWNSTREAM_TLS_VERSION" => plain(Op::TlsVersion),
        "DOWNSTREAM_PEER_URI_SAN" => plain(Op::PeerUriSan),
        "DOWNSTREAM_PEER_DNS_SAN" => plain(Op::PeerDnsSan),
        "DOWNSTREAM_PEER_SUBJECT" => plain(Op::PeerSubject),
        "DOWNSTREAM_PEER_FINGERPRINT_256" => plain(Op::PeerFingerprint256),
        "DOWNSTREAM_LOCAL_URI_SAN" => plain(Op::LocalUriSan),
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => plain(Op::UpstreamTransportFailureReason),
        _ if NOT_YET.contains(&name) => Err(format!("%{name}% is not supported yet")),
        _ => Err(format!("unknown command operator %{name}%")),
    }
}

/// A strftime subset: `%Y %m %d %H %M %S %s %f %Nf %z %Z %j %F %T %%`.
fn time_format(text: &str) -> Result<Vec<TimePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    let flush = |literal: &mut String, parts: &mut Vec<TimePart>| {
        if !literal.is_empty() {
            parts.push(TimePart::Text(std::mem::take(literal)));
        }
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let spec = chars
            .next()
            .ok_or_else(|| format!("START_TIME({text}): a `%` at the end"))?;
        if !digits.is_empty() && spec != 'f' {
            return Err(format!(
                "START_TIME({text}): `%{digits}{spec}` is not supported"
            ));
        }
        let part = match spec {
            '%' => {
                literal.push('%');
                continue;
            }
            'Y' => TimePart::Year,
            'm' => TimePart::Month,
            'd' => TimePart::Day,
            'H' => TimePart::Hour,
            'M' => TimePart::Minute,
            'S' => TimePart::Second,
            's' => TimePart::EpochSeconds,
            'z' => TimePart::Offset,
            'Z' => TimePart::Zone,
            'j' => TimePart::DayOfYear,
            'f' => {
                let n = if digits.is_empty() {
                    9
                } else {
                    digits
                        .parse::<u8>()
                        .ok()
                        .filter(|n| (1..=9).contains(n))
                        .ok_or_else(|| {
                            format!("START_TIME({text}): `%{digits}f` takes 1 to 9 digits")
                        })?
                };
                TimePart::Fraction(n)
            }
            'F' => {
                flush(&mut literal, &mut parts);
                parts.extend([
                    TimePart::Year,
                    TimePart::Text("-".into()),
                    TimePart::Month,
                    TimePart::Text("-".into()),
                    TimePart::Day,
                ]);
                continue;
            }
            'T' => {
                flush(&mut literal, &mut parts);
                parts.extend([
                    TimePart::Hour,
                    TimePart::Text(":".into()),
                    TimePart::Minute,
                    TimePart::Text(":".into()),
                    TimePart::Second,
                ]);
                continue;
            }
            other => return Err(format!("START_TIME({text}): `%{other}` is not supported")),
        };
        flush(&mut literal, &mut parts);
        parts.push(part);
    }
    flush(&mut literal, &mut parts);
    Ok(parts)
}

/// The request headers a format prints (lower case, pseudo-headers excluded): what a
/// connection must keep of each request for its line.
/// The response headers a format prints (`%RESP(...)%` other than the service time
/// alone), in slot order.
pub fn response_headers(pieces: &[Piece<Op>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for piece in pieces {
        if let Piece::Var(Op::Resp(h)) = piece {
            if is_service_time(h) {
                continue;
            }
            for name in std::iter::once(&h.name).chain(&h.alternative) {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

/// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%` alone: printed from the service time.
pub fn is_service_time(h: &HeaderOp) -> bool {
    h.name == SERVICE_TIME && h.alternative.is_none()
}

pub fn request_headers(pieces: &[Piece<Op>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for piece in pieces {
        if let Piece::Var(Op::Req(h)) = piece {
            for name in std::iter::once(&h.name).chain(&h.alternative) {
                let pseudo = name.starts_with(':') && name != ":authority";
                if !pseudo && !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_format_parses() {
        let pieces = parse(DEFAULT).expect("default format");
        assert!(pieces.contains(&Piece::Var(Op::Req(HeaderOp {
            name: "x-envoy-original-path".into(),
            alternative: Some(":path".into()),
            max: None
        }))));
        assert_eq!(
            request_headers(&pieces),
            [
                "x-envoy-original-path",
                "x-forwarded-for",
                "user-agent",
                "x-request-id",
                ":authority"
            ]
        );
        assert_eq!(pieces.last(), Some(&Piece::Text("\"\n".into())));
    }

    #[test]
    fn operators_take_their_arguments() {
        assert_eq!(
            parse("%REQ(User-Agent):10%"),
            Ok(vec![Piece::Var(Op::Req(HeaderOp {
                name: "user-agent".into(),
                alternative: None,
                max: Some(10)
            }))])
        );
        assert_eq!(
            parse("%START_TIME(%Y/%m/%dT%H:%M:%S.%3f%z %s)%"),
            Ok(vec![Piece::Var(Op::StartTime(Some(vec![
                TimePart::Year,
                TimePart::Text("/".into()),
                TimePart::Month,
                TimePart::Text("/".into()),
                TimePart::Day,
                TimePart::Text("T".into()),
                TimePart::Hour,
                TimePart::Text(":".into()),
                TimePart::Minute,
                TimePart::Text(":".into()),
                TimePart::Second,
                TimePart::Text(".".into()),
                TimePart::Fraction(3),
                TimePart::Offset,
                TimePart::Text(" ".into()),
                TimePart::EpochSeconds,
            ])))])
        );
        assert!(parse("%REQUEST_TX_DURATION%")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(parse("%RESP(content-type)%").is_ok());
        assert!(parse("%RESP(:status)%")
            .unwrap_err()
            .contains("no pseudo-header"));
        assert!(parse("%BOGUS%")
            .unwrap_err()
            .contains("unknown command operator %BOGUS%"));
        assert!(parse("%REQ%").unwrap_err().contains("needs a header name"));
        assert!(parse("%REQ(a b)%")
            .unwrap_err()
            .contains("not a header name"));
        assert!(parse("%START_TIME(%Q)%")
            .unwrap_err()
            .contains("`%Q` is not supported"));
        assert!(parse("%PROTOCOL(x)%")
            .unwrap_err()
            .contains("takes no argument"));
    }
}
