//! The node state machine: Raft, the replicated registry, the task manager, and the sessions a
//! node takes part in. Still pure: time, randomness and I/O are inputs and outputs.
//!
//! ```text
//! Node::new(config, restored, shares, seed, now)
//! node.handle_input(Input::{Timeout, Message, Client, Persisted})
//! node.poll_output() -> Transmit { to, bytes } | Persist(batch) | Event(..)
//! node.poll_timeout() -> next deadline
//! ```
//!
//! Run-loop contract: after every input, drain `poll_output`; make every `Persist` batch durable
//! in order and report `Persisted { token }`. Messages that depend on a batch (Raft votes and
//! acknowledgements, a DKG participant's success report after its share is stored) are held by
//! the node and released only when that token is reported.
//!
//! Flows:
//! - **Create key**: any node takes the request; the leader proposes `Submit` through Raft; the
//!   leader starts queued tasks up to the DKG concurrency limit by proposing `Begin`; when `Begin`
//!   commits, every participant starts its DKG session; each stores its share, then reports to
//!   the leader; when all reported the same public key package, the leader proposes `Complete`
//!   and every node registers the key. A failed attempt is `Fail`ed and retried without the
//!   culprits. The request id is recorded in the registry: a retried request never runs twice.
//! - **Reshare / refresh**: like a key creation (`SubmitReshare`, `Begin` naming the dealers,
//!   its own concurrency limit); every dealer and new member runs `FrostReshare`; new members
//!   store `v+1` beside `v` and report after it is durable; the leader runs a test signature
//!   with `v+1` and commits `CompleteReshare`, on which every node erases `v`. Until then `v`
//!   signs; a failed attempt erases its staged `v+1`. The leader also submits refreshes itself
//!   when the rotation schedule says a key is due.
//! - **Sign**: no Raft write. Any node forwards to the leader, which picks `t` signers at random
//!   (seeded) among the key's holders that are not excluded, coordinates the session, and replies;
//!   results are cached per request id, so a retry gets the first answer.
//!
//! Policy modules: [`select`] (seeded, health-weighted participant choice with cool-downs) and
//! [`scoring`] (per-node rolling metrics and the debounced leader-transfer decision).

pub mod ecdsa;
mod freshness;
mod leadership;
mod membership;
mod presign;
pub use presign::PresignStats;
pub mod raft_wire;
pub mod registry;
pub mod scoring;
pub mod select;
pub mod sessions;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use raft::eraftpb::{ConfState, Message as RaftMessage};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use rand_core::RngCore;

use crate::codec::{DecodeError, Reader, Writer};
use crate::frost::{DkgConfig, SignConfig};
use crate::ids::ParticipantId;
use crate::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, PersistToken, RaftEntry, RecordValue,
    RestoredState, SecretBytes,
};
use crate::rng::{CoreRng, Seed};
use crate::scheme::Scheme;
use crate::session::{Failure, FailureKind, SessionInput};
use crate::time::{Duration, Instant};

use crate::reshare::ReshareConfig;
use crate::rotation::{KeyRotation, RotationCommand, RotationSchedule, DEFAULT_RETRY_AFTER};
use registry::{
    Applied, DkgSpec, NodeRole, Registry, Replicated, TaskKind, TaskState, MAX_REQUEST_ID,
};
use sessions::{ErasedOutput, ErasedSession, ReshareShare};
pub use wire::{
    NodeMessage, Request, RequestError, ReshareOutcome, Response, SessionKey, SessionKind,
    SignStart,
};

/// Table holding which DKG attempt produced a stored share (so a failed attempt's share is
/// erased and a later attempt's is not).
const SHARE_ORIGIN_TABLE: &str = "share-origin";
/// Table holding this node's boot count (record [`BOOT_COUNT_KEY`], 8 bytes big-endian).
const BOOT_TABLE: &str = "node-boot";
const BOOT_COUNT_KEY: &[u8] = b"count";
/// Bound on messages buffered for sessions that have not started here yet.
const MAX_EARLY_MESSAGES: usize = 4096;

/// Per-type concurrency limits.
#[derive(Clone, Copy, Debug)]
pub struct TaskLimits {
    /// DKG tasks running at once, cluster-wide (the leader enforces it).
    pub dkg: usize,
    /// Signing runs the leader coordinates at once.
    pub sign: usize,
    /// Reshare tasks (client reshares and automatic refreshes) running at once, cluster-wide.
    /// Separate from `dkg` so a burst of key creations cannot starve rotation, or the reverse.
    pub reshare: usize,
}

/// Node configuration. `NodeConfig::new` gives sane defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: ParticipantId,
    /// The cluster's initial members and roles (the same on every node).
    pub members: BTreeMap<ParticipantId, NodeRole>,
    /// Raft tick length.
    pub tick: Duration,
    /// Election timeout in ticks (randomised in [n, 2n) from the node's seed).
    pub election_ticks: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Per-round deadline of every session.
    pub round_timeout: Duration,
    /// How long a client request may wait for an answer.
    pub request_timeout: Duration,
    /// Concurrency limits.
    pub limits: TaskLimits,
    /// Attempts per task before giving up.
    pub max_attempts: u32,
    /// How many answers per request type to remember for idempotent retries.
    pub result_cache: usize,
    /// Default key rotation interval (0 = off).
    pub rotation_interval: Duration,
    /// This node is joining a running cluster: it is not in `members` (the cluster's bootstrap
    /// list) and waits until an `AddMember` for it commits.
    pub joining: bool,
    /// How often every node probes every peer's responsiveness (and reports to the leader).
    pub probe_interval: Duration,
    /// A probe unanswered this long counts as a timeout.
    pub probe_timeout: Duration,
    /// How responsiveness is scored.
    pub scoring: scoring::ScoringConfig,
    /// When a lagging leader hands over (margin, sustain window, debounce, evidence).
    pub monitor: scoring::MonitorConfig,
    /// Sets of pregenerated safe primes this node keeps ready for ECDSA aux info (the driver
    /// generates them in the background when asked by [`Output::GeneratePrimes`]); 0 = none.
    pub prime_pool_depth: usize,
    /// Per-round deadline of ECDSA aux info generation and interactive signing, whose rounds
    /// take seconds of CPU (Paillier proofs): longer than `round_timeout`.
    pub ecdsa_round_timeout: Duration,
    /// ECDSA presignatures the leader keeps ready per key (made in the background, held in
    /// the signers' memory, see `presign`); 0 = none, every signature runs the full protocol.
    pub presignature_depth: usize,
}

impl NodeConfig {
    /// Defaults: 100 ms ticks, election after 10-20 ticks, heartbeats every 2, 10 s rounds,
    /// 60 s per request, 2 concurrent DKGs, 64 concurrent signing runs, 1 reshare at a time,
    /// 3 attempts, 1,024 cached
    /// answers, rotation every 24 h.
    pub fn new(id: ParticipantId, members: BTreeMap<ParticipantId, NodeRole>) -> Self {
        NodeConfig {
            id,
            members,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            round_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            limits: TaskLimits {
                dkg: 2,
                sign: 64,
                reshare: 1,
            },
            max_attempts: 3,
            result_cache: 1024,
            rotation_interval: Duration::from_secs(24 * 3600),
            joining: false,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(5),
            scoring: scoring::ScoringConfig::default(),
            monitor: scoring::MonitorConfig::default(),
            prime_pool_depth: 2,
            ecdsa_round_timeout: Duration::from_secs(120),
            presignature_depth: 4,
        }
    }
}

/// An input to the node.
#[derive(Debug)]
pub enum Input<'a> {
    /// The clock reached `poll_timeout`'s deadline (or any later time).
    Timeout {
        /// Now.
        now: Instant,
    },
    /// Bytes from an authenticated peer node.
    Message {
        /// When they arrived.
        at: Instant,
        /// The authenticated sender.
        from: ParticipantId,
        /// The bytes, untrusted.
        bytes: &'a [u8],
    },
    /// A client request this node received (already authorised by the transport).
    Client {
        /// When.
        at: Instant,
        /// The client's idempotency key (1 to 128 bytes).
        request_id: String,
        /// What.
        request: Request,
    },
    /// The driver's transport saw a peer go down (connection lost) or come back. A down peer
    /// is not picked to sign and not handed leadership until it is up again.
    PeerStatus {
        /// When.
        at: Instant,
        /// The peer.
        peer: ParticipantId,
        /// Whether it is reachable.
        up: bool,
    },
    /// A `Persist` batch is durable.
    Persisted {
        /// When.
        at: Instant,
        /// Its token.
        token: PersistToken,
    },
    /// One set of safe primes the driver generated after [`Output::GeneratePrimes`] (or loaded
    /// from its sealed store). `None`: a generation failed; it will be asked for again.
    Primes {
        /// When.
        at: Instant,
        /// The primes (secret: this node's future Paillier key).
        primes: Option<crate::ecdsa::SafePrimes>,
    },
}

/// What the node asks its driver to do or tells it.
#[derive(Debug)]
pub enum Output {
    /// Send bytes to a peer node.
    Transmit {
        /// To whom.
        to: ParticipantId,
        /// What.
        bytes: Vec<u8>,
    },
    /// Make a batch durable, then report `Persisted`.
    Persist(PersistBatch),
    /// Start generating `count` more sets of safe primes (minutes of CPU each, at low priority,
    /// from OS randomness) and report each with `Input::Primes`.
    GeneratePrimes {
        /// How many sets.
        count: usize,
    },
    /// Something happened.
    Event(Event),
}

/// Things a driver logs, counts or answers clients with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The Raft leader changed.
    LeaderChanged {
        /// The new leader, if known.
        leader: Option<ParticipantId>,
        /// The term.
        term: u64,
    },
    /// A client request this node received is answered (exactly once per request received).
    Completed {
        /// The request id.
        request_id: String,
        /// The answer.
        result: Result<Response, RequestError>,
    },
    /// A peer sent something refused; nothing changed.
    PeerMisbehaved {
        /// The peer.
        peer: ParticipantId,
        /// What was wrong.
        reason: String,
    },
    /// A session this node took part in failed.
    SessionFailed {
        /// Which.
        session: SessionKey,
        /// Why, and who is blamed.
        failure: Failure,
    },
    /// A key (version) became active in the registry.
    KeyRegistered {
        /// The key.
        key: KeyId,
        /// The version.
        version: KeyVersion,
    },
    /// This leader lagged the best follower for the sustain window and asked Raft to hand
    /// leadership to `to`.
    LeaderTransfer {
        /// The lagging leader (this node).
        from: ParticipantId,
        /// The follower chosen.
        to: ParticipantId,
        /// The scores behind the decision.
        reason: String,
    },
    /// Cluster membership changed (the driver updates its transport's peer list).
    MembershipChanged {
        /// Members and roles.
        members: BTreeMap<ParticipantId, NodeRole>,
        /// Addresses of members added at run time.
        addresses: BTreeMap<ParticipantId, String>,
    },
    /// This node was removed from the cluster and erased its shares; the driver may stop it.
    Removed,
    /// A committed log entry could not be decoded, or claims what this node can see is false
    /// (a reshare completion with another group key), and was skipped: a bug or a malicious
    /// leader. An alarm.
    BadLogEntry {
        /// Its index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// Safe primes the driver supplied were refused: an aux run here already used them (a
    /// primes file fed again after a restart, typically), so using them again would reuse a
    /// Paillier key. Nothing else changed; the driver should log it loudly.
    PrimesRefused {
        /// SHA-256 fingerprint of the repeated modulus (hex; public, not the primes).
        fingerprint: String,
        /// Why.
        reason: String,
    },
}

/// Caller misuse (never caused by a peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// The configuration is unusable.
    BadConfig(String),
    /// The restored state is inconsistent.
    CorruptState(String),
    /// `Persisted` named a token this node never issued or already saw.
    UnknownToken(PersistToken),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::BadConfig(s) => write!(f, "bad node configuration: {s}"),
            NodeError::CorruptState(s) => write!(f, "corrupt restored state: {s}"),
            NodeError::UnknownToken(t) => write!(f, "unknown persist token {}", t.0),
        }
    }
}

impl std::error::Error for NodeError {}

/// How a participant's DKG attempt ended: the public key package, or a reason and culprits.
type DkgOutcome = Result<Vec<u8>, (String, BTreeSet<ParticipantId>)>;

/// Messages released when a batch becomes durable.
#[derive(Default)]
struct Held {
    raft_ready: Option<u64>,
    transmits: Vec<(ParticipantId, Vec<u8>)>,
    /// A presigned signing run to start (its spend marks are this batch).
    spend: Option<presign::PendingSpend>,
}

struct Live {
    session: Box<dyn ErasedSession>,
}

/// A signing run the leader coordinates.
struct SignJob {
    request_id: String,
    origins: BTreeSet<ParticipantId>,
    key: KeyId,
    messages: Vec<Vec<u8>>,
    attempt: u32,
    excluded: BTreeSet<ParticipantId>,
    signers: BTreeSet<ParticipantId>,
    started: Instant,
    /// This attempt uses pooled presignatures (a failure is retried interactively).
    presigned: bool,
}

/// A test signature the leader runs with a staged key version before activating it.
struct ReshareTest {
    task: u64,
    attempt: u32,
    public_key_package: Vec<u8>,
    signers: BTreeSet<ParticipantId>,
    started: Instant,
}

/// A client request waiting at the node that received it.
struct Waiter {
    deadline: Instant,
    request: Request,
}

