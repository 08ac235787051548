//! The replicated state machine: membership and roles, the key registry and task records.
//!
//! Every node applies the same committed commands in the same order and reaches the same state;
//! [`Registry::apply`] is a pure function of the state and the command, and returns what changed
//! so the node can react (start a session, answer a waiting client). Stale or out-of-order
//! commands (a `Begin` for a task that is not queued, a `Complete` for an old attempt) change
//! nothing. Key shares never appear here: only public key packages.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion};
use crate::scheme::Scheme;

/// Largest encoded public key package kept in the registry.
const MAX_PKP: usize = 64 * 1024;
/// Request ids are 1 to 128 bytes.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest peer address (`host:port`) kept for a member.
pub const MAX_ADDRESS: usize = 256;

/// What a cluster member is, from its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeRole {
    /// A node running inside a TEE.
    Tee,
    /// A node without TEE protection.
    Mesh,
}

impl NodeRole {
    /// The wire and log tag.
    pub const fn tag(self) -> u8 {
        match self {
            NodeRole::Tee => 1,
            NodeRole::Mesh => 2,
        }
    }

    /// The role with this tag.
    pub const fn from_tag(tag: u8) -> Option<NodeRole> {
        match tag {
            1 => Some(NodeRole::Tee),
            2 => Some(NodeRole::Mesh),
            _ => None,
        }
    }

    /// The name used in certificates and configuration (`tee`, `mesh`).
    pub const fn name(self) -> &'static str {
        match self {
            NodeRole::Tee => "tee",
            NodeRole::Mesh => "mesh",
        }
    }
}

/// A change of cluster membership (applied as a Raft configuration change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A node joins as a voter.
    Add {
        /// Its id.
        id: ParticipantId,
        /// Its role.
        role: NodeRole,
        /// Where peers reach it.
        address: String,
    },
    /// A node leaves.
    Remove {
        /// Its id.
        id: ParticipantId,
    },
}

/// A key in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The scheme.
    pub scheme: Scheme,
    /// Shares needed to sign.
    pub threshold: u16,
    /// Who holds a share of the active version.
    pub participants: BTreeSet<ParticipantId>,
    /// The active version's public key package (frost encoding).
    pub public_key_package: Vec<u8>,
    /// The active version.
    pub version: KeyVersion,
    /// Automatic refresh interval in milliseconds (0 = off).
    pub rotation_interval_ms: u64,
    /// When the active version was produced by a reshare, in the proposing leader's virtual
    /// milliseconds (0: never reshared). Replicated from the leader's proposal, never read
    /// from a local clock on apply, so every node holds the same value.
    pub last_rotated_ms: u64,
}

/// What a DKG task creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkgSpec {
    /// The new key's id.
    pub key: KeyId,
    /// Its scheme.
    pub scheme: Scheme,
    /// Its threshold.
    pub threshold: u16,
    /// Who should hold shares; empty means every member at the time the task starts.
    pub participants: BTreeSet<ParticipantId>,
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Create a key (version 1) with a DKG among `spec.participants`.
    Dkg,
    /// Reshare the key's version `from_version` to `from_version + 1`, held by
    /// `spec.participants` with threshold `spec.threshold`. The dealers of an attempt are the
    /// `Running` participants (chosen by the leader in `Begin`).
    Reshare {
        /// The version being reshared.
        from_version: KeyVersion,
    },
}

impl TaskKind {
    /// The key version a successful attempt of this task stores.
    pub fn produces(&self) -> KeyVersion {
        match self {
            TaskKind::Dkg => KeyVersion(1),
            TaskKind::Reshare { from_version } => KeyVersion(from_version.0.saturating_add(1)),
        }
    }
}

/// Where a task is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a free slot (concurrency limit) or for a retry.
    Queued,
    /// A session runs among `participants`.
    Running {
        /// Who takes part in this attempt (a reshare: the dealers; the receivers are
        /// `spec.participants`).
        participants: BTreeSet<ParticipantId>,
    },
    /// Finished; the key is registered.
    Completed,
    /// Gave up.
    Failed {
        /// Why.
        reason: String,
        /// Who was blamed in the last attempt.
        culprits: BTreeSet<ParticipantId>,
    },
}

/// A task record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// The client's request id (idempotency key).
    pub request_id: String,
    /// The node the client asked.
    pub origin: ParticipantId,
    /// What to do. For a reshare: the key, its scheme, and the new threshold and members.
    pub spec: DkgSpec,
    /// DKG or reshare.
    pub kind: TaskKind,
    /// Attempts started so far.
    pub attempt: u32,
    /// Nodes blamed in earlier attempts, left out of later ones.
    pub excluded: BTreeSet<ParticipantId>,
    /// Where it is.
    pub state: TaskState,
}

