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

/// What a route counts into.
#[derive(Debug)]
pub struct RouteStats {
    /// The route's own scope (`stat_prefix`).
    pub route: Option<RouteCells>,
    /// Its virtual host's classes.
    pub vclusters: Option<Rc<VirtualClusters>>,
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
        (own.is_some() || vclusters.is_some()).then(|| {
            Rc::new(RouteStats {
                route: own,
                vclusters: vclusters.cloned(),
            })
        })
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

    /// The cells of the first class whose headers all match, else `other`'s.
    pub fn classify<H: HeaderLookup + ?Sized>(&self, headers: &H) -> Option<&RouteCells> {
        self.classes
            .iter()
            .find(|(conditions, _)| conditions.iter().all(|(n, v)| v.test(headers.get(n))))
            .map(|(_, cells)| cells)
            .or(self.other.as_ref())
    }
}
