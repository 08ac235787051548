//! The conformance suite every store adapter runs identically:
//! `keyshard_store::conformance::run_all(&factory)` from one `#[test]`.
//!
//! This is test support: it panics (with the case name) when a store misbehaves.

use std::sync::Arc;

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, PersistToken, RaftEntry, RaftSnapshot,
    RecordValue, RestoredState, SecretBytes,
};

use crate::seal::SealError;
use crate::{MemDisk, MemStore, SealedItem, Sealer, ShareState, Store, StoreError, XChaChaSealer};

/// How the suite makes, opens and inspects stores of one adapter.
///
/// The inspection hooks (`raw_bytes`, `sealed_share`, `set_sealed_share`) are only called while
/// no store is open on the place.
pub trait Factory {
    /// The adapter's store.
    type Store: Store;
    /// Where one store's data lives (a directory, a database name, a [`MemDisk`]).
    type Place;

    /// A fresh, empty place.
    fn new_place(&self) -> Self::Place;
    /// Opens (or reopens) the store at `place`.
    fn open(
        &self,
        place: &Self::Place,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Self::Store, StoreError>;
    /// Every byte the medium holds for `place` (files, documents), for plaintext scans.
    fn raw_bytes(&self, place: &Self::Place) -> Vec<u8>;
    /// The sealed blob stored for a share.
    fn sealed_share(
        &self,
        place: &Self::Place,
        key: &KeyId,
        version: KeyVersion,
    ) -> Option<Vec<u8>>;
    /// Overwrites the sealed blob stored for a share (corruption tests).
    fn set_sealed_share(
        &self,
        place: &Self::Place,
        key: &KeyId,
        version: KeyVersion,
        blob: Vec<u8>,
    );
    /// Logs the medium produced so far (e.g. a database server's), scanned for plaintext.
    fn logs(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// The cases, by name.
pub const CASES: &[&str] = &[
    "empty_restore",
    "append_and_truncate",
    "snapshot_compaction",
    "hard_state",
    "shares_and_versions",
    "consumed_markers",
    "records",
    "ops_apply_in_order",
    "batch_atomicity",
    "restore_after_reopen",
    "differential_against_memstore",
    "sealed_at_rest",
    "bit_flip_is_integrity_error",
    "wrong_sealing_key_or_node",
    "secrets_not_in_debug_or_errors",
];

/// Runs every case, printing each name; panics on the first failure.
pub fn run_all<F: Factory>(f: &F) {
    for name in CASES {
        eprintln!("conformance: {name} ...");
        run_case(f, name);
        eprintln!("conformance: {name} ok");
    }
}

/// Runs one case by name.
pub fn run_case<F: Factory>(f: &F, name: &str) {
    match name {
        "empty_restore" => empty_restore(f),
        "append_and_truncate" => append_and_truncate(f),
        "snapshot_compaction" => snapshot_compaction(f),
        "hard_state" => hard_state(f),
        "shares_and_versions" => shares_and_versions(f),
        "consumed_markers" => consumed_markers(f),
        "records" => records(f),
        "ops_apply_in_order" => ops_apply_in_order(f),
        "batch_atomicity" => batch_atomicity(f),
        "restore_after_reopen" => restore_after_reopen(f),
        "differential_against_memstore" => differential_against_memstore(f),
        "sealed_at_rest" => sealed_at_rest(f),
        "bit_flip_is_integrity_error" => bit_flip_is_integrity_error(f),
        "wrong_sealing_key_or_node" => wrong_sealing_key_or_node(f),
        "secrets_not_in_debug_or_errors" => secrets_not_in_debug_or_errors(f),
        other => panic!("no conformance case {other:?}"),
    }
}

const NODE: &str = "node-a";

fn sealer() -> Arc<dyn Sealer> {
    Arc::new(XChaChaSealer::random().expect("OS randomness"))
}

fn open<F: Factory>(f: &F, place: &F::Place, sealer: &Arc<dyn Sealer>) -> F::Store {
    f.open(place, NODE, sealer.clone()).expect("open store")
}

fn key(s: &str) -> KeyId {
    KeyId::new(s).expect("valid key id")
}

fn batch(token: u64, ops: Vec<PersistOp>) -> PersistBatch {
    PersistBatch {
        token: PersistToken(token),
        ops,
    }
}

fn entry(index: u64, term: u64) -> RaftEntry {
    RaftEntry {
        index,
        term,
        bytes: format!("entry {index} term {term}").into_bytes(),
    }
}

fn append(range: std::ops::RangeInclusive<u64>, term: u64) -> PersistOp {
    PersistOp::AppendEntries(range.map(|i| entry(i, term)).collect())
}

fn snapshot(index: u64, term: u64) -> PersistOp {
    PersistOp::InstallSnapshot(RaftSnapshot {
        index,
        term,
        bytes: format!("snapshot {index}").into_bytes(),
    })
}

/// A recognisable secret: 64 bytes no encoder would produce by chance.
fn secret_bytes(tag: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(tag).rotate_left(3) ^ 0xA5)
        .collect()
}

fn put_share(k: &KeyId, v: u32, tag: u8) -> PersistOp {
    PersistOp::PutShare {
        key: k.clone(),
        version: KeyVersion(v),
        share: SecretBytes::new(secret_bytes(tag)),
    }
}

fn apply_ok<S: Store>(s: &S, b: &PersistBatch) {
    if let Err(e) = s.apply(b) {
        panic!("batch {:?} failed: {e}", b.token);
    }
}

fn indexes(r: &RestoredState) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index, e.term)).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn empty_restore<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    assert_eq!(s.restore().expect("restore"), RestoredState::default());
    let k = key("nothing");
    assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_none());
    assert!(s.share_versions(&k).expect("versions").is_empty());
    assert_eq!(
        s.share_state(&k, KeyVersion(1)).expect("state"),
        ShareState::Absent
    );
    assert!(s.get_record("t", b"k").expect("record").is_none());
    assert!(!s.is_consumed("nonce", b"x").expect("consumed"));
    // An empty batch is fine.
    apply_ok(&s, &batch(1, vec![]));
    apply_ok(&s, &batch(2, vec![PersistOp::AppendEntries(vec![])]));
    assert_eq!(s.restore().expect("restore"), RestoredState::default());
}

