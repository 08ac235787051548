//! Transcript hashes: a digest of everything a run emitted, in order.
//!
//! Determinism is checked by running the same seed twice and comparing transcript hashes; a
//! different seed must give a different hash. Only public data is recorded (message bytes that
//! left a node, public keys, signatures), so a transcript can be logged and compared freely.

use sha2::{Digest, Sha256};

/// An incremental, domain-separated, length-prefixed SHA-256 over recorded items.
#[derive(Clone)]
pub struct Transcript {
    hasher: Sha256,
    items: u64,
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::new()
    }
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"keyshard/transcript/v1");
        Transcript { hasher, items: 0 }
    }

    /// Appends one item under `label`.
    pub fn record(&mut self, label: &str, bytes: &[u8]) {
        self.hasher.update((label.len() as u64).to_be_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
        self.items += 1;
    }

    /// How many items were recorded.
    pub fn len(&self) -> u64 {
        self.items
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The hash of everything recorded so far.
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

/// A session result that can be written to a transcript (its public part only).
pub trait Recordable {
    /// Writes the public part of `self`.
    fn record(&self, t: &mut Transcript);
}
