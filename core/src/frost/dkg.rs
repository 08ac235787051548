//! FROST distributed key generation as a [`Session`].
//!
//! Rounds (all messages point-to-point over authenticated, confidential channels):
//! 1. every participant sends its round-1 package (commitment + proof of knowledge) to all;
//! 2. once it holds all round-1 packages, it sends each peer that peer's secret share together
//!    with its digest of every round-1 package (the echo). A round-2 message is accepted only if
//!    the sender's digests equal ours: all honest parties have then seen the same round-1 set,
//!    which frost-core cannot check on its own (it only covers the first coefficient);
//! 3. once it holds all shares, it computes its key package and the public key package
//!    ([`vss::finish_dkg`]) and sends a digest of the public key package to all. The session
//!    succeeds only when every participant confirmed the same public key package.
//!
//! Each round has a deadline; a round that misses it ends the session naming the silent parties.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use frost_core::keys::dkg::{self as fdkg, round1, round2};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;
use sha2::{Digest, Sha256};

use super::canonical::{self, decode};
use super::vss::{self, FinishError};
use super::{failure_from_frost, ConfigError};
use crate::ids::ParticipantId;
use crate::rng::Seed;
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
    SessionStatus, TimerKind,
};
use crate::time::{Duration, Instant};

/// Message kinds of the DKG (the frame's kind byte equals the round number).
const KIND_ROUND1: u8 = 1;
const KIND_ROUND2: u8 = 2;
const KIND_CONFIRM: u8 = 3;
const DIGEST_LEN: usize = 32;

/// What a DKG run needs to know.
#[derive(Clone, Debug)]
pub struct DkgConfig {
    /// This participant.
    pub me: ParticipantId,
    /// Everyone who takes part, `me` included; each will hold a share.
    pub participants: BTreeSet<ParticipantId>,
    /// How many shares it takes to sign (t).
    pub threshold: u16,
    /// How long each round may take before the silent parties are named.
    pub round_timeout: Duration,
}

/// A successful DKG: this participant's secret key package and the group's public package.
pub struct DkgOutput<C: Ciphersuite> {
    /// This participant's key package. Secret.
    pub key_package: KeyPackage<C>,
    /// The group public key and every participant's verifying share.
    pub public_key_package: PublicKeyPackage<C>,
}

impl<C: Ciphersuite> fmt::Debug for DkgOutput<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkgOutput")
            .field("key_package", &"<redacted>")
            .field("public_key_package", &self.public_key_package)
            .finish()
    }
}

enum State<C: Ciphersuite> {
    Round1 {
        secret: round1::SecretPackage<C>,
        own_bytes: Vec<u8>,
        received: BTreeMap<ParticipantId, (round1::Package<C>, Vec<u8>)>,
    },
    Round2 {
        secret: round2::SecretPackage<C>,
        round1: BTreeMap<ParticipantId, round1::Package<C>>,
        digests: Vec<u8>,
        received: BTreeMap<ParticipantId, round2::Package<C>>,
    },
    Confirm {
        output: Box<DkgOutput<C>>,
        digest: [u8; DIGEST_LEN],
        confirmed: BTreeSet<ParticipantId>,
    },
    Finished,
}

/// One participant's run of the FROST DKG.
pub struct FrostDkg<C: Ciphersuite> {
    me: ParticipantId,
    participants: BTreeSet<ParticipantId>,
    threshold: u16,
    round_timeout: Duration,
    deadline: Instant,
    state: State<C>,
    /// Exact byte sizes of the two frost packages, taken from our own: every honest package of
    /// this run has the same size, so anything else is refused before it is parsed.
    round1_len: usize,
    round2_len: usize,
    /// Digest of each message accepted or buffered, per (round, sender): a byte-identical repeat
    /// is ignored, a different second message is refused.
    seen: BTreeMap<(u8, ParticipantId), [u8; DIGEST_LEN]>,
    /// Messages for a later round, kept raw until that round starts (at most one per sender and
    /// round, so the buffer is bounded by 2·n).
    early: BTreeMap<(u8, ParticipantId), Vec<u8>>,
    outputs: VecDeque<SessionOutput<DkgOutput<C>>>,
}