fn append_and_truncate<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    apply_ok(&s, &batch(1, vec![append(1..=5, 1)]));
    assert_eq!(
        indexes(&s.restore().expect("restore")),
        vec![(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]
    );
    // A new leader overwrites the suffix from 3: 5 disappears, 3 and 4 get term 2.
    apply_ok(&s, &batch(2, vec![append(3..=4, 2)]));
    let r = s.restore().expect("restore");
    assert_eq!(indexes(&r), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(r.entries[2], entry(3, 2));
    // Appending right after the end extends.
    apply_ok(&s, &batch(3, vec![append(5..=6, 2)]));
    // Overwriting the whole log from 1.
    apply_ok(&s, &batch(4, vec![append(1..=2, 3)]));
    assert_eq!(
        indexes(&s.restore().expect("restore")),
        vec![(1, 3), (2, 3)]
    );
    // A gap, a non-contiguous run and index 0 are refused; nothing changes.
    for bad in [
        append(4..=5, 3),
        PersistOp::AppendEntries(vec![entry(3, 3), entry(5, 3)]),
        PersistOp::AppendEntries(vec![entry(3, 3), entry(3, 3)]),
        PersistOp::AppendEntries(vec![entry(0, 3)]),
    ] {
        let err = s.apply(&batch(5, vec![bad])).expect_err("invalid append");
        assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    }
    assert_eq!(
        indexes(&s.restore().expect("restore")),
        vec![(1, 3), (2, 3)]
    );
    // Two appends in one batch, the second overwriting the first exactly (no truncation between).
    apply_ok(
        &s,
        &batch(
            6,
            vec![append(3..=4, 4), append(3..=4, 5), append(5..=5, 5)],
        ),
    );
    assert_eq!(
        indexes(&s.restore().expect("restore")),
        vec![(1, 3), (2, 3), (3, 5), (4, 5), (5, 5)]
    );
}

fn snapshot_compaction<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    apply_ok(&s, &batch(1, vec![append(1..=10, 1)]));
    apply_ok(&s, &batch(2, vec![snapshot(6, 1)]));
    let r = s.restore().expect("restore");
    assert_eq!(r.snapshot.as_ref().map(|x| (x.index, x.term)), Some((6, 1)));
    assert_eq!(
        r.snapshot.as_ref().map(|x| x.bytes.clone()),
        Some(b"snapshot 6".to_vec())
    );
    assert_eq!(r.entries.first().map(|e| e.index), Some(7));
    assert_eq!(r.entries.last().map(|e| e.index), Some(10));
    // Appending at or below the snapshot is refused.
    for bad in [append(6..=7, 2), append(3..=3, 2)] {
        let err = s.apply(&batch(3, vec![bad])).expect_err("below snapshot");
        assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    }
    // Overwriting just above the snapshot is fine.
    apply_ok(&s, &batch(4, vec![append(7..=8, 2)]));
    assert_eq!(
        indexes(&s.restore().expect("restore")),
        vec![(7, 2), (8, 2)]
    );
    // A snapshot past the end empties the log; the next append goes right after it.
    apply_ok(&s, &batch(5, vec![snapshot(12, 3)]));
    let r = s.restore().expect("restore");
    assert!(r.entries.is_empty());
    assert_eq!(r.snapshot.as_ref().map(|x| x.index), Some(12));
    let err = s
        .apply(&batch(6, vec![append(14..=14, 3)]))
        .expect_err("gap after snapshot");
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    apply_ok(&s, &batch(7, vec![append(13..=15, 3)]));
    // An older snapshot is refused; the same index again is accepted.
    let err = s
        .apply(&batch(8, vec![snapshot(11, 3)]))
        .expect_err("older");
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    apply_ok(&s, &batch(9, vec![snapshot(12, 3)]));
    let r = s.restore().expect("restore");
    assert_eq!(indexes(&r), vec![(13, 3), (14, 3), (15, 3)]);
    // Compaction within a batch, with appends around it.
    apply_ok(
        &s,
        &batch(
            10,
            vec![append(16..=20, 4), snapshot(18, 4), append(21..=21, 4)],
        ),
    );
    let r = s.restore().expect("restore");
    assert_eq!(indexes(&r), vec![(19, 4), (20, 4), (21, 4)]);
    drop(s);
    let s = open(f, &place, &sealer());
    assert_eq!(s.restore().expect("restore"), r);
    apply_ok(&s, &batch(11, vec![append(22..=22, 4)]));
}

