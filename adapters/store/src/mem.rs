//! The in-memory store: same semantics as the durable adapters (it shares [`crate::plan`]), and
//! secrets are sealed in it too. The simulator keeps a [`MemDisk`] per node across simulated
//! crashes and reopens a [`MemStore`] on it at restart.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, RaftEntry, RaftSnapshot, RecordValue,
    RestoredState, SecretBytes,
};
use zeroize::Zeroize;

use crate::plan::{plan, LogBounds, Mutation, StoredValue};
use crate::{open_record, open_share, Sealer, Store, StoreError};

#[derive(Default)]
struct MemState {
    hard_state: Option<HardState>,
    snapshot: Option<RaftSnapshot>,
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    shares: BTreeMap<(KeyId, KeyVersion), Vec<u8>>,
    erased: BTreeSet<(KeyId, KeyVersion)>,
    consumed: BTreeSet<(String, Vec<u8>)>,
    /// (table, key) -> (sealed?, bytes)
    records: BTreeMap<(String, Vec<u8>), (bool, Vec<u8>)>,
}

impl MemState {
    fn bounds(&self) -> Result<LogBounds, StoreError> {
        LogBounds::from_stored(
            self.snapshot.as_ref().map(|s| s.index),
            self.entries.keys().next().copied(),
            self.entries.keys().next_back().copied(),
        )
    }

    fn execute(&mut self, m: Mutation<'_>) {
        match m {
            Mutation::PutEntry { index, term, bytes } => {
                self.entries.insert(index, (term, bytes.to_vec()));
            }
            Mutation::DeleteEntries { from, to } => {
                let doomed: Vec<u64> = self.entries.range(from..=to).map(|(k, _)| *k).collect();
                for k in doomed {
                    self.entries.remove(&k);
                }
            }
            Mutation::PutHardState(hs) => self.hard_state = Some(hs),
            Mutation::PutSnapshot(s) => self.snapshot = Some(s.clone()),
            Mutation::PutShare {
                key,
                version,
                sealed,
            } => {
                self.erased.remove(&(key.clone(), version));
                if let Some(mut old) = self.shares.insert((key.clone(), version), sealed) {
                    old.zeroize();
                }
            }
            Mutation::EraseShare { key, version } => {
                // Memory is the one medium where overwriting in place is real.
                if let Some(mut old) = self.shares.remove(&(key.clone(), version)) {
                    old.zeroize();
                }
                self.erased.insert((key.clone(), version));
            }
            Mutation::MarkConsumed { kind, id } => {
                self.consumed.insert((kind.to_string(), id.to_vec()));
            }
            Mutation::PutRecord { table, key, value } => {
                let stored = match value {
                    StoredValue::Public(b) => (false, b.to_vec()),
                    StoredValue::Sealed(b) => (true, b),
                };
                self.records
                    .insert((table.to_string(), key.to_vec()), stored);
            }
            Mutation::DeleteRecord { table, key } => {
                self.records.remove(&(table.to_string(), key.to_vec()));
            }
        }
    }
}

/// The simulated medium: survives a [`MemStore`] being dropped (a simulated crash) and can be
/// reopened. Cloning shares the same medium.
#[derive(Clone, Default)]
pub struct MemDisk(Arc<Mutex<MemState>>);

