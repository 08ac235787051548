//! The world: N real core `Node`s driven exactly as a daemon drives them, over the simulated
//! network, disks and clocks, with faults, the workload and the checkers. Single-threaded and
//! deterministic: everything comes from the seed.
//!
//! Run loop per input (the daemon's contract): feed the input stamped with the node's local
//! time, drain `poll_output` (transmits go to the network, `Persist` batches to the disk, whose
//! completion reports `Persisted`; events go to the client and the checkers), then re-arm the
//! node's timer from `poll_timeout`.

use std::collections::{BTreeMap, BTreeSet};

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::{Event, Input, Node, NodeConfig, Output};
use keyshard_core::persist::PersistToken;
use keyshard_core::rng::Seed;

use crate::choices::{SimRng, Tape};
use rand_core::RngCore;

use crate::checkers::{brief, Checkers, Violation};
use crate::clock::Clock;
use crate::disk::Disk;
use crate::network::{NetStats, Network, Packet};
use crate::swarm::Params;
use crate::trace::{short_digest, Trace};
use crate::workload::{Action, Probe, View, Workload, WorkloadStats};

/// A deliberate core bug to switch on (test builds only).
#[cfg(feature = "bug-injection")]
pub use keyshard_core::node::InjectedBug;

/// One node's place in the world.
struct Slot {
    cfg: NodeConfig,
    node: Option<Node>,
    clock: Clock,
    disk: Disk,
    incarnation: u32,
    removed: bool,
    /// The node's next deadline in global time.
    deadline: Option<u64>,
}

/// Something scheduled.
enum Ev {
    Deliver(Packet),
    DiskDone {
        node: ParticipantId,
        incarnation: u32,
        token: PersistToken,
    },
    PeerCheck {
        observer: ParticipantId,
        peer: ParticipantId,
    },
    Crash,
    Restart(ParticipantId, u32),
    Partition,
    OneWay,
    Clog,
    ClogLink(ParticipantId, ParticipantId),
    Unclog(ParticipantId, ParticipantId),
    Heal(Vec<(ParticipantId, ParticipantId)>),
    Workload,
    Liveness,
    Probe,
    /// The attacker acts.
    Byzantine,
}

/// Counters of what the world did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorldStats {
    /// Inputs fed to nodes.
    pub inputs: u64,
    /// Persist batches.
    pub batches: u64,
    /// Crashes.
    pub crashes: u64,
    /// Batches lost in crashes.
    pub lost_batches: u64,
    /// Restarts.
    pub restarts: u64,
    /// Two-way partitions.
    pub partitions: u64,
    /// One-way cuts.
    pub oneway: u64,
    /// Links clogged.
    pub clogged: u64,
    /// Peer up/down notifications.
    pub peer_status: u64,
    /// Nodes that joined (started as joiners).
    pub joiners: u64,
    /// Nodes removed.
    pub removed: u64,
    /// Key versions registered (events, all nodes).
    pub registered: u64,
    /// Leader changes seen (events, all nodes).
    pub leader_changes: u64,
    /// Starts the attacker replayed (`--byzantine`).
    pub replays: u64,
    /// Garbage messages the attacker sent.
    pub garbage: u64,
    /// Honest signing payloads the nonce-reuse checker saw.
    pub nonce_payloads: u64,
}

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Keep a readable trace.
    pub trace: bool,
    /// Take the world's choices (knobs, faults, delays, workload) from these bytes instead of
    /// the seed's RNG (the `sim_world` fuzz target; see [`crate::choices`]). Such a run uses a
    /// shorter safety phase.
    pub choices: Option<Vec<u8>>,
    /// How many nodes the attacker controls (`--byzantine K`; see [`crate::byzantine`]).
    pub byzantine: u16,
    /// A deliberate core bug to switch on.
    #[cfg(feature = "bug-injection")]
    pub bug: Option<InjectedBug>,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The knobs drawn from it.
    pub params: String,
    /// Broken invariants (the run stops at the first step that finds any).
    pub violations: Vec<Violation>,
    /// Hash of the trace.
    pub trace_hash: [u8; 32],
    /// The readable trace (with `trace`).
    pub trace: Vec<String>,
    /// Virtual time at the end (ms).
    pub virtual_ms: u64,
    /// Steps taken.
    pub steps: u64,
    /// World counters.
    pub world: WorldStats,
    /// Network counters.
    pub net: NetStats,
    /// Client counters.
    pub workload: WorkloadStats,
    /// Checker counters.
    pub checks: crate::checkers::CheckStats,
}