fn hard_state<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let hs = HardState {
        term: 3,
        vote: 2,
        commit: 7,
    };
    apply_ok(&s, &batch(1, vec![PersistOp::SetHardState(hs)]));
    assert_eq!(s.restore().expect("restore").hard_state, Some(hs));
    let hs2 = HardState {
        term: u64::MAX,
        vote: 0,
        commit: 9,
    };
    apply_ok(&s, &batch(2, vec![PersistOp::SetHardState(hs2)]));
    assert_eq!(s.restore().expect("restore").hard_state, Some(hs2));
}

fn shares_and_versions<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let k = key("treasury.eth-1");
    let other = key("treasury.eth-10");
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                put_share(&k, 1, 1),
                put_share(&k, 2, 2),
                put_share(&other, 1, 3),
            ],
        ),
    );
    assert_eq!(
        s.get_share(&k, KeyVersion(1))
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(1))
    );
    assert_eq!(
        s.get_share(&k, KeyVersion(2))
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(2))
    );
    assert_eq!(
        s.share_versions(&k).expect("versions"),
        vec![KeyVersion(1), KeyVersion(2)]
    );
    assert_eq!(
        s.share_versions(&other).expect("versions"),
        vec![KeyVersion(1)]
    );
    assert!(s.get_share(&k, KeyVersion(3)).expect("get").is_none());
    // Retire version 1.
    apply_ok(
        &s,
        &batch(
            2,
            vec![PersistOp::EraseShare {
                key: k.clone(),
                version: KeyVersion(1),
            }],
        ),
    );
    assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_none());
    assert_eq!(s.share_versions(&k).expect("versions"), vec![KeyVersion(2)]);
    assert_eq!(s.erased_versions(&k).expect("erased"), vec![KeyVersion(1)]);
    assert_eq!(
        s.share_state(&k, KeyVersion(1)).expect("state"),
        ShareState::Erased
    );
    assert_eq!(
        s.share_state(&k, KeyVersion(2)).expect("state"),
        ShareState::Held
    );
    // Erasing what is absent is fine (idempotent).
    apply_ok(
        &s,
        &batch(
            3,
            vec![PersistOp::EraseShare {
                key: k.clone(),
                version: KeyVersion(1),
            }],
        ),
    );
    // Overwriting a version replaces it.
    apply_ok(&s, &batch(4, vec![put_share(&k, 2, 9)]));
    assert_eq!(
        s.get_share(&k, KeyVersion(2))
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(9))
    );
    let r = s.restore().expect("restore");
    assert_eq!(r.share_versions.get(&k), Some(&vec![KeyVersion(2)]));
    assert_eq!(r.share_versions.get(&other), Some(&vec![KeyVersion(1)]));
    assert_eq!(r.share_versions.len(), 2);
    // Large versions and an empty share survive.
    let big = KeyVersion(u32::MAX);
    apply_ok(
        &s,
        &batch(
            5,
            vec![PersistOp::PutShare {
                key: k.clone(),
                version: big,
                share: SecretBytes::new(vec![]),
            }],
        ),
    );
    assert_eq!(s.get_share(&k, big).expect("get").map(|x| x.len()), Some(0));
    assert_eq!(
        s.share_versions(&k).expect("versions"),
        vec![KeyVersion(2), big]
    );
}

