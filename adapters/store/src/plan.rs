//! Turning a [`PersistBatch`] into low-level mutations, shared by every adapter.
//!
//! [`plan`] validates the whole batch against the log's current bounds and seals every secret
//! *before* an adapter touches its medium, so an invalid batch or a sealing failure leaves no
//! trace, and every adapter applies the same semantics:
//!
//! - `AppendEntries`: entries must be contiguous; the first index must not leave a gap after the
//!   last stored entry and must be above the snapshot. Stored entries at or after the first new
//!   index are deleted, then the new ones inserted.
//! - `InstallSnapshot`: entries at or below its index are dropped; an older snapshot than the
//!   stored one is refused.
//! - `PutShare` seals the share; `EraseShare` deletes it and leaves an erased marker;
//!   `MarkConsumed` is idempotent; `PutRecord` seals `RecordValue::Secret`.
//!
//! Ops apply in order, so later ops in a batch see earlier ones.

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, RaftSnapshot, RecordValue,
};

use crate::error::StoreError;
use crate::seal::{record_aad, share_aad, Sealer};

/// Raft indexes above this are refused (they are stored as signed 64-bit integers in MongoDB).
pub const MAX_INDEX: u64 = i64::MAX as u64;

/// The log's shape: entries `first..=last` are stored (none if `last < first`), and
/// `first == snapshot_index + 1` always.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBounds {
    /// Index of the stored snapshot (0 if none).
    pub snapshot_index: u64,
    /// First stored entry's index.
    pub first: u64,
    /// Last stored entry's index (`first - 1` if none).
    pub last: u64,
}

impl LogBounds {
    /// An empty log without a snapshot.
    pub const EMPTY: LogBounds = LogBounds {
        snapshot_index: 0,
        first: 1,
        last: 0,
    };

    /// Bounds from what a medium holds: the snapshot's index and the first and last stored
    /// entry indexes. Fails if they are inconsistent (a gap after the snapshot).
    pub fn from_stored(
        snapshot_index: Option<u64>,
        first_entry: Option<u64>,
        last_entry: Option<u64>,
    ) -> Result<LogBounds, StoreError> {
        let snapshot_index = snapshot_index.unwrap_or(0);
        if snapshot_index > MAX_INDEX
            || first_entry.is_some_and(|i| i > MAX_INDEX)
            || last_entry.is_some_and(|i| i > MAX_INDEX)
        {
            return Err(StoreError::corrupt(format!(
                "raft log index out of range (snapshot {snapshot_index}, entries {first_entry:?}..={last_entry:?})"
            )));
        }
        match (first_entry, last_entry) {
            (Some(first), Some(last)) => {
                if first != snapshot_index + 1 || last < first {
                    return Err(StoreError::corrupt(format!(
                        "raft log holds entries {first}..={last} but the snapshot ends at {snapshot_index}"
                    )));
                }
                Ok(LogBounds {
                    snapshot_index,
                    first,
                    last,
                })
            }
            _ => Ok(LogBounds {
                snapshot_index,
                first: snapshot_index + 1,
                last: snapshot_index,
            }),
        }
    }

