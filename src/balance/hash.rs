//! Request and host hashes, as Envoy computes them.
//!
//! Envoy hashes everything with xxHash64, seed 0 (header values, cookies, addresses, ring
//! entries); a route's hash policies are folded left to right by rotating the running hash
//! one bit left and xor-ing the next (`HashPolicyImpl::generateHash`), so a request maps to
//! the same upstream under ringway and Envoy given the same hosts.

use xxhash_rust::xxh64::xxh64;

/// xxHash64 of `bytes` with seed 0.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// Folds the next policy's hash into the running one: the first is taken as is, each later
/// one as `acc.rotate_left(1) ^ next`.
#[inline]
pub fn combine(acc: Option<u64>, next: u64) -> u64 {
    match acc {
        None => next,
        Some(acc) => acc.rotate_left(1) ^ next,
    }
}

/// xxHash64 of `bytes` with `seed` (Maglev's skip uses seed 1).
#[inline]
pub(crate) fn hash_seeded(bytes: &[u8], seed: u64) -> u64 {
    xxh64(bytes, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash64_known_values() {
        // The reference values of xxHash64 (seed 0) for the empty input and "abc".
        assert_eq!(hash_bytes(b""), 0xef46_db37_51d8_e999);
        assert_eq!(hash_bytes(b"abc"), 0x44bc_2cf5_ad77_0999);
    }

    #[test]
    fn combine_rotates_then_xors() {
        assert_eq!(combine(None, 7), 7);
        assert_eq!(combine(Some(1), 0), 2);
        assert_eq!(combine(Some(1 << 63), 0), 1);
        assert_eq!(combine(Some(3), 5), 6 ^ 5);
    }
}
