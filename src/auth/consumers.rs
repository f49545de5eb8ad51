//! API keys: who a presented key belongs to.
//!
//! Design: keys are never kept as text. The config (and the consumers file) yields the
//! SHA-256 digest of every key; a worker's table maps digests to consumers. A presented
//! key is digested (aws-lc-rs), the table is looked up by the digest, and the stored
//! digest is confirmed with a constant-time comparison. Looking up by a digest leaks
//! nothing useful through timing: an attacker cannot choose keys whose digests walk the
//! table. The table is built with each snapshot (a reload, or a change of the consumers
//! file, which triggers one) and read without locks; nothing is allocated per request.

use std::collections::HashMap;
use std::rc::Rc;

use crate::config::auth::{ApiKeys, Consumer};
use crate::stats::WorkerScope;

/// A consumer as a worker knows it.
#[derive(Debug)]
pub struct ConsumerEntry {
    pub consumer: Consumer,
    /// This worker's `consumer.<name>.` cells (`None` past the stats bound).
    pub stats: Option<WorkerScope>,
}

/// Every known key of a config, by digest.
#[derive(Debug, Default)]
pub struct ConsumerTable {
    by_digest: HashMap<[u8; 32], Rc<ConsumerEntry>>,
}

impl ConsumerTable {
    /// The consumers of `keys` (the config's and the file's), each with its stats cells
    /// when `stats` has them.
    pub fn build(keys: &ApiKeys, stats: impl Fn(&str) -> Option<WorkerScope>) -> Self {
        let mut by_digest = HashMap::new();
        let file = keys.file.iter().flat_map(|(_, consumers)| consumers);
        for consumer in keys.consumers.iter().chain(file) {
            let entry = Rc::new(ConsumerEntry {
                stats: stats(&consumer.name),
                consumer: consumer.clone(),
            });
            for digest in &consumer.key_digests {
                by_digest.insert(*digest, Rc::clone(&entry));
            }
        }
        ConsumerTable { by_digest }
    }

    /// The consumer owning `key`, if any.
    pub fn find(&self, key: &[u8]) -> Option<&Rc<ConsumerEntry>> {
        let digest = digest(key);
        let (stored, entry) = self.by_digest.get_key_value(&digest)?;
        // The map compared the digests already; this comparison is the one that decides,
        // in constant time, so the answer does not depend on where two digests differ.
        aws_lc_rs::constant_time::verify_slices_are_equal(stored, &digest)
            .ok()
            .map(|()| entry)
    }

    /// How many keys are known.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// SHA-256 of a key, as stored.
pub fn digest(key: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys {
            from: Vec::new(),
            consumers: vec![Consumer {
                name: "acme".into(),
                key_digests: vec![digest(b"k1"), digest(b"k2")],
                metadata: vec![("plan".into(), "gold".into())],
            }],
            file: Some((
                "c.yaml".into(),
                vec![Consumer {
                    name: "globex".into(),
                    key_digests: vec![digest(b"k3")],
                    metadata: Vec::new(),
                }],
            )),
            forward: false,
        }
    }

    #[test]
    fn keys_find_their_consumer_and_nothing_else() {
        let table = ConsumerTable::build(&keys(), |_| None);
        assert_eq!(table.len(), 3);
        assert_eq!(table.find(b"k1").unwrap().consumer.name, "acme");
        assert_eq!(table.find(b"k2").unwrap().consumer.name, "acme");
        assert_eq!(table.find(b"k3").unwrap().consumer.name, "globex");
        assert!(table.find(b"k4").is_none());
        assert!(table.find(b"").is_none());
        assert!(table.find(b"K1").is_none());
    }
}
