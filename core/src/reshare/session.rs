//! The resharing session: key version `v` held by the old members becomes version `v+1` held by
//! the new members, with the same group public key.
//!
//! Roles: a *dealer* is an old holder of `v` chosen by the config (at least the old threshold
//! `t` of them); a *receiver* is a new member of `v+1`. A node may be both. Every message is
//! point-to-point over the authenticated, confidential peer channel.
//!
//! Rounds:
//! 1. **Deal** (dealers → receivers). Dealer `i` sends receiver `j` its commitment
//!    `C_i` (`t'` group elements) and the sub-share `f_i(j)` ([`super::math::deal`]). A dealer
//!    that is not a receiver is then done: it ends with [`ReshareOutput::Dealt`] and holds
//!    nothing new. A receiver checks every deal on receipt: exact sizes and canonical
//!    encodings (refused, as in the DKG, if wrong), then its *verdict*: the constant term must be
//!    the dealer's old verifying share `Y_i` and the sub-share must match `C_i`. A well-formed
//!    deal that fails either check is kept with a complaint. At the round's deadline a receiver
//!    moves on without the deals it lacks (verdict "missing"): a crashed dealer does not stall
//!    the reshare.
//! 2. **Verdict** (receiver → receivers). Each receiver sends every other receiver, per dealer,
//!    the digest of the commitment it received (the echo) and its verdict. Once it holds every
//!    receiver's verdict message, a receiver computes the qualified set
//!    `Q = {i : every receiver's verdict on i is "ok" and every receiver echoed the same digest}`.
//!    `Q` is a pure function of the verdict messages, so all receivers that saw the same
//!    messages agree on it without another round. If `|Q| < t` the session fails with
//!    [`FailureKind::TooFewQualifiedDealers`] naming the excluded dealers; otherwise each
//!    receiver combines ([`super::math`]) its new share and the new public key package, checks
//!    the group key is byte-identical to the old one and its own share matches.
//! 3. **Confirm** (receiver → receivers). Each receiver sends the digest of every verdict message
//!    it received (the echo of round 2) and the digest of `(Q, new public key package)`. A
//!    receiver succeeds only when every other receiver confirmed the same. A receiver that sent
//!    different verdict messages to different receivers is named
//!    ([`FailureKind::InconsistentBroadcast`]).
//!
//! **Abort.** A receiver whose run fails for its own reason (a deadline, a disagreement, too
//! few qualified dealers) tells the other receivers, with the culprits it names, before ending.
//! They end at once with [`FailureKind::PeerAborted`] and those culprits, instead of waiting for
//! their own deadline and then naming the aborted receiver as silent.
//!
//! Each round has a deadline, `max(entered + T, start + r·T)` for round `r` and round timeout
//! `T`, so receivers that move at different speeds (one got every deal, another waits for a
//! crashed dealer until `start + T`) still overlap. Round 1 ends at its deadline with the deals
//! received; a missed round 2 or 3 deadline ends the session naming exactly the silent receivers.
//!
//! What a failed or abandoned session leaves behind: nothing. The session only reads the old
//! key package and never changes or erases anything; version `v` stays fully usable whatever
//! happens. A retry is a new session with a fresh seed (so fresh polynomials).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use frost_core::keys::{
    CoefficientCommitment, KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare,
};
use frost_core::{Ciphersuite, Field, Group};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::math::{self, MathError};
use crate::frost::canonical;
use crate::frost::dkg::expect_fields;
use crate::frost::ConfigError;
use crate::ids::ParticipantId;
use crate::persist::KeyVersion;
use crate::rng::Seed;
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
    SessionStatus, TimerKind,
};
use crate::time::{Duration, Instant};

/// Message kinds of the reshare (distinct from the DKG's 1..=3 and signing's 10..=12).
pub(crate) const KIND_DEAL: u8 = 20;
pub(crate) const KIND_VERDICT: u8 = 21;
pub(crate) const KIND_CONFIRM: u8 = 22;
pub(crate) const KIND_ABORT: u8 = 23;
const DIGEST_LEN: usize = 32;

/// What a reshare run needs to know. Every participant must be given the same values except `me`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareConfig {
    /// This participant.
    pub me: ParticipantId,
    /// The key version being reshared (`v`); the result is `v+1`.
    pub from_version: KeyVersion,
    /// The old holders of `v` that deal: at least the old threshold of them.
    pub dealers: BTreeSet<ParticipantId>,
    /// The members of `v+1` (n'); may overlap the dealers, may contain fresh identifiers.
    pub new_members: BTreeSet<ParticipantId>,
    /// The threshold of `v+1` (t'), `2 <= t' <= n'`.
    pub new_threshold: u16,
    /// How long each round may take.
    pub round_timeout: Duration,
    /// Which run this is (the node's task and attempt), bound into every digest with the whole
    /// old public key package: nothing from another attempt of the same reshare is accepted.
    /// Empty outside the node (tests, benches).
    pub run: Vec<u8>,
}

impl ReshareConfig {
    /// A refresh: the same members keep the same threshold and get new shares of the same key.
    /// Every member deals and receives.
    pub fn refresh(
        me: ParticipantId,
        members: BTreeSet<ParticipantId>,
        threshold: u16,
        from_version: KeyVersion,
        round_timeout: Duration,
    ) -> Self {
        ReshareConfig {
            me,
            from_version,
            dealers: members.clone(),
            new_members: members,
            new_threshold: threshold,
            round_timeout,
            run: Vec::new(),
        }
    }
}

