//! Per-node performance metrics, a health score, and the debounced leader-transfer decision.
//!
//! Why: the Raft leader coordinates every signing session (it picks participants, aggregates
//! and verifies), so a slow or flaky leader slows the whole cluster even when every follower is
//! healthy. Moving leadership is itself disruptive (a term change, in-flight sessions retried),
//! so the decision must be evidence-based and debounced: a leader is moved only when it lags the
//! best follower by a clear margin, continuously, for a while, and never twice in quick
//! succession. The same per-node score also weights participant selection
//! ([`super::select`]).
//!
//! Everything here is a pure function of the recorded outcomes, the caller's virtual `now` and
//! the configuration. The arithmetic is integer/fixed-point (scores are parts per million), so
//! there is no NaN, no rounding mode and no platform dependence: the same inputs give the same
//! scores and the same decisions on every machine, which the simulator's seed replay relies on.
//!
//! Memory is bounded: each node keeps at most [`ScoringConfig::max_samples`] recent outcomes,
//! and the monitor keeps a constant amount of state.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::ids::ParticipantId;
use crate::time::{Duration, Instant};

/// How a task failed, as far as one node is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The node did not answer within a round's deadline (it was among the silent ones).
    Timeout,
    /// The protocol identified the node as a culprit (invalid share, inconsistent broadcast,
    /// ...): evidence of a fault or of misbehaviour, so it weighs double.
    Blamed,
    /// The node dropped out without timing out or being blamed: it refused the task, restarted,
    /// or reported an internal error.
    Aborted,
}

impl FailureKind {
    /// The failure's weight against the node, in units of one completed task: a timeout or an
    /// abort cancels one completion; a blame cancels two.
    pub const fn penalty(self) -> u64 {
        match self {
            FailureKind::Timeout | FailureKind::Aborted => 1,
            FailureKind::Blamed => 2,
        }
    }
}

/// The result of one task (one session run) for one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node did its part; `latency` is how long it took (for a participant: from the
    /// session's start to its last message; for the leader: from request to aggregated result).
    /// Compare like with like: the monitor ranks the leader against followers by this number.
    Completed {
        /// How long the node took.
        latency: Duration,
    },
    /// The node failed the task.
    Failed(FailureKind),
}

/// A node's health as a fixed-point fraction in parts per million: `0` is useless,
/// [`Score::MAX`] (1 000 000) is perfect. Integer so it is exact, ordered and NaN-free.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Score(u32);

impl Score {
    /// No health at all: every recent task failed.
    pub const ZERO: Score = Score(0);
    /// Perfect health; also the score of a node with no recent evidence (see [`score`]).
    pub const MAX: Score = Score(1_000_000);

    /// A score of `ppm` parts per million, saturating at [`Score::MAX`].
    pub const fn from_ppm(ppm: u32) -> Self {
        if ppm > Score::MAX.0 {
            Score::MAX
        } else {
            Score(ppm)
        }
    }

    /// The score in parts per million (`0..=1_000_000`).
    pub const fn ppm(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Score({self})")
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// How per-node metrics are kept and scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoringConfig {
    /// Only outcomes recorded within this long before `now` count. Default 5 minutes: long
    /// enough to hold a useful number of tasks, short enough that a recovered node is forgiven
    /// within minutes.
    pub window: Duration,
    /// At most this many recent outcomes are kept per node (the oldest is dropped first), which
    /// bounds memory and the cost of the exact percentiles. Default 256. Zero is treated as one.
    pub max_samples: usize,
    /// The latency at which the latency factor of the score is one half (see [`score`]).
    /// Default 200 ms, a slow but working signing round trip in one region; tune per deployment.
    pub half_score_latency: Duration,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            window: Duration::from_secs(5 * 60),
            max_samples: 256,
            half_score_latency: Duration::from_millis(200),
        }
    }
}

