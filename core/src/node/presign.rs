//! ECDSA presignature pools in the node: made in the background, spent at most once.
//!
//! Signing an ECDSA message with cggmp24's full protocol takes seconds of CPU per signer (the
//! Paillier work of presigning); with a presignature made beforehand it is one short round. So
//! the leader keeps, per ECDSA key (active version), up to `presignature_depth` presignatures
//! ready, each for the signer set it was made with:
//!
//! - **Refill** (leader, [`Node::poll_presign`]): when no signing request is queued and no other
//!   refill runs, the leader takes the key with the fewest ready presignatures and sends
//!   `PresignStart` to `t` of its signers: the signer set of its newest presignature while all
//!   of them are up and not cooling down (so a batch finds enough of one set), else a new set
//!   chosen as signing chooses. Each runs cggmp24 presigning
//!   ([`crate::ecdsa::EcdsaPresign`]), files the result in its own pool and reports
//!   `PresignReport`. A presignature is offered for signing only once every signer of it
//!   reported. One run at a time, and none while requests wait: a refill never delays a queued
//!   request (a run already under way still occupies its signers' node threads for its compute
//!   steps, about a second per signer at 2-of-3).
//! - **Use** (leader, in `start_sign`): the first attempt of a request on an ECDSA key takes one
//!   ready presignature per message, all of one signer set whose members are up and not
//!   excluded, and names them in `SignStart`; otherwise (none ready, a retry) the full
//!   interactive protocol runs, as before.
//! - **Spend** (signer, [`Node::begin_presigned`]): a signer reserves the named presignatures in
//!   its [`PresignaturePool`] and persists a `MarkConsumed` for each; only when that batch is
//!   durable does it create the online run, whose first outputs are its partial signatures. So a
//!   presignature's partial signature leaves a node at most once, even across a crash between
//!   any two steps (the pool's own property test covers those crash points). The online run
//!   hashes the full message with SHA-256 ([`crate::ecdsa::EcdsaSign`]); a raw client hash is
//!   never signed with a presignature (CVE-2025-66017).
//!
//! Presignatures live in memory only: they are never written to disk, and a restart (or a leader
//! change, which forgets the leader's inventory) discards them. That is always safe (a
//! presignature never used is just lost work), costs one refill, and keeps one more kind of
//! secret off the disk. A signer asked to use a presignature it no longer holds tells the
//! coordinator and the other signers at once ([`super::ecdsa::abort_frame`]); the leader retries
//! the request with the interactive protocol. The spend marks stay in the store (32 bytes per
//! signature; nothing prunes them yet).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point};
use cggmp24::supported_curves::{Secp256k1, Secp256r1};

use super::ecdsa::{abort_frame, decode_share, EcdsaNodeSign};
use super::sessions::{ErasedOutput, ErasedSession, StartError};
use super::wire::{NodeMessage, SessionKey, SessionKind};
use super::{session_context, Event, Held, Live, Node, Output};
use crate::ecdsa::pool::{
    decode_presignature, encode_presignature, PresignatureId, PresignaturePool,
};
use crate::ecdsa::{
    EcdsaCurve, EcdsaPresign, EcdsaPresignature, EcdsaSign, EcdsaSignConfig, SignersConfig,
};
use crate::frost::SignConfig;
use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion, PersistBatch, PersistOp, SecretBytes};
use crate::scheme::Scheme;
use crate::session::{Failure, FailureKind, Session, SessionInput, SessionOutput};
use crate::time::Instant;

/// The kind of one-time value in `PersistOp::MarkConsumed` for a spent presignature.
pub const CONSUMED_KIND: &str = "presignature";

/// Rounds of a presigning run, for its overall deadline at the leader (cggmp24 presigning has
/// three; one more for the reports).
const PRESIGN_ROUNDS: u32 = 4;

/// A signer keeps at most this many presignatures per key version beyond the leader's depth
/// (a new leader does not know the old one's inventory and makes new ones; the oldest go).
const POOL_SLACK: usize = 4;

// ---------------------------------------------------------------------------------------------
// The presigning run at a signer
// ---------------------------------------------------------------------------------------------