fn consumed_markers<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let mark = |kind: &str, id: &[u8]| PersistOp::MarkConsumed {
        kind: kind.to_string(),
        id: id.to_vec(),
    };
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                mark("presignature", b"p1"),
                mark("nonce", &[0, 1, 2]),
                mark("nonce", b""),
            ],
        ),
    );
    apply_ok(&s, &batch(2, vec![mark("presignature", b"p1")])); // idempotent
    assert!(s.is_consumed("presignature", b"p1").expect("consumed"));
    assert!(s.is_consumed("nonce", &[0, 1, 2]).expect("consumed"));
    assert!(s.is_consumed("nonce", b"").expect("consumed"));
    assert!(!s.is_consumed("nonce", b"p1").expect("consumed"));
    assert!(!s.is_consumed("presignature", &[0, 1, 2]).expect("consumed"));
    let r = s.restore().expect("restore");
    assert_eq!(r.consumed.get("presignature"), Some(&vec![b"p1".to_vec()]));
    let mut nonces = r.consumed.get("nonce").cloned().unwrap_or_default();
    nonces.sort();
    assert_eq!(nonces, vec![vec![], vec![0, 1, 2]]);
    assert_eq!(r.consumed.len(), 2);
    // Invalid kind names are refused.
    let err = s
        .apply(&batch(3, vec![mark("", b"x")]))
        .expect_err("empty kind");
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
}

fn records<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let put = |t: &str, k: &[u8], v: RecordValue| PersistOp::PutRecord {
        table: t.to_string(),
        key: k.to_vec(),
        value: v,
    };
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                put("tasks", b"t1", RecordValue::Public(b"dkg running".to_vec())),
                put("tasks", b"t2", RecordValue::Public(vec![])),
                put("meta", b"node", RecordValue::Public(b"id=3".to_vec())),
                put(
                    "presignatures",
                    &[0xff, 0],
                    RecordValue::Secret(SecretBytes::new(secret_bytes(40))),
                ),
            ],
        ),
    );
    assert_eq!(
        s.get_record("tasks", b"t1").expect("get"),
        Some(RecordValue::Public(b"dkg running".to_vec()))
    );
    assert_eq!(
        s.get_secret_record("presignatures", &[0xff, 0])
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(40))
    );
    assert_eq!(
        s.get_record("presignatures", &[0xff, 0]).expect("get"),
        Some(RecordValue::Secret(SecretBytes::new(secret_bytes(40))))
    );
    let err = s.get_secret_record("tasks", b"t1").expect_err("public");
    assert!(matches!(err, StoreError::RecordKind { .. }), "{err}");
    assert!(s.get_record("tasks", b"t3").expect("get").is_none());
    assert!(s.get_record("meta", b"t1").expect("get").is_none());
    // Secret records are not restored eagerly.
    let r = s.restore().expect("restore");
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.records["tasks"].len(), 2);
    assert_eq!(r.records["tasks"][b"t2".as_slice()], Vec::<u8>::new());
    assert_eq!(r.records["meta"][b"node".as_slice()], b"id=3".to_vec());
    // Replace, switch kinds, delete.
    apply_ok(
        &s,
        &batch(
            2,
            vec![
                put("tasks", b"t1", RecordValue::Public(b"dkg done".to_vec())),
                put(
                    "tasks",
                    b"t2",
                    RecordValue::Secret(SecretBytes::new(secret_bytes(41))),
                ),
                PersistOp::DeleteRecord {
                    table: "meta".into(),
                    key: b"node".to_vec(),
                },
                PersistOp::DeleteRecord {
                    table: "meta".into(),
                    key: b"never".to_vec(),
                },
            ],
        ),
    );
    let r = s.restore().expect("restore");
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records["tasks"].len(), 1);
    assert_eq!(r.records["tasks"][b"t1".as_slice()], b"dkg done".to_vec());
    assert_eq!(
        s.get_secret_record("tasks", b"t2")
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(41))
    );
}