impl<C: Ciphersuite> FrostDkg<C> {
    /// Starts a run: draws this participant's polynomial from `seed` and queues its round-1
    /// messages. `seed` should be a child seed unique to this session.
    pub fn new(config: DkgConfig, seed: &Seed, now: Instant) -> Result<Self, ConfigError> {
        let n = config.participants.len();
        if !(2..=usize::from(u16::MAX)).contains(&n) {
            return Err(ConfigError::BadParticipantCount(n));
        }
        if !config.participants.contains(&config.me) {
            return Err(ConfigError::NotAParticipant);
        }
        if config.threshold < 2 || usize::from(config.threshold) > n {
            return Err(ConfigError::BadThreshold {
                threshold: config.threshold,
                participants: n,
            });
        }
        let mut rng = seed.rng();
        let (secret, package) =
            fdkg::part1::<C, _>(config.me.to_frost(), n as u16, config.threshold, &mut rng)
                .map_err(|_| ConfigError::BadThreshold {
                    threshold: config.threshold,
                    participants: n,
                })?;
        // The size of a round-2 package does not depend on its content.
        let round2_len = canonical::encode(&round2::Package::<C>::new(
            frost_core::keys::SigningShare::new(
                <<C::Group as frost_core::Group>::Field as frost_core::Field>::one(),
            ),
        ))
        .map(|b| b.len())
        .unwrap_or(0);
        let mut dkg = FrostDkg {
            me: config.me,
            participants: config.participants,
            threshold: config.threshold,
            round_timeout: config.round_timeout,
            deadline: now.saturating_add(config.round_timeout),
            state: State::Finished,
            round1_len: 0,
            round2_len,
            seen: BTreeMap::new(),
            early: BTreeMap::new(),
            outputs: VecDeque::new(),
        };
        match canonical::encode(&package) {
            Ok(own_bytes) => {
                dkg.round1_len = own_bytes.len();
                let frame = Frame::new(KIND_ROUND1, vec![own_bytes.clone()]).encode();
                dkg.send_to_all(&frame);
                dkg.state = State::Round1 {
                    secret,
                    own_bytes,
                    received: BTreeMap::new(),
                };
            }
            Err(e) => dkg.fail(FailureKind::Library(e), BTreeSet::new()),
        }
        Ok(dkg)
    }

