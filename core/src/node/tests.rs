//! In-memory multi-node tests of the node state machine: a deterministic network with latency,
//! an in-memory disk per node, virtual time.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use super::*;
use crate::persist::{PersistOp, RestoredState};
use crate::scheme::Scheme;
use crate::transcript::Transcript;

mod replay;
mod request_ids;

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

/// What a node's disk holds (only what the node acknowledged as durable).
#[derive(Default, Clone)]
struct Disk {
    hard_state: Option<HardState>,
    entries: BTreeMap<u64, RaftEntry>,
    shares: BTreeMap<(KeyId, KeyVersion), SecretBytes>,
    records: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    consumed: BTreeSet<(String, Vec<u8>)>,
}

impl Disk {
    fn apply(&mut self, batch: &PersistBatch) {
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
                PersistOp::InstallSnapshot(_) => {}
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
                    self.consumed.insert((kind.clone(), id.clone()));
                }
                PersistOp::PutRecord { table, key, value } => {
                    if let RecordValue::Public(v) = value {
                        self.records
                            .entry(table.clone())
                            .or_default()
                            .insert(key.clone(), v.clone());
                    }
                }
                PersistOp::DeleteRecord { table, key } => {
                    if let Some(t) = self.records.get_mut(table) {
                        t.remove(key);
                    }
                }
            }
        }
    }

    fn restored(&self) -> RestoredState {
        RestoredState {
            hard_state: self.hard_state,
            snapshot: None,
            entries: self.entries.values().cloned().collect(),
            records: self.records.clone(),
            consumed: self
                .consumed
                .iter()
                .fold(BTreeMap::new(), |mut m, (kind, id)| {
                    m.entry(kind.clone())
                        .or_insert_with(Vec::new)
                        .push(id.clone());
                    m
                }),
            ..RestoredState::default()
        }
    }
}

struct InFlight {
    at: Instant,
    seq: u64,
    from: ParticipantId,
    to: ParticipantId,
    bytes: Vec<u8>,
}

struct Cluster {
    nodes: BTreeMap<ParticipantId, Node>,
    disks: BTreeMap<ParticipantId, Disk>,
    configs: BTreeMap<ParticipantId, NodeConfig>,
    down: BTreeSet<ParticipantId>,
    queue: Vec<InFlight>,
    seq: u64,
    now: Instant,
    net_rng: CoreRng,
    seed: u64,
    events: BTreeMap<ParticipantId, Vec<Event>>,
    transcript: Transcript,
    /// Extra delay added to every message sent by these nodes (a slow node).
    slow: BTreeMap<ParticipantId, u64>,
    /// Answer `GeneratePrimes` with the committed fixture primes.
    fixture_primes: bool,
    /// How many fixture sets each node got so far (each set goes to one node, once).
    primes_given: BTreeMap<ParticipantId, usize>,
    /// The cluster's initial size: node `i`'s `k`-th set is `FIXTURE_PRIMES[i - 1 + k * n]`.
    initial_size: usize,
}

/// Eight sets of safe primes (public test fixtures, `core/tests/fixtures/ecdsa/`): p1 to p5 from
/// public seeds (the `ecdsa_fixtures` example), p6 to p8 from `openssl prime -generate -bits 1536
/// -safe`. A node uses each set for one aux run only, so a 3-node cluster has two sets per node
/// and a third for nodes 1 and 2.
const FIXTURE_PRIMES: [&str; 8] = [
    include_str!("../../tests/fixtures/ecdsa/primes-p1.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p2.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p3.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p4.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p5.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p6.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p7.json"),
    include_str!("../../tests/fixtures/ecdsa/primes-p8.json"),
];

impl Cluster {
    fn new(n: u16, seed: u64, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        Cluster::build(n, seed, tweak, false)
    }

    /// A cluster whose nodes get the committed fixture primes whenever they ask for primes.
    fn with_fixture_primes(n: u16, seed: u64, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        Cluster::build(n, seed, tweak, true)
    }