fn ops_apply_in_order<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let k = key("k");
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                put_share(&k, 1, 1),
                PersistOp::EraseShare {
                    key: k.clone(),
                    version: KeyVersion(1),
                },
                put_share(&k, 2, 2),
                PersistOp::EraseShare {
                    key: k.clone(),
                    version: KeyVersion(2),
                },
                put_share(&k, 2, 3),
                PersistOp::PutRecord {
                    table: "t".into(),
                    key: b"a".to_vec(),
                    value: RecordValue::Public(b"1".to_vec()),
                },
                PersistOp::DeleteRecord {
                    table: "t".into(),
                    key: b"a".to_vec(),
                },
                PersistOp::PutRecord {
                    table: "t".into(),
                    key: b"b".to_vec(),
                    value: RecordValue::Public(b"1".to_vec()),
                },
                PersistOp::PutRecord {
                    table: "t".into(),
                    key: b"b".to_vec(),
                    value: RecordValue::Public(b"2".to_vec()),
                },
                append(1..=4, 1),
                append(3..=3, 2),
                PersistOp::SetHardState(HardState {
                    term: 1,
                    vote: 1,
                    commit: 1,
                }),
                PersistOp::SetHardState(HardState {
                    term: 2,
                    vote: 1,
                    commit: 3,
                }),
            ],
        ),
    );
    assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_none());
    assert_eq!(
        s.get_share(&k, KeyVersion(2))
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(3))
    );
    assert_eq!(
        s.share_state(&k, KeyVersion(2)).expect("state"),
        ShareState::Held
    );
    assert_eq!(s.erased_versions(&k).expect("erased"), vec![KeyVersion(1)]);
    let r = s.restore().expect("restore");
    assert_eq!(indexes(&r), vec![(1, 1), (2, 1), (3, 2)]);
    assert_eq!(r.hard_state.map(|h| h.term), Some(2));
    assert_eq!(r.records["t"].len(), 1);
    assert_eq!(r.records["t"][b"b".as_slice()], b"2".to_vec());
}

/// A sealer that fails on the `n`th seal (atomicity when sealing fails mid-batch).
#[derive(Debug)]
struct FailingSealer {
    inner: XChaChaSealer,
    fail_at: usize,
    count: std::sync::atomic::AtomicUsize,
}

impl Sealer for FailingSealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == self.fail_at {
            return Err(SealError::Seal("injected failure".into()));
        }
        self.inner.seal(plaintext, aad)
    }
    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
        self.inner.open(sealed, aad)
    }
}

fn batch_atomicity<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let k = key("atomic");
    apply_ok(&s, &batch(1, vec![append(1..=3, 1), put_share(&k, 1, 1)]));
    let before = s.restore().expect("restore");
    // Every kind of op, then an invalid one at the end: nothing may be visible.
    let doomed = |last: PersistOp| {
        batch(
            2,
            vec![
                append(2..=2, 5),
                PersistOp::SetHardState(HardState {
                    term: 5,
                    vote: 1,
                    commit: 2,
                }),
                put_share(&k, 2, 2),
                PersistOp::EraseShare {
                    key: k.clone(),
                    version: KeyVersion(1),
                },
                PersistOp::MarkConsumed {
                    kind: "nonce".into(),
                    id: b"n".to_vec(),
                },
                PersistOp::PutRecord {
                    table: "t".into(),
                    key: b"r".to_vec(),
                    value: RecordValue::Public(b"v".to_vec()),
                },
                last,
            ],
        )
    };
    let bad_kind = PersistOp::MarkConsumed {
        kind: String::new(),
        id: vec![],
    };
    for last in [append(9..=9, 5), bad_kind, append(0..=0, 1)] {
        let err = s.apply(&doomed(last)).expect_err("invalid batch");
        assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
        assert_eq!(s.restore().expect("restore"), before);
        assert!(s.get_share(&k, KeyVersion(2)).expect("get").is_none());
        assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_some());
        assert!(!s.is_consumed("nonce", b"n").expect("consumed"));
        assert!(s.get_record("t", b"r").expect("get").is_none());
    }
    drop(s);
    // A sealing failure on the second secret of a batch: nothing applied either.
    let failing: Arc<dyn Sealer> = Arc::new(FailingSealer {
        inner: XChaChaSealer::random().expect("rng"),
        fail_at: 1,
        count: Default::default(),
    });
    let place = f.new_place();
    let s = open(f, &place, &failing);
    let err = s
        .apply(&batch(
            1,
            vec![
                append(1..=1, 1),
                put_share(&k, 1, 1),
                PersistOp::PutRecord {
                    table: "p".into(),
                    key: b"x".to_vec(),
                    value: RecordValue::Secret(SecretBytes::new(secret_bytes(7))),
                },
            ],
        ))
        .expect_err("sealing fails");
    assert!(matches!(err, StoreError::Seal { .. }), "{err}");
    assert_eq!(s.restore().expect("restore"), RestoredState::default());
    assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_none());
    // The store stays usable.
    apply_ok(&s, &batch(2, vec![append(1..=1, 1), put_share(&k, 1, 1)]));
    assert_eq!(s.restore().expect("restore").entries.len(), 1);
}

