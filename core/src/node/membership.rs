//! Adding and removing cluster members: admin requests become `ChangeMembership` commands in the
//! Raft log, and each committed change is applied to Raft's configuration and to the registry
//! on every node, in log order.
//!
//! Why a normal log entry and not raft-rs's `EntryConfChange`: the change carries our own data
//! (role, address) in our own encoding, and no node ever parses rust-protobuf bytes that came
//! from a peer (RUSTSEC-2024-0437). raft-rs applies a configuration when the entry is applied,
//! whichever entry type carried it, so safety is the same provided only one change is in flight:
//! the leader proposes the next change only after the previous one applied (single-server
//! changes, one at a time, are safe without joint consensus).
//!
//! Lifecycle: a *joining* node starts with the cluster's bootstrap member list (not including
//! itself) and `joining = true`; it does nothing until the leader, after an admin's `AddMember`,
//! replicates the log to it, which makes it a voter. A *removed* node erases its shares (every
//! key was checked to keep at least its threshold of holders without it) and stops taking part.
//! A leader asked to remove itself first hands leadership to another node; the request is then
//! re-routed to the new leader by the node that received it.

use std::collections::BTreeSet;

use raft::eraftpb::{ConfChange, ConfChangeType};

use super::registry::{MembershipChange, Replicated, TaskKind, TaskState};
use super::wire::{RequestError, Response};
use super::{Event, Held, Node, SHARE_ORIGIN_TABLE};
use crate::ids::ParticipantId;
use crate::persist::{PersistBatch, PersistOp};

impl Node {
    /// At the leader: a membership request from `origin`.
    pub(super) fn on_membership_request(
        &mut self,
        origin: ParticipantId,
        request_id: String,
        change: MembershipChange,
    ) {
        if let Some(result) = self.membership_result(&request_id) {
            return self.reply(origin, request_id, result);
        }
        if let MembershipChange::Remove { id } = &change {
            if *id == self.cfg.id && self.registry.members.len() > 1 {
                // Leave leadership first; the origin re-routes the request to the next leader.
                if let Some(to) = self.best_follower() {
                    self.raw.transfer_leader(u64::from(to.get()));
                    self.after_raft();
                    return;
                }
            }
        }
        if let Err(why) = self.registry.check_membership(&change) {
            return self.reply(origin, request_id, Err(RequestError::BadRequest(why)));
        }
        let queued = self
            .membership_queue
            .iter()
            .any(|(_, id, _)| *id == request_id)
            || self.membership_pending.as_deref() == Some(request_id.as_str());
        if !queued {
            self.membership_queue
                .push_back((origin, request_id, change));
        }
        self.propose_next_membership();
    }

    /// Proposes the next queued change if none is in flight (one at a time).
    pub(super) fn propose_next_membership(&mut self) {
        if self.membership_pending.is_some() || !self.is_leader() {
            return;
        }
        let Some((origin, request_id, change)) = self.membership_queue.pop_front() else {
            return;
        };
        let cmd = Replicated::ChangeMembership {
            request_id: request_id.clone(),
            origin,
            change,
        };
        if self.propose(&cmd) {
            self.membership_pending = Some(request_id);
        } else {
            self.reply(origin, request_id, Err(RequestError::TimedOut));
        }
    }

    /// The answer to a membership request that was decided, if it was.
    pub(super) fn membership_result(
        &self,
        request_id: &str,
    ) -> Option<Result<Response, RequestError>> {
        let decided = self.registry.membership_requests.get(request_id)?;
        Some(match decided {
            Ok(()) => Ok(Response::MembershipChanged {
                members: self.registry.members.clone(),
            }),
            Err(why) => Err(RequestError::BadRequest(why.clone())),
        })
    }

