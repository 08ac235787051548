//! FROST threshold signing as a [`Session`], with a coordinator.
//!
//! 1. Each signer draws one nonce pair per message and sends its commitments to the coordinator.
//! 2. The coordinator, once it holds every signer's commitments, sends each signer the signing
//!    packages. A signer checks that they sign exactly the configured messages, with exactly the
//!    configured signer set and its own commitments unchanged, then signs: its nonces are
//!    consumed by move ([`SingleUseNonces`]), so a second request can never be answered.
//! 3. The coordinator aggregates with cheater detection over all shares and emits the signatures.
//!
//! A batch (several messages) shares the same two round trips. The coordinator may or may not be
//! a signer; when it is, its own messages never touch the wire.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::{self, SignatureShare};
use frost_core::{
    aggregate_custom, CheaterDetection, Ciphersuite, Error, Field, Group, Identifier, Signature,
    SigningPackage,
};

use super::canonical::{decode, SigningCodec};
use super::wire::CommitmentWire;
use super::{failure_from_frost, ConfigError};
use crate::ids::ParticipantId;
use crate::rng::{CoreRng, Seed};
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
    SessionStatus, TimerKind,
};
use crate::time::{Duration, Instant};

const KIND_COMMIT: u8 = 10;
const KIND_REQUEST: u8 = 11;
const KIND_SHARE: u8 = 12;

/// The most messages one signing session signs.
pub const MAX_BATCH: usize = 1024;
/// The largest message the session signs; larger payloads should be hashed by the application
/// (for Ed25519 and BIP-340 the message is signed as given).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What a signing run needs to know.
#[derive(Clone)]
pub struct SignConfig {
    /// This participant.
    pub me: ParticipantId,
    /// Who collects commitments and shares and aggregates (usually the Raft leader).
    pub coordinator: ParticipantId,
    /// Exactly who signs: at least the key's threshold, all holders of the key.
    pub signers: BTreeSet<ParticipantId>,
    /// The messages to sign, in order; one signature each.
    pub messages: Vec<Vec<u8>>,
    /// How long each round may take before the silent parties are named.
    pub round_timeout: Duration,
}

impl fmt::Debug for SignConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignConfig")
            .field("me", &self.me)
            .field("coordinator", &self.coordinator)
            .field("signers", &self.signers)
            .field("messages", &self.messages.len())
            .field("round_timeout", &self.round_timeout)
            .finish()
    }
}

/// A successful signing run.
#[derive(Debug)]
pub enum SignOutput<C: Ciphersuite> {
    /// At the coordinator: one verified signature per message, in order.
    Signatures(Vec<Signature<C>>),
    /// At a signer that is not the coordinator: its shares left; the coordinator aggregates.
    SharesSent,
}

/// One signer's nonces for one signing request. Not `Clone`: [`SingleUseNonces::sign`] takes
/// `self`, so the same nonces can never sign twice (which would reveal the key share). Dropping
/// them wipes them (frost's `SigningNonces` zeroize on drop).
///
/// ```compile_fail
/// # fn f<C: frost_core::Ciphersuite>(n: keyshard_core::frost::SingleUseNonces<C>,
/// #        p: &[frost_core::SigningPackage<C>], k: &frost_core::keys::KeyPackage<C>) {
/// let _ = n.sign(p, k);
/// let _ = n.sign(p, k); // error[E0382]: use of moved value
/// # }
/// ```
pub struct SingleUseNonces<C: Ciphersuite> {
    nonces: Vec<SigningNonces<C>>,
}

impl<C: Ciphersuite> SingleUseNonces<C> {
    /// Draws one nonce pair per message and returns the public commitments with their
    /// encodings, as this signer sends them.
    pub(crate) fn generate(
        key_package: &KeyPackage<C>,
        count: usize,
        codec: &SigningCodec<C>,
        rng: &mut CoreRng,
    ) -> Result<(Self, Commitments<C>), String>
    where
        C: CommitmentWire,
    {
        let mut nonces = Vec::with_capacity(count);
        let mut commitments = Vec::with_capacity(count);
        let mut encoded = Vec::with_capacity(count);
        for _ in 0..count {
            let (n, wire) = C::commit(key_package.signing_share(), rng)?;
            commitments.push(*n.commitments());
            encoded.push(codec.encode_commitments(&wire)?);
            nonces.push(n);
        }
        Ok((
            SingleUseNonces { nonces },
            Commitments {
                values: commitments,
                encoded,
            },
        ))
    }