    /// The threshold of the key being generated.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    fn others(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        let me = self.me;
        self.participants.iter().copied().filter(move |p| *p != me)
    }

    fn send_to_all(&mut self, frame: &[u8]) {
        let others: Vec<_> = self.others().collect();
        for to in others {
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

    fn fail(&mut self, kind: FailureKind, culprits: BTreeSet<ParticipantId>) {
        self.state = State::Finished;
        self.early.clear();
        self.outputs
            .push_back(SessionOutput::Done(Err(Failure { kind, culprits })));
    }

    fn current_round(&self) -> Option<u8> {
        match self.state {
            State::Round1 { .. } => Some(KIND_ROUND1),
            State::Round2 { .. } => Some(KIND_ROUND2),
            State::Confirm { .. } => Some(KIND_CONFIRM),
            State::Finished => None,
        }
    }

    fn on_message(&mut self, at: Instant, from: ParticipantId, payload: &[u8]) {
        let Some(round) = self.current_round() else {
            // Late traffic after the end (e.g. confirmations racing our own) changes nothing.
            return;
        };
        if from == self.me || !self.participants.contains(&from) {
            return self.reject(from, Rejection::NotAParticipant);
        }
        let frame = match Frame::decode(payload) {
            Ok(f) => f,
            Err(e) => return self.reject(from, Rejection::BadFrame(e)),
        };
        if !matches!(frame.kind, KIND_ROUND1 | KIND_ROUND2 | KIND_CONFIRM) {
            return self.reject(from, Rejection::UnexpectedKind { kind: frame.kind });
        }
        let digest: [u8; DIGEST_LEN] = Sha256::digest(payload).into();
        if let Some(previous) = self.seen.get(&(frame.kind, from)) {
            if *previous != digest {
                self.reject(from, Rejection::AlreadyReceived);
            }
            // A byte-identical repeat (a duplicated delivery) is harmless: ignore it.
            return;
        }
        if frame.kind < round {
            return self.reject(from, Rejection::StaleRound);
        }
        if frame.kind > round {
            self.seen.insert((frame.kind, from), digest);
            self.early.insert((frame.kind, from), payload.to_vec());
            return;
        }
        let accepted = match frame.kind {
            KIND_ROUND1 => self.on_round1(from, frame),
            KIND_ROUND2 => self.on_round2(from, frame),
            _ => self.on_confirm(from, frame),
        };
        match accepted {
            Ok(()) => {
                self.seen.insert((round, from), digest);
                self.advance(at);
            }
            Err(reason) => self.reject(from, reason),
        }
    }

    /// Validates one round-1 package completely, then stores it.
    fn on_round1(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let [bytes] = expect_fields::<1>(frame)?;
        let package: round1::Package<C> = decode(&bytes, Some(self.round1_len), "round1 package")?;
        let got = package.commitment().coefficients().len();
        if got != usize::from(self.threshold) {
            return Err(Rejection::WrongCount {
                field: "round1 commitment",
                expected: usize::from(self.threshold),
                actual: got,
            });
        }
        if fdkg::verify_proof_of_knowledge(
            from.to_frost(),
            package.commitment(),
            package.proof_of_knowledge(),
        )
        .is_err()
        {
            // Definitive misbehaviour by an authenticated participant: the run cannot succeed.
            self.fail(FailureKind::InvalidProofOfKnowledge, BTreeSet::from([from]));
            return Ok(());
        }
        if let State::Round1 { received, .. } = &mut self.state {
            received.insert(from, (package, bytes));
        }
        Ok(())
    }

    fn on_round2(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let [their_digests, bytes] = expect_fields::<2>(frame)?;
        let State::Round2 {
            round1,
            digests,
            received,
            ..
        } = &mut self.state
        else {
            return Err(Rejection::StaleRound);
        };
        if their_digests.len() != digests.len() {
            return Err(Rejection::WrongSize {
                field: "round1 echo",
                expected: digests.len(),
                actual: their_digests.len(),
            });
        }
        let package: round2::Package<C> = decode(&bytes, Some(self.round2_len), "round2 package")?;
        let disputed = self
            .participants
            .iter()
            .zip(
                their_digests
                    .chunks_exact(DIGEST_LEN)
                    .zip(digests.chunks_exact(DIGEST_LEN)),
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
        let commitment = match round1.get(&from) {
            Some(p) => p.commitment().coefficients(),
            None => return Err(Rejection::NotAParticipant),
        };
        if !vss::share_matches_commitment::<C>(package.signing_share(), commitment, self.me) {
            self.fail(FailureKind::InvalidSecretShare, BTreeSet::from([from]));
            return Ok(());
        }
        received.insert(from, package);
        Ok(())
    }

    fn on_confirm(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let [digest] = expect_fields::<1>(frame)?;
        let State::Confirm {
            digest: ours,
            confirmed,
            ..
        } = &mut self.state
        else {
            return Err(Rejection::StaleRound);
        };
        if digest.len() != DIGEST_LEN {
            return Err(Rejection::WrongSize {
                field: "public key package digest",
                expected: DIGEST_LEN,
                actual: digest.len(),
            });
        }
        if digest != ours.as_slice() {
            self.fail(FailureKind::ConfirmationMismatch, BTreeSet::from([from]));
            return Ok(());
        }
        confirmed.insert(from);
        Ok(())
    }

    /// Moves to the next round when the current one is complete, then replays buffered
    /// messages for the new round.
    fn advance(&mut self, at: Instant) {
        let expected = self.participants.len() - 1;
        let next = match std::mem::replace(&mut self.state, State::Finished) {
            State::Round1 {
                secret,
                own_bytes,
                received,
            } if received.len() == expected => self.start_round2(secret, own_bytes, received),
            State::Round2 {
                secret,
                round1,
                received,
                ..
            } if received.len() == expected => self.start_confirm(&secret, round1, received),
            State::Confirm {
                output, confirmed, ..
            } if confirmed.len() == expected => {
                self.outputs.push_back(SessionOutput::Done(Ok(*output)));
                self.early.clear();
                return;
            }
            unfinished => {
                self.state = unfinished;
                return;
            }
        };
        let Some(round) = next else { return };
        self.deadline = at.saturating_add(self.round_timeout);
        let buffered: Vec<(ParticipantId, Vec<u8>)> = self
            .early
            .iter()
            .filter(|((r, _), _)| *r == round)
            .map(|((_, p), b)| (*p, b.clone()))
            .collect();
        self.early.retain(|(r, _), _| *r != round);
        for (from, bytes) in buffered {
            // Forget the buffered digest so the message is processed as new.
            self.seen.remove(&(round, from));
            self.on_message(at, from, &bytes);
        }
    }

    fn start_round2(
        &mut self,
        secret: round1::SecretPackage<C>,
        own_bytes: Vec<u8>,
        received: BTreeMap<ParticipantId, (round1::Package<C>, Vec<u8>)>,
    ) -> Option<u8> {
        let mut digests = Vec::with_capacity(self.participants.len() * DIGEST_LEN);
        for p in &self.participants {
            let bytes = if *p == self.me {
                &own_bytes
            } else {
                match received.get(p) {
                    Some((_, b)) => b,
                    None => {
                        return self
                            .fail_none(FailureKind::Library("round-1 set incomplete".into()))
                    }
                }
            };
            digests.extend_from_slice(&round1_digest(*p, bytes));
        }
        let round1: BTreeMap<ParticipantId, round1::Package<C>> =
            received.into_iter().map(|(p, (pkg, _))| (p, pkg)).collect();
        let for_frost = round1
            .iter()
            .map(|(p, pkg)| (p.to_frost(), pkg.clone()))
            .collect();
        let (secret, shares) = match fdkg::part2(secret, &for_frost) {
            Ok(x) => x,
            Err(e) => {
                let f = failure_from_frost(&e, &self.participants);
                return self.fail_none_with(f);
            }
        };
        for to in self.others().collect::<Vec<_>>() {
            let Some(share) = shares.get(&to.to_frost()) else {
                return self.fail_none(FailureKind::Library("part2 produced no share".into()));
            };
            match canonical::encode(share) {
                Ok(bytes) => {
                    let frame = Frame::new(KIND_ROUND2, vec![digests.clone(), bytes]).encode();
                    self.outputs.push_back(SessionOutput::Send {
                        to,
                        payload: Payload::new(frame),
                    });
                }
                Err(e) => return self.fail_none(FailureKind::Library(e)),
            }
        }
        self.state = State::Round2 {
            secret,
            round1,
            digests,
            received: BTreeMap::new(),
        };
        Some(KIND_ROUND2)
    }

    fn start_confirm(
        &mut self,
        secret: &round2::SecretPackage<C>,
        round1: BTreeMap<ParticipantId, round1::Package<C>>,
        received: BTreeMap<ParticipantId, round2::Package<C>>,
    ) -> Option<u8> {
        let (key_package, public_key_package) =
            match vss::finish_dkg(secret, self.me, &round1, &received) {
                Ok(x) => x,
                Err(FinishError::InvalidShare(p)) => {
                    return self.fail_none_with(Failure {
                        kind: FailureKind::InvalidSecretShare,
                        culprits: BTreeSet::from([p]),
                    })
                }
                Err(e) => return self.fail_none(FailureKind::Library(format!("{e:?}"))),
            };
        let pkp_bytes = match canonical::encode(&public_key_package) {
            Ok(b) => b,
            Err(e) => return self.fail_none(FailureKind::Library(e)),
        };
        let digest: [u8; DIGEST_LEN] = Sha256::new()
            .chain_update(b"keyshard/dkg/public-key-package/v1")
            .chain_update(&pkp_bytes)
            .finalize()
            .into();
        let frame = Frame::new(KIND_CONFIRM, vec![digest.to_vec()]).encode();
        self.send_to_all(&frame);
        self.state = State::Confirm {
            output: Box::new(DkgOutput {
                key_package,
                public_key_package,
            }),
            digest,
            confirmed: BTreeSet::new(),
        };
        Some(KIND_CONFIRM)
    }

    fn fail_none(&mut self, kind: FailureKind) -> Option<u8> {
        self.fail(kind, BTreeSet::new());
        None
    }

    fn fail_none_with(&mut self, f: Failure) -> Option<u8> {
        self.fail(f.kind, f.culprits);
        None
    }

    fn on_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        let heard: BTreeSet<ParticipantId> = match &self.state {
            State::Round1 { received, .. } => received.keys().copied().collect(),
            State::Round2 { received, .. } => received.keys().copied().collect(),
            State::Confirm { confirmed, .. } => confirmed.clone(),
            State::Finished => return,
        };
        let round = self.current_round().unwrap_or(0);
        let silent = self.others().filter(|p| !heard.contains(p)).collect();
        self.fail(FailureKind::Timeout { round }, silent);
    }
}

/// The digest of one participant's round-1 package, as echoed in round 2.
fn round1_digest(sender: ParticipantId, bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::new()
        .chain_update(b"keyshard/dkg/round1/v1")
        .chain_update(sender.get().to_be_bytes())
        .chain_update((bytes.len() as u64).to_be_bytes())
        .chain_update(bytes)
        .finalize()
        .into()
}

/// The frame's fields if there are exactly `N`.
pub(crate) fn expect_fields<const N: usize>(frame: Frame) -> Result<[Vec<u8>; N], Rejection> {
    let actual = frame.fields.len();
    frame.fields.try_into().map_err(|_| Rejection::WrongCount {
        field: "frame fields",
        expected: N,
        actual,
    })
}

impl<C: Ciphersuite> Session for FrostDkg<C> {
    type Output = DkgOutput<C>;

    fn handle_input(&mut self, input: SessionInput<'_>) {
        match input {
            SessionInput::Message { at, from, payload } => self.on_message(at, from, payload),
            SessionInput::Timeout { now } => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<SessionOutput<DkgOutput<C>>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        self.current_round()
            .map(|r| (self.deadline, TimerKind::RoundDeadline(r)))
    }

    fn status(&self) -> SessionStatus {
        match self.state {
            State::Finished => SessionStatus::Finished,
            _ => SessionStatus::Running,
        }
    }

    fn me(&self) -> ParticipantId {
        self.me
    }
}

impl<C: Ciphersuite> crate::transcript::Recordable for DkgOutput<C> {
    fn record(&self, t: &mut crate::transcript::Transcript) {
        let bytes = self.public_key_package.serialize().unwrap_or_default();
        t.record("dkg public key package", &bytes);
    }
}
