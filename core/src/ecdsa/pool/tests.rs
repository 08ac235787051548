//! Presignature pool tests: the stored encoding, the pool's refusals, and the crash property
//! (no presignature's partial signature ever leaves a node twice).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use cggmp24::supported_curves::Secp256k1;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use zeroize::Zeroizing;

use super::super::tests::{ids, keys, p, presign, sign, verify_everywhere, ROUND};
use super::*;
use crate::session::{Session, SessionOutput};

/// One real 2-of-3 presigning run on secp256k1 (a few seconds), shared by the tests of this
/// binary: the group key, and the stored bytes of the presignatures of participants 1 and 2.
struct Fixture {
    public_key: Vec<u8>,
    p1: Zeroizing<Vec<u8>>,
    p2: Zeroizing<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys = keys::<Secp256k1>(3, 2, 81);
        let mut presigs = presign(&keys, &ids(&[1, 2]), 81);
        Fixture {
            public_key: keys[0].public_key(),
            p1: encode_presignature(&presigs.remove(&p(1)).unwrap()),
            p2: encode_presignature(&presigs.remove(&p(2)).unwrap()),
        }
    })
}

fn presig(bytes: &[u8]) -> EcdsaPresignature<Secp256k1> {
    decode_presignature::<Secp256k1>(bytes).unwrap()
}

fn config(message: &[u8]) -> EcdsaSignConfig {
    EcdsaSignConfig {
        message: message.to_vec(),
        round_timeout: ROUND,
    }
}

fn id(n: u64) -> PresignatureId {
    PresignatureId::of_run(&n.to_be_bytes())
}

