//! Checks that span sections: unique names and addresses, routes pointing at clusters.
//!
//! Design: runs after decoding, over the nodes `decode` recorded in [`Marks`], so it works
//! whatever order the sections appear in and reports at the exact value that is wrong
//! (the second of two duplicates, a route's `cluster` value), naming the first occurrence.

use std::collections::HashMap;
use std::hash::Hash;

use super::error::Diagnostics;
use super::fields::Marks;
use super::node::Node;
use super::suggest;

pub(crate) fn check(marks: &Marks<'_>, diag: &mut Diagnostics) {
    duplicates(&marks.listener_names, "listener name", diag);
    duplicates(&marks.cluster_names, "cluster name", diag);
    // Port 0 asks the kernel for a free port, so two such listeners do not collide.
    let bound: Vec<_> = marks
        .listener_addresses
        .iter()
        .filter(|(addr, _)| addr.tcp().is_none_or(|a| a.port() != 0))
        .cloned()
        .collect();
    duplicates(&bound, "listener address", diag);
    if let Some((admin, node)) = &marks.admin {
        if let Some((_, listener)) = bound.iter().find(|(addr, _)| addr.tcp() == Some(*admin)) {
            node.error(
                diag,
                format!(
                    "admin address {admin} is also the address of {} (at {})",
                    listener.path(),
                    listener.pos()
                ),
            );
        }
    }
    let clusters: Vec<&str> = marks.cluster_names.iter().map(|(name, _)| *name).collect();
    for (name, node) in &marks.cluster_refs {
        if !clusters.contains(name) {
            let hint = suggest::did_you_mean(name, clusters.iter().copied());
            node.error(diag, format!("unknown cluster {name:?}{hint}"));
        }
    }
}

/// Reports every repeat of a value at the repeat, naming where it was first defined.
fn duplicates<K>(items: &[(K, Node<'_>)], what: &str, diag: &mut Diagnostics)
where
    K: Eq + Hash + std::fmt::Display,
{
    let mut first: HashMap<&K, &Node<'_>> = HashMap::new();
    for (key, node) in items {
        match first.get(key) {
            Some(earlier) => node.error(
                diag,
                format!(
                    "duplicate {what} \"{key}\" (first defined at {}: {})",
                    earlier.pos(),
                    earlier.path()
                ),
            ),
            None => {
                first.insert(key, node);
            }
        }
    }
}
