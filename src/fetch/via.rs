//! How a background job reaches a cluster: its addresses or DNS names and its TLS.
//!
//! Design: the JWKS fetcher and the span exporter both send requests "through" a
//! configured cluster with the blocking client, not through the workers' pools. One
//! helper turns a cluster name into what [`super::Request`] needs, so both read a
//! cluster the same way: static TCP endpoints as they are, DNS names resolved again at
//! each request (with the system resolver, on the calling background thread), the
//! cluster's TLS client configuration and SNI. Unix-socket endpoints are skipped (the
//! client speaks TCP only).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tracing::{debug, warn};

use crate::config::{Address, Config, Endpoints};

/// How a request reaches its server.
#[derive(Debug, Clone, Default)]
pub struct Via {
    /// The cluster's static addresses, or its DNS names (resolved at each request).
    pub addresses: Vec<SocketAddr>,
    pub names: Vec<(String, u16)>,
    /// Whether the request goes through a cluster (else to the URL's own host).
    pub cluster: bool,
    /// The cluster's TLS (its configuration and server name), when it has one.
    pub tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
}

impl Via {
    /// The way through cluster `name` of `config`; `None` when there is no such cluster.
    /// A TLS configuration that cannot be built is logged (with `purpose`) and left out.
    pub fn cluster(config: &Config, name: &str, purpose: &str) -> Option<Via> {
        let cluster = config.clusters.iter().find(|c| c.name == name)?;
        let mut via = Via {
            cluster: true,
            ..Via::default()
        };
        match &cluster.endpoints {
            Endpoints::Static(endpoints) => {
                via.addresses = endpoints
                    .iter()
                    .filter_map(|e| match e.address {
                        Address::Tcp(a) => Some(a),
                        Address::Unix(_) => None,
                    })
                    .collect();
            }
            Endpoints::Dns(dns) => {
                via.names = dns.names.iter().map(|n| (n.host.clone(), n.port)).collect();
            }
        }
        via.tls =
            cluster
                .tls
                .as_ref()
                .and_then(|tls| match crate::tls::client::Connector::new(tls) {
                    Ok(c) => Some((c.client_config(), tls.sni.clone())),
                    Err(e) => {
                        warn!(cluster = cluster.name, "{purpose} TLS: {e}");
                        None
                    }
                });
        Some(via)
    }

    /// The addresses to connect to now: the static ones, then each DNS name resolved
    /// (blocking: background threads only). Empty for a cluster with no TCP address.
    pub fn connect_to(&self) -> Vec<SocketAddr> {
        let mut connect_to = self.addresses.clone();
        for (host, port) in &self.names {
            match (host.as_str(), *port).to_socket_addrs() {
                Ok(addrs) => connect_to.extend(addrs),
                Err(e) => debug!(host, "resolving: {e}"),
            }
        }
        connect_to
    }

    /// The TLS fields of a [`super::Request`]: the configuration and the SNI override.
    pub fn request_tls(&self) -> (Option<Arc<rustls::ClientConfig>>, Option<String>) {
        match &self.tls {
            Some((config, sni)) => (Some(Arc::clone(config)), sni.clone()),
            None => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(clusters: &str) -> Config {
        Config::parse(
            &format!("listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\nclusters:\n{clusters}"),
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn a_cluster_gives_its_addresses_or_names() {
        let c = config(
            "  - name: fixed\n    endpoints: [\"127.0.0.1:4318\", \"127.0.0.2:4318\"]\n  - name: named\n    discovery: logical_dns\n    endpoints: [\"localhost:9411\"]\n",
        );
        let fixed = Via::cluster(&c, "fixed", "test").unwrap();
        assert!(fixed.cluster && fixed.tls.is_none());
        assert_eq!(
            fixed.connect_to(),
            vec![
                "127.0.0.1:4318".parse().unwrap(),
                "127.0.0.2:4318".parse().unwrap()
            ]
        );
        let named = Via::cluster(&c, "named", "test").unwrap();
        assert_eq!(named.names, vec![("localhost".to_owned(), 9411)]);
        assert!(named.connect_to().iter().all(|a| a.port() == 9411));
        assert!(Via::cluster(&c, "missing", "test").is_none());
        assert!(named.request_tls().0.is_none());
    }
}
