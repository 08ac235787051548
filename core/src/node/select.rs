//! Choosing the participants of a signing or reshare session.
//!
//! Why: a threshold session waits for its slowest member and fails if any member fails, so the
//! leader should prefer healthy nodes and must avoid nodes that were just blamed or keep timing
//! out. It must still spread work randomly: a fixed "best t" would overload those nodes, starve
//! the others of measurements (so their scores never recover), and make the choice predictable
//! to an adversary. So the choice is a weighted random sample without replacement, drawn from
//! the injected seeded RNG, over the nodes that are not cooling down.
//!
//! Determinism: the draw uses only integer arithmetic on `u64` weights and an unbiased integer
//! rejection sampler over [`RngCore::next_u64`] (no floating point, no `rand` distribution whose
//! algorithm could change between versions), and candidates are visited in [`ParticipantId`]
//! order from a `BTreeMap`. The same seed, candidates, exclusions and `now` give the same picks
//! on every platform.
//!
//! Zero weights: every eligible node's weight is raised to at least [`Weight::FLOOR`] (1 % of
//! full health). An unhealthy node that is not excluded can still be picked, rarely, so it keeps
//! being measured and can earn its way back; only [`Exclusions`] keep a node out entirely. If all
//! weights are zero, the floor makes the choice uniform.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;

use rand_core::RngCore;

use super::scoring::{FailureKind, NodeMetrics, Outcome, Score};
use crate::ids::ParticipantId;
use crate::rng::CoreRng;
use crate::time::{Duration, Instant};

/// A node's selection weight in parts per million of full health (the scale of [`Score`]).
/// Only ratios matter; values above [`Weight::FULL`] are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Weight(u32);

impl Weight {
    /// Full health.
    pub const FULL: Weight = Weight(1_000_000);
    /// The least weight an eligible node is drawn with (1 % of [`Weight::FULL`]); see the
    /// module documentation.
    pub const FLOOR: Weight = Weight(10_000);

    /// A weight of `ppm` parts per million of full health.
    pub const fn from_ppm(ppm: u32) -> Self {
        Weight(ppm)
    }

    /// The weight in parts per million of full health.
    pub const fn ppm(self) -> u32 {
        self.0
    }
}

impl From<Score> for Weight {
    fn from(score: Score) -> Self {
        Weight(score.ppm())
    }
}

/// Selection weights for `candidates` from their metrics at `now`; a candidate without metrics
/// gets [`Weight::FULL`] (no evidence against it, see [`super::scoring::score`]).
pub fn health_weights(
    candidates: &BTreeSet<ParticipantId>,
    metrics: &BTreeMap<ParticipantId, NodeMetrics>,
    now: Instant,
) -> BTreeMap<ParticipantId, Weight> {
    candidates
        .iter()
        .map(|id| {
            let w = metrics
                .get(id)
                .map_or(Weight::FULL, |m| Weight::from(m.score(now)));
            (*id, w)
        })
        .collect()
}

/// Why participants could not be selected. Both are caller-side conditions: the task should
/// wait, retry later or fail with this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// Zero participants were requested.
    NothingRequested,
    /// Fewer candidates are eligible than requested.
    NotEnoughEligible {
        /// How many were requested.
        requested: usize,
        /// How many candidates are eligible (not cooling down).
        eligible: usize,
        /// How many candidates are excluded (cooling down at `now`).
        excluded: usize,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::NothingRequested => f.write_str("zero participants requested"),
            SelectError::NotEnoughEligible {
                requested,
                eligible,
                excluded,
            } => write!(
                f,
                "{requested} participants requested but only {eligible} eligible \
                 ({excluded} excluded while cooling down)"
            ),
        }
    }
}

impl std::error::Error for SelectError {}