fn restore_after_reopen<F: Factory>(f: &F) {
    let place = f.new_place();
    let seal = sealer();
    let s = open(f, &place, &seal);
    let k = key("persisted");
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                append(1..=20, 1),
                PersistOp::SetHardState(HardState {
                    term: 1,
                    vote: 3,
                    commit: 15,
                }),
                put_share(&k, 1, 1),
                put_share(&k, 2, 2),
                PersistOp::MarkConsumed {
                    kind: "presignature".into(),
                    id: vec![9; 32],
                },
                PersistOp::PutRecord {
                    table: "tasks".into(),
                    key: b"t".to_vec(),
                    value: RecordValue::Public(vec![1, 2, 3]),
                },
                PersistOp::PutRecord {
                    table: "presignatures".into(),
                    key: b"p".to_vec(),
                    value: RecordValue::Secret(SecretBytes::new(secret_bytes(5))),
                },
            ],
        ),
    );
    apply_ok(
        &s,
        &batch(
            2,
            vec![
                snapshot(10, 1),
                PersistOp::EraseShare {
                    key: k.clone(),
                    version: KeyVersion(1),
                },
            ],
        ),
    );
    let before = s.restore().expect("restore");
    drop(s);
    let s = open(f, &place, &seal);
    let after = s.restore().expect("restore after reopen");
    assert_eq!(after, before);
    assert_eq!(after.entries.len(), 10);
    assert_eq!(
        s.get_share(&k, KeyVersion(2))
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(2))
    );
    assert!(s.get_share(&k, KeyVersion(1)).expect("get").is_none());
    assert_eq!(s.erased_versions(&k).expect("erased"), vec![KeyVersion(1)]);
    assert_eq!(
        s.get_secret_record("presignatures", b"p")
            .expect("get")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(5))
    );
    // Appends continue where the log left off.
    apply_ok(&s, &batch(3, vec![append(21..=21, 2)]));
    drop(s);
    let s = open(f, &place, &seal);
    assert_eq!(
        s.restore()
            .expect("restore")
            .entries
            .last()
            .map(|e| e.index),
        Some(21)
    );
}

/// A small deterministic generator (xorshift64*), so failures replay.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn differential_against_memstore<F: Factory>(f: &F) {
    let seed = 0x5eed_0005;
    let mut rng = Rng::new(seed);
    let place = f.new_place();
    let seal = sealer();
    let mut s = Some(open(f, &place, &seal));
    let model = MemStore::open(MemDisk::new(), NODE, seal.clone()).expect("memstore");
    let keys = [key("a"), key("b"), key("a.b")];
    let mut last = 0u64; // last index as the generator believes
    let mut snap = 0u64;
    for token in 1..=150u64 {
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let op = match rng.below(10) {
                0..=2 => {
                    // Mostly valid appends; sometimes overwrite, sometimes a gap or below snapshot.
                    let first = match rng.below(8) {
                        0 => last + 2,
                        1 => snap.saturating_sub(rng.below(2)),
                        2 | 3 => (snap + 1).max(last.saturating_sub(rng.below(4))),
                        _ => last + 1,
                    };
                    let n = rng.below(4);
                    let term = token;
                    PersistOp::AppendEntries((first..first + n).map(|i| entry(i, term)).collect())
                }
                3 => snapshot(
                    if rng.below(4) == 0 {
                        snap.saturating_sub(1)
                    } else {
                        snap + rng.below(last.saturating_sub(snap) + 3)
                    },
                    token,
                ),
                4 => PersistOp::SetHardState(HardState {
                    term: token,
                    vote: rng.below(5),
                    commit: rng.below(100),
                }),
                5 => put_share(
                    &keys[rng.below(3) as usize],
                    rng.below(4) as u32,
                    token as u8,
                ),
                6 => PersistOp::EraseShare {
                    key: keys[rng.below(3) as usize].clone(),
                    version: KeyVersion(rng.below(4) as u32),
                },
                7 => PersistOp::MarkConsumed {
                    kind: ["nonce", "presig"][rng.below(2) as usize].to_string(),
                    id: vec![rng.below(6) as u8],
                },
                8 => PersistOp::PutRecord {
                    table: ["tasks", "meta"][rng.below(2) as usize].to_string(),
                    key: vec![rng.below(5) as u8],
                    value: if rng.below(2) == 0 {
                        RecordValue::Public(vec![token as u8; rng.below(3) as usize])
                    } else {
                        RecordValue::Secret(SecretBytes::new(secret_bytes(token as u8)))
                    },
                },
                _ => PersistOp::DeleteRecord {
                    table: ["tasks", "meta"][rng.below(2) as usize].to_string(),
                    key: vec![rng.below(5) as u8],
                },
            };
            ops.push(op);
        }
        let b = batch(token, ops);
        let store = s.as_ref().expect("open");
        let got = store.apply(&b);
        let want = model.apply(&b);
        assert_eq!(
            got.is_ok(),
            want.is_ok(),
            "seed {seed:#x} token {token}: store {got:?} model {want:?} for {b:?}"
        );
        let r = model.restore().expect("model restore");
        last = r
            .entries
            .last()
            .map(|e| e.index)
            .unwrap_or(r.snapshot.as_ref().map_or(0, |x| x.index));
        snap = r.snapshot.as_ref().map_or(0, |x| x.index);
        if token % 10 == 0 {
            if token % 50 == 0 {
                drop(s.take()); // close before reopening (some media lock their files)
                s = Some(open(f, &place, &seal));
            }
            let store = s.as_ref().expect("open");
            assert_eq!(
                store.restore().expect("restore"),
                r,
                "seed {seed:#x} token {token}"
            );
            for k in &keys {
                assert_eq!(
                    store.share_versions(k).expect("v"),
                    model.share_versions(k).expect("v")
                );
                assert_eq!(
                    store.erased_versions(k).expect("e"),
                    model.erased_versions(k).expect("e")
                );
                for v in 0..4 {
                    let a = store.get_share(k, KeyVersion(v)).expect("get");
                    let m = model.get_share(k, KeyVersion(v)).expect("get");
                    assert_eq!(a, m, "share {k} v{v} at token {token}");
                }
            }
            for t in ["tasks", "meta"] {
                for rk in 0..5u8 {
                    assert_eq!(
                        store.get_record(t, &[rk]).expect("get"),
                        model.get_record(t, &[rk]).expect("get")
                    );
                }
            }
        }
    }
}

