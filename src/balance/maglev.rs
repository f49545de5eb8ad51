//! Maglev consistent hashing (Google's Maglev paper, section 3.4), weighted as Envoy
//! documents it (load_balancers.rst, Maglev).
//!
//! The table has `size` slots (a prime: 65537 by default). Hosts are sorted by key so that
//! the table does not depend on their order; each host walks its own permutation of the
//! slots, `(offset + skip × j) mod size` with `offset = xxHash64(key) mod size` and `skip =
//! xxHash64(key, seed 1) mod (size − 1) + 1`, taking the first free slot. Hosts take turns
//! in rounds; a host whose share is a third of the largest takes a turn every third round,
//! so the slots end in proportion to the shares (weights 1 and 2 over 65537 slots: 21846
//! and 43691). A request's hash `h` goes to slot `h mod size`. Removing a host frees its
//! slots, and mostly only those change owner (about twice as many keys move as with a
//! ring, per Envoy's docs).

use super::hash::hash_seeded;

/// A filled table of member indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Maglev {
    table: Box<[u32]>,
    min_per_host: u64,
    max_per_host: u64,
}

impl Maglev {
    /// A table of `size` slots over `(member, key, share)` entries (shares > 0). `size`
    /// should be prime (the config refuses others); a non-prime size still fills every slot.
    pub(crate) fn build(hosts: &[(u32, &str, f64)], size: u64) -> Maglev {
        let size = size.max(2);
        let mut entries: Vec<Entry> = hosts
            .iter()
            .filter(|h| h.2 > 0.0)
            .map(|&(member, key, share)| Entry {
                key_order: key,
                member,
                offset: hash_seeded(key.as_bytes(), 0) % size,
                skip: hash_seeded(key.as_bytes(), 1) % (size - 1) + 1,
                share,
                credit: 0.0,
                next: 0,
                count: 0,
            })
            .collect();
        if entries.is_empty() {
            return Maglev::default();
        }
        entries.sort_by(|a, b| a.key_order.cmp(b.key_order).then(a.member.cmp(&b.member)));
        let max_share = entries.iter().map(|e| e.share).fold(0.0, f64::max);

        let mut table = vec![u32::MAX; size as usize];
        let mut filled: u64 = 0;
        let mut round: u64 = 1;
        while filled < size {
            for entry in entries.iter_mut() {
                if filled == size {
                    break;
                }
                // A host's turn comes when the rounds it has earned (round × share) reach
                // the turns it has had (credit, in units of the largest share).
                if (round as f64) * entry.share < entry.credit {
                    continue;
                }
                entry.credit += max_share;
                let slot = entry.free_slot(&table, size);
                table[slot] = entry.member;
                entry.next += 1;
                entry.count += 1;
                filled += 1;
            }
            round += 1;
        }
        Maglev {
            table: table.into_boxed_slice(),
            min_per_host: entries.iter().map(|e| e.count).min().unwrap_or(0),
            max_per_host: entries.iter().map(|e| e.count).max().unwrap_or(0),
        }
    }

    /// The member owning `hash`; None when the table is empty.
    #[inline]
    pub(crate) fn lookup(&self, hash: u64) -> Option<u32> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        self.table.get((hash % len) as usize).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The fewest and most slots a host got (Envoy's min/max_entries_per_host gauges).
    pub(crate) fn per_host(&self) -> (u64, u64) {
        (self.min_per_host, self.max_per_host)
    }
}

#[derive(Debug)]
struct Entry<'a> {
    key_order: &'a str,
    member: u32,
    offset: u64,
    skip: u64,
    share: f64,
    credit: f64,
    next: u64,
    count: u64,
}

impl Entry<'_> {
    /// The next free slot of this host's permutation. With a prime size the permutation
    /// visits every slot within `size` steps; past that (a non-prime size), the first free
    /// slot from the permutation's position, so the build always ends.
    fn free_slot(&mut self, table: &[u32], size: u64) -> usize {
        let start = self.next;
        loop {
            let slot = ((self.offset as u128 + self.skip as u128 * self.next as u128)
                % size as u128) as usize;
            if table[slot] == u32::MAX {
                return slot;
            }
            self.next += 1;
            if self.next - start > size {
                let from = slot;
                let free = (0..table.len())
                    .map(|i| (from + i) % table.len())
                    .find(|&i| table[i] == u32::MAX);
                return free.unwrap_or(from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash_bytes;

    use crate::balance::fixtures::equal;

    fn keys(n: usize) -> Vec<String> {
        crate::balance::fixtures::keys("10.1", 8080, n)
    }

    fn counts(m: &Maglev, n: usize) -> Vec<u64> {
        let mut c = vec![0; n];
        for &slot in m.table.iter() {
            c[slot as usize] += 1;
        }
        c
    }

    #[test]
    fn every_slot_is_filled_and_shares_are_even() {
        let k = keys(100);
        let m = Maglev::build(&equal(&k), 65537);
        assert_eq!(m.len(), 65537);
        assert!(m.table.iter().all(|&s| s < 100));
        let c = counts(&m, 100);
        let expect = 65537.0 / 100.0;
        for (i, &n) in c.iter().enumerate() {
            assert!(
                (n as f64 - expect).abs() / expect < 0.01,
                "host {i}: {n} slots"
            );
        }
        assert_eq!(m.per_host(), (655, 656));
    }

    #[test]
    fn weights_one_and_two_as_envoy_documents() {
        let k = keys(2);
        let hosts = [(0, k[0].as_str(), 1.0 / 3.0), (1, k[1].as_str(), 2.0 / 3.0)];
        let m = Maglev::build(&hosts, 65537);
        assert_eq!(counts(&m, 2), [21846, 43691]);
    }

    #[test]
    fn the_table_does_not_depend_on_host_order() {
        let k = keys(20);
        let forward = equal(&k);
        let mut backward = forward.clone();
        backward.reverse();
        assert_eq!(
            Maglev::build(&forward, 251).table,
            Maglev::build(&backward, 251).table
        );
    }

    #[test]
    fn removing_a_host_remaps_few_other_keys() {
        let k = keys(100);
        let all = Maglev::build(&equal(&k), 65537);
        let fewer = Maglev::build(&equal(&k[..99]), 65537);
        let (mut moved_other, mut total_other) = (0, 0);
        for i in 0..100_000u64 {
            let h = hash_bytes(&i.to_le_bytes());
            let before = all.lookup(h).unwrap();
            if before == 99 {
                continue;
            }
            total_other += 1;
            if fewer.lookup(h) != Some(before) {
                moved_other += 1;
            }
        }
        // The removed host's keys (1%) must move; of the others only a few percent may.
        assert!(
            (moved_other as f64) < 0.03 * total_other as f64,
            "{moved_other} of {total_other} keys of other hosts moved"
        );
    }

    #[test]
    fn a_non_prime_size_still_fills_the_table() {
        let k = keys(7);
        let m = Maglev::build(&equal(&k), 100);
        assert!(m.table.iter().all(|&s| s < 7));
        assert_eq!(Maglev::build(&[], 65537).lookup(1), None);
    }
}