/// A command in the Raft log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicated {
    /// A client asked for a key.
    Submit {
        /// Idempotency key.
        request_id: String,
        /// Who asked.
        origin: ParticipantId,
        /// What.
        spec: DkgSpec,
    },
    /// The leader starts attempt `attempt` of `task` among `participants`.
    Begin {
        /// The task.
        task: u64,
        /// The attempt (previous + 1).
        attempt: u32,
        /// Who takes part.
        participants: BTreeSet<ParticipantId>,
    },
    /// Every participant reported the same public key package.
    Complete {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
        /// The agreed public key package.
        public_key_package: Vec<u8>,
    },
    /// A client (or the leader's rotation schedule) asked to reshare a key. `None` keeps the
    /// key's threshold or members as they are when the command applies.
    SubmitReshare {
        /// Idempotency key.
        request_id: String,
        /// Who asked.
        origin: ParticipantId,
        /// The key.
        key: KeyId,
        /// The new threshold.
        new_threshold: Option<u16>,
        /// The new members.
        new_members: Option<BTreeSet<ParticipantId>>,
    },
    /// Every new member stored its share of `version` and reported the same public key package,
    /// and a test signature with it verified: `version` becomes the active version.
    CompleteReshare {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
        /// The agreed public key package of `version`.
        public_key_package: Vec<u8>,
        /// The new version (the task's `from_version + 1`).
        version: KeyVersion,
        /// The leader's clock when it proposed this (the key's rotation time).
        at_ms: u64,
    },
    /// The attempt failed; retried without the culprits unless attempts are exhausted.
    Fail {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
        /// Blamed participants.
        culprits: BTreeSet<ParticipantId>,
        /// Why.
        reason: String,
    },
    /// A client (an admin) asked to add or remove a node.
    ChangeMembership {
        /// Idempotency key.
        request_id: String,
        /// Who asked.
        origin: ParticipantId,
        /// The change.
        change: MembershipChange,
    },
}

/// What applying a command changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing (duplicate, stale, or invalid command).
    Nothing,
    /// A new task was queued.
    Queued(u64),
    /// An attempt started.
    Started {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
    },
    /// A task finished (successfully or not).
    Finished(u64),
    /// An attempt failed and the task went back to the queue.
    Requeued {
        /// The task.
        task: u64,
        /// The failed attempt.
        attempt: u32,
    },
    /// A committed entry claims something every node can see is false (a `CompleteReshare` that
    /// changes the group key): it changed nothing, and the node raises an alarm.
    Refused(String),
    /// A membership request was decided: `Ok` means the change is in effect.
    Membership {
        /// Its request id.
        request_id: String,
        /// The change that was asked for.
        change: MembershipChange,
        /// Applied, or why not.
        result: Result<(), String>,
    },
}

/// The replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// Cluster members and their roles.
    pub members: BTreeMap<ParticipantId, NodeRole>,
    /// Keys by id.
    pub keys: BTreeMap<KeyId, KeyRecord>,
    /// Tasks by id.
    pub tasks: BTreeMap<u64, TaskRecord>,
    /// Request id to task id.
    pub requests: BTreeMap<String, u64>,
    /// Peer addresses of members added at run time (initial members' come from configuration).
    pub addresses: BTreeMap<ParticipantId, String>,
    /// How each membership request ended, by request id.
    pub membership_requests: BTreeMap<String, Result<(), String>>,
    /// Node ids removed from the cluster: never members again (issue 16, item 6), so a
    /// certificate issued for a removed id can never rejoin under it.
    pub retired: BTreeSet<ParticipantId>,
    next_task: u64,
    max_attempts: u32,
    default_rotation_ms: u64,
}

impl Registry {
    /// The initial state every node starts from (the same on every node).
    pub fn new(
        members: BTreeMap<ParticipantId, NodeRole>,
        max_attempts: u32,
        default_rotation_ms: u64,
    ) -> Self {
        Registry {
            members,
            next_task: 1,
            max_attempts: max_attempts.max(1),
            default_rotation_ms,
            ..Registry::default()
        }
    }