fn sealed_at_rest<F: Factory>(f: &F) {
    let place = f.new_place();
    let seal = sealer();
    let s = open(f, &place, &seal);
    let k = key("at-rest");
    let share = secret_bytes(77);
    let record = secret_bytes(78);
    let public_marker = b"PUBLIC-MARKER-7f3a9c1e-visible-on-disk".to_vec();
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                PersistOp::PutShare {
                    key: k.clone(),
                    version: KeyVersion(3),
                    share: SecretBytes::new(share.clone()),
                },
                PersistOp::PutRecord {
                    table: "presignatures".into(),
                    key: b"p".to_vec(),
                    value: RecordValue::Secret(SecretBytes::new(record.clone())),
                },
                PersistOp::PutRecord {
                    table: "tasks".into(),
                    key: b"marker".to_vec(),
                    value: RecordValue::Public(public_marker.clone()),
                },
            ],
        ),
    );
    // Overwrite and erase one more share, so old versions are on the medium too.
    apply_ok(&s, &batch(2, vec![put_share(&k, 4, 79)]));
    apply_ok(
        &s,
        &batch(
            3,
            vec![PersistOp::EraseShare {
                key: k.clone(),
                version: KeyVersion(4),
            }],
        ),
    );
    drop(s);
    let raw = f.raw_bytes(&place);
    assert!(
        contains(&raw, &public_marker),
        "the scan must see public data (else it proves nothing)"
    );
    for secret in [&share, &record, &secret_bytes(79)] {
        assert!(!contains(&raw, secret), "plaintext secret found at rest");
        assert!(
            !contains(&raw, &secret[..16]),
            "a 16-byte piece of a secret found at rest"
        );
        assert!(
            !contains(&f.logs(), &secret[..16]),
            "secret found in the medium's logs"
        );
    }
    // And the stored share is a sealed blob that opens only through the store.
    let blob = f
        .sealed_share(&place, &k, KeyVersion(3))
        .expect("stored blob");
    assert!(blob.len() >= share.len() + 16);
}

fn check_integrity_error(err: &StoreError, k: &KeyId, v: KeyVersion) {
    assert!(err.is_integrity(), "expected an integrity error, got {err}");
    match err {
        StoreError::Integrity {
            item: SealedItem::Share { key, version },
        } => {
            assert_eq!((key, *version), (k, v));
        }
        other => panic!("wrong item: {other}"),
    }
    let msg = err.to_string();
    let want = format!(
        "sealed share for key {k} v{} failed authentication: wrong sealing key or corrupted data",
        v.0
    );
    assert_eq!(msg, want);
}

