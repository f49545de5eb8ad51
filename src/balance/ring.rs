//! Ring hash ("Ketama"), as Envoy documents and builds it (load_balancers.rst, ring hash).
//!
//! Each host is placed on a ring of 64-bit hashes many times, in proportion to its share:
//! the entries of host `key` are xxHash64(`"{key}_{i}"`) for i = 0, 1, ... The ring size
//! is scaled so that the lightest host gets a whole number of entries: `scale =
//! min(ceil(min_share × min_ring_size) / min_share, max_ring_size)`, and hosts take their
//! entries from running sums (current < target += scale × share), so fractional counts
//! spread over hosts in order. A request's hash `h` goes to the first entry with a hash
//! ≥ h, wrapping to the first entry past the top. Adding or removing one of N hosts moves
//! about 1/N of the keys.

use super::hash::hash_bytes;

/// A sorted ring: entry hashes and, at the same index, the member each belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    hashes: Box<[u64]>,
    members: Box<[u32]>,
    min_per_host: u64,
    max_per_host: u64,
}

impl Ring {
    /// A ring over `(member, key, share)` entries (shares summing to about 1).
    pub(crate) fn build(hosts: &[(u32, &str, f64)], min_size: u64, max_size: u64) -> Ring {
        let min_share = hosts
            .iter()
            .map(|h| h.2)
            .filter(|s| *s > 0.0)
            .fold(f64::INFINITY, f64::min);
        if hosts.is_empty() || !min_share.is_finite() {
            return Ring::default();
        }
        let min_size = min_size.max(1) as f64;
        let max_size = max_size.max(1) as f64;
        let scale = ((min_share * min_size).ceil() / min_share).min(max_size);
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(scale.ceil() as usize);
        let mut key = String::new();
        let mut current = 0.0;
        let mut target = 0.0;
        let (mut min_per_host, mut max_per_host) = (u64::MAX, 0);
        for &(member, host_key, share) in hosts {
            target += scale * share;
            let mut i: u64 = 0;
            while current < target {
                use std::fmt::Write;
                key.clear();
                let _ = write!(key, "{host_key}_{i}");
                entries.push((hash_bytes(key.as_bytes()), member));
                i += 1;
                current += 1.0;
            }
            min_per_host = min_per_host.min(i);
            max_per_host = max_per_host.max(i);
        }
        entries.sort_unstable();
        Ring {
            hashes: entries.iter().map(|e| e.0).collect(),
            members: entries.iter().map(|e| e.1).collect(),
            min_per_host,
            max_per_host,
        }
    }

    /// The member owning `hash`; None when the ring is empty.
    #[inline]
    pub(crate) fn lookup(&self, hash: u64) -> Option<u32> {
        let at = self.hashes.partition_point(|&h| h < hash);
        let at = if at == self.hashes.len() { 0 } else { at };
        self.members.get(at).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The fewest and most entries a host got (Envoy's min/max_hashes_per_host gauges).
    pub(crate) fn per_host(&self) -> (u64, u64) {
        (self.min_per_host, self.max_per_host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::balance::fixtures::equal;

    fn keys(n: usize) -> Vec<String> {
        crate::balance::fixtures::keys("10.0", 80, n)
    }

    #[test]
    fn the_ring_size_follows_min_and_max() {
        let k = keys(3);
        let ring = Ring::build(&equal(&k), 1024, 8_388_608);
        // ceil(1024/3) = 342 entries per host.
        assert_eq!(ring.len(), 1026);
        assert_eq!(ring.per_host(), (342, 342));
        let ring = Ring::build(&equal(&k), 1024, 300);
        assert_eq!(ring.len(), 300);
    }

    #[test]
    fn wraps_past_the_top() {
        let k = keys(2);
        let ring = Ring::build(&equal(&k), 4, 4);
        let first = ring.members[0];
        assert_eq!(ring.lookup(u64::MAX), Some(first));
        assert_eq!(ring.lookup(0), Some(first));
        assert_eq!(ring.lookup(ring.hashes[1]), Some(ring.members[1]));
        assert_eq!(Ring::default().lookup(5), None);
    }

    /// Keys of 10,000 that change host when an 11th host joins 10, and whether every one of
    /// them moved to the new host.
    fn moved_on_growth(min_ring_size: u64) -> (usize, bool) {
        let k = keys(11);
        let ten = Ring::build(&equal(&k[..10]), min_ring_size, 8_388_608);
        let again = Ring::build(&equal(&k[..10]), min_ring_size, 8_388_608);
        let eleven = Ring::build(&equal(&k), min_ring_size, 8_388_608);
        let (mut moved, mut only_to_new) = (0, true);
        for i in 0..10_000u64 {
            let h = hash_bytes(&i.to_le_bytes());
            assert_eq!(ten.lookup(h), again.lookup(h), "rebuilds must agree");
            let after = eleven.lookup(h);
            if ten.lookup(h) != after {
                moved += 1;
                only_to_new &= after == Some(10);
            }
        }
        (moved, only_to_new)
    }

    #[test]
    fn a_joining_host_takes_its_share_when_the_others_keep_their_entries() {
        // min 100: 10 entries per host for 10 hosts (ceil(100/10)) and for 11 (ceil(100/11)),
        // so the old hosts keep every entry and only keys now owned by the new host move:
        // about 1/11 (909) of 10,000.
        let (moved, only_to_new) = moved_on_growth(100);
        assert!(only_to_new);
        assert!(moved <= 10_000 / 11 + 250, "{moved} keys moved");
    }

    #[test]
    fn a_rescaled_ring_moves_about_two_shares() {
        // Envoy's default min 1024: 103 entries per host for 10 hosts, 94 for 11, so each old
        // host also drops its last 9 entries and their keys move on too: about 2/11.
        let (moved, _) = moved_on_growth(1024);
        assert!(moved <= 2 * 10_000 / 11 + 250, "{moved} keys moved");
        assert!(moved > 10_000 / 11, "{moved} keys moved");
    }

    #[test]
    fn shares_follow_weights() {
        let k = keys(3);
        let hosts = [
            (0, k[0].as_str(), 0.5),
            (1, k[1].as_str(), 0.25),
            (2, k[2].as_str(), 0.25),
        ];
        let ring = Ring::build(&hosts, 4096, 8_388_608);
        assert_eq!(ring.per_host(), (1024, 2048));
        let mut counts = [0u32; 3];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100_000 {
            counts[ring.lookup(rng.u64(..)).unwrap() as usize] += 1;
        }
        let share = |i: usize| f64::from(counts[i]) / 100_000.0;
        assert!((share(0) - 0.5).abs() < 0.05, "{counts:?}");
        assert!((share(1) - 0.25).abs() < 0.05, "{counts:?}");
        assert!((share(2) - 0.25).abs() < 0.05, "{counts:?}");
    }
}