/// A summary of one node's outcomes inside the window, at one `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Tasks completed.
    pub completed: u32,
    /// Tasks failed by timeout.
    pub timeouts: u32,
    /// Tasks failed with the node blamed.
    pub blamed: u32,
    /// Tasks the node aborted.
    pub aborted: u32,
    /// Median latency of the completed tasks (nearest-rank), if any completed.
    pub p50: Option<Duration>,
    /// 95th-percentile latency of the completed tasks (nearest-rank), if any completed.
    pub p95: Option<Duration>,
}

impl Snapshot {
    /// Failures of one kind.
    pub const fn failures(&self, kind: FailureKind) -> u32 {
        match kind {
            FailureKind::Timeout => self.timeouts,
            FailureKind::Blamed => self.blamed,
            FailureKind::Aborted => self.aborted,
        }
    }

    /// Failures of every kind.
    pub const fn failed(&self) -> u32 {
        self.timeouts
            .saturating_add(self.blamed)
            .saturating_add(self.aborted)
    }

    /// Tasks seen, completed or failed: the amount of evidence behind the score.
    pub const fn tasks(&self) -> u32 {
        self.completed.saturating_add(self.failed())
    }

    /// Completed tasks over all tasks (unweighted), `None` with no tasks.
    pub fn completion_rate(&self) -> Option<Score> {
        let tasks = u64::from(self.tasks());
        if tasks == 0 {
            return None;
        }
        let ppm = u64::from(self.completed) * u64::from(Score::MAX.0) / tasks;
        Some(Score::from_ppm(u32::try_from(ppm).unwrap_or(u32::MAX)))
    }
}

/// The health score of a snapshot: `reliability × latency_factor`, in parts per million.
///
/// - `reliability = completed / (completed + Σ penalty(failure))`, with the penalties of
///   [`FailureKind::penalty`] (a blame counts as two failures).
/// - `latency_factor = h / (h + L)` where `h` is `half_score_latency` and `L` is the midpoint of
///   p50 and p95: 1 at zero latency, ½ at `h`, ⅓ at `2h`, falling smoothly and never reaching
///   zero, so every latency difference ranks nodes without a cliff. The midpoint rewards nodes
///   that are both typically fast and rarely slow (a session waits for its slowest member).
///
/// Edges: no tasks at all scores [`Score::MAX`] (no evidence against the node, and a fresh
/// node must be picked to be measured; the [`LeaderMonitor`] separately demands
/// [`MonitorConfig::min_tasks`] of evidence before acting); only failures score
/// [`Score::ZERO`]; a zero `half_score_latency` makes any non-zero latency score zero. All
/// arithmetic is in `u128`, so no input overflows, and the result is always in range.
pub fn score(snapshot: &Snapshot, half_score_latency: Duration) -> Score {
    let completed = u128::from(snapshot.completed);
    let penalty = u128::from(snapshot.timeouts) * u128::from(FailureKind::Timeout.penalty())
        + u128::from(snapshot.blamed) * u128::from(FailureKind::Blamed.penalty())
        + u128::from(snapshot.aborted) * u128::from(FailureKind::Aborted.penalty());
    let weighed = completed + penalty;
    if weighed == 0 {
        return Score::MAX;
    }
    let full = u128::from(Score::MAX.0);
    let reliability = completed * full / weighed;
    let scaled = match (snapshot.p50, snapshot.p95) {
        (Some(p50), Some(p95)) => {
            let latency = (p50.as_micros() + p95.as_micros()) / 2;
            let half = half_score_latency.as_micros();
            match half.checked_add(latency) {
                Some(0) => reliability,
                Some(denominator) => reliability * half / denominator,
                // Beyond u128 microseconds: the factor is zero to every precision we keep.
                None => 0,
            }
        }
        _ => reliability,
    };
    Score::from_ppm(u32::try_from(scaled).unwrap_or(u32::MAX))
}

/// A node's score with the amount of evidence behind it, which is what the monitor compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rating {
    /// The node's health score.
    pub score: Score,
    /// Tasks (completed or failed) inside the window behind that score.
    pub tasks: u32,
}

