//! Node targets: three real [`Node`]s driven exactly as a daemon drives them (every persist
//! batch made durable on a per-node disk, then acknowledged), with the fuzzer choosing what
//! happens next; and a node started from an arbitrary restored state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use super::Cursor;
use crate::codec::Writer;
use crate::ids::ParticipantId;
use crate::node::raft_wire;
use crate::node::registry::NodeRole;
use crate::node::{Event, Input, Node, NodeConfig, Output, Request};
use crate::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, RaftEntry, RecordValue, RestoredState,
    SecretBytes,
};
use crate::rng::Seed;
use crate::scheme::Scheme;
use crate::time::{Duration, Instant};

const SEED: u64 = 0x0de;
const CLUSTER: [u16; 3] = [1, 2, 3];
/// Ids the fuzzer can name: the cluster, two nodes that may be added, and one stranger.
const NAMEABLE: [u16; 6] = [1, 2, 3, 4, 5, 9];
const MAX_OPS: usize = 256;
const HISTORY: usize = 32;
/// Honest steps at the end, so what the fuzzer did has consequences.
const SETTLE_STEPS: usize = 200;

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap_or_else(|| unreachable!("fuzz ids are non-zero"))
}

fn members() -> BTreeMap<ParticipantId, NodeRole> {
    CLUSTER.iter().map(|n| (pid(*n), NodeRole::Tee)).collect()
}

fn config(id: ParticipantId) -> NodeConfig {
    let mut cfg = NodeConfig::new(id, members());
    // Short deadlines keep fuzz runs short in virtual time; the ratios are the defaults'.
    cfg.round_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(20);
    cfg
}

/// What one node's store holds: only what the node was told is durable.
#[derive(Clone, Default)]
pub(crate) struct Disk {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) entries: BTreeMap<u64, RaftEntry>,
    pub(crate) shares: BTreeMap<(KeyId, KeyVersion), SecretBytes>,
    pub(crate) records: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
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
                PersistOp::InstallSnapshot(_) | PersistOp::MarkConsumed { .. } => {}
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

    pub(crate) fn restored(&self) -> RestoredState {
        RestoredState {
            hard_state: self.hard_state,
            entries: self.entries.values().cloned().collect(),
            records: self.records.clone(),
            ..RestoredState::default()
        }
    }
}

#[derive(Clone)]
struct Flight {
    at: Instant,
    seq: u64,
    from: ParticipantId,
    to: ParticipantId,
    bytes: Vec<u8>,
}

/// Three nodes, their disks and the messages between them.
pub(crate) struct World {
    nodes: BTreeMap<ParticipantId, Node>,
    pub(crate) disks: BTreeMap<ParticipantId, Disk>,
    /// Batches handed to the driver and not yet acknowledged (lost in a crash).
    unacked: BTreeMap<ParticipantId, VecDeque<PersistBatch>>,
    /// Nodes whose acknowledgements the fuzzer holds back.
    hold: BTreeSet<ParticipantId>,
    queue: Vec<Flight>,
    history: VecDeque<Flight>,
    pub(crate) now: Instant,
    seq: u64,
    /// Answers to client requests, per node.
    pub(crate) completed: Vec<(ParticipantId, String, bool)>,
    /// Every message a node sent (for the seed corpora).
    pub(crate) transmitted: Vec<Vec<u8>>,
    record_transmits: bool,
    /// Whether the fuzzer spoke for a node (injected, tampered with or misdirected a message).
    byzantine: bool,
    /// Raft messages a node refused: none may come from honest nodes.
    raft_refusals: Vec<String>,
}

impl World {
    fn new(disks: BTreeMap<ParticipantId, Disk>, now: Instant) -> World {
        let mut w = World {
            nodes: BTreeMap::new(),
            disks,
            unacked: BTreeMap::new(),
            hold: BTreeSet::new(),
            queue: Vec::new(),
            history: VecDeque::new(),
            now,
            seq: 0,
            completed: Vec::new(),
            transmitted: Vec::new(),
            record_transmits: false,
            byzantine: false,
            raft_refusals: Vec::new(),
        };
        for id in CLUSTER.map(pid) {
            w.disks.entry(id).or_default();
            w.start(id);
        }
        w
    }

    fn start(&mut self, id: ParticipantId) {
        let disk = &self.disks[&id];
        let node = Node::new(
            config(id),
            disk.restored(),
            disk.shares.clone(),
            Seed::from_u64(SEED).child(b"fuzz/node", &id.get().to_be_bytes()),
            self.now,
        )
        .unwrap_or_else(|e| panic!("node {id:?} does not restart from its own disk: {e}"));
        self.nodes.insert(id, node);
        self.unacked.remove(&id);
        self.drain(id);
    }