/// Bounded insertion-ordered cache of answers, per request type, each bound to the digest of
/// the request it answers.
struct ResultCache {
    cap: usize,
    order: VecDeque<String>,
    map: BTreeMap<String, ([u8; 32], Result<Response, RequestError>)>,
}

impl ResultCache {
    fn new(cap: usize) -> Self {
        ResultCache {
            cap: cap.max(1),
            order: VecDeque::new(),
            map: BTreeMap::new(),
        }
    }
    /// The answer to request `id` if it asked for `digest`; a refusal if `id` answered
    /// another request.
    fn get(&self, id: &str, digest: &[u8; 32]) -> Option<Result<Response, RequestError>> {
        let (d, r) = self.map.get(id)?;
        Some(if d == digest {
            r.clone()
        } else {
            Err(id_reused(id))
        })
    }
    fn put(&mut self, id: String, digest: [u8; 32], r: Result<Response, RequestError>) {
        if self.map.insert(id.clone(), (digest, r)).is_none() {
            self.order.push_back(id);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// The refusal of a request whose id answered (or is running) another request.
fn id_reused(id: &str) -> RequestError {
    RequestError::BadRequest(format!(
        "request_id {id:?} was already used for another request (key, messages or parameters \
         differ); use a new request id"
    ))
}

/// The node.
pub struct Node {
    cfg: NodeConfig,
    raw: RawNode<MemStorage>,
    rng: CoreRng,
    /// Every session's randomness (never derived from a value a peer chose).
    session_rng: freshness::SessionRandomness,
    /// Signing and presigning runs served in the current term (replays are refused).
    served_runs: freshness::ServedRuns,
    /// The batch recording this boot's count, until it is durable: no signing or presigning
    /// run starts before (see `freshness`).
    boot_pending: Option<PersistToken>,
    registry: Registry,
    now: Instant,
    next_tick: Instant,
    raft_view: (u64, StateRole, u64),
    leader: Option<ParticipantId>,
    outputs: VecDeque<Output>,
    next_token: u64,
    held: BTreeMap<u64, Held>,
    sessions: BTreeMap<SessionKey, Live>,
    early: BTreeMap<SessionKey, Vec<(ParticipantId, Vec<u8>)>>,
    early_count: usize,
    /// When the first early message of each signing run arrived (signing runs have no registry
    /// entry to tell a late start from a run that will never start here, so they age out).
    early_signing: BTreeMap<SessionKey, Instant>,
    shares: BTreeMap<(KeyId, KeyVersion), SecretBytes>,
    share_origin: BTreeMap<(KeyId, KeyVersion), (u64, u32)>,
    waiters: BTreeMap<String, Waiter>,
    sign_results: ResultCache,
    unrouted: VecDeque<(String, Request)>,
    // Leader-side task state (rebuilt from the registry after a leader change).
    begin_proposed: BTreeSet<(u64, u32)>,
    end_proposed: BTreeSet<(u64, u32)>,
    reports: BTreeMap<(u64, u32), BTreeMap<ParticipantId, DkgOutcome>>,
    my_reports: BTreeMap<(u64, u32), NodeMessage>,
    sign_jobs: BTreeMap<u64, SignJob>,
    sign_queue: VecDeque<SignJob>,
    /// The next run id's counter within `run_term` (leader; see `next_run_id`).
    next_run: u64,
    run_term: u64,
    /// Reshare reports per attempt (leader).
    reshare_reports: BTreeMap<(u64, u32), BTreeMap<ParticipantId, ReshareOutcome>>,
    /// Activation test signatures running, by signing run id (leader).
    reshare_tests: BTreeMap<u64, ReshareTest>,
    /// Attempts whose activation test has started (leader).
    testing: BTreeSet<(u64, u32)>,
    /// When each key is due for a refresh (leader; rebuilt from the registry on election).
    rotation: RotationSchedule,
    /// Per-node health as this node observed it (drives participant selection).
    metrics: BTreeMap<ParticipantId, scoring::NodeMetrics>,
    /// Nodes cooling down after blame or repeated timeouts.
    exclusions: select::Exclusions,
    /// Peers the transport reports unreachable.
    down: BTreeSet<ParticipantId>,
    /// Pregenerated safe primes for ECDSA aux info, and the fingerprints of every set ever used.
    primes: crate::ecdsa::primes::PrimePool,
    /// Primes taken for an aux run, by the token of the batch that marks them consumed: the run
    /// gets them (and can send its first message) only once that batch is durable.
    primes_held: BTreeMap<u64, (SessionKey, crate::ecdsa::SafePrimes)>,
    /// ECDSA presignature pools (signer) and their inventory (leader).
    presign: presign::PresignState,
    /// Presignature counters, for metrics and tests.
    pub presign_stats: presign::PresignStats,
    /// Probes, health reports and the leader-transfer monitor.
    leadership: leadership::Leadership,
    /// Membership requests waiting for the one in flight (leader).
    membership_queue: VecDeque<(ParticipantId, String, registry::MembershipChange)>,
    /// The membership request proposed and not yet applied (leader).
    membership_pending: Option<String>,
    /// This node applied its own removal: it no longer takes part in Raft.
    removed: bool,
    /// Counters, for metrics and tests.
    pub stats: NodeStats,
    /// A deliberate bug switched on by a simulator test.
    #[cfg(feature = "bug-injection")]
    pub bug: Option<InjectedBug>,
}

/// Counters a driver exports as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// DKG sessions started here.
    pub dkg_sessions: u64,
    /// Signing sessions started here (as signer or coordinator).
    pub sign_sessions: u64,
    /// Reshare sessions started here (as dealer or new member).
    pub reshare_sessions: u64,
    /// Peer messages refused.
    pub refused: u64,
    /// Highest number of DKG tasks running at once, as seen by this node's registry.
    pub max_running_dkg: usize,
    /// Leadership transfers this node decided as a lagging leader.
    pub leader_transfers: u64,
}

/// Deliberate bugs the simulator's tests switch on to show that its checkers catch them
/// (feature `bug-injection`, test builds only).
#[cfg(feature = "bug-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedBug {
    /// A new member erases its share of version `v` as soon as it staged `v+1`, before the
    /// registry committed `v+1`.
    EraseOldWhenStaged,
    /// The leader commits a DKG after the first success report instead of waiting for all.
    CompleteDkgEarly,
    /// Issue 16's nonce-reuse bug put back: a signer derives its signing randomness from the
    /// leader's session key alone and serves a replayed start.
    ReplayableSigning,
}

fn pid_of(raft_id: u64) -> Option<ParticipantId> {
    u16::try_from(raft_id).ok().and_then(ParticipantId::new)
}

impl Node {
    /// Builds a node from its configuration, what its store restored, its key shares, a seed
    /// (from the OS in production) and the current time.
    pub fn new(
        cfg: NodeConfig,
        restored: RestoredState,
        shares: BTreeMap<(KeyId, KeyVersion), SecretBytes>,
        seed: Seed,
        now: Instant,
    ) -> Result<Node, NodeError> {
        match (cfg.members.contains_key(&cfg.id), cfg.joining) {
            (false, false) => {
                return Err(NodeError::BadConfig(format!(
                    "node {} is not in the member list (set joining to join a running cluster)",
                    cfg.id
                )))
            }
            (true, true) => {
                return Err(NodeError::BadConfig(format!(
                    "node {} is joining but already in the bootstrap member list",
                    cfg.id
                )))
            }
            _ => {}
        }
        if cfg.members.is_empty() {
            return Err(NodeError::BadConfig("the member list is empty".into()));
        }
        if cfg.probe_interval.is_zero() || cfg.probe_timeout < cfg.probe_interval {
            return Err(NodeError::BadConfig(
                "probe_interval must be positive and probe_timeout at least probe_interval".into(),
            ));
        }
        if cfg.election_ticks <= cfg.heartbeat_ticks || cfg.heartbeat_ticks == 0 {
            return Err(NodeError::BadConfig(
                "election_ticks must exceed heartbeat_ticks, which must be at least 1".into(),
            ));
        }
        if cfg.tick.is_zero() {
            return Err(NodeError::BadConfig("tick must be positive".into()));
        }
        let voters: Vec<u64> = cfg.members.keys().map(|p| u64::from(p.get())).collect();
        let storage = MemStorage::new_with_conf_state(ConfState::from((voters, vec![])));
        {
            let mut core = storage.wl();
            // This build never compacts its log: a store gives back the whole log, numbered
            // from 1 without gaps. raft-rs's storage panics on anything else (found by the
            // `node_restore` fuzz target), so it is refused here as corrupt.
            if let Some((i, e)) = (1u64..).zip(&restored.entries).find(|(i, e)| e.index != *i) {
                return Err(NodeError::CorruptState(format!(
                    "raft log entry {i} of the store has index {} (the log must run 1, 2, 3, ...)",
                    e.index
                )));
            }
            let mut entries = Vec::with_capacity(restored.entries.len());
            for e in &restored.entries {
                let mut r = Reader::new(&e.bytes);
                let entry = raft_wire::read_entry(&mut r)
                    .and_then(|x| r.finish().map(|_| x))
                    .map_err(|err| {
                        NodeError::CorruptState(format!("raft entry {}: {err}", e.index))
                    })?;
                if entry.get_index() != e.index || entry.get_term() != e.term {
                    return Err(NodeError::CorruptState(format!(
                        "raft entry {} does not match its index/term",
                        e.index
                    )));
                }
                entries.push(entry);
            }
            core.append(&entries)
                .map_err(|e| NodeError::CorruptState(format!("raft log: {e}")))?;
            if let Some(hs) = restored.hard_state {
                let mut h = raft::eraftpb::HardState::default();
                h.set_term(hs.term);
                h.set_vote(hs.vote);
                h.set_commit(hs.commit.min(entries.last().map_or(0, |e| e.get_index())));
                core.set_hardstate(h);
            }
        }
        let raft_cfg = raft::Config {
            id: u64::from(cfg.id.get()),
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            applied: 0,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_cfg, storage, &logger)
            .map_err(|e| NodeError::BadConfig(format!("raft: {e}")))?;
        // Every set of primes an aux run here ever took stays refused (see `ecdsa::primes`).
        let mut primes = crate::ecdsa::primes::PrimePool::new(cfg.prime_pool_depth);
        if let Some(ids) = restored.consumed.get(crate::ecdsa::primes::CONSUMED_KIND) {
            primes.restore_consumed(ids);
        }
        let share_origin = restored
            .records
            .get(SHARE_ORIGIN_TABLE)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| Some((decode_share_key(k)?, decode_origin(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let boot = restored
            .records
            .get(BOOT_TABLE)
            .and_then(|t| t.get(BOOT_COUNT_KEY))
            .map(|v| {
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| NodeError::CorruptState("boot count is not 8 bytes".into()))
            })
            .transpose()?
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| NodeError::CorruptState("boot count overflows".into()))?;
        let registry = Registry::new(
            cfg.members.clone(),
            cfg.max_attempts,
            u64::try_from(cfg.rotation_interval.as_millis()).unwrap_or(u64::MAX),
        );
        let mut node = Node {
            rng: seed.child(b"node", &[]).rng(),
            // The boot count is mixed in so that even a repeated boot seed (a cloned VM, a
            // test harness) gives a new stream at every boot.
            session_rng: freshness::SessionRandomness::new(
                &seed.child(b"boot", &boot.to_be_bytes()),
            ),
            served_runs: freshness::ServedRuns::default(),
            boot_pending: None,
            registry,
            now,
            next_tick: now.saturating_add(cfg.tick),
            raft_view: (u64::MAX, StateRole::Follower, u64::MAX),
            leader: None,
            outputs: VecDeque::new(),
            next_token: 1,
            held: BTreeMap::new(),
            sessions: BTreeMap::new(),
            early: BTreeMap::new(),
            early_count: 0,
            early_signing: BTreeMap::new(),
            shares,
            share_origin,
            waiters: BTreeMap::new(),
            sign_results: ResultCache::new(cfg.result_cache),
            unrouted: VecDeque::new(),
            begin_proposed: BTreeSet::new(),
            end_proposed: BTreeSet::new(),
            reports: BTreeMap::new(),
            my_reports: BTreeMap::new(),
            sign_jobs: BTreeMap::new(),
            sign_queue: VecDeque::new(),
            next_run: 1,
            run_term: 0,
            reshare_reports: BTreeMap::new(),
            reshare_tests: BTreeMap::new(),
            testing: BTreeSet::new(),
            rotation: RotationSchedule::new(DEFAULT_RETRY_AFTER),
            metrics: BTreeMap::new(),
            exclusions: select::Exclusions::new(select::ExclusionConfig::default()),
            down: BTreeSet::new(),
            primes,
            primes_held: BTreeMap::new(),
            presign: presign::PresignState::default(),
            presign_stats: presign::PresignStats::default(),
            leadership: leadership::Leadership::new(
                scoring::LeaderMonitor::new(cfg.monitor),
                now.saturating_add(cfg.probe_interval),
            ),
            membership_queue: VecDeque::new(),
            membership_pending: None,
            removed: false,
            stats: NodeStats::default(),
            #[cfg(feature = "bug-injection")]
            bug: None,
            cfg,
            raw,
        };
        node.record_boot(boot);
        node.fix_election_timeout();
        node.request_primes();
        node.process_ready();
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> ParticipantId {
        self.cfg.id
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<ParticipantId> {
        self.leader
    }

    /// The replicated registry as applied here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Versions of `key` this node holds a share of.
    pub fn share_versions(&self, key: &KeyId) -> Vec<KeyVersion> {
        self.shares
            .keys()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect()
    }

    /// Asks Raft to hand leadership to `to` (used by leader scoring).
    pub fn transfer_leadership(&mut self, to: ParticipantId) {
        self.raw.transfer_leader(u64::from(to.get()));
        self.after_raft();
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest time the node needs a `Timeout` input.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_tick.min(self.leadership.poll_timeout());
        for live in self.sessions.values() {
            if let Some(d) = live.session.deadline() {
                t = t.min(d);
            }
        }
        for w in self.waiters.values() {
            t = t.min(w.deadline);
        }
        if self.is_leader() {
            if let Some(due) = self.rotation.poll_timeout() {
                t = t.min(due);
            }
        }
        t
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, input: Input<'_>) -> Result<(), NodeError> {
        match input {
            Input::Timeout { now } => {
                self.now = self.now.max(now);
                self.on_timeout();
            }
            Input::Message { at, from, bytes } => {
                self.now = self.now.max(at);
                self.on_message(from, bytes);
            }
            Input::Client {
                at,
                request_id,
                request,
            } => {
                self.now = self.now.max(at);
                self.on_client(request_id, request);
            }
            Input::Persisted { at, token } => {
                self.now = self.now.max(at);
                self.on_persisted(token)?;
            }
            Input::PeerStatus { at, peer, up } => {
                self.now = self.now.max(at);
                if up {
                    self.down.remove(&peer);
                } else if peer != self.cfg.id {
                    self.down.insert(peer);
                }
            }
            Input::Primes { at, primes } => {
                self.now = self.now.max(at);
                match primes.map(|p| self.primes.supply(p)) {
                    Some(Ok(())) => {}
                    Some(Err(refused)) => self.event(Event::PrimesRefused {
                        fingerprint: refused.fingerprint,
                        reason: refused.reason.to_string(),
                    }),
                    None => self.primes.failed(),
                }
                self.request_primes();
            }
        }
        self.process_ready();
        Ok(())
    }

    /// Sets of safe primes ready for ECDSA aux info.
    pub fn primes_ready(&self) -> usize {
        self.primes.ready_len()
    }

    /// Asks the driver for the primes that bring the pool back to its depth.
    fn request_primes(&mut self) {
        let count = self.primes.wanted();
        if count > 0 {
            self.primes.started(count);
            self.outputs.push_back(Output::GeneratePrimes { count });
        }
    }

    /// What an ECDSA run needs from this node besides its FROST-phase configuration. Not the aux
    /// info it already holds for these parties (it used to offer it for reuse): every key version
    /// gets fresh aux info (see `node::ecdsa`). The scheme and parties stay in the signature so
    /// the DKG and reshare starts that call this need no change.
    fn ecdsa_params(
        &self,
        _scheme: Scheme,
        session: &SessionKey,
        _parties: &BTreeSet<ParticipantId>,
    ) -> ecdsa::EcdsaRunParams {
        ecdsa::EcdsaRunParams {
            session_id: session_context(session),
            aux_round_timeout: self.cfg.ecdsa_round_timeout,
        }
    }

    /// An aux run of `key` asks for primes: take one set that was never used here, and hand it
    /// over once its consumed marks are durable (`on_persisted`), so that a crash can never let
    /// the same Paillier key serve a second run. With none ready, the run fails at once.
    fn supply_primes(&mut self, key: SessionKey) {
        if self.primes_held.values().any(|(k, _)| *k == key) {
            return;
        }
        let Some((primes, fingerprints)) = self.primes.take() else {
            if let Some(live) = self.sessions.get_mut(&key) {
                live.session.give_primes(None);
            }
            return;
        };
        let token = self.token();
        let ops = fingerprints
            .iter()
            .map(|fp| PersistOp::MarkConsumed {
                kind: crate::ecdsa::primes::CONSUMED_KIND.to_string(),
                id: fp.to_vec(),
            })
            .collect();
        self.primes_held.insert(token.0, (key, primes));
        self.outputs
            .push_back(Output::Persist(PersistBatch { token, ops }));
    }

    // ---------------------------------------------------------------------------------------
    // Raft plumbing
    // ---------------------------------------------------------------------------------------

    /// raft-rs redraws its election timeout from `thread_rng` whenever it resets (a change of
    /// term, role or leader). We detect every such reset and overwrite the draw from our seeded
    /// RNG, so a seed replays exactly.
    fn fix_election_timeout(&mut self) {
        let r = &self.raw.raft;
        let view = (r.term, r.state, r.leader_id);
        if view != self.raft_view {
            self.raft_view = view;
            let min = self.cfg.election_ticks;
            let t = min + (self.rng.next_u64() % min as u64) as usize;
            self.raw.raft.set_randomized_election_timeout(t);
        }
    }

    fn after_raft(&mut self) {
        self.fix_election_timeout();
    }

    fn token(&mut self) -> PersistToken {
        let t = PersistToken(self.next_token);
        self.next_token += 1;
        t
    }

    fn send(&mut self, to: ParticipantId, msg: &NodeMessage) {
        if to == self.cfg.id {
            return;
        }
        self.outputs.push_back(Output::Transmit {
            to,
            bytes: msg.encode(),
        });
    }

    fn send_raft(&mut self, m: &RaftMessage) {
        if let Some(to) = pid_of(m.get_to()) {
            let msg = NodeMessage::Raft(raft_wire::encode_message(m));
            self.send(to, &msg);
        }
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn process_ready(&mut self) {
        self.after_raft();
        // Bounded: each ready consumes state; raft yields at most a few in a row.
        for _ in 0..64 {
            if !self.raw.has_ready() {
                break;
            }
            let mut rd = self.raw.ready();
            let mut leader_changed = false;
            if let Some(ss) = rd.ss() {
                let leader = pid_of(ss.leader_id);
                if leader != self.leader {
                    self.leader = leader;
                    let term = self.raw.raft.term;
                    self.event(Event::LeaderChanged { leader, term });
                    leader_changed = true;
                }
            }
            for m in rd.take_messages() {
                self.send_raft(&m);
            }
            let committed = rd.take_committed_entries();
            let mut ops = Vec::new();
            if !rd.entries().is_empty() {
                let entries = rd.entries().clone();
                let appended = self.raw.mut_store().wl().append(&entries);
                if let Err(e) = appended {
                    self.event(Event::BadLogEntry {
                        index: 0,
                        reason: format!("could not append to the log cache: {e}"),
                    });
                }
                ops.push(PersistOp::AppendEntries(
                    entries
                        .iter()
                        .map(|e| {
                            let mut w = Writer::new();
                            raft_wire::write_entry(&mut w, e);
                            RaftEntry {
                                index: e.get_index(),
                                term: e.get_term(),
                                bytes: w.finish(),
                            }
                        })
                        .collect(),
                ));
            }
            if let Some(hs) = rd.hs() {
                let hs = hs.clone();
                ops.push(PersistOp::SetHardState(HardState {
                    term: hs.get_term(),
                    vote: hs.get_vote(),
                    commit: hs.get_commit(),
                }));
                self.raw.mut_store().wl().set_hardstate(hs);
            }
            let persisted_msgs = rd.take_persisted_messages();
            let number = rd.number();
            self.raw.advance_append_async(rd);
            // Only now: a new leader proposes (queued tasks, re-routed requests), and raft-rs
            // panics if the log grows between `ready()` and `advance_append_async` (found by
            // the simulator, seed 2, and by the `node` fuzz target).
            if leader_changed {
                self.on_leader_changed();
            }
            self.apply_committed(committed);
            self.raw.advance_apply();
            // Readies are durable in order. A ready with nothing to persist is complete only
            // once every earlier one is: while one is still on its way to disk, this one's
            // completion and messages (e.g. an append response that acknowledges the earlier
            // ready's entries) wait for that batch. Completing it at once told raft-rs the
            // earlier entries were durable: a follower acknowledged entries it then lost in a
            // crash, and the leader's next heartbeat crashed it (found by the `node` fuzz
            // target; `fuzz/corpus/node/regression-ack-before-durable`).
            let earlier = if ops.is_empty() {
                self.held
                    .values_mut()
                    .rev()
                    .find(|h| h.raft_ready.is_some())
            } else {
                None
            };
            if let Some(held) = earlier {
                held.raft_ready = Some(number);
                held.transmits.extend(persisted_msgs.iter().filter_map(|m| {
                    Some((
                        pid_of(m.get_to())?,
                        NodeMessage::Raft(raft_wire::encode_message(m)).encode(),
                    ))
                }));
            } else if ops.is_empty() {
                self.raw.on_persist_ready(number);
                for m in &persisted_msgs {
                    self.send_raft(m);
                }
            } else {
                let token = self.token();
                let transmits = persisted_msgs
                    .iter()
                    .filter_map(|m| {
                        Some((
                            pid_of(m.get_to())?,
                            NodeMessage::Raft(raft_wire::encode_message(m)).encode(),
                        ))
                    })
                    .collect();
                self.held.insert(
                    token.0,
                    Held {
                        raft_ready: Some(number),
                        transmits,
                        spend: None,
                    },
                );
                self.outputs
                    .push_back(Output::Persist(PersistBatch { token, ops }));
            }
            self.after_raft();
        }
    }

    /// Persists this boot's count; signing waits until it is durable.
    fn record_boot(&mut self, boot: u64) {
        let token = self.token();
        self.held.insert(token.0, Held::default());
        self.boot_pending = Some(token);
        self.outputs.push_back(Output::Persist(PersistBatch {
            token,
            ops: vec![PersistOp::PutRecord {
                table: BOOT_TABLE.into(),
                key: BOOT_COUNT_KEY.to_vec(),
                value: RecordValue::Public(boot.to_be_bytes().to_vec()),
            }],
        }));
    }

    /// Refuses a run start while this boot's count is not durable (a crash now would let the
    /// next boot reuse the count).
    fn booted(&mut self, from: ParticipantId) -> bool {
        if self.boot_pending.is_some() {
            self.refuse(from, "run start before this node's boot record is durable");
            return false;
        }
        true
    }

    fn on_persisted(&mut self, token: PersistToken) -> Result<(), NodeError> {
        if let Some((key, primes)) = self.primes_held.remove(&token.0) {
            // A run that ended meanwhile drops them: consumed all the same, never used again.
            if let Some(live) = self.sessions.get_mut(&key) {
                live.session.give_primes(Some(primes));
                self.drain_session(key);
            }
            return Ok(());
        }
        let Some(held) = self.held.remove(&token.0) else {
            return Err(NodeError::UnknownToken(token));
        };
        if self.boot_pending == Some(token) {
            self.boot_pending = None;
        }
        if let Some(n) = held.raft_ready {
            self.raw.on_persist_ready(n);
        }
        for (to, bytes) in held.transmits {
            if to == self.cfg.id {
                // A report addressed to ourselves (we lead): deliver it locally.
                if let Ok(msg) = NodeMessage::decode(&bytes) {
                    self.on_node_message(to, msg);
                }
            } else {
                self.outputs.push_back(Output::Transmit { to, bytes });
            }
        }
        if let Some(spend) = held.spend {
            self.start_presigned(spend);
        }
        Ok(())
    }

    fn propose(&mut self, cmd: &Replicated) -> bool {
        let ok = self.raw.propose(vec![], cmd.encode()).is_ok();
        self.after_raft();
        ok
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Whether the injected nonce-reuse bug is on (simulator mutation checks only).
    fn replayable_signing(&self) -> bool {
        #[cfg(feature = "bug-injection")]
        return self.bug == Some(InjectedBug::ReplayableSigning);
        #[cfg(not(feature = "bug-injection"))]
        false
    }

    /// A new signing or presigning run id: `(term mod 2^32) << 32 | n`, `n` counting from 1 in each
    /// term. A node leads a term at most once (Raft), so an honest leader never issues one id
    /// twice, across restarts too; signers refuse ids of other terms and ids served before
    /// (`freshness::ServedRuns`). `None` once the term's 2^32 - 1 ids are used up: the ids
    /// never wrap into the term bits.
    fn next_run_id(&mut self) -> Option<u64> {
        let term = self.raw.raft.term;
        if self.run_term != term {
            self.run_term = term;
            self.next_run = 1;
        }
        if self.next_run > u64::from(u32::MAX) {
            return None;
        }
        // The term's low 32 bits: a peer pushing terms past 2^32 cannot stop run ids (signers
        // keep a record per term, and randomness is fresh for every run anyway).
        let run = ((term & 0xffff_ffff) << 32) | self.next_run;
        self.next_run += 1;
        Some(run)
    }

    /// The seed of a session this node takes part in: fresh from the node's own stream,
    /// hedged with its share (if any) and a digest of what the session is about. Never a
    /// function of the session key alone, which a peer chose (see `freshness`).
    fn session_seed(&mut self, label: &[u8], share: Option<&SecretBytes>, context: &[u8]) -> Seed {
        let secret = share.map_or(&[][..], |s| s.expose());
        self.session_rng.session_seed(label, secret, context)
    }

    // ---------------------------------------------------------------------------------------
    // Applying the log
    // ---------------------------------------------------------------------------------------

    fn apply_committed(&mut self, entries: Vec<raft::eraftpb::Entry>) {
        for e in entries {
            if e.get_data().is_empty()
                || e.get_entry_type() != raft::eraftpb::EntryType::EntryNormal
            {
                continue;
            }
            match Replicated::decode(e.get_data()) {
                Ok(cmd) => {
                    let applied = self.registry.apply(&cmd);
                    if let Applied::Refused(reason) = applied {
                        self.event(Event::BadLogEntry {
                            index: e.get_index(),
                            reason,
                        });
                        continue;
                    }
                    self.stats.max_running_dkg = self
                        .stats
                        .max_running_dkg
                        .max(self.registry.running_of(false));
                    self.on_applied(&cmd, applied);
                }
                Err(err) => self.event(Event::BadLogEntry {
                    index: e.get_index(),
                    reason: err.to_string(),
                }),
            }
        }
    }

    fn on_applied(&mut self, cmd: &Replicated, applied: Applied) {
        let changed = applied != Applied::Nothing;
        match applied {
            Applied::Nothing | Applied::Refused(_) => {}
            Applied::Queued(_) | Applied::Requeued { .. } => {
                if let Applied::Requeued { task, attempt } = applied {
                    self.end_attempt(task, attempt);
                }
                self.schedule_dkg();
            }
            Applied::Started { task, attempt } => {
                let reshare = self
                    .registry
                    .tasks
                    .get(&task)
                    .is_some_and(|t| matches!(t.kind, TaskKind::Reshare { .. }));
                if reshare {
                    self.start_reshare_session(task, attempt);
                } else {
                    self.start_dkg_session(task, attempt);
                }
            }
            Applied::Membership {
                request_id,
                change,
                result,
            } => self.on_membership_applied(request_id, change, result),
            Applied::Finished(task) => {
                if let Replicated::Complete { attempt, .. }
                | Replicated::CompleteReshare { attempt, .. }
                | Replicated::Fail { attempt, .. } = cmd
                {
                    self.end_attempt(task, *attempt);
                }
                if let Replicated::CompleteReshare { version, .. } = cmd {
                    self.erase_superseded(task, *version);
                }
                self.finish_task(task);
                self.schedule_dkg();
            }
        }
        if let Some(key) = self.command_key(cmd).filter(|_| changed) {
            self.sync_rotation(&key, cmd);
        }
    }

    /// The key a command concerns.
    fn command_key(&self, cmd: &Replicated) -> Option<KeyId> {
        match cmd {
            Replicated::Submit { spec, .. } => Some(spec.key.clone()),
            Replicated::SubmitReshare { key, .. } => Some(key.clone()),
            Replicated::ChangeMembership { .. } => None,
            Replicated::Begin { task, .. }
            | Replicated::Complete { task, .. }
            | Replicated::CompleteReshare { task, .. }
            | Replicated::Fail { task, .. } => {
                self.registry.tasks.get(task).map(|t| t.spec.key.clone())
            }
        }
    }

    /// After `version` of a key became active: the previous version's share is erased here (a
    /// dealer that is not a new member then holds nothing). The share is useless to the cluster
    /// from now on, and keeping it would keep an old sharing alive for an attacker.
    fn erase_superseded(&mut self, task: u64, version: KeyVersion) {
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let TaskKind::Reshare { from_version } = t.kind else {
            return;
        };
        if t.kind.produces() != version {
            return;
        }
        let old = (t.spec.key.clone(), from_version);
        if self.shares.remove(&old).is_none() && !self.share_origin.contains_key(&old) {
            return;
        }
        self.share_origin.remove(&old);
        let token = self.token();
        self.held.insert(token.0, Held::default());
        self.outputs.push_back(Output::Persist(PersistBatch {
            token,
            ops: vec![
                PersistOp::EraseShare {
                    key: old.0.clone(),
                    version: old.1,
                },
                PersistOp::DeleteRecord {
                    table: SHARE_ORIGIN_TABLE.into(),
                    key: encode_share_key(&old.0, old.1),
                },
            ],
        }));
    }

    /// Drops what belonged to an attempt that ended; erases a share a failed attempt produced.
    fn end_attempt(&mut self, task: u64, attempt: u32) {
        for kind in [SessionKind::Dkg, SessionKind::Reshare] {
            let key = SessionKey {
                kind,
                task,
                attempt,
            };
            self.sessions.remove(&key);
            self.early_count -= self.early.remove(&key).map_or(0, |v| v.len());
        }
        self.my_reports.remove(&(task, attempt));
        self.reports.remove(&(task, attempt));
        self.reshare_reports.remove(&(task, attempt));
        self.testing.remove(&(task, attempt));
        self.reshare_tests
            .retain(|_, t| (t.task, t.attempt) != (task, attempt));
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let completed = t.state == TaskState::Completed;
        let share_key = (t.spec.key.clone(), t.kind.produces());
        if !completed && self.share_origin.get(&share_key) == Some(&(task, attempt)) {
            self.shares.remove(&share_key);
            self.share_origin.remove(&share_key);
            let token = self.token();
            self.held.insert(token.0, Held::default());
            self.outputs.push_back(Output::Persist(PersistBatch {
                token,
                ops: vec![
                    PersistOp::EraseShare {
                        key: share_key.0.clone(),
                        version: share_key.1,
                    },
                    PersistOp::DeleteRecord {
                        table: SHARE_ORIGIN_TABLE.into(),
                        key: encode_share_key(&share_key.0, share_key.1),
                    },
                ],
            }));
        }
    }

    fn finish_task(&mut self, task: u64) {
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let result = self.task_result(task);
        let request_id = t.request_id.clone();
        if t.state == TaskState::Completed {
            let e = Event::KeyRegistered {
                key: t.spec.key.clone(),
                version: t.kind.produces(),
            };
            self.event(e);
        }
        // The waiter gets this task's answer only if it asked for what the task does (another
        // request may have reused the id before the first one committed).
        let Some(waiter) = self.waiters.get(&request_id) else {
            return;
        };
        if result.is_none() {
            return;
        }
        if let Some(result) = self.task_request_result(&request_id, &waiter.request) {
            self.waiters.remove(&request_id);
            self.event(Event::Completed { request_id, result });
        }
    }

    /// The answer to a key creation or reshare request id the registry knows, or a refusal if
    /// that id was used for another request (other key, scheme, threshold or members).
    fn task_request_result(
        &self,
        request_id: &str,
        request: &Request,
    ) -> Option<Result<Response, RequestError>> {
        let task = *self.registry.requests.get(request_id)?;
        let t = self.registry.tasks.get(&task)?;
        let same = match request {
            Request::CreateKey {
                key,
                scheme,
                threshold,
                participants,
            } => {
                t.kind == TaskKind::Dkg
                    && t.spec.key == *key
                    && t.spec.scheme == *scheme
                    && t.spec.threshold == *threshold
                    && participants
                        .as_ref()
                        .is_none_or(|p| t.spec.participants.is_empty() || *p == t.spec.participants)
            }
            Request::Reshare {
                key,
                new_threshold,
                new_members,
            } => {
                matches!(t.kind, TaskKind::Reshare { .. })
                    && t.spec.key == *key
                    && new_threshold.is_none_or(|n| n == t.spec.threshold)
                    && new_members
                        .as_ref()
                        .is_none_or(|m| *m == t.spec.participants)
            }
            _ => false,
        };
        if !same {
            return Some(Err(id_reused(request_id)));
        }
        self.task_result(task)
    }

    /// The answer to a DKG task, if it has finished.
    fn task_result(&self, task: u64) -> Option<Result<Response, RequestError>> {
        let t = self.registry.tasks.get(&task)?;
        match &t.state {
            TaskState::Completed => {
                let k = self.registry.keys.get(&t.spec.key)?;
                let public_key = sessions::group_public_key(k.scheme, &k.public_key_package)?;
                if let TaskKind::Reshare { .. } = t.kind {
                    // The version this task produced, even if later refreshes superseded it.
                    return Some(Ok(Response::Reshared {
                        key: t.spec.key.clone(),
                        version: t.kind.produces(),
                        public_key,
                    }));
                }
                Some(Ok(Response::KeyCreated {
                    key: t.spec.key.clone(),
                    scheme: k.scheme,
                    version: k.version,
                    public_key,
                }))
            }
            TaskState::Failed { reason, culprits } => Some(Err(
                if reason.contains("already exists") && t.kind == TaskKind::Dkg {
                    RequestError::KeyExists(t.spec.key.clone())
                } else if reason.starts_with("no such key") && t.kind != TaskKind::Dkg {
                    RequestError::NoSuchKey(t.spec.key.clone())
                } else {
                    RequestError::Failed {
                        reason: reason.clone(),
                        culprits: culprits.clone(),
                    }
                },
            )),
            _ => None,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Leader: DKG task scheduling
    // ---------------------------------------------------------------------------------------

    fn on_leader_changed(&mut self) {
        self.begin_proposed.clear();
        self.end_proposed.clear();
        // Signing runs coordinated by a former leader are abandoned; their origins re-forward.
        self.sign_jobs.clear();
        self.sign_queue.clear();
        // So are activation tests: the new leader runs its own once the reports reach it.
        self.reshare_tests.clear();
        self.testing.clear();
        self.rebuild_rotation();
        self.membership_pending = None;
        self.membership_queue.clear();
        if self.is_leader() {
            self.reset_monitor();
            self.fail_tasks_of_removed();
            self.schedule_dkg();
        }
        // Participants re-send their DKG reports to the new leader.
        if let Some(leader) = self.leader {
            let reports: Vec<NodeMessage> = self.my_reports.values().cloned().collect();
            for r in reports {
                if leader == self.cfg.id {
                    self.on_node_message(leader, r);
                } else {
                    self.send(leader, &r);
                }
            }
            // Requests waiting for a leader, and every request in flight, go (again) to it: the
            // old leader may have dropped them. Safe, since request ids make them idempotent.
            let parked: Vec<_> = self.unrouted.drain(..).collect();
            let resend: Vec<(String, Request)> = self
                .waiters
                .iter()
                .filter(|(id, _)| !parked.iter().any(|(p, _)| p == *id))
                .map(|(id, w)| (id.clone(), w.request.clone()))
                .collect();
            for (id, req) in parked.into_iter().chain(resend) {
                self.route(id, req);
            }
        }
    }

    /// Starts queued tasks, DKGs and reshares each under their own concurrency limit.
    fn schedule_dkg(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.schedule_kind(false);
        self.schedule_kind(true);
    }

    fn schedule_kind(&mut self, reshare: bool) {
        let is_kind = |k: &TaskKind| matches!(k, TaskKind::Reshare { .. }) == reshare;
        let running = self.registry.running_of(reshare)
            + self
                .begin_proposed
                .iter()
                .filter(|(t, a)| {
                    self.registry.tasks.get(t).is_some_and(|r| {
                        r.state == TaskState::Queued && r.attempt + 1 == *a && is_kind(&r.kind)
                    })
                })
                .count();
        let limit = if reshare {
            self.cfg.limits.reshare
        } else {
            self.cfg.limits.dkg
        };
        let mut slots = limit.saturating_sub(running);
        let queued: Vec<(u64, u32, DkgSpec, BTreeSet<ParticipantId>, TaskKind)> = self
            .registry
            .queued()
            .filter(|(_, t)| is_kind(&t.kind))
            .map(|(id, t)| {
                (
                    id,
                    t.attempt + 1,
                    t.spec.clone(),
                    t.excluded.clone(),
                    t.kind,
                )
            })
            .collect();
        for (task, attempt, spec, excluded, kind) in queued {
            if slots == 0 {
                break;
            }
            if self.begin_proposed.contains(&(task, attempt)) {
                continue;
            }
            if let TaskKind::Reshare { .. } = kind {
                let cmd = self.reshare_begin(task, attempt, &spec, &excluded);
                if self.propose(&cmd) {
                    self.begin_proposed.insert((task, attempt));
                    slots -= 1;
                }
                continue;
            }
            let base: BTreeSet<ParticipantId> = if spec.participants.is_empty() {
                self.registry.members.keys().copied().collect()
            } else {
                spec.participants.clone()
            };
            let participants: BTreeSet<ParticipantId> = base
                .difference(&excluded)
                .copied()
                .filter(|p| self.registry.members.contains_key(p))
                .collect();
            let cmd = if participants.len() < usize::from(spec.threshold.max(2)) {
                Replicated::Fail {
                    task,
                    attempt,
                    culprits: excluded.clone(),
                    reason: format!(
                        "only {} eligible participants for threshold {}",
                        participants.len(),
                        spec.threshold
                    ),
                }
            } else {
                Replicated::Begin {
                    task,
                    attempt,
                    participants,
                }
            };
            if self.propose(&cmd) {
                self.begin_proposed.insert((task, attempt));
                slots -= 1;
            }
        }
    }

    /// The leader's `Begin` (or `Fail`) for a reshare attempt. Dealers: the current holders not
    /// blamed in an earlier attempt, at least the old threshold. The new members are fixed by
    /// the request: a blamed new member cannot be dropped without changing what the client
    /// asked for, so the task fails instead.
    fn reshare_begin(
        &self,
        task: u64,
        attempt: u32,
        spec: &DkgSpec,
        excluded: &BTreeSet<ParticipantId>,
    ) -> Replicated {
        let fail = |reason: String| Replicated::Fail {
            task,
            attempt,
            culprits: excluded.clone(),
            reason,
        };
        let Some(record) = self.registry.keys.get(&spec.key) else {
            return fail(format!("no such key {}", spec.key));
        };
        let blamed: BTreeSet<ParticipantId> =
            spec.participants.intersection(excluded).copied().collect();
        if !blamed.is_empty() {
            return fail(format!(
                "new members {blamed:?} were blamed in an earlier attempt"
            ));
        }
        let dealers: BTreeSet<ParticipantId> = record
            .participants
            .difference(excluded)
            .copied()
            .filter(|p| self.registry.members.contains_key(p) && !self.down.contains(p))
            .collect();
        if dealers.len() < usize::from(record.threshold) {
            return fail(format!(
                "only {} eligible dealers for threshold {}",
                dealers.len(),
                record.threshold
            ));
        }
        Replicated::Begin {
            task,
            attempt,
            participants: dealers,
        }
    }

    fn start_reshare_session(&mut self, task: u64, attempt: u32) {
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let (TaskState::Running { participants }, TaskKind::Reshare { from_version }) =
            (&t.state, t.kind)
        else {
            return;
        };
        let me = self.cfg.id;
        if !participants.contains(&me) && !t.spec.participants.contains(&me) {
            return;
        }
        let Some(record) = self.registry.keys.get(&t.spec.key) else {
            return;
        };
        let key = SessionKey {
            kind: SessionKind::Reshare,
            task,
            attempt,
        };
        let config = ReshareConfig {
            me,
            from_version,
            dealers: participants.clone(),
            new_members: t.spec.participants.clone(),
            new_threshold: t.spec.threshold,
            round_timeout: self.cfg.round_timeout,
            run: session_context(&key),
        };
        let old_share = participants
            .contains(&me)
            .then(|| {
                self.shares
                    .get(&(t.spec.key.clone(), from_version))
                    .cloned()
            })
            .flatten();
        let context = freshness::context_digest(
            b"reshare",
            &[
                &session_context(&key),
                t.spec.key.as_str().as_bytes(),
                &from_version.0.to_be_bytes(),
                &record.public_key_package,
            ],
        );
        // (The stream directly: `t` and `record` borrow the registry.)
        let secret = old_share.as_ref().map_or(&[][..], |s| s.expose());
        let seed = self.session_rng.session_seed(b"reshare", secret, &context);
        let ecdsa = self.ecdsa_params(record.scheme, &key, &t.spec.participants);
        let started = sessions::start_reshare(
            record.scheme,
            config,
            old_share.as_ref(),
            &record.public_key_package,
            ecdsa,
            &seed,
            self.now,
        );
        if started.is_ok() {
            self.stats.reshare_sessions += 1;
        }
        if let Err(reason) = self.install_task_session(key, started) {
            self.report_reshare(task, attempt, Err((reason, BTreeSet::new())));
        }
    }

    fn report_reshare(&mut self, task: u64, attempt: u32, result: ReshareOutcome) {
        let msg = NodeMessage::ReshareReport {
            task,
            attempt,
            result,
        };
        self.my_reports.insert((task, attempt), msg.clone());
        if let Some(leader) = self.leader {
            if leader == self.cfg.id {
                self.on_node_message(leader, msg);
            } else {
                self.send(leader, &msg);
            }
        }
    }

    fn on_reshare_done(&mut self, key: SessionKey, result: Result<Option<ReshareShare>, Failure>) {
        let (task, attempt) = (key.task, key.attempt);
        match result {
            Ok(Some(out)) => {
                let Some(t) = self.registry.tasks.get(&task) else {
                    return;
                };
                if out.version != t.kind.produces() {
                    return self.report_reshare(
                        task,
                        attempt,
                        Err((
                            "reshare produced an unexpected version".into(),
                            BTreeSet::new(),
                        )),
                    );
                }
                // v+1 is stored beside v; v stays the signing version until the cluster
                // activates v+1 (CompleteReshare).
                let share_key = (t.spec.key.clone(), out.version);
                #[cfg(feature = "bug-injection")]
                let kind = t.kind;
                let token = self.token();
                let ops = vec![
                    PersistOp::PutShare {
                        key: share_key.0.clone(),
                        version: share_key.1,
                        share: out.share.clone(),
                    },
                    PersistOp::PutRecord {
                        table: SHARE_ORIGIN_TABLE.into(),
                        key: encode_share_key(&share_key.0, share_key.1),
                        value: RecordValue::Public(encode_origin(task, attempt)),
                    },
                ];
                #[cfg(feature = "bug-injection")]
                let ops = match (self.bug, kind) {
                    (Some(InjectedBug::EraseOldWhenStaged), TaskKind::Reshare { from_version }) => {
                        self.shares.remove(&(share_key.0.clone(), from_version));
                        let erase = PersistOp::EraseShare {
                            key: share_key.0.clone(),
                            version: from_version,
                        };
                        ops.into_iter().chain([erase]).collect()
                    }
                    _ => ops,
                };
                self.shares.insert(share_key.clone(), out.share);
                self.share_origin.insert(share_key, (task, attempt));
                // The success report leaves only once the share is durable.
                let msg = NodeMessage::ReshareReport {
                    task,
                    attempt,
                    result: Ok((out.confirmation_digest, out.public_key_package)),
                };
                self.my_reports.insert((task, attempt), msg.clone());
                let mut held = Held::default();
                if let Some(leader) = self.leader {
                    held.transmits.push((leader, msg.encode()));
                }
                self.held.insert(token.0, held);
                self.outputs
                    .push_back(Output::Persist(PersistBatch { token, ops }));
            }
            // A dealer that is not a new member: nothing to store or report; it keeps v until
            // the activation erases it.
            Ok(None) => {}
            Err(failure) => {
                self.event(Event::SessionFailed {
                    session: key,
                    failure: failure.clone(),
                });
                let reason = format!("{:?}", failure.kind);
                self.report_reshare(task, attempt, Err((reason, failure.culprits)));
            }
        }
    }

    /// Leader: collects reshare reports. A failure fails the attempt; once every new member
    /// reported the same digest and package (and the package keeps the group key), a test
    /// signature with the staged version decides activation.
    fn on_reshare_report(
        &mut self,
        from: ParticipantId,
        task: u64,
        attempt: u32,
        result: ReshareOutcome,
    ) {
        if !self.is_leader()
            || self.end_proposed.contains(&(task, attempt))
            || self.testing.contains(&(task, attempt))
        {
            return;
        }
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let TaskState::Running { participants } = &t.state else {
            return;
        };
        let new_members = t.spec.participants.clone();
        let allowed = match &result {
            Ok(_) => new_members.contains(&from),
            Err(_) => new_members.contains(&from) || participants.contains(&from),
        };
        if t.attempt != attempt || !allowed || t.kind == TaskKind::Dkg {
            return;
        }
        let Some(record) = self.registry.keys.get(&t.spec.key) else {
            return;
        };
        let (scheme, old_pkp, key) = (
            record.scheme,
            record.public_key_package.clone(),
            t.spec.key.clone(),
        );
        let reports = self.reshare_reports.entry((task, attempt)).or_default();
        reports.insert(from, result);
        let failed: Vec<(String, BTreeSet<ParticipantId>)> =
            reports.values().filter_map(|r| r.clone().err()).collect();
        let fail = |reason: String, culprits: BTreeSet<ParticipantId>| Replicated::Fail {
            task,
            attempt,
            culprits,
            reason,
        };
        let cmd = if let Some((reason, _)) = failed.first() {
            let culprits = failed.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            fail(reason.clone(), culprits)
        } else if new_members.iter().all(|m| reports.contains_key(m)) {
            let agreed: BTreeSet<&([u8; 32], Vec<u8>)> =
                reports.values().filter_map(|r| r.as_ref().ok()).collect();
            match agreed.into_iter().collect::<Vec<_>>().as_slice() {
                [(_, pkp)] => {
                    let same_key = sessions::group_public_key(scheme, pkp).is_some()
                        && sessions::group_public_key(scheme, pkp)
                            == sessions::group_public_key(scheme, &old_pkp);
                    if !same_key {
                        fail(
                            "the reshared package changes the group public key".into(),
                            BTreeSet::new(),
                        )
                    } else {
                        let pkp = pkp.clone();
                        return self.start_reshare_test(task, attempt, key, pkp);
                    }
                }
                _ => fail(
                    "new members reported different confirmation digests or packages".into(),
                    BTreeSet::new(),
                ),
            }
        } else {
            return;
        };
        if self.propose(&cmd) {
            self.end_proposed.insert((task, attempt));
        }
    }

    /// Leader: signs `reshare::versions::test_message(key, v+1)` with `t'` new members' staged
    /// shares. Activation waits for this: the reports prove the shares are stored, the
    /// signature proves they work together under the unchanged group key.
    fn start_reshare_test(&mut self, task: u64, attempt: u32, key: KeyId, pkp: Vec<u8>) {
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let (scheme, version, threshold) = (t.spec.scheme, t.kind.produces(), t.spec.threshold);
        let members = t.spec.participants.clone();
        let fail = |reason: String, culprits| Replicated::Fail {
            task,
            attempt,
            culprits,
            reason,
        };
        let weights = select::health_weights(&members, &self.metrics, self.now);
        let signers = match select::select(
            &weights,
            usize::from(threshold),
            &self.exclusions,
            self.now,
            &mut self.rng,
        ) {
            Ok(s) => s,
            Err(e) => {
                let cmd = fail(
                    format!("no signers for the test signature: {e}"),
                    BTreeSet::new(),
                );
                if self.propose(&cmd) {
                    self.end_proposed.insert((task, attempt));
                }
                return;
            }
        };
        let Some(run) = self.next_run_id() else {
            // Counted out for this term (4 billion runs): wait for the next term.
            return;
        };
        self.testing.insert((task, attempt));
        let session = SessionKey {
            kind: SessionKind::Sign,
            task: run,
            attempt: 1,
        };
        let messages = vec![crate::reshare::versions::test_message(&key, version)];
        let config = SignConfig {
            me: self.cfg.id,
            coordinator: self.cfg.id,
            signers: signers.clone(),
            messages: messages.clone(),
            round_timeout: self.cfg.round_timeout,
        };
        let my_share = signers
            .contains(&self.cfg.id)
            .then(|| self.shares.get(&(key.clone(), version)).cloned())
            .flatten();
        let context = sign_context(&session, &key, version, &signers, &messages);
        let seed = self.session_seed(b"sign", my_share.as_ref(), &context);
        match sessions::start_sign(
            scheme,
            config,
            my_share.as_ref(),
            Some(&pkp),
            &session_context(&session),
            &seed,
            self.now,
        ) {
            Ok(s) => {
                self.stats.sign_sessions += 1;
                let me = self.cfg.id;
                for to in signers.iter().copied().filter(|p| *p != me) {
                    let msg = NodeMessage::SignStart(SignStart {
                        session,
                        key: key.clone(),
                        version,
                        signers: signers.clone(),
                        messages: messages.clone(),
                        presignatures: Vec::new(),
                    });
                    self.send(to, &msg);
                }
                self.reshare_tests.insert(
                    run,
                    ReshareTest {
                        task,
                        attempt,
                        public_key_package: pkp,
                        signers,
                        started: self.now,
                    },
                );
                self.sessions.insert(session, Live { session: s });
                self.drain_session(session);
            }
            Err(e) => {
                let cmd = fail(
                    format!("could not start the test signature: {e:?}"),
                    BTreeSet::new(),
                );
                if self.propose(&cmd) {
                    self.end_proposed.insert((task, attempt));
                }
            }
        }
    }

    /// Leader: the activation test signature ended. FROST aggregation verifies the aggregate
    /// signature against the package's group key, so success is the proof.
    fn on_reshare_test_done(
        &mut self,
        test: ReshareTest,
        result: Result<Option<Vec<Vec<u8>>>, Failure>,
    ) {
        let (task, attempt) = (test.task, test.attempt);
        self.testing.remove(&(task, attempt));
        if self.end_proposed.contains(&(task, attempt)) {
            return;
        }
        self.record_outcomes(&test.signers, test.started, result.as_ref().err());
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        if t.attempt != attempt || !matches!(t.state, TaskState::Running { .. }) {
            return;
        }
        let version = t.kind.produces();
        let cmd = match result {
            Ok(Some(_)) => Replicated::CompleteReshare {
                task,
                attempt,
                public_key_package: test.public_key_package,
                version,
                at_ms: self.now.as_millis(),
            },
            Ok(None) => return,
            Err(failure) => Replicated::Fail {
                task,
                attempt,
                culprits: failure.culprits,
                reason: format!("activation test signature failed: {:?}", failure.kind),
            },
        };
        if self.propose(&cmd) {
            self.end_proposed.insert((task, attempt));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Leader: rotation
    // ---------------------------------------------------------------------------------------

    /// Rebuilds the rotation schedule from the registry (on every leader change; followers keep
    /// it empty). A key never reshared counts from the moment this node took over: a new
    /// leader delays its first refresh rather than starting a burst.
    fn rebuild_rotation(&mut self) {
        self.rotation = RotationSchedule::new(DEFAULT_RETRY_AFTER);
        if !self.is_leader() {
            return;
        }
        let keys: Vec<KeyId> = self.registry.keys.keys().cloned().collect();
        for key in keys {
            self.refresh_schedule(&key, None);
        }
    }

    fn refresh_schedule(&mut self, key: &KeyId, failed_at: Option<Instant>) {
        let Some(record) = self.registry.keys.get(key) else {
            self.rotation.remove(key);
            return;
        };
        let prev = self.rotation.get(key).cloned();
        let last_rotated = if record.last_rotated_ms > 0 {
            Instant::from_millis(record.last_rotated_ms)
        } else {
            prev.as_ref().map_or(self.now, |p| p.last_rotated)
        };
        let same_version = prev.as_ref().is_some_and(|p| p.version == record.version);
        let busy = self.registry.unfinished_task(key).is_some();
        let rotation = KeyRotation {
            interval: Duration::from_millis(record.rotation_interval_ms),
            last_rotated,
            version: record.version,
            // A refresh proposed but not yet committed is still in flight.
            in_flight: busy
                || (failed_at.is_none()
                    && same_version
                    && prev.as_ref().is_some_and(|p| p.in_flight)),
            last_failure: failed_at.or(prev.filter(|_| same_version).and_then(|p| p.last_failure)),
        };
        self.rotation.insert(key.clone(), rotation);
    }

    fn sync_rotation(&mut self, key: &KeyId, cmd: &Replicated) {
        if !self.is_leader() {
            return;
        }
        let task = match cmd {
            Replicated::Fail { task, .. } => Some(*task),
            Replicated::SubmitReshare { request_id, .. } => {
                self.registry.requests.get(request_id).copied()
            }
            _ => None,
        };
        let failed = task
            .and_then(|t| self.registry.tasks.get(&t))
            .is_some_and(|t| {
                matches!(t.state, TaskState::Failed { .. })
                    && matches!(t.kind, TaskKind::Reshare { .. })
            });
        let now = self.now;
        self.refresh_schedule(key, failed.then_some(now));
    }

    /// Leader: submits a refresh for every key the schedule says is due. The request id is
    /// derived from the key and version, so a re-proposal (or a new leader proposing the same
    /// refresh) is deduplicated by the registry; a refresh of that version that failed gets the
    /// next free suffix.
    fn poll_rotation(&mut self) {
        if !self.is_leader() {
            return;
        }
        for RotationCommand::StartRefresh { key, from_version } in self.rotation.poll(self.now) {
            let base = format!("rotate:{key}:{}", from_version.0);
            let mut request_id = base.clone();
            let mut n = 1u32;
            let mut blocked = false;
            while let Some(task) = self.registry.requests.get(&request_id) {
                match self.registry.tasks.get(task).map(|t| &t.state) {
                    Some(TaskState::Failed { .. }) => {
                        n += 1;
                        request_id = format!("{base}:{n}");
                    }
                    _ => {
                        blocked = true;
                        break;
                    }
                }
            }
            if blocked || self.registry.unfinished_task(&key).is_some() {
                continue;
            }
            let cmd = Replicated::SubmitReshare {
                request_id,
                origin: self.cfg.id,
                key: key.clone(),
                new_threshold: None,
                new_members: None,
            };
            if !self.propose(&cmd) {
                let now = self.now;
                self.refresh_schedule(&key, Some(now));
            }
        }
    }

    fn start_dkg_session(&mut self, task: u64, attempt: u32) {
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let TaskState::Running { participants } = &t.state else {
            return;
        };
        if !participants.contains(&self.cfg.id) {
            return;
        }
        let key = SessionKey {
            kind: SessionKind::Dkg,
            task,
            attempt,
        };
        let config = DkgConfig {
            me: self.cfg.id,
            participants: participants.clone(),
            threshold: t.spec.threshold,
            round_timeout: self.cfg.round_timeout,
        };
        let context = freshness::context_digest(
            b"dkg",
            &[&session_context(&key), t.spec.key.as_str().as_bytes()],
        );
        let seed = self.session_rng.session_seed(b"dkg", &[], &context);
        let ecdsa = self.ecdsa_params(t.spec.scheme, &key, participants);
        let started = sessions::start_dkg(t.spec.scheme, config, ecdsa, &seed, self.now);
        if started.is_ok() {
            self.stats.dkg_sessions += 1;
        }
        if let Err(reason) = self.install_task_session(key, started) {
            self.report_dkg(task, attempt, Err((reason, BTreeSet::new())));
        }
    }

    fn report_dkg(
        &mut self,
        task: u64,
        attempt: u32,
        result: Result<Vec<u8>, (String, BTreeSet<ParticipantId>)>,
    ) {
        let msg = NodeMessage::DkgReport {
            task,
            attempt,
            result,
        };
        self.my_reports.insert((task, attempt), msg.clone());
        if let Some(leader) = self.leader {
            if leader == self.cfg.id {
                self.on_node_message(leader, msg);
            } else {
                self.send(leader, &msg);
            }
        }
    }

    fn on_dkg_report(
        &mut self,
        from: ParticipantId,
        task: u64,
        attempt: u32,
        result: Result<Vec<u8>, (String, BTreeSet<ParticipantId>)>,
    ) {
        if !self.is_leader() || self.end_proposed.contains(&(task, attempt)) {
            return;
        }
        let Some(t) = self.registry.tasks.get(&task) else {
            return;
        };
        let TaskState::Running { participants } = &t.state else {
            return;
        };
        // A DKG report about a reshare task is refused: its success rule is not the reshare's.
        if t.attempt != attempt || !participants.contains(&from) || t.kind != TaskKind::Dkg {
            return;
        }
        let participants = participants.clone();
        let early = self.complete_dkg_early();
        let reports = self.reports.entry((task, attempt)).or_default();
        reports.insert(from, result);
        let failed: Vec<(String, BTreeSet<ParticipantId>)> =
            reports.values().filter_map(|r| r.clone().err()).collect();
        let cmd = if let Some((reason, _)) = failed.first() {
            let culprits = failed.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            Some(Replicated::Fail {
                task,
                attempt,
                culprits,
                reason: reason.clone(),
            })
        } else if reports.len() == participants.len() || early {
            let pkps: BTreeSet<&Vec<u8>> =
                reports.values().filter_map(|r| r.as_ref().ok()).collect();
            match pkps.into_iter().collect::<Vec<_>>().as_slice() {
                [pkp] => Some(Replicated::Complete {
                    task,
                    attempt,
                    public_key_package: (*pkp).clone(),
                }),
                _ => Some(Replicated::Fail {
                    task,
                    attempt,
                    culprits: BTreeSet::new(),
                    reason: "participants reported different public key packages".into(),
                }),
            }
        } else {
            None
        };
        if let Some(cmd) = cmd {
            if self.propose(&cmd) {
                self.end_proposed.insert((task, attempt));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Sessions
    // ---------------------------------------------------------------------------------------

    fn replay_early(&mut self, key: SessionKey) {
        self.early_signing.remove(&key);
        let Some(msgs) = self.early.remove(&key) else {
            return;
        };
        self.early_count -= msgs.len();
        for (from, payload) in msgs {
            self.feed_session(key, from, &payload);
        }
    }

    fn feed_session(&mut self, key: SessionKey, from: ParticipantId, payload: &[u8]) {
        match self.sessions.get_mut(&key) {
            Some(live) => {
                live.session.handle_input(SessionInput::Message {
                    at: self.now,
                    from,
                    payload,
                });
                self.drain_session(key);
            }
            None => {
                // A DKG may start here a little after it started elsewhere: keep its messages
                // (bounded), but only for attempts that can still start.
                // ECDSA signers talk to each other at once, so a signer's first message can
                // overtake the leader's `SignStart`: keep those too, from the key's holders
                // only, for one round (`on_timeout` drops what no `SignStart` claimed).
                let plausible = match key.kind {
                    SessionKind::Dkg | SessionKind::Reshare => {
                        self.registry.tasks.get(&key.task).is_none_or(|t| {
                            key.attempt > t.attempt || matches!(t.state, TaskState::Queued)
                        })
                    }
                    // Presigning runs start at each signer on the leader's word, so one
                    // signer's first message can overtake it the same way.
                    SessionKind::Sign | SessionKind::Presign => {
                        self.registry.members.contains_key(&from) && from != self.cfg.id
                    }
                };
                if plausible && matches!(key.kind, SessionKind::Sign | SessionKind::Presign) {
                    self.early_signing.entry(key).or_insert(self.now);
                }
                if plausible && self.early_count < MAX_EARLY_MESSAGES {
                    self.early
                        .entry(key)
                        .or_default()
                        .push((from, payload.to_vec()));
                    self.early_count += 1;
                }
            }
        }
    }

    fn drain_session(&mut self, key: SessionKey) {
        loop {
            let Some(live) = self.sessions.get_mut(&key) else {
                return;
            };
            let Some(out) = live.session.poll_output() else {
                if !live.session.wants_primes() || self.primes_held.values().any(|(k, _)| *k == key)
                {
                    return;
                }
                self.supply_primes(key);
                self.request_primes();
                continue;
            };
            match out {
                ErasedOutput::Send { to, payload } => {
                    let msg = NodeMessage::Session {
                        key,
                        payload: payload.as_bytes().to_vec(),
                    };
                    if to == self.cfg.id {
                        self.feed_session(key, to, payload.as_bytes());
                    } else {
                        self.send(to, &msg);
                    }
                }
                ErasedOutput::Misbehaved { from, reason } => {
                    self.stats.refused += 1;
                    self.event(Event::PeerMisbehaved {
                        peer: from,
                        reason: format!("session {key:?}: {reason}"),
                    });
                }
                ErasedOutput::DkgDone(result) => {
                    self.sessions.remove(&key);
                    self.on_dkg_done(key, result);
                    return;
                }
                ErasedOutput::SignDone(result) => {
                    self.sessions.remove(&key);
                    self.on_sign_done(key, result);
                    return;
                }
                ErasedOutput::ReshareDone(result) => {
                    self.sessions.remove(&key);
                    self.on_reshare_done(key, result);
                    return;
                }
                ErasedOutput::PresignDone(result) => {
                    self.sessions.remove(&key);
                    self.on_presign_done(key, result);
                    return;
                }
            }
        }
    }

    fn on_dkg_done(&mut self, key: SessionKey, result: Result<(SecretBytes, Vec<u8>), Failure>) {
        let (task, attempt) = (key.task, key.attempt);
        match result {
            Ok((share, pkp)) => {
                let Some(t) = self.registry.tasks.get(&task) else {
                    return;
                };
                let share_key = (t.spec.key.clone(), KeyVersion(1));
                let token = self.token();
                let ops = vec![
                    PersistOp::PutShare {
                        key: share_key.0.clone(),
                        version: share_key.1,
                        share: share.clone(),
                    },
                    PersistOp::PutRecord {
                        table: SHARE_ORIGIN_TABLE.into(),
                        key: encode_share_key(&share_key.0, share_key.1),
                        value: RecordValue::Public(encode_origin(task, attempt)),
                    },
                ];
                self.shares.insert(share_key.clone(), share);
                self.share_origin.insert(share_key, (task, attempt));
                // The success report leaves only once the share is durable.
                let msg = NodeMessage::DkgReport {
                    task,
                    attempt,
                    result: Ok(pkp),
                };
                self.my_reports.insert((task, attempt), msg.clone());
                let mut held = Held::default();
                if let Some(leader) = self.leader {
                    held.transmits.push((leader, msg.encode()));
                }
                self.held.insert(token.0, held);
                self.outputs
                    .push_back(Output::Persist(PersistBatch { token, ops }));
            }
            Err(failure) => {
                self.event(Event::SessionFailed {
                    session: key,
                    failure: failure.clone(),
                });
                let reason = format!("{:?}", failure.kind);
                self.report_dkg(task, attempt, Err((reason, failure.culprits)));
            }
        }
    }

    fn on_timeout(&mut self) {
        let now = self.now;
        let expired: Vec<SessionKey> = self
            .early_signing
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) > self.cfg.round_timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.early_signing.remove(&key);
            self.early_count -= self.early.remove(&key).map_or(0, |v| v.len());
        }
        // A node whose thread was busy (an ECDSA round computes for seconds) wakes up late with
        // many ticks due, and its peers' messages still queued behind this timeout: ticking
        // them all now would time out its election (forgetting the leader, so it refuses the
        // leader's work) before it reads the heartbeats that are waiting. So at most one
        // heartbeat interval of ticks counts per wake-up; the rest of a stall is skipped, and a
        // leader that is really gone is still noticed at the normal pace afterwards.
        let mut ticks = 0;
        while self.next_tick <= now {
            if ticks < self.cfg.heartbeat_ticks && !self.removed {
                self.raw.tick();
                self.after_raft();
            }
            ticks += 1;
            self.next_tick = self.next_tick.saturating_add(self.cfg.tick);
        }
        let due: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, l)| l.session.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(live) = self.sessions.get_mut(&key) {
                live.session.handle_input(SessionInput::Timeout { now });
            }
            self.drain_session(key);
        }
        let expired: Vec<String> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.waiters.remove(&id);
            self.event(Event::Completed {
                request_id: id,
                result: Err(RequestError::TimedOut),
            });
        }
        self.poll_rotation();
        self.poll_presign();
        let round_due = self.leadership.poll_timeout() <= now;
        self.poll_leadership();
        if round_due {
            self.resend_reports();
        }
    }

    /// Re-sends this node's pending DKG/reshare reports to the leader: a report lost in transit
    /// must not leave a task waiting until the next leader change. The leader ignores duplicates.
    fn resend_reports(&mut self) {
        let Some(leader) = self.leader.filter(|l| *l != self.cfg.id) else {
            return;
        };
        let reports: Vec<NodeMessage> = self.my_reports.values().cloned().collect();
        for r in reports {
            self.send(leader, &r);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Peer messages
    // ---------------------------------------------------------------------------------------

    fn on_message(&mut self, from: ParticipantId, bytes: &[u8]) {
        // A joining node does not know the members added after bootstrap until the log reaches
        // it, so it takes Raft traffic from any authenticated node until it is a member.
        let joining = !self.registry.members.contains_key(&self.cfg.id);
        let raft_while_joining = joining && bytes.first() == Some(&1);
        if !self.registry.members.contains_key(&from) && !raft_while_joining {
            self.stats.refused += 1;
            self.event(Event::PeerMisbehaved {
                peer: from,
                reason: "not a cluster member".into(),
            });
            return;
        }
        match NodeMessage::decode(bytes) {
            Ok(msg) => self.on_node_message(from, msg),
            Err(e) => {
                self.stats.refused += 1;
                self.event(Event::PeerMisbehaved {
                    peer: from,
                    reason: format!("undecodable message: {e}"),
                });
            }
        }
    }

    fn on_node_message(&mut self, from: ParticipantId, msg: NodeMessage) {
        match msg {
            // A removed node is out of the cluster: raft-rs would panic committing as a leader
            // that is no longer in its own configuration (found by the simulator, seed 2846).
            NodeMessage::Raft(_) if self.removed => {}
            NodeMessage::Raft(bytes) => match raft_wire::decode_message(&bytes) {
                Ok(m)
                    if pid_of(m.get_from()) == Some(from)
                        && pid_of(m.get_to()) == Some(self.cfg.id) =>
                {
                    match raft_wire::check_from_peer(&self.raw.raft, &m) {
                        Ok(()) => {
                            let _ = self.raw.step(m);
                            self.after_raft();
                        }
                        Err(why) => self.refuse(from, &format!("raft message: {why}")),
                    }
                }
                Ok(_) => self.refuse(from, "raft message with a forged sender or wrong recipient"),
                Err(e) => self.refuse(from, &format!("raft message: {e}")),
            },
            NodeMessage::Session { key, payload } => self.feed_session(key, from, &payload),
            NodeMessage::SignStart(start) => self.on_sign_start(from, start),
            NodeMessage::PresignStart {
                session,
                key,
                version,
                signers,
            } => self.on_presign_start(from, session, key, version, signers),
            NodeMessage::PresignReport { session, ok } => self.on_presign_report(from, session, ok),
            NodeMessage::Forward {
                request_id,
                request,
            } => self.on_forward(from, request_id, request),
            // Answers come from the leader this node forwards to; anyone else's are refused.
            NodeMessage::Reply { request_id, result } if Some(from) == self.leader => {
                self.complete(request_id, result)
            }
            NodeMessage::Reply { .. } => {
                self.refuse(from, "a reply from a node that is not the leader")
            }
            NodeMessage::DkgReport {
                task,
                attempt,
                result,
            } => self.on_dkg_report(from, task, attempt, result),
            NodeMessage::ReshareReport {
                task,
                attempt,
                result,
            } => self.on_reshare_report(from, task, attempt, result),
            NodeMessage::Probe { nonce } => self.send(from, &NodeMessage::ProbeReply { nonce }),
            NodeMessage::ProbeReply { nonce } => self.on_probe_reply(from, nonce),
            NodeMessage::HealthReport { ratings } => self.on_health_report(from, ratings),
        }
    }

    fn refuse(&mut self, from: ParticipantId, reason: &str) {
        self.stats.refused += 1;
        self.event(Event::PeerMisbehaved {
            peer: from,
            reason: reason.to_string(),
        });
    }

    // ---------------------------------------------------------------------------------------
    // Client requests
    // ---------------------------------------------------------------------------------------

    fn on_client(&mut self, request_id: String, request: Request) {
        if let Err(why) = validate_request(&request_id, &request) {
            self.event(Event::Completed {
                request_id,
                result: Err(RequestError::BadRequest(why)),
            });
            return;
        }
        // Answered before? The same answer again, nothing runs twice.
        let known = match &request {
            Request::CreateKey { .. } | Request::Reshare { .. } => {
                self.task_request_result(&request_id, &request)
            }
            Request::Sign { .. } => self.sign_results.get(&request_id, &request.digest()),
            Request::AddMember { .. } | Request::RemoveMember { .. } => {
                self.membership_result(&request_id)
            }
        };
        if let Some(result) = known {
            self.event(Event::Completed { request_id, result });
            return;
        }
        if let Some(w) = self.waiters.get(&request_id) {
            if w.request != request {
                let result = Err(id_reused(&request_id));
                self.event(Event::Completed { request_id, result });
                return;
            }
        }
        let deadline = self.now.saturating_add(self.cfg.request_timeout);
        let fresh = self
            .waiters
            .insert(
                request_id.clone(),
                Waiter {
                    deadline,
                    request: request.clone(),
                },
            )
            .is_none();
        if fresh {
            self.route(request_id, request);
        }
    }

    fn route(&mut self, request_id: String, request: Request) {
        match self.leader {
            Some(l) if l == self.cfg.id => self.on_forward(l, request_id, request),
            Some(l) => self.send(
                l,
                &NodeMessage::Forward {
                    request_id,
                    request,
                },
            ),
            None => {
                if self.unrouted.len() < 4096 {
                    self.unrouted.push_back((request_id, request));
                }
            }
        }
    }

    /// An answer to a request this node received: cache signatures (bound to what the waiting
    /// request asked for) and tell the client.
    fn complete(&mut self, request_id: String, result: Result<Response, RequestError>) {
        let Some(waiter) = self.waiters.remove(&request_id) else {
            return;
        };
        if let Ok(Response::Signed { .. }) = &result {
            self.sign_results
                .put(request_id.clone(), waiter.request.digest(), result.clone());
        }
        self.event(Event::Completed { request_id, result });
    }

    fn reply(
        &mut self,
        to: ParticipantId,
        request_id: String,
        result: Result<Response, RequestError>,
    ) {
        if to == self.cfg.id {
            self.complete(request_id, result);
        } else {
            self.send(to, &NodeMessage::Reply { request_id, result });
        }
    }

    fn on_forward(&mut self, origin: ParticipantId, request_id: String, request: Request) {
        if !self.is_leader() {
            // Not (or no longer) the leader: pass it on if we know who is.
            match self.leader {
                Some(l) if l != self.cfg.id && l != origin => self.send(
                    l,
                    &NodeMessage::Forward {
                        request_id,
                        request,
                    },
                ),
                _ => {}
            }
            return;
        }
        if let Err(why) = validate_request(&request_id, &request) {
            return self.reply(origin, request_id, Err(RequestError::BadRequest(why)));
        }
        if matches!(request, Request::CreateKey { .. } | Request::Reshare { .. }) {
            if let Some(result) = self.task_request_result(&request_id, &request) {
                return self.reply(origin, request_id, result);
            }
            if self.registry.requests.contains_key(&request_id) {
                return; // running; every node answers its own waiters when it finishes
            }
        }
        match request {
            Request::CreateKey {
                key,
                scheme,
                threshold,
                participants,
            } => {
                let members: BTreeSet<ParticipantId> =
                    self.registry.members.keys().copied().collect();
                let chosen = participants.unwrap_or_default();
                let n = if chosen.is_empty() {
                    members.len()
                } else {
                    chosen.len()
                };
                if !chosen.is_subset(&members) {
                    return self.reply(
                        origin,
                        request_id,
                        Err(RequestError::BadRequest(
                            "a participant is not a cluster member".into(),
                        )),
                    );
                }
                // A threshold no participant set of this size can reach is the client's error,
                // not a shortage of healthy nodes: nothing would make the request succeed later.
                if usize::from(threshold) > n {
                    let of = if chosen.is_empty() {
                        "cluster members"
                    } else {
                        "chosen participants"
                    };
                    return self.reply(
                        origin,
                        request_id,
                        Err(RequestError::BadRequest(format!(
                            "threshold {threshold} exceeds the {n} {of}"
                        ))),
                    );
                }
                let cmd = Replicated::Submit {
                    request_id: request_id.clone(),
                    origin,
                    spec: DkgSpec {
                        key,
                        scheme,
                        threshold,
                        participants: chosen,
                    },
                };
                if !self.propose(&cmd) {
                    self.reply(origin, request_id, Err(RequestError::TimedOut));
                }
            }
            Request::Reshare {
                key,
                new_threshold,
                new_members,
            } => {
                // Checked here for a fast, specific answer; the registry checks again on apply
                // (the key may change between now and then).
                let Some(record) = self.registry.keys.get(&key) else {
                    return self.reply(origin, request_id, Err(RequestError::NoSuchKey(key)));
                };
                let members: BTreeSet<ParticipantId> =
                    self.registry.members.keys().copied().collect();
                let n = new_members
                    .as_ref()
                    .map_or(record.participants.len(), |m| m.len());
                let t = new_threshold.unwrap_or(record.threshold);
                if new_members.as_ref().is_some_and(|m| !m.is_subset(&members)) {
                    return self.reply(
                        origin,
                        request_id,
                        Err(RequestError::BadRequest(
                            "a new member is not a cluster member".into(),
                        )),
                    );
                }
                if usize::from(t) > n {
                    let of = if new_members.is_some() {
                        "new members"
                    } else {
                        "holders of the key"
                    };
                    return self.reply(
                        origin,
                        request_id,
                        Err(RequestError::BadRequest(format!(
                            "threshold {t} exceeds the {n} {of}"
                        ))),
                    );
                }
                let cmd = Replicated::SubmitReshare {
                    request_id: request_id.clone(),
                    origin,
                    key,
                    new_threshold,
                    new_members,
                };
                if !self.propose(&cmd) {
                    self.reply(origin, request_id, Err(RequestError::TimedOut));
                }
            }
            Request::Sign { key, messages } => {
                let digest = Request::Sign {
                    key: key.clone(),
                    messages: messages.clone(),
                }
                .digest();
                if let Some(result) = self.sign_results.get(&request_id, &digest) {
                    return self.reply(origin, request_id, result);
                }
                if let Some(job) = self
                    .sign_jobs
                    .values_mut()
                    .chain(self.sign_queue.iter_mut())
                    .find(|j| j.request_id == request_id)
                {
                    // The same id running for other messages: never hand this origin the
                    // other request's signatures.
                    if job.key != key || job.messages != messages {
                        return self.reply(origin, request_id.clone(), Err(id_reused(&request_id)));
                    }
                    job.origins.insert(origin);
                    return;
                }
                let job = SignJob {
                    request_id,
                    origins: BTreeSet::from([origin]),
                    key,
                    messages,
                    attempt: 0,
                    excluded: BTreeSet::new(),
                    signers: BTreeSet::new(),
                    started: self.now,
                    presigned: false,
                };
                self.sign_queue.push_back(job);
                self.schedule_sign();
            }
            Request::AddMember { id, role, address } => self.on_membership_request(
                origin,
                request_id,
                registry::MembershipChange::Add { id, role, address },
            ),
            Request::RemoveMember { id } => self.on_membership_request(
                origin,
                request_id,
                registry::MembershipChange::Remove { id },
            ),
        }
    }

    fn schedule_sign(&mut self) {
        while self.sign_jobs.len() < self.cfg.limits.sign {
            let Some(job) = self.sign_queue.pop_front() else {
                return;
            };
            self.start_sign(job);
        }
    }

    fn fail_sign(&mut self, job: SignJob, err: RequestError) {
        let result = Err(err);
        for o in &job.origins {
            self.reply(*o, job.request_id.clone(), result.clone());
        }
    }

    fn start_sign(&mut self, mut job: SignJob) {
        let Some(record) = self.registry.keys.get(&job.key).cloned() else {
            let k = job.key.clone();
            return self.fail_sign(job, RequestError::NoSuchKey(k));
        };
        job.attempt += 1;
        let candidates: BTreeSet<ParticipantId> = record
            .participants
            .iter()
            .copied()
            .filter(|p| {
                !job.excluded.contains(p)
                    && !self.down.contains(p)
                    && self.registry.members.contains_key(p)
            })
            .collect();
        let presigned = if job.attempt == 1 && record.scheme.ecdsa().is_some() {
            self.take_presignatures(&job.key, record.version, &candidates, job.messages.len())
        } else {
            None
        };
        let weights = select::health_weights(&candidates, &self.metrics, self.now);
        let t = usize::from(record.threshold);
        let chosen = match &presigned {
            Some((signers, _)) => Ok(signers.clone()),
            None => select::select(&weights, t, &self.exclusions, self.now, &mut self.rng),
        };
        let (presigned_signer, presignatures) = match presigned {
            Some((s, ids)) => (s.contains(&self.cfg.id), ids),
            None => (false, Vec::new()),
        };
        job.presigned = !presignatures.is_empty();
        let signers = match chosen {
            Ok(s) => s,
            Err(select::SelectError::NotEnoughEligible { eligible, .. }) => {
                let needed = record.threshold;
                return self.fail_sign(
                    job,
                    RequestError::NotEnoughParticipants {
                        needed,
                        available: eligible as u16,
                    },
                );
            }
            Err(e) => {
                return self.fail_sign(job, RequestError::BadRequest(e.to_string()));
            }
        };
        job.signers = signers.clone();
        job.started = self.now;
        let Some(run) = self.next_run_id() else {
            return self.fail_sign(
                job,
                RequestError::Failed {
                    reason: "this leader's run ids for its term are used up; retry after the next election".into(),
                    culprits: BTreeSet::new(),
                },
            );
        };
        let session = SessionKey {
            kind: SessionKind::Sign,
            task: run,
            attempt: job.attempt,
        };
        let config = SignConfig {
            me: self.cfg.id,
            coordinator: self.cfg.id,
            signers: signers.clone(),
            messages: job.messages.clone(),
            round_timeout: self.cfg.round_timeout,
        };
        let me = self.cfg.id;
        let send_starts = |node: &mut Node, job: &SignJob| {
            for to in signers.iter().copied().filter(|p| *p != me) {
                let msg = NodeMessage::SignStart(SignStart {
                    session,
                    key: job.key.clone(),
                    version: record.version,
                    signers: signers.clone(),
                    messages: job.messages.clone(),
                    presignatures: presignatures.clone(),
                });
                node.send(to, &msg);
            }
        };
        if presigned_signer {
            // This leader signs from its own pool: like any signer, only once its spend marks
            // are durable (`begin_presigned`).
            send_starts(self, &job);
            let (key, version) = (job.key.clone(), record.version);
            self.sign_jobs.insert(run, job);
            return self.begin_presigned(session, key, version, config, presignatures.clone());
        }
        let my_share = signers
            .contains(&self.cfg.id)
            .then(|| self.shares.get(&(job.key.clone(), record.version)).cloned())
            .flatten();
        let context = sign_context(&session, &job.key, record.version, &signers, &job.messages);
        let seed = self.session_seed(b"sign", my_share.as_ref(), &context);
        match sessions::start_sign(
            record.scheme,
            config,
            my_share.as_ref(),
            Some(&record.public_key_package),
            &session_context(&session),
            &seed,
            self.now,
        ) {
            Ok(s) => {
                self.stats.sign_sessions += 1;
                send_starts(self, &job);
                self.sign_jobs.insert(run, job);
                self.sessions.insert(session, Live { session: s });
                self.drain_session(session);
            }
            Err(e) => self.fail_sign(
                job,
                RequestError::Failed {
                    reason: format!("could not start signing: {e:?}"),
                    culprits: BTreeSet::new(),
                },
            ),
        }
    }

    fn on_sign_start(&mut self, from: ParticipantId, start: SignStart) {
        let SignStart {
            session,
            key,
            version,
            signers,
            messages,
            presignatures,
        } = start;
        if session.kind != SessionKind::Sign || self.sessions.contains_key(&session) {
            return self.refuse(from, "duplicate or malformed signing start");
        }
        if Some(from) != self.leader {
            return self.refuse(from, "signing start from a node that is not the leader");
        }
        let Some(record) = self.registry.keys.get(&key) else {
            return self.refuse(from, "signing start for an unknown key");
        };
        // Either the active version, or the activation test of a staged version: the running
        // reshare of this key produces `version`, the signers are its new members, and the only
        // message is the domain-separated test message (a staged share signs nothing else).
        let staged_test = self
            .registry
            .unfinished_task(&key)
            .and_then(|t| self.registry.tasks.get(&t))
            .is_some_and(|t| {
                matches!(t.kind, TaskKind::Reshare { .. })
                    && matches!(t.state, TaskState::Running { .. })
                    && t.kind.produces() == version
                    && signers.is_subset(&t.spec.participants)
                    && messages == [crate::reshare::versions::test_message(&key, version)]
            });
        let active_ok = record.version == version && signers.is_subset(&record.participants);
        if !(active_ok || staged_test) || !signers.contains(&self.cfg.id) {
            return self.refuse(from, "signing start with a wrong version or signer set");
        }
        if !presignatures.is_empty() && (!active_ok || record.scheme.ecdsa().is_none()) {
            return self.refuse(from, "presignatures named for a key version that has none");
        }
        let scheme = record.scheme;
        let Some(share) = self.shares.get(&(key.clone(), version)).cloned() else {
            return self.refuse(from, "signing start for a share this node does not hold");
        };
        if !self.booted(from) {
            return;
        }
        // Last check, first change: a run id is served once (a replayed start with other
        // messages would otherwise be a second signature under this signer's name).
        if !self.replayable_signing() {
            if let Err(stale) = self
                .served_runs
                .admit(from, self.raw.raft.term, session.task)
            {
                return self.refuse(from, &format!("signing start refused: {}", stale.reason()));
            }
        }
        let config = SignConfig {
            me: self.cfg.id,
            coordinator: from,
            signers,
            messages,
            round_timeout: self.cfg.round_timeout,
        };
        if !presignatures.is_empty() {
            return self.begin_presigned(session, key, version, config, presignatures);
        }
        let context = sign_context(&session, &key, version, &config.signers, &config.messages);
        let seed = if self.replayable_signing() {
            Seed::from_u64(u64::from(self.cfg.id.get())).child(b"sign", &session_context(&session))
        } else {
            self.session_seed(b"sign", Some(&share), &context)
        };
        match sessions::start_sign(
            scheme,
            config,
            Some(&share),
            None,
            &session_context(&session),
            &seed,
            self.now,
        ) {
            Ok(s) => {
                self.stats.sign_sessions += 1;
                self.sessions.insert(session, Live { session: s });
                self.drain_session(session);
                self.replay_early(session);
            }
            Err(e) => self.refuse(from, &format!("signing start refused: {e:?}")),
        }
    }

    fn on_sign_done(&mut self, key: SessionKey, result: Result<Option<Vec<Vec<u8>>>, Failure>) {
        if let Some(test) = self.reshare_tests.remove(&key.task) {
            if let Err(failure) = &result {
                self.event(Event::SessionFailed {
                    session: key,
                    failure: failure.clone(),
                });
            }
            return self.on_reshare_test_done(test, result);
        }
        let Some(mut job) = self.sign_jobs.remove(&key.task) else {
            if let Err(failure) = result {
                self.event(Event::SessionFailed {
                    session: key,
                    failure,
                });
            }
            return;
        };
        self.record_outcomes(&job.signers, job.started, result.as_ref().err());
        match result {
            Ok(Some(signatures)) => {
                let version = self
                    .registry
                    .keys
                    .get(&job.key)
                    .map_or(KeyVersion(1), |k| k.version);
                let result = Ok(Response::Signed {
                    key: job.key.clone(),
                    version,
                    signatures,
                });
                let digest = Request::Sign {
                    key: job.key.clone(),
                    messages: job.messages.clone(),
                }
                .digest();
                self.sign_results
                    .put(job.request_id.clone(), digest, result.clone());
                for o in &job.origins {
                    self.reply(*o, job.request_id.clone(), result.clone());
                }
            }
            Ok(None) => {}
            Err(failure) => {
                self.event(Event::SessionFailed {
                    session: key,
                    failure: failure.clone(),
                });
                job.excluded.extend(failure.culprits.iter().copied());
                // A presigned attempt may fail with no one to blame (a signer lost its pool in a
                // restart): the retry runs the interactive protocol.
                if job.attempt < self.cfg.max_attempts
                    && (!failure.culprits.is_empty() || job.presigned)
                {
                    self.start_sign(job);
                } else {
                    let reason = format!("{:?}", failure.kind);
                    self.fail_sign(
                        job,
                        RequestError::Failed {
                            reason,
                            culprits: failure.culprits,
                        },
                    );
                }
            }
        }
        self.schedule_sign();
        self.poll_presign();
    }
}

impl Node {
    /// Whether the injected bug "complete a DKG after the first report" is on.
    fn complete_dkg_early(&self) -> bool {
        #[cfg(feature = "bug-injection")]
        if self.bug == Some(InjectedBug::CompleteDkgEarly) {
            return true;
        }
        false
    }

    /// Feeds a session's outcome into per-node health and the exclusion cool-downs.
    fn record_outcomes(
        &mut self,
        participants: &BTreeSet<ParticipantId>,
        started: Instant,
        failure: Option<&Failure>,
    ) {
        let now = self.now;
        let latency = now.saturating_duration_since(started);
        for p in participants {
            let outcome = match failure {
                Some(f) if f.culprits.contains(p) => match f.kind {
                    FailureKind::Timeout { .. } => {
                        scoring::Outcome::Failed(scoring::FailureKind::Timeout)
                    }
                    _ => scoring::Outcome::Failed(scoring::FailureKind::Blamed),
                },
                _ => scoring::Outcome::Completed { latency },
            };
            self.exclusions.record(*p, outcome, now);
            self.metrics
                .entry(*p)
                .or_insert_with(|| scoring::NodeMetrics::new(scoring::ScoringConfig::default()))
                .record(now, outcome);
        }
    }

    /// Whether `p` is cooling down after blame or repeated timeouts (as this node sees it).
    pub fn is_excluded(&self, p: ParticipantId) -> bool {
        self.exclusions.is_excluded(p, self.now)
    }
}

impl Node {
    /// Installs a task session that was just started and replays messages buffered for it; if
    /// it could not start, emits `SessionFailed` and returns the reason for the caller's report.
    fn install_task_session(
        &mut self,
        key: SessionKey,
        started: Result<Box<dyn ErasedSession>, sessions::StartError>,
    ) -> Result<(), String> {
        match started {
            Ok(session) => {
                self.sessions.insert(key, Live { session });
                self.drain_session(key);
                self.replay_early(key);
                Ok(())
            }
            Err(e) => {
                let reason = format!("{e:?}");
                self.event(Event::SessionFailed {
                    session: key,
                    failure: Failure {
                        kind: FailureKind::Library(reason.clone()),
                        culprits: BTreeSet::new(),
                    },
                });
                Err(reason)
            }
        }
    }
}

fn validate_request(request_id: &str, request: &Request) -> Result<(), String> {
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID {
        return Err(format!("request id must be 1 to {MAX_REQUEST_ID} bytes"));
    }
    match request {
        Request::CreateKey {
            threshold,
            participants,
            ..
        } => {
            if *threshold < 2 {
                return Err(format!("threshold {threshold} is below 2"));
            }
            if let Some(p) = participants {
                if p.len() < usize::from(*threshold) {
                    return Err(format!(
                        "threshold {threshold} exceeds the {} participants named",
                        p.len()
                    ));
                }
            }
        }
        Request::Reshare {
            new_threshold,
            new_members,
            ..
        } => {
            if let Some(t) = new_threshold.filter(|t| *t < 2) {
                return Err(format!("threshold {t} is below 2"));
            }
            if let Some(m) = new_members {
                if m.len() < usize::from(new_threshold.unwrap_or(2)) {
                    return Err(format!(
                        "{} new members cannot meet threshold {}",
                        m.len(),
                        new_threshold.unwrap_or(2)
                    ));
                }
            }
        }
        Request::AddMember { address, .. } => {
            if address.is_empty() || address.len() > registry::MAX_ADDRESS {
                return Err(format!(
                    "address must be 1 to {} bytes",
                    registry::MAX_ADDRESS
                ));
            }
        }
        Request::RemoveMember { .. } => {}
        Request::Sign { messages, .. } => {
            if messages.is_empty() || messages.len() > crate::frost::sign::MAX_BATCH {
                return Err(format!(
                    "a batch must hold 1 to {} messages, not {}",
                    crate::frost::sign::MAX_BATCH,
                    messages.len()
                ));
            }
            if let Some(m) = messages
                .iter()
                .find(|m| m.len() > crate::frost::sign::MAX_MESSAGE_BYTES)
            {
                return Err(format!(
                    "a {}-byte message exceeds the {}-byte limit",
                    m.len(),
                    crate::frost::sign::MAX_MESSAGE_BYTES
                ));
            }
        }
    }
    Ok(())
}

/// What a signing session is about, for hedging its randomness.
fn sign_context(
    session: &SessionKey,
    key: &KeyId,
    version: KeyVersion,
    signers: &BTreeSet<ParticipantId>,
    messages: &[Vec<u8>],
) -> [u8; 32] {
    let mut w = Writer::new();
    wire::write_ids(&mut w, signers);
    let mut parts: Vec<&[u8]> = Vec::with_capacity(messages.len() + 4);
    let session = session_context(session);
    let version = version.0.to_be_bytes();
    let signers = w.finish();
    parts.extend([
        &session[..],
        key.as_str().as_bytes(),
        &version[..],
        &signers[..],
    ]);
    parts.extend(messages.iter().map(Vec::as_slice));
    freshness::context_digest(b"sign", &parts)
}

fn session_context(key: &SessionKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(key.kind as u8).u64(key.task).u32(key.attempt);
    w.finish()
}

fn encode_share_key(key: &KeyId, version: KeyVersion) -> Vec<u8> {
    let mut w = Writer::new();
    w.str(key.as_str()).u32(version.0);
    w.finish()
}

fn decode_share_key(bytes: &[u8]) -> Option<(KeyId, KeyVersion)> {
    let mut r = Reader::new(bytes);
    let key = KeyId::new(&r.str("key", 64).ok()?).ok()?;
    let v = KeyVersion(r.u32("version").ok()?);
    r.finish().ok()?;
    Some((key, v))
}

fn encode_origin(task: u64, attempt: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(task).u32(attempt);
    w.finish()
}

fn decode_origin(bytes: &[u8]) -> Option<(u64, u32)> {
    let mut r = Reader::new(bytes);
    let t = r.u64("task").ok()?;
    let a = r.u32("attempt").ok()?;
    r.finish().ok()?;
    Some((t, a))
}

#[allow(dead_code)]
fn _assert_decode_error_is_error(e: DecodeError) -> Box<dyn std::error::Error> {
    Box::new(e)
}