/// One node's recent outcomes: a bounded ring, read through a virtual-time window.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    config: ScoringConfig,
    samples: VecDeque<(Instant, Outcome)>,
}

impl NodeMetrics {
    /// Empty metrics with `config`.
    pub fn new(config: ScoringConfig) -> Self {
        NodeMetrics {
            config,
            samples: VecDeque::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// Records one task outcome observed at `at`. Keeps at most `max_samples` outcomes and
    /// drops, from the oldest end, those already outside the window at `at`.
    pub fn record(&mut self, at: Instant, outcome: Outcome) {
        self.samples.push_back((at, outcome));
        let cap = self.config.max_samples.max(1);
        while self.samples.len() > cap {
            self.samples.pop_front();
        }
        while let Some(&(first, _)) = self.samples.front() {
            if self.in_window(first, at) {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// How many outcomes are held (in or out of the window); never more than `max_samples`.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no outcome is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// An outcome at `at` counts at `now` if it is less than `window` old (outcomes stamped
    /// after `now` count too: their age saturates to zero).
    fn in_window(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) < self.config.window
    }

    /// The summary of the outcomes inside the window at `now`; a pure function of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut latencies = Vec::with_capacity(self.samples.len());
        for &(at, outcome) in &self.samples {
            if !self.in_window(at, now) {
                continue;
            }
            match outcome {
                Outcome::Completed { latency } => {
                    snap.completed = snap.completed.saturating_add(1);
                    latencies.push(latency);
                }
                Outcome::Failed(FailureKind::Timeout) => {
                    snap.timeouts = snap.timeouts.saturating_add(1)
                }
                Outcome::Failed(FailureKind::Blamed) => snap.blamed = snap.blamed.saturating_add(1),
                Outcome::Failed(FailureKind::Aborted) => {
                    snap.aborted = snap.aborted.saturating_add(1)
                }
            }
        }
        latencies.sort_unstable();
        snap.p50 = percentile(&latencies, 50);
        snap.p95 = percentile(&latencies, 95);
        snap
    }

    /// The node's [`score`] at `now`.
    pub fn score(&self, now: Instant) -> Score {
        score(&self.snapshot(now), self.config.half_score_latency)
    }

    /// The node's score and the evidence behind it at `now`.
    pub fn rating(&self, now: Instant) -> Rating {
        let snap = self.snapshot(now);
        Rating {
            score: score(&snap, self.config.half_score_latency),
            tasks: snap.tasks(),
        }
    }
}

/// The nearest-rank `p`th percentile of ascending `sorted` (the smallest value with at least
/// `p`% of the values at or below it); exact, no interpolation. `None` if empty.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (n * p.min(100)).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// When the leader monitor moves leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// How far (in score parts per million) the leader must trail the best follower to count as
    /// lagging. Default 200 000 (0.2): with the default scoring, a leader at 2× the best
    /// follower's latency lags; one at 1.2× does not, so small differences never cause churn.
    pub margin: u32,
    /// How long the leader must lag continuously before a transfer is decided. Default 60 s.
    /// Any observation without lag resets it (hysteresis).
    pub sustain: Duration,
    /// The least time between two transfers, and the grace a leader gets after the monitor
    /// first sees it (after an election, a transfer or a restart). Default 10 minutes.
    pub min_interval: Duration,
    /// The least number of tasks in the window, for the leader and for a candidate, before the
    /// monitor trusts their scores. Default 20.
    pub min_tasks: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            margin: 200_000,
            sustain: Duration::from_secs(60),
            min_interval: Duration::from_secs(10 * 60),
            min_tasks: 20,
        }
    }
}