    /// Tasks waiting for a slot, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = (u64, &TaskRecord)> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.state == TaskState::Queued)
            .map(|(id, t)| (*id, t))
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| matches!(t.state, TaskState::Running { .. }))
            .count()
    }

    /// How many tasks of one kind (DKG, or any reshare) are running.
    pub fn running_of(&self, reshare: bool) -> usize {
        self.tasks
            .values()
            .filter(|t| {
                matches!(t.state, TaskState::Running { .. })
                    && matches!(t.kind, TaskKind::Reshare { .. }) == reshare
            })
            .count()
    }

    /// The unfinished (queued or running) task of a key, if any. There is at most one.
    pub fn unfinished_task(&self, key: &KeyId) -> Option<u64> {
        self.tasks
            .iter()
            .find(|(_, t)| {
                &t.spec.key == key
                    && matches!(t.state, TaskState::Queued | TaskState::Running { .. })
            })
            .map(|(id, _)| *id)
    }

    /// Whether a key id is taken (registered, or the target of an unfinished task).
    pub fn key_taken(&self, key: &KeyId) -> bool {
        self.keys.contains_key(key)
            || self.tasks.values().any(|t| {
                &t.spec.key == key
                    && matches!(t.state, TaskState::Queued | TaskState::Running { .. })
            })
    }

    /// Applies one committed command.
    pub fn apply(&mut self, cmd: &Replicated) -> Applied {
        match cmd {
            Replicated::Submit {
                request_id,
                origin,
                spec,
            } => {
                if self.requests.contains_key(request_id) {
                    return Applied::Nothing;
                }
                let id = self.next_task;
                self.next_task += 1;
                self.requests.insert(request_id.clone(), id);
                let taken = self.key_taken(&spec.key);
                let state = if taken {
                    TaskState::Failed {
                        reason: format!("key {} already exists", spec.key),
                        culprits: BTreeSet::new(),
                    }
                } else {
                    TaskState::Queued
                };
                self.tasks.insert(
                    id,
                    TaskRecord {
                        request_id: request_id.clone(),
                        origin: *origin,
                        spec: spec.clone(),
                        kind: TaskKind::Dkg,
                        attempt: 0,
                        excluded: BTreeSet::new(),
                        state,
                    },
                );
                if taken {
                    Applied::Finished(id)
                } else {
                    Applied::Queued(id)
                }
            }
            Replicated::Begin {
                task,
                attempt,
                participants,
            } => {
                let Some(t) = self.tasks.get_mut(task) else {
                    return Applied::Nothing;
                };
                if t.state != TaskState::Queued || *attempt != t.attempt + 1 {
                    return Applied::Nothing;
                }
                if let TaskKind::Reshare { from_version } = t.kind {
                    // Dealers must hold shares of the version being reshared, at least t of them.
                    let Some(k) = self.keys.get(&t.spec.key) else {
                        return Applied::Nothing;
                    };
                    if k.version != from_version
                        || !participants.is_subset(&k.participants)
                        || participants.len() < usize::from(k.threshold)
                    {
                        return Applied::Nothing;
                    }
                }
                t.attempt = *attempt;
                t.state = TaskState::Running {
                    participants: participants.clone(),
                };
                Applied::Started {
                    task: *task,
                    attempt: *attempt,
                }
            }
            Replicated::Complete {
                task,
                attempt,
                public_key_package,
            } => {
                let Some(t) = self.tasks.get_mut(task) else {
                    return Applied::Nothing;
                };
                let TaskState::Running { participants } = &t.state else {
                    return Applied::Nothing;
                };
                if *attempt != t.attempt || t.kind != TaskKind::Dkg {
                    return Applied::Nothing;
                }
                let record = KeyRecord {
                    scheme: t.spec.scheme,
                    threshold: t.spec.threshold,
                    participants: participants.clone(),
                    public_key_package: public_key_package.clone(),
                    version: KeyVersion(1),
                    rotation_interval_ms: self.default_rotation_ms,
                    last_rotated_ms: 0,
                };
                t.state = TaskState::Completed;
                self.keys.insert(t.spec.key.clone(), record);
                Applied::Finished(*task)
            }
            Replicated::SubmitReshare {
                request_id,
                origin,
                key,
                new_threshold,
                new_members,
            } => {
                if self.requests.contains_key(request_id) {
                    return Applied::Nothing;
                }
                let id = self.next_task;
                self.next_task += 1;
                self.requests.insert(request_id.clone(), id);
                let record = self.keys.get(key);
                let threshold = new_threshold.or(record.map(|k| k.threshold)).unwrap_or(0);
                let members = new_members
                    .clone()
                    .or(record.map(|k| k.participants.clone()))
                    .unwrap_or_default();
                let refused = match record {
                    None => Some(format!("no such key {key}")),
                    Some(_) if self.unfinished_task(key).is_some() => {
                        Some(format!("key {key} has an unfinished task"))
                    }
                    Some(_) if threshold < 2 || usize::from(threshold) > members.len() => Some(
                        format!("threshold {threshold} for {} members", members.len()),
                    ),
                    Some(_) if members.iter().any(|m| !self.members.contains_key(m)) => {
                        Some("a new member is not a cluster member".into())
                    }
                    Some(_) => None,
                };
                let (scheme, from_version) = record
                    .map(|k| (k.scheme, k.version))
                    .unwrap_or((Scheme::FrostEd25519, KeyVersion(0)));
                let state = match &refused {
                    Some(reason) => TaskState::Failed {
                        reason: reason.clone(),
                        culprits: BTreeSet::new(),
                    },
                    None => TaskState::Queued,
                };
                self.tasks.insert(
                    id,
                    TaskRecord {
                        request_id: request_id.clone(),
                        origin: *origin,
                        spec: DkgSpec {
                            key: key.clone(),
                            scheme,
                            threshold,
                            participants: members,
                        },
                        kind: TaskKind::Reshare { from_version },
                        attempt: 0,
                        excluded: BTreeSet::new(),
                        state,
                    },
                );
                if refused.is_some() {
                    Applied::Finished(id)
                } else {
                    Applied::Queued(id)
                }
            }
            Replicated::CompleteReshare {
                task,
                attempt,
                public_key_package,
                version,
                at_ms,
            } => {
                let Some(t) = self.tasks.get_mut(task) else {
                    return Applied::Nothing;
                };
                let TaskKind::Reshare { from_version } = t.kind else {
                    return Applied::Nothing;
                };
                if !matches!(t.state, TaskState::Running { .. })
                    || *attempt != t.attempt
                    || *version != t.kind.produces()
                {
                    return Applied::Nothing;
                }
                let Some(k) = self.keys.get_mut(&t.spec.key) else {
                    return Applied::Nothing;
                };
                if k.version != from_version {
                    return Applied::Nothing;
                }
                // Resharing never changes the group key: an entry whose package names another
                // (a malicious leader redirecting deposits) or does not decode changes nothing,
                // and version `v` stays active and signable everywhere.
                let old_key = super::sessions::group_public_key(k.scheme, &k.public_key_package);
                let new_key = super::sessions::group_public_key(k.scheme, public_key_package);
                if old_key.is_none() || old_key != new_key {
                    return Applied::Refused(format!(
                        "CompleteReshare of key {} (task {task}, attempt {attempt}) names another \
                         group public key or an undecodable package; refused, version {} stays \
                         active",
                        t.spec.key, from_version.0
                    ));
                }
                k.version = *version;
                k.threshold = t.spec.threshold;
                k.participants = t.spec.participants.clone();
                k.public_key_package = public_key_package.clone();
                k.last_rotated_ms = *at_ms;
                t.state = TaskState::Completed;
                Applied::Finished(*task)
            }
            Replicated::Fail {
                task,
                attempt,
                culprits,
                reason,
            } => {
                let max = self.max_attempts;
                let Some(t) = self.tasks.get_mut(task) else {
                    return Applied::Nothing;
                };
                // A queued task is given up by failing the attempt that could not start (the
                // leader found too few eligible participants): it is not retried.
                if t.state == TaskState::Queued && *attempt == t.attempt + 1 {
                    t.excluded.extend(culprits.iter().copied());
                    t.state = TaskState::Failed {
                        reason: format!("{reason} (after {} attempts)", t.attempt),
                        culprits: culprits.clone(),
                    };
                    return Applied::Finished(*task);
                }
                if !matches!(t.state, TaskState::Running { .. }) || *attempt != t.attempt {
                    return Applied::Nothing;
                }
                t.excluded.extend(culprits.iter().copied());
                if t.attempt >= max {
                    t.state = TaskState::Failed {
                        reason: format!("{reason} (after {} attempts)", t.attempt),
                        culprits: culprits.clone(),
                    };
                    Applied::Finished(*task)
                } else {
                    t.state = TaskState::Queued;
                    Applied::Requeued {
                        task: *task,
                        attempt: *attempt,
                    }
                }
            }
            Replicated::ChangeMembership {
                request_id, change, ..
            } => {
                if self.membership_requests.contains_key(request_id) {
                    return Applied::Nothing;
                }
                let result = self.change_membership(change);
                self.membership_requests
                    .insert(request_id.clone(), result.clone());
                Applied::Membership {
                    request_id: request_id.clone(),
                    change: change.clone(),
                    result,
                }
            }
        }
    }

    /// Whether `change` may apply now, and why not. The same check runs at the leader before
    /// proposing (a fast answer) and on apply (the state may have moved in between).
    pub fn check_membership(&self, change: &MembershipChange) -> Result<(), String> {
        match change {
            MembershipChange::Add { id, address, .. } => {
                if self.members.contains_key(id) {
                    return Err(format!("node {id} is already a member"));
                }
                if self.retired.contains(id) {
                    return Err(format!(
                        "node id {id} was removed from this cluster and is never reused: give \
                         the new node a new id and certificate"
                    ));
                }
                if address.is_empty() || address.len() > MAX_ADDRESS {
                    return Err(format!("address must be 1 to {MAX_ADDRESS} bytes"));
                }
                Ok(())
            }
            MembershipChange::Remove { id } => {
                if !self.members.contains_key(id) {
                    return Err(format!("node {id} is not a member"));
                }
                if self.members.len() <= 1 {
                    return Err("the last member cannot be removed".into());
                }
                for (key, k) in &self.keys {
                    let left = k
                        .participants
                        .iter()
                        .filter(|p| *p != id && self.members.contains_key(p))
                        .count();
                    if k.participants.contains(id) && left < usize::from(k.threshold) {
                        return Err(format!(
                            "key {key} would keep {left} holders, fewer than its threshold {}: \
                             reshare it away from node {id} first",
                            k.threshold
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    fn change_membership(&mut self, change: &MembershipChange) -> Result<(), String> {
        self.check_membership(change)?;
        match change {
            MembershipChange::Add { id, role, address } => {
                self.members.insert(*id, *role);
                self.addresses.insert(*id, address.clone());
            }
            MembershipChange::Remove { id } => {
                self.members.remove(id);
                self.addresses.remove(id);
                self.retired.insert(*id);
            }
        }
        Ok(())
    }
}

use super::wire::{read_id, read_ids, read_role, write_ids};

impl Replicated {
    /// The log encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Replicated::Submit {
                request_id,
                origin,
                spec,
            } => {
                w.u8(1).str(request_id).u16(origin.get());
                w.str(spec.key.as_str())
                    .u8(spec.scheme.tag())
                    .u16(spec.threshold);
                write_ids(&mut w, &spec.participants);
            }
            Replicated::Begin {
                task,
                attempt,
                participants,
            } => {
                w.u8(2).u64(*task).u32(*attempt);
                write_ids(&mut w, participants);
            }
            Replicated::Complete {
                task,
                attempt,
                public_key_package,
            } => {
                w.u8(3).u64(*task).u32(*attempt).bytes(public_key_package);
            }
            Replicated::SubmitReshare {
                request_id,
                origin,
                key,
                new_threshold,
                new_members,
            } => {
                w.u8(5).str(request_id).u16(origin.get()).str(key.as_str());
                w.bool(new_threshold.is_some());
                if let Some(t) = new_threshold {
                    w.u16(*t);
                }
                w.bool(new_members.is_some());
                if let Some(m) = new_members {
                    write_ids(&mut w, m);
                }
            }
            Replicated::CompleteReshare {
                task,
                attempt,
                public_key_package,
                version,
                at_ms,
            } => {
                w.u8(6).u64(*task).u32(*attempt).bytes(public_key_package);
                w.u32(version.0).u64(*at_ms);
            }
            Replicated::Fail {
                task,
                attempt,
                culprits,
                reason,
            } => {
                w.u8(4).u64(*task).u32(*attempt);
                write_ids(&mut w, culprits);
                w.str(reason);
            }
            Replicated::ChangeMembership {
                request_id,
                origin,
                change,
            } => {
                w.u8(7).str(request_id).u16(origin.get());
                match change {
                    MembershipChange::Add { id, role, address } => {
                        w.u8(1).u16(id.get()).u8(role.tag()).str(address);
                    }
                    MembershipChange::Remove { id } => {
                        w.u8(2).u16(id.get());
                    }
                }
            }
        }
        w.finish()
    }

    /// Decodes a log entry. Entries come from the leader, but a node still never trusts them
    /// blindly: a malformed entry is skipped with an event rather than crashing every node.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let cmd = match r.u8("command")? {
            1 => {
                let request_id = r.str("request id", MAX_REQUEST_ID)?;
                let origin =
                    ParticipantId::new(r.u16("origin")?).ok_or(DecodeError::Invalid("origin 0"))?;
                let key = KeyId::new(&r.str("key id", 64)?)
                    .map_err(|_| DecodeError::Invalid("key id"))?;
                let scheme =
                    Scheme::from_tag(r.u8("scheme")?).ok_or(DecodeError::Invalid("scheme"))?;
                let threshold = r.u16("threshold")?;
                let participants = read_ids(&mut r)?;
                Replicated::Submit {
                    request_id,
                    origin,
                    spec: DkgSpec {
                        key,
                        scheme,
                        threshold,
                        participants,
                    },
                }
            }
            2 => Replicated::Begin {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                participants: read_ids(&mut r)?,
            },
            3 => Replicated::Complete {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                public_key_package: r.bytes("public key package", MAX_PKP)?,
            },
            4 => Replicated::Fail {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                culprits: read_ids(&mut r)?,
                reason: r.str("reason", 1024)?,
            },
            5 => Replicated::SubmitReshare {
                request_id: r.str("request id", MAX_REQUEST_ID)?,
                origin: ParticipantId::new(r.u16("origin")?)
                    .ok_or(DecodeError::Invalid("origin 0"))?,
                key: KeyId::new(&r.str("key id", 64)?)
                    .map_err(|_| DecodeError::Invalid("key id"))?,
                new_threshold: if r.bool("has threshold")? {
                    Some(r.u16("threshold")?)
                } else {
                    None
                },
                new_members: if r.bool("has members")? {
                    Some(read_ids(&mut r)?)
                } else {
                    None
                },
            },
            6 => Replicated::CompleteReshare {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                public_key_package: r.bytes("public key package", MAX_PKP)?,
                version: KeyVersion(r.u32("version")?),
                at_ms: r.u64("at")?,
            },
            7 => Replicated::ChangeMembership {
                request_id: r.str("request id", MAX_REQUEST_ID)?,
                origin: read_id(&mut r)?,
                change: match r.u8("membership change")? {
                    1 => MembershipChange::Add {
                        id: read_id(&mut r)?,
                        role: read_role(&mut r)?,
                        address: r.str("address", MAX_ADDRESS)?,
                    },
                    2 => MembershipChange::Remove {
                        id: read_id(&mut r)?,
                    },
                    tag => {
                        return Err(DecodeError::BadTag {
                            what: "membership change",
                            tag,
                        })
                    }
                },
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "command",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    fn spec(key: &str) -> DkgSpec {
        DkgSpec {
            key: KeyId::new(key).unwrap(),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: [pid(1), pid(2), pid(3)].into(),
        }
    }

    #[test]
    fn commands_round_trip() {
        let cmds = [
            Replicated::Submit {
                request_id: "r1".into(),
                origin: pid(2),
                spec: spec("k"),
            },
            Replicated::Begin {
                task: 1,
                attempt: 1,
                participants: [pid(1), pid(2)].into(),
            },
            Replicated::Complete {
                task: 1,
                attempt: 1,
                public_key_package: vec![1, 2, 3],
            },
            Replicated::Fail {
                task: 1,
                attempt: 2,
                culprits: [pid(3)].into(),
                reason: "timeout".into(),
            },
            Replicated::SubmitReshare {
                request_id: "r2".into(),
                origin: pid(1),
                key: KeyId::new("k").unwrap(),
                new_threshold: Some(3),
                new_members: Some([pid(1), pid(2), pid(4)].into()),
            },
            Replicated::SubmitReshare {
                request_id: "rotate:k:1".into(),
                origin: pid(1),
                key: KeyId::new("k").unwrap(),
                new_threshold: None,
                new_members: None,
            },
            Replicated::CompleteReshare {
                task: 2,
                attempt: 1,
                public_key_package: vec![4, 5],
                version: KeyVersion(2),
                at_ms: 60_000,
            },
            Replicated::ChangeMembership {
                request_id: "m1".into(),
                origin: pid(1),
                change: MembershipChange::Add {
                    id: pid(9),
                    role: NodeRole::Mesh,
                    address: "10.0.0.9:7000".into(),
                },
            },
            Replicated::ChangeMembership {
                request_id: "m2".into(),
                origin: pid(2),
                change: MembershipChange::Remove { id: pid(3) },
            },
        ];
        for c in cmds {
            assert_eq!(Replicated::decode(&c.encode()).unwrap(), c);
            let mut bad = c.encode();
            bad.push(0);
            assert!(Replicated::decode(&bad).is_err());
        }
    }

    #[test]
    fn membership_changes_apply_once_and_never_strand_a_key() {
        let three: BTreeMap<_, _> = (1..=3).map(|i| (pid(i), NodeRole::Tee)).collect();
        let mut r = Registry::new(three, 2, 0);
        let change = |id: &str, change| Replicated::ChangeMembership {
            request_id: id.into(),
            origin: pid(1),
            change,
        };
        let add4 = MembershipChange::Add {
            id: pid(4),
            role: NodeRole::Mesh,
            address: "h:4".into(),
        };
        assert!(matches!(
            r.apply(&change("a", add4.clone())),
            Applied::Membership { result: Ok(()), .. }
        ));
        assert_eq!(r.members.get(&pid(4)), Some(&NodeRole::Mesh));
        assert_eq!(r.addresses.get(&pid(4)).map(String::as_str), Some("h:4"));
        // The same request again changes nothing; another request to add 4 is refused.
        assert_eq!(r.apply(&change("a", add4.clone())), Applied::Nothing);
        assert!(matches!(
            r.apply(&change("a2", add4)),
            Applied::Membership { result: Err(_), .. }
        ));
        // A 3-of-3 key among 1..3 pins its holders: removing one would strand it.
        r.keys.insert(
            KeyId::new("k").unwrap(),
            KeyRecord {
                scheme: Scheme::FrostEd25519,
                threshold: 3,
                participants: [pid(1), pid(2), pid(3)].into(),
                public_key_package: vec![1],
                version: KeyVersion(1),
                rotation_interval_ms: 0,
                last_rotated_ms: 0,
            },
        );
        let refused = r.apply(&change("rm2", MembershipChange::Remove { id: pid(2) }));
        let Applied::Membership {
            result: Err(why), ..
        } = refused
        else {
            panic!("removal should be refused: {refused:?}");
        };
        assert!(why.contains("key k would keep 2 holders"), "{why}");
        assert!(r.members.contains_key(&pid(2)));
        // Node 4 holds nothing: it may go.
        assert!(matches!(
            r.apply(&change("rm4", MembershipChange::Remove { id: pid(4) })),
            Applied::Membership { result: Ok(()), .. }
        ));
        assert!(!r.members.contains_key(&pid(4)) && !r.addresses.contains_key(&pid(4)));
        assert_eq!(
            r.membership_requests.get("rm2").map(Result::is_err),
            Some(true)
        );
        // A removed id never comes back (issue 16, item 6): a certificate issued for node 4
        // cannot rejoin, whoever asks.
        let again = r.apply(&change(
            "a3",
            MembershipChange::Add {
                id: pid(4),
                role: NodeRole::Tee,
                address: "10.0.0.4:7000".into(),
            },
        ));
        let Applied::Membership {
            result: Err(why), ..
        } = again
        else {
            panic!("re-adding a removed id should be refused: {again:?}");
        };
        assert!(why.contains("never reused"), "{why}");
        assert!(!r.members.contains_key(&pid(4)) && r.retired.contains(&pid(4)));
    }

    #[test]
    fn lifecycle_retries_and_ignores_stale_commands() {
        let mut r = Registry::new([(pid(1), NodeRole::Tee)].into(), 2, 0);
        let submit = Replicated::Submit {
            request_id: "r1".into(),
            origin: pid(1),
            spec: spec("k"),
        };
        assert_eq!(r.apply(&submit), Applied::Queued(1));
        assert_eq!(r.apply(&submit), Applied::Nothing, "idempotent");
        let begin = |attempt| Replicated::Begin {
            task: 1,
            attempt,
            participants: [pid(1), pid(2), pid(3)].into(),
        };
        assert_eq!(
            r.apply(&begin(2)),
            Applied::Nothing,
            "attempts are sequential"
        );
        assert_eq!(
            r.apply(&begin(1)),
            Applied::Started {
                task: 1,
                attempt: 1
            }
        );
        assert_eq!(r.apply(&begin(1)), Applied::Nothing, "already running");
        let fail = |attempt| Replicated::Fail {
            task: 1,
            attempt,
            culprits: [pid(3)].into(),
            reason: "timeout".into(),
        };
        assert_eq!(
            r.apply(&fail(1)),
            Applied::Requeued {
                task: 1,
                attempt: 1
            }
        );
        assert_eq!(r.tasks[&1].excluded, [pid(3)].into());
        assert_eq!(
            r.apply(&begin(2)),
            Applied::Started {
                task: 1,
                attempt: 2
            }
        );
        let stale = Replicated::Complete {
            task: 1,
            attempt: 1,
            public_key_package: vec![9],
        };
        assert_eq!(r.apply(&stale), Applied::Nothing);
        assert_eq!(r.apply(&fail(2)), Applied::Finished(1));
        assert!(matches!(r.tasks[&1].state, TaskState::Failed { .. }));
        assert_eq!(r.apply(&fail(2)), Applied::Nothing, "already failed");
        // The key id is free again after a failed task.
        let again = Replicated::Submit {
            request_id: "r2".into(),
            origin: pid(1),
            spec: spec("k"),
        };
        assert_eq!(r.apply(&again), Applied::Queued(2));
        // ... but not while a task for it is pending.
        let third = Replicated::Submit {
            request_id: "r3".into(),
            origin: pid(1),
            spec: spec("k"),
        };
        assert_eq!(r.apply(&third), Applied::Finished(3));
    }

    #[test]
    fn a_queued_task_is_given_up_by_failing_the_attempt_that_could_not_start() {
        let mut r = Registry::new([(pid(1), NodeRole::Tee)].into(), 3, 0);
        let submit = Replicated::Submit {
            request_id: "r1".into(),
            origin: pid(1),
            spec: spec("k"),
        };
        assert_eq!(r.apply(&submit), Applied::Queued(1));
        let fail = |attempt| Replicated::Fail {
            task: 1,
            attempt,
            culprits: [pid(3)].into(),
            reason: "too few".into(),
        };
        assert_eq!(r.apply(&fail(0)), Applied::Nothing, "no attempt 0 to fail");
        assert_eq!(r.apply(&fail(1)), Applied::Finished(1));
        assert!(matches!(r.tasks[&1].state, TaskState::Failed { .. }));
        assert_eq!(r.apply(&fail(1)), Applied::Nothing);
    }
}

#[cfg(test)]
mod reshare_tests {
    use super::*;
    use frost_core::keys::PublicKeyPackage;

    type Ed = frost_ed25519::Ed25519Sha512;

    /// A real Ed25519 public key package (trusted dealer, 2-of-3) and another package with the
    /// same group key but other verifying shares (what a reshare produces).
    fn packages(seed: u64) -> (Vec<u8>, Vec<u8>) {
        let (_, pkp) = crate::frost::testkit::trusted_dealer::<Ed>(2, 3, seed);
        let (_, other) = crate::frost::testkit::trusted_dealer::<Ed>(2, 3, seed + 1);
        let reshared = PublicKeyPackage::new(
            other.verifying_shares().clone(),
            *pkp.verifying_key(),
            pkp.min_signers(),
        );
        (
            crate::frost::canonical::encode(&pkp).unwrap(),
            crate::frost::canonical::encode(&reshared).unwrap(),
        )
    }

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    fn with_key() -> Registry {
        let members = (1..=5).map(|i| (pid(i), NodeRole::Tee)).collect();
        let mut r = Registry::new(members, 2, 0);
        let spec = DkgSpec {
            key: KeyId::new("k").unwrap(),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: [pid(1), pid(2), pid(3)].into(),
        };
        r.apply(&Replicated::Submit {
            request_id: "c".into(),
            origin: pid(1),
            spec,
        });
        r.apply(&Replicated::Begin {
            task: 1,
            attempt: 1,
            participants: [pid(1), pid(2), pid(3)].into(),
        });
        r.apply(&Replicated::Complete {
            task: 1,
            attempt: 1,
            public_key_package: packages(1).0,
        });
        r
    }

    #[test]
    fn a_reshare_activates_the_next_version_once() {
        let mut r = with_key();
        let key = KeyId::new("k").unwrap();
        let submit = Replicated::SubmitReshare {
            request_id: "r".into(),
            origin: pid(2),
            key: key.clone(),
            new_threshold: Some(3),
            new_members: Some((1..=5).map(pid).collect()),
        };
        assert_eq!(r.apply(&submit), Applied::Queued(2));
        assert_eq!(r.apply(&submit), Applied::Nothing, "idempotent");
        // One unfinished task per key: a second reshare fails at once.
        let other = Replicated::SubmitReshare {
            request_id: "r2".into(),
            origin: pid(2),
            key: key.clone(),
            new_threshold: None,
            new_members: None,
        };
        assert_eq!(r.apply(&other), Applied::Finished(3));
        // Dealers must be old holders, at least t of them.
        let bad_begin = Replicated::Begin {
            task: 2,
            attempt: 1,
            participants: [pid(1), pid(4)].into(),
        };
        assert_eq!(r.apply(&bad_begin), Applied::Nothing);
        let begin = Replicated::Begin {
            task: 2,
            attempt: 1,
            participants: [pid(1), pid(2)].into(),
        };
        assert_eq!(
            r.apply(&begin),
            Applied::Started {
                task: 2,
                attempt: 1
            }
        );
        // A DKG completion cannot complete a reshare task, nor a wrong version.
        let dkg = Replicated::Complete {
            task: 2,
            attempt: 1,
            public_key_package: vec![9],
        };
        assert_eq!(r.apply(&dkg), Applied::Nothing);
        let (v1, reshared) = packages(1);
        let complete_with = |version, public_key_package: Vec<u8>| Replicated::CompleteReshare {
            task: 2,
            attempt: 1,
            public_key_package,
            version: KeyVersion(version),
            at_ms: 7,
        };
        let complete = |version| complete_with(version, reshared.clone());
        assert_eq!(r.apply(&complete(3)), Applied::Nothing);
        // Issue 16, item 3: a completion naming another group key (a malicious leader's), or
        // an undecodable package, changes nothing and is refused loudly; v1 stays active.
        for forged in [packages(40).0, vec![2]] {
            let refused = r.apply(&complete_with(2, forged));
            assert!(
                matches!(refused, Applied::Refused(ref why) if why.contains("another group public key")),
                "{refused:?}"
            );
            assert_eq!(r.keys[&key].version, KeyVersion(1));
            assert_eq!(r.keys[&key].public_key_package, v1);
            assert!(matches!(r.tasks[&2].state, TaskState::Running { .. }));
        }
        assert_eq!(r.apply(&complete(2)), Applied::Finished(2));
        assert_eq!(r.apply(&complete(2)), Applied::Nothing);
        let k = &r.keys[&key];
        assert_eq!(k.version, KeyVersion(2));
        assert_eq!(k.threshold, 3);
        assert_eq!(k.participants.len(), 5);
        assert_eq!(k.public_key_package, reshared);
        assert_eq!(k.last_rotated_ms, 7);
    }

    #[test]
    fn a_reshare_of_a_missing_key_or_with_a_bad_threshold_fails_at_once() {
        let mut r = with_key();
        let missing = Replicated::SubmitReshare {
            request_id: "a".into(),
            origin: pid(1),
            key: KeyId::new("nope").unwrap(),
            new_threshold: None,
            new_members: None,
        };
        assert_eq!(r.apply(&missing), Applied::Finished(2));
        let bad = Replicated::SubmitReshare {
            request_id: "b".into(),
            origin: pid(1),
            key: KeyId::new("k").unwrap(),
            new_threshold: Some(4),
            new_members: None,
        };
        assert_eq!(r.apply(&bad), Applied::Finished(3));
        assert_eq!(r.keys[&KeyId::new("k").unwrap()].version, KeyVersion(1));
    }
}