/// Picks `count` distinct participants from `candidates` (the nodes holding the key's active
/// version, with their health weights), never one that `exclusions` excludes at `now`.
///
/// The draw is sequential weighted sampling without replacement: each pick takes an eligible,
/// not yet picked node with probability proportional to its weight (floored at
/// [`Weight::FLOOR`]). Equal weights give every `count`-subset the same probability. When
/// exactly `count` nodes are eligible they are all returned and no randomness is drawn.
pub fn select(
    candidates: &BTreeMap<ParticipantId, Weight>,
    count: usize,
    exclusions: &Exclusions,
    now: Instant,
    rng: &mut CoreRng,
) -> Result<BTreeSet<ParticipantId>, SelectError> {
    if count == 0 {
        return Err(SelectError::NothingRequested);
    }
    let mut pool: Vec<(ParticipantId, u64)> = candidates
        .iter()
        .filter(|(id, _)| !exclusions.is_excluded(**id, now))
        .map(|(id, w)| (*id, u64::from(w.0.max(Weight::FLOOR.0))))
        .collect();
    let eligible = pool.len();
    if eligible < count {
        return Err(SelectError::NotEnoughEligible {
            requested: count,
            eligible,
            excluded: candidates.len() - eligible,
        });
    }
    if eligible == count {
        return Ok(pool.into_iter().map(|(id, _)| id).collect());
    }
    let mut picked = BTreeSet::new();
    // At most 65 535 ids of weight < 2^32 each: the total fits in u64.
    let mut total: u64 = pool.iter().map(|(_, w)| w).sum();
    for _ in 0..count {
        let mut target = uniform_below(rng, total);
        let mut index = pool.len() - 1;
        for (i, (_, w)) in pool.iter().enumerate() {
            if target < *w {
                index = i;
                break;
            }
            target -= w;
        }
        let (id, w) = pool.remove(index);
        total -= w;
        picked.insert(id);
    }
    Ok(picked)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias: draws below `2^64 mod n` are
/// rejected, so the accepted range is a whole multiple of `n`. Fewer than two draws expected.
fn uniform_below(rng: &mut CoreRng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let n = n.max(1);
    let reject_below = n.wrapping_neg() % n;
    loop {
        let x = rng.next_u64();
        if x >= reject_below {
            return x % n;
        }
    }
}

/// How blame and timeouts turn into cool-downs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExclusionConfig {
    /// How long a blamed node is excluded. Default 10 minutes: blame is evidence of a fault or
    /// of misbehaviour, and an operator should look before it signs again.
    pub blame_cooldown: Duration,
    /// How many consecutive timeouts exclude a node. Default 3: one timeout is often the
    /// network's fault; three in a row without a success is the node's.
    pub timeouts_to_exclude: NonZeroU32,
    /// How long a node is excluded after that many timeouts. Default 1 minute: long enough to
    /// ride out a restart, short enough not to shrink the cluster for long.
    pub timeout_cooldown: Duration,
}

impl Default for ExclusionConfig {
    fn default() -> Self {
        ExclusionConfig {
            blame_cooldown: Duration::from_secs(10 * 60),
            timeouts_to_exclude: NonZeroU32::MIN.saturating_add(2),
            timeout_cooldown: Duration::from_secs(60),
        }
    }
}

/// Why a node is excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionReason {
    /// A session blamed it.
    Blamed,
    /// It timed out this many times in a row.
    RepeatedTimeouts(u32),
}

/// One node's current cool-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// The node is excluded while `now < until`.
    pub until: Instant,
    /// Why (the reason of the cool-down that ends last).
    pub reason: ExclusionReason,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NodeRecord {
    /// Timeouts since the last success (or since the last timeout cool-down began).
    timeout_streak: u32,
    /// The latest cool-down; it may have expired already.
    exclusion: Option<Exclusion>,
}

/// Which nodes are cooling down after blame or repeated timeouts, in virtual time.
///
/// Rules: a blame excludes a node for `blame_cooldown`; `timeouts_to_exclude` consecutive
/// timeouts exclude it for `timeout_cooldown` and restart the streak; a success resets the
/// streak but does not lift a cool-down in progress; an abort neither advances nor resets the
/// streak. Overlapping cool-downs keep the later end. Whether a node is excluded is a pure
/// function of `now` (excluded while `now < until`), so nothing needs to tick; [`Exclusions::prune`]
/// only reclaims memory.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    config: ExclusionConfig,
    nodes: BTreeMap<ParticipantId, NodeRecord>,
}