#[test]
fn stored_presignatures_round_trip_and_still_sign() {
    let f = fixture();
    let a = presig(&f.p1);
    let b = presig(&f.p2);
    assert_eq!(encode_presignature(&a).as_slice(), f.p1.as_slice());
    assert_eq!(a.signers(), [p(1), p(2)]);
    assert_eq!(a.nonce_point(), b.nonce_point());
    let keys = keys::<Secp256k1>(3, 2, 81);
    let message = b"restored presignatures sign";
    let sig = sign(BTreeMap::from([(p(1), a), (p(2), b)]), message);
    verify_everywhere(&keys[0], message, &sig);
    // Debug never shows the secret scalars.
    let shown = format!("{:?}", presig(&f.p1));
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn hostile_stored_bytes_are_refused_without_panicking() {
    let f = fixture();
    let good = f.p1.as_slice();
    // Every truncation fails; so do trailing bytes.
    for cut in 0..good.len() {
        assert!(
            decode_presignature::<Secp256k1>(&good[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let mut longer = good.to_vec();
    longer.push(0);
    assert!(decode_presignature::<Secp256k1>(&longer).is_err());
    // Wrong curve.
    assert!(decode_presignature::<cggmp24::supported_curves::Secp256r1>(good).is_err());
    // Every single-byte change either fails to decode or decodes to something that still
    // re-encodes canonically (a changed secret scalar is indistinguishable, and harmless here:
    // it only breaks this signer's own partial signature, which the others then blame).
    for i in 0..good.len() {
        let mut b = good.to_vec();
        b[i] ^= 0x41;
        if let Ok(x) = decode_presignature::<Secp256k1>(&b) {
            assert_eq!(encode_presignature(&x).as_slice(), b.as_slice(), "byte {i}");
        }
    }
}

#[test]
fn the_pool_refuses_what_it_must_and_changes_nothing() {
    let f = fixture();
    let mut pool = PresignaturePool::<Secp256k1>::new(p(1), f.public_key.clone(), 2);
    let signers = ids(&[1, 2]);
    assert_eq!(pool.wanted(&signers), 2);
    // Another participant's presignature, another key.
    assert_eq!(
        pool.insert(id(0), presig(&f.p2)).unwrap_err(),
        PoolError::WrongKey
    );
    let mut other = PresignaturePool::<Secp256k1>::new(p(1), vec![2; 33], 2);
    assert_eq!(
        other.insert(id(0), presig(&f.p1)).unwrap_err(),
        PoolError::WrongKey
    );
    // Not usable until stored.
    assert!(matches!(
        pool.insert(id(1), presig(&f.p1)),
        Ok(PoolWrite::Store { .. })
    ));
    assert_eq!(pool.wanted(&signers), 1);
    assert_eq!(pool.next_for(&signers), None);
    assert_eq!(
        pool.begin_spend(id(1), config(b"m"), Instant::ZERO)
            .unwrap_err(),
        PoolError::NotReady(id(1))
    );
    assert_eq!(
        pool.insert(id(1), presig(&f.p1)).unwrap_err(),
        PoolError::Duplicate(id(1))
    );
    pool.stored(id(1)).unwrap();
    assert_eq!(
        pool.stored(id(1)).unwrap_err(),
        PoolError::UnexpectedAck(id(1))
    );
    assert_eq!(pool.next_for(&signers), Some(id(1)));
    assert_eq!(pool.next_for(&ids(&[1, 3])), None);
    // Too large a message: refused, and the presignature stays usable.
    let huge = EcdsaSignConfig {
        message: vec![0; super::super::online::MAX_MESSAGE_BYTES + 1],
        round_timeout: ROUND,
    };
    assert!(matches!(
        pool.begin_spend(id(1), huge, Instant::ZERO),
        Err(PoolError::Config(_))
    ));
    assert_eq!(pool.ready_len(), 1);
    // Spend it: nothing to send before the mark is durable; then it is gone for good.
    assert!(matches!(
        pool.begin_spend(id(1), config(b"m"), Instant::ZERO),
        Ok(PoolWrite::Consume { .. })
    ));
    assert_eq!(
        pool.begin_spend(id(1), config(b"m2"), Instant::ZERO)
            .unwrap_err(),
        PoolError::NotReady(id(1))
    );
    let mut s = pool.consumed(id(1)).unwrap();
    assert!(matches!(s.poll_output(), Some(SessionOutput::Send { .. })));
    assert_eq!(
        pool.consumed(id(1)).unwrap_err(),
        PoolError::UnexpectedAck(id(1))
    );
    assert_eq!(
        pool.begin_spend(id(1), config(b"m2"), Instant::ZERO)
            .unwrap_err(),
        PoolError::Spent(id(1))
    );
    assert_eq!(
        pool.insert(id(1), presig(&f.p1)).unwrap_err(),
        PoolError::Spent(id(1))
    );
    // Restoring from disk: spent ids never come back, garbage is reported and skipped.
    let (restored, skipped) = PresignaturePool::<Secp256k1>::restore(
        p(1),
        f.public_key.clone(),
        2,
        vec![
            (id(1), f.p1.clone()),
            (id(2), f.p1.clone()),
            (id(3), Zeroizing::new(vec![1, 2, 3])),
            (id(4), f.p2.clone()),
        ],
        BTreeSet::from([id(1)]),
    );
    assert_eq!(restored.ready_len(), 1);
    assert_eq!(restored.next_for(&signers), Some(id(2)));
    assert_eq!(
        skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![id(3), id(4)]
    );
}

/// What the crash harness can do next.
#[derive(Clone, Debug)]
enum Step {
    /// A presigning run finished: file a new presignature.
    Insert,
    /// The disk completes the oldest pending write and the pool hears of it.
    Flush,
    /// A signing request for a presignature: a usable one (`pick` among them) or, to model
    /// a retried or replayed request, any id ever filed.
    Spend { pick: usize, any: bool, message: u8 },
    /// The node hands a signing session's queued messages to the network.
    Send { pick: usize },
    /// The process dies: `landed` of the pending writes reached the disk anyway (a write can be
    /// durable before its acknowledgement is seen), the rest are lost; then it restarts.
    Crash { landed: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Insert),
        4 => Just(Step::Flush),
        4 => (any::<usize>(), any::<bool>(), any::<u8>())
            .prop_map(|(pick, any, message)| Step::Spend { pick, any, message }),
        4 => any::<usize>().prop_map(|pick| Step::Send { pick }),
        1 => (0usize..4).prop_map(|landed| Step::Crash { landed }),
    ]
}

/// The node's disk: stored presignatures and spent ids, written atomically per write.
#[derive(Default)]
struct Disk {
    stored: BTreeMap<PresignatureId, Zeroizing<Vec<u8>>>,
    spent: BTreeSet<PresignatureId>,
}

impl Disk {
    fn apply(&mut self, w: &PoolWrite) {
        match w {
            PoolWrite::Store { id, bytes } => {
                self.stored.insert(*id, bytes.clone());
            }
            PoolWrite::Consume { id } => {
                self.stored.remove(id);
                self.spent.insert(*id);
            }
        }
    }
}

/// Runs `steps` against one node's pool; returns, per presignature, the messages for which one
/// of its partial signatures left the node.
fn run(steps: &[Step], order: SpendOrder) -> BTreeMap<PresignatureId, Vec<u8>> {
    let f = fixture();
    let public_key = f.public_key.clone();
    let fresh = |pool: PresignaturePool<Secp256k1>| pool.with_order(order);
    let mut pool = fresh(PresignaturePool::new(p(1), public_key.clone(), 4));
    let mut disk = Disk::default();
    let mut pending: VecDeque<PoolWrite> = VecDeque::new();
    let mut live: Vec<(PresignatureId, u8, EcdsaSign<Secp256k1>)> = Vec::new();
    let mut reserved: Vec<(PresignatureId, u8)> = Vec::new();
    let mut filed: Vec<PresignatureId> = Vec::new();
    let mut left: BTreeMap<PresignatureId, Vec<u8>> = BTreeMap::new();
    let mut next = 0u64;
    for s in steps {
        match s {
            Step::Insert => {
                let i = id(next);
                next += 1;
                let w = pool.insert(i, presig(&f.p1)).unwrap();
                filed.push(i);
                pending.push_back(w);
            }
            Step::Flush => {
                let Some(w) = pending.pop_front() else {
                    continue;
                };
                disk.apply(&w);
                match w {
                    PoolWrite::Store { id, .. } => pool.stored(id).unwrap(),
                    PoolWrite::Consume { id } => {
                        let s = pool.consumed(id).unwrap();
                        let m = reserved.iter().find(|(r, _)| *r == id).unwrap().1;
                        reserved.retain(|(r, _)| *r != id);
                        live.push((id, m, s));
                    }
                }
            }
            Step::Spend { pick, any, message } => {
                let target = if *any && !filed.is_empty() {
                    filed[pick % filed.len()]
                } else {
                    let ready: Vec<PresignatureId> = pool.ready.keys().copied().collect();
                    if ready.is_empty() {
                        continue;
                    }
                    ready[pick % ready.len()]
                };
                if let Ok(w) = pool.begin_spend(target, config(&[*message]), Instant::ZERO) {
                    reserved.push((target, *message));
                    pending.push_back(w);
                }
            }
            Step::Send { pick } => {
                // Whatever sessions exist: the acknowledged ones, and (only in the buggy early
                // order) those the pool started before the mark was durable.
                let mut sent: Option<(PresignatureId, u8)> = None;
                let early: Vec<(PresignatureId, u8)> = reserved.clone();
                let total = live.len() + early.len();
                if total == 0 {
                    continue;
                }
                let k = pick % total;
                if k < live.len() {
                    let (i, m, s) = &mut live[k];
                    while let Some(o) = s.poll_output() {
                        if matches!(o, SessionOutput::Send { .. }) {
                            sent = Some((*i, *m));
                        }
                    }
                } else {
                    let (i, m) = early[k - live.len()];
                    if let Some(s) = pool.started_mut(&i) {
                        while let Some(o) = s.poll_output() {
                            if matches!(o, SessionOutput::Send { .. }) {
                                sent = Some((i, m));
                            }
                        }
                    }
                }
                if let Some((i, m)) = sent {
                    left.entry(i).or_default().push(m);
                }
            }
            Step::Crash { landed } => {
                for w in pending.iter().take(*landed) {
                    disk.apply(w);
                }
                pending.clear();
                live.clear();
                reserved.clear();
                let (restored, skipped) = PresignaturePool::restore(
                    p(1),
                    public_key.clone(),
                    4,
                    disk.stored.iter().map(|(k, v)| (*k, v.clone())),
                    disk.spent.clone(),
                );
                assert!(skipped.is_empty());
                pool = fresh(restored);
            }
        }
    }
    left
}

fn reused(left: &BTreeMap<PresignatureId, Vec<u8>>) -> Option<(PresignatureId, Vec<u8>)> {
    left.iter()
        .find(|(_, ms)| ms.len() > 1)
        .map(|(i, ms)| (*i, ms.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Crashes at random points (after the mark, before the send, after the send, with any
    /// number of unacknowledged writes landing) never let a presignature's partial signature
    /// leave the node twice.
    #[test]
    fn a_presignature_never_leaves_twice_across_crashes(steps in prop::collection::vec(step(), 1..60)) {
        let left = run(&steps, SpendOrder::AfterDurableMark);
        prop_assert_eq!(reused(&left), None);
    }
}

/// The property test catches the bug it guards against: a pool that creates the partial
/// signature before the consumed mark is durable reuses a presignature after some crash. The
/// sequence is a minimal one (spend, send, crash before the write lands, spend again, flush,
/// send); random search finds such sequences too.
#[test]
fn the_property_catches_a_pool_that_sends_before_the_mark_is_durable() {
    let steps = [
        Step::Insert,
        Step::Flush,
        Step::Spend {
            pick: 0,
            any: false,
            message: 1,
        },
        Step::Send { pick: 0 },
        Step::Crash { landed: 0 },
        Step::Spend {
            pick: 0,
            any: false,
            message: 2,
        },
        Step::Flush,
        Step::Send { pick: 0 },
    ];
    let left = run(&steps, SpendOrder::BeforeDurableMark);
    assert_eq!(reused(&left), Some((id(0), vec![1, 2])));
    // The right order, same steps: the first send has nothing to send (the mark never became
    // durable), so the presignature leaves once, for the second request.
    let left = run(&steps, SpendOrder::AfterDurableMark);
    assert_eq!(reused(&left), None);
    assert_eq!(left.get(&id(0)), Some(&vec![2]));

    // Random search over the same step distribution finds a reuse with the buggy order.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 1..60);
    let found = (0..2000).any(|_| {
        let steps = strategy.new_tree(&mut runner).unwrap().current();
        reused(&run(&steps, SpendOrder::BeforeDurableMark)).is_some()
    });
    assert!(found, "random crash sequences never exposed the early send");
}
