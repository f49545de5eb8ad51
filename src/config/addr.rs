//! Socket addresses and names as written in the config.
//!
//! Design: addresses are numeric `ip:port`, or `unix:/absolute/path` for a Unix stream
//! socket (listeners and endpoints alike) (`127.0.0.1:8080`, `[::1]:8080`). Resolving
//! hostnames would make loading a config depend on DNS, at startup and on every reload;
//! that belongs to a future cluster discovery type, not to parsing. The error messages
//! guess the common mistakes (missing port, unbracketed IPv6, a hostname).

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
