//! Header values with variables: Envoy's `%VARIABLE%` substitution in
//! `request_headers_to_add` / `response_headers_to_add` values, shared by the config
//! check (a variable ringway does not know, or cannot fill on that side, is refused by
//! name) and the filter that renders them.
//!
//! Supported, with Envoy's names: `%DOWNSTREAM_REMOTE_ADDRESS%` and
//! `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%` (the client as the trust policy resolved
//! it; its port is 0 when it came from `x-forwarded-for`), `%REQ(name)%` (a request header's first value, empty
//! when absent; request side only), `%PROTOCOL%` (`HTTP/1.1`, `HTTP/1.0`), `%HOSTNAME%`,
//! `%START_TIME%` (RFC 3339 UTC with milliseconds, when the filter runs), `%ROUTE_NAME%`,
//! `%RESPONSE_CODE%` and `%UPSTREAM_REMOTE_ADDRESS%` (response side only). `%%` is a
//! literal `%`. Who authentication found the client to be (both sides): ringway's
//! `%CONSUMER%` (the API consumer's name), `%CONSUMER_METADATA(key)%` and
//! `%JWT_CLAIM(a.b)%` (a claim of the verified token: strings, numbers and booleans as
//! text), and Envoy's `%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:KEY:claim...)%`
//! for providers with `payload_in_metadata: KEY`. Empty when there is no such value.

/// One piece of a header value (or, with `V` = `log_format::Op`, of an access-log
/// line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<V = Var> {
    Text(String),
    Var(V),
}

/// A variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ClientAddress,
    /// With its port (0 when the trust policy took the client from `x-forwarded-for`).
    ClientAddressWithPort,
    /// A request header, lower case.
    RequestHeader(String),
    Protocol,
    /// The route's `name` (empty without one).
    RouteName,
    Hostname,
    StartTime,
    ResponseCode,
    UpstreamAddress,
    /// The API consumer's name.
    Consumer,
    /// A metadata value of the API consumer.
    ConsumerMetadata(String),
    /// A claim (dotted path) of the first verified token that has it.
    JwtClaim(String),
    /// A claim (dotted path) of the token a provider publishes under this key (Envoy's
    /// `payload_in_metadata`).
    JwtPayload {
        key: String,
        claim: String,
    },
}

/// Which message a value is added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// Envoy variables ringway does not fill yet: refused by name, never left as text.
const NOT_YET: &[&str] = &[
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_METADATA",
    "PER_REQUEST_STATE",
    "FILTER_STATE",
    "REQUESTED_SERVER_NAME",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "RESP",
];

/// Parses a value; `Ok` with no `Var` piece for a plain value.
pub fn parse(text: &str, side: Side) -> Result<Vec<Piece>, String> {
    split(text, |name| variable(name, side))
}