    fn input(&mut self, id: ParticipantId, input: Input<'_>) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let what = kind(&input);
        if let Err(e) = node.handle_input(input) {
            panic!("node {id:?} returned an error for a {what} input: {e}");
        }
        self.drain(id);
    }

    fn drain(&mut self, id: ParticipantId) {
        loop {
            let Some(out) = self.nodes.get_mut(&id).and_then(|n| n.poll_output()) else {
                break;
            };
            match out {
                Output::Transmit { to, bytes } => {
                    assert_ne!(to, id, "node {id:?} sent a message to itself");
                    if self.record_transmits {
                        self.transmitted.push(bytes.clone());
                    }
                    self.seq += 1;
                    let latency = 1 + self.seq % 4;
                    self.queue.push(Flight {
                        at: Instant::from_millis(self.now.as_millis() + latency),
                        seq: self.seq,
                        from: id,
                        to,
                        bytes,
                    });
                }
                Output::Persist(batch) => {
                    self.check_no_share_in_log(id, &batch);
                    self.unacked.entry(id).or_default().push_back(batch);
                }
                // The fuzzed workload creates FROST keys only: no aux info, no primes.
                Output::GeneratePrimes { .. } => {}
                Output::Event(Event::Completed { request_id, result }) => {
                    self.completed.push((id, request_id, result.is_ok()));
                }
                Output::Event(Event::PeerMisbehaved { peer, reason })
                    if reason.starts_with("raft message") =>
                {
                    self.raft_refusals
                        .push(format!("{id:?} from {peer:?}: {reason}"));
                }
                Output::Event(_) => {}
            }
        }
        if !self.hold.contains(&id) {
            self.ack(id);
        }
    }

    /// Makes every pending batch of `id` durable, then acknowledges it.
    fn ack(&mut self, id: ParticipantId) {
        while let Some(batch) = self.unacked.get_mut(&id).and_then(|q| q.pop_front()) {
            if let Some(d) = self.disks.get_mut(&id) {
                d.apply(&batch);
            }
            let now = self.now;
            self.input(
                id,
                Input::Persisted {
                    at: now,
                    token: batch.token,
                },
            );
        }
    }

    fn check_no_share_in_log(&self, id: ParticipantId, batch: &PersistBatch) {
        let mut shares: Vec<&[u8]> = self.disks[&id]
            .shares
            .values()
            .map(|s| s.expose())
            .collect();
        for op in &batch.ops {
            if let PersistOp::PutShare { share, .. } = op {
                shares.push(share.expose());
            }
        }
        for op in &batch.ops {
            if let PersistOp::AppendEntries(es) = op {
                for e in es {
                    for s in &shares {
                        assert!(
                            s.is_empty() || !e.bytes.windows(s.len()).any(|w| w == *s),
                            "node {id:?} put a key share in the Raft log"
                        );
                    }
                }
            }
        }
    }

    fn deliver(&mut self, f: Flight) {
        self.now = self.now.max(f.at);
        let now = self.now;
        self.input(
            f.to,
            Input::Message {
                at: now,
                from: f.from,
                bytes: &f.bytes,
            },
        );
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(f);
    }

    /// The next event in time: the earliest message, or the earliest node deadline.
    fn step(&mut self) {
        let next_msg = self.queue.iter().map(|m| (m.at, m.seq)).min();
        let next_timer = self.nodes.values().map(|n| n.poll_timeout()).min();
        match (next_msg, next_timer) {
            (Some((at, seq)), timer) if timer.is_none_or(|t| at <= t) => {
                if let Some(i) = self.queue.iter().position(|m| m.seq == seq) {
                    let f = self.queue.swap_remove(i);
                    self.deliver(f);
                }
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                self.fire_due();
            }
            _ => {}
        }
    }

    fn fire_due(&mut self) {
        let now = self.now;
        let due: Vec<ParticipantId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.poll_timeout() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.input(id, Input::Timeout { now });
        }
    }

    fn leader(&self) -> Option<ParticipantId> {
        let leaders: BTreeSet<_> = self.nodes.values().filter_map(|n| n.leader()).collect();
        let l = *leaders.iter().next()?;
        (leaders.len() == 1 && self.nodes.values().all(|n| n.leader() == Some(l))).then_some(l)
    }

    fn client(&mut self, at: ParticipantId, request_id: String, request: Request) {
        let now = self.now;
        self.input(
            at,
            Input::Client {
                at: now,
                request_id,
                request,
            },
        );
    }

    fn crash_and_restart(&mut self, id: ParticipantId) {
        self.nodes.remove(&id);
        self.unacked.remove(&id);
        self.queue.retain(|m| m.to != id);
        self.start(id);
    }

    fn pick(&self, k: u8) -> Option<usize> {
        (!self.queue.is_empty()).then(|| usize::from(k) % self.queue.len())
    }
}

