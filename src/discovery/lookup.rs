//! The blocking half: the system resolver, and which of a name's addresses to use.

use std::net::{IpAddr, ToSocketAddrs};

use super::Lookup;
use crate::config::LookupFamily;

/// getaddrinfo through the standard library: `/etc/hosts`, `nsswitch.conf` and
/// `resolv.conf` apply, with the system's timeouts (so it runs on lookup threads only).
pub fn system_lookup() -> Lookup {
    std::sync::Arc::new(|host: &str, port: u16| {
        Ok((host, port)
            .to_socket_addrs()?
            .map(|addr| addr.ip())
            .collect())
    })
}

/// The addresses of `found` that `family` uses, in the resolver's order, without
/// repeats. Empty means none of the wanted family (a failed resolution).
pub fn choose(family: LookupFamily, found: &[IpAddr]) -> Vec<IpAddr> {
    let mut seen = Vec::with_capacity(found.len());
    for ip in found {
        if !seen.contains(ip) {
            seen.push(*ip);
        }
    }
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = seen.into_iter().partition(IpAddr::is_ipv4);
    match family {
        LookupFamily::V4Only => v4,
        LookupFamily::V6Only => v6,
        LookupFamily::Auto if v6.is_empty() => v4,
        LookupFamily::Auto => v6,
        LookupFamily::V4Preferred if v4.is_empty() => v6,
        LookupFamily::V4Preferred => v4,
        LookupFamily::All => found.iter().fold(Vec::new(), |mut all, ip| {
            if !all.contains(ip) {
                all.push(*ip);
            }
            all
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_choose_as_envoy_does() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v4b: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let both = [v6, v4, v4b, v4];
        assert_eq!(choose(LookupFamily::Auto, &both), [v6]);
        assert_eq!(choose(LookupFamily::Auto, &[v4, v4b]), [v4, v4b]);
        assert_eq!(choose(LookupFamily::V4Preferred, &both), [v4, v4b]);
        assert_eq!(choose(LookupFamily::V4Preferred, &[v6]), [v6]);
        assert_eq!(choose(LookupFamily::V4Only, &both), [v4, v4b]);
        assert_eq!(choose(LookupFamily::V4Only, &[v6]), Vec::<IpAddr>::new());
        assert_eq!(choose(LookupFamily::V6Only, &both), [v6]);
        assert_eq!(choose(LookupFamily::All, &both), [v6, v4, v4b]);
    }

    #[test]
    fn the_system_resolver_answers_ip_literals_and_localhost() {
        let lookup = system_lookup();
        assert_eq!(
            lookup("127.0.0.1", 80).unwrap(),
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let localhost = lookup("localhost", 80).unwrap();
        assert!(localhost.iter().any(IpAddr::is_loopback), "{localhost:?}");
    }
}
