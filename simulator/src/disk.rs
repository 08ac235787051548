//! A node's simulated disk. A `Persist` batch becomes durable only after a write latency; the
//! node hears `Persisted` only then. Batches complete in order. A crash keeps what was durable,
//! loses every batch still being written, except that a prefix of them may have reached the
//! medium without being acknowledged (a store whose write returned just before the kill): the
//! node must cope with both.

use std::collections::{BTreeMap, VecDeque};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, PersistToken, RaftEntry, RecordValue,
    RestoredState, SecretBytes,
};

/// What survives a crash.
#[derive(Clone, Default)]
pub struct DiskState {
    /// Raft hard state.
    pub hard_state: Option<HardState>,
    /// Raft log.
    pub entries: BTreeMap<u64, RaftEntry>,
    /// Key shares (sealed by a real store; plain here).
    pub shares: BTreeMap<(KeyId, KeyVersion), SecretBytes>,
    /// Consumed one-time values per kind.
    pub consumed: BTreeMap<String, Vec<Vec<u8>>>,
    /// Public records per table.
    pub records: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Secret records per table.
    pub secret_records: BTreeMap<String, BTreeMap<Vec<u8>, SecretBytes>>,
}

impl DiskState {
    /// Applies one batch atomically.
    pub fn apply(&mut self, batch: &PersistBatch) {
        for op in &batch.ops {
            match op {
                PersistOp::AppendEntries(es) => {
                    if let Some(first) = es.first() {
                        self.entries.retain(|i, _| *i < first.index);
                    }
                    for e in es {
                        self.entries.insert(e.index, e.clone());
                    }
                }
                PersistOp::SetHardState(h) => self.hard_state = Some(*h),
                PersistOp::InstallSnapshot(s) => self.entries.retain(|i, _| *i > s.index),
                PersistOp::PutShare {
                    key,
                    version,
                    share,
                } => {
                    self.shares.insert((key.clone(), *version), share.clone());
                }
                PersistOp::EraseShare { key, version } => {
                    self.shares.remove(&(key.clone(), *version));
                }
                PersistOp::MarkConsumed { kind, id } => {
                    self.consumed
                        .entry(kind.clone())
                        .or_default()
                        .push(id.clone());
                }
                PersistOp::PutRecord { table, key, value } => match value {
                    RecordValue::Public(v) => {
                        self.records
                            .entry(table.clone())
                            .or_default()
                            .insert(key.clone(), v.clone());
                    }
                    RecordValue::Secret(v) => {
                        self.secret_records
                            .entry(table.clone())
                            .or_default()
                            .insert(key.clone(), v.clone());
                    }
                },
                PersistOp::DeleteRecord { table, key } => {
                    if let Some(t) = self.records.get_mut(table) {
                        t.remove(key);
                    }
                    if let Some(t) = self.secret_records.get_mut(table) {
                        t.remove(key);
                    }
                }
            }
        }
    }

    /// What the store gives the node at start.
    pub fn restored(&self) -> RestoredState {
        let mut share_versions: BTreeMap<KeyId, Vec<KeyVersion>> = BTreeMap::new();
        for (k, v) in self.shares.keys() {
            share_versions.entry(k.clone()).or_default().push(*v);
        }
        RestoredState {
            hard_state: self.hard_state,
            snapshot: None,
            entries: self.entries.values().cloned().collect(),
            share_versions,
            consumed: self.consumed.clone(),
            records: self.records.clone(),
        }
    }
}

/// A batch being written.
pub struct Pending {
    /// When it becomes durable (global ms).
    pub done_at: u64,
    /// The batch.
    pub batch: PersistBatch,
}

/// A node's disk: durable state plus batches in flight, completed in order.
#[derive(Default)]
pub struct Disk {
    /// What is durable.
    pub durable: DiskState,
    /// Batches written but not yet durable, oldest first.
    pub pending: VecDeque<Pending>,
}

impl Disk {
    /// Queues a batch; returns when it will be durable (never before an earlier batch).
    pub fn submit(&mut self, batch: PersistBatch, now: u64, latency: u64) -> u64 {
        let after = self.pending.back().map_or(0, |p| p.done_at);
        let done_at = (now + latency).max(after);
        self.pending.push_back(Pending { done_at, batch });
        done_at
    }

    /// Makes the oldest pending batch durable if it is `token`; returns whether it was.
    pub fn complete(&mut self, token: PersistToken) -> bool {
        match self.pending.front() {
            Some(p) if p.batch.token == token => {
                let p = self.pending.pop_front().expect("front exists");
                self.durable.apply(&p.batch);
                true
            }
            _ => false,
        }
    }

    /// A crash: the first `reached` pending batches reached the medium unacknowledged, the
    /// rest are lost. Returns how many were lost.
    pub fn crash(&mut self, reached: usize) -> usize {
        let reached = reached.min(self.pending.len());
        for p in self.pending.drain(..reached).collect::<Vec<_>>() {
            self.durable.apply(&p.batch);
        }
        let lost = self.pending.len();
        self.pending.clear();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(token: u64, index: u64) -> PersistBatch {
        PersistBatch {
            token: PersistToken(token),
            ops: vec![
                PersistOp::AppendEntries(vec![RaftEntry {
                    index,
                    term: 1,
                    bytes: vec![index as u8],
                }]),
                PersistOp::SetHardState(HardState {
                    term: 1,
                    vote: 1,
                    commit: index,
                }),
            ],
        }
    }

    #[test]
    fn only_acknowledged_or_reached_batches_survive_a_crash() {
        let mut d = Disk::default();
        assert_eq!(d.submit(batch(1, 1), 0, 5), 5);
        // A later batch with a shorter latency still completes after the first.
        assert_eq!(d.submit(batch(2, 2), 1, 1), 5);
        d.submit(batch(3, 3), 2, 9);
        assert!(!d.complete(PersistToken(2)), "out of order");
        assert!(d.complete(PersistToken(1)));
        assert_eq!(d.durable.entries.len(), 1);
        // Crash: batch 2 reached the medium, batch 3 is lost.
        assert_eq!(d.crash(1), 1);
        let r = d.durable.restored();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.hard_state.unwrap().commit, 2);
        assert!(d.pending.is_empty());
    }
}