fn nameable(sel: u8) -> ParticipantId {
    pid(NAMEABLE[usize::from(sel) % NAMEABLE.len()])
}

fn node_of(sel: u8) -> ParticipantId {
    pid(CLUSTER[usize::from(sel) % CLUSTER.len()])
}

fn key_name(sel: u8) -> KeyId {
    let name = ["k", "k2", "k3"][usize::from(sel) % 3];
    KeyId::new(name).unwrap_or_else(|_| unreachable!("valid key id"))
}

fn id_set(bits: u8) -> BTreeSet<ParticipantId> {
    NAMEABLE
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| pid(*n))
        .collect()
}

/// A client request from fuzz bytes: mostly well-formed, sometimes not (the node must answer
/// those with `BadRequest`, never misbehave).
fn request(c: &mut Cursor<'_>) -> (String, Request) {
    let kind = c.u8();
    let id_sel = c.u8();
    let request_id = if id_sel == 0xff {
        String::new()
    } else {
        format!("r{}", id_sel % 16)
    };
    let request = match kind % 5 {
        0 => {
            let (k, s, t, p) = (c.u8(), c.u8(), c.u8(), c.u8());
            Request::CreateKey {
                key: key_name(k),
                scheme: Scheme::ALL[usize::from(s) % 4],
                threshold: u16::from(t % 5),
                participants: (p != 0).then(|| id_set(p)),
            }
        }
        1 => {
            let (k, n) = (c.u8(), c.u8() % 4);
            Request::Sign {
                key: key_name(k),
                messages: (0..n).map(|i| vec![i; usize::from(i)]).collect(),
            }
        }
        2 => {
            let (k, t, m) = (c.u8(), c.u8(), c.u8());
            Request::Reshare {
                key: key_name(k),
                new_threshold: (t != 0).then_some(u16::from(t % 5)),
                new_members: (m != 0).then(|| id_set(m)),
            }
        }
        3 => {
            let (i, r, a) = (c.u8(), c.u8(), c.u8());
            Request::AddMember {
                id: nameable(i),
                role: if r & 1 == 0 {
                    NodeRole::Tee
                } else {
                    NodeRole::Mesh
                },
                address: if a == 0 {
                    String::new()
                } else {
                    format!("127.0.0.1:{}", 7000 + u16::from(a))
                },
            }
        }
        _ => Request::RemoveMember {
            id: nameable(c.u8()),
        },
    };
    (request_id, request)
}

/// The state after an honest start: a leader and key `k` (Ed25519, 2-of-3) at version 1.
/// Computed once per process; every fuzz run that starts warm restarts the nodes from it.
struct Warm {
    disks: BTreeMap<ParticipantId, Disk>,
    now: Instant,
    transmitted: Vec<Vec<u8>>,
}

fn warm() -> &'static Warm {
    static WARM: OnceLock<Warm> = OnceLock::new();
    WARM.get_or_init(|| {
        let mut w = World::new(BTreeMap::new(), Instant::ZERO);
        w.record_transmits = true;
        let mut steps = 0;
        while w.leader().is_none() && steps < 20_000 {
            w.step();
            steps += 1;
        }
        let leader = w
            .leader()
            .unwrap_or_else(|| panic!("no leader in the warm-up"));
        w.client(
            leader,
            "create-k".into(),
            Request::CreateKey {
                key: key_name(0),
                scheme: Scheme::FrostEd25519,
                threshold: 2,
                participants: None,
            },
        );
        w.client(
            leader,
            "sign-k".into(),
            Request::Sign {
                key: key_name(0),
                messages: vec![b"warm".to_vec()],
            },
        );
        let key = key_name(0);
        let mut steps = 0;
        while steps < 50_000
            && !(w
                .nodes
                .values()
                .all(|n| n.registry().keys.contains_key(&key))
                && w.completed.iter().any(|(_, r, _)| r == "sign-k"))
        {
            w.step();
            steps += 1;
        }
        assert!(
            w.nodes
                .values()
                .all(|n| n.share_versions(&key) == vec![KeyVersion(1)]),
            "the warm-up did not create the key"
        );
        Warm {
            disks: w.disks.clone(),
            now: w.now,
            transmitted: std::mem::take(&mut w.transmitted),
        }
    })
}