/// Which part a node played in a reshare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReshareRole {
    /// An old holder that dealt and is not a new member: it holds nothing of `v+1` and keeps `v`
    /// only until the cluster activates `v+1`.
    Dealer,
    /// A new member that held no share of `v` used in this run.
    Receiver,
    /// An old holder that dealt and is also a new member.
    DealerAndReceiver,
}

/// A receiver's verdict on one dealer, as sent in round 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// The deal arrived and passed both checks.
    Ok,
    /// No (well-formed) deal arrived before the round-1 deadline.
    Missing,
    /// The sub-share does not match the dealer's commitment.
    BadShare,
    /// The commitment's constant term is not the dealer's old verifying share.
    BadConstantTerm,
}

impl Verdict {
    fn to_byte(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Missing => 1,
            Verdict::BadShare => 2,
            Verdict::BadConstantTerm => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Verdict> {
        match b {
            0 => Some(Verdict::Ok),
            1 => Some(Verdict::Missing),
            2 => Some(Verdict::BadShare),
            3 => Some(Verdict::BadConstantTerm),
            _ => None,
        }
    }
}

/// Why a dealer was left out of the qualified set, and on whose word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exclusion {
    /// The receiver whose round-2 message excluded the dealer.
    pub reporter: ParticipantId,
    /// What it reported.
    pub reason: ExclusionReason,
}

/// The reasons a dealer is excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExclusionReason {
    /// The reporter got no deal from it in time.
    Missing,
    /// The reporter's sub-share did not match the dealer's commitment.
    BadShare,
    /// The dealer's constant term is not its old verifying share.
    BadConstantTerm,
    /// The reporter received a different commitment than the first receiver did: the dealer
    /// sent different commitments to different receivers (or the reporter lies about it).
    InconsistentCommitment,
}

/// A new member's result: its share of `v+1` and the public key package of `v+1`.
pub struct MemberOutput<C: Ciphersuite> {
    /// [`ReshareRole::Receiver`] or [`ReshareRole::DealerAndReceiver`].
    pub role: ReshareRole,
    /// The new version, `v+1`.
    pub version: KeyVersion,
    /// This member's key package of `v+1`. Secret (zeroized on drop by frost-core).
    pub key_package: KeyPackage<C>,
    /// The public key package of `v+1`; its verifying key is byte-identical to `v`'s.
    pub public_key_package: PublicKeyPackage<C>,
    /// The dealers whose contributions make up `v+1`.
    pub qualified: BTreeSet<ParticipantId>,
    /// The dealers left out, with who reported what: the blame for the node's audit log and
    /// participant scoring.
    pub excluded: BTreeMap<ParticipantId, Vec<Exclusion>>,
    /// The digest every new member confirmed (run parameters, `Q`, public key package): what a
    /// member reports to the leader once its share is stored
    /// ([`super::versions::activation_ready`]).
    pub confirmation_digest: [u8; 32],
}

impl<C: Ciphersuite> fmt::Debug for MemberOutput<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberOutput")
            .field("role", &self.role)
            .field("version", &self.version)
            .field("key_package", &"<redacted>")
            .field("public_key_package", &self.public_key_package)
            .field("qualified", &self.qualified)
            .field("excluded", &self.excluded)
            .field("confirmation_digest", &self.confirmation_digest)
            .finish()
    }
}

/// A successful reshare, as seen by one participant.
#[derive(Debug)]
pub enum ReshareOutput<C: Ciphersuite> {
    /// An old holder that is not a new member dealt its part. It holds nothing new; it must
    /// keep `v` until the cluster activates `v+1`, then erase it.
    Dealt {
        /// The version dealt for, `v+1`.
        version: KeyVersion,
    },
    /// A new member holds its share of `v+1`.
    Member(Box<MemberOutput<C>>),
}

impl<C: Ciphersuite> ReshareOutput<C> {
    /// The role this node had.
    pub fn role(&self) -> ReshareRole {
        match self {
            ReshareOutput::Dealt { .. } => ReshareRole::Dealer,
            ReshareOutput::Member(m) => m.role,
        }
    }

    /// The new version, `v+1`.
    pub fn version(&self) -> KeyVersion {
        match self {
            ReshareOutput::Dealt { version } => *version,
            ReshareOutput::Member(m) => m.version,
        }
    }
}

/// A deal as a receiver holds it.
struct Deal<C: Ciphersuite> {
    digest: [u8; DIGEST_LEN],
    commitment: Vec<CoefficientCommitment<C>>,
    share: SigningShare<C>,
    verdict: Verdict,
}

impl<C: Ciphersuite> Drop for Deal<C> {
    fn drop(&mut self) {
        self.share.zeroize();
    }
}

/// A receiver's round-2 message, parsed.
struct VerdictMsg {
    /// Digest of the whole message, echoed in round 3.
    payload_digest: [u8; DIGEST_LEN],
    digests: Vec<[u8; DIGEST_LEN]>,
    verdicts: Vec<Verdict>,
}