impl<E: EcdsaCurve> ErasedSession for EcdsaPresign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    fn handle_input(&mut self, input: SessionInput<'_>) {
        Session::handle_input(self, input)
    }
    fn poll_output(&mut self) -> Option<ErasedOutput> {
        Some(match Session::poll_output(self)? {
            SessionOutput::Send { to, payload } => ErasedOutput::Send { to, payload },
            SessionOutput::Misbehaved { from, reason } => ErasedOutput::Misbehaved { from, reason },
            SessionOutput::Done(Ok(p)) => {
                let mut bytes = encode_presignature::<E>(&p);
                ErasedOutput::PresignDone(Ok(SecretBytes::new(std::mem::take(&mut *bytes))))
            }
            SessionOutput::Done(Err(f)) => ErasedOutput::PresignDone(Err(f)),
        })
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout().map(|(at, _)| at)
    }
}

/// Starts a presigning run of an ECDSA key `share` (stored form) among `config.signers`.
fn start_presign(
    scheme: Scheme,
    config: SignersConfig,
    share: &SecretBytes,
    seed: &crate::rng::Seed,
    now: Instant,
) -> Result<Box<dyn ErasedSession>, StartError> {
    fn make<E: EcdsaCurve>(
        config: SignersConfig,
        share: &SecretBytes,
        seed: &crate::rng::Seed,
        now: Instant,
    ) -> Result<Box<dyn ErasedSession>, StartError>
    where
        NonZero<Point<E>>: AlwaysHasAffineX<E>,
        Point<E>: HasAffineX<E>,
    {
        let key = decode_share::<E>(share.expose())?;
        Ok(Box::new(
            EcdsaPresign::<E>::new(config, &key, seed, now).map_err(StartError::Config)?,
        ))
    }
    match scheme {
        Scheme::EcdsaSecp256k1 => make::<Secp256k1>(config, share, seed, now),
        Scheme::EcdsaP256 => make::<Secp256r1>(config, share, seed, now),
        Scheme::FrostEd25519
        | Scheme::FrostSecp256k1
        | Scheme::FrostP256
        | Scheme::FrostSecp256k1Taproot => Err(StartError::BadKeyMaterial(
            "presignatures exist for ECDSA keys only",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// A signer's pool of one key version, scheme-erased
// ---------------------------------------------------------------------------------------------

/// [`PresignaturePool`] of either curve.
enum AnyPool {
    Secp256k1(PresignaturePool<Secp256k1>),
    P256(PresignaturePool<Secp256r1>),
}

macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            AnyPool::Secp256k1($p) => $body,
            AnyPool::P256($p) => $body,
        }
    };
}

fn file_in<E: EcdsaCurve>(
    pool: &mut PresignaturePool<E>,
    id: PresignatureId,
    bytes: &SecretBytes,
) -> Result<(), String>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let p: EcdsaPresignature<E> =
        decode_presignature::<E>(bytes.expose()).map_err(|e| e.to_string())?;
    // Memory only (see the module docs): the store write the pool asks for is not made, so
    // the presignature is usable at once; a crash loses it, which is safe.
    drop(pool.insert(id, p).map_err(|e| e.to_string())?);
    pool.stored(id).map_err(|e| e.to_string())
}

fn online_runs<E: EcdsaCurve>(
    pool: &mut PresignaturePool<E>,
    ids: &[PresignatureId],
    config: SignConfig,
    now: Instant,
) -> Result<Box<dyn ErasedSession>, StartError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let public_key = Point::<E>::from_bytes(pool.public_key())
        .map_err(|_| StartError::BadKeyMaterial("pool group key"))?;
    // Every id is spent here, even if a later one fails: their marks are durable already.
    let runs: Vec<Result<EcdsaSign<E>, _>> = ids.iter().map(|id| pool.consumed(*id)).collect();
    let runs = runs
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StartError::BadKeyMaterial("a reserved presignature is gone"))?;
    Ok(Box::new(EcdsaNodeSign::<E>::presigned(
        config, public_key, runs, now,
    )?))
}