    /// Number of stored entries.
    pub fn len(&self) -> u64 {
        (self.last + 1).saturating_sub(self.first)
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record as stored: public bytes, or a sealed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue<'a> {
    /// Stored as is.
    Public(&'a [u8]),
    /// Sealed.
    Sealed(Vec<u8>),
}

/// One low-level change. Adapters apply a plan's mutations in order, all in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation<'a> {
    /// Insert one log entry (its index is free: replaced entries were deleted before).
    PutEntry {
        /// Index.
        index: u64,
        /// Term.
        term: u64,
        /// Encoded entry.
        bytes: &'a [u8],
    },
    /// Delete the entries `from..=to` (all of them exist).
    DeleteEntries {
        /// First index.
        from: u64,
        /// Last index.
        to: u64,
    },
    /// Replace the hard state.
    PutHardState(HardState),
    /// Replace the snapshot.
    PutSnapshot(&'a RaftSnapshot),
    /// Insert or replace a sealed share, and clear any erased marker for it.
    PutShare {
        /// Key.
        key: &'a KeyId,
        /// Version.
        version: KeyVersion,
        /// Sealed blob.
        sealed: Vec<u8>,
    },
    /// Delete a share (if present) and set its erased marker.
    EraseShare {
        /// Key.
        key: &'a KeyId,
        /// Version.
        version: KeyVersion,
    },
    /// Insert a consumed marker (idempotent).
    MarkConsumed {
        /// Kind.
        kind: &'a str,
        /// Id.
        id: &'a [u8],
    },
    /// Insert or replace a record.
    PutRecord {
        /// Table.
        table: &'a str,
        /// Key.
        key: &'a [u8],
        /// Value.
        value: StoredValue<'a>,
    },
    /// Delete a record (if present).
    DeleteRecord {
        /// Table.
        table: &'a str,
        /// Key.
        key: &'a [u8],
    },
}

/// A validated, sealed batch.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The changes, in order.
    pub mutations: Vec<Mutation<'a>>,
    /// The log bounds once applied.
    pub bounds_after: LogBounds,
}

/// Validates `batch` against `bounds` and seals its secrets; touches no medium.
pub fn plan<'a>(
    batch: &'a PersistBatch,
    bounds: LogBounds,
    sealer: &dyn Sealer,
    node_id: &str,
) -> Result<Plan<'a>, StoreError> {
    let mut b = bounds;
    let mut mutations = Vec::with_capacity(batch.ops.len());
    for (i, op) in batch.ops.iter().enumerate() {
        match op {
            PersistOp::AppendEntries(entries) => {
                let Some(head) = entries.first() else {
                    continue;
                };
                let first = head.index;
                for (k, e) in entries.iter().enumerate() {
                    if e.index != first.wrapping_add(k as u64) {
                        return Err(StoreError::invalid(format!(
                            "op {i}: AppendEntries not contiguous at position {k} (index {})",
                            e.index
                        )));
                    }
                }
                let new_last = first
                    .checked_add(entries.len() as u64 - 1)
                    .filter(|last| first != 0 && *last <= MAX_INDEX)
                    .ok_or_else(|| {
                        StoreError::invalid(format!(
                            "op {i}: AppendEntries index out of range (first {first}, {} entries)",
                            entries.len()
                        ))
                    })?;
                if first <= b.snapshot_index {
                    return Err(StoreError::invalid(format!(
                        "op {i}: AppendEntries at index {first} is at or below the snapshot index {}",
                        b.snapshot_index
                    )));
                }
                if first > b.last + 1 {
                    return Err(StoreError::invalid(format!(
                        "op {i}: AppendEntries at index {first} leaves a gap after the last entry {}",
                        b.last
                    )));
                }
                if first <= b.last {
                    // Every replaced entry is deleted first, so PutEntry always inserts.
                    mutations.push(Mutation::DeleteEntries {
                        from: first,
                        to: b.last,
                    });
                }
                for e in entries {
                    mutations.push(Mutation::PutEntry {
                        index: e.index,
                        term: e.term,
                        bytes: &e.bytes,
                    });
                }
                b.last = new_last;
            }
            PersistOp::SetHardState(hs) => mutations.push(Mutation::PutHardState(*hs)),
            PersistOp::InstallSnapshot(snap) => {
                if snap.index < b.snapshot_index {
                    return Err(StoreError::invalid(format!(
                        "op {i}: snapshot at index {} is older than the stored one at {}",
                        snap.index, b.snapshot_index
                    )));
                }
                if snap.index > MAX_INDEX {
                    return Err(StoreError::invalid(format!(
                        "op {i}: snapshot index {} out of range",
                        snap.index
                    )));
                }
                let drop_to = snap.index.min(b.last);
                if drop_to >= b.first {
                    mutations.push(Mutation::DeleteEntries {
                        from: b.first,
                        to: drop_to,
                    });
                }
                mutations.push(Mutation::PutSnapshot(snap));
                b.snapshot_index = snap.index;
                b.first = snap.index + 1;
                b.last = b.last.max(snap.index);
            }
            PersistOp::PutShare {
                key,
                version,
                share,
            } => {
                let sealed = sealer
                    .seal(share.expose(), &share_aad(node_id, key, *version))
                    .map_err(|e| StoreError::Seal {
                        reason: format!("op {i} (share for key {key} {version}): {e}"),
                    })?;
                mutations.push(Mutation::PutShare {
                    key,
                    version: *version,
                    sealed,
                });
            }
            PersistOp::EraseShare { key, version } => mutations.push(Mutation::EraseShare {
                key,
                version: *version,
            }),
            PersistOp::MarkConsumed { kind, id } => {
                check_name(i, "kind", kind)?;
                mutations.push(Mutation::MarkConsumed { kind, id })
            }
            PersistOp::PutRecord { table, key, value } => {
                check_name(i, "table", table)?;
                let value = match value {
                    RecordValue::Public(bytes) => StoredValue::Public(bytes),
                    RecordValue::Secret(secret) => StoredValue::Sealed(
                        sealer
                            .seal(secret.expose(), &record_aad(node_id, table, key))
                            .map_err(|e| StoreError::Seal {
                                reason: format!("op {i} (record in table {table:?}): {e}"),
                            })?,
                    ),
                };
                mutations.push(Mutation::PutRecord { table, key, value });
            }
            PersistOp::DeleteRecord { table, key } => {
                check_name(i, "table", table)?;
                mutations.push(Mutation::DeleteRecord { table, key })
            }
        }
    }
    Ok(Plan {
        mutations,
        bounds_after: b,
    })
}

/// Table and kind names: 1 to 128 bytes, no NUL (they become keys and field values).
fn check_name(op: usize, what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 128 || name.contains('\0') {
        return Err(StoreError::invalid(format!(
            "op {op}: {what} name must be 1 to 128 bytes without NUL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::XChaChaSealer;
    use keyshard_core::persist::{PersistToken, RaftEntry};

    #[test]
    fn extreme_indexes_are_errors_not_panics() {
        let sealer = XChaChaSealer::random().unwrap();
        let entry = |index| RaftEntry {
            index,
            term: 1,
            bytes: vec![],
        };
        for ents in [
            vec![entry(u64::MAX), entry(0)],
            vec![entry(u64::MAX)],
            vec![entry(MAX_INDEX), entry(MAX_INDEX + 1)],
        ] {
            let b = PersistBatch {
                token: PersistToken(1),
                ops: vec![PersistOp::AppendEntries(ents)],
            };
            let bounds = LogBounds {
                snapshot_index: MAX_INDEX - 1,
                first: MAX_INDEX,
                last: MAX_INDEX - 1,
            };
            assert!(plan(&b, bounds, &sealer, "n").is_err());
            assert!(plan(&b, LogBounds::EMPTY, &sealer, "n").is_err());
        }
        assert!(LogBounds::from_stored(Some(u64::MAX), None, None).is_err());
        assert!(LogBounds::from_stored(None, Some(u64::MAX), Some(u64::MAX)).is_err());
        assert!(LogBounds::from_stored(Some(5), Some(7), Some(9)).is_err());
        assert_eq!(
            LogBounds::from_stored(Some(5), Some(6), Some(9))
                .unwrap()
                .len(),
            4
        );
    }
}