enum Phase<C: Ciphersuite> {
    /// Receivers collect deals.
    Deal,
    /// Receivers collect verdicts.
    Verdict,
    /// Receivers collect confirmations.
    Confirm {
        output: Box<MemberOutput<C>>,
        echo: Vec<u8>,
        pkp_digest: [u8; DIGEST_LEN],
        confirmed: BTreeSet<ParticipantId>,
    },
    Finished,
}

/// One participant's run of the reshare. See the module documentation.
pub struct FrostReshare<C: Ciphersuite> {
    me: ParticipantId,
    role: ReshareRole,
    from_version: KeyVersion,
    dealers: BTreeSet<ParticipantId>,
    receivers: BTreeSet<ParticipantId>,
    old_threshold: u16,
    new_threshold: u16,
    old_public_key_package: PublicKeyPackage<C>,
    round_timeout: Duration,
    /// When the session started: round `r` never ends before `started + r·round_timeout`.
    started: Instant,
    deadline: Instant,
    phase: Phase<C>,
    /// Domain-separation context binding every digest to this run's parameters.
    context: [u8; DIGEST_LEN],
    scalar_len: usize,
    element_len: usize,
    deals: BTreeMap<ParticipantId, Deal<C>>,
    verdicts: BTreeMap<ParticipantId, VerdictMsg>,
    seen: BTreeMap<(u8, ParticipantId), [u8; DIGEST_LEN]>,
    early: BTreeMap<(u8, ParticipantId), Vec<u8>>,
    outputs: VecDeque<SessionOutput<ReshareOutput<C>>>,
}

impl<C: Ciphersuite> FrostReshare<C> {
    /// Starts a run. `old_public_key_package` (version `v`) is required of everyone;
    /// `old_key_package` of every dealer (it is only read). `seed` must be fresh for every run,
    /// retries included: it draws the dealer's polynomial.
    pub fn new(
        config: ReshareConfig,
        old_key_package: Option<&KeyPackage<C>>,
        old_public_key_package: PublicKeyPackage<C>,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let ReshareConfig {
            me,
            from_version,
            dealers,
            new_members: receivers,
            new_threshold,
            round_timeout,
            run,
        } = config;
        let n = receivers.len();
        if !(2..=usize::from(u16::MAX)).contains(&n) {
            return Err(ConfigError::BadParticipantCount(n));
        }
        if new_threshold < 2 || usize::from(new_threshold) > n {
            return Err(ConfigError::BadThreshold {
                threshold: new_threshold,
                participants: n,
            });
        }
        let old_threshold =
            old_public_key_package
                .min_signers()
                .ok_or(ConfigError::MissingKeyMaterial(
                    "old public key package threshold",
                ))?;
        if dealers.len() < usize::from(old_threshold) {
            return Err(ConfigError::TooFewDealers {
                dealers: dealers.len(),
                threshold: old_threshold,
            });
        }
        if dealers.iter().any(|d| {
            !old_public_key_package
                .verifying_shares()
                .contains_key(&d.to_frost())
        }) {
            return Err(ConfigError::KeyMaterialMismatch(
                "a dealer holds no share of the old version",
            ));
        }
        let is_dealer = dealers.contains(&me);
        let is_receiver = receivers.contains(&me);
        let role = match (is_dealer, is_receiver) {
            (true, true) => ReshareRole::DealerAndReceiver,
            (true, false) => ReshareRole::Dealer,
            (false, true) => ReshareRole::Receiver,
            (false, false) => return Err(ConfigError::NotAParticipant),
        };
        let old_share = if is_dealer {
            let kp = old_key_package.ok_or(ConfigError::MissingKeyMaterial("old key package"))?;
            check_old_key_package(me, kp, &old_public_key_package)?;
            Some(*kp.signing_share())
        } else {
            None
        };

        let scalar_len = <FieldOf<C> as Field>::serialize(&<FieldOf<C> as Field>::one())
            .as_ref()
            .len();
        let element_len = <C::Group as Group>::serialize(&<C::Group as Group>::generator())
            .map(|b| b.as_ref().len())
            .unwrap_or(0);
        let context = run_context::<C>(
            &run,
            from_version,
            &old_public_key_package,
            &dealers,
            &receivers,
            new_threshold,
        );
        let mut session = FrostReshare {
            me,
            role,
            from_version,
            dealers,
            receivers,
            old_threshold,
            new_threshold,
            old_public_key_package,
            round_timeout,
            started: now,
            deadline: now.saturating_add(round_timeout),
            phase: Phase::Deal,
            context,
            scalar_len,
            element_len,
            deals: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            seen: BTreeMap::new(),
            early: BTreeMap::new(),
            outputs: VecDeque::new(),
        };
        if let Some(share) = old_share {
            session.deal_own(&share, seed);
        }
        if matches!(session.phase, Phase::Deal) && !is_receiver {
            session.finish(ReshareOutput::Dealt {
                version: session.new_version(),
            });
        }
        Ok(session)
    }

    /// The version this run produces, `v+1`.
    pub fn new_version(&self) -> KeyVersion {
        KeyVersion(self.from_version.0.saturating_add(1))
    }

    /// This node's role.
    pub fn role(&self) -> ReshareRole {
        self.role
    }