/// Honest messages of the warm-up (for the seed corpora of the decoder targets).
pub(crate) fn warm_transmits() -> &'static [Vec<u8>] {
    &warm().transmitted
}

/// The warm disks (for the seed corpora).
pub(crate) fn warm_disks() -> &'static BTreeMap<ParticipantId, Disk> {
    &warm().disks
}

/// Three nodes under fuzz control. First byte: bit 0 starts from the warm state (a leader
/// and key `k`) instead of empty disks. Then ops (`% 12`):
/// 0 run 1-32 steps (the next message or deadline), 1 deliver queued message #k now,
/// 2 drop #k, 3 deliver a copy of #k, 4 tamper with #k and deliver it, 5 inject bytes from
/// any id to any node, 6 a client request at any node, 7 advance the clock and fire the due
/// deadlines, 8 a peer up/down report, 9 crash and restart a node from its disk, 10 hold or
/// release a node's persist acknowledgements, 11 replay an earlier message to any node.
/// Then 200 honest steps.
///
/// Checks: no panic; `handle_input` never returns an error for peer, client or timer input
/// (only for a `Persisted` token the node never issued, which this driver never sends); a
/// node always restarts from its own disk; no key share ever enters the Raft log; without
/// injected, tampered or misdirected messages, no node refuses a Raft message (the guard in
/// `raft_wire::check_from_peer` must never hide an honest node's bug).
pub fn node(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    let mut w = if mode & 1 == 1 {
        let warm = warm();
        World::new(warm.disks.clone(), warm.now)
    } else {
        World::new(BTreeMap::new(), Instant::ZERO)
    };
    let mut ops = 0;
    while !c.is_empty() && ops < MAX_OPS {
        ops += 1;
        match c.u8() % 12 {
            0 => {
                for _ in 0..=c.u8() % 32 {
                    w.step();
                }
            }
            1 => {
                if let Some(i) = w.pick(c.u8()) {
                    let mut f = w.queue.swap_remove(i);
                    f.at = w.now;
                    w.deliver(f);
                }
            }
            2 => {
                if let Some(i) = w.pick(c.u8()) {
                    w.queue.swap_remove(i);
                }
            }
            3 => {
                if let Some(i) = w.pick(c.u8()) {
                    let mut f = w.queue[i].clone();
                    f.at = w.now;
                    w.deliver(f);
                }
            }
            4 => {
                let (k, pos, xor) = (c.u8(), c.u16(), c.u8());
                if let Some(i) = w.pick(k) {
                    let mut f = w.queue.swap_remove(i);
                    if !f.bytes.is_empty() && xor != 0 {
                        let at = usize::from(pos) % f.bytes.len();
                        f.bytes[at] ^= xor;
                        w.byzantine = true;
                    }
                    f.at = w.now;
                    w.deliver(f);
                }
            }
            5 => {
                let to = node_of(c.u8());
                let from = nameable(c.u8());
                let bytes = c.bytes().to_vec();
                let at = w.now;
                w.byzantine = true;
                w.deliver(Flight {
                    at,
                    seq: 0,
                    from,
                    to,
                    bytes,
                });
            }
            6 => {
                let at = node_of(c.u8());
                let (request_id, request) = request(&mut c);
                w.client(at, request_id, request);
            }
            7 => {
                let dt = u64::from(c.u16());
                w.now = Instant::from_millis(w.now.as_millis().saturating_add(dt));
                w.fire_due();
            }
            8 => {
                let (at, peer, up) = (node_of(c.u8()), nameable(c.u8()), c.u8() & 1 == 1);
                let now = w.now;
                w.input(at, Input::PeerStatus { at: now, peer, up });
            }
            9 => {
                let id = node_of(c.u8());
                w.crash_and_restart(id);
            }
            10 => {
                let id = node_of(c.u8());
                if !w.hold.remove(&id) {
                    w.hold.insert(id);
                }
                w.ack_unheld();
            }
            _ => {
                let (k, to) = (c.u8(), node_of(c.u8()));
                if !w.history.is_empty() {
                    let mut f = w.history[usize::from(k) % w.history.len()].clone();
                    // A late duplicate is the network's doing; a copy sent to another node is
                    // the sender's (or a forger's).
                    w.byzantine |= f.to != to;
                    f.to = to;
                    f.at = w.now;
                    w.deliver(f);
                }
            }
        }
    }
    w.hold.clear();
    w.ack_unheld();
    for _ in 0..SETTLE_STEPS {
        w.step();
    }
    if !w.byzantine {
        assert!(
            w.raft_refusals.is_empty(),
            "a node refused an honest node's raft message: {:?}",
            w.raft_refusals
        );
    }
}

