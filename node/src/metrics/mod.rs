//! The node's metrics (prometheus-client) and the endpoint that serves them ([`http`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `keyshard_tasks_total` | counter | `type` (dkg, sign, reshare, membership), `outcome` (ok, failed, timed_out, refused) |
//! | `keyshard_task_duration_seconds` | histogram (1 ms .. 131 s) | `type` |
//! | `keyshard_leader_changes_total` | counter | |
//! | `keyshard_leader` | gauge: the leader's node id, 0 when unknown | |
//! | `keyshard_raft_term` | gauge | |
//! | `keyshard_share_cache_hits_total`, `..._misses_total` | counter | |
//! | `keyshard_peer_send_queue_depth` | gauge | `peer` |
//! | `keyshard_peer_dropped_messages_total` | counter: messages to a peer dropped (queue full, peer down) | `peer` |
//! | `keyshard_peer_refused_messages_total` | counter: messages from a peer the core refused | `peer` |
//! | `keyshard_presignatures_total` | counter: ECDSA presignatures at this node | `event` (made, spent, failed, missing) |
//!
//! Labels are node ids and fixed words, never key ids or request ids (unbounded cardinality,
//! and they are the clients' business).

pub mod http;

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::{Event, Request, RequestError, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A task type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskType {
    /// Key creation.
    Dkg,
    /// Signing.
    Sign,
    /// Resharing or refresh.
    Reshare,
    /// Adding or removing a cluster member.
    Membership,
}

impl TaskType {
    /// The task type a client request starts.
    pub fn of(request: &Request) -> TaskType {
        match request {
            Request::CreateKey { .. } => TaskType::Dkg,
            Request::Sign { .. } => TaskType::Sign,
            Request::Reshare { .. } => TaskType::Reshare,
            Request::AddMember { .. } | Request::RemoveMember { .. } => TaskType::Membership,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TaskType::Dkg => "dkg",
            TaskType::Sign => "sign",
            TaskType::Reshare => "reshare",
            TaskType::Membership => "membership",
        }
    }
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// The protocol ran and failed.
    Failed,
    /// No answer in time.
    TimedOut,
    /// Refused before running (bad request, no such key, key exists, too few participants).
    Refused,
}

impl Outcome {
    /// The outcome of a client request's answer.
    pub fn of(result: &Result<Response, RequestError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(RequestError::Failed { .. }) => Outcome::Failed,
            Err(RequestError::TimedOut) => Outcome::TimedOut,
            Err(
                RequestError::BadRequest(_)
                | RequestError::NoSuchKey(_)
                | RequestError::KeyExists(_)
                | RequestError::NotEnoughParticipants { .. },
            ) => Outcome::Refused,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Refused => "refused",
        }
    }
}