    /// The round (1 to 3) the session is in, `None` once finished.
    pub fn round(&self) -> Option<u8> {
        match self.phase {
            Phase::Deal => Some(1),
            Phase::Verdict => Some(2),
            Phase::Confirm { .. } => Some(3),
            Phase::Finished => None,
        }
    }

    fn deal_own(&mut self, share: &SigningShare<C>, seed: &Seed) {
        let mut rng = seed.rng();
        let dealing = match math::deal::<C, _>(share, self.new_threshold, &self.receivers, &mut rng)
        {
            Ok(d) => d,
            Err(e) => return self.fail(FailureKind::Library(format!("{e:?}")), BTreeSet::new()),
        };
        let mut commitment_fields = Vec::with_capacity(dealing.commitment().len());
        for c in dealing.commitment() {
            match c.serialize() {
                Ok(b) => commitment_fields.push(b),
                Err(e) => return self.fail(FailureKind::Library(e.to_string()), BTreeSet::new()),
            }
        }
        let digest = commitment_digest(&self.context, self.me, &commitment_fields);
        for &to in &self.receivers {
            let Some(sub) = dealing.share(to) else {
                return self.fail(
                    FailureKind::Library("dealing has no share for a receiver".into()),
                    BTreeSet::new(),
                );
            };
            if to == self.me {
                let verdict = self.verdict_on(self.me, dealing.commitment(), sub);
                self.deals.insert(
                    to,
                    Deal {
                        digest,
                        commitment: dealing.commitment().to_vec(),
                        share: *sub,
                        verdict,
                    },
                );
                continue;
            }
            let mut fields = Vec::with_capacity(1 + commitment_fields.len());
            fields.push(sub.serialize());
            fields.extend(commitment_fields.iter().cloned());
            let mut frame = Frame::new(KIND_DEAL, fields);
            let bytes = frame.encode();
            for f in &mut frame.fields {
                f.zeroize();
            }
            self.outputs.push_back(SessionOutput::Send {
                to,
                payload: Payload::new(bytes),
            });
        }
    }

    fn verdict_on(
        &self,
        dealer: ParticipantId,
        commitment: &[CoefficientCommitment<C>],
        share: &SigningShare<C>,
    ) -> Verdict {
        let y_i: Option<&VerifyingShare<C>> = self
            .old_public_key_package
            .verifying_shares()
            .get(&dealer.to_frost());
        match y_i {
            Some(y) if math::constant_term_matches::<C>(commitment, y) => {}
            _ => return Verdict::BadConstantTerm,
        }
        if math::share_matches_commitment::<C>(share, commitment, self.me) {
            Verdict::Ok
        } else {
            Verdict::BadShare
        }
    }

    fn other_receivers(&self) -> Vec<ParticipantId> {
        self.receivers
            .iter()
            .copied()
            .filter(|p| *p != self.me)
            .collect()
    }

    fn send_to_other_receivers(&mut self, frame: &[u8]) {
        for to in self.other_receivers() {
            self.outputs.push_back(SessionOutput::Send {
                to,
                payload: Payload::new(frame.to_vec()),
            });
        }
    }

    fn reject(&mut self, from: ParticipantId, reason: Rejection) {
        self.outputs
            .push_back(SessionOutput::Misbehaved { from, reason });
    }

    fn finish(&mut self, output: ReshareOutput<C>) {
        self.phase = Phase::Finished;
        self.clear_secrets();
        self.outputs.push_back(SessionOutput::Done(Ok(output)));
    }

    fn fail(&mut self, kind: FailureKind, culprits: BTreeSet<ParticipantId>) {
        let running = !matches!(self.phase, Phase::Finished);
        if running
            && self.receivers.contains(&self.me)
            && !matches!(kind, FailureKind::PeerAborted { .. })
        {
            // Tell the other receivers, so they end now with the same culprits.
            let named: Vec<u8> = culprits
                .iter()
                .flat_map(|p| p.get().to_be_bytes())
                .collect();
            let frame = Frame::new(KIND_ABORT, vec![named]).encode();
            self.send_to_other_receivers(&frame);
        }
        self.phase = Phase::Finished;
        self.clear_secrets();
        self.outputs
            .push_back(SessionOutput::Done(Err(Failure { kind, culprits })));
    }

    fn clear_secrets(&mut self) {
        // Dropping the deals wipes their sub-shares; buffered raw messages may hold sub-shares too.
        self.deals.clear();
        for b in self.early.values_mut() {
            b.zeroize();
        }
        self.early.clear();
    }

