//! What the core asks a store to make durable, and what a store gives back at start.
//!
//! The core never writes anything itself: it emits a [`PersistBatch`] and waits for the driver to
//! report it durable (`Persisted { token }`) before releasing any message that depends on it
//! (Raft's rule, and ours for key shares and consumed nonces). A store applies each batch
//! atomically: after a crash either every op of a batch is visible or none is.
//!
//! Secrets travel only as [`SecretBytes`] and only in share ops: the store seals them (AEAD bound
//! to node, key and version) before they touch disk. Raft entries never contain secrets.

use core::fmt;
use std::collections::BTreeMap;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Identifies a batch; the driver echoes it back once the batch is durable. Tokens increase.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PersistToken(pub u64);

/// A key's identifier in the registry: 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

/// Why a string is not a [`KeyId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadKeyId(pub String);

impl fmt::Display for BadKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid key id {:?}: need 1 to 64 characters of A-Z a-z 0-9 . _ -",
            self.0
        )
    }
}

impl std::error::Error for BadKeyId {}

impl KeyId {
    /// Validates `s` as a key id.
    pub fn new(s: &str) -> Result<KeyId, BadKeyId> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(KeyId(s.to_string()))
        } else {
            Err(BadKeyId(s.chars().take(80).collect()))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's version: 1 after key generation, +1 per reshare or refresh.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyVersion(pub u32);

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Secret bytes (a serialized key package, a presignature): wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret; callers must not copy it anywhere that outlives its use.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// One Raft log entry, in the core's own encoding (opaque to the store).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RaftEntry {
    /// Log index (1-based, contiguous).
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// The encoded entry.
    pub bytes: Vec<u8>,
}

/// Raft's hard state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Vote in the current term (0 = none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// A Raft snapshot: the state machine up to `index`, in the core's own encoding.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RaftSnapshot {
    /// Last index the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The encoded snapshot (membership, registry, tasks; never shares).
    pub bytes: Vec<u8>,
}

/// One change to make durable.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PersistOp {
    /// Append entries, first replacing any existing entries at or after the first one's index
    /// (a new leader may overwrite an uncommitted suffix).
    AppendEntries(Vec<RaftEntry>),
    /// Replace the hard state.
    SetHardState(HardState),
    /// Install a snapshot and drop every log entry at or below its index.
    InstallSnapshot(RaftSnapshot),
    /// Store this node's share of `key` at `version` (sealed by the store).
    PutShare {
        /// The key.
        key: KeyId,
        /// The version.
        version: KeyVersion,
        /// The serialized key package.
        share: SecretBytes,
    },
    /// Erase (and overwrite where the medium allows) this node's share of `key` at `version`.
    EraseShare {
        /// The key.
        key: KeyId,
        /// The version.
        version: KeyVersion,
    },
    /// Record that a one-time value (a nonce set, a presignature) was used. Durable before any
    /// message produced with it leaves the node.
    MarkConsumed {
        /// What kind of value (e.g. "presignature").
        kind: String,
        /// Its identifier.
        id: Vec<u8>,
    },
    /// Store or replace a record in a named table (tasks, node metadata, presignatures).
    PutRecord {
        /// The table.
        table: String,
        /// The record's key.
        key: Vec<u8>,
        /// The record; sealed by the store if `secret`.
        value: RecordValue,
    },
    /// Delete a record from a named table.
    DeleteRecord {
        /// The table.
        table: String,
        /// The record's key.
        key: Vec<u8>,
    },
}

/// A record's content: public bytes, or secret bytes the store seals.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RecordValue {
    /// Stored as is.
    Public(Vec<u8>),
    /// Sealed at rest (e.g. an ECDSA presignature).
    Secret(SecretBytes),
}

/// A set of changes applied atomically.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PersistBatch {
    /// Echoed back in `Persisted` once durable.
    pub token: PersistToken,
    /// The changes, applied in order.
    pub ops: Vec<PersistOp>,
}

/// What a node restores from its store at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// Raft hard state, if any was stored.
    pub hard_state: Option<HardState>,
    /// The latest snapshot, if any.
    pub snapshot: Option<RaftSnapshot>,
    /// Log entries after the snapshot, in index order.
    pub entries: Vec<RaftEntry>,
    /// The versions of each key this node holds a share of (the shares stay in the store and
    /// are loaded on demand).
    pub share_versions: BTreeMap<KeyId, Vec<KeyVersion>>,
    /// Every consumed one-time value, per kind.
    pub consumed: BTreeMap<String, Vec<Vec<u8>>>,
    /// Public records per table (secret records are loaded on demand).
    pub records: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::new("treasury-2026.eth_main").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new(&"a".repeat(65)).is_err());
        assert!(KeyId::new("../etc/passwd").is_err());
        assert!(KeyId::new("a b").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = SecretBytes::new(vec![0x41; 8]);
        let op = PersistOp::PutShare {
            key: KeyId::new("k").unwrap(),
            version: KeyVersion(1),
            share: s,
        };
        let shown = format!("{op:?}");
        assert!(
            !shown.contains("65, 65") && !shown.contains("AAAA"),
            "{shown}"
        );
        assert!(shown.contains("redacted"));
    }
}
