//! Rate-limit keys: 64-bit hashes of a key's bytes, seeded per process.
//!
//! Design: the pool and the shards store keys as hashes (a cell is two words), so a
//! key's hash is its identity: two keys with the same hash share a bucket. Clients choose
//! the bytes (addresses behind trusted proxies, API keys, header values), so the hash is
//! keyed with a per-process secret: without it nobody can aim keys at a victim's bucket
//! or at one table group. Every worker uses the same seed (they share the pool).
//!
//! The function is foldhash (`quality` variant, with a final avalanche, since the pool
//! takes group bits from the bottom and the tag from the top of the hash): already in
//! the tree through hashbrown, maintained, and about a nanosecond for an address, where
//! SipHash-1-3 (std's `DefaultHasher`) costs several times that and would take most of
//! the request path's budget (20 M decisions/s per core). foldhash does not claim
//! resistance to an attacker who can observe hash values; ringway never exposes them
//! (not in headers, logs or stats), and what a full 64-bit collision would buy is one
//! shared bucket. Its seeds come from std's `RandomState` (the OS's random source), not
//! foldhash's own address-based seed. Parts are length-prefixed, so `("ab", "c")` and
//! `("a", "bc")` differ; limit identities are folded in by the caller with
//! [`KeyHasher::write_u64`] where pools are shared.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use foldhash::quality::FoldHasher;
use foldhash::SharedSeed;

struct Seeds {
    per_hasher: u64,
    shared: SharedSeed,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let random = || std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Seeds {
            per_hasher: random(),
            shared: SharedSeed::from_u64(random()),
        }
    })
}

/// Hashes a key's bytes with a per-process random seed.
#[derive(Clone)]
pub struct KeyHasher {
    inner: FoldHasher<'static>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher").finish_non_exhaustive()
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

impl KeyHasher {
    /// A hasher with the process's seed; cheap.
    #[inline]
    pub fn new() -> KeyHasher {
        let seeds = seeds();
        KeyHasher {
            inner: FoldHasher::with_seed(seeds.per_hasher, &seeds.shared),
        }
    }

    /// Adds one part (length-prefixed, so parts never run into each other).
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        self.inner.write_usize(bytes.len());
        self.inner.write(bytes);
    }

    /// Adds a number (a limit's identity, a port).
    #[inline]
    pub fn write_u64(&mut self, v: u64) {
        self.inner.write_u64(v);
    }

    /// The key's hash; never 0 (0 marks an empty cell).
    #[inline]
    pub fn finish(&self) -> u64 {
        nonzero_hash(self.inner.finish())
    }
}

#[inline]
fn nonzero_hash(h: u64) -> u64 {
    if h == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn hash(parts: &[&[u8]]) -> u64 {
        let mut h = KeyHasher::new();
        for part in parts {
            h.write(part);
        }
        h.finish()
    }

    #[test]
    fn same_bytes_same_hash_on_every_thread() {
        let here = hash(&[b"203.0.113.7"]);
        assert_eq!(here, hash(&[b"203.0.113.7"]));
        let there = std::thread::spawn(|| hash(&[b"203.0.113.7"]))
            .join()
            .unwrap();
        assert_eq!(here, there);
        assert_ne!(here, hash(&[b"203.0.113.8"]));
    }

    #[test]
    fn parts_are_separated() {
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
        assert_ne!(hash(&[b"", b"x"]), hash(&[b"x", b""]));
        assert_ne!(hash(&[b"x"]), hash(&[b"x", b""]));
        let mut a = KeyHasher::new();
        a.write_u64(1);
        a.write(b"k");
        let mut b = KeyHasher::new();
        b.write_u64(2);
        b.write(b"k");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn never_zero_and_well_spread() {
        assert_ne!(nonzero_hash(0), 0);
        assert_eq!(nonzero_hash(5), 5);
        // 100,000 addresses: no collisions, and both the low (group) and the top (tag)
        // bits spread over their range.
        let hashes: Vec<u64> = (0..100_000u32)
            .map(|i| hash(&[format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255).as_bytes()]))
            .collect();
        assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), hashes.len());
        let low: HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        let top: HashSet<u64> = hashes.iter().map(|h| h >> 52).collect();
        assert_eq!((low.len(), top.len()), (4096, 4096));
    }
}