    fn on_message(&mut self, at: Instant, from: ParticipantId, payload: &[u8]) {
        let Some(round) = self.round() else {
            // Late traffic after the end changes nothing.
            return;
        };
        if from == self.me {
            return self.reject(from, Rejection::NotAParticipant);
        }
        let mut frame = match Frame::decode(payload) {
            Ok(f) => f,
            Err(e) => return self.reject(from, Rejection::BadFrame(e)),
        };
        let kind_round = match frame.kind {
            KIND_DEAL => 1,
            KIND_VERDICT => 2,
            KIND_CONFIRM => 3,
            KIND_ABORT => 0,
            kind => return self.reject(from, Rejection::UnexpectedKind { kind }),
        };
        // Who may send what: deals from dealers, verdicts and confirmations from receivers, and
        // only receivers take part after dealing.
        let allowed = self.receivers.contains(&self.me)
            && if kind_round == 1 {
                self.dealers.contains(&from)
            } else {
                self.receivers.contains(&from)
            };
        if !allowed {
            // A refused deal's copy of its sub-share is wiped here and below.
            wipe(&mut frame);
            return self.reject(from, Rejection::NotAParticipant);
        }
        let digest: [u8; DIGEST_LEN] = Sha256::digest(payload).into();
        if let Some(previous) = self.seen.get(&(frame.kind, from)) {
            wipe(&mut frame);
            if *previous != digest {
                self.reject(from, Rejection::AlreadyReceived);
            }
            return;
        }
        if kind_round == 0 {
            // An abort counts in any round.
            return match self.on_abort(from, frame) {
                Ok(()) => {}
                Err(reason) => self.reject(from, reason),
            };
        }
        if kind_round < round {
            wipe(&mut frame);
            return self.reject(from, Rejection::StaleRound);
        }
        if kind_round > round {
            self.seen.insert((frame.kind, from), digest);
            self.early.insert((frame.kind, from), payload.to_vec());
            return;
        }
        let kind = frame.kind;
        let accepted = match kind {
            KIND_DEAL => self.on_deal(from, frame),
            KIND_VERDICT => self.on_verdict(from, frame, digest),
            _ => self.on_confirm(from, frame),
        };
        match accepted {
            Ok(()) => {
                self.seen.insert((kind, from), digest);
                self.advance(at);
            }
            Err(reason) => self.reject(from, reason),
        }
    }

    /// Validates a deal's form completely, then keeps it with this receiver's verdict.
    fn on_deal(&mut self, from: ParticipantId, mut frame: Frame) -> Result<(), Rejection> {
        let expected = 1 + usize::from(self.new_threshold);
        if frame.fields.len() != expected {
            let actual = frame.fields.len();
            wipe(&mut frame);
            return Err(Rejection::WrongCount {
                field: "deal fields",
                expected,
                actual,
            });
        }
        let share = decode_share::<C>(&frame.fields[0], self.scalar_len);
        let commitment: Result<Vec<CoefficientCommitment<C>>, Rejection> = frame.fields[1..]
            .iter()
            .map(|b| decode_commitment::<C>(b, self.element_len))
            .collect();
        let commitment_digest = commitment_digest(&self.context, from, &frame.fields[1..]);
        wipe(&mut frame);
        let (share, commitment) = match (share, commitment) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let verdict = self.verdict_on(from, &commitment, &share);
        self.deals.insert(
            from,
            Deal {
                digest: commitment_digest,
                commitment,
                share,
                verdict,
            },
        );
        Ok(())
    }

    fn on_verdict(
        &mut self,
        from: ParticipantId,
        frame: Frame,
        payload_digest: [u8; DIGEST_LEN],
    ) -> Result<(), Rejection> {
        let [digests, verdicts] = expect_fields::<2>(frame)?;
        let d = self.dealers.len();
        if digests.len() != d * DIGEST_LEN {
            return Err(Rejection::WrongSize {
                field: "commitment echo",
                expected: d * DIGEST_LEN,
                actual: digests.len(),
            });
        }
        if verdicts.len() != d {
            return Err(Rejection::WrongSize {
                field: "verdicts",
                expected: d,
                actual: verdicts.len(),
            });
        }
        let verdicts = verdicts
            .iter()
            .map(|b| Verdict::from_byte(*b))
            .collect::<Option<Vec<_>>>()
            .ok_or(Rejection::Malformed { field: "verdicts" })?;
        let digests = digests
            .chunks_exact(DIGEST_LEN)
            .map(|c| {
                let mut a = [0u8; DIGEST_LEN];
                a.copy_from_slice(c);
                a
            })
            .collect();
        self.verdicts.insert(
            from,
            VerdictMsg {
                payload_digest,
                digests,
                verdicts,
            },
        );
        Ok(())
    }

    fn on_confirm(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let [their_echo, their_pkp] = expect_fields::<2>(frame)?;
        let receivers: Vec<ParticipantId> = self.receivers.iter().copied().collect();
        let Phase::Confirm {
            echo,
            pkp_digest,
            confirmed,
            ..
        } = &mut self.phase
        else {
            return Err(Rejection::StaleRound);
        };
        if their_echo.len() != echo.len() {
            return Err(Rejection::WrongSize {
                field: "verdict echo",
                expected: echo.len(),
                actual: their_echo.len(),
            });
        }
        if their_pkp.len() != DIGEST_LEN {
            return Err(Rejection::WrongSize {
                field: "public key package digest",
                expected: DIGEST_LEN,
                actual: their_pkp.len(),
            });
        }
        let disputed = receivers
            .iter()
            .zip(
                their_echo
                    .chunks_exact(DIGEST_LEN)
                    .zip(echo.chunks_exact(DIGEST_LEN)),
            )
            .find(|(_, (theirs, ours))| theirs != ours)
            .map(|(p, _)| *p);
        if let Some(sender) = disputed {
            self.fail(
                FailureKind::InconsistentBroadcast {
                    sender,
                    reporter: from,
                },
                BTreeSet::from([sender]),
            );
            return Ok(());
        }
        if their_pkp.as_slice() != pkp_digest.as_slice() {
            self.fail(FailureKind::ConfirmationMismatch, BTreeSet::from([from]));
            return Ok(());
        }
        confirmed.insert(from);
        Ok(())
    }