impl World {
    fn ack_unheld(&mut self) {
        let ids: Vec<ParticipantId> = self.nodes.keys().copied().collect();
        for id in ids {
            if !self.hold.contains(&id) {
                self.ack(id);
            }
        }
    }
}

/// Encodes a raft entry the way a node stores it.
pub(crate) fn stored_entry(entry_type: u8, index: u64, term: u64, data: &[u8]) -> Vec<u8> {
    let mut e = raft::eraftpb::Entry::default();
    e.set_entry_type(match entry_type % 3 {
        0 => raft::eraftpb::EntryType::EntryNormal,
        1 => raft::eraftpb::EntryType::EntryConfChange,
        _ => raft::eraftpb::EntryType::EntryConfChangeV2,
    });
    e.set_index(index);
    e.set_term(term);
    e.set_data(data.to_vec().into());
    let mut w = Writer::new();
    raft_wire::write_entry(&mut w, &e);
    w.finish()
}

/// `Node::new` from an arbitrary restored state (a corrupt or foreign store), then a few
/// seconds of timeouts, a client request and a probe. `Node::new` may refuse the state (a
/// `CorruptState` error naming what is wrong) but never panic; a node it accepts must run.
///
/// Input: a hard state (flag, then term, vote, commit as single bytes), up to 16 log entries
/// (flag: raw bytes, or a well-formed entry from type, index, term and data, stored under a
/// fuzz-chosen index and term), up to 4 `share-origin` records, up to 2 shares of key `k`.
pub fn node_restore(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut restored = RestoredState::default();
    if c.u8() & 1 == 1 {
        restored.hard_state = Some(HardState {
            term: u64::from(c.u8()),
            vote: u64::from(c.u8()),
            commit: u64::from(c.u8()),
        });
    }
    for _ in 0..c.u8() % 17 {
        let flag = c.u8();
        let (index, term) = (u64::from(c.u8()), u64::from(c.u8()));
        let bytes = if flag & 1 == 1 {
            c.bytes().to_vec()
        } else {
            let (t, i, tm) = (c.u8(), u64::from(c.u8()), u64::from(c.u8()));
            stored_entry(t, i, tm, c.bytes())
        };
        restored.entries.push(RaftEntry { index, term, bytes });
    }
    for _ in 0..c.u8() % 5 {
        let key = c.bytes().to_vec();
        let value = c.bytes().to_vec();
        restored
            .records
            .entry("share-origin".into())
            .or_default()
            .insert(key, value);
    }
    let mut shares = BTreeMap::new();
    for _ in 0..c.u8() % 3 {
        let v = KeyVersion(u32::from(c.u8()));
        shares.insert((key_name(0), v), SecretBytes::new(c.bytes().to_vec()));
    }
    let id = pid(1);
    let Ok(mut node) = Node::new(
        config(id),
        restored,
        shares,
        Seed::from_u64(SEED),
        Instant::ZERO,
    ) else {
        return;
    };
    let mut now = Instant::ZERO;
    for _ in 0..30 {
        now = now.max(node.poll_timeout());
        drive(&mut node, now, Input::Timeout { now });
    }
    let probe = crate::node::NodeMessage::Probe { nonce: 7 }.encode();
    drive(
        &mut node,
        now,
        Input::Message {
            at: now,
            from: pid(2),
            bytes: &probe,
        },
    );
    drive(
        &mut node,
        now,
        Input::Client {
            at: now,
            request_id: "restore".into(),
            request: Request::Sign {
                key: key_name(0),
                messages: vec![b"m".to_vec()],
            },
        },
    );
}

/// Feeds one input to a lone node and acknowledges every batch it asks to persist.
fn drive(node: &mut Node, now: Instant, input: Input<'_>) {
    let what = kind(&input);
    if let Err(e) = node.handle_input(input) {
        panic!("a restored node returned an error for a {what} input: {e}");
    }
    while let Some(out) = node.poll_output() {
        if let Output::Persist(batch) = out {
            let token = batch.token;
            if let Err(e) = node.handle_input(Input::Persisted { at: now, token }) {
                panic!("a restored node refused its own token: {e}");
            }
        }
    }
}

fn kind(input: &Input<'_>) -> &'static str {
    match input {
        Input::Timeout { .. } => "timeout",
        Input::Message { .. } => "peer message",
        Input::Client { .. } => "client",
        Input::PeerStatus { .. } => "peer status",
        Input::Persisted { .. } => "persisted",
        Input::Primes { .. } => "primes",
    }
}