impl AnyPool {
    fn new(
        scheme: Scheme,
        me: ParticipantId,
        share: &SecretBytes,
        depth: usize,
    ) -> Result<Self, StartError> {
        Ok(match scheme {
            Scheme::EcdsaSecp256k1 => AnyPool::Secp256k1(PresignaturePool::new(
                me,
                decode_share::<Secp256k1>(share.expose())?.public_key(),
                depth,
            )),
            Scheme::EcdsaP256 => AnyPool::P256(PresignaturePool::new(
                me,
                decode_share::<Secp256r1>(share.expose())?.public_key(),
                depth,
            )),
            Scheme::FrostEd25519
            | Scheme::FrostSecp256k1
            | Scheme::FrostP256
            | Scheme::FrostSecp256k1Taproot => {
                return Err(StartError::BadKeyMaterial(
                    "presignatures exist for ECDSA keys only",
                ))
            }
        })
    }

    fn file(&mut self, id: PresignatureId, bytes: &SecretBytes) -> Result<(), String> {
        with_pool!(self, p => file_in(p, id, bytes))
    }

    fn is_ready(&self, id: &PresignatureId) -> bool {
        with_pool!(self, p => p.is_ready(id))
    }

    fn discard(&mut self, id: &PresignatureId) {
        with_pool!(self, p => { p.discard(id); })
    }

    fn begin_spend(
        &mut self,
        id: PresignatureId,
        config: EcdsaSignConfig,
        now: Instant,
    ) -> Result<(), String> {
        // The write returned is the `MarkConsumed` the caller persists.
        with_pool!(self, p => p.begin_spend(id, config, now).map(drop).map_err(|e| e.to_string()))
    }

    fn online(
        &mut self,
        ids: &[PresignatureId],
        config: SignConfig,
        now: Instant,
    ) -> Result<Box<dyn ErasedSession>, StartError> {
        with_pool!(self, p => online_runs(p, ids, config, now))
    }
}

// ---------------------------------------------------------------------------------------------
// Node state
// ---------------------------------------------------------------------------------------------

/// A signer's pool of one key version, with its ids oldest first.
struct Pool {
    pool: AnyPool,
    order: VecDeque<PresignatureId>,
}

/// A presigning run the leader coordinates.
struct LeaderRun {
    key: KeyId,
    version: KeyVersion,
    signers: BTreeSet<ParticipantId>,
    reported: BTreeSet<ParticipantId>,
    started: Instant,
}

/// A presignature every signer of it holds (leader's inventory).
#[derive(Clone)]
pub(crate) struct Ready {
    id: PresignatureId,
    signers: BTreeSet<ParticipantId>,
}

/// A signer's spend waiting for its marks to be durable.
pub(crate) struct PendingSpend {
    session: SessionKey,
    key: KeyId,
    version: KeyVersion,
    ids: Vec<PresignatureId>,
    config: SignConfig,
}

/// Everything the node keeps about presignatures (all of it volatile).
#[derive(Default)]
pub(crate) struct PresignState {
    /// Signer: pools per key version.
    pools: BTreeMap<(KeyId, KeyVersion), Pool>,
    /// Signer: running presigning sessions, with the leader that started each.
    running: BTreeMap<SessionKey, (ParticipantId, KeyId, KeyVersion)>,
    /// Signer: signing runs whose spend marks are being persisted.
    spending: BTreeSet<SessionKey>,
    /// Leader: presigning runs in flight, by run id.
    runs: BTreeMap<u64, LeaderRun>,
    /// Leader: ready presignatures per key version, oldest first.
    ready: BTreeMap<(KeyId, KeyVersion), VecDeque<Ready>>,
    /// Leader: no new run before this (after a failed one).
    retry_at: Option<Instant>,
}

/// Counters for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresignStats {
    /// Presignatures this node filed in its pools.
    pub made: u64,
    /// Presigning runs that failed here.
    pub failed: u64,
    /// Online runs started here from pooled presignatures (one per message).
    pub spent: u64,
    /// Signing runs this node gave up because a named presignature was gone.
    pub missing: u64,
}

impl Node {
    /// Leader: how many presignatures of `key`'s active version are ready to sign with.
    pub fn presignatures_ready(&self, key: &KeyId) -> usize {
        let Some(record) = self.registry.keys.get(key) else {
            return 0;
        };
        self.presign
            .ready
            .get(&(key.clone(), record.version))
            .map_or(0, VecDeque::len)
    }

