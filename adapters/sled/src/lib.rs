//! The embedded default key store on sled (issue 5: key storage).
//!
//! Every batch is planned and sealed first ([`keyshard_store::plan`]), then applied as one sled
//! transaction over the store's trees, then `Db::flush()`ed (fsync) before `apply` returns:
//! sled's own background flush is not enough (see docs/reliability.md).
//!
//! Layout (all integers big-endian, `lp(x)` = u32 length then bytes):
//!
//! | tree         | key                         | value                              |
//! |--------------|-----------------------------|------------------------------------|
//! | `raft_log`   | index u64                   | term u64, entry bytes              |
//! | `raft_meta`  | `hard_state` / `snapshot`   | term, vote, commit / index, term, bytes |
//! | `shares`     | key id, 0x00, version u32   | sealed blob                        |
//! | `erased`     | key id, 0x00, version u32   | empty                              |
//! | `consumed`   | lp(kind), id                | empty                              |
//! | `records`    | lp(table), key              | 0 public / 1 sealed, bytes         |
//!
//! Erasure deletes the share. sled is log-structured, so the old sealed blob stays in a segment
//! until sled reuses it; it is ciphertext, and the sealing key is never in the store.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, RaftEntry, RaftSnapshot, RecordValue,
    RestoredState, SecretBytes,
};
use keyshard_store::plan::{plan, LogBounds, Mutation, StoredValue};
use keyshard_store::{open_record, open_share, Sealer, Store, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

const BACKEND: &str = "sled";
const HARD_STATE: &[u8] = b"hard_state";
const SNAPSHOT: &[u8] = b"snapshot";

fn err(e: impl fmt::Display) -> StoreError {
    StoreError::backend(BACKEND, e)
}

fn share_key(key: &KeyId, version: KeyVersion) -> Vec<u8> {
    let mut k = share_prefix(key);
    k.extend_from_slice(&version.0.to_be_bytes());
    k
}

fn share_prefix(key: &KeyId) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.as_str().len() + 5);
    k.extend_from_slice(key.as_str().as_bytes());
    k.push(0);
    k
}

fn decode_share_key(raw: &[u8]) -> Result<(KeyId, KeyVersion), StoreError> {
    let bad = || StoreError::corrupt(format!("bad share key of {} bytes", raw.len()));
    let split = raw.len().checked_sub(5).ok_or_else(bad)?;
    if raw[split] != 0 {
        return Err(bad());
    }
    let id = std::str::from_utf8(&raw[..split]).map_err(|_| bad())?;
    let key = KeyId::new(id).map_err(|_| bad())?;
    let version = u32::from_be_bytes(raw[split + 1..].try_into().map_err(|_| bad())?);
    Ok((key, KeyVersion(version)))
}

fn lp_key(name: &str, key: &[u8]) -> Vec<u8> {
    let mut k = lp_prefix(name);
    k.extend_from_slice(key);
    k
}

fn lp_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + name.len());
    k.extend_from_slice(&(name.len() as u32).to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

fn decode_lp_key(raw: &[u8]) -> Result<(String, Vec<u8>), StoreError> {
    let bad = || StoreError::corrupt(format!("bad table/kind key of {} bytes", raw.len()));
    let len_bytes: [u8; 4] = raw
        .get(..4)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let name = raw.get(4..4 + len).ok_or_else(bad)?;
    let name = std::str::from_utf8(name).map_err(|_| bad())?;
    Ok((name.to_string(), raw[4 + len..].to_vec()))
}

fn u64_at(raw: &[u8], at: usize, what: &str) -> Result<u64, StoreError> {
    raw.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt(format!("{what}: too short ({} bytes)", raw.len())))
}

fn decode_index(raw: &[u8]) -> Result<u64, StoreError> {
    if raw.len() != 8 {
        return Err(StoreError::corrupt("raft log key is not 8 bytes"));
    }
    u64_at(raw, 0, "raft log key")
}

fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&hs.term.to_be_bytes());
    v.extend_from_slice(&hs.vote.to_be_bytes());
    v.extend_from_slice(&hs.commit.to_be_bytes());
    v
}

fn decode_hard_state(raw: &[u8]) -> Result<HardState, StoreError> {
    if raw.len() != 24 {
        return Err(StoreError::corrupt("hard state is not 24 bytes"));
    }
    Ok(HardState {
        term: u64_at(raw, 0, "hard state")?,
        vote: u64_at(raw, 8, "hard state")?,
        commit: u64_at(raw, 16, "hard state")?,
    })
}

fn encode_snapshot(s: &RaftSnapshot) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + s.bytes.len());
    v.extend_from_slice(&s.index.to_be_bytes());
    v.extend_from_slice(&s.term.to_be_bytes());
    v.extend_from_slice(&s.bytes);
    v
}

