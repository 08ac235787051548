//! The seeded client workload: key creation on every scheme core has, signing (single
//! messages and batches), reshares that change the threshold and the members, nodes joining
//! and leaving, malformed requests, and client retries with the same request id (after a
//! timeout, after the node it talked to crashed, or eagerly at a second node).

use std::collections::{BTreeMap, BTreeSet};

use crate::choices::SimRng;
use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::{Request, RequestError, Response};
use keyshard_core::persist::KeyId;
use keyshard_core::scheme::Scheme;
use rand_core::RngCore;

/// What the workload asks the world to do.
#[derive(Clone, Debug)]
pub enum Action {
    /// Give a request to a node.
    Submit {
        /// The node.
        node: ParticipantId,
        /// The idempotency key.
        request_id: String,
        /// The request.
        request: Request,
    },
    /// Start a new node with `joining = true` (an `AddMember` for it follows).
    StartJoiner(ParticipantId),
}

/// What the workload sees of the world when it acts.
pub struct View {
    /// Global time.
    pub now: u64,
    /// Running nodes that are members as far as the client knows (not removed).
    pub live: Vec<ParticipantId>,
    /// The members (from the most advanced running node's registry).
    pub members: BTreeSet<ParticipantId>,
    /// The highest node id that may exist.
    pub max_id: u16,
    /// Node ids already started.
    pub started: BTreeSet<ParticipantId>,
}

/// Relative weights of the operations, drawn per seed.
#[derive(Clone, Debug)]
pub struct Mix {
    /// Create a key.
    pub create: u32,
    /// Sign one message.
    pub sign: u32,
    /// Sign a batch.
    pub sign_batch: u32,
    /// Reshare (new threshold and/or members, or a plain refresh).
    pub reshare: u32,
    /// Add a node.
    pub add: u32,
    /// Remove a node.
    pub remove: u32,
    /// A malformed request (must get a clear error).
    pub bad: u32,
    /// Most keys a run creates (DKGs are the expensive part).
    pub max_keys: u32,
}

struct Outstanding {
    request: Request,
    node: ParticipantId,
    attempts: u32,
    retry_at: Option<u64>,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Requests started (not counting retries).
    pub requests: u64,
    /// Submissions including retries and duplicates.
    pub submissions: u64,
    /// Ok answers.
    pub ok: u64,
    /// Error answers other than timeouts.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Keys created (answers).
    pub keys: u64,
    /// Signatures received.
    pub signatures: u64,
    /// Reshares answered Ok.
    pub reshares: u64,
    /// Membership changes answered Ok.
    pub membership: u64,
}

/// The final liveness probe: create a key, then sign with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not started.
    Idle,
    /// Creating the key.
    Creating,
    /// Signing.
    Signing,
    /// Both done.
    Done,
    /// It failed.
    Failed(String),
}

/// The workload.
pub struct Workload {
    rng: SimRng,
    mix: Mix,
    next: u64,
    created: u32,
    /// Keys known to exist (created, as answered).
    keys: BTreeMap<KeyId, Scheme>,
    /// Keys asked for and not answered yet.
    pending_keys: BTreeMap<KeyId, Scheme>,
    outstanding: BTreeMap<String, Outstanding>,
    /// Stop starting new operations (the final probe runs alone).
    pub quiet: bool,
    /// The final probe's state.
    pub probe: Probe,
    probe_key: Option<KeyId>,
    /// Counters.
    pub stats: WorkloadStats,
}

const MAX_ATTEMPTS: u32 = 6;
const PROBE_CREATE: &str = "probe-create";
const PROBE_SIGN: &str = "probe-sign";