    /// Leader: the signer sets of the ready presignatures of `key`'s active version, oldest
    /// first (tests pick a signer to disturb).
    #[cfg(test)]
    pub(super) fn ready_signer_sets(&self, key: &KeyId) -> Vec<BTreeSet<ParticipantId>> {
        let Some(record) = self.registry.keys.get(key) else {
            return Vec::new();
        };
        self.presign
            .ready
            .get(&(key.clone(), record.version))
            .map_or_else(Vec::new, |r| r.iter().map(|x| x.signers.clone()).collect())
    }

    /// Leader: the oldest ready presignature of `key`'s active version (tests forge starts).
    #[cfg(test)]
    pub(super) fn first_ready(&self, key: &KeyId) -> Option<(BTreeSet<ParticipantId>, [u8; 32])> {
        let record = self.registry.keys.get(key)?;
        let r = self
            .presign
            .ready
            .get(&(key.clone(), record.version))?
            .front()?;
        Some((r.signers.clone(), r.id.0))
    }

    /// Leader: starts one presigning run if a key's pool is below depth, nothing else refills and
    /// no request waits. Also expires runs that will not finish and forgets old versions.
    pub(super) fn poll_presign(&mut self) {
        let now = self.now;
        let live = |reg: &super::Registry, k: &KeyId, v: KeyVersion| {
            reg.keys.get(k).is_some_and(|r| r.version == v)
        };
        let registry = &self.registry;
        self.presign.pools.retain(|(k, v), _| live(registry, k, *v));
        if !self.is_leader() {
            self.presign.runs.clear();
            self.presign.ready.clear();
            return;
        }
        self.presign.ready.retain(|(k, v), _| live(registry, k, *v));
        let limit = self.cfg.ecdsa_round_timeout.saturating_mul(PRESIGN_ROUNDS);
        let before = self.presign.runs.len();
        self.presign
            .runs
            .retain(|_, r| now.saturating_duration_since(r.started) <= limit);
        if self.presign.runs.len() < before {
            self.presign.retry_at = Some(now.saturating_add(self.cfg.round_timeout));
        }
        let depth = self.cfg.presignature_depth;
        if depth == 0
            || !self.presign.runs.is_empty()
            || !self.sign_queue.is_empty()
            || self.presign.retry_at.is_some_and(|t| now < t)
        {
            return;
        }
        let neediest = self
            .registry
            .keys
            .iter()
            .filter(|(k, r)| {
                r.scheme.ecdsa().is_some() && self.registry.unfinished_task(k).is_none()
            })
            .map(|(k, r)| {
                let have = self
                    .presign
                    .ready
                    .get(&(k.clone(), r.version))
                    .map_or(0, VecDeque::len);
                (have, k.clone())
            })
            .filter(|(have, _)| *have < depth)
            .min();
        if let Some((_, key)) = neediest {
            self.start_presign_run(key);
        }
    }