    fn build(n: u16, seed: u64, tweak: impl Fn(&mut NodeConfig), fixture_primes: bool) -> Cluster {
        let members: BTreeMap<_, _> = (1..=n).map(|i| (pid(i), NodeRole::Tee)).collect();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            configs: BTreeMap::new(),
            down: BTreeSet::new(),
            queue: Vec::new(),
            seq: 0,
            now: Instant::ZERO,
            net_rng: Seed::from_u64(seed).child(b"net", &[]).rng(),
            seed,
            events: BTreeMap::new(),
            transcript: Transcript::new(),
            slow: BTreeMap::new(),
            fixture_primes,
            primes_given: BTreeMap::new(),
            initial_size: usize::from(n),
        };
        for id in members.keys() {
            let mut cfg = NodeConfig::new(*id, members.clone());
            tweak(&mut cfg);
            c.configs.insert(*id, cfg);
            c.disks.insert(*id, Disk::default());
            c.start(*id);
        }
        c
    }

    fn start(&mut self, id: ParticipantId) {
        let disk = &self.disks[&id];
        let node_seed = Seed::from_u64(self.seed).child(b"node", &id.get().to_be_bytes());
        let node = Node::new(
            self.configs[&id].clone(),
            disk.restored(),
            disk.shares.clone(),
            node_seed,
            self.now,
        )
        .unwrap();
        self.nodes.insert(id, node);
        self.down.remove(&id);
        self.drain(id);
    }

    /// A new node that joins the running cluster (its config names the bootstrap members and
    /// `joining`); it does nothing until an `AddMember` for it commits.
    fn add_joining(&mut self, id: ParticipantId) {
        let bootstrap = self.configs.values().next().unwrap().members.clone();
        let mut cfg = NodeConfig::new(id, bootstrap);
        cfg.joining = true;
        self.configs.insert(id, cfg);
        self.disks.insert(id, Disk::default());
        self.start(id);
    }

    /// How many `LeaderTransfer` events any node emitted.
    fn transfers(&self) -> Vec<(ParticipantId, ParticipantId)> {
        self.events
            .values()
            .flatten()
            .filter_map(|e| match e {
                Event::LeaderTransfer { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// A crash: the node's memory and in-flight messages to it are gone; its disk stays.
    fn crash(&mut self, id: ParticipantId) {
        self.nodes.remove(&id);
        self.down.insert(id);
        self.queue.retain(|m| m.to != id);
    }

    fn drain(&mut self, id: ParticipantId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(out) = node.poll_output() else {
                return;
            };
            match out {
                Output::Transmit { to, bytes } => {
                    self.transcript.record(&format!("{id}->{to}"), &bytes);
                    let latency =
                        1 + self.net_rng.next_u64() % 5 + self.slow.get(&id).copied().unwrap_or(0);
                    self.seq += 1;
                    self.queue.push(InFlight {
                        at: Instant::from_millis(self.now.as_millis() + latency),
                        seq: self.seq,
                        from: id,
                        to,
                        bytes,
                    });
                }
                Output::Persist(batch) => {
                    // Secrets never enter the Raft log.
                    for op in &batch.ops {
                        if let PersistOp::AppendEntries(es) = op {
                            for e in es {
                                for (_, s) in self.disks[&id].shares.iter() {
                                    assert!(
                                        !contains(&e.bytes, s.expose()),
                                        "a share in the Raft log"
                                    );
                                }
                            }
                        }
                    }
                    if let Some(d) = self.disks.get_mut(&id) {
                        d.apply(&batch);
                    }
                    let token = batch.token;
                    let now = self.now;
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.handle_input(Input::Persisted { at: now, token })
                            .unwrap();
                    }
                }
                Output::Event(e) => {
                    self.transcript
                        .record(&format!("event {id}"), format!("{e:?}").as_bytes());
                    self.events.entry(id).or_default().push(e);
                }
                // Only the ECDSA tests supply primes (the committed fixtures: public, test-only).
                // Each set to one node, once; when they run out, the generation stays "under
                // way" (an aux run then fails for want of primes, as it would in production).
                Output::GeneratePrimes { count } => {
                    if self.fixture_primes {
                        let now = self.now;
                        for _ in 0..count {
                            let given = self.primes_given.entry(id).or_default();
                            let index = usize::from(id.get() - 1) + *given * self.initial_size;
                            let Some(json) = FIXTURE_PRIMES.get(index) else {
                                break;
                            };
                            *given += 1;
                            let primes = crate::ecdsa::SafePrimes::from_json(json).unwrap();
                            if let Some(node) = self.nodes.get_mut(&id) {
                                node.handle_input(Input::Primes {
                                    at: now,
                                    primes: Some(primes),
                                })
                                .unwrap();
                            }
                        }
                    }
                }
            }
        }
    }

    /// Advances to the next event (message delivery or node deadline) and handles it.
    fn step(&mut self) {
        let next_msg = self.queue.iter().map(|m| (m.at, m.seq)).min();
        let next_timer = self.nodes.values().map(|n| n.poll_timeout()).min();
        match (next_msg, next_timer) {
            (Some((at, seq)), timer) if timer.is_none_or(|t| at <= t) => {
                let i = self.queue.iter().position(|m| m.seq == seq).unwrap();
                let m = self.queue.swap_remove(i);
                self.now = self.now.max(at);
                if let Some(node) = self.nodes.get_mut(&m.to) {
                    node.handle_input(Input::Message {
                        at: self.now,
                        from: m.from,
                        bytes: &m.bytes,
                    })
                    .unwrap();
                    self.drain(m.to);
                }
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                let ids: Vec<_> = self.nodes.keys().copied().collect();
                for id in ids {
                    if self.nodes[&id].poll_timeout() <= self.now {
                        let now = self.now;
                        self.nodes
                            .get_mut(&id)
                            .unwrap()
                            .handle_input(Input::Timeout { now })
                            .unwrap();
                        self.drain(id);
                    }
                }
            }
            _ => {}
        }
    }

    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.now.as_millis() + limit_ms;
        while self.now.as_millis() < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn leader(&self) -> Option<ParticipantId> {
        let leaders: BTreeSet<_> = self.nodes.values().filter_map(|n| n.leader()).collect();
        let l = *leaders.iter().next()?;
        (leaders.len() == 1 && self.nodes.values().all(|n| n.leader() == Some(l))).then_some(l)
    }

    fn client(&mut self, at: ParticipantId, request_id: &str, request: Request) {
        let now = self.now;
        self.nodes
            .get_mut(&at)
            .unwrap()
            .handle_input(Input::Client {
                at: now,
                request_id: request_id.into(),
                request,
            })
            .unwrap();
        self.drain(at);
    }

    fn answers(&self, at: ParticipantId, request_id: &str) -> Vec<Result<Response, RequestError>> {
        self.events
            .get(&at)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                Event::Completed {
                    request_id: r,
                    result,
                } if r == request_id => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    fn await_answer(
        &mut self,
        at: ParticipantId,
        request_id: &str,
    ) -> Result<Response, RequestError> {
        let ok = self.run_until(120_000, |c| !c.answers(at, request_id).is_empty());
        assert!(ok, "no answer to {request_id} at {at:?}");
        self.answers(at, request_id)[0].clone()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn follower(c: &Cluster) -> ParticipantId {
    let l = c.leader().unwrap();
    *c.nodes.keys().find(|p| **p != l).unwrap()
}

fn verify(scheme: Scheme, public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    match scheme {
        Scheme::FrostEd25519 => keyshard_verifier::ed25519(public_key, message, sig),
        Scheme::FrostSecp256k1 => keyshard_verifier::frost_secp256k1(public_key, message, sig),
        Scheme::FrostP256 => keyshard_verifier::frost_p256(public_key, message, sig),
        Scheme::FrostSecp256k1Taproot => keyshard_verifier::bip340(public_key, message, sig),
        Scheme::EcdsaSecp256k1 => {
            keyshard_verifier::ecdsa_secp256k1_recoverable(public_key, message, sig)
        }
        Scheme::EcdsaP256 => keyshard_verifier::ecdsa_p256(public_key, message, sig),
    }
    .is_ok()
}

fn create(
    c: &mut Cluster,
    at: ParticipantId,
    rid: &str,
    key: &str,
    scheme: Scheme,
    t: u16,
) -> Result<Response, RequestError> {
    c.client(
        at,
        rid,
        Request::CreateKey {
            key: KeyId::new(key).unwrap(),
            scheme,
            threshold: t,
            participants: None,
        },
    );
    c.await_answer(at, rid)
}

#[test]
fn clusters_of_3_5_7_elect_create_keys_and_sign_from_any_node() {
    for (n, t) in [(3u16, 2u16), (5, 3), (7, 4)] {
        let mut c = Cluster::new(n, u64::from(n), |_| {});
        assert!(
            c.run_until(30_000, |c| c.leader().is_some()),
            "{n} nodes elect a leader"
        );
        let f = follower(&c);
        let scheme = Scheme::ALL[usize::from(n) % 4];
        let Ok(Response::KeyCreated {
            public_key,
            version,
            ..
        }) = create(&mut c, f, "create-1", "treasury", scheme, t)
        else {
            panic!("DKG failed on {n} nodes");
        };
        assert_eq!(version, KeyVersion(1));
        // One key, one public key package, on every node; every member holds a share.
        let key = KeyId::new("treasury").unwrap();
        assert!(c.run_until(10_000, |c| c
            .nodes
            .values()
            .all(|node| node.registry().keys.contains_key(&key))));
        let pkps: BTreeSet<_> = c
            .nodes
            .values()
            .map(|node| node.registry().keys[&key].public_key_package.clone())
            .collect();
        assert_eq!(pkps.len(), 1);
        for node in c.nodes.values() {
            assert_eq!(
                node.share_versions(&key),
                vec![KeyVersion(1)],
                "{:?}",
                node.id()
            );
        }
        // Sign (a batch) from every node in turn.
        let signers: Vec<_> = c.nodes.keys().copied().collect();
        for (i, at) in signers.into_iter().enumerate() {
            let messages = vec![format!("payment {i}").into_bytes(), b"second".to_vec()];
            let rid = format!("sign-{i}");
            c.client(
                at,
                &rid,
                Request::Sign {
                    key: key.clone(),
                    messages: messages.clone(),
                },
            );
            let Ok(Response::Signed { signatures, .. }) = c.await_answer(at, &rid) else {
                panic!("signing failed at {at:?}");
            };
            for (m, s) in messages.iter().zip(&signatures) {
                assert!(
                    verify(scheme, &public_key, m, s),
                    "{scheme} signature from {at:?}"
                );
            }
        }
    }
}

#[test]
fn a_repeated_request_id_gets_the_first_answer_and_runs_nothing_twice() {
    let mut c = Cluster::new(3, 11, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    let first = create(&mut c, f, "r1", "k1", Scheme::FrostEd25519, 2);
    let dkg_before: u64 = c.nodes.values().map(|n| n.stats.dkg_sessions).sum();
    // The same request again, at the same node and at another one.
    c.client(
        f,
        "r1",
        Request::CreateKey {
            key: KeyId::new("k1").unwrap(),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: None,
        },
    );
    let l = c.leader().unwrap();
    c.client(
        l,
        "r1",
        Request::CreateKey {
            key: KeyId::new("k1").unwrap(),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: None,
        },
    );
    c.run_until(5_000, |_| false);
    assert_eq!(c.answers(f, "r1"), vec![first.clone(), first.clone()]);
    assert_eq!(c.answers(l, "r1"), vec![first]);
    assert_eq!(
        c.nodes.values().map(|n| n.stats.dkg_sessions).sum::<u64>(),
        dkg_before
    );

    let key = KeyId::new("k1").unwrap();
    c.client(
        f,
        "s1",
        Request::Sign {
            key: key.clone(),
            messages: vec![b"m".to_vec()],
        },
    );
    let signed = c.await_answer(f, "s1");
    assert!(signed.is_ok());
    let sign_before: u64 = c.nodes.values().map(|n| n.stats.sign_sessions).sum();
    c.client(
        f,
        "s1",
        Request::Sign {
            key: key.clone(),
            messages: vec![b"m".to_vec()],
        },
    );
    c.run_until(5_000, |_| false);
    assert_eq!(c.answers(f, "s1"), vec![signed.clone(), signed]);
    assert_eq!(
        c.nodes.values().map(|n| n.stats.sign_sessions).sum::<u64>(),
        sign_before
    );

    // A different key id that exists: a clear error.
    c.client(
        f,
        "r2",
        Request::CreateKey {
            key: key.clone(),
            scheme: Scheme::FrostP256,
            threshold: 2,
            participants: None,
        },
    );
    assert_eq!(c.await_answer(f, "r2"), Err(RequestError::KeyExists(key)));
}

#[test]
fn with_a_limit_of_two_dkgs_the_third_waits_and_nothing_is_dropped() {
    let mut c = Cluster::new(3, 12, |cfg| cfg.limits.dkg = 2);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    for i in 0..3 {
        c.client(
            f,
            &format!("r{i}"),
            Request::CreateKey {
                key: KeyId::new(&format!("k{i}")).unwrap(),
                scheme: Scheme::FrostSecp256k1,
                threshold: 2,
                participants: None,
            },
        );
    }
    for i in 0..3 {
        assert!(c.await_answer(f, &format!("r{i}")).is_ok());
    }
    let max = c
        .nodes
        .values()
        .map(|n| n.stats.max_running_dkg)
        .max()
        .unwrap();
    assert_eq!(max, 2, "at most two DKGs ran at once, and two did");
}

#[test]
fn a_crashed_participant_is_blamed_and_the_dkg_retried_without_it() {
    let mut c = Cluster::new(4, 13, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let victim = *c.nodes.keys().find(|p| **p != l).unwrap();
    c.crash(victim);
    let r = create(&mut c, l, "r", "k", Scheme::FrostP256, 2);
    assert!(r.is_ok(), "{r:?}");
    let key = KeyId::new("k").unwrap();
    let record = &c.nodes[&l].registry().keys[&key];
    assert!(!record.participants.contains(&victim));
    assert_eq!(record.participants.len(), 3);
    let task = c.nodes[&l].registry().tasks.values().next().unwrap();
    assert_eq!(task.attempt, 2);
    assert!(task.excluded.contains(&victim));
}

#[test]
fn a_restarted_node_catches_up_and_signs_again() {
    let mut c = Cluster::new(3, 14, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    assert!(create(&mut c, l, "r", "k", Scheme::FrostEd25519, 3).is_ok());
    let f = follower(&c);
    c.crash(f);
    c.run_until(2_000, |_| false);
    c.start(f);
    let key = KeyId::new("k").unwrap();
    assert!(
        c.run_until(30_000, |c| c.nodes[&f].registry().keys.contains_key(&key)
            && c.leader().is_some())
    );
    // t = n = 3: the restarted node must sign for this to succeed.
    c.client(
        f,
        "s",
        Request::Sign {
            key,
            messages: vec![b"after restart".to_vec()],
        },
    );
    assert!(c.await_answer(f, "s").is_ok());
}

#[test]
fn bad_input_never_changes_state() {
    let mut c = Cluster::new(3, 15, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    let term = c.nodes[&f].term();
    let now = c.now;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 10],
        vec![1, 0, 0, 0, 5, 1, 2],
        vec![3; 1000],
    ];
    for g in &garbage {
        c.nodes
            .get_mut(&f)
            .unwrap()
            .handle_input(Input::Message {
                at: now,
                from: pid(1),
                bytes: g,
            })
            .unwrap();
        // From a stranger.
        c.nodes
            .get_mut(&f)
            .unwrap()
            .handle_input(Input::Message {
                at: now,
                from: pid(99),
                bytes: g,
            })
            .unwrap();
    }
    c.drain(f);
    assert_eq!(c.nodes[&f].term(), term);
    assert!(c.nodes[&f].stats.refused >= 2 * garbage.len() as u64);
    // Bad client requests get clear errors.
    c.client(
        f,
        "",
        Request::Sign {
            key: KeyId::new("k").unwrap(),
            messages: vec![],
        },
    );
    c.client(
        f,
        "x",
        Request::Sign {
            key: KeyId::new("k").unwrap(),
            messages: vec![],
        },
    );
    let bad = c.answers(f, "x");
    assert!(
        matches!(&bad[..], [Err(RequestError::BadRequest(m))] if m.contains("batch")),
        "{bad:?}"
    );
    c.client(
        f,
        "y",
        Request::Sign {
            key: KeyId::new("nope").unwrap(),
            messages: vec![b"m".to_vec()],
        },
    );
    assert_eq!(
        c.await_answer(f, "y"),
        Err(RequestError::NoSuchKey(KeyId::new("nope").unwrap()))
    );
}

#[test]
fn one_seed_replays_byte_identically_including_elections() {
    let run = |seed: u64| {
        let mut c = Cluster::new(5, seed, |_| {});
        assert!(c.run_until(30_000, |c| c.leader().is_some()));
        let f = follower(&c);
        assert!(create(&mut c, f, "r", "k", Scheme::FrostSecp256k1Taproot, 3).is_ok());
        c.client(
            f,
            "s",
            Request::Sign {
                key: KeyId::new("k").unwrap(),
                messages: vec![b"x".to_vec()],
            },
        );
        assert!(c.await_answer(f, "s").is_ok());
        (c.transcript.digest(), c.leader())
    };
    let a = run(21);
    assert_eq!(a, run(21));
    assert_ne!(a.0, run(22).0);
}

#[test]
fn signing_survives_a_crashed_signer_and_stops_picking_it() {
    let mut c = Cluster::new(5, 16, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    assert!(create(&mut c, l, "r", "k", Scheme::FrostSecp256k1, 3).is_ok());
    let victim = *c.nodes.keys().find(|p| **p != l).unwrap();
    c.crash(victim);
    let key = KeyId::new("k").unwrap();
    // Random picks reach the victim sooner or later; every request succeeds meanwhile.
    let mut i = 0u8;
    while !c.nodes[&l].is_excluded(victim) && i < 60 {
        i += 1;
        let rid = format!("s{i}");
        c.client(
            l,
            &rid,
            Request::Sign {
                key: key.clone(),
                messages: vec![vec![i]],
            },
        );
        assert!(
            c.await_answer(l, &rid).is_ok(),
            "signing {i} with a signer down"
        );
    }
    // The silent node was blamed by timeouts; after three it cools down and is not picked.
    assert!(
        c.nodes[&l].is_excluded(victim),
        "not excluded after {i} signings"
    );
    let sessions_before = c.nodes[&l].stats.sign_sessions;
    for i in 100..104u8 {
        let rid = format!("s{i}");
        c.client(
            l,
            &rid,
            Request::Sign {
                key: key.clone(),
                messages: vec![vec![i]],
            },
        );
        assert!(c.await_answer(l, &rid).is_ok());
    }
    assert_eq!(
        c.nodes[&l].stats.sign_sessions - sessions_before,
        4,
        "no retries: the dead node is not picked"
    );
}

fn reshare(
    c: &mut Cluster,
    at: ParticipantId,
    rid: &str,
    key: &str,
    new_threshold: Option<u16>,
    new_members: Option<BTreeSet<ParticipantId>>,
) -> Result<Response, RequestError> {
    c.client(
        at,
        rid,
        Request::Reshare {
            key: KeyId::new(key).unwrap(),
            new_threshold,
            new_members,
        },
    );
    c.await_answer(at, rid)
}

/// Signs at `at` and checks the signature with the independent verifier; returns the version.
fn sign_and_verify(
    c: &mut Cluster,
    at: ParticipantId,
    rid: &str,
    key: &str,
    scheme: Scheme,
    public_key: &[u8],
) -> KeyVersion {
    let message = format!("message {rid}").into_bytes();
    c.client(
        at,
        rid,
        Request::Sign {
            key: KeyId::new(key).unwrap(),
            messages: vec![message.clone()],
        },
    );
    let (signatures, version) = match c.await_answer(at, rid) {
        Ok(Response::Signed {
            signatures,
            version,
            ..
        }) => (signatures, version),
        other => {
            let failures: Vec<_> = c
                .events
                .values()
                .flatten()
                .filter(|e| {
                    matches!(
                        e,
                        Event::SessionFailed { .. } | Event::PeerMisbehaved { .. }
                    )
                })
                .collect();
            panic!("signing {rid} failed: {other:?}; {failures:?}")
        }
    };
    assert!(verify(scheme, public_key, &message, &signatures[0]));
    version
}

fn created_public_key(r: Result<Response, RequestError>) -> Vec<u8> {
    match r {
        Ok(Response::KeyCreated { public_key, .. }) => public_key,
        other => panic!("DKG failed: {other:?}"),
    }
}

/// Every live node has applied `version` of `key`.
fn all_at_version(c: &mut Cluster, key: &KeyId, version: KeyVersion) -> bool {
    c.run_until(30_000, |c| {
        c.nodes
            .values()
            .all(|n| n.registry().keys.get(key).map(|k| k.version) == Some(version))
    })
}

#[test]
fn reshare_three_of_five_to_three_of_four_drops_a_member_and_keeps_the_key() {
    let scheme = Scheme::FrostEd25519;
    let mut c = Cluster::new(5, 31, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let pk = created_public_key(create(&mut c, l, "c", "k", scheme, 3));
    let key = KeyId::new("k").unwrap();
    let dropped = *c.nodes.keys().find(|p| **p != l).unwrap();
    let new_members: BTreeSet<ParticipantId> =
        c.nodes.keys().copied().filter(|p| *p != dropped).collect();
    let at = follower(&c);
    let r = reshare(&mut c, at, "rs", "k", Some(3), Some(new_members.clone()));
    assert_eq!(
        r,
        Ok(Response::Reshared {
            key: key.clone(),
            version: KeyVersion(2),
            public_key: pk.clone(),
        })
    );
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    let records: BTreeSet<_> = c
        .nodes
        .values()
        .map(|n| n.registry().keys[&key].clone())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|k| (k.public_key_package, k.threshold, k.participants))
        .collect();
    assert_eq!(records.len(), 1, "one record on every node");
    let (pkp, t, members) = records.into_iter().next().unwrap();
    assert_eq!((t, &members), (3, &new_members));
    assert_eq!(sessions::group_public_key(scheme, &pkp), Some(pk.clone()));
    c.run_until(2_000, |_| false);
    for (id, node) in &c.nodes {
        let expected = if *id == dropped {
            vec![]
        } else {
            vec![KeyVersion(2)]
        };
        assert_eq!(node.share_versions(&key), expected, "memory of {id:?}");
        let on_disk: Vec<KeyVersion> = c.disks[id]
            .shares
            .keys()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(on_disk, expected, "disk of {id:?}: v1 erased everywhere");
    }
    for (i, at) in [l, dropped, at].into_iter().enumerate() {
        let v = sign_and_verify(&mut c, at, &format!("s{i}"), "k", scheme, &pk);
        assert_eq!(v, KeyVersion(2));
    }
}

#[test]
fn reshare_two_of_three_to_three_of_five_gives_every_node_a_share() {
    let scheme = Scheme::FrostSecp256k1;
    let mut c = Cluster::new(5, 32, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    c.client(
        f,
        "c",
        Request::CreateKey {
            key: KeyId::new("k").unwrap(),
            scheme,
            threshold: 2,
            participants: Some([pid(1), pid(2), pid(3)].into()),
        },
    );
    let pk = created_public_key(c.await_answer(f, "c"));
    let key = KeyId::new("k").unwrap();
    let all: BTreeSet<ParticipantId> = (1..=5).map(pid).collect();
    let r = reshare(&mut c, pid(5), "rs", "k", Some(3), Some(all.clone()));
    assert!(
        matches!(&r, Ok(Response::Reshared { version: KeyVersion(2), public_key, .. }) if *public_key == pk),
        "{r:?}"
    );
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    c.run_until(2_000, |_| false);
    for (id, node) in &c.nodes {
        assert_eq!(node.share_versions(&key), vec![KeyVersion(2)], "{id:?}");
        assert_eq!(node.registry().keys[&key].participants, all);
        assert_eq!(node.registry().keys[&key].threshold, 3);
    }
    assert_eq!(
        sign_and_verify(&mut c, pid(4), "s", "k", scheme, &pk),
        KeyVersion(2)
    );
}

#[test]
fn a_crashed_member_fails_its_reshare_clearly_and_v1_keeps_signing() {
    let scheme = Scheme::FrostP256;
    let mut c = Cluster::new(5, 33, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let pk = created_public_key(create(&mut c, l, "c", "k", scheme, 3));
    let key = KeyId::new("k").unwrap();
    let victim = *c.nodes.keys().find(|p| **p != l).unwrap();
    c.crash(victim);
    // A refresh keeps every member, the crashed one included: it cannot finish.
    let r = reshare(&mut c, l, "refresh", "k", None, None);
    match &r {
        Err(RequestError::Failed { culprits, .. }) => {
            assert!(culprits.contains(&victim), "{r:?}")
        }
        other => {
            for (id, n) in &c.nodes {
                eprintln!("{id:?} tasks {:?}", n.registry().tasks);
                for e in c.events.get(id).into_iter().flatten() {
                    if matches!(
                        e,
                        Event::SessionFailed { .. } | Event::PeerMisbehaved { .. }
                    ) {
                        eprintln!("  {e:?}");
                    }
                }
            }
            panic!("expected a clear failure, got {other:?}")
        }
    }
    c.run_until(2_000, |_| false);
    for (id, node) in &c.nodes {
        assert_eq!(node.registry().keys[&key].version, KeyVersion(1));
        assert_eq!(node.share_versions(&key), vec![KeyVersion(1)], "{id:?}");
        assert!(
            c.disks[id].shares.keys().all(|(_, v)| *v == KeyVersion(1)),
            "no staged v2 left on {id:?}'s disk"
        );
    }
    assert_eq!(
        sign_and_verify(&mut c, l, "s1", "k", scheme, &pk),
        KeyVersion(1)
    );
    // Leaving the crashed node out of the new members works: it is dropped as a dealer inside
    // the run, and the other four deal.
    let others: BTreeSet<ParticipantId> =
        c.nodes.keys().copied().filter(|p| *p != victim).collect();
    let r = reshare(&mut c, l, "drop", "k", Some(3), Some(others.clone()));
    assert!(
        matches!(
            &r,
            Ok(Response::Reshared {
                version: KeyVersion(2),
                ..
            })
        ),
        "{r:?}"
    );
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    assert_eq!(
        sign_and_verify(&mut c, l, "s2", "k", scheme, &pk),
        KeyVersion(2)
    );
    // The crashed node comes back: its v1 is erased by the replayed activation.
    c.start(victim);
    assert!(c.run_until(30_000, |c| c.nodes[&victim]
        .registry()
        .keys
        .get(&key)
        .is_some_and(|k| k.version == KeyVersion(2))));
    c.run_until(2_000, |_| false);
    assert!(c.nodes[&victim].share_versions(&key).is_empty());
    assert!(c.disks[&victim].shares.is_empty());
}

#[test]
fn keys_rotate_every_interval_and_once_after_a_long_outage() {
    let scheme = Scheme::FrostEd25519;
    let mut c = Cluster::new(3, 34, |cfg| cfg.rotation_interval = Duration::from_secs(60));
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let pk = created_public_key(create(&mut c, l, "c", "k", scheme, 2));
    let key = KeyId::new("k").unwrap();
    let version = |c: &Cluster| {
        c.nodes
            .values()
            .map(|n| n.registry().keys[&key].version.0)
            .max()
            .unwrap()
    };
    // Nothing before the interval...
    c.run_until(50_000, |_| false);
    assert_eq!(version(&c), 1);
    // ...then about one refresh per interval.
    c.run_until(200_000, |_| false);
    let v = version(&c);
    assert!((4..=5).contains(&v), "{v} versions after about 250 s");
    for node in c.nodes.values() {
        let k = &node.registry().keys[&key];
        assert_eq!(
            sessions::group_public_key(scheme, &k.public_key_package),
            Some(pk.clone())
        );
    }
    // Everyone goes down for ten hours of virtual time.
    let ids: Vec<ParticipantId> = c.nodes.keys().copied().collect();
    for id in &ids {
        c.crash(*id);
    }
    c.queue.clear();
    c.now = Instant::from_millis(c.now.as_millis() + 10 * 3600 * 1000);
    for id in &ids {
        c.start(*id);
    }
    let before = version(&c);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    c.run_until(40_000, |_| false);
    assert_eq!(
        version(&c),
        before + 1,
        "one refresh after the outage, not 600"
    );
    let leader = c.leader().unwrap();
    let v = sign_and_verify(&mut c, leader, "s", "k", scheme, &pk);
    assert_eq!(v, KeyVersion(before + 1));
    for node in c.nodes.values() {
        assert_eq!(node.share_versions(&key), vec![KeyVersion(before + 1)]);
    }
}

#[test]
fn a_repeated_reshare_request_id_gets_the_first_answer_and_runs_once() {
    let mut c = Cluster::new(3, 35, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    let l = c.leader().unwrap();
    created_public_key(create(&mut c, f, "c", "k", Scheme::FrostEd25519, 2));
    let first = reshare(&mut c, f, "rs", "k", None, None);
    assert!(matches!(first, Ok(Response::Reshared { .. })), "{first:?}");
    let before: u64 = c.nodes.values().map(|n| n.stats.reshare_sessions).sum();
    c.client(
        f,
        "rs",
        Request::Reshare {
            key: KeyId::new("k").unwrap(),
            new_threshold: None,
            new_members: None,
        },
    );
    c.client(
        l,
        "rs",
        Request::Reshare {
            key: KeyId::new("k").unwrap(),
            new_threshold: None,
            new_members: None,
        },
    );
    c.run_until(5_000, |_| false);
    assert_eq!(c.answers(f, "rs"), vec![first.clone(), first.clone()]);
    assert_eq!(c.answers(l, "rs"), vec![first]);
    assert_eq!(
        c.nodes
            .values()
            .map(|n| n.stats.reshare_sessions)
            .sum::<u64>(),
        before
    );
    assert_eq!(
        c.nodes[&f].registry().keys[&KeyId::new("k").unwrap()].version,
        KeyVersion(2)
    );
    // A reshare of a key that does not exist: a clear error.
    assert_eq!(
        reshare(&mut c, f, "nope", "missing", None, None),
        Err(RequestError::NoSuchKey(KeyId::new("missing").unwrap()))
    );
}

#[test]
fn a_member_crashing_mid_reshare_leaves_v1_signing_and_restarts_clean() {
    let scheme = Scheme::FrostEd25519;
    let mut c = Cluster::new(5, 36, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let pk = created_public_key(create(&mut c, l, "c", "k", scheme, 3));
    let key = KeyId::new("k").unwrap();
    let victim = *c.nodes.keys().find(|p| **p != l).unwrap();
    c.client(
        l,
        "refresh",
        Request::Reshare {
            key: key.clone(),
            new_threshold: None,
            new_members: None,
        },
    );
    // Crash the victim once its reshare session has started (mid-protocol).
    assert!(c.run_until(30_000, |c| c.nodes[&victim].stats.reshare_sessions > 0));
    c.step();
    c.crash(victim);
    let r = c.await_answer(l, "refresh");
    assert!(
        matches!(&r, Err(RequestError::Failed { culprits, .. }) if culprits.contains(&victim)),
        "{r:?}"
    );
    assert_eq!(
        sign_and_verify(&mut c, l, "s1", "k", scheme, &pk),
        KeyVersion(1)
    );
    c.start(victim);
    assert!(c.run_until(30_000, |c| c.nodes[&victim]
        .registry()
        .tasks
        .values()
        .all(|t| !matches!(t.state, TaskState::Queued | TaskState::Running { .. }))
        && c.nodes[&victim].registry().tasks.len() == 2));
    c.run_until(2_000, |_| false);
    for (id, node) in &c.nodes {
        assert_eq!(node.registry().keys[&key].version, KeyVersion(1));
        assert_eq!(node.share_versions(&key), vec![KeyVersion(1)], "{id:?}");
        assert!(
            c.disks[id].shares.keys().all(|(_, v)| *v == KeyVersion(1)),
            "no staged v2 on {id:?}'s disk"
        );
    }
    // With the victim back, a refresh goes through.
    let r = reshare(&mut c, l, "refresh-2", "k", None, None);
    assert!(
        matches!(
            &r,
            Ok(Response::Reshared {
                version: KeyVersion(2),
                ..
            })
        ),
        "{r:?}"
    );
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    assert_eq!(
        sign_and_verify(&mut c, victim, "s2", "k", scheme, &pk),
        KeyVersion(2)
    );
}

#[test]
fn nodes_join_and_leave_through_raft_and_keys_follow_by_reshare() {
    let scheme = Scheme::FrostEd25519;
    let mut c = Cluster::new(3, 31, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let pk = created_public_key(create(&mut c, pid(2), "create", "k", scheme, 2));

    // Node 4 starts knowing only the bootstrap members, and joins when an admin adds it.
    c.add_joining(pid(4));
    c.client(
        pid(2),
        "add-4",
        Request::AddMember {
            id: pid(4),
            role: NodeRole::Mesh,
            address: "127.0.0.1:7004".into(),
        },
    );
    let Ok(Response::MembershipChanged { members }) = c.await_answer(pid(2), "add-4") else {
        panic!("adding node 4 failed");
    };
    assert_eq!(
        members.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4].map(pid)
    );
    let key = KeyId::new("k").unwrap();
    assert!(
        c.run_until(30_000, |c| {
            let n4 = c.nodes[&pid(4)].registry();
            n4.keys.contains_key(&key) && n4.members.len() == 4
        }),
        "node 4 caught up with the log"
    );
    // Adding it again is refused with a reason; the same request id gets the first answer.
    c.client(
        pid(3),
        "add-4-again",
        Request::AddMember {
            id: pid(4),
            role: NodeRole::Mesh,
            address: "127.0.0.1:7004".into(),
        },
    );
    assert!(matches!(
        c.await_answer(pid(3), "add-4-again"),
        Err(RequestError::BadRequest(why)) if why.contains("already a member")
    ));

    // The key moves to {2, 3, 4}; node 4 signs with its new share.
    let r = reshare(
        &mut c,
        pid(4),
        "to-234",
        "k",
        None,
        Some([2, 3, 4].map(pid).into()),
    );
    assert!(
        matches!(r, Ok(Response::Reshared { ref public_key, .. }) if *public_key == pk),
        "{r:?}"
    );
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    assert_eq!(
        sign_and_verify(&mut c, pid(4), "s4", "k", scheme, &pk),
        KeyVersion(2)
    );

    // Remove the leader itself: it hands leadership over first, then leaves.
    let old_leader = c.leader().unwrap();
    c.client(
        pid(4),
        "rm-leader",
        Request::RemoveMember { id: old_leader },
    );
    let answer = c.await_answer(pid(4), "rm-leader");
    let Ok(Response::MembershipChanged { members }) = answer else {
        panic!("removing the leader failed: {answer:?}");
    };
    assert!(!members.contains_key(&old_leader));
    assert!(c.run_until(30_000, |c| c
        .nodes
        .iter()
        .filter(|(id, _)| **id != old_leader)
        .all(|(_, n)| n.leader().is_some_and(|l| l != old_leader))));
    assert!(c.events[&old_leader].contains(&Event::Removed));
    // A removed node erased what it held (node 1 may still have held v1 before the reshare).
    assert!(c.nodes[&old_leader].share_versions(&key).is_empty());
    assert!(c.disks[&old_leader].shares.is_empty());
    let survivor = *members.keys().next().unwrap();
    let version = sign_and_verify(&mut c, survivor, "s-after", "k", scheme, &pk);
    assert_eq!(version, KeyVersion(2));

    // A removal that would leave a key with fewer holders than its threshold is refused.
    let create_3of3 = create(&mut c, survivor, "create-3of3", "k3", scheme, 3);
    assert!(create_3of3.is_ok(), "{create_3of3:?}");
    let target = *members.keys().find(|p| **p != survivor).unwrap();
    c.client(survivor, "rm-strand", Request::RemoveMember { id: target });
    assert!(matches!(
        c.await_answer(survivor, "rm-strand"),
        Err(RequestError::BadRequest(why)) if why.contains("reshare it away")
    ));
    assert!(c.nodes[&survivor].registry().members.contains_key(&target));
}

/// Scoring tuned so a test sees decisions within a few virtual minutes: probes every second,
/// a 5 s scoring window, 20 s of sustained lag, 60 s between transfers.
fn fast_monitor(cfg: &mut NodeConfig) {
    cfg.probe_interval = Duration::from_secs(1);
    cfg.probe_timeout = Duration::from_secs(3);
    cfg.scoring.window = Duration::from_secs(5);
    cfg.monitor = scoring::MonitorConfig {
        margin: 200_000,
        sustain: Duration::from_secs(20),
        min_interval: Duration::from_secs(60),
        min_tasks: 5,
    };
}

#[test]
fn a_slowed_leader_hands_over_exactly_once_to_a_healthy_node() {
    let mut c = Cluster::new(5, 41, fast_monitor);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let slow = c.leader().unwrap();
    c.run_until(5_000, |_| false);
    // Everything the leader sends now takes 300 ms longer.
    c.slow.insert(slow, 300);
    c.run_until(300_000, |_| false);
    let transfers = c.transfers();
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let (from, to) = transfers[0];
    assert_eq!(from, slow);
    assert_ne!(to, slow);
    assert_eq!(
        c.leader(),
        Some(to),
        "the healthy node leads and keeps leading"
    );
    // And the cluster still works under its new leader.
    let pk = created_public_key(create(&mut c, slow, "create", "k", Scheme::FrostP256, 3));
    sign_and_verify(&mut c, slow, "s", "k", Scheme::FrostP256, &pk);
}

#[test]
fn oscillating_slowness_within_the_sustain_window_causes_no_transfer() {
    let mut c = Cluster::new(5, 43, fast_monitor);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let leader = c.leader().unwrap();
    // Slow for 8 s, normal for 8 s, for five minutes: the lag never lasts the 20 s sustain.
    for _ in 0..19 {
        c.slow.insert(leader, 300);
        c.run_until(8_000, |_| false);
        c.slow.remove(&leader);
        c.run_until(8_000, |_| false);
    }
    assert!(c.transfers().is_empty(), "{:?}", c.transfers());
    assert_eq!(c.leader(), Some(leader));
}

/// A threshold above the participant count is the client's mistake, answered as a bad request
/// naming both numbers, not as a shortage of healthy nodes (which would invite retries); nothing
/// is proposed. It used to answer `NotEnoughParticipants`.
#[test]
fn a_threshold_above_the_participants_is_a_bad_request() {
    let mut c = Cluster::new(3, 12, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    assert_eq!(
        create(&mut c, f, "r1", "k1", Scheme::FrostEd25519, 4),
        Err(RequestError::BadRequest(
            "threshold 4 exceeds the 3 cluster members".into()
        ))
    );
    created_public_key(create(&mut c, f, "r2", "k2", Scheme::FrostEd25519, 2));
    let three: BTreeSet<ParticipantId> = c.nodes.keys().copied().collect();
    for (rid, threshold, members, expected) in [
        (
            "rs1",
            Some(3),
            Some(three.iter().copied().take(2).collect()),
            "2 new members cannot meet threshold 3",
        ),
        (
            "rs2",
            Some(4),
            None,
            "threshold 4 exceeds the 3 holders of the key",
        ),
    ] {
        assert_eq!(
            reshare(&mut c, f, rid, "k2", threshold, members),
            Err(RequestError::BadRequest(expected.into()))
        );
    }
    c.run_until(2_000, |_| false);
    assert!(c
        .nodes
        .values()
        .all(|n| !n.registry().requests.contains_key("r1")
            && !n.registry().requests.contains_key("rs1")
            && !n.registry().requests.contains_key("rs2")));
}

/// ECDSA keys end to end through the node state machine: DKG (FROST DKG on the curve + aux info
/// generated from the nodes' primes), signing from a follower (verified by RustCrypto with key
/// recovery), a second key on the other curve with the same members (fresh aux info: no Paillier
/// key serves two keys), a reshare to a new member set and threshold (fresh aux info for it), the
/// old version gone.
#[test]
fn ecdsa_keys_are_created_signed_and_reshared_by_the_cluster() {
    let mut c = Cluster::with_fixture_primes(3, 61, |cfg| {
        cfg.prime_pool_depth = 1;
        cfg.rotation_interval = Duration::ZERO;
        // The interactive protocol here; pooled presignatures have their own test below.
        cfg.presignature_depth = 0;
    });
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    assert!(c.nodes.values().all(|n| n.primes_ready() == 1));
    let f = follower(&c);
    let k1 = created_public_key(create(&mut c, f, "e1", "eth", Scheme::EcdsaSecp256k1, 2));
    assert_eq!(k1.len(), 33, "SEC1 compressed");
    // Each node spent its primes on the aux info, and got new ones from the driver.
    assert_eq!(
        sign_and_verify(&mut c, f, "s1", "eth", Scheme::EcdsaSecp256k1, &k1),
        KeyVersion(1)
    );
    // A batch: one signature per message, every one verified.
    let messages = vec![b"first".to_vec(), b"second".to_vec()];
    c.client(
        f,
        "s2",
        Request::Sign {
            key: KeyId::new("eth").unwrap(),
            messages: messages.clone(),
        },
    );
    let Ok(Response::Signed { signatures, .. }) = c.await_answer(f, "s2") else {
        panic!("batch signing failed");
    };
    assert_eq!(signatures.len(), 2);
    for (m, s) in messages.iter().zip(&signatures) {
        assert!(verify(Scheme::EcdsaSecp256k1, &k1, m, s));
        assert!(!verify(Scheme::EcdsaSecp256k1, &k1, b"other", s));
    }
    let dkgs_before: Vec<u64> = c.nodes.values().map(|n| n.stats.dkg_sessions).collect();
    let k2 = created_public_key(create(&mut c, f, "e2", "p256", Scheme::EcdsaP256, 2));
    // Same members, and still no modulus of the first key serves the second: every node took a
    // set of primes it never used (nodes 1 and 2 got their third set from the driver since).
    let eth = paillier_moduli(&c, &KeyId::new("eth").unwrap(), KeyVersion(1));
    let p256 = paillier_moduli(&c, &KeyId::new("p256").unwrap(), KeyVersion(1));
    for id in c.nodes.keys() {
        assert!(eth[id].iter().all(|n| !p256[id].contains(n)), "node {id}");
    }
    assert!(c
        .nodes
        .values()
        .zip(&dkgs_before)
        .all(|(n, before)| n.stats.dkg_sessions == before + 1));
    sign_and_verify(&mut c, f, "s3", "p256", Scheme::EcdsaP256, &k2);

    // Reshare the secp256k1 key from 2-of-3 to 2-of-2 on nodes 1 and 2: new aux info for them.
    let members: BTreeSet<ParticipantId> = [pid(1), pid(2)].into();
    let Ok(Response::Reshared {
        version,
        public_key,
        ..
    }) = reshare(&mut c, f, "r1", "eth", Some(2), Some(members.clone()))
    else {
        panic!("ECDSA reshare failed");
    };
    assert_eq!(version, KeyVersion(2));
    assert_eq!(public_key, k1, "resharing keeps the public key");
    let key = KeyId::new("eth").unwrap();
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    assert!(c.run_until(10_000, |c| c.nodes.iter().all(|(id, n)| n
        .share_versions(&key)
        == if members.contains(id) {
            vec![KeyVersion(2)]
        } else {
            vec![]
        })));
    assert_eq!(
        sign_and_verify(&mut c, f, "s4", "eth", Scheme::EcdsaSecp256k1, &k1),
        KeyVersion(2)
    );
}

/// The fingerprints of the Paillier moduli `N_1, N_2, ...` (member order) in each node's stored
/// share of `key` at `version`, by node.
fn paillier_moduli(
    c: &Cluster,
    key: &KeyId,
    version: KeyVersion,
) -> BTreeMap<ParticipantId, Vec<[u8; 32]>> {
    let scheme = c.nodes.values().next().unwrap().registry().keys[key]
        .scheme
        .ecdsa()
        .unwrap();
    c.disks
        .iter()
        .filter_map(|(id, d)| {
            let share = d.shares.get(&(key.clone(), version))?;
            Some((
                *id,
                ecdsa::paillier_fingerprints(scheme, share.expose()).unwrap(),
            ))
        })
        .collect()
}

/// Issue 16, item 4: an ECDSA refresh (same members, same threshold) gives every member a new
/// Paillier key. Each node takes a set of primes it never used, marks both moduli consumed on
/// its disk before the aux run sends anything, and refuses that set for good: fed again while
/// it runs, and after a restart (the same `primes_file` read at every boot). Before the fix, a
/// refresh reused the aux info of the unchanged member set: every `N_i` stayed.
#[test]
fn an_ecdsa_refresh_gives_every_member_a_new_paillier_key() {
    use crate::ecdsa::primes::{modulus_fingerprint, to_hex, CONSUMED_KIND};
    let mut c = Cluster::with_fixture_primes(3, 73, |cfg| {
        cfg.prime_pool_depth = 1;
        cfg.rotation_interval = Duration::ZERO;
        cfg.presignature_depth = 0;
    });
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    let pk = created_public_key(create(&mut c, f, "e1", "eth", Scheme::EcdsaSecp256k1, 2));
    let key = KeyId::new("eth").unwrap();
    let before = paillier_moduli(&c, &key, KeyVersion(1));
    assert_eq!(before.len(), 3);
    let Ok(Response::Reshared {
        version,
        public_key,
        ..
    }) = reshare(&mut c, f, "r1", "eth", None, None)
    else {
        panic!("ECDSA refresh failed");
    };
    assert_eq!((version, public_key), (KeyVersion(2), pk.clone()));
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    let after = paillier_moduli(&c, &key, KeyVersion(2));
    assert_eq!(after.len(), 3);
    let old: BTreeSet<[u8; 32]> = before.values().flatten().copied().collect();
    for (id, moduli) in &after {
        assert_eq!(
            moduli,
            &after[&pid(1)],
            "every member holds the same public aux data"
        );
        assert_eq!(moduli.len(), 3);
        for (j, n) in moduli.iter().enumerate() {
            assert!(
                !old.contains(n),
                "node {id}: N_{} survived the refresh",
                j + 1
            );
        }
    }
    // Each node's own moduli (its index = id - 1) are marked consumed on its disk, both versions.
    for (id, disk) in &c.disks {
        let i = usize::from(id.get() - 1);
        for n in [before[id][i], after[id][i]] {
            assert!(
                disk.consumed
                    .contains(&(CONSUMED_KIND.to_string(), n.to_vec())),
                "node {id}: its modulus is not marked consumed"
            );
        }
    }
    assert_eq!(
        sign_and_verify(&mut c, f, "s1", "eth", Scheme::EcdsaSecp256k1, &pk),
        KeyVersion(2)
    );

    // Node 1's sets so far: p1 (key creation), p4 (the refresh), p7 (ready, unused).
    let one = pid(1);
    let set = |i: usize| crate::ecdsa::SafePrimes::from_json(FIXTURE_PRIMES[i]).unwrap();
    let feed = |c: &mut Cluster, i: usize| -> Option<String> {
        let now = c.now;
        let node = c.nodes.get_mut(&one).unwrap();
        let ready = node.primes_ready();
        node.handle_input(Input::Primes {
            at: now,
            primes: Some(set(i)),
        })
        .unwrap();
        let accepted = node.primes_ready() == ready + 1;
        let seen = c.events.get(&one).map_or(0, Vec::len);
        c.drain(one);
        let refused = c.events[&one][seen..].iter().find_map(|e| match e {
            Event::PrimesRefused { fingerprint, .. } => Some(fingerprint.clone()),
            _ => None,
        });
        assert_eq!(accepted, refused.is_none());
        refused
    };
    let own = |moduli: &BTreeMap<ParticipantId, Vec<[u8; 32]>>| to_hex(&moduli[&one][0]);
    assert_eq!(feed(&mut c, 0), Some(own(&before)), "p1, fed again");
    assert_eq!(feed(&mut c, 3), Some(own(&after)), "p4, fed again");
    assert_eq!(
        own(&before),
        to_hex(&modulus_fingerprint(&{
            let [p, q, _, _] = set(0).0.into_primes();
            p * q
        }))
    );
    // A restart keeps only the disk: the marks suffice. p7 was only ever in the pool, never
    // used: it is taken again.
    c.crash(one);
    c.start(one);
    assert_eq!(c.nodes[&one].primes_ready(), 0);
    assert_eq!(feed(&mut c, 0), Some(own(&before)), "p1 after a restart");
    assert_eq!(feed(&mut c, 3), Some(own(&after)), "p4 after a restart");
    assert_eq!(feed(&mut c, 6), None, "p7 was never used");
}

/// Pooled ECDSA presignatures through the node: the leader has them made in the background, a
/// signing request spends one per message (each signer's spend mark durable before its partial
/// signature leaves), and a signer that lost its pool in a restart makes the run end at once and
/// the request succeed with the interactive protocol.
#[test]
fn ecdsa_signing_spends_pooled_presignatures_once() {
    let mut c = Cluster::with_fixture_primes(3, 67, |cfg| {
        cfg.prime_pool_depth = 1;
        cfg.rotation_interval = Duration::ZERO;
        cfg.presignature_depth = 2;
    });
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let f = follower(&c);
    let pk = created_public_key(create(&mut c, f, "e1", "eth", Scheme::EcdsaSecp256k1, 2));
    let key = KeyId::new("eth").unwrap();
    let l = c.leader().unwrap();
    assert!(c.run_until(300_000, |c| c.nodes[&l].presignatures_ready(&key) == 2));
    let made: u64 = c.nodes.values().map(|n| n.presign_stats.made).sum();
    assert_eq!(made, 4, "two presignatures, two signers each");

    // A batch of two spends two presignatures of one signer set: one online round.
    let messages = vec![b"pay 1".to_vec(), b"pay 2".to_vec()];
    c.client(
        f,
        "s1",
        Request::Sign {
            key: key.clone(),
            messages: messages.clone(),
        },
    );
    let Ok(Response::Signed { signatures, .. }) = c.await_answer(f, "s1") else {
        panic!("presigned batch signing failed");
    };
    for (m, s) in messages.iter().zip(&signatures) {
        assert!(verify(Scheme::EcdsaSecp256k1, &pk, m, s));
    }
    let spent: u64 = c.nodes.values().map(|n| n.presign_stats.spent).sum();
    assert_eq!(spent, 4, "two messages, two signers, one presignature each");
    // Every spend is marked on the signer's disk (the mark was durable before the partial
    // signature left; a later start of the same presignature is refused by the pool).
    for (id, n) in &c.nodes {
        let marks = c.disks[id]
            .consumed
            .iter()
            .filter(|(kind, _)| kind == presign::CONSUMED_KIND)
            .count() as u64;
        assert_eq!(marks, n.presign_stats.spent, "node {id}");
    }
    assert!(c.nodes.values().all(|n| n.presign_stats.missing == 0));

    // Refilled in the background; then a signer of the oldest presignature restarts and loses
    // its pool: the presigned attempt ends at once and the retry signs interactively.
    assert!(c.run_until(300_000, |c| c.nodes[&l].presignatures_ready(&key) == 2));
    let victim = *c.nodes[&l]
        .ready_signer_sets(&key)
        .first()
        .unwrap()
        .iter()
        .find(|p| **p != l)
        .unwrap();
    c.crash(victim);
    c.start(victim);
    assert!(c.run_until(10_000, |c| c.nodes[&victim].leader() == Some(l)
        && c.nodes[&victim].registry().keys.contains_key(&key)));
    let message = b"after a restart".to_vec();
    c.client(
        f,
        "s2",
        Request::Sign {
            key: key.clone(),
            messages: vec![message.clone()],
        },
    );
    let Ok(Response::Signed { signatures, .. }) = c.await_answer(f, "s2") else {
        panic!("signing after a pool loss failed");
    };
    assert!(verify(
        Scheme::EcdsaSecp256k1,
        &pk,
        &message,
        &signatures[0]
    ));
    assert_eq!(c.nodes[&victim].presign_stats.missing, 1);

    // A repeated `SignStart` of a run whose spend marks a signer is still writing is refused;
    // before the fix it aborted the very run the signer was part of.
    assert!(c.run_until(300_000, |c| c.nodes[&l].presignatures_ready(&key) >= 1));
    let (signers, id) = c.nodes[&l].first_ready(&key).unwrap();
    // Not the restarted node: it lost this presignature (made before its restart).
    let signer = *signers.iter().find(|p| **p != victim).unwrap();
    let start = NodeMessage::SignStart(SignStart {
        session: SessionKey {
            kind: SessionKind::Sign,
            // A run id of the leader's term that it has not used (signers refuse other terms).
            task: (c.nodes[&l].term() << 32) | 0xffff_0000,
            attempt: 1,
        },
        key: key.clone(),
        version: KeyVersion(1),
        signers,
        messages: vec![b"repeated".to_vec()],
        presignatures: vec![id],
    })
    .encode();
    let now = c.now;
    let node = c.nodes.get_mut(&signer).unwrap();
    let missing = node.presign_stats.missing;
    for _ in 0..2 {
        node.handle_input(Input::Message {
            at: now,
            from: l,
            bytes: &start,
        })
        .unwrap();
    }
    assert_eq!(
        node.presign_stats.missing, missing,
        "the repeat aborted the run"
    );
}

/// A follower whose thread was stalled for seconds (an ECDSA round computing) wakes up with many
/// ticks due and the leader's heartbeats still queued behind the timer. It must not count the
/// whole stall towards its election timeout: before the fix it ticked up to two election
/// timeouts at once, became a pre-candidate, forgot the leader and refused the leader's
/// `SignStart`/`PresignStart` (found by the multi-process ECDSA test).
#[test]
fn a_stalled_follower_keeps_its_leader_when_it_wakes_up() {
    let mut c = Cluster::new(3, 71, |_| {});
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let f = follower(&c);
    let woke = Instant::from_millis(c.now.as_millis() + 5_000);
    let node = c.nodes.get_mut(&f).unwrap();
    node.handle_input(Input::Timeout { now: woke }).unwrap();
    assert_eq!(node.leader(), Some(l), "the stall started an election");
}