fn bit_flip_is_integrity_error<F: Factory>(f: &F) {
    let place = f.new_place();
    let seal = sealer();
    let s = open(f, &place, &seal);
    let k = key("flip");
    apply_ok(
        &s,
        &batch(1, vec![put_share(&k, 3, 3), put_share(&k, 4, 4)]),
    );
    drop(s);
    let good = f.sealed_share(&place, &k, KeyVersion(3)).expect("stored");
    // Flip bits across the blob: format byte, nonce, ciphertext, tag.
    let n = good.len() * 8;
    for bit in [0, 9, 8 * 25 + 1, 8 * 30, n / 2, n - 1] {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        f.set_sealed_share(&place, &k, KeyVersion(3), bad);
        let s = open(f, &place, &seal);
        let err = s
            .get_share(&k, KeyVersion(3))
            .expect_err("bit flip must be detected");
        check_integrity_error(&err, &k, KeyVersion(3));
        // The rest of the store still works.
        assert!(s.get_share(&k, KeyVersion(4)).expect("v4").is_some());
        s.restore().expect("restore is unaffected");
        drop(s);
    }
    // Truncated, empty, and the blob of another version (swapped) fail likewise.
    let other = f.sealed_share(&place, &k, KeyVersion(4)).expect("stored");
    for bad in [
        good[..good.len() - 1].to_vec(),
        vec![],
        good[..10].to_vec(),
        other,
    ] {
        f.set_sealed_share(&place, &k, KeyVersion(3), bad);
        let s = open(f, &place, &seal);
        let err = s
            .get_share(&k, KeyVersion(3))
            .expect_err("must be detected");
        check_integrity_error(&err, &k, KeyVersion(3));
        drop(s);
    }
    // Put the good blob back: it opens again.
    f.set_sealed_share(&place, &k, KeyVersion(3), good);
    let s = open(f, &place, &seal);
    assert_eq!(
        s.get_share(&k, KeyVersion(3))
            .expect("restored blob")
            .map(|x| x.expose().to_vec()),
        Some(secret_bytes(3))
    );
}

fn wrong_sealing_key_or_node<F: Factory>(f: &F) {
    let place = f.new_place();
    let s = open(f, &place, &sealer());
    let k = key("wrong-key");
    apply_ok(
        &s,
        &batch(
            1,
            vec![
                put_share(&k, 7, 7),
                PersistOp::PutRecord {
                    table: "presignatures".into(),
                    key: vec![1, 2],
                    value: RecordValue::Secret(SecretBytes::new(secret_bytes(8))),
                },
            ],
        ),
    );
    drop(s);
    let s = open(f, &place, &sealer()); // another random key
    let err = s.get_share(&k, KeyVersion(7)).expect_err("wrong key");
    check_integrity_error(&err, &k, KeyVersion(7));
    let err = s
        .get_record("presignatures", &[1, 2])
        .expect_err("wrong key");
    assert!(err.is_integrity(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("presignatures") && msg.contains("0102"),
        "{msg}"
    );
    drop(s);
    // Same key, another node id: the associated data differs, so it fails too.
    let seal = sealer();
    let place = f.new_place();
    let s = f.open(&place, "node-a", seal.clone()).expect("open");
    apply_ok(&s, &batch(1, vec![put_share(&k, 1, 1)]));
    drop(s);
    let s = f.open(&place, "node-b", seal).expect("open");
    let err = s.get_share(&k, KeyVersion(1)).expect_err("other node");
    check_integrity_error(&err, &k, KeyVersion(1));
}

fn secrets_not_in_debug_or_errors<F: Factory>(f: &F) {
    let place = f.new_place();
    let seal = sealer();
    let s = open(f, &place, &seal);
    let k = key("debug");
    let share = secret_bytes(99);
    let b = batch(
        1,
        vec![
            put_share(&k, 1, 99),
            PersistOp::PutRecord {
                table: "p".into(),
                key: b"x".to_vec(),
                value: RecordValue::Secret(SecretBytes::new(share.clone())),
            },
        ],
    );
    apply_ok(&s, &b);
    let got = s
        .get_share(&k, KeyVersion(1))
        .expect("get")
        .expect("present");
    let cache = crate::ShareCache::new(4, 4096);
    let cached = cache.get_or_load(&s, &k, KeyVersion(1)).expect("load");
    let shown = [
        format!("{s:?}"),
        format!("{s:#?}"),
        format!("{b:?}"),
        format!("{got:?}"),
        format!("{cached:?}"),
        format!("{cache:?}"),
        format!("{seal:?}"),
        format!("{:?}", s.restore().expect("restore")),
        format!("{:?}", s.get_record("p", b"x").expect("get")),
    ];
    let dec = format!("{:?}", &share[..8]);
    let dec = &dec[1..dec.len() - 1]; // "a, b, c" without brackets
    let hex_piece = crate::hex(&share[..8]);
    for text in &shown {
        assert!(!text.contains(dec), "secret bytes in Debug output: {text}");
        assert!(
            !text.contains(&hex_piece),
            "secret bytes in Debug output (hex): {text}"
        );
    }
    drop(s);
    // Error messages of a corrupted share name key and version only.
    let mut blob = f.sealed_share(&place, &k, KeyVersion(1)).expect("stored");
    let last = blob.len() - 1;
    blob[last] ^= 1;
    f.set_sealed_share(&place, &k, KeyVersion(1), blob);
    let s = open(f, &place, &seal);
    let err = s.get_share(&k, KeyVersion(1)).expect_err("corrupted");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(dec) && !text.contains(&hex_piece), "{text}");
    }
    let logs = f.logs();
    assert!(
        !contains(&logs, &share[..16]),
        "secret in the medium's logs"
    );
}