    fn start_presign_run(&mut self, key: KeyId) {
        let Some(record) = self.registry.keys.get(&key).cloned() else {
            return;
        };
        let mut candidates: BTreeSet<ParticipantId> = record
            .participants
            .iter()
            .copied()
            .filter(|p| !self.down.contains(p) && self.registry.members.contains_key(p))
            .collect();
        // Presigning computes for seconds per round on a signer's node thread; a leader busy
        // with that sends no heartbeats and may be voted out. Refills leave the leader out
        // whenever enough other holders are usable.
        let usable_others = candidates
            .iter()
            .filter(|p| **p != self.cfg.id && !self.exclusions.is_excluded(**p, self.now))
            .count();
        if usable_others >= usize::from(record.threshold) {
            candidates.remove(&self.cfg.id);
        }
        // The pool is per signer set: keep filling the set of the newest presignature (ready
        // or in flight) while all its members are usable, so a batch finds enough of one set;
        // pick a new set (at random, weighted by health, as signing does) when one is not.
        let (now, exclusions) = (self.now, &self.exclusions);
        let usable = |s: &BTreeSet<ParticipantId>| {
            s.iter()
                .all(|p| candidates.contains(p) && !exclusions.is_excluded(*p, now))
        };
        let current = self
            .presign
            .runs
            .values()
            .filter(|r| r.key == key && r.version == record.version)
            .map(|r| &r.signers)
            .chain(
                self.presign
                    .ready
                    .get(&(key.clone(), record.version))
                    .into_iter()
                    .flat_map(|r| r.iter().rev().map(|x| &x.signers)),
            )
            .next()
            .filter(|s| usable(s))
            .cloned();
        let signers = match current {
            Some(s) => s,
            None => {
                let weights = super::select::health_weights(&candidates, &self.metrics, now);
                let Ok(s) = super::select::select(
                    &weights,
                    usize::from(record.threshold),
                    &self.exclusions,
                    now,
                    &mut self.rng,
                ) else {
                    self.presign.retry_at = Some(now.saturating_add(self.cfg.round_timeout));
                    return;
                };
                s
            }
        };
        let Some(run) = self.next_run_id() else {
            self.presign.retry_at = Some(now.saturating_add(self.cfg.round_timeout));
            return;
        };
        let session = SessionKey {
            kind: SessionKind::Presign,
            task: run,
            attempt: 1,
        };
        self.presign.runs.insert(
            run,
            LeaderRun {
                key: key.clone(),
                version: record.version,
                signers: signers.clone(),
                reported: BTreeSet::new(),
                started: self.now,
            },
        );
        let me = self.cfg.id;
        for to in signers.iter().copied() {
            let msg = NodeMessage::PresignStart {
                session,
                key: key.clone(),
                version: record.version,
                signers: signers.clone(),
            };
            if to == me {
                self.on_node_message(me, msg);
            } else {
                self.send(to, &msg);
            }
        }
    }

    /// Signer: the leader asks for a presigning run.
    pub(super) fn on_presign_start(
        &mut self,
        from: ParticipantId,
        session: SessionKey,
        key: KeyId,
        version: KeyVersion,
        signers: BTreeSet<ParticipantId>,
    ) {
        if session.kind != SessionKind::Presign
            || self.sessions.contains_key(&session)
            || self.presign.running.contains_key(&session)
        {
            return self.refuse(from, "duplicate or malformed presigning start");
        }
        if Some(from) != self.leader {
            // Perhaps a leader this node does not know yet: say no at once rather than let it
            // wait out the run (a report to a node that leads nothing is ignored).
            self.report_presign(from, session, false);
            return self.refuse(from, "presigning start from a node that is not the leader");
        }
        let Some(record) = self.registry.keys.get(&key) else {
            return self.refuse(from, "presigning start for an unknown key");
        };
        if record.scheme.ecdsa().is_none()
            || record.version != version
            || signers.len() != usize::from(record.threshold)
            || !signers.is_subset(&record.participants)
            || !signers.contains(&self.cfg.id)
        {
            return self.refuse(
                from,
                "presigning start with a wrong scheme, version or signer set",
            );
        }
        let scheme = record.scheme;
        let Some(share) = self.shares.get(&(key.clone(), version)).cloned() else {
            return self.refuse(from, "presigning start for a share this node does not hold");
        };
        if !self.booted(from) {
            return self.report_presign(from, session, false);
        }
        if let Err(stale) = self
            .served_runs
            .admit(from, self.raw.raft.term, session.task)
        {
            self.report_presign(from, session, false);
            return self.refuse(
                from,
                &format!("presigning start refused: {}", stale.reason()),
            );
        }
        let config = SignersConfig {
            me: self.cfg.id,
            signers,
            session_id: session_context(&session),
            round_timeout: self.cfg.ecdsa_round_timeout,
        };
        let context = super::freshness::context_digest(
            b"presign",
            &[
                &session_context(&session),
                key.as_str().as_bytes(),
                &version.0.to_be_bytes(),
            ],
        );
        let seed = self.session_seed(b"presign", Some(&share), &context);
        match start_presign(scheme, config, &share, &seed, self.now) {
            Ok(s) => {
                self.presign.running.insert(session, (from, key, version));
                self.sessions.insert(session, Live { session: s });
                self.drain_session(session);
                self.replay_early(session);
            }
            Err(e) => {
                self.presign_failed(session, &format!("could not start: {e:?}"));
                self.report_presign(from, session, false);
            }
        }
    }

