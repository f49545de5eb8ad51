//! A byte trie over the literal (`prefix` and `path`) routes, so that one walk along the
//! request path finds every literal route that can match it, whatever the table size.
//!
//! Each node stores, already merged and sorted by route index:
//! - `prefix`: the prefix routes ending at this node *and at every ancestor*, so the walk
//!   only remembers the deepest node that has any; the list is cut after its first route
//!   without conditions, since nothing after that can ever win (first match wins);
//! - `exact`: the exact-path routes ending here (cut the same way).
//!
//! Matching is then: walk the path byte by byte (children sorted; binary search beyond a
//! few), take the deepest `prefix` list and, if the whole path was consumed, the node's
//! `exact` list. Cost is O(path length), independent of the number of routes. Memory is
//! one node per distinct byte of the literals (about 4,000 nodes for 1,000 `/svcN/`
//! prefixes); a radix tree would be smaller but is more code for the same walk.

/// Index of a route in the router's table.
pub(super) type RouteIndex = u32;

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    prefix: Box<[RouteIndex]>,
    exact: Box<[RouteIndex]>,
}

/// One literal route to insert.
#[derive(Debug, Clone, Copy)]
pub(super) struct Literal<'a> {
    pub bytes: &'a [u8],
    pub exact: bool,
    pub index: RouteIndex,
    /// No host/header/query conditions: when its path matches, it wins.
    pub unconditional: bool,
}

#[derive(Debug, Clone)]
pub(super) struct LiteralTrie {
    nodes: Vec<Node>,
}

impl LiteralTrie {
    /// Builds the trie; `literals` must be in ascending `index` order.
    pub fn build(literals: &[Literal<'_>]) -> Self {
        let mut nodes = vec![Node::default()];
        // Own routes per node, before merging with ancestors: (index, unconditional).
        let mut own_prefix: Vec<Vec<(RouteIndex, bool)>> = vec![Vec::new()];
        let mut own_exact: Vec<Vec<(RouteIndex, bool)>> = vec![Vec::new()];
        for lit in literals {
            let mut at = 0usize;
            for &b in lit.bytes {
                at = match nodes[at].children.binary_search_by_key(&b, |&(k, _)| k) {
                    Ok(i) => nodes[at].children[i].1 as usize,
                    Err(i) => {
                        let id = nodes.len();
                        nodes[at].children.insert(i, (b, id as u32));
                        nodes.push(Node::default());
                        own_prefix.push(Vec::new());
                        own_exact.push(Vec::new());
                        id
                    }
                };
            }
            let own = if lit.exact {
                &mut own_exact[at]
            } else {
                &mut own_prefix[at]
            };
            own.push((lit.index, lit.unconditional));
        }
        // Children always have larger ids than their parent, so one pass in id order
        // sees every parent's merged list before its children; `inherited[id]` is the
        // merged list in force at that node (its own, or its nearest ancestor's).
        let mut inherited: Vec<Vec<(RouteIndex, bool)>> = vec![Vec::new(); nodes.len()];
        for id in 0..nodes.len() {
            if !own_prefix[id].is_empty() {
                let mut merged = inherited[id].clone();
                merged.extend_from_slice(&own_prefix[id]);
                merged.sort_unstable();
                // What follows the first unconditional route is dead here and below.
                merged.truncate(live_len(&merged));
                nodes[id].prefix = merged.iter().map(|&(i, _)| i).collect();
                inherited[id] = merged;
            }
            let exact = &own_exact[id][..live_len(&own_exact[id])];
            nodes[id].exact = exact.iter().map(|&(i, _)| i).collect();
            let list = std::mem::take(&mut inherited[id]);
            for &(_, child) in &nodes[id].children {
                inherited[child as usize].clone_from(&list);
            }
        }
        LiteralTrie { nodes }
    }

    /// The candidate route indices for `path`: (prefix routes, exact routes), each
    /// ascending.
    pub fn candidates(&self, path: &[u8]) -> (&[RouteIndex], &[RouteIndex]) {
        let mut node = &self.nodes[0];
        let mut prefix = &node.prefix[..];
        for &b in path {
            let children = &node.children;
            let next = if children.len() <= 8 {
                children.iter().find(|&&(k, _)| k == b)
            } else {
                children
                    .binary_search_by_key(&b, |&(k, _)| k)
                    .ok()
                    .map(|i| &children[i])
            };
            match next.and_then(|&(_, id)| self.nodes.get(id as usize)) {
                Some(n) => node = n,
                None => return (prefix, &[]),
            }
            if !node.prefix.is_empty() {
                prefix = &node.prefix;
            }
        }
        (prefix, &node.exact)
    }
}

/// How many entries are live: up to and including the first unconditional route.
fn live_len(list: &[(RouteIndex, bool)]) -> usize {
    list.iter()
        .position(|&(_, unconditional)| unconditional)
        .map_or(list.len(), |p| p + 1)
}
