//! Compiling a listener's authentication and authorization into its routes' chains
//! (here rather than in `filter`, because the rules are matched by a `Router`).
//!
//! One [`AuthContext`] per listener and worker holds what every route's filters share:
//! the worker's providers and API keys, the listener's `jwt_authn` rules (compiled into
//! a router, so a request's rule is found the way its route is), its policy, its stats
//! cells and its replies. Each route then gets an authentication filter (its own
//! requirement, else the listener's rules) and an authorization filter (its own policy,
//! else the listener's), or neither.

use std::rc::Rc;

use crate::auth::policy::Policy;
use crate::auth::runtime::Providers;
use crate::config::{self, auth::RouteAuth, authz::RouteAuthz};
use crate::filter::authn::{ApiKeyRuntime, AuthReplies, Authn, Req};
use crate::filter::authz::Authz;
use crate::filter::Filter;
use crate::local_reply::LocalReplies;
use crate::stats::WorkerScope;

use super::Router;

/// A listener's `jwt_authn` rules: a router whose route `i` is rule `i`, and what each
/// rule requires.
type Rules = (Rc<Router>, Rc<[Option<Req>]>);

/// What the routes of one listener share for authentication and authorization.
#[derive(Debug)]
pub struct AuthContext {
    providers: Rc<Providers>,
    api_keys: Option<Rc<ApiKeyRuntime>>,
    /// The listener's rules and what each requires.
    rules: Option<Rules>,
    bypass_cors_preflight: bool,
    authn_stats: Option<WorkerScope>,
    authz_stats: Option<(WorkerScope, Option<WorkerScope>)>,
    replies: Rc<AuthReplies>,
    profile: LocalReplies,
    policy: Option<Rc<Policy>>,
}

/// This worker's cells for a listener: `jwt_authn.`, `rbac.` and the shadow scope.
pub type AuthStats = (
    Option<WorkerScope>,
    Option<(WorkerScope, Option<WorkerScope>)>,
);

impl AuthContext {
    /// The context of `listener`, or `None` when neither it nor any of its routes
    /// authenticates or authorizes.
    pub fn build(
        listener: &config::Listener,
        (providers, api_keys): (&Rc<Providers>, Option<&Rc<ApiKeyRuntime>>),
        (authn_stats, authz_stats): AuthStats,
        profile: &LocalReplies,
    ) -> Option<Self> {
        let routes = || {
            listener
                .routes
                .iter()
                .chain(listener.virtual_hosts.iter().flat_map(|h| &h.routes))
        };
        let any_route = routes().any(|r| r.auth.is_some() || r.authorization.is_some());
        if listener.auth.is_none() && listener.authorization.is_none() && !any_route {
            return None;
        }
        let rules = listener
            .auth
            .as_ref()
            .filter(|a| !a.rules.is_empty())
            .map(|a| {
                let matchers: Vec<config::Route> = a
                    .rules
                    .iter()
                    .map(|rule| config::Route {
                        observe: Default::default(),
                        retry: None,
                        mirrors: Vec::new(),
                        fault: None,
                        max_stream_duration: None,
                        priority: Default::default(),
                        attempt_count: Default::default(),
                        name: None,
                        matcher: rule.matcher.clone(),
                        action: config::RouteAction::DirectResponse(config::DirectResponse {
                            status: 200,
                            body: bytes::Bytes::new(),
                            content_type: String::new(),
                        }),
                        timeout: config::Route::DEFAULT_TIMEOUT,
                        conditions: rule.conditions.clone(),
                        headers: Default::default(),
                        max_request_body: None,
                        rewrite: Default::default(),
                        cors: None,
                        upgrades: None,
                        idle_timeout: None,
                        auth: None,
                        authorization: None,
                        rate_limit: None,
                        hash_policy: Vec::new(),
                    })
                    .collect();
                let requires: Rc<[Option<Req>]> = a
                    .rules
                    .iter()
                    .map(|rule| {
                        rule.requires
                            .as_ref()
                            .and_then(|r| Req::compile(r, providers, api_keys))
                    })
                    .collect();
                (Rc::new(Router::build(&matchers, |_| None)), requires)
            });
        Some(AuthContext {
            providers: Rc::clone(providers),
            api_keys: api_keys.cloned(),
            rules,
            bypass_cors_preflight: listener
                .auth
                .as_ref()
                .is_none_or(|a| a.bypass_cors_preflight),
            authn_stats,
            authz_stats,
            replies: Rc::new(AuthReplies::new(profile)),
            profile: profile.clone(),
            policy: listener
                .authorization
                .as_ref()
                .map(|p| Rc::new(Policy::compile(p))),
        })
    }

    /// The rules router a route without its own requirement matches requests against.
    pub fn rules_for(&self, route: &config::Route) -> Option<Rc<Router>> {
        match route.auth {
            None => self.rules.as_ref().map(|(router, _)| Rc::clone(router)),
            Some(_) => None,
        }
    }

    /// The authentication and authorization filters of `route`.
    pub fn filters(&self, route: &config::Route) -> [Option<Filter>; 2] {
        let authn = match &route.auth {
            Some(RouteAuth::Disabled) => None,
            Some(RouteAuth::Requires(r)) => Some(Authn::for_route(
                Req::compile(r, &self.providers, self.api_keys.as_ref()),
                self.bypass_cors_preflight,
                self.authn_stats.clone(),
                Rc::clone(&self.replies),
            )),
            None => self.rules.as_ref().map(|(_, requires)| {
                Authn::for_rules(
                    Rc::clone(requires),
                    self.bypass_cors_preflight,
                    self.authn_stats.clone(),
                    Rc::clone(&self.replies),
                )
            }),
        };
        let policy = match &route.authorization {
            Some(RouteAuthz::Disabled) => None,
            Some(RouteAuthz::Policy(p)) => Some(Rc::new(Policy::compile(p))),
            None => self.policy.clone(),
        };
        let authz = policy.map(|p| {
            Filter::Authz(Box::new(Authz::new(
                p,
                self.authz_stats.clone(),
                &self.profile,
            )))
        });
        [authn.map(|a| Filter::Authn(Box::new(a))), authz]
    }
}