impl EncodeLabelValue for TaskType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabels {
    r#type: TaskType,
    outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TypeLabel {
    r#type: TaskType,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerLabel {
    peer: u16,
}

fn latency_histogram() -> Histogram {
    // 1 ms doubling up to 131 s: a signature takes milliseconds, a large DKG minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// The node's metrics. Cheap to update from any thread; share it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tasks: Family<TaskLabels, Counter>,
    task_seconds: Family<TypeLabel, Histogram, fn() -> Histogram>,
    leader_changes: Counter,
    leader: Gauge,
    term: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    /// Last totals given to `set_share_cache_totals`.
    cache_seen: Mutex<(u64, u64)>,
    queue_depth: Family<PeerLabel, Gauge>,
    dropped: Family<PeerLabel, Counter>,
    refused: Family<PeerLabel, Counter>,
    presignatures: Family<EventLabel, Counter>,
    /// Last totals given to `set_presignature_totals`.
    presign_seen: Mutex<[u64; 4]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyshard");
        let tasks = Family::<TaskLabels, Counter>::default();
        registry.register("tasks", "Finished tasks by type and outcome", tasks.clone());
        let task_seconds: Family<TypeLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "task_duration_seconds",
            "Time from a task's request to its answer",
            task_seconds.clone(),
        );
        let leader_changes = Counter::default();
        registry.register(
            "leader_changes",
            "Raft leader changes seen by this node",
            leader_changes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "The current Raft leader's node id (0 when unknown)",
            leader.clone(),
        );
        let term = Gauge::default();
        registry.register("raft_term", "The current Raft term", term.clone());
        let cache_hits = Counter::default();
        registry.register(
            "share_cache_hits",
            "Key-share lookups served from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "share_cache_misses",
            "Key-share lookups that went to the store",
            cache_misses.clone(),
        );
        let queue_depth = Family::<PeerLabel, Gauge>::default();
        registry.register(
            "peer_send_queue_depth",
            "Messages waiting to be sent to a peer",
            queue_depth.clone(),
        );
        let dropped = Family::<PeerLabel, Counter>::default();
        registry.register(
            "peer_dropped_messages",
            "Messages to a peer dropped (queue full or peer unreachable)",
            dropped.clone(),
        );
        let refused = Family::<PeerLabel, Counter>::default();
        registry.register(
            "peer_refused_messages",
            "Messages from a peer that were refused and dropped",
            refused.clone(),
        );
        let presignatures = Family::<EventLabel, Counter>::default();
        registry.register(
            "presignatures",
            "ECDSA presignatures made, spent, failed and missing (named but gone) at this node",
            presignatures.clone(),
        );
        Metrics {
            presignatures,
            presign_seen: Mutex::new([0; 4]),
            registry,
            tasks,
            task_seconds,
            leader_changes,
            leader,
            term,
            cache_hits,
            cache_misses,
            cache_seen: Mutex::new((0, 0)),
            queue_depth,
            dropped,
            refused,
        }
    }

    /// A task finished after `latency`.
    pub fn task_finished(&self, task: TaskType, outcome: Outcome, latency: Duration) {
        self.tasks
            .get_or_create(&TaskLabels {
                r#type: task,
                outcome,
            })
            .inc();
        self.task_seconds
            .get_or_create(&TypeLabel { r#type: task })
            .observe(latency.as_secs_f64());
    }

    /// The Raft leader changed.
    pub fn leader_changed(&self, leader: Option<ParticipantId>, term: u64) {
        self.leader_changes.inc();
        self.leader.set(leader.map_or(0, |p| i64::from(p.get())));
        self.term.set(i64::try_from(term).unwrap_or(i64::MAX));
    }

    /// The share cache's cumulative hit and miss counts (as `ShareCache` reports them); the
    /// counters advance by the difference. Totals lower than last time (a new cache) count
    /// from zero again.
    pub fn set_share_cache_totals(&self, hits: u64, misses: u64) {
        let mut seen = match self.cache_seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let advance = |counter: &Counter, now: u64, before: u64| {
            counter.inc_by(if now >= before { now - before } else { now });
        };
        advance(&self.cache_hits, hits, seen.0);
        advance(&self.cache_misses, misses, seen.1);
        *seen = (hits, misses);
    }

    /// The node's cumulative presignature counts (`PresignStats`); the counters advance by the
    /// difference (totals lower than last time, a restarted node, count from zero again).
    pub fn set_presignature_totals(&self, made: u64, spent: u64, failed: u64, missing: u64) {
        let mut seen = match self.presign_seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = [made, spent, failed, missing];
        for (i, event) in ["made", "spent", "failed", "missing"]
            .into_iter()
            .enumerate()
        {
            let step = if now[i] >= seen[i] {
                now[i] - seen[i]
            } else {
                now[i]
            };
            self.presignatures
                .get_or_create(&EventLabel { event })
                .inc_by(step);
        }
        *seen = now;
    }

    /// How many messages wait to be sent to `peer`.
    pub fn set_peer_queue_depth(&self, peer: ParticipantId, depth: usize) {
        self.queue_depth
            .get_or_create(&PeerLabel { peer: peer.get() })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// A message to `peer` was dropped.
    pub fn peer_message_dropped(&self, peer: ParticipantId) {
        self.dropped
            .get_or_create(&PeerLabel { peer: peer.get() })
            .inc();
    }

    /// A message from `peer` was refused.
    pub fn peer_message_refused(&self, peer: ParticipantId) {
        self.refused
            .get_or_create(&PeerLabel { peer: peer.get() })
            .inc();
    }

    /// Counts what a core event says: leader changes and refused peer messages. (Task
    /// outcomes need the request type and start time, which the driver has: use
    /// [`Metrics::task_finished`].)
    pub fn observe(&self, event: &Event) {
        match event {
            Event::LeaderChanged { leader, term } => self.leader_changed(*leader, *term),
            Event::PeerMisbehaved { peer, .. } => self.peer_message_refused(*peer),
            _ => {}
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