    fn presign_failed(&mut self, session: SessionKey, reason: &str) {
        self.presign_stats.failed += 1;
        self.event(Event::SessionFailed {
            session,
            failure: Failure {
                kind: FailureKind::Library(reason.to_string()),
                culprits: BTreeSet::new(),
            },
        });
    }

    fn report_presign(&mut self, to: ParticipantId, session: SessionKey, ok: bool) {
        let msg = NodeMessage::PresignReport { session, ok };
        if to == self.cfg.id {
            self.on_node_message(to, msg);
        } else {
            self.send(to, &msg);
        }
    }

    /// Signer: a presigning run ended; file the presignature and tell the leader.
    pub(super) fn on_presign_done(
        &mut self,
        session: SessionKey,
        result: Result<SecretBytes, Failure>,
    ) {
        let Some((leader, key, version)) = self.presign.running.remove(&session) else {
            return;
        };
        let ok = match result {
            Ok(bytes) => match self.file_presignature(session, &key, version, &bytes) {
                Ok(()) => true,
                Err(reason) => {
                    self.presign_failed(session, &reason);
                    false
                }
            },
            Err(failure) => {
                self.presign_stats.failed += 1;
                self.event(Event::SessionFailed { session, failure });
                false
            }
        };
        self.report_presign(leader, session, ok);
    }

    fn file_presignature(
        &mut self,
        session: SessionKey,
        key: &KeyId,
        version: KeyVersion,
        bytes: &SecretBytes,
    ) -> Result<(), String> {
        let slot = (key.clone(), version);
        if !self.presign.pools.contains_key(&slot) {
            let (scheme, share) = match (self.registry.keys.get(key), self.shares.get(&slot)) {
                (Some(r), Some(s)) if r.version == version => (r.scheme, s),
                _ => return Err("the key version is no longer active here".into()),
            };
            let pool = AnyPool::new(scheme, self.cfg.id, share, self.cfg.presignature_depth)
                .map_err(|e| format!("{e:?}"))?;
            self.presign.pools.insert(
                slot.clone(),
                Pool {
                    pool,
                    order: VecDeque::new(),
                },
            );
        }
        let bound = self.cfg.presignature_depth + POOL_SLACK;
        let Some(pool) = self.presign.pools.get_mut(&slot) else {
            return Err("no pool".into());
        };
        let id = PresignatureId::of_run(&session_context(&session));
        pool.pool.file(id, bytes)?;
        pool.order.push_back(id);
        while pool.order.len() > bound {
            if let Some(old) = pool.order.pop_front() {
                pool.pool.discard(&old);
            }
        }
        self.presign_stats.made += 1;
        Ok(())
    }

    /// Leader: a signer's report on a presigning run.
    pub(super) fn on_presign_report(&mut self, from: ParticipantId, session: SessionKey, ok: bool) {
        let Some(run) = self.presign.runs.get_mut(&session.task) else {
            return; // expired or from an earlier leader
        };
        if session.kind != SessionKind::Presign || !run.signers.contains(&from) {
            return self.refuse(from, "presigning report from outside the run");
        }
        if !ok {
            self.presign.runs.remove(&session.task);
            self.presign.retry_at = Some(self.now.saturating_add(self.cfg.round_timeout));
            return;
        }
        run.reported.insert(from);
        if run.reported == run.signers {
            if let Some(run) = self.presign.runs.remove(&session.task) {
                self.presign
                    .ready
                    .entry((run.key, run.version))
                    .or_default()
                    .push_back(Ready {
                        id: PresignatureId::of_run(&session_context(&session)),
                        signers: run.signers,
                    });
            }
            self.poll_presign();
        }
    }

    /// Leader: `count` ready presignatures of `key` at `version`, all of one signer set whose
    /// members are all `candidates` and not cooling down; taken out of the inventory.
    pub(super) fn take_presignatures(
        &mut self,
        key: &KeyId,
        version: KeyVersion,
        candidates: &BTreeSet<ParticipantId>,
        count: usize,
    ) -> Option<(BTreeSet<ParticipantId>, Vec<[u8; 32]>)> {
        let ready = self.presign.ready.get_mut(&(key.clone(), version))?;
        let now = self.now;
        let exclusions = &self.exclusions;
        let usable = |s: &BTreeSet<ParticipantId>| {
            s.iter()
                .all(|p| candidates.contains(p) && !exclusions.is_excluded(*p, now))
        };
        let signers = ready
            .iter()
            .map(|r| &r.signers)
            .find(|s| usable(s) && ready.iter().filter(|r| &r.signers == *s).count() >= count)?
            .clone();
        let mut ids = Vec::with_capacity(count);
        ready.retain(|r| {
            if ids.len() < count && r.signers == signers {
                ids.push(r.id.0);
                false
            } else {
                true
            }
        });
        Some((signers, ids))
    }