impl MemDisk {
    /// A new, empty medium.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding the lock cannot leave a half-applied batch: mutations are
        // infallible and applied after all validation, so the state is still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every byte stored, concatenated (for tests that scan the medium for plaintext).
    pub fn raw_bytes(&self) -> Vec<u8> {
        let s = self.lock();
        let mut out = Vec::new();
        for (k, v) in &s.shares {
            out.extend_from_slice(k.0.as_str().as_bytes());
            out.extend_from_slice(v);
        }
        for ((t, k), (_, v)) in &s.records {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        for (_, b) in s.entries.values() {
            out.extend_from_slice(b);
        }
        if let Some(snap) = &s.snapshot {
            out.extend_from_slice(&snap.bytes);
        }
        for (k, id) in &s.consumed {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(id);
        }
        out
    }

    /// The sealed blob of a share as stored (test hook).
    pub fn sealed_share(&self, key: &KeyId, version: KeyVersion) -> Option<Vec<u8>> {
        self.lock().shares.get(&(key.clone(), version)).cloned()
    }

    /// Overwrites the sealed blob of a share (test hook for corruption tests).
    pub fn set_sealed_share(&self, key: &KeyId, version: KeyVersion, blob: Vec<u8>) {
        self.lock().shares.insert((key.clone(), version), blob);
    }
}

impl fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("MemDisk")
            .field("entries", &s.entries.len())
            .field("shares", &s.shares.len())
            .field("records", &s.records.len())
            .finish_non_exhaustive()
    }
}

/// The in-memory store.
pub struct MemStore {
    disk: MemDisk,
    node_id: String,
    sealer: Arc<dyn Sealer>,
}

impl MemStore {
    /// Opens a store on `disk` for `node_id`, sealing with `sealer`.
    pub fn open(disk: MemDisk, node_id: &str, sealer: Arc<dyn Sealer>) -> Result<Self, StoreError> {
        disk.lock().bounds()?;
        Ok(MemStore {
            disk,
            node_id: node_id.to_string(),
            sealer,
        })
    }

    /// The medium.
    pub fn disk(&self) -> &MemDisk {
        &self.disk
    }
}

impl fmt::Debug for MemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemStore")
            .field("node_id", &self.node_id)
            .field("disk", &self.disk)
            .field("sealer", &self.sealer)
            .finish()
    }
}

impl Store for MemStore {
    fn apply(&self, batch: &PersistBatch) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        let bounds = state.bounds()?;
        let plan = plan(batch, bounds, &*self.sealer, &self.node_id)?;
        for m in plan.mutations {
            state.execute(m);
        }
        Ok(())
    }

    fn restore(&self) -> Result<RestoredState, StoreError> {
        let s = self.disk.lock();
        let mut out = RestoredState {
            hard_state: s.hard_state,
            snapshot: s.snapshot.clone(),
            ..RestoredState::default()
        };
        out.entries = s
            .entries
            .iter()
            .map(|(index, (term, bytes))| RaftEntry {
                index: *index,
                term: *term,
                bytes: bytes.clone(),
            })
            .collect();
        for (key, version) in s.shares.keys() {
            out.share_versions
                .entry(key.clone())
                .or_default()
                .push(*version);
        }
        for (kind, id) in &s.consumed {
            out.consumed
                .entry(kind.clone())
                .or_default()
                .push(id.clone());
        }
        for ((table, key), (sealed, value)) in &s.records {
            if !sealed {
                out.records
                    .entry(table.clone())
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
        }
        Ok(out)
    }

    fn get_share(
        &self,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<SecretBytes>, StoreError> {
        let sealed = self
            .disk
            .lock()
            .shares
            .get(&(key.clone(), version))
            .cloned();
        match sealed {
            None => Ok(None),
            Some(blob) => open_share(&*self.sealer, &self.node_id, key, version, &blob).map(Some),
        }
    }

    fn share_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Ok(self
            .disk
            .lock()
            .shares
            .keys()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect())
    }

    fn erased_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Ok(self
            .disk
            .lock()
            .erased
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect())
    }

    fn get_record(&self, table: &str, key: &[u8]) -> Result<Option<RecordValue>, StoreError> {
        let stored = self
            .disk
            .lock()
            .records
            .get(&(table.to_string(), key.to_vec()))
            .cloned();
        match stored {
            None => Ok(None),
            Some((false, bytes)) => Ok(Some(RecordValue::Public(bytes))),
            Some((true, blob)) => open_record(&*self.sealer, &self.node_id, table, key, &blob)
                .map(|s| Some(RecordValue::Secret(s))),
        }
    }

    fn is_consumed(&self, kind: &str, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .disk
            .lock()
            .consumed
            .contains(&(kind.to_string(), id.to_vec())))
    }
}