    /// Another receiver ended the run: validate its list of culprits, then end too.
    fn on_abort(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let [named] = expect_fields::<1>(frame)?;
        let max = 2 * (self.dealers.len() + self.receivers.len());
        if named.len() % 2 != 0 || named.len() > max {
            return Err(Rejection::Malformed {
                field: "abort culprits",
            });
        }
        let mut culprits = BTreeSet::new();
        for pair in named.chunks_exact(2) {
            let id = ParticipantId::new(u16::from_be_bytes([pair[0], pair[1]]))
                .filter(|p| self.dealers.contains(p) || self.receivers.contains(p))
                .ok_or(Rejection::Malformed {
                    field: "abort culprits",
                })?;
            culprits.insert(id);
        }
        self.fail(FailureKind::PeerAborted { by: from }, culprits);
        Ok(())
    }

    /// Moves on when the current round is complete, then replays buffered messages.
    fn advance(&mut self, at: Instant) {
        let next = match &self.phase {
            Phase::Deal if self.deals.len() == self.dealers.len() => self.start_verdict(),
            Phase::Verdict if self.verdicts.len() == self.receivers.len() => self.start_confirm(),
            Phase::Confirm { confirmed, .. } if confirmed.len() + 1 == self.receivers.len() => {
                if let Phase::Confirm { output, .. } =
                    std::mem::replace(&mut self.phase, Phase::Finished)
                {
                    self.finish(ReshareOutput::Member(output));
                }
                return;
            }
            _ => return,
        };
        if let Some(round) = next {
            self.enter(at, round);
        }
    }