/// Decides when leadership should move, and to whom.
///
/// Feed it on every tick with the current leader and the metrics (or ratings) of the nodes that
/// could lead (voters that are up). It answers `Some(to)` when all of these hold:
///
/// 1. the leader and `to` each have at least `min_tasks` tasks in the window;
/// 2. `to` is the best-scoring such follower (ties go to the lowest id);
/// 3. at every observation for the last `sustain`, the leader trailed the best follower by at
///    least `margin` (a single observation without lag restarts the count; the target is the
///    best follower at decision time);
/// 4. at least `min_interval` has passed since the last decided transfer and since the monitor
///    first saw this leader.
///
/// A decided transfer restarts the count; if the transfer fails and the same leader keeps
/// lagging, the next decision comes no sooner than `min_interval` later. "Continuously" is
/// judged at the observations the caller makes, so observe at least every few seconds.
#[derive(Clone, Debug)]
pub struct LeaderMonitor {
    config: MonitorConfig,
    /// The leader last seen and when it was first seen.
    leader: Option<(ParticipantId, Instant)>,
    /// Since when the leader has been lagging without interruption.
    lagging_since: Option<Instant>,
    /// When the last transfer was decided.
    last_transfer: Option<Instant>,
}

impl LeaderMonitor {
    /// A monitor that has seen nothing yet.
    pub fn new(config: MonitorConfig) -> Self {
        LeaderMonitor {
            config,
            leader: None,
            lagging_since: None,
            last_transfer: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Since when the current leader has been lagging without interruption, if it is.
    pub fn lagging_since(&self) -> Option<Instant> {
        self.lagging_since
    }

    /// When the last transfer was decided, if ever.
    pub fn last_transfer(&self) -> Option<Instant> {
        self.last_transfer
    }

    /// Observes `leader` and every candidate's metrics at `now`; `Some(to)` means "transfer
    /// leadership to `to` now". See [`LeaderMonitor`] for the rule.
    pub fn observe(
        &mut self,
        leader: ParticipantId,
        metrics: &BTreeMap<ParticipantId, NodeMetrics>,
        now: Instant,
    ) -> Option<ParticipantId> {
        let ratings: BTreeMap<ParticipantId, Rating> =
            metrics.iter().map(|(&id, m)| (id, m.rating(now))).collect();
        self.observe_ratings(leader, &ratings, now)
    }

    /// As [`LeaderMonitor::observe`], from ratings computed elsewhere.
    pub fn observe_ratings(
        &mut self,
        leader: ParticipantId,
        ratings: &BTreeMap<ParticipantId, Rating>,
        now: Instant,
    ) -> Option<ParticipantId> {
        let leader_since = match self.leader {
            Some((seen, since)) if seen == leader => since,
            _ => {
                self.leader = Some((leader, now));
                self.lagging_since = None;
                now
            }
        };

        let Some(best) = self.lagging_behind(leader, ratings) else {
            self.lagging_since = None;
            return None;
        };
        let since = *self.lagging_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.config.sustain {
            return None;
        }
        let quiet_since = match self.last_transfer {
            Some(t) if t > leader_since => t,
            _ => leader_since,
        };
        if now.saturating_duration_since(quiet_since) < self.config.min_interval {
            // Still lagging: keep the count running so the transfer follows as soon as the
            // interval allows, if the lag persists.
            return None;
        }
        self.last_transfer = Some(now);
        self.lagging_since = None;
        Some(best)
    }

    /// The best follower if the leader trails it by at least the margin, both with enough
    /// evidence.
    fn lagging_behind(
        &self,
        leader: ParticipantId,
        ratings: &BTreeMap<ParticipantId, Rating>,
    ) -> Option<ParticipantId> {
        let min_tasks = self.config.min_tasks;
        let leader_rating = ratings.get(&leader).filter(|r| r.tasks >= min_tasks)?;
        let mut best: Option<(ParticipantId, Score)> = None;
        for (&id, rating) in ratings {
            if id == leader || rating.tasks < min_tasks {
                continue;
            }
            // Strictly greater: ties keep the lowest id (the map iterates in id order).
            if best.is_none_or(|(_, s)| rating.score > s) {
                best = Some((id, rating.score));
            }
        }
        let (best_id, best_score) = best?;
        let lag = best_score.ppm().saturating_sub(leader_rating.score.ppm());
        (lag >= self.config.margin && lag > 0).then_some(best_id)
    }
}

#[cfg(test)]
mod tests;