    /// Signs each package with its nonces, consuming them whatever the outcome.
    pub fn sign(
        self,
        packages: &[SigningPackage<C>],
        key_package: &KeyPackage<C>,
    ) -> Result<Vec<SignatureShare<C>>, Error<C>> {
        if packages.len() != self.nonces.len() {
            return Err(Error::IncorrectNumberOfCommitments);
        }
        packages
            .iter()
            .zip(&self.nonces)
            .map(|(p, n)| round2::sign(p, n, key_package))
            .collect()
    }
}

impl<C: Ciphersuite> fmt::Debug for SingleUseNonces<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SingleUseNonces(<{} redacted>)", self.nonces.len())
    }
}

struct SignerPart<C: Ciphersuite> {
    key_package: KeyPackage<C>,
    /// `None` once spent.
    nonces: Option<SingleUseNonces<C>>,
    own_commitments: Vec<SigningCommitments<C>>,
    /// Their canonical encodings: what this signer sends, and what a signing package must
    /// carry for it byte for byte.
    own_encoded: Vec<Vec<u8>>,
}

/// One signer's commitments as the coordinator accepted them: the values, and their canonical
/// encodings (forwarded as they are in the signing packages).
pub(crate) struct Commitments<C: Ciphersuite> {
    values: Vec<SigningCommitments<C>>,
    encoded: Vec<Vec<u8>>,
}

struct CoordinatorPart<C: Ciphersuite> {
    public_key_package: PublicKeyPackage<C>,
    commitments: BTreeMap<ParticipantId, Commitments<C>>,
    packages: Option<Vec<SigningPackage<C>>>,
    shares: BTreeMap<ParticipantId, Vec<SignatureShare<C>>>,
    share_len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Round 1: commitments flow to the coordinator (signers wait for the request).
    Commit,
    /// Round 2: shares flow to the coordinator.
    Share,
    Finished,
}

/// One participant's run of FROST signing (as signer, coordinator, or both).
pub struct FrostSign<C: CommitmentWire> {
    me: ParticipantId,
    coordinator: ParticipantId,
    signers: BTreeSet<ParticipantId>,
    messages: Vec<Vec<u8>>,
    round_timeout: Duration,
    deadline: Instant,
    phase: Phase,
    signer: Option<SignerPart<C>>,
    coord: Option<CoordinatorPart<C>>,
    /// The layout of this suite's commitments and signing packages; `None` only if frost could
    /// not encode this party's own commitments (the session then ends at once).
    codec: Option<SigningCodec<C>>,
    /// Senders whose message for a kind was accepted, with its bytes, for duplicate handling.
    seen: BTreeMap<(u8, ParticipantId), Vec<u8>>,
    outputs: VecDeque<SessionOutput<SignOutput<C>>>,
}

impl<C: CommitmentWire> FrostSign<C> {
    /// Starts a run. `key_package` is required if `me` signs, `public_key_package` if `me`
    /// coordinates. `seed` should be a child seed unique to this session: it draws the nonces.
    pub fn new(
        config: SignConfig,
        key_package: Option<KeyPackage<C>>,
        public_key_package: Option<PublicKeyPackage<C>>,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let SignConfig {
            me,
            coordinator,
            signers,
            messages,
            round_timeout,
        } = config;
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(ConfigError::BadBatchSize(messages.len()));
        }
        if let Some(m) = messages.iter().find(|m| m.len() > MAX_MESSAGE_BYTES) {
            return Err(ConfigError::MessageTooLarge(m.len()));
        }
        if signers.len() < 2 || signers.len() > usize::from(u16::MAX) {
            return Err(ConfigError::BadParticipantCount(signers.len()));
        }
        let is_signer = signers.contains(&me);
        if !is_signer && me != coordinator {
            return Err(ConfigError::NotAParticipant);
        }
        let threshold = key_package
            .as_ref()
            .map(|k| *k.min_signers())
            .or_else(|| public_key_package.as_ref().and_then(|p| p.min_signers()))
            .ok_or(ConfigError::MissingKeyMaterial(
                "key package or public key package",
            ))?;
        if usize::from(threshold) > signers.len() {
            return Err(ConfigError::BadThreshold {
                threshold,
                participants: signers.len(),
            });
        }

