//! keyshard's key store interface (issue 5: key storage).
//!
//! - [`Store`]: what the node's run loop calls (through `spawn_blocking`) to make a
//!   [`PersistBatch`] durable, restore at start, and load sealed shares on demand.
//! - [`Sealer`] / [`FileSealer`] / [`XChaChaSealer`]: sealing at rest (see [`seal`]).
//! - [`MemStore`] over a [`MemDisk`]: the in-memory store the simulator and tests use.
//! - [`ShareCache`]: the node's LRU cache of decrypted key packages.
//! - [`conformance`] and [`crash`]: the suite and the SIGKILL harness every adapter runs.
//! - [`plan`]: the batch semantics, shared by every adapter so they cannot drift apart.
//!
//! Adapters: `keyshard-sled` (embedded default) and `keyshard-mongo`.
//!
//! Nothing here logs. Errors and `Debug` output name keys, versions and tables, never secret
//! bytes; every secret is sealed before it reaches a medium (including [`MemDisk`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
#[cfg(any(test, feature = "test-support"))]
pub mod crash;
mod error;
pub mod mem;
pub mod plan;
pub mod seal;

pub use cache::{CacheStats, ShareCache};
pub use error::{hex, SealedItem, StoreError};
pub use mem::{MemDisk, MemStore};
pub use seal::{open_private_file, read_private_key, FileSealer, SealError, Sealer, XChaChaSealer};

use keyshard_core::persist::{
    KeyId, KeyVersion, PersistBatch, RecordValue, RestoredState, SecretBytes,
};

/// A node's durable store. Synchronous: the async node calls it through `spawn_blocking`.
///
/// All methods take `&self` so one store can be shared (`Arc<dyn Store>`); `apply` calls are
/// serialized inside the store. Reads see every batch whose `apply` has returned.
pub trait Store: Send + Sync + core::fmt::Debug {
    /// Applies `batch` atomically (after a crash either all of it is visible or none) and returns
    /// only once it is durable. On `Err(InvalidBatch | Seal)` nothing was applied; on
    /// `Err(Backend)` the outcome is unknown until the next `restore`.
    fn apply(&self, batch: &PersistBatch) -> Result<(), StoreError>;

    /// Everything a node needs at start (shares and secret records stay sealed in the store).
    fn restore(&self) -> Result<RestoredState, StoreError>;

    /// This node's share of `key` at `version`, unsealed. `Ok(None)` if absent or erased;
    /// [`StoreError::Integrity`] (naming key and version) if it fails authentication.
    fn get_share(
        &self,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<SecretBytes>, StoreError>;

    /// The versions of `key` this node holds a share of, ascending.
    fn share_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError>;

    /// The versions of `key` whose share this node erased (retired), ascending.
    fn erased_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError>;

    /// A record, with a secret one unsealed.
    fn get_record(&self, table: &str, key: &[u8]) -> Result<Option<RecordValue>, StoreError>;

    /// Whether a one-time value was marked consumed.
    fn is_consumed(&self, kind: &str, id: &[u8]) -> Result<bool, StoreError>;

    /// A secret record, unsealed; [`StoreError::RecordKind`] if the record is public.
    fn get_secret_record(
        &self,
        table: &str,
        key: &[u8],
    ) -> Result<Option<SecretBytes>, StoreError> {
        match self.get_record(table, key)? {
            None => Ok(None),
            Some(RecordValue::Secret(s)) => Ok(Some(s)),
            Some(RecordValue::Public(_)) => Err(StoreError::RecordKind {
                table: table.to_string(),
                key_hex: hex(key),
                expected_secret: true,
            }),
        }
    }

    /// The state of `key` at `version` in this node's store.
    fn share_state(&self, key: &KeyId, version: KeyVersion) -> Result<ShareState, StoreError> {
        if self.share_versions(key)?.contains(&version) {
            Ok(ShareState::Held)
        } else if self.erased_versions(key)?.contains(&version) {
            Ok(ShareState::Erased)
        } else {
            Ok(ShareState::Absent)
        }
    }
}

/// Where a key version's share stands in this node's store. Whether a held version is active or
/// pending is the replicated registry's business (the version the cluster committed is active).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareState {
    /// Sealed in the store.
    Held,
    /// Retired and erased.
    Erased,
    /// Never stored here.
    Absent,
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn apply(&self, batch: &PersistBatch) -> Result<(), StoreError> {
        (**self).apply(batch)
    }
    fn restore(&self) -> Result<RestoredState, StoreError> {
        (**self).restore()
    }
    fn get_share(
        &self,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<SecretBytes>, StoreError> {
        (**self).get_share(key, version)
    }
    fn share_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        (**self).share_versions(key)
    }
    fn erased_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        (**self).erased_versions(key)
    }
    fn get_record(&self, table: &str, key: &[u8]) -> Result<Option<RecordValue>, StoreError> {
        (**self).get_record(table, key)
    }
    fn is_consumed(&self, kind: &str, id: &[u8]) -> Result<bool, StoreError> {
        (**self).is_consumed(kind, id)
    }
}

/// Opens a sealed share, mapping an authentication failure to an integrity error naming it.
pub fn open_share(
    sealer: &dyn Sealer,
    node_id: &str,
    key: &KeyId,
    version: KeyVersion,
    sealed: &[u8],
) -> Result<SecretBytes, StoreError> {
    sealer
        .open(sealed, &seal::share_aad(node_id, key, version))
        .map_err(|_| StoreError::Integrity {
            item: SealedItem::Share {
                key: key.clone(),
                version,
            },
        })
}

/// Opens a sealed record, mapping an authentication failure to an integrity error naming it.
pub fn open_record(
    sealer: &dyn Sealer,
    node_id: &str,
    table: &str,
    key: &[u8],
    sealed: &[u8],
) -> Result<SecretBytes, StoreError> {
    sealer
        .open(sealed, &seal::record_aad(node_id, table, key))
        .map_err(|_| StoreError::Integrity {
            item: SealedItem::Record {
                table: table.to_string(),
                key_hex: hex(key),
            },
        })
}
