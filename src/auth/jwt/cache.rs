//! The per-core cache of verified tokens.
//!
//! Design: a fixed table of `capacity` slots (rounded up to whole groups of [`WAYS`]),
//! set-associative: a token's hash picks one group, and the token can live only in
//! that group's four slots. Lookup hashes the token's length and its last
//! [`HASHED_TAIL`] bytes (a seeded multiply-xor hash over 8-byte words, four lanes
//! wide): the end of a signature, different for every token an issuer signs, so
//! hashing the whole token (an 800-byte access token is common) would buy no spread
//! and cost hundreds of instructions per request. It then compares the
//! stored hash of at most four slots and then the whole token bytes, so a collision
//! can never return another token's claims. A hit clones an `Rc` and sets a bit;
//! nothing on the lookup path allocates. Insert copies the token into a boxed slice
//! (the one allocation, on the uncached path) and, when the group is full, evicts with
//! a clock (second chance): entries hit since the hand last passed survive one round.
//!
//! Entries expire with their token (`exp` plus the clock skew it was verified with;
//! a token without `exp` stays until evicted or [`TokenCache::clear`]), checked
//! against `now` on lookup. The hash seed is random per cache, so a client cannot
//! choose tokens that all land in one group to evict other clients' entries at will.
//! One cache per worker and provider; it holds `Rc`s and is not `Send`.

use std::rc::Rc;

use super::Verified;

/// Slots per group.
const WAYS: usize = 4;

/// How much of a token's end the hash reads (with its length).
const HASHED_TAIL: usize = 64;

struct Slot {
    hash: u64,
    token: Box<[u8]>,
    verified: Rc<Verified>,
    /// Hit since the clock hand last passed.
    referenced: bool,
}

/// Verified tokens of one provider on one worker.
pub struct TokenCache {
    slots: Vec<Option<Slot>>,
    /// Per group, the slot the clock hand points at.
    hands: Vec<u8>,
    seed: u64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.slots.len())
            .field("len", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// A cache of about `capacity` tokens (rounded up to a multiple of 4; 0: a cache
    /// that keeps nothing).
    pub fn new(capacity: usize) -> TokenCache {
        let groups = capacity.div_ceil(WAYS);
        TokenCache {
            slots: (0..groups * WAYS).map(|_| None).collect(),
            hands: vec![0; groups],
            seed: fastrand::u64(..),
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The number of tokens held (expired ones included until looked up or evicted).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The verified token, if this exact token was inserted and is still good at `now`
    /// (an expired entry is dropped). Allocates nothing.
    pub fn get(&mut self, token: &[u8], now: u64) -> Option<Rc<Verified>> {
        let hash = hash(self.seed, token);
        let group = self.group(hash)?;
        let slots = &mut self.slots[group * WAYS..(group + 1) * WAYS];
        for slot in slots.iter_mut() {
            let Some(entry) = slot else { continue };
            if entry.hash != hash || *entry.token != *token {
                continue;
            }
            if !entry.verified.is_current(now) {
                *slot = None;
                return None;
            }
            entry.referenced = true;
            return Some(Rc::clone(&entry.verified));
        }
        None
    }

    /// Remembers a token that verified. A token already present is replaced; in a full
    /// group the clock picks the entry to drop.
    pub fn insert(&mut self, token: &[u8], verified: Rc<Verified>) {
        let hash = hash(self.seed, token);
        let Some(group) = self.group(hash) else {
            return;
        };
        let base = group * WAYS;
        let slots = &mut self.slots[base..base + WAYS];
        let existing = slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|e| e.hash == hash && *e.token == *token)
        });
        let free = || slots.iter().position(Option::is_none);
        let index = match existing.or_else(free) {
            Some(index) => index,
            None => {
                let hand = &mut self.hands[group];
                loop {
                    let i = usize::from(*hand) % WAYS;
                    *hand = ((i + 1) % WAYS) as u8;
                    match &mut slots[i] {
                        Some(entry) if entry.referenced => entry.referenced = false,
                        _ => break i,
                    }
                }
            }
        };
        slots[index] = Some(Slot {
            hash,
            token: token.into(),
            verified,
            referenced: false,
        });
    }

    /// Forgets every token: the provider's keys changed.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    /// The group of a hash (multiply-shift: no power-of-two size needed); `None` for a
    /// cache of capacity 0.
    fn group(&self, hash: u64) -> Option<usize> {
        let groups = self.hands.len();
        if groups == 0 {
            return None;
        }
        Some(((u128::from(hash) * groups as u128) >> 64) as usize)
    }
}

/// A seeded, fast, non-cryptographic hash: four independent multiply-xor lanes over
/// 32-byte blocks, then the tail, then a final avalanche. Collisions only cost a miss:
/// entries are confirmed by comparing the whole token.
fn hash(seed: u64, token: &[u8]) -> u64 {
    let bytes = &token[token.len().saturating_sub(HASHED_TAIL)..];
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    #[inline(always)]
    fn word(chunk: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(w)
    }
    #[inline(always)]
    fn mix(h: u64, w: u64) -> u64 {
        (h ^ w).wrapping_mul(K1).rotate_left(31)
    }
    let mut lanes = [
        seed ^ K2,
        seed.rotate_left(16) ^ K1,
        seed.rotate_left(32).wrapping_add(K2),
        seed.rotate_left(48).wrapping_sub(K1),
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, chunk) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = mix(*lane, word(chunk));
        }
    }
    let mut h = (token.len() as u64).wrapping_mul(K2);
    for lane in lanes {
        h = mix(h, lane);
    }
    for chunk in blocks.remainder().chunks(8) {
        h = mix(h, word(chunk));
    }
    // murmur3's fmix64.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[cfg(test)]
pub(super) fn test_hash(seed: u64, bytes: &[u8]) -> u64 {
    hash(seed, bytes)
}
