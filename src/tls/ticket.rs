//! Session tickets every worker can decrypt: shared key bytes, a ticketer per worker.
//!
//! The control thread makes the keys ([`TicketKeys`]) and sends each worker a copy of
//! the bytes; each worker builds its own [`Ticketer`] from them, so issuing or opening a
//! ticket touches nothing another core writes (rustls's own rotator takes a lock shared
//! by every user). A ticket is `key name (16) || nonce (12) || AES-256-GCM(state)`; the
//! name says which key sealed it. The AEAD's associated data is the key name and the
//! listener's context (a hash of its certificates and client-certificate policy), so a
//! ticket opens only on a listener that would have made the same checks: a session from
//! a listener without mutual TLS cannot resume where a client certificate is required,
//! nor can one from before a reload that changed the CA. Keys rotate on a schedule: the newest seals, the one
//! before it still opens, so a ticket lives between one and two rotation periods. The
//! keys also survive reloads (they belong to the process, not to a config) and a hot
//! restart (handed to the new process with the listening sockets).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// The bytes of one key: its name and its AES-256 key.
pub const KEY_BYTES: usize = NAME_LEN + KEY_LEN;

/// The current ticket keys, newest first (at most two): plain bytes, copied to workers.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKeys {
    keys: Vec<[u8; KEY_BYTES]>,
    /// How long a key seals new tickets (the rotation period), seconds.
    period: u32,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .field("period", &self.period)
            .finish()
    }
}

impl TicketKeys {
    /// The default rotation period: a new key every 6 hours (rustls's and BoringSSL's
    /// ticket lifetime), so tickets open for 6 to 12 hours.
    pub const DEFAULT_PERIOD: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

    /// One fresh random key.
    pub fn generate(period: std::time::Duration) -> Result<Self, String> {
        let mut keys = TicketKeys {
            keys: Vec::new(),
            period: u32::try_from(period.as_secs()).unwrap_or(u32::MAX).max(1),
        };
        keys.rotate()?;
        Ok(keys)
    }

    /// The rotation period.
    pub fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.period))
    }

    /// A new random key seals from now on; the newest before it still opens.
    pub fn rotate(&mut self) -> Result<(), String> {
        let mut key = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| "no random bytes for a session-ticket key".to_owned())?;
        self.keys.insert(0, key);
        self.keys.truncate(2);
        Ok(())
    }

    /// The keys as bytes (for the hot-restart hand-over): period (4 bytes, big endian)
    /// then each key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.period.to_be_bytes().to_vec();
        for key in &self.keys {
            out.extend_from_slice(key);
        }
        out
    }

    /// The keys as hex text (one line of the hot-restart hand-over).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.to_bytes().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The inverse of [`TicketKeys::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Self::from_bytes(&bytes)
    }

    /// The inverse of [`TicketKeys::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (period, rest) = bytes.split_first_chunk::<4>()?;
        if rest.is_empty() || rest.len() % KEY_BYTES != 0 || rest.len() > 2 * KEY_BYTES {
            return None;
        }
        let keys = rest
            .chunks_exact(KEY_BYTES)
            .map(|k| <[u8; KEY_BYTES]>::try_from(k).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(TicketKeys {
            keys,
            period: u32::from_be_bytes(*period).max(1),
        })
    }
}

/// One worker's ticketer over its copy of the keys, for one listener.
pub struct Ticketer {
    /// Newest first: (name, key).
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    /// The listener's context, authenticated with every ticket.
    context: [u8; 32],
    lifetime: u32,
    random: SystemRandom,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Ticketer {
    /// Builds the AEAD keys from `keys`, for tickets bound to `context`.
    pub fn new(keys: &TicketKeys, context: [u8; 32]) -> Self {
        let aead = keys
            .keys
            .iter()
            .filter_map(|bytes| {
                let (name, key) = bytes.split_at(NAME_LEN);
                let name = <[u8; NAME_LEN]>::try_from(name).ok()?;
                let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
                Some((name, LessSafeKey::new(key)))
            })
            .collect();
        Ticketer {
            keys: aead,
            context,
            // A ticket sealed just before a rotation opens for one more period.
            lifetime: keys.period,
            random: SystemRandom::new(),
        }
    }
}

impl Ticketer {
    /// The associated data of a ticket sealed with key `name`.
    fn aad(&self, name: &[u8; NAME_LEN]) -> [u8; NAME_LEN + 32] {
        let mut aad = [0u8; NAME_LEN + 32];
        aad[..NAME_LEN].copy_from_slice(name);
        aad[NAME_LEN..].copy_from_slice(&self.context);
        aad
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        ticket.extend_from_slice(name);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(plain);
        let mut sealed = ticket.split_off(NAME_LEN + NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.aad(name)),
            &mut sealed,
        )
        .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = cipher.split_first_chunk::<NAME_LEN>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let (_, key) = self.keys.iter().find(|(n, _)| n == name)?;
        let mut plain = sealed.to_vec();
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(self.aad(name)),
                &mut plain,
            )
            .ok()?
            .len();
        plain.truncate(opened);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn a_ticket_opens_on_another_worker_and_after_one_rotation_only() {
        let mut keys = TicketKeys::generate(TicketKeys::DEFAULT_PERIOD).unwrap();
        let (one, two) = (
            Ticketer::new(&keys, [1; 32]),
            Ticketer::new(&keys.clone(), [1; 32]),
        );
        let ticket = one.encrypt(b"session state").unwrap();
        assert_eq!(two.decrypt(&ticket).unwrap(), b"session state");
        keys.rotate().unwrap();
        let rotated = Ticketer::new(&keys, [1; 32]);
        assert_eq!(rotated.decrypt(&ticket).unwrap(), b"session state");
        assert_ne!(
            rotated.encrypt(b"x").unwrap()[..NAME_LEN],
            ticket[..NAME_LEN]
        );
        keys.rotate().unwrap();
        assert!(Ticketer::new(&keys, [1; 32]).decrypt(&ticket).is_none());
    }

    #[test]
    fn a_ticket_opens_only_on_a_listener_with_the_same_context() {
        let keys = TicketKeys::generate(TicketKeys::DEFAULT_PERIOD).unwrap();
        let ticket = Ticketer::new(&keys, [1; 32]).encrypt(b"state").unwrap();
        assert!(Ticketer::new(&keys, [2; 32]).decrypt(&ticket).is_none());
        assert!(Ticketer::new(&keys, [1; 32]).decrypt(&ticket).is_some());
    }

    #[test]
    fn tampered_or_short_tickets_do_not_open() {
        let keys = TicketKeys::generate(TicketKeys::DEFAULT_PERIOD).unwrap();
        let t = Ticketer::new(&keys, [1; 32]);
        let mut ticket = t.encrypt(b"state").unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt(&ticket).is_none());
        for len in 0..NAME_LEN + NONCE_LEN + 16 {
            assert!(t.decrypt(&ticket[..len.min(ticket.len())]).is_none());
        }
    }

    #[test]
    fn keys_survive_the_hand_over_encoding() {
        let mut keys = TicketKeys::generate(std::time::Duration::from_secs(60)).unwrap();
        keys.rotate().unwrap();
        assert_eq!(TicketKeys::from_bytes(&keys.to_bytes()), Some(keys.clone()));
        assert_eq!(TicketKeys::from_hex(&keys.to_hex()), Some(keys));
        assert_eq!(TicketKeys::from_hex("0000000x"), None);
        assert_eq!(TicketKeys::from_bytes(&[0, 0, 0, 1]), None);
        assert_eq!(TicketKeys::from_bytes(&[0, 0, 0, 1, 2]), None);
    }
}