        let mut rng = seed.rng();
        let mut codec = SigningCodec::<C>::new();
        let signer = if is_signer {
            let kp = key_package.ok_or(ConfigError::MissingKeyMaterial("key package"))?;
            if *kp.identifier() != me.to_frost::<C>() {
                return Err(ConfigError::KeyMaterialMismatch(
                    "key package belongs to another identifier",
                ));
            }
            // A signer encodes its commitments to send them (or, as coordinator, to forward
            // them). A failure here ends the session at once, below.
            let generated = match &codec {
                Ok(codec) => SingleUseNonces::generate(&kp, messages.len(), codec, &mut rng),
                Err(e) => Err(e.clone()),
            };
            match generated {
                Ok((nonces, own)) => Some(SignerPart {
                    key_package: kp,
                    nonces: Some(nonces),
                    own_commitments: own.values,
                    own_encoded: own.encoded,
                }),
                Err(e) => {
                    codec = Err(e);
                    None
                }
            }
        } else {
            None
        };
        let coord = if me == coordinator {
            let pkp =
                public_key_package.ok_or(ConfigError::MissingKeyMaterial("public key package"))?;
            if pkp.min_signers() != Some(threshold) {
                return Err(ConfigError::KeyMaterialMismatch("threshold differs"));
            }
            if signers
                .iter()
                .any(|s| !pkp.verifying_shares().contains_key(&s.to_frost::<C>()))
            {
                return Err(ConfigError::KeyMaterialMismatch(
                    "a signer holds no share of this key",
                ));
            }
            let share_len = <<C::Group as Group>::Field as Field>::serialize(
                &<<C::Group as Group>::Field as Field>::one(),
            )
            .as_ref()
            .len();
            Some(CoordinatorPart {
                public_key_package: pkp,
                commitments: BTreeMap::new(),
                packages: None,
                shares: BTreeMap::new(),
                share_len,
            })
        } else {
            None
        };

