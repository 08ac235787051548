//! Leader scoring in the running node: responsiveness probes, health reports, and the debounced
//! transfer of leadership away from a lagging leader (the decision itself is
//! [`super::scoring::LeaderMonitor`]).
//!
//! Why probes: a pure node cannot time its own work (it has no clock of its own, and its outputs
//! leave at the instant its input arrived), so a node's performance can only be measured by the
//! nodes it talks to. Every node probes every peer every `probe_interval` and records the round
//! trip (or a timeout) in a per-peer [`NodeMetrics`]. A probe travels the same run loop, queues
//! and links as session messages, so a node that is slow to handle its inputs (an overloaded
//! CPU, a clogged link, a stalled disk) answers probes late too.
//!
//! Why medians of everyone's reports: a round trip measured by node `O` to peer `P` contains `O`'s
//! own delays as well as `P`'s. A slow leader measuring its followers would see them all as slow.
//! So every node sends its ratings to the leader, and the leader rates each candidate by the
//! median over the *other* nodes' ratings of it: a single slow or lying observer cannot move a
//! median, and the leader's own (biased) view of its followers is one voice among several.
//!
//! All of it is a pure function of the inputs and virtual time; the seeded replay covers it.

use std::collections::BTreeMap;

use super::scoring::{LeaderMonitor, NodeMetrics, Outcome, Rating, Score};
use super::wire::{NodeMessage, PeerRating, MAX_RATINGS};
use super::{Event, Node};
use crate::ids::ParticipantId;
use crate::time::Instant;

/// Per-node probing and scoring state.
pub(super) struct Leadership {
    /// The outstanding probe to each peer: its nonce and when it left.
    outstanding: BTreeMap<ParticipantId, (u64, Instant)>,
    next_nonce: u64,
    next_round: Instant,
    /// Round trips to each peer as this node measured them.
    pub(super) responsiveness: BTreeMap<ParticipantId, NodeMetrics>,
    /// The latest health report of each node (leader), and when it arrived.
    reports: BTreeMap<ParticipantId, (Instant, Vec<PeerRating>)>,
    /// The transfer decision (leader).
    pub(super) monitor: LeaderMonitor,
}

impl Leadership {
    pub(super) fn new(monitor: LeaderMonitor, now: Instant) -> Self {
        Leadership {
            outstanding: BTreeMap::new(),
            next_nonce: 1,
            next_round: now,
            responsiveness: BTreeMap::new(),
            reports: BTreeMap::new(),
            monitor,
        }
    }

    /// When the next probe round is due.
    pub(super) fn poll_timeout(&self) -> Instant {
        self.next_round
    }
}

/// The upper median of `values` (for an even count, the larger middle value: with two observers
/// that disagree, the candidate gets the benefit of the doubt). `None` if empty.
fn upper_median(values: &mut [u32]) -> Option<u32> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

impl Node {
    /// Runs a probe round if one is due: times out unanswered probes, probes every peer, sends
    /// this node's ratings to the leader, and (at the leader) asks the monitor whether to hand
    /// leadership over.
    pub(super) fn poll_leadership(&mut self) {
        let now = self.now;
        if now < self.leadership.next_round {
            return;
        }
        self.leadership.next_round = now.saturating_add(self.cfg.probe_interval);
        let peers: Vec<ParticipantId> = self
            .registry
            .members
            .keys()
            .copied()
            .filter(|p| *p != self.cfg.id)
            .collect();
        // Forget peers that left.
        self.leadership.outstanding.retain(|p, _| peers.contains(p));
        self.leadership
            .responsiveness
            .retain(|p, _| peers.contains(p));
        self.leadership.reports.retain(|p, _| peers.contains(p));
        for peer in peers {
            if let Some(&(_, sent)) = self.leadership.outstanding.get(&peer) {
                if now.saturating_duration_since(sent) < self.cfg.probe_timeout {
                    continue; // still waiting; one probe at a time per peer
                }
                self.leadership.outstanding.remove(&peer);
                self.record_responsiveness(
                    peer,
                    Outcome::Failed(super::scoring::FailureKind::Timeout),
                );
            }
            let nonce = self.leadership.next_nonce;
            self.leadership.next_nonce += 1;
            self.leadership.outstanding.insert(peer, (nonce, now));
            self.send(peer, &NodeMessage::Probe { nonce });
        }
        match self.leader {
            Some(l) if l == self.cfg.id => self.judge_leadership(),
            Some(l) => {
                let ratings = self.my_ratings();
                self.send(l, &NodeMessage::HealthReport { ratings });
            }
            None => {}
        }
    }