    /// A committed membership command was applied to the registry (on every node).
    pub(super) fn on_membership_applied(
        &mut self,
        request_id: String,
        change: MembershipChange,
        result: Result<(), String>,
    ) {
        if self.membership_pending.as_deref() == Some(request_id.as_str()) {
            self.membership_pending = None;
        }
        if result.is_ok() {
            let (kind, id) = match &change {
                MembershipChange::Add { id, .. } => (ConfChangeType::AddNode, *id),
                MembershipChange::Remove { id } => (ConfChangeType::RemoveNode, *id),
            };
            let mut cc = ConfChange::default();
            cc.set_change_type(kind);
            cc.set_node_id(u64::from(id.get()));
            match self.raw.apply_conf_change(&cc) {
                Ok(cs) => self.raw.mut_store().wl().set_conf_state(cs),
                Err(e) => self.event(Event::BadLogEntry {
                    index: 0,
                    reason: format!("raft refused a committed membership change: {e}"),
                }),
            }
            self.after_raft();
            self.event(Event::MembershipChanged {
                members: self.registry.members.clone(),
                addresses: self.registry.addresses.clone(),
            });
            if let MembershipChange::Remove { id } = change {
                self.down.remove(&id);
                if id == self.cfg.id {
                    self.leave();
                } else {
                    self.fail_tasks_of_removed();
                }
            }
        }
        if let Some(result) = self.membership_result(&request_id) {
            if self.waiters.remove(&request_id).is_some() {
                self.event(Event::Completed { request_id, result });
            }
        }
        self.propose_next_membership();
    }

    /// This node was removed: it erases every share it holds (each key keeps at least its
    /// threshold of holders without it) and says so.
    fn leave(&mut self) {
        let held: Vec<_> = self.shares.keys().cloned().collect();
        let mut ops = Vec::with_capacity(held.len() * 2);
        for (key, version) in held {
            self.shares.remove(&(key.clone(), version));
            self.share_origin.remove(&(key.clone(), version));
            ops.push(PersistOp::DeleteRecord {
                table: SHARE_ORIGIN_TABLE.into(),
                key: super::encode_share_key(&key, version),
            });
            ops.push(PersistOp::EraseShare { key, version });
        }
        if !ops.is_empty() {
            let token = self.token();
            self.held.insert(token.0, Held::default());
            self.outputs
                .push_back(super::Output::Persist(PersistBatch { token, ops }));
        }
        self.sessions.clear();
        // A node that applies its own removal (it may have become leader after the removal was
        // proposed) steps down and stops taking part in Raft.
        self.removed = true;
        if self.is_leader() {
            let term = self.raw.raft.term;
            self.raw.raft.become_follower(term, raft::INVALID_ID);
            self.after_raft();
        }
        self.event(Event::Removed);
    }

    /// Leader: a running task with a participant (or, for a reshare, a new member) that is no
    /// longer a member can never finish, since its report is refused. Fail the attempt naming
    /// the removed nodes, so it is retried without them (found by the simulator, seed 1014:
    /// a DKG stuck `Running` held the DKG slot and no key could be created again).
    pub(super) fn fail_tasks_of_removed(&mut self) {
        if !self.is_leader() {
            return;
        }
        let stuck: Vec<(u64, u32, BTreeSet<ParticipantId>)> = self
            .registry
            .tasks
            .iter()
            .filter_map(|(id, t)| {
                let TaskState::Running { participants } = &t.state else {
                    return None;
                };
                let new_members = match t.kind {
                    TaskKind::Reshare { .. } => Some(&t.spec.participants),
                    TaskKind::Dkg => None,
                };
                let gone: BTreeSet<ParticipantId> = participants
                    .iter()
                    .chain(new_members.into_iter().flatten())
                    .filter(|p| !self.registry.members.contains_key(p))
                    .copied()
                    .collect();
                (!gone.is_empty() && !self.end_proposed.contains(&(*id, t.attempt)))
                    .then_some((*id, t.attempt, gone))
            })
            .collect();
        for (task, attempt, gone) in stuck {
            let cmd = Replicated::Fail {
                task,
                attempt,
                reason: format!("participants {gone:?} were removed from the cluster"),
                culprits: gone,
            };
            if self.propose(&cmd) {
                self.end_proposed.insert((task, attempt));
            }
        }
    }

    /// The voter (other than this node) with the best cluster rating; ties and missing ratings
    /// go to the lowest id.
    pub(super) fn best_follower(&self) -> Option<ParticipantId> {
        let ratings = self.cluster_ratings();
        let others: BTreeSet<ParticipantId> = self
            .registry
            .members
            .keys()
            .copied()
            .filter(|p| *p != self.cfg.id && !self.down.contains(p))
            .collect();
        others
            .iter()
            .copied()
            .max_by_key(|p| (ratings.get(p).map(|r| r.score), std::cmp::Reverse(p.get())))
    }
}
