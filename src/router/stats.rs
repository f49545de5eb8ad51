//! A route's stats cells, compiled per worker: its own scope when the route opts in
//! (`stat_prefix`), and its virtual host's request classes (virtual clusters).
//!
//! Design: a route without stats carries `None`, so the request path pays one `Option`
//! check. Virtual clusters are matched once per request, at routing, and only on a
//! virtual host that has them: the classes are tested in order with the same header
//! matching as route conditions (`:method` and `:path` as pseudo-headers); a request
//! that matches none counts under `other`. The cells are the worker's own
//! (`stats::route`); the scopes behind them were created by the control thread.

use std::rc::Rc;

use crate::config;
use crate::filter::value_match::Value;
use crate::stats::route::RouteCells;

use super::HeaderLookup;

/// Where a worker's route compiler finds its stats cells (the snapshot knows the
/// scopes the control thread registered).
pub trait StatsSource: std::fmt::Debug {
    /// This worker's cells of `vhost.<vhost>.route.<prefix>.`.
    fn route(&self, vhost: &str, prefix: &str) -> Option<RouteCells>;
    /// This worker's cells of `vhost.<vhost>.vcluster.<name>.`.
    fn vcluster(&self, vhost: &str, name: &str) -> Option<RouteCells>;
}

/// What a route counts into: for each class of its host (and for a request of no
/// class) the pair of cells a request counts into, so that a request needs one pointer
/// to reach both (the connection keeps it in a guarded, 128-byte-stepped future).
#[derive(Debug)]
pub struct RouteStats {
    /// Its host's classes, to classify a request.
    pub vclusters: Option<Rc<VirtualClusters>>,
    /// By class index ([`VirtualClusters::classify`]); the last: no class.
    counts: Box<[RouteCounts]>,
}

/// The cells one request counts into.
#[derive(Debug)]
pub struct RouteCounts {
    /// The route's own (`stat_prefix`).
    pub route: Option<RouteCells>,
    /// Its virtual cluster's.
    pub vcluster: Option<RouteCells>,
}

impl RouteStats {
    /// `None` when the route counts into nothing of its own.
    pub fn compile(
        route: &config::Route,
        vhost: &str,
        vclusters: Option<&Rc<VirtualClusters>>,
        source: &dyn StatsSource,
    ) -> Option<Rc<RouteStats>> {
        let own = route
            .observe
            .stat_prefix
            .as_deref()
            .and_then(|prefix| source.route(vhost, prefix));
        if own.is_none() && vclusters.is_none() {
            return None;
        }
        let classes = vclusters.map_or(0, |v| v.len());
        let counts = (0..=classes)
            .map(|i| RouteCounts {
                route: own.clone(),
                vcluster: vclusters.and_then(|v| v.cells(i)).cloned(),
            })
            .collect();
        Some(Rc::new(RouteStats {
            vclusters: vclusters.cloned(),
            counts,
        }))
    }

    /// The cells a request with these headers counts into.
    #[inline]
    pub fn counts<H: HeaderLookup + ?Sized>(&self, headers: &H) -> Option<&RouteCounts> {
        let class = self.vclusters.as_deref().and_then(|v| v.classify(headers));
        self.counts
            .get(class.unwrap_or(self.counts.len() - 1))
            .or(self.counts.last())
    }
}

/// One class's header conditions (name, test), all of which must hold.
type Conditions = Box<[(Box<str>, Value)]>;

/// A virtual host's request classes, in order, and the cells of the rest.
#[derive(Debug)]
pub struct VirtualClusters {
    classes: Box<[(Conditions, RouteCells)]>,
    other: Option<RouteCells>,
}