impl Workload {
    /// A workload drawing from `rng`.
    pub fn new(rng: SimRng, mix: Mix) -> Workload {
        Workload {
            rng,
            mix,
            next: 0,
            created: 0,
            keys: BTreeMap::new(),
            pending_keys: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            quiet: false,
            probe: Probe::Idle,
            probe_key: None,
            stats: WorkloadStats::default(),
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len() as u64) as usize])
        }
    }

    fn subset(&mut self, from: &BTreeSet<ParticipantId>, size: usize) -> BTreeSet<ParticipantId> {
        let mut v: Vec<ParticipantId> = from.iter().copied().collect();
        // Fisher-Yates prefix.
        for i in 0..v.len() {
            let j = i + self.below((v.len() - i) as u64) as usize;
            v.swap(i, j);
        }
        v.into_iter().take(size).collect()
    }

    fn fresh_id(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{kind}-{}", self.next)
    }

    fn submit(&mut self, view: &View, request_id: String, request: Request) -> Option<Action> {
        let node = self.pick(&view.live)?;
        self.stats.requests += 1;
        self.stats.submissions += 1;
        self.outstanding.insert(
            request_id.clone(),
            Outstanding {
                request: request.clone(),
                node,
                attempts: 1,
                retry_at: None,
            },
        );
        Some(Action::Submit {
            node,
            request_id,
            request,
        })
    }

    /// Called at each workload tick: due retries, an eager duplicate now and then, and maybe a
    /// new operation.
    pub fn tick(&mut self, view: &View) -> Vec<Action> {
        let mut out = Vec::new();
        // Retries that are due go to a (possibly different) live node, same request id.
        let due: Vec<String> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.retry_at.is_some_and(|t| t <= view.now))
            .map(|(k, _)| k.clone())
            .collect();
        for rid in due {
            let Some(node) = self.pick(&view.live) else {
                break;
            };
            let o = self.outstanding.get_mut(&rid).expect("listed");
            o.retry_at = None;
            o.attempts += 1;
            o.node = node;
            self.stats.submissions += 1;
            out.push(Action::Submit {
                node,
                request_id: rid,
                request: o.request.clone(),
            });
        }
        if self.quiet {
            return out;
        }
        // An impatient client sends a waiting request again, to another node.
        if !self.outstanding.is_empty() && self.below(8) == 0 {
            let ids: Vec<String> = self.outstanding.keys().cloned().collect();
            let rid = ids[self.below(ids.len() as u64) as usize].clone();
            if let Some(node) = self.pick(&view.live) {
                let o = &self.outstanding[&rid];
                if o.retry_at.is_none() && o.node != node {
                    self.stats.submissions += 1;
                    out.push(Action::Submit {
                        node,
                        request_id: rid.clone(),
                        request: o.request.clone(),
                    });
                }
            }
        }
        if let Some(a) = self.new_operation(view) {
            out.extend(a);
        }
        out
    }

    fn new_operation(&mut self, view: &View) -> Option<Vec<Action>> {
        let m = self.mix.clone();
        let weights = [
            m.create * u32::from(self.created < m.max_keys),
            m.sign,
            m.sign_batch,
            m.reshare,
            m.add,
            m.remove,
            m.bad,
        ];
        let total: u32 = weights.iter().sum();
        let mut r = self.below(u64::from(total.max(1))) as u32;
        let mut which = 0;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                which = i;
                break;
            }
            r -= w;
        }
        let mut keys: Vec<KeyId> = self.keys.keys().cloned().collect();
        // Now and then a key whose creation is still running (or failed): NoSuchKey is fine.
        if (keys.is_empty() && self.below(4) == 0) || self.below(10) == 0 {
            keys.extend(self.pending_keys.keys().cloned());
        }
        let n = view.members.len();
        match which {
            0 => {
                self.created += 1;
                let scheme = Scheme::FROST[self.below(Scheme::FROST.len() as u64) as usize];
                let key = KeyId::new(&format!("k{}", self.created)).expect("valid id");
                let participants = if n > 3 && self.below(3) == 0 {
                    let size = 2 + self.below((n - 1) as u64) as usize;
                    Some(self.subset(&view.members, size))
                } else {
                    None
                };
                let holders = participants.as_ref().map_or(n, |p| p.len()).max(2);
                let threshold = 2 + self.below((holders - 1) as u64) as u16;
                self.pending_keys.insert(key.clone(), scheme);
                let rid = self.fresh_id("create");
                let request = Request::CreateKey {
                    key,
                    scheme,
                    threshold,
                    participants,
                };
                Some(vec![self.submit(view, rid, request)?])
            }
            1 | 2 => {
                let key = keys.get(self.below(keys.len() as u64) as usize)?.clone();
                let count = if which == 1 {
                    1
                } else {
                    2 + self.below(7) as usize
                };
                let messages = (0..count)
                    .map(|_| {
                        let len = 1 + self.below(64) as usize;
                        (0..len).map(|_| self.rng.next_u32() as u8).collect()
                    })
                    .collect();
                let rid = self.fresh_id("sign");
                Some(vec![self.submit(
                    view,
                    rid,
                    Request::Sign { key, messages },
                )?])
            }
            3 => {
                let key = keys.get(self.below(keys.len() as u64) as usize)?.clone();
                let new_members = (self.below(2) == 0 && n >= 2).then(|| {
                    let size = 2 + self.below((n - 1) as u64) as usize;
                    self.subset(&view.members, size)
                });
                let holders = new_members.as_ref().map_or(n, |m| m.len()).max(2);
                let new_threshold =
                    (self.below(2) == 0).then(|| 2 + self.below((holders - 1) as u64) as u16);
                let rid = self.fresh_id("reshare");
                let request = Request::Reshare {
                    key,
                    new_threshold,
                    new_members,
                };
                Some(vec![self.submit(view, rid, request)?])
            }
            4 => {
                let id = (1..=view.max_id)
                    .filter_map(ParticipantId::new)
                    .find(|p| !view.started.contains(p))?;
                let rid = self.fresh_id("add");
                let request = Request::AddMember {
                    id,
                    role: if self.below(2) == 0 {
                        NodeRole::Tee
                    } else {
                        NodeRole::Mesh
                    },
                    address: format!("10.0.0.{}:7000", id.get()),
                };
                let submit = self.submit(view, rid, request)?;
                Some(vec![Action::StartJoiner(id), submit])
            }
            5 => {
                // One removal at a time, never below three members (so a 2-of-n probe key can
                // always be created).
                let removing = self
                    .outstanding
                    .values()
                    .any(|o| matches!(o.request, Request::RemoveMember { .. }));
                if n <= 3 || removing {
                    return None;
                }
                let members: Vec<ParticipantId> = view.members.iter().copied().collect();
                let id = self.pick(&members)?;
                let rid = self.fresh_id("remove");
                Some(vec![self.submit(
                    view,
                    rid,
                    Request::RemoveMember { id },
                )?])
            }
            _ => {
                let rid = self.fresh_id("bad");
                let request = match self.below(3) {
                    0 => Request::CreateKey {
                        key: KeyId::new("bad-threshold").expect("valid"),
                        scheme: Scheme::FROST[0],
                        threshold: 1,
                        participants: None,
                    },
                    1 => Request::Sign {
                        key: KeyId::new("no-such-key").expect("valid"),
                        messages: vec![b"m".to_vec()],
                    },
                    _ => Request::Sign {
                        key: keys
                            .first()
                            .cloned()
                            .unwrap_or_else(|| KeyId::new("k0").expect("valid")),
                        messages: vec![],
                    },
                };
                Some(vec![self.submit(view, rid, request)?])
            }
        }
    }

    /// A node answered one of our requests.
    pub fn answered(
        &mut self,
        now: u64,
        request_id: &str,
        result: &Result<Response, RequestError>,
    ) {
        let Some(o) = self.outstanding.get_mut(request_id) else {
            // An answer to a duplicate already settled.
            return;
        };
        match result {
            Err(RequestError::TimedOut) => {
                self.stats.timeouts += 1;
                if o.attempts < MAX_ATTEMPTS || request_id.starts_with("probe") {
                    o.retry_at = Some(now + 500);
                } else {
                    self.outstanding.remove(request_id);
                }
                return;
            }
            // Signers cooling down after timeouts (core's `select::Exclusions`, 60 s by
            // default) are not picked even once the network healed: the probe's client waits
            // and asks again, within the probe's bound.
            Err(RequestError::NotEnoughParticipants { .. }) if request_id.starts_with("probe") => {
                self.stats.errors += 1;
                o.retry_at = Some(now + 2_000);
                return;
            }
            Err(e) => {
                if let RequestError::KeyExists(k) = e {
                    if let Some(s) = self.pending_keys.remove(k) {
                        self.keys.insert(k.clone(), s);
                    }
                }
                self.stats.errors += 1;
                self.outstanding.remove(request_id);
                if request_id.starts_with("probe") {
                    self.probe = Probe::Failed(format!("{request_id}: {e:?}"));
                }
                return;
            }
            Ok(r) => {
                self.stats.ok += 1;
                self.outstanding.remove(request_id);
                match r {
                    Response::KeyCreated { key, scheme, .. } => {
                        self.stats.keys += 1;
                        self.pending_keys.remove(key);
                        self.keys.insert(key.clone(), *scheme);
                    }
                    Response::Signed { signatures, .. } => {
                        self.stats.signatures += signatures.len() as u64
                    }
                    Response::Reshared { .. } => self.stats.reshares += 1,
                    Response::MembershipChanged { .. } => self.stats.membership += 1,
                }
            }
        }
        if request_id == PROBE_CREATE {
            if let Some(key) = self.probe_key.clone() {
                self.probe = Probe::Signing;
                let messages = vec![b"liveness probe 1".to_vec(), b"liveness probe 2".to_vec()];
                self.queue_probe(PROBE_SIGN, Request::Sign { key, messages });
            }
        }
        if request_id == PROBE_SIGN {
            self.probe = Probe::Done;
        }
    }

    /// Queues a probe request; the next tick submits it to a live node.
    fn queue_probe(&mut self, rid: &str, request: Request) {
        self.stats.requests += 1;
        self.outstanding.insert(
            rid.to_string(),
            Outstanding {
                request,
                node: ParticipantId::new(u16::MAX).expect("nonzero"),
                attempts: 0,
                retry_at: Some(0),
            },
        );
    }

    /// Starts the final probe: a new key (scheme drawn from the seed), threshold 2.
    pub fn start_probe(&mut self) {
        self.quiet = true;
        self.probe = Probe::Creating;
        let scheme = Scheme::FROST[self.below(Scheme::FROST.len() as u64) as usize];
        let key = KeyId::new("probe").expect("valid");
        self.probe_key = Some(key.clone());
        self.queue_probe(
            PROBE_CREATE,
            Request::CreateKey {
                key,
                scheme,
                threshold: 2,
                participants: None,
            },
        );
    }

    /// The node we were talking to crashed: requests waiting there are retried elsewhere.
    pub fn node_crashed(&mut self, node: ParticipantId, now: u64) {
        for o in self.outstanding.values_mut() {
            if o.node == node && o.retry_at.is_none() {
                o.retry_at = Some(now + 200);
            }
        }
    }

    /// Requests still waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}