fn decode_snapshot(raw: &[u8]) -> Result<RaftSnapshot, StoreError> {
    Ok(RaftSnapshot {
        index: u64_at(raw, 0, "snapshot")?,
        term: u64_at(raw, 8, "snapshot")?,
        bytes: raw[16..].to_vec(),
    })
}

fn encode_entry(term: u64, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + bytes.len());
    v.extend_from_slice(&term.to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

struct Trees {
    log: sled::Tree,
    meta: sled::Tree,
    shares: sled::Tree,
    erased: sled::Tree,
    consumed: sled::Tree,
    records: sled::Tree,
}

/// The sled store. Open one per directory (sled locks it).
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    trees: Trees,
    node_id: String,
    sealer: Arc<dyn Sealer>,
    /// Serializes `apply` and caches the log's bounds.
    bounds: Mutex<LogBounds>,
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path` for `node_id`.
    pub fn open(
        path: impl AsRef<Path>,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .open()
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(err);
        let trees = Trees {
            log: tree("raft_log")?,
            meta: tree("raft_meta")?,
            shares: tree("shares")?,
            erased: tree("erased")?,
            consumed: tree("consumed")?,
            records: tree("records")?,
        };
        let store = SledStore {
            path,
            db,
            trees,
            node_id: node_id.to_string(),
            sealer,
            bounds: Mutex::new(LogBounds::EMPTY),
        };
        let bounds = store.read_bounds()?;
        *store.lock() = bounds;
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, LogBounds> {
        // The guarded value is re-read from disk after any failure, so a poisoned lock is safe.
        self.bounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_bounds(&self) -> Result<LogBounds, StoreError> {
        let snapshot_index = match self.trees.meta.get(SNAPSHOT).map_err(err)? {
            Some(raw) => Some(u64_at(&raw, 0, "snapshot")?),
            None => None,
        };
        let first = match self.trees.log.first().map_err(err)? {
            Some((k, _)) => Some(decode_index(&k)?),
            None => None,
        };
        let last = match self.trees.log.last().map_err(err)? {
            Some((k, _)) => Some(decode_index(&k)?),
            None => None,
        };
        LogBounds::from_stored(snapshot_index, first, last)
    }

    fn commit(&self, mutations: &[Mutation<'_>]) -> Result<(), StoreError> {
        let t = &self.trees;
        (
            &t.log,
            &t.meta,
            &t.shares,
            &t.erased,
            &t.consumed,
            &t.records,
        )
            .transaction(|(log, meta, shares, erased, consumed, records)| {
                for m in mutations {
                    match m {
                        Mutation::PutEntry { index, term, bytes } => {
                            log.insert(&index.to_be_bytes(), encode_entry(*term, bytes))?;
                        }
                        Mutation::DeleteEntries { from, to } => {
                            for i in *from..=*to {
                                log.remove(&i.to_be_bytes())?;
                            }
                        }
                        Mutation::PutHardState(hs) => {
                            meta.insert(HARD_STATE, encode_hard_state(hs))?;
                        }
                        Mutation::PutSnapshot(s) => {
                            meta.insert(SNAPSHOT, encode_snapshot(s))?;
                        }
                        Mutation::PutShare {
                            key,
                            version,
                            sealed,
                        } => {
                            let k = share_key(key, *version);
                            erased.remove(k.as_slice())?;
                            shares.insert(k, sealed.as_slice())?;
                        }
                        Mutation::EraseShare { key, version } => {
                            let k = share_key(key, *version);
                            shares.remove(k.as_slice())?;
                            erased.insert(k, &[][..])?;
                        }
                        Mutation::MarkConsumed { kind, id } => {
                            consumed.insert(lp_key(kind, id), &[][..])?;
                        }
                        Mutation::PutRecord { table, key, value } => {
                            let v = match value {
                                StoredValue::Public(b) => [&[0u8][..], b].concat(),
                                StoredValue::Sealed(b) => [&[1u8][..], b].concat(),
                            };
                            records.insert(lp_key(table, key), v)?;
                        }
                        Mutation::DeleteRecord { table, key } => {
                            records.remove(lp_key(table, key))?;
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => err("transaction aborted"),
                TransactionError::Storage(e) => err(e),
            })?;
        self.db
            .flush()
            .map_err(|e| err(format!("flush failed: {e}")))?;
        Ok(())
    }

    fn versions(tree: &sled::Tree, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        tree.scan_prefix(share_prefix(key))
            .keys()
            .map(|k| decode_share_key(&k.map_err(err)?).map(|(_, v)| v))
            .collect()
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("node_id", &self.node_id)
            .field("sealer", &self.sealer)
            .field("log", &*self.lock())
            .finish()
    }
}

impl Store for SledStore {
    fn apply(&self, batch: &PersistBatch) -> Result<(), StoreError> {
        let mut bounds = self.lock();
        let plan = plan(batch, *bounds, &*self.sealer, &self.node_id)?;
        match self.commit(&plan.mutations) {
            Ok(()) => {
                *bounds = plan.bounds_after;
                Ok(())
            }
            Err(e) => {
                // The transaction may or may not have committed (e.g. a failed flush): re-read.
                if let Ok(b) = self.read_bounds() {
                    *bounds = b;
                }
                Err(e)
            }
        }
    }

    fn restore(&self) -> Result<RestoredState, StoreError> {
        let t = &self.trees;
        let mut out = RestoredState {
            hard_state: match t.meta.get(HARD_STATE).map_err(err)? {
                Some(raw) => Some(decode_hard_state(&raw)?),
                None => None,
            },
            snapshot: match t.meta.get(SNAPSHOT).map_err(err)? {
                Some(raw) => Some(decode_snapshot(&raw)?),
                None => None,
            },
            ..RestoredState::default()
        };
        for item in t.log.iter() {
            let (k, v) = item.map_err(err)?;
            let index = decode_index(&k)?;
            out.entries.push(RaftEntry {
                index,
                term: u64_at(&v, 0, "raft log entry")?,
                bytes: v[8..].to_vec(),
            });
        }
        if out.entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
            return Err(StoreError::corrupt("raft log has a gap"));
        }
        for k in t.shares.iter().keys() {
            let (key, version) = decode_share_key(&k.map_err(err)?)?;
            out.share_versions.entry(key).or_default().push(version);
        }
        for k in t.consumed.iter().keys() {
            let (kind, id) = decode_lp_key(&k.map_err(err)?)?;
            out.consumed.entry(kind).or_default().push(id);
        }
        for item in t.records.iter() {
            let (k, v) = item.map_err(err)?;
            let (table, key) = decode_lp_key(&k)?;
            match v.first() {
                Some(0) => {
                    out.records
                        .entry(table)
                        .or_default()
                        .insert(key, v[1..].to_vec());
                }
                Some(1) => {}
                _ => return Err(StoreError::corrupt(format!("record in {table:?}: bad tag"))),
            }
        }
        Ok(out)
    }

    fn get_share(
        &self,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<SecretBytes>, StoreError> {
        match self
            .trees
            .shares
            .get(share_key(key, version))
            .map_err(err)?
        {
            None => Ok(None),
            Some(blob) => open_share(&*self.sealer, &self.node_id, key, version, &blob).map(Some),
        }
    }

    fn share_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Self::versions(&self.trees.shares, key)
    }

    fn erased_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Self::versions(&self.trees.erased, key)
    }

    fn get_record(&self, table: &str, key: &[u8]) -> Result<Option<RecordValue>, StoreError> {
        let Some(v) = self.trees.records.get(lp_key(table, key)).map_err(err)? else {
            return Ok(None);
        };
        match v.first() {
            Some(0) => Ok(Some(RecordValue::Public(v[1..].to_vec()))),
            Some(1) => open_record(&*self.sealer, &self.node_id, table, key, &v[1..])
                .map(|s| Some(RecordValue::Secret(s))),
            _ => Err(StoreError::corrupt(format!("record in {table:?}: bad tag"))),
        }
    }

    fn is_consumed(&self, kind: &str, id: &[u8]) -> Result<bool, StoreError> {
        self.trees
            .consumed
            .contains_key(lp_key(kind, id))
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_keys_are_errors() {
        let k = KeyId::new("a.b-c_d").unwrap();
        assert_eq!(
            decode_share_key(&share_key(&k, KeyVersion(7))).unwrap(),
            (k, KeyVersion(7))
        );
        assert_eq!(
            decode_lp_key(&lp_key("tasks", b"\0x")).unwrap(),
            ("tasks".to_string(), b"\0x".to_vec())
        );
        for bad in [
            &b""[..],
            b"ab",
            b"a\x01\0\0\0\x01",
            b"\xff\0\0\0\0\x01",
            b"/\0\0\0\0\x01",
        ] {
            assert!(decode_share_key(bad).is_err());
        }
        for bad in [&b""[..], b"\0\0\0\x05ab", b"\0\0\0\x01\xff"] {
            assert!(decode_lp_key(bad).is_err());
        }
        assert!(decode_hard_state(&[0; 23]).is_err());
        assert!(decode_snapshot(&[0; 15]).is_err());
        assert!(decode_index(&[0; 7]).is_err());
    }
}