        let mut session = FrostSign {
            me,
            coordinator,
            signers,
            messages,
            round_timeout,
            deadline: now.saturating_add(round_timeout),
            phase: Phase::Commit,
            signer,
            coord,
            codec: codec.as_ref().ok().cloned(),
            seen: BTreeMap::new(),
            outputs: VecDeque::new(),
        };
        if let Err(e) = codec {
            session.fail(FailureKind::Library(e), BTreeSet::new());
            return Ok(session);
        }
        if let Some(signer) = &session.signer {
            let encoded = signer.own_encoded.clone();
            let values = signer.own_commitments.clone();
            if let Some(coord) = &mut session.coord {
                coord
                    .commitments
                    .insert(me, Commitments { values, encoded });
                session.maybe_request(now);
            } else {
                session.send(coordinator, Frame::new(KIND_COMMIT, encoded));
            }
        }
        Ok(session)
    }

    fn send(&mut self, to: ParticipantId, frame: Frame) {
        self.outputs.push_back(SessionOutput::Send {
            to,
            payload: Payload::new(frame.encode()),
        });
    }

    fn fail(&mut self, kind: FailureKind, culprits: BTreeSet<ParticipantId>) {
        self.phase = Phase::Finished;
        self.outputs
            .push_back(SessionOutput::Done(Err(Failure { kind, culprits })));
    }

    fn finish(&mut self, output: SignOutput<C>) {
        self.phase = Phase::Finished;
        self.outputs.push_back(SessionOutput::Done(Ok(output)));
    }

    fn on_message(&mut self, at: Instant, from: ParticipantId, payload: &[u8]) {
        if self.phase == Phase::Finished {
            // A second, different request after this signer signed is an attempt to make it
            // sign twice with the same nonces: refuse it loudly. Anything else is late traffic.
            let spent = self.signer.as_ref().is_some_and(|s| s.nonces.is_none());
            let is_new_request = from == self.coordinator
                && Frame::decode(payload).is_ok_and(|f| f.kind == KIND_REQUEST)
                && self
                    .seen
                    .get(&(KIND_REQUEST, from))
                    .is_some_and(|prev| prev.as_slice() != payload);
            if spent && is_new_request {
                self.reject(from, Rejection::NoncesAlreadyUsed);
            }
            return;
        }
        let frame = match Frame::decode(payload) {
            Ok(f) => f,
            Err(e) => return self.reject(from, Rejection::BadFrame(e)),
        };
        // Who may send what: commitments and shares from signers to the coordinator; requests
        // from the coordinator to signers. Anyone else is refused before anything is parsed.
        let allowed = match frame.kind {
            KIND_COMMIT | KIND_SHARE => {
                self.coord.is_some() && from != self.me && self.signers.contains(&from)
            }
            KIND_REQUEST => self.signer.is_some() && from == self.coordinator && from != self.me,
            kind => return self.reject(from, Rejection::UnexpectedKind { kind }),
        };
        if !allowed {
            return self.reject(from, Rejection::NotAParticipant);
        }
        if let Some(previous) = self.seen.get(&(frame.kind, from)) {
            if previous.as_slice() != payload {
                let reason = if frame.kind == KIND_REQUEST {
                    Rejection::NoncesAlreadyUsed
                } else {
                    Rejection::AlreadyReceived
                };
                self.reject(from, reason);
            }
            return;
        }
        let kind = frame.kind;
        let result = match kind {
            KIND_COMMIT => self.on_commit(from, frame),
            KIND_REQUEST => self.on_request(frame),
            _ => self.on_share(from, frame),
        };
        match result {
            Ok(()) => {
                self.seen.insert((kind, from), payload.to_vec());
                match kind {
                    KIND_COMMIT => self.maybe_request(at),
                    KIND_SHARE => self.maybe_aggregate(),
                    _ => {}
                }
            }
            Err(reason) => self.reject(from, reason),
        }
    }

    fn reject(&mut self, from: ParticipantId, reason: Rejection) {
        self.outputs
            .push_back(SessionOutput::Misbehaved { from, reason });
    }

    fn on_commit(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let count = self.messages.len();
        let (Some(coord), Some(codec)) = (&mut self.coord, &self.codec) else {
            return Err(Rejection::NotAParticipant);
        };
        if self.phase != Phase::Commit {
            return Err(Rejection::StaleRound);
        }
        if frame.fields.len() != count {
            return Err(Rejection::WrongCount {
                field: "commitments",
                expected: count,
                actual: frame.fields.len(),
            });
        }
        let values = frame
            .fields
            .iter()
            .map(|b| codec.decode_commitments(b, "commitments"))
            .collect::<Result<Vec<_>, _>>()?;
        coord.commitments.insert(
            from,
            Commitments {
                values,
                encoded: frame.fields,
            },
        );
        Ok(())
    }

    /// At the coordinator: once every signer's commitments are in, send the signing packages.
    fn maybe_request(&mut self, at: Instant) {
        let (Some(coord), Some(codec)) = (&mut self.coord, &self.codec) else {
            return;
        };
        if self.phase != Phase::Commit || coord.commitments.len() != self.signers.len() {
            return;
        }
        // The packages are assembled from the commitments' accepted encodings: the bytes frost's
        // `serialize` would give, without re-encoding every element.
        let mut packages = Vec::with_capacity(self.messages.len());
        let mut fields = Vec::with_capacity(self.messages.len());
        for (k, message) in self.messages.iter().enumerate() {
            let mut values = BTreeMap::new();
            let mut encoded = BTreeMap::new();
            for (p, c) in &coord.commitments {
                let id: Identifier<C> = p.to_frost();
                values.insert(id, c.values[k]);
                encoded.insert(id, c.encoded[k].as_slice());
            }
            fields.push(codec.encode_package(&encoded, message));
            packages.push(SigningPackage::new(values, message));
        }
        coord.packages = Some(packages);
        self.phase = Phase::Share;
        self.deadline = at.saturating_add(self.round_timeout);
        let others: Vec<ParticipantId> = self
            .signers
            .iter()
            .copied()
            .filter(|p| *p != self.me)
            .collect();
        for to in others {
            self.send(to, Frame::new(KIND_REQUEST, fields.clone()));
        }
        if self.signer.is_some() {
            self.sign_own();
        }
    }

    /// The coordinator signs its own part without a round trip.
    fn sign_own(&mut self) {
        let (Some(signer), Some(coord)) = (&mut self.signer, &mut self.coord) else {
            return;
        };
        let (Some(nonces), Some(packages)) = (signer.nonces.take(), &coord.packages) else {
            return;
        };
        match nonces.sign(packages, &signer.key_package) {
            Ok(shares) => {
                coord.shares.insert(self.me, shares);
                self.maybe_aggregate();
            }
            Err(e) => {
                let f = failure_from_frost(&e, &self.signers);
                self.fail(f.kind, f.culprits);
            }
        }
    }

    /// At a signer: validate the coordinator's packages completely, then sign once.
    fn on_request(&mut self, frame: Frame) -> Result<(), Rejection> {
        let (Some(signer), Some(codec)) = (&mut self.signer, &self.codec) else {
            return Err(Rejection::NotAParticipant);
        };
        if signer.nonces.is_none() {
            return Err(Rejection::NoncesAlreadyUsed);
        }
        if frame.fields.len() != self.messages.len() {
            return Err(Rejection::WrongCount {
                field: "signing packages",
                expected: self.messages.len(),
                actual: frame.fields.len(),
            });
        }
        const FIELD: &str = "signing package";
        let expected: BTreeSet<Identifier<C>> = self.signers.iter().map(|p| p.to_frost()).collect();
        let me: Identifier<C> = self.me.to_frost();
        let mut packages = Vec::with_capacity(frame.fields.len());
        for (k, bytes) in frame.fields.iter().enumerate() {
            // Everything is decoded and validated before any check of content, as frost's own
            // decoder would, except this signer's own commitments when they are byte for byte
            // what it sent (the canonical encoding of exactly those values).
            let parts = codec.parse_package(bytes, FIELD)?;
            let mut commitments = BTreeMap::new();
            for (id, encoded) in parts.entries {
                let value = if id == me && encoded == signer.own_encoded[k].as_slice() {
                    signer.own_commitments[k]
                } else {
                    codec
                        .decode_commitments(encoded, FIELD)
                        .map_err(|_| Rejection::Malformed { field: FIELD })?
                };
                commitments.insert(id, value);
            }
            if parts.message != self.messages[k].as_slice() {
                return Err(Rejection::Inconsistent {
                    what: "signing package signs a different message",
                });
            }
            if !commitments.keys().eq(expected.iter()) {
                return Err(Rejection::Inconsistent {
                    what: "signing package has a different signer set",
                });
            }
            if commitments.get(&me) != Some(&signer.own_commitments[k]) {
                return Err(Rejection::Inconsistent {
                    what: "signing package alters this signer's commitments",
                });
            }
            packages.push(SigningPackage::new(commitments, parts.message));
        }
        let Some(nonces) = signer.nonces.take() else {
            return Err(Rejection::NoncesAlreadyUsed);
        };
        match nonces.sign(&packages, &signer.key_package) {
            Ok(shares) => {
                let fields = shares.iter().map(|s| s.serialize()).collect();
                let coordinator = self.coordinator;
                self.send(coordinator, Frame::new(KIND_SHARE, fields));
                if self.coord.is_none() {
                    self.finish(SignOutput::SharesSent);
                }
            }
            Err(e) => {
                let f = failure_from_frost(&e, &self.signers);
                self.fail(f.kind, f.culprits);
            }
        }
        Ok(())
    }

    fn on_share(&mut self, from: ParticipantId, frame: Frame) -> Result<(), Rejection> {
        let count = self.messages.len();
        let Some(coord) = &mut self.coord else {
            return Err(Rejection::NotAParticipant);
        };
        if self.phase != Phase::Share {
            return Err(Rejection::StaleRound);
        }
        if frame.fields.len() != count {
            return Err(Rejection::WrongCount {
                field: "signature shares",
                expected: count,
                actual: frame.fields.len(),
            });
        }
        let shares = frame
            .fields
            .iter()
            .map(|b| decode::<SignatureShare<C>>(b, Some(coord.share_len), "signature share"))
            .collect::<Result<Vec<_>, _>>()?;
        coord.shares.insert(from, shares);
        Ok(())
    }

    fn maybe_aggregate(&mut self) {
        let Some(coord) = &self.coord else { return };
        let Some(packages) = &coord.packages else {
            return;
        };
        if self.phase != Phase::Share || coord.shares.len() != self.signers.len() {
            return;
        }
        let mut signatures = Vec::with_capacity(packages.len());
        for (k, package) in packages.iter().enumerate() {
            let shares: BTreeMap<Identifier<C>, SignatureShare<C>> = coord
                .shares
                .iter()
                .map(|(p, s)| (p.to_frost(), s[k]))
                .collect();
            match aggregate_custom(
                package,
                &shares,
                &coord.public_key_package,
                CheaterDetection::AllCheaters,
            ) {
                Ok(sig) => signatures.push(sig),
                Err(e) => {
                    let f = failure_from_frost(&e, &self.signers);
                    return self.fail(f.kind, f.culprits);
                }
            }
        }
        self.finish(SignOutput::Signatures(signatures));
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Finished || now < self.deadline {
            return;
        }
        let round = match self.phase {
            Phase::Commit => 1,
            _ => 2,
        };
        let silent: BTreeSet<ParticipantId> = match &self.coord {
            Some(c) => {
                let heard: BTreeSet<ParticipantId> = if self.phase == Phase::Commit {
                    c.commitments.keys().copied().collect()
                } else {
                    c.shares.keys().copied().collect()
                };
                self.signers
                    .iter()
                    .copied()
                    .filter(|p| !heard.contains(p))
                    .collect()
            }
            None => BTreeSet::from([self.coordinator]),
        };
        self.fail(FailureKind::Timeout { round }, silent);
    }
}

impl<C: CommitmentWire> Session for FrostSign<C> {
    type Output = SignOutput<C>;

    fn handle_input(&mut self, input: SessionInput<'_>) {
        match input {
            SessionInput::Message { at, from, payload } => self.on_message(at, from, payload),
            SessionInput::Timeout { now } => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<SessionOutput<SignOutput<C>>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        match self.phase {
            Phase::Commit => Some((self.deadline, TimerKind::RoundDeadline(1))),
            Phase::Share => Some((self.deadline, TimerKind::RoundDeadline(2))),
            Phase::Finished => None,
        }
    }

    fn status(&self) -> SessionStatus {
        if self.phase == Phase::Finished {
            SessionStatus::Finished
        } else {
            SessionStatus::Running
        }
    }

    fn me(&self) -> ParticipantId {
        self.me
    }
}

impl<C: Ciphersuite> crate::transcript::Recordable for SignOutput<C> {
    fn record(&self, t: &mut crate::transcript::Transcript) {
        match self {
            SignOutput::Signatures(sigs) => {
                for s in sigs {
                    t.record("signature", &s.serialize().unwrap_or_default());
                }
            }
            SignOutput::SharesSent => t.record("shares sent", &[]),
        }
    }
}
