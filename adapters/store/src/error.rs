//! The store's error type. Messages name keys, versions and tables, never secret bytes.

use core::fmt;
use std::path::PathBuf;

use keyshard_core::persist::{KeyId, KeyVersion};

/// Which sealed item failed to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealedItem {
    /// This node's share of `key` at `version`.
    Share {
        /// The key.
        key: KeyId,
        /// The version.
        version: KeyVersion,
    },
    /// A secret record.
    Record {
        /// The table.
        table: String,
        /// The record's key, hex-encoded (record keys are not secret).
        key_hex: String,
    },
}

impl fmt::Display for SealedItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealedItem::Share { key, version } => write!(f, "sealed share for key {key} {version}"),
            SealedItem::Record { table, key_hex } => {
                write!(f, "sealed record {key_hex} in table {table:?}")
            }
        }
    }
}

/// Everything that can go wrong in a store.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A sealed item failed authentication: the data was altered on disk, or it was sealed under
    /// another sealing key or for another node, key or version. The item is never returned.
    Integrity {
        /// What failed.
        item: SealedItem,
    },
    /// Stored bytes that are not sealed could not be decoded (corruption, or a foreign database).
    Corrupt {
        /// What was being read and what was wrong with it.
        what: String,
    },
    /// The batch breaks the log rules and was not applied (nothing of it is visible).
    InvalidBatch {
        /// Which rule.
        reason: String,
    },
    /// Sealing a secret failed (no OS randomness, or the sealer refused); the batch was not applied.
    Seal {
        /// Why.
        reason: String,
    },
    /// The sealing key could not be loaded or created.
    SealingKey {
        /// The key file, if file-based.
        path: Option<PathBuf>,
        /// Why, with what to do about it.
        reason: String,
    },
    /// A record asked for as secret is public, or the other way round.
    RecordKind {
        /// The table.
        table: String,
        /// The record's key, hex-encoded.
        key_hex: String,
        /// Whether the caller expected a secret record.
        expected_secret: bool,
    },
    /// The storage backend failed (I/O, database, network). Whether a failed `apply` took
    /// effect is unknown to the caller; the store has re-read its state and stays usable.
    Backend {
        /// Which backend ("sled", "mongodb", "memory").
        backend: &'static str,
        /// The backend's message.
        message: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Integrity { item } => write!(
                f,
                "{item} failed authentication: wrong sealing key or corrupted data"
            ),
            StoreError::Corrupt { what } => write!(f, "corrupted store data: {what}"),
            StoreError::InvalidBatch { reason } => {
                write!(f, "batch rejected, nothing applied: {reason}")
            }
            StoreError::Seal { reason } => write!(f, "sealing failed, nothing applied: {reason}"),
            StoreError::SealingKey { path, reason } => match path {
                Some(p) => write!(f, "sealing key file {}: {reason}", p.display()),
                None => write!(f, "sealing key: {reason}"),
            },
            StoreError::RecordKind {
                table,
                key_hex,
                expected_secret,
            } => write!(
                f,
                "record {key_hex} in table {table:?} is {}, expected {}",
                if *expected_secret { "public" } else { "secret" },
                if *expected_secret { "secret" } else { "public" }
            ),
            StoreError::Backend { backend, message } => write!(f, "{backend} store: {message}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// A corrupt-data error.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }

    /// An invalid-batch error.
    pub fn invalid(reason: impl Into<String>) -> Self {
        StoreError::InvalidBatch {
            reason: reason.into(),
        }
    }

    /// A backend error.
    pub fn backend(backend: &'static str, err: impl fmt::Display) -> Self {
        StoreError::Backend {
            backend,
            message: err.to_string(),
        }
    }

    /// Whether this is an integrity failure of a sealed item.
    pub fn is_integrity(&self) -> bool {
        matches!(self, StoreError::Integrity { .. })
    }
}

/// Lower-case hex of public bytes (record keys, ids) for messages.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}