/// Splits `text` at its `%NAME%`s (`%%` is a literal `%`), each read by `var`: the
/// grammar Envoy's header values and access-log formats share.
pub fn split<V>(
    text: &str,
    var: impl Fn(&str) -> Result<V, String>,
) -> Result<Vec<Piece<V>>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(more) = after.strip_prefix('%') {
            literal.push('%');
            rest = more;
            continue;
        }
        // An argument in parentheses may hold `%`s of its own (`%START_TIME(%s)%`).
        let ident = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        let from = match after[ident..].starts_with('(') {
            true => after[ident..]
                .find(')')
                .map_or(ident, |close| ident + close),
            false => 0,
        };
        let end = after[from..].find('%').map(|e| from + e).ok_or_else(|| {
            format!("{text:?}: a `%` starts a variable that does not end (write `%%` for `%`)")
        })?;
        let name = &after[..end];
        let var = var(name).map_err(|e| format!("{text:?}: {e}"))?;
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Var(var));
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn variable(name: &str, side: Side) -> Result<Var, String> {
    let response_only = |var: Var| match side {
        Side::Response => Ok(var),
        Side::Request => Err(format!("%{name}% is known only on the response side")),
    };
    if let Some(header) = name.strip_prefix("REQ(").and_then(|n| n.strip_suffix(')')) {
        if side == Side::Response {
            return Err(format!(
                "%{name}% is known only on the request side (the request head is gone by \
                 the response)"
            ));
        }
        let header = header.split(':').next().unwrap_or(header);
        if header.is_empty() || !header.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("%{name}%: not a header name"));
        }
        return Ok(Var::RequestHeader(header.to_ascii_lowercase()));
    }
    let argument = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.strip_prefix('('))
            .and_then(|n| n.strip_suffix(')'))
    };
    if let Some(key) = argument("CONSUMER_METADATA") {
        return match key.is_empty() {
            true => Err(format!("%{name}%: name a metadata key")),
            false => Ok(Var::ConsumerMetadata(key.to_owned())),
        };
    }
    if let Some(claim) = argument("JWT_CLAIM") {
        return match claim.is_empty() {
            true => Err(format!("%{name}%: name a claim")),
            false => Ok(Var::JwtClaim(claim.to_owned())),
        };
    }
    if let Some(path) = argument("DYNAMIC_METADATA") {
        let mut parts = path.split(':');
        let (filter, key) = (parts.next().unwrap_or_default(), parts.next());
        let claim: Vec<&str> = parts.collect();
        return match (filter, key) {
            ("envoy.filters.http.jwt_authn", Some(key)) if !claim.is_empty() => {
                Ok(Var::JwtPayload {
                    key: key.to_owned(),
                    claim: claim.join("."),
                })
            }
            _ => Err(format!(
                "%{name}% is supported only as \
                 %DYNAMIC_METADATA(envoy.filters.http.jwt_authn:<payload_in_metadata>:<claim>)%"
            )),
        };
    }
    match name {
        "CONSUMER" => Ok(Var::Consumer),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Ok(Var::ClientAddress),
        "DOWNSTREAM_REMOTE_ADDRESS" => Ok(Var::ClientAddressWithPort),
        "PROTOCOL" => Ok(Var::Protocol),
        "ROUTE_NAME" => Ok(Var::RouteName),
        "HOSTNAME" => Ok(Var::Hostname),
        "START_TIME" => Ok(Var::StartTime),
        "RESPONSE_CODE" => response_only(Var::ResponseCode),
        "UPSTREAM_REMOTE_ADDRESS" => response_only(Var::UpstreamAddress),
        _ if NOT_YET.contains(&name.split('(').next().unwrap_or(name)) => {
            Err(format!("%{name}% is not supported yet"))
        }
        _ => Err(format!("unknown variable %{name}%")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_variables() {
        assert_eq!(
            parse("plain", Side::Request),
            Ok(vec![Piece::Text("plain".into())])
        );
        assert_eq!(
            parse(
                "ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%; 100%%",
                Side::Request
            ),
            Ok(vec![
                Piece::Text("ip=".into()),
                Piece::Var(Var::ClientAddress),
                Piece::Text("; 100%".into()),
            ])
        );
        assert_eq!(
            parse("%REQ(X-Tenant)%", Side::Request),
            Ok(vec![Piece::Var(Var::RequestHeader("x-tenant".into()))])
        );
        assert!(parse("%REQ(x)%", Side::Response)
            .unwrap_err()
            .contains("request side"));
        assert!(parse("%RESPONSE_CODE%", Side::Request)
            .unwrap_err()
            .contains("response side"));
        assert_eq!(
            parse("%ROUTE_NAME%", Side::Request),
            Ok(vec![Piece::Var(Var::RouteName)])
        );
        assert_eq!(
            parse("%CONSUMER%/%JWT_CLAIM(org.id)%", Side::Response),
            Ok(vec![
                Piece::Var(Var::Consumer),
                Piece::Text("/".into()),
                Piece::Var(Var::JwtClaim("org.id".into())),
            ])
        );
        assert_eq!(
            parse(
                "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt:org:id)%",
                Side::Request
            ),
            Ok(vec![Piece::Var(Var::JwtPayload {
                key: "jwt".into(),
                claim: "org.id".into()
            })])
        );
        assert!(parse("%DYNAMIC_METADATA(other:a)%", Side::Request).is_err());
        assert!(parse("%UPSTREAM_METADATA(a:b)%", Side::Request)
            .unwrap_err()
            .contains("not supported yet"));
        assert!(parse("%NOPE%", Side::Request)
            .unwrap_err()
            .contains("unknown variable"));
        assert!(parse("50%", Side::Request)
            .unwrap_err()
            .contains("does not end"));
    }
}