impl VirtualClusters {
    /// `None` for a host without virtual clusters or `stats`.
    pub fn compile(
        (host, observe): (&str, &config::observability::VhostObservability),
        source: &dyn StatsSource,
    ) -> Option<Rc<Self>> {
        if observe.virtual_clusters.is_empty() && !observe.other {
            return None;
        }
        let classes = observe
            .virtual_clusters
            .iter()
            .filter_map(|vc| {
                let headers = vc
                    .headers
                    .iter()
                    .map(|h| (h.name.as_str().into(), Value::compile(&h.value)))
                    .collect();
                Some((headers, source.vcluster(host, &vc.name)?))
            })
            .collect();
        let other = observe
            .other
            .then(|| source.vcluster(host, "other"))
            .flatten();
        Some(Rc::new(VirtualClusters { classes, other }))
    }

    /// The index of the first class whose headers all match, else `other`'s (the index
    /// after the classes), for [`VirtualClusters::cells`]; `None`: no class and no
    /// `other`.
    pub fn classify<H: HeaderLookup + ?Sized>(&self, headers: &H) -> Option<usize> {
        let found = self
            .classes
            .iter()
            .position(|(conditions, _)| conditions.iter().all(|(n, v)| v.test(headers.get(n))));
        found.or_else(|| self.other.as_ref().map(|_| self.classes.len()))
    }

    /// The classes, `other` included.
    pub fn len(&self) -> usize {
        self.classes.len() + usize::from(self.other.is_some())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cells of class `index` ([`VirtualClusters::classify`]).
    pub fn cells(&self, index: usize) -> Option<&RouteCells> {
        match self.classes.get(index) {
            Some((_, cells)) => Some(cells),
            None if index == self.classes.len() => self.other.as_ref(),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::observability::{VhostObservability, VirtualCluster};
    use crate::config::{HeaderMatch, ValueMatch};
    use crate::stats::{route::RouteScopes, StatsStore};

    #[derive(Debug)]
    struct Store(RefCell<StatsStore>);

    impl StatsSource for Store {
        fn route(&self, vhost: &str, prefix: &str) -> Option<RouteCells> {
            let prefix = crate::stats::route::route_prefix(vhost, prefix);
            Some(RouteScopes::register(&mut self.0.borrow_mut(), &prefix).for_worker(0))
        }
        fn vcluster(&self, vhost: &str, name: &str) -> Option<RouteCells> {
            let prefix = crate::stats::route::vcluster_prefix(vhost, name);
            Some(RouteScopes::register(&mut self.0.borrow_mut(), &prefix).for_worker(0))
        }
    }

    fn class(name: &str, header: &str, value: &str) -> VirtualCluster {
        VirtualCluster {
            name: name.into(),
            headers: vec![HeaderMatch {
                name: header.into(),
                value: ValueMatch::Exact(value.into()),
            }],
        }
    }

    #[test]
    fn the_first_matching_class_counts_and_the_rest_go_to_other() {
        let store = Store(RefCell::new(StatsStore::new(1)));
        let observe = VhostObservability {
            virtual_clusters: vec![
                class("writes", ":method", "POST"),
                class("tenant", "x-tenant", "a"),
            ],
            other: true,
        };
        let v = VirtualClusters::compile(("api", &observe), &store).unwrap();
        assert_eq!(v.len(), 3);
        let post: &[(&str, &[u8])] = &[(":method", b"POST"), ("x-tenant", b"a")];
        assert_eq!(v.classify(post), Some(0));
        let get: &[(&str, &[u8])] = &[(":method", b"GET"), ("x-tenant", b"a")];
        assert_eq!(v.classify(get), Some(1));
        let none: &[(&str, &[u8])] = &[(":method", b"GET")];
        assert_eq!(v.classify(none), Some(2));
        assert!(v.cells(2).is_some() && v.cells(3).is_none());
        // Without `other`, an unmatched request counts in no class.
        let only = VhostObservability {
            virtual_clusters: vec![class("writes", ":method", "POST")],
            other: false,
        };
        let v = VirtualClusters::compile(("api", &only), &store).unwrap();
        assert_eq!(v.classify(none), None);
        // No classes and no `stats`: nothing compiled, routes carry no stats.
        let off = VhostObservability::default();
        assert!(VirtualClusters::compile(("api", &off), &store).is_none());
    }
}
