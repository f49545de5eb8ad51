//! Route matching: the first route whose matcher accepts the request wins.
//!
//! This is the skeleton's router: exact paths and prefixes on the path without its query.
//! Exact paths are looked up in a hash map built with the snapshot, and prefixes are
//! tried in order; the order of the config decides ties, as in Envoy. The proxying work
//! adds hosts, headers, query parameters, regexes and path normalisation here.

use std::collections::HashMap;

use crate::{config, local_reply::Reply};

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with a pre-rendered response.
    Direct(Reply),
    /// Forward to the cluster at this index of the snapshot's clusters.
    Cluster(usize),
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Found through `Router::exact`.
    Exact,
    Prefix(Box<[u8]>),
}

/// A compiled route table of one listener.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<(Matcher, Action)>,
    /// Exact path -> index of the first route with that exact path.
    exact: HashMap<Box<[u8]>, usize>,
}

impl Router {
    /// Compiles a listener's routes. `cluster_index` resolves a cluster name, which the
    /// config has already validated.
    pub fn build(routes: &[config::Route], cluster_index: impl Fn(&str) -> Option<usize>) -> Self {
        let mut compiled = Vec::with_capacity(routes.len());
        let mut exact = HashMap::new();
        for route in routes {
            let action = match &route.action {
                config::RouteAction::DirectResponse(d) => {
                    Action::Direct(Reply::new(d.status, &d.content_type, &d.body))
                }
                // Validation guarantees the name resolves; an unknown one can only come
                // from a bug, and then the route answers "no upstream" rather than panic.
                config::RouteAction::Cluster(name) => {
                    Action::Cluster(cluster_index(name).unwrap_or(usize::MAX))
                }
            };
            let matcher = match &route.matcher {
                config::RouteMatch::Path(p) => {
                    exact.entry(p.as_bytes().into()).or_insert(compiled.len());
                    Matcher::Exact
                }
                config::RouteMatch::Prefix(p) => Matcher::Prefix(p.as_bytes().into()),
            };
            compiled.push((matcher, action));
        }
        Router {
            routes: compiled,
            exact,
        }
    }

    /// The action of the first route matching `target` (a request target in origin form;
    /// the query is ignored).
    pub fn route(&self, target: &[u8]) -> Option<&Action> {
        let path = match target.iter().position(|&b| b == b'?') {
            Some(q) => &target[..q],
            None => target,
        };
        let exact = self.exact.get(path).copied().unwrap_or(usize::MAX);
        self.routes
            .iter()
            .enumerate()
            .take(exact.saturating_add(1))
            .find(|(index, (matcher, _))| match matcher {
                Matcher::Exact => *index == exact,
                Matcher::Prefix(p) => path.starts_with(p),
            })
            .map(|(_, (_, action))| action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn direct(status: u16) -> config::RouteAction {
        config::RouteAction::DirectResponse(config::DirectResponse {
            status,
            body: bytes::Bytes::new(),
            content_type: String::new(),
        })
    }

    fn route(matcher: config::RouteMatch, action: config::RouteAction) -> config::Route {
        config::Route {
            matcher,
            action,
            timeout: Duration::from_secs(15),
        }
    }

    fn status(router: &Router, path: &str) -> Option<u16> {
        match router.route(path.as_bytes())? {
            Action::Direct(r) => Some(r.status()),
            Action::Cluster(i) => Some(1000 + *i as u16),
        }
    }

    #[test]
    fn first_match_wins_and_queries_are_ignored() {
        use config::RouteMatch::{Path, Prefix};
        let router = Router::build(
            &[
                route(Prefix("/api/".into()), direct(201)),
                route(Path("/api/exact".into()), direct(202)),
                route(Path("/healthz".into()), direct(200)),
                route(Prefix("/".into()), config::RouteAction::Cluster("c".into())),
            ],
            |name| (name == "c").then_some(7),
        );
        assert_eq!(status(&router, "/api/exact"), Some(201));
        assert_eq!(status(&router, "/healthz?verbose=1"), Some(200));
        assert_eq!(status(&router, "/healthzz"), Some(1007));
        assert_eq!(status(&router, "/"), Some(1007));
    }

    #[test]
    fn no_route_is_none() {
        let router = Router::build(
            &[route(config::RouteMatch::Path("/a".into()), direct(200))],
            |_| None,
        );
        assert!(router.route(b"/b").is_none());
        assert!(router.route(b"").is_none());
    }
}