    /// Starts `round`'s deadline and replays the messages buffered for it.
    ///
    /// The deadline is `max(at + T, started + round·T)`: a receiver that got every deal early
    /// must still wait for one that only moves on at its round-1 deadline (`started + T`), and
    /// so on for round 3; otherwise the fast one would time out naming the slow one at the very
    /// instant the slow one speaks.
    fn enter(&mut self, at: Instant, round: u8) {
        let schedule = self
            .started
            .saturating_add(self.round_timeout.saturating_mul(u32::from(round)));
        self.deadline = at.saturating_add(self.round_timeout).max(schedule);
        let kind = match round {
            2 => KIND_VERDICT,
            _ => KIND_CONFIRM,
        };
        let buffered: Vec<(ParticipantId, Vec<u8>)> = self
            .early
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, p), b)| (*p, b.clone()))
            .collect();
        self.early.retain(|(k, _), _| *k != kind);
        for (from, bytes) in buffered {
            // Forget the buffered digest so the message is processed as new.
            self.seen.remove(&(kind, from));
            self.on_message(at, from, &bytes);
        }
    }

    /// Round 2: send every other receiver our echo of each dealer's commitment and our verdicts.
    fn start_verdict(&mut self) -> Option<u8> {
        let d = self.dealers.len();
        let mut digests = Vec::with_capacity(d * DIGEST_LEN);
        let mut verdicts = Vec::with_capacity(d);
        let mut parsed_digests = Vec::with_capacity(d);
        let mut parsed_verdicts = Vec::with_capacity(d);
        for dealer in &self.dealers {
            let (digest, verdict) = match self.deals.get(dealer) {
                Some(deal) => (deal.digest, deal.verdict),
                None => ([0u8; DIGEST_LEN], Verdict::Missing),
            };
            digests.extend_from_slice(&digest);
            verdicts.push(verdict.to_byte());
            parsed_digests.push(digest);
            parsed_verdicts.push(verdict);
        }
        let frame = Frame::new(KIND_VERDICT, vec![digests, verdicts]).encode();
        let payload_digest: [u8; DIGEST_LEN] = Sha256::digest(&frame).into();
        self.send_to_other_receivers(&frame);
        self.verdicts.insert(
            self.me,
            VerdictMsg {
                payload_digest,
                digests: parsed_digests,
                verdicts: parsed_verdicts,
            },
        );
        self.phase = Phase::Verdict;
        Some(2)
    }

    /// The qualified set and the exclusions, from the verdict messages of every receiver.
    fn qualify(
        &self,
    ) -> (
        BTreeSet<ParticipantId>,
        BTreeMap<ParticipantId, Vec<Exclusion>>,
    ) {
        let mut qualified = BTreeSet::new();
        let mut excluded: BTreeMap<ParticipantId, Vec<Exclusion>> = BTreeMap::new();
        for (k, dealer) in self.dealers.iter().enumerate() {
            let mut reasons = Vec::new();
            for (reporter, msg) in &self.verdicts {
                let reason = match msg.verdicts.get(k) {
                    Some(Verdict::Ok) => continue,
                    Some(Verdict::Missing) | None => ExclusionReason::Missing,
                    Some(Verdict::BadShare) => ExclusionReason::BadShare,
                    Some(Verdict::BadConstantTerm) => ExclusionReason::BadConstantTerm,
                };
                reasons.push(Exclusion {
                    reporter: *reporter,
                    reason,
                });
            }
            if reasons.is_empty() {
                let reference = self.verdicts.values().next().and_then(|m| m.digests.get(k));
                for (reporter, msg) in &self.verdicts {
                    if msg.digests.get(k) != reference {
                        reasons.push(Exclusion {
                            reporter: *reporter,
                            reason: ExclusionReason::InconsistentCommitment,
                        });
                    }
                }
            }
            if reasons.is_empty() {
                qualified.insert(*dealer);
            } else {
                excluded.insert(*dealer, reasons);
            }
        }
        (qualified, excluded)
    }

    /// Round 3: agree on Q, compute `v+1`, check it, and confirm it.
    fn start_confirm(&mut self) -> Option<u8> {
        let (qualified, excluded) = self.qualify();
        if qualified.len() < usize::from(self.old_threshold) {
            let culprits = excluded.keys().copied().collect();
            self.fail(
                FailureKind::TooFewQualifiedDealers {
                    qualified: qualified.len(),
                    needed: self.old_threshold,
                },
                culprits,
            );
            return None;
        }
        let mut commitments = BTreeMap::new();
        let mut sub_shares = BTreeMap::new();
        for i in &qualified {
            // Every qualified dealer has our own "ok" verdict, so its deal is here.
            let Some(deal) = self.deals.get(i) else {
                self.fail(
                    FailureKind::Library("qualified dealer without a deal".into()),
                    BTreeSet::new(),
                );
                return None;
            };
            commitments.insert(*i, deal.commitment.clone());
            sub_shares.insert(*i, deal.share);
        }
        let result = math::combine_commitments::<C>(&commitments, &qualified)
            .and_then(|group| {
                math::new_public_key_package::<C>(
                    &group,
                    self.old_public_key_package.verifying_key(),
                    &self.receivers,
                    self.new_threshold,
                )
            })
            .and_then(|pkp| {
                let share = math::combine_shares::<C>(&sub_shares, &qualified)?;
                let kp = math::new_key_package::<C>(self.me, share, &pkp)?;
                Ok((kp, pkp))
            });
        for s in sub_shares.values_mut() {
            s.zeroize();
        }
        let (key_package, public_key_package) = match result {
            Ok(x) => x,
            Err(MathError::GroupKeyChanged) => {
                self.fail(FailureKind::GroupKeyChanged, BTreeSet::new());
                return None;
            }
            Err(e) => {
                self.fail(FailureKind::Library(format!("{e:?}")), BTreeSet::new());
                return None;
            }
        };
        // The sub-shares are no longer needed.
        self.deals.clear();
        let pkp_bytes = match canonical::encode(&public_key_package) {
            Ok(b) => b,
            Err(e) => {
                self.fail(FailureKind::Library(e), BTreeSet::new());
                return None;
            }
        };
        let mut h = Sha256::new()
            .chain_update(b"keyshard/reshare/public-key-package/v1")
            .chain_update(self.context);
        for q in &qualified {
            h.update(q.get().to_be_bytes());
        }
        let pkp_digest: [u8; DIGEST_LEN] = h
            .chain_update((pkp_bytes.len() as u64).to_be_bytes())
            .chain_update(&pkp_bytes)
            .finalize()
            .into();
        let mut echo = Vec::with_capacity(self.receivers.len() * DIGEST_LEN);
        for r in &self.receivers {
            match self.verdicts.get(r) {
                Some(m) => echo.extend_from_slice(&m.payload_digest),
                None => {
                    self.fail(
                        FailureKind::Library("verdict set incomplete".into()),
                        BTreeSet::new(),
                    );
                    return None;
                }
            }
        }
        let frame = Frame::new(KIND_CONFIRM, vec![echo.clone(), pkp_digest.to_vec()]).encode();
        self.send_to_other_receivers(&frame);
        self.phase = Phase::Confirm {
            output: Box::new(MemberOutput {
                role: self.role,
                version: self.new_version(),
                key_package,
                public_key_package,
                qualified,
                excluded,
                confirmation_digest: pkp_digest,
            }),
            echo,
            pkp_digest,
            confirmed: BTreeSet::new(),
        };
        Some(3)
    }

    fn on_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        match &self.phase {
            Phase::Deal => {
                // Go on without the missing deals: they count as "missing" verdicts.
                if let Some(round) = self.start_verdict() {
                    self.enter(now, round);
                }
            }
            Phase::Verdict => {
                let silent = self
                    .receivers
                    .iter()
                    .copied()
                    .filter(|p| !self.verdicts.contains_key(p))
                    .collect();
                self.fail(FailureKind::Timeout { round: 2 }, silent);
            }
            Phase::Confirm { confirmed, .. } => {
                let silent = self
                    .receivers
                    .iter()
                    .copied()
                    .filter(|p| *p != self.me && !confirmed.contains(p))
                    .collect();
                self.fail(FailureKind::Timeout { round: 3 }, silent);
            }
            Phase::Finished => {}
        }
    }
}

type FieldOf<C> = <<C as Ciphersuite>::Group as Group>::Field;