    /// A probe's answer from `from`.
    pub(super) fn on_probe_reply(&mut self, from: ParticipantId, nonce: u64) {
        match self.leadership.outstanding.get(&from) {
            Some(&(n, sent)) if n == nonce => {
                self.leadership.outstanding.remove(&from);
                let latency = self.now.saturating_duration_since(sent);
                self.record_responsiveness(from, Outcome::Completed { latency });
            }
            // A late answer to a probe already counted as a timeout, or a duplicate: harmless.
            _ => {}
        }
    }

    /// A node's health report (kept at the leader only; followers ignore them).
    pub(super) fn on_health_report(&mut self, from: ParticipantId, ratings: Vec<PeerRating>) {
        if self.is_leader() && ratings.len() <= MAX_RATINGS {
            self.leadership.reports.insert(from, (self.now, ratings));
        }
    }

    fn record_responsiveness(&mut self, peer: ParticipantId, outcome: Outcome) {
        let scoring = self.cfg.scoring;
        self.leadership
            .responsiveness
            .entry(peer)
            .or_insert_with(|| NodeMetrics::new(scoring))
            .record(self.now, outcome);
    }

    /// This node's ratings of its peers, ascending by peer (the wire format's order).
    fn my_ratings(&self) -> Vec<PeerRating> {
        self.leadership
            .responsiveness
            .iter()
            .map(|(&peer, m)| {
                let r = m.rating(self.now);
                PeerRating {
                    peer,
                    score_ppm: r.score.ppm(),
                    samples: r.tasks,
                }
            })
            .collect()
    }

    /// The cluster's view of every voter: for each candidate, the upper median of the scores
    /// that the other nodes (fresh reports, and this leader's own measurements) give it; the
    /// evidence is the samples behind all of them.
    pub(super) fn cluster_ratings(&self) -> BTreeMap<ParticipantId, Rating> {
        let now = self.now;
        let window = self.cfg.scoring.window;
        let mut views: BTreeMap<ParticipantId, (Vec<u32>, u32)> = BTreeMap::new();
        let mine = (self.cfg.id, self.my_ratings());
        let fresh = self
            .leadership
            .reports
            .iter()
            .filter(|(_, (at, _))| now.saturating_duration_since(*at) < window)
            .map(|(from, (_, ratings))| (*from, ratings.clone()));
        for (observer, ratings) in std::iter::once(mine).chain(fresh) {
            for r in ratings {
                if r.peer == observer || !self.registry.members.contains_key(&r.peer) {
                    continue;
                }
                let v = views.entry(r.peer).or_default();
                v.0.push(r.score_ppm);
                v.1 = v.1.saturating_add(r.samples);
            }
        }
        views
            .into_iter()
            .filter_map(|(peer, (mut scores, samples))| {
                let score = Score::from_ppm(upper_median(&mut scores)?);
                Some((
                    peer,
                    Rating {
                        score,
                        tasks: samples,
                    },
                ))
            })
            .collect()
    }

    /// At the leader: hand leadership to the best follower if the monitor says so.
    fn judge_leadership(&mut self) {
        let mut ratings = self.cluster_ratings();
        ratings.retain(|p, _| *p == self.cfg.id || !self.down.contains(p));
        let me = self.cfg.id;
        let Some(to) = self
            .leadership
            .monitor
            .observe_ratings(me, &ratings, self.now)
        else {
            return;
        };
        let score = |p: ParticipantId| ratings.get(&p).map_or(Score::ZERO, |r| r.score);
        self.stats.leader_transfers += 1;
        self.event(Event::LeaderTransfer {
            from: me,
            to,
            reason: format!(
                "leader score {} trails node {to}'s {} by at least the margin for the sustain window",
                score(me),
                score(to)
            ),
        });
        self.raw.transfer_leader(u64::from(to.get()));
        self.after_raft();
    }

    /// Every voter's responsiveness score as this node sees it (at the leader: the cluster's
    /// combined view; elsewhere: this node's own round trips), for status displays.
    pub fn scores(&self) -> BTreeMap<ParticipantId, Rating> {
        self.cluster_ratings()
    }

    /// A fresh monitor for a new leadership (the grace period starts now).
    pub(super) fn reset_monitor(&mut self) {
        self.leadership.monitor = LeaderMonitor::new(self.cfg.monitor);
        self.leadership.reports.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::upper_median;

    #[test]
    fn upper_median_takes_the_larger_middle() {
        assert_eq!(upper_median(&mut []), None);
        assert_eq!(upper_median(&mut [7]), Some(7));
        assert_eq!(upper_median(&mut [9, 1]), Some(9));
        assert_eq!(upper_median(&mut [5, 1, 9]), Some(5));
        assert_eq!(upper_median(&mut [4, 1, 9, 2]), Some(4));
    }
}