    /// Signer: reserves the presignatures a `SignStart` names and persists their spend marks;
    /// the online run starts when they are durable ([`Node::start_presigned`]). If one is gone,
    /// tells the coordinator and the other signers, who end the run at once.
    pub(super) fn begin_presigned(
        &mut self,
        session: SessionKey,
        key: KeyId,
        version: KeyVersion,
        config: SignConfig,
        ids: Vec<[u8; 32]>,
    ) {
        let ids: Vec<PresignatureId> = ids.into_iter().map(PresignatureId).collect();
        let slot = (key.clone(), version);
        let held = self
            .presign
            .pools
            .get(&slot)
            .is_some_and(|p| ids.iter().all(|id| p.pool.is_ready(id)));
        if self.presign.spending.contains(&session) {
            // A repeated start of a run already spending here: the first one stands (aborting
            // would end the run this node is part of).
            return self.refuse(config.coordinator, "duplicate signing start");
        }
        if !held {
            self.presign_stats.missing += 1;
            let payload = abort_frame();
            let me = self.cfg.id;
            for to in config.signers.iter().chain([&config.coordinator]) {
                if *to == me {
                    continue;
                }
                self.send(
                    *to,
                    &NodeMessage::Session {
                        key: session,
                        payload: payload.clone(),
                    },
                );
            }
            if config.coordinator == me {
                self.on_sign_done(
                    session,
                    Err(Failure {
                        kind: FailureKind::PeerAborted { by: me },
                        culprits: BTreeSet::new(),
                    }),
                );
            }
            return;
        }
        let now = self.now;
        let round_timeout = self.cfg.round_timeout;
        let mut ops = Vec::with_capacity(ids.len());
        if let Some(pool) = self.presign.pools.get_mut(&slot) {
            for (id, message) in ids.iter().zip(&config.messages) {
                let spend = EcdsaSignConfig {
                    message: message.clone(),
                    round_timeout,
                };
                // Cannot fail after the readiness check (messages were bounded when the
                // `SignStart` decoded); if it did, the online start fails and names it. The
                // mark is written either way, so the id is never usable again.
                let _ = pool.pool.begin_spend(*id, spend, now);
                pool.order.retain(|o| o != id);
                ops.push(PersistOp::MarkConsumed {
                    kind: CONSUMED_KIND.into(),
                    id: id.0.to_vec(),
                });
            }
        }
        self.presign.spending.insert(session);
        let token = self.token();
        self.held.insert(
            token.0,
            Held {
                spend: Some(PendingSpend {
                    session,
                    key,
                    version,
                    ids,
                    config,
                }),
                ..Held::default()
            },
        );
        self.outputs
            .push_back(Output::Persist(PersistBatch { token, ops }));
    }

    /// Signer: the spend marks of a presigned run are durable; start its online run.
    pub(super) fn start_presigned(&mut self, spend: PendingSpend) {
        let PendingSpend {
            session,
            key,
            version,
            ids,
            config,
        } = spend;
        self.presign.spending.remove(&session);
        let now = self.now;
        let started = match self.presign.pools.get_mut(&(key, version)) {
            Some(pool) => pool.pool.online(&ids, config, now),
            None => Err(StartError::BadKeyMaterial(
                "the key version was retired while its spend marks were written",
            )),
        };
        match started {
            Ok(s) => {
                self.stats.sign_sessions += 1;
                self.presign_stats.spent += ids.len() as u64;
                self.sessions.insert(session, Live { session: s });
                self.drain_session(session);
                self.replay_early(session);
            }
            Err(e) => self.presign_failed(session, &format!("online signing: {e:?}")),
        }
    }
}