/// A dealer's old key package must be its share of exactly the old public key package.
fn check_old_key_package<C: Ciphersuite>(
    me: ParticipantId,
    kp: &KeyPackage<C>,
    pkp: &PublicKeyPackage<C>,
) -> Result<(), ConfigError> {
    if *kp.identifier() != me.to_frost::<C>() {
        return Err(ConfigError::KeyMaterialMismatch(
            "old key package belongs to another identifier",
        ));
    }
    if kp.verifying_key() != pkp.verifying_key() {
        return Err(ConfigError::KeyMaterialMismatch(
            "old key package belongs to another key",
        ));
    }
    if Some(*kp.min_signers()) != pkp.min_signers() {
        return Err(ConfigError::KeyMaterialMismatch("old threshold differs"));
    }
    let own = <C::Group as Group>::generator() * kp.signing_share().to_scalar();
    match pkp.verifying_shares().get(&me.to_frost()) {
        Some(y) if y.to_element() == own => Ok(()),
        _ => Err(ConfigError::KeyMaterialMismatch(
            "old share does not match its verifying share",
        )),
    }
}

/// Binds every digest of a run to its parameters, so nothing from another run (another version,
/// dealer set, member set or threshold) can be mistaken for this run's.
fn run_context<C: Ciphersuite>(
    run: &[u8],
    from_version: KeyVersion,
    old: &PublicKeyPackage<C>,
    dealers: &BTreeSet<ParticipantId>,
    receivers: &BTreeSet<ParticipantId>,
    new_threshold: u16,
) -> [u8; DIGEST_LEN] {
    // The whole old package (every verifying share, not only the group key): members that
    // disagree on it never accept each other's deals.
    let package = old.serialize().unwrap_or_default();
    let mut h = Sha256::new()
        .chain_update(b"keyshard/reshare/context/v2")
        .chain_update((run.len() as u64).to_be_bytes())
        .chain_update(run)
        .chain_update(from_version.0.to_be_bytes())
        .chain_update((package.len() as u64).to_be_bytes())
        .chain_update(&package)
        .chain_update(new_threshold.to_be_bytes())
        .chain_update((dealers.len() as u64).to_be_bytes());
    for d in dealers {
        h.update(d.get().to_be_bytes());
    }
    h.update((receivers.len() as u64).to_be_bytes());
    for r in receivers {
        h.update(r.get().to_be_bytes());
    }
    h.finalize().into()
}

/// The digest of a dealer's commitment, as echoed in round 2.
fn commitment_digest(
    context: &[u8; DIGEST_LEN],
    dealer: ParticipantId,
    fields: &[Vec<u8>],
) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new()
        .chain_update(b"keyshard/reshare/commitment/v1")
        .chain_update(context)
        .chain_update(dealer.get().to_be_bytes())
        .chain_update((fields.len() as u64).to_be_bytes());
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    h.finalize().into()
}

fn decode_share<C: Ciphersuite>(bytes: &[u8], len: usize) -> Result<SigningShare<C>, Rejection> {
    if bytes.len() != len {
        return Err(Rejection::WrongSize {
            field: "sub-share",
            expected: len,
            actual: bytes.len(),
        });
    }
    let share = SigningShare::<C>::deserialize(bytes)
        .map_err(|_| Rejection::Malformed { field: "sub-share" })?;
    let mut again = share.serialize();
    let same = again == bytes;
    again.zeroize();
    if same {
        Ok(share)
    } else {
        Err(Rejection::Malformed { field: "sub-share" })
    }
}

fn decode_commitment<C: Ciphersuite>(
    bytes: &[u8],
    len: usize,
) -> Result<CoefficientCommitment<C>, Rejection> {
    if bytes.len() != len {
        return Err(Rejection::WrongSize {
            field: "commitment",
            expected: len,
            actual: bytes.len(),
        });
    }
    let c = CoefficientCommitment::<C>::deserialize(bytes).map_err(|_| Rejection::Malformed {
        field: "commitment",
    })?;
    match c.serialize() {
        Ok(again) if again == bytes => Ok(c),
        _ => Err(Rejection::Malformed {
            field: "commitment",
        }),
    }
}

fn wipe(frame: &mut Frame) {
    for f in &mut frame.fields {
        f.zeroize();
    }
}

impl<C: Ciphersuite> Session for FrostReshare<C> {
    type Output = ReshareOutput<C>;

    fn handle_input(&mut self, input: SessionInput<'_>) {
        match input {
            SessionInput::Message { at, from, payload } => self.on_message(at, from, payload),
            SessionInput::Timeout { now } => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<SessionOutput<ReshareOutput<C>>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        self.round()
            .map(|r| (self.deadline, TimerKind::RoundDeadline(r)))
    }

    fn status(&self) -> SessionStatus {
        match self.phase {
            Phase::Finished => SessionStatus::Finished,
            _ => SessionStatus::Running,
        }
    }

    fn me(&self) -> ParticipantId {
        self.me
    }
}

impl<C: Ciphersuite> crate::transcript::Recordable for ReshareOutput<C> {
    fn record(&self, t: &mut crate::transcript::Transcript) {
        match self {
            ReshareOutput::Dealt { version } => t.record("reshare dealt", &version.0.to_be_bytes()),
            ReshareOutput::Member(m) => {
                let bytes = m.public_key_package.serialize().unwrap_or_default();
                t.record("reshare public key package", &bytes);
            }
        }
    }
}