impl Exclusions {
    /// No node excluded, with `config`.
    pub fn new(config: ExclusionConfig) -> Self {
        Exclusions {
            config,
            nodes: BTreeMap::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ExclusionConfig {
        &self.config
    }

    /// A session blamed `node` at `now`: exclude it for `blame_cooldown`.
    pub fn record_blame(&mut self, node: ParticipantId, now: Instant) {
        let until = now.saturating_add(self.config.blame_cooldown);
        self.exclude_until(node, until, ExclusionReason::Blamed);
    }

    /// `node` timed out at `now`: after `timeouts_to_exclude` in a row, exclude it for
    /// `timeout_cooldown`.
    pub fn record_timeout(&mut self, node: ParticipantId, now: Instant) {
        let record = self.nodes.entry(node).or_default();
        record.timeout_streak = record.timeout_streak.saturating_add(1);
        let streak = record.timeout_streak;
        if streak >= self.config.timeouts_to_exclude.get() {
            record.timeout_streak = 0;
            let until = now.saturating_add(self.config.timeout_cooldown);
            self.exclude_until(node, until, ExclusionReason::RepeatedTimeouts(streak));
        }
    }

    /// `node` completed its part at `now`: its timeout streak restarts.
    pub fn record_success(&mut self, node: ParticipantId, _now: Instant) {
        if let Some(record) = self.nodes.get_mut(&node) {
            record.timeout_streak = 0;
        }
    }

    /// Records a task outcome from [`super::scoring`]: a completion is a success, a timeout a
    /// timeout, a blame a blame; an abort changes nothing here (it still lowers the score).
    pub fn record(&mut self, node: ParticipantId, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Completed { .. } => self.record_success(node, now),
            Outcome::Failed(FailureKind::Timeout) => self.record_timeout(node, now),
            Outcome::Failed(FailureKind::Blamed) => self.record_blame(node, now),
            Outcome::Failed(FailureKind::Aborted) => {}
        }
    }

    /// Excludes `node` until `until` (kept if a cool-down already ends later).
    pub fn exclude_until(&mut self, node: ParticipantId, until: Instant, reason: ExclusionReason) {
        let record = self.nodes.entry(node).or_default();
        match record.exclusion {
            Some(current) if current.until >= until => {}
            _ => record.exclusion = Some(Exclusion { until, reason }),
        }
    }

    /// `node`'s cool-down if it is excluded at `now`.
    pub fn exclusion(&self, node: ParticipantId, now: Instant) -> Option<Exclusion> {
        self.nodes
            .get(&node)
            .and_then(|r| r.exclusion)
            .filter(|e| now < e.until)
    }

    /// Whether `node` is excluded at `now`.
    pub fn is_excluded(&self, node: ParticipantId, now: Instant) -> bool {
        self.exclusion(node, now).is_some()
    }

    /// Every node excluded at `now`, in id order.
    pub fn excluded(&self, now: Instant) -> impl Iterator<Item = (ParticipantId, Exclusion)> + '_ {
        self.nodes
            .iter()
            .filter_map(move |(id, r)| r.exclusion.filter(|e| now < e.until).map(|e| (*id, e)))
    }

    /// `node`'s current timeout streak.
    pub fn timeout_streak(&self, node: ParticipantId) -> u32 {
        self.nodes.get(&node).map_or(0, |r| r.timeout_streak)
    }

    /// Forgets `node` entirely (it left the cluster).
    pub fn forget(&mut self, node: ParticipantId) {
        self.nodes.remove(&node);
    }

    /// Drops the records that no longer matter at `now` (cool-down over, no streak). Changes no
    /// answer for any `now'` ≥ `now`; call it now and then to bound memory.
    pub fn prune(&mut self, now: Instant) {
        self.nodes
            .retain(|_, r| r.exclusion.is_some_and(|e| now < e.until) || r.timeout_streak > 0);
    }

    /// How many nodes have a record (excluded, or with a timeout streak).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node has a record.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests;
