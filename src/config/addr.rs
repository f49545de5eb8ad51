//! Socket addresses and names as written in the config.
//!
//! Design: addresses are numeric `ip:port`, or `unix:/absolute/path` for a Unix stream
//! socket (listeners and endpoints alike) (`127.0.0.1:8080`, `[::1]:8080`). Endpoints
//! may also name a host (`orders.internal:8080`, [`parse_host_port`]); parsing only
//! checks the name's syntax: resolving it belongs to DNS discovery (`discovery`), so
//! loading a config never waits for DNS. The error messages guess the common mistakes
//! (missing port, unbracketed IPv6, a hostname where only an IP will do).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::model::Address;

/// The longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        parse_address(text)
    }
}

/// Parses `ip:port` or `unix:/path`.
pub(crate) fn parse_address(text: &str) -> Result<Address, String> {
    let Some(path) = text.strip_prefix("unix:") else {
        return parse_socket_addr(text).map(Address::Tcp);
    };
    if !path.starts_with('/') {
        return Err(format!(
            "{text:?}: a Unix socket path must be absolute, e.g. `unix:/run/app.sock`"
        ));
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "{text:?}: a Unix socket path is at most {MAX_UNIX_PATH} bytes (this one is {})",
            path.len()
        ));
    }
    Ok(Address::Unix(PathBuf::from(path)))
}

/// Parses `ip:port`.
pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hint =
        if text.parse::<IpAddr>().is_ok() {
            if text.contains(':') {
                format!("missing port; IPv6 addresses are written `[{text}]:8080`")
            } else {
                format!("missing port, e.g. `{text}:8080`")
            }
        } else if text.matches(':').count() > 1 && !text.starts_with('[') {
            "IPv6 addresses are written in brackets, e.g. `[::1]:8080`".to_owned()
        } else if text.split(':').next().is_some_and(|host| {
            host.chars().any(|c| c.is_ascii_alphabetic()) && !host.contains('[')
        }) {
            "hostnames are not supported; use an IP address".to_owned()
        } else {
            "expected `ip:port`, e.g. `127.0.0.1:8080` or `[::1]:8080`".to_owned()
        };
    Err(format!("invalid address {text:?}: {hint}"))
}

/// Parses `host:port` where `host` is a DNS name (RFC 1123 labels of letters, digits and
/// `-`, plus `_` as container platforms use; at most 253 bytes; a final `.` allowed) or
/// an IP literal (`[v6]` bracketed). `default_port` is used when the text has none.
pub(crate) fn parse_host_port(
    text: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
            let port = match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("invalid port in {text:?}: expected 1..65535")),
            };
            (host, port)
        }
        _ => match default_port {
            Some(port) => (text, port),
            None => return Err(format!("missing port in {text:?}, e.g. `{text}:8080`")),
        },
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok((ip.to_string(), port)),
            Err(_) => Err(format!("invalid IPv6 address in {text:?}")),
        };
    }
    if host.contains(':') {
        return Err(format!(
            "invalid address {text:?}: IPv6 addresses are written in brackets, e.g. `[::1]:8080`"
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((ip.to_string(), port));
    }
    check_host_name(host).map_err(|why| format!("invalid host name in {text:?}: {why}"))?;
    Ok((host.to_owned(), port))
}

fn check_host_name(host: &str) -> Result<(), &'static str> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("empty");
    }
    if host.len() > 253 {
        return Err("longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label has 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, `-`, `_` and `.` are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with `-`");
        }
    }
    Ok(())
}

/// Checks that a listener or cluster name is usable as a stat name: `[A-Za-z0-9_.-]+`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid name {name:?}: {bad:?} is not allowed; names may contain only letters, \
             digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_socket_addr("127.0.0.1:8080"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(
            parse_socket_addr("[::1]:9000"),
            Ok("[::1]:9000".parse().unwrap())
        );
        assert_eq!(
            parse_socket_addr("127.0.0.1").unwrap_err(),
            "invalid address \"127.0.0.1\": missing port, e.g. `127.0.0.1:8080`"
        );
        assert!(parse_socket_addr("::1")
            .unwrap_err()
            .contains("`[::1]:8080`"));
        // Ambiguous: `::1:80` is itself a valid IPv6 address, so the port is what is missing.
        assert!(parse_socket_addr("::1:80")
            .unwrap_err()
            .contains("`[::1:80]:8080`"));
        assert!(parse_socket_addr("fe80::x:80")
            .unwrap_err()
            .contains("brackets"));
        assert!(parse_socket_addr("localhost:80")
            .unwrap_err()
            .contains("hostnames"));
        assert!(parse_socket_addr("1.2.3.4:99999")
            .unwrap_err()
            .contains("expected `ip:port`"));
        assert!(parse_socket_addr("").is_err());
        assert!(parse_socket_addr("[::1:80").is_err());
    }

    #[test]
    fn unix_addresses() {
        assert_eq!(
            parse_address("unix:/run/a.sock"),
            Ok(Address::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            parse_address("127.0.0.1:80"),
            Ok(Address::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert!(parse_address("unix:run/a.sock")
            .unwrap_err()
            .contains("must be absolute"));
        let long = format!("unix:/{}", "x".repeat(107));
        assert!(parse_address(&long)
            .unwrap_err()
            .contains("at most 107 bytes"));
    }

    #[test]
    fn host_names() {
        let ok = |text: &str, default| parse_host_port(text, default).unwrap();
        assert_eq!(ok("orders:8080", None), ("orders".into(), 8080));
        assert_eq!(
            ok("orders.svc.cluster.local.:80", None).0,
            "orders.svc.cluster.local."
        );
        assert_eq!(ok("my_service", Some(80)), ("my_service".into(), 80));
        assert_eq!(ok("10.0.0.1:9000", None), ("10.0.0.1".into(), 9000));
        assert_eq!(ok("[::1]:9000", None), ("::1".into(), 9000));
        assert_eq!(ok("[::1]", Some(80)), ("::1".into(), 80));
        assert!(parse_host_port("orders", None)
            .unwrap_err()
            .contains("missing port"));
        assert!(parse_host_port("orders:0", None)
            .unwrap_err()
            .contains("1..65535"));
        assert!(parse_host_port("orders:http", None)
            .unwrap_err()
            .contains("1..65535"));
        assert!(parse_host_port("-orders:80", None)
            .unwrap_err()
            .contains("start or end"));
        assert!(parse_host_port("a..b:80", None)
            .unwrap_err()
            .contains("label"));
        assert!(parse_host_port("ord ers:80", None)
            .unwrap_err()
            .contains("only letters"));
        assert!(parse_host_port("[fe80::x]:80", None)
            .unwrap_err()
            .contains("IPv6"));
        assert!(parse_host_port("::1:80", None)
            .unwrap_err()
            .contains("brackets"));
        let long = format!("{}:80", vec!["a".repeat(63); 4].join("."));
        assert!(parse_host_port(&long, None).unwrap_err().contains("253"));
    }

    #[test]
    fn names() {
        assert_eq!(check_name("orders-v2.eu_1"), Ok(()));
        assert_eq!(check_name("").unwrap_err(), "name must not be empty");
        assert_eq!(
            check_name("my cluster").unwrap_err(),
            "invalid name \"my cluster\": ' ' is not allowed; names may contain only letters, \
             digits, `_`, `.` and `-`"
        );
        assert!(check_name("é").is_err());
    }
}