impl RunReport {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!("keyshard-sim --seed {} --trace", self.seed)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Safety,
    Liveness,
}

/// Mean time between two acts of the attacker (virtual ms).
const BYZANTINE_EVERY_MS: u64 = 150;

/// The world.
pub struct World {
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    slots: BTreeMap<ParticipantId, Slot>,
    net: Network,
    reported: BTreeMap<(ParticipantId, ParticipantId), bool>,
    params: Params,
    seed: Seed,
    rng: SimRng,
    disk_rng: SimRng,
    phase: Phase,
    probe_started: Option<u64>,
    done: bool,
    workload: Workload,
    /// The checkers.
    pub checkers: Checkers,
    trace: Trace,
    stats: WorldStats,
    /// The attacker and the nodes it controls (none without `--byzantine`).
    attacker: crate::byzantine::Attacker,
    byzantine_rng: SimRng,
    /// Honest nodes' signing payloads, for the nonce-reuse checker.
    nonce_watch: crate::byzantine::NonceWatch,
    #[cfg(feature = "bug-injection")]
    bug: Option<InjectedBug>,
}

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).expect("ids start at 1")
}

impl World {
    /// Builds the world for `opts.seed` and starts the initial nodes.
    pub fn new(opts: &RunOptions) -> World {
        let seed = Seed::from_u64(opts.seed);
        let tape = opts
            .choices
            .as_ref()
            .map(|bytes| Tape::new(bytes, seed.child(b"tape-rest", &[]).rng()));
        let source = |label: &[u8]| match &tape {
            Some(t) => SimRng::Tape(t.clone()),
            None => SimRng::from(seed.child(label, &[]).rng()),
        };
        let mut params = Params::draw(source(b"params"));
        if tape.is_some() {
            params.shorten_for_fuzzing();
        }
        let ids: Vec<ParticipantId> = (1..=params.max_id).map(pid).collect();
        let net = Network::new(
            &ids,
            params.latency,
            params.jitter,
            params.loss_ppm,
            params.dup_ppm,
            source(b"net"),
        );
        let workload = Workload::new(source(b"workload"), params.mix.clone());
        // Its own stream, so runs without Byzantine nodes draw exactly as before.
        let byzantine_rng = source(b"byzantine");
        let mut w = World {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            slots: BTreeMap::new(),
            net,
            reported: BTreeMap::new(),
            rng: source(b"faults"),
            disk_rng: source(b"disk"),
            seed,
            phase: Phase::Safety,
            probe_started: None,
            done: false,
            workload,
            checkers: Checkers::new(),
            trace: Trace::new(opts.trace),
            stats: WorldStats::default(),
            attacker: crate::byzantine::Attacker::default(),
            byzantine_rng,
            nonce_watch: crate::byzantine::NonceWatch::default(),
            #[cfg(feature = "bug-injection")]
            bug: opts.bug,
            params,
        };
        for id in 1..=w.params.n {
            w.add_slot(pid(id));
        }
        w.schedule(w.params.op_every, Ev::Workload);
        let p = w.params.clone();
        for (every, ev) in [
            (p.crash_every, Ev::Crash),
            (p.partition_every, Ev::Partition),
            (p.oneway_every, Ev::OneWay),
            (p.clog_every, Ev::Clog),
        ] {
            if let Some(mean) = every {
                let at = w.below(2 * mean);
                w.schedule(at, ev);
            }
        }
        w.schedule(p.safety_ms, Ev::Liveness);
        // The attacker's nodes: fewer than the smallest threshold the workload uses (2), so at
        // most one (`run_seed` refuses more).
        let mut candidates: Vec<ParticipantId> = (1..=w.params.n).map(pid).collect();
        for _ in 0..opts.byzantine.min(w.params.n) {
            let i = (w.byzantine_rng.next_u64() % candidates.len() as u64) as usize;
            w.attacker.nodes.insert(candidates.remove(i));
        }
        if !w.attacker.nodes.is_empty() {
            let at = 1 + w.byzantine_rng.next_u64() % BYZANTINE_EVERY_MS;
            w.schedule(at, Ev::Byzantine);
        }
        w
    }

    /// A running node, for inspection.
    pub fn node(&self, id: ParticipantId) -> Option<&Node> {
        self.slots.get(&id).and_then(|s| s.node.as_ref())
    }

    /// A node's durable disk, for inspection.
    pub fn disk(&self, id: ParticipantId) -> Option<&crate::disk::DiskState> {
        self.slots.get(&id).map(|s| &s.disk.durable)
    }

    /// Global virtual time (ms).
    pub fn now(&self) -> u64 {
        self.now
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }

    fn range(&mut self, r: (u64, u64)) -> u64 {
        r.0 + self.below(r.1.saturating_sub(r.0) + 1)
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now + delay, self.seq), ev);
    }

    fn add_slot(&mut self, id: ParticipantId) {
        let offset = self.below(self.params.max_offset + 1);
        let d = self.params.max_drift_ppm;
        let ppm = self.below(2 * d as u64 + 1) as i64 - d;
        let slot = Slot {
            cfg: self.params.node_config(id),
            node: None,
            clock: Clock::new(offset, ppm),
            disk: Disk::default(),
            incarnation: 0,
            removed: false,
            deadline: None,
        };
        self.slots.insert(id, slot);
        self.start(id);
    }

    /// Starts (or restarts) a node from its disk with a fresh child seed.
    fn start(&mut self, id: ParticipantId) {
        let now = self.now;
        let slot = self.slots.get_mut(&id).expect("slot exists");
        let mut context = id.get().to_be_bytes().to_vec();
        context.extend_from_slice(&slot.incarnation.to_be_bytes());
        let node_seed = self.seed.child(b"node", &context);
        let restored = slot.disk.durable.restored();
        let shares = slot.disk.durable.shares.clone();
        let local = slot.clock.local(now);
        match Node::new(slot.cfg.clone(), restored, shares, node_seed, local) {
            Ok(node) => {
                #[cfg(feature = "bug-injection")]
                let node = {
                    let mut node = node;
                    node.bug = self.bug;
                    node
                };
                slot.node = Some(node);
            }
            Err(e) => {
                let detail = format!("node {id} did not start from its disk: {e}");
                self.violation("driver-contract", detail);
                return;
            }
        }
        let inc = self.slots[&id].incarnation;
        self.trace
            .record(now, "start", &[id.get() as u8, inc as u8], || {
                format!("start node {id} (incarnation {inc})")
            });
        // A fresh node believes every peer is up; its transport soon says otherwise.
        let peers: Vec<ParticipantId> = self.slots.keys().copied().filter(|p| *p != id).collect();
        for p in peers {
            self.reported.insert((id, p), true);
            let d = self.range((0, self.params.detect.0));
            self.schedule(
                d,
                Ev::PeerCheck {
                    observer: id,
                    peer: p,
                },
            );
            let d = self.range(self.params.detect);
            self.schedule(
                d,
                Ev::PeerCheck {
                    observer: p,
                    peer: id,
                },
            );
        }
        self.drain(id);
    }

    fn violation(&mut self, checker: &'static str, detail: String) {
        self.checkers.report(self.now, checker, detail);
    }

    fn alive(&self, id: ParticipantId) -> bool {
        self.slots.get(&id).is_some_and(|s| s.node.is_some())
    }

    /// Feeds one input to a running node, then drains it.
    fn feed(
        &mut self,
        id: ParticipantId,
        make: impl FnOnce(keyshard_core::time::Instant) -> Input<'static>,
    ) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let local = slot.clock.local(now);
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        self.stats.inputs += 1;
        if let Err(e) = node.handle_input(make(local)) {
            self.violation(
                "driver-contract",
                format!("node {id} refused a driver input: {e}"),
            );
        }
        self.drain(id);
    }

    fn feed_message(&mut self, id: ParticipantId, from: ParticipantId, bytes: &[u8]) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let at = slot.clock.local(now);
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        self.stats.inputs += 1;
        if let Err(e) = node.handle_input(Input::Message { at, from, bytes }) {
            self.violation(
                "driver-contract",
                format!("node {id} refused a message input: {e}"),
            );
        }
        self.drain(id);
    }

    /// Drains a node's outputs, then runs the per-node checkers and re-arms its timer. Events
    /// are handled last, so answers are checked against the registry the node now has.
    fn drain(&mut self, id: ParticipantId) {
        let now = self.now;
        let mut events = Vec::new();
        loop {
            let Some(slot) = self.slots.get_mut(&id) else {
                return;
            };
            let Some(node) = slot.node.as_mut() else {
                return;
            };
            let Some(out) = node.poll_output() else {
                break;
            };
            match out {
                Output::Transmit { to, bytes } => {
                    self.checkers.transmitted(&bytes);
                    if self.attacker.nodes.contains(&id) {
                        self.attacker.sent(id, to, &bytes);
                    } else if let Some(detail) = self.nonce_watch.sent(id, to, &bytes) {
                        self.checkers.report(now, "no-nonce-reuse", detail);
                    }
                    self.trace.record(now, "send", &bytes, || {
                        format!(
                            "{id} -> {to}: {} bytes (tag {}) #{}",
                            bytes.len(),
                            bytes.first().copied().unwrap_or(0),
                            short_digest(&bytes)
                        )
                    });
                    let to_incarnation = self.slots.get(&to).map_or(0, |s| s.incarnation);
                    let packet = Packet {
                        from: id,
                        to,
                        to_incarnation,
                        bytes,
                    };
                    for (at, p) in self.net.send(packet, now) {
                        self.seq += 1;
                        self.queue.insert((at, self.seq), Ev::Deliver(p));
                    }
                }
                // The simulated workload creates FROST keys only (an ECDSA key costs tens of
                // seconds of aux info CPU per party): no primes are generated.
                Output::GeneratePrimes { .. } => {}
                Output::Persist(batch) => {
                    self.stats.batches += 1;
                    let registry = slot.node.as_ref().expect("running").registry();
                    self.checkers.batch_emitted(now, id, &batch, registry);
                    let token = batch.token;
                    let ops = batch.ops.len();
                    let lat = {
                        let (lo, hi) = self.params.disk_latency;
                        lo + self.disk_rng.next_u64() % (hi - lo + 1)
                    };
                    let done_at = slot.disk.submit(batch, now, lat);
                    let incarnation = slot.incarnation;
                    self.trace
                        .record(now, "persist", &token.0.to_be_bytes(), || {
                            format!(
                                "{id} persist batch {} ({ops} ops), durable at {done_at}",
                                token.0
                            )
                        });
                    self.seq += 1;
                    self.queue.insert(
                        (done_at, self.seq),
                        Ev::DiskDone {
                            node: id,
                            incarnation,
                            token,
                        },
                    );
                }
                Output::Event(e) => events.push(e),
            }
        }
        self.after_input(id);
        for e in events {
            self.on_event(id, e);
        }
    }

    fn on_event(&mut self, id: ParticipantId, e: Event) {
        let now = self.now;
        let text = format!("{e:?}");
        self.trace.record(now, "event", text.as_bytes(), || {
            format!("{id} event {text}")
        });
        let inc = self.slots[&id].incarnation;
        match e {
            Event::Completed { request_id, result } => {
                self.checkers.answered(now, (id, inc), &request_id, &result);
                self.workload.answered(now, &request_id, &result);
                let _ = brief(&result);
            }
            Event::Removed => {
                self.stats.removed += 1;
                if let Some(s) = self.slots.get_mut(&id) {
                    s.removed = true;
                }
            }
            Event::KeyRegistered { .. } => self.stats.registered += 1,
            Event::LeaderChanged { .. } => self.stats.leader_changes += 1,
            Event::BadLogEntry { index, reason } => {
                self.violation(
                    "log-entries-decode",
                    format!("node {id}: entry {index}: {reason}"),
                );
            }
            // Every simulated node is honest and the network only loses, delays, duplicates
            // and reorders: the core's Raft guard (`raft_wire::check_from_peer`) refusing a
            // message here means a node sent what raft-rs would have crashed on (for example a
            // heartbeat committing past a follower's log after that follower lost entries it
            // had acknowledged), which the guard must not hide.
            Event::PeerMisbehaved { peer, reason }
                if reason.starts_with("raft message") && !self.attacker.nodes.contains(&peer) =>
            {
                self.violation(
                    "honest-raft-accepted",
                    format!("node {id} refused Raft traffic from {peer}: {reason}"),
                );
            }
            _ => {}
        }
    }

    /// Per-node checks after an input, and the node's next deadline.
    fn after_input(&mut self, id: ParticipantId) {
        let now = self.now;
        let Some(slot) = self.slots.get(&id) else {
            return;
        };
        let Some(node) = slot.node.as_ref() else {
            return;
        };
        if let Some(l) = node.leader() {
            self.checkers.leader_view(now, id, node.term(), l);
        }
        let slots = &self.slots;
        self.checkers.registry_seen(now, id, node.registry(), &|p| {
            slots.get(&p).map(|s| &s.disk.durable)
        });
        let deadline = slot.clock.global_at(node.poll_timeout(), now);
        self.slots.get_mut(&id).expect("exists").deadline = Some(deadline);
    }

    // ---------------------------------------------------------------------------------------
    // Stepping
    // ---------------------------------------------------------------------------------------

    /// One step: the earliest node deadline or scheduled event. Returns false when the run is
    /// over.
    pub fn step(&mut self) -> bool {
        if self.done || !self.checkers.violations().is_empty() {
            return false;
        }
        let next_event = self.queue.first_key_value().map(|(k, _)| k.0);
        let next_timer = self
            .slots
            .values()
            .filter_map(|s| s.deadline.filter(|_| s.node.is_some()))
            .min();
        match (next_event, next_timer) {
            (_, Some(t)) if next_event.is_none_or(|e| t <= e) => {
                self.now = self.now.max(t);
                let due: Vec<ParticipantId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| s.node.is_some() && s.deadline.is_some_and(|d| d <= self.now))
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    self.trace
                        .record(self.now, "timeout", &[id.get() as u8], || {
                            format!("{id} timeout")
                        });
                    self.feed(id, |now| Input::Timeout { now });
                }
            }
            (Some(_), _) => {
                let ((at, _), ev) = self.queue.pop_first().expect("non-empty");
                self.now = self.now.max(at);
                self.handle(ev);
            }
            _ => return false,
        }
        self.checkers.check_deadlines(self.now);
        if let Some(started) = self.probe_started {
            match &self.workload.probe {
                Probe::Done => self.done = true,
                Probe::Failed(why) => {
                    let why = why.clone();
                    self.checkers
                        .liveness_failed(self.now, format!("the final probe failed: {why}"));
                }
                _ if self.now > started + self.params.probe_ms => {
                    let detail = format!(
                        "the final probe (create a key, then sign) did not finish within {} s of a healed cluster ({:?})",
                        self.params.probe_ms / 1000,
                        self.workload.probe
                    );
                    self.checkers.liveness_failed(self.now, detail);
                }
                _ => {}
            }
        }
        !self.done && self.checkers.violations().is_empty()
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Deliver(p) => {
                let ok = self
                    .slots
                    .get(&p.to)
                    .is_some_and(|s| s.node.is_some() && s.incarnation == p.to_incarnation)
                    && self.net.arrives(p.from, p.to);
                self.trace.record(
                    now,
                    "deliver",
                    &[p.from.get() as u8, p.to.get() as u8, ok as u8],
                    || {
                        format!(
                            "{} -> {} {} #{}",
                            p.from,
                            p.to,
                            if ok { "delivered" } else { "dropped" },
                            short_digest(&p.bytes)
                        )
                    },
                );
                if ok {
                    self.feed_message(p.to, p.from, &p.bytes);
                }
            }
            Ev::DiskDone {
                node,
                incarnation,
                token,
            } => {
                let Some(slot) = self.slots.get_mut(&node) else {
                    return;
                };
                if slot.incarnation != incarnation || slot.node.is_none() {
                    return;
                }
                let batch = slot.disk.pending.front().map(|p| p.batch.clone());
                if !slot.disk.complete(token) {
                    self.violation(
                        "driver-contract",
                        format!("simulator bug: disk of {node} completed out of order"),
                    );
                    return;
                }
                let batch = batch.expect("completed");
                self.checkers
                    .batch_durable(now, node, &batch, &self.slots[&node].disk.durable);
                self.trace
                    .record(now, "durable", &token.0.to_be_bytes(), || {
                        format!("{node} batch {} durable", token.0)
                    });
                self.feed(node, |at| Input::Persisted { at, token });
            }
            Ev::PeerCheck { observer, peer } => self.peer_check(observer, peer),
            Ev::Byzantine => {
                if self.phase != Phase::Safety {
                    return; // the attacker goes quiet for the liveness phase
                }
                let members: Vec<ParticipantId> = self.slots.keys().copied().collect();
                let rng = &mut self.byzantine_rng;
                let act = self.attacker.act(&members, |n| rng.next_u64() % n.max(1));
                if let Some(act) = act {
                    let alive = self.slots.get(&act.from).is_some_and(|s| s.node.is_some());
                    if alive {
                        self.trace.record(now, "byzantine", &act.bytes, || {
                            format!(
                                "attacker at {} -> {}: {} bytes #{}",
                                act.from,
                                act.to,
                                act.bytes.len(),
                                short_digest(&act.bytes)
                            )
                        });
                        let to_incarnation = self.slots.get(&act.to).map_or(0, |s| s.incarnation);
                        let packet = Packet {
                            from: act.from,
                            to: act.to,
                            to_incarnation,
                            bytes: act.bytes,
                        };
                        for (at, p) in self.net.send(packet, now) {
                            self.seq += 1;
                            self.queue.insert((at, self.seq), Ev::Deliver(p));
                        }
                    }
                }
                let d = 1 + self.byzantine_rng.next_u64() % (2 * BYZANTINE_EVERY_MS);
                self.schedule(d, Ev::Byzantine);
            }
            Ev::Crash => {
                if self.phase != Phase::Safety {
                    return;
                }
                let live: Vec<ParticipantId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| s.node.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                if !live.is_empty() {
                    let id = live[self.below(live.len() as u64) as usize];
                    self.crash(id);
                }
                if let Some(mean) = self.params.crash_every {
                    let d = 1 + self.below(2 * mean);
                    self.schedule(d, Ev::Crash);
                }
            }
            Ev::Restart(id, inc) => {
                if self
                    .slots
                    .get(&id)
                    .is_some_and(|s| s.node.is_none() && s.incarnation == inc)
                {
                    self.stats.restarts += 1;
                    self.start(id);
                }
            }
            Ev::Partition => {
                if self.phase != Phase::Safety {
                    return;
                }
                self.stats.partitions += 1;
                let ids: Vec<ParticipantId> = self.slots.keys().copied().collect();
                let side: Vec<bool> = ids.iter().map(|_| self.below(2) == 0).collect();
                let mut cut = Vec::new();
                for (i, a) in ids.iter().enumerate() {
                    for (j, b) in ids.iter().enumerate() {
                        if side[i] != side[j] {
                            cut.push((*a, *b));
                        }
                    }
                }
                self.trace.record(now, "partition", &[], || {
                    format!(
                        "partition {:?}",
                        ids.iter()
                            .zip(&side)
                            .map(|(p, s)| (p.get(), *s))
                            .collect::<Vec<_>>()
                    )
                });
                self.cut(cut);
                if let Some(mean) = self.params.partition_every {
                    let d = 1 + self.below(2 * mean);
                    self.schedule(d, Ev::Partition);
                }
            }
            Ev::OneWay => {
                if self.phase != Phase::Safety {
                    return;
                }
                let ids: Vec<ParticipantId> = self.slots.keys().copied().collect();
                let a = ids[self.below(ids.len() as u64) as usize];
                let b = ids[self.below(ids.len() as u64) as usize];
                if a != b {
                    self.stats.oneway += 1;
                    self.trace
                        .record(now, "oneway", &[], || format!("cut {a} -> {b}"));
                    self.cut(vec![(a, b)]);
                }
                if let Some(mean) = self.params.oneway_every {
                    let d = 1 + self.below(2 * mean);
                    self.schedule(d, Ev::OneWay);
                }
            }
            Ev::Clog => {
                if self.phase != Phase::Safety {
                    return;
                }
                // Clog links one by one, then unclog them in random order.
                let ids: Vec<ParticipantId> = self.slots.keys().copied().collect();
                let k = 1 + self.below(4);
                let gap = 200 + self.below(2_000);
                let (lo, hi) = self.params.fault_duration;
                for i in 0..k {
                    let a = ids[self.below(ids.len() as u64) as usize];
                    let b = ids[self.below(ids.len() as u64) as usize];
                    if a == b {
                        continue;
                    }
                    self.schedule(i * gap, Ev::ClogLink(a, b));
                    let heal = k * gap + lo + self.below(hi - lo + 1);
                    self.schedule(heal, Ev::Unclog(a, b));
                }
                if let Some(mean) = self.params.clog_every {
                    let d = 1 + self.below(2 * mean);
                    self.schedule(d, Ev::Clog);
                }
            }
            Ev::ClogLink(a, b) => {
                if self.phase == Phase::Safety {
                    self.stats.clogged += 1;
                    self.trace
                        .record(now, "clog", &[], || format!("clog {a} -> {b}"));
                    self.net.clog(a, b);
                }
            }
            Ev::Unclog(a, b) => {
                self.trace
                    .record(now, "unclog", &[], || format!("unclog {a} -> {b}"));
                for (at, p) in self.net.unclog(a, b, now) {
                    self.seq += 1;
                    self.queue.insert((at, self.seq), Ev::Deliver(p));
                }
            }
            Ev::Heal(links) => {
                self.trace
                    .record(now, "heal", &[], || format!("heal {links:?}"));
                for (a, b) in &links {
                    self.net.set_cut(*a, *b, false);
                }
                self.status_checks(&links);
            }
            Ev::Workload => {
                let view = self.view();
                for action in self.workload.tick(&view) {
                    self.act(action);
                }
                let d = self.params.op_every / 2 + self.below(self.params.op_every + 1);
                self.schedule(d.max(1), Ev::Workload);
            }
            Ev::Liveness => self.begin_liveness(),
            Ev::Probe => {
                self.trace.record(now, "probe", &[], || {
                    "final probe: create a key and sign".into()
                });
                self.probe_started = Some(now);
                self.workload.start_probe();
            }
        }
    }

    fn cut(&mut self, links: Vec<(ParticipantId, ParticipantId)>) {
        for (a, b) in &links {
            self.net.set_cut(*a, *b, true);
        }
        self.status_checks(&links);
        let (lo, hi) = self.params.fault_duration;
        let d = lo + self.below(hi - lo + 1);
        self.schedule(d, Ev::Heal(links));
    }

    fn status_checks(&mut self, links: &[(ParticipantId, ParticipantId)]) {
        for (a, b) in links {
            for (o, p) in [(*a, *b), (*b, *a)] {
                let d = self.range(self.params.detect);
                self.schedule(
                    d,
                    Ev::PeerCheck {
                        observer: o,
                        peer: p,
                    },
                );
            }
        }
    }

    /// The transport's view: `peer` is up for `observer` if it runs and the link works both
    /// ways. Reports only changes, as a connection-oriented transport would.
    fn peer_check(&mut self, observer: ParticipantId, peer: ParticipantId) {
        if !self.alive(observer) {
            return;
        }
        let up = self.alive(peer) && self.net.connected(observer, peer);
        if self.reported.get(&(observer, peer)) == Some(&up) {
            return;
        }
        self.reported.insert((observer, peer), up);
        self.stats.peer_status += 1;
        self.trace.record(
            self.now,
            "peer",
            &[observer.get() as u8, peer.get() as u8, up as u8],
            || format!("{observer} sees {peer} {}", if up { "up" } else { "down" }),
        );
        self.feed(observer, |at| Input::PeerStatus { at, peer, up });
    }

    fn crash(&mut self, id: ParticipantId) {
        let now = self.now;
        let torn = self.params.torn_ppm;
        let slot = self.slots.get_mut(&id).expect("exists");
        if slot.node.is_none() {
            return;
        }
        slot.node = None;
        slot.deadline = None;
        slot.incarnation += 1;
        // Each batch in flight reached the medium with probability `torn` (a prefix).
        let mut reached = 0;
        for _ in 0..slot.disk.pending.len() {
            if (self.disk_rng.next_u64() % 1_000_000) < u64::from(torn) {
                reached += 1;
            } else {
                break;
            }
        }
        let lost = slot.disk.crash(reached);
        self.stats.crashes += 1;
        self.stats.lost_batches += lost as u64;
        self.checkers.crashed(id, &self.slots[&id].disk.durable);
        self.workload.node_crashed(id, now);
        self.trace.record(now, "crash", &[id.get() as u8], || {
            format!("CRASH {id}: {reached} unacknowledged batches reached the disk, {lost} lost")
        });
        let peers: Vec<ParticipantId> = self.slots.keys().copied().filter(|p| *p != id).collect();
        for p in peers {
            let d = self.range(self.params.detect);
            self.schedule(
                d,
                Ev::PeerCheck {
                    observer: p,
                    peer: id,
                },
            );
        }
        let inc = self.slots[&id].incarnation;
        let down = self.range(self.params.downtime);
        self.schedule(down, Ev::Restart(id, inc));
    }

    fn begin_liveness(&mut self) {
        let now = self.now;
        self.phase = Phase::Liveness;
        self.trace.record(now, "liveness", &[], || {
            "LIVENESS PHASE: the network heals, crashed nodes restart".into()
        });
        self.net.loss_ppm = 0;
        self.net.dup_ppm = 0;
        // Heal every cut and clogged link, in random order over two seconds.
        for (a, b) in self.net.faulty_links() {
            let d = self.below(2_000);
            if self.net.is_clogged(a, b) {
                self.schedule(d, Ev::Unclog(a, b));
            }
            self.schedule(d, Ev::Heal(vec![(a, b)]));
        }
        let crashed: Vec<(ParticipantId, u32)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.node.is_none())
            .map(|(id, s)| (*id, s.incarnation))
            .collect();
        for (id, inc) in crashed {
            let d = self.below(2_000);
            self.schedule(d, Ev::Restart(id, inc));
        }
        let bound = self.params.request_timeout_ms + 10_000;
        self.checkers.liveness = Some((now, bound));
        self.schedule(self.params.settle_ms, Ev::Probe);
    }

    fn view(&self) -> View {
        // The membership as the most recent leader sees it (else any running node).
        let leader = self
            .slots
            .values()
            .filter_map(|s| s.node.as_ref())
            .filter(|n| n.leader() == Some(n.id()))
            .max_by_key(|n| n.term());
        let any = self.slots.values().filter_map(|s| s.node.as_ref()).next();
        let members: BTreeSet<ParticipantId> = leader
            .or(any)
            .map(|n| n.registry().members.keys().copied().collect())
            .unwrap_or_default();
        let live = self
            .slots
            .iter()
            .filter(|(id, s)| s.node.is_some() && !s.removed && members.contains(id))
            .map(|(id, _)| *id)
            .collect();
        View {
            now: self.now,
            live,
            members,
            max_id: self.params.max_id,
            started: self.slots.keys().copied().collect(),
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Submit {
                node,
                request_id,
                request,
            } => {
                let now = self.now;
                if !self.alive(node) {
                    return;
                }
                let inc = self.slots[&node].incarnation;
                self.checkers
                    .submitted(now, (node, inc), &request_id, &request);
                self.trace.record(now, "client", request_id.as_bytes(), || {
                    format!("client -> {node}: {request_id} {request:?}")
                });
                self.feed(node, |at| Input::Client {
                    at,
                    request_id,
                    request,
                });
            }
            Action::StartJoiner(id) => {
                if !self.slots.contains_key(&id) && id.get() <= self.params.max_id {
                    self.stats.joiners += 1;
                    self.add_slot(id);
                }
            }
        }
    }

    /// Runs to the end (or the first violation) and reports.
    pub fn run(mut self) -> RunReport {
        self.run_loop();
        self.report()
    }

    fn run_loop(&mut self) {
        // A hard stop far beyond the phases, against a world that never finishes.
        let limit = self.params.safety_ms + self.params.settle_ms + self.params.probe_ms + 60_000;
        while self.step() {
            if self.now > limit {
                self.checkers
                    .liveness_failed(self.now, "the run did not finish".into());
                break;
            }
        }
    }

    fn report(mut self) -> RunReport {
        let now = self.now;
        self.stats.replays = self.attacker.replays;
        self.stats.garbage = self.attacker.garbage;
        self.stats.nonce_payloads = self.nonce_watch.checked;
        self.checkers.scan(now);
        let (trace, _) = self.trace.take_lines();
        RunReport {
            seed: 0,
            params: self.params.summary(),
            violations: self.checkers.violations().to_vec(),
            trace_hash: self.trace.digest(),
            trace,
            virtual_ms: now,
            steps: self.trace.steps(),
            world: self.stats,
            net: self.net.stats.clone(),
            workload: self.workload.stats.clone(),
            checks: self.checkers.stats.clone(),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs one seed. A panic anywhere in the world (a node, raft-rs, a session) is a violation;
/// the trace up to it is kept.
pub fn run_seed(opts: &RunOptions) -> RunReport {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut r = match catch_unwind(AssertUnwindSafe(|| World::new(opts))) {
        Ok(mut world) => match catch_unwind(AssertUnwindSafe(|| world.run_loop())) {
            Ok(()) => world.report(),
            Err(panic) => {
                let detail = format!("the world panicked: {}", panic_message(&*panic));
                let now = world.now;
                world.checkers.report(now, "no-panic", detail);
                world.report()
            }
        },
        Err(panic) => RunReport {
            seed: opts.seed,
            params: Params::draw(Seed::from_u64(opts.seed).child(b"params", &[]).rng().into())
                .summary(),
            violations: vec![Violation {
                at: 0,
                checker: "no-panic",
                detail: format!(
                    "the world panicked while starting: {}",
                    panic_message(&*panic)
                ),
            }],
            trace_hash: [0; 32],
            trace: vec![],
            virtual_ms: 0,
            steps: 0,
            world: WorldStats::default(),
            net: NetStats::default(),
            workload: WorkloadStats::default(),
            checks: crate::checkers::CheckStats::default(),
        },
    };
    r.seed = opts.seed;
    r
}

/// Parses a bug name for `--inject-bug`.
#[cfg(feature = "bug-injection")]
pub fn parse_bug(name: &str) -> Result<InjectedBug, String> {
    match name {
        "erase-old-when-staged" => Ok(InjectedBug::EraseOldWhenStaged),
        "complete-dkg-early" => Ok(InjectedBug::CompleteDkgEarly),
        "replayable-signing" => Ok(InjectedBug::ReplayableSigning),
        _ => Err(format!(
            "unknown bug {name:?}; expected erase-old-when-staged, complete-dkg-early or \
             replayable-signing"
        )),
    }
}
