//! Online signing from a presignature: one round, and every partial signature checked.
//!
//! Each signer consumes its [`EcdsaPresignature`] (by move) on the **full message**, which is
//! hashed here with SHA-256 (`DataToSign::digest`): never a raw caller-supplied hash, which with a
//! presignature would allow a forgery (CVE-2025-66017 / RUSTSEC-2025-0127). It sends its partial
//! signature σ_i to the other signers; each checks every σ_j against the presignature's public
//! commitments (σ_j·Γ = m·Δ̃_j + r·S̃_j, the check cggmp24's `combine` makes without saying who
//! failed), so a bad partial signature names its sender. The sum is verified against the group
//! key before the session reports success.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cggmp24::generic_ec::coords::AlwaysHasAffineX;
use cggmp24::generic_ec::{NonZero, Point, Scalar};
use cggmp24::signing::PresignaturePublicData;
use cggmp24::{DataToSign, PartialSignature};
use sha2::{Digest, Sha256};

use super::types::{EcdsaPresignature, EcdsaSignature, Recovery};
use super::EcdsaCurve;
use crate::frost::dkg::expect_fields;
use crate::frost::ConfigError;
use crate::ids::ParticipantId;
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
    SessionStatus, TimerKind,
};
use crate::time::{Duration, Instant};

const KIND_PARTIAL: u8 = 1;
/// The largest message this session signs (the same bound as FROST signing).
pub const MAX_MESSAGE_BYTES: usize = crate::frost::sign::MAX_MESSAGE_BYTES;

/// What an online signing run needs (the presignature comes separately, by value).
#[derive(Clone, Debug)]
pub struct EcdsaSignConfig {
    /// The message, in full. Hashed with SHA-256 inside.
    pub message: Vec<u8>,
    /// How long the round may take.
    pub round_timeout: Duration,
}

/// One signer's online signing run.
pub struct EcdsaSign<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    me: ParticipantId,
    signers: Vec<ParticipantId>,
    message: DataToSign<E>,
    /// The presignature's public data and the group key; `None` once used up.
    public: Option<(PresignaturePublicData<E>, Point<E>)>,
    own: PartialSignature<E>,
    received: BTreeMap<ParticipantId, PartialSignature<E>>,
    seen: BTreeMap<ParticipantId, [u8; 32]>,
    deadline: Instant,
    outputs: VecDeque<SessionOutput<EcdsaSignature>>,
    finished: bool,
}

impl<E: EcdsaCurve> std::fmt::Debug for EcdsaSign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaSign")
            .field("scheme", &E::SCHEME)
            .field("me", &self.me)
            .field("signers", &self.signers)
            .field("received", &self.received.keys().collect::<Vec<_>>())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<E: EcdsaCurve> EcdsaSign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    /// Spends `presignature` on `config.message` and queues the partial signature for the other
    /// signers. The presignature is gone after this call whatever happens next.
    pub fn new(
        config: EcdsaSignConfig,
        presignature: EcdsaPresignature<E>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        if config.message.len() > MAX_MESSAGE_BYTES {
            return Err(ConfigError::MessageTooLarge(config.message.len()));
        }
        let message = DataToSign::<E>::digest::<Sha256>(&config.message);
        let EcdsaPresignature {
            presignature,
            public,
            signers,
            me,
            public_key,
        } = presignature;
        // Consumes the secret nonce shares; they are wiped when dropped here.
        let own = presignature.issue_partial_signature(message);
        let mut s = EcdsaSign {
            me,
            signers,
            message,
            public: Some((public, public_key)),
            own,
            received: BTreeMap::new(),
            seen: BTreeMap::new(),
            deadline: now.saturating_add(config.round_timeout),
            outputs: VecDeque::new(),
            finished: false,
        };
        let frame = Frame::new(
            KIND_PARTIAL,
            vec![own.sigma.to_be_bytes().as_ref().to_vec()],
        )
        .encode();
        for to in s.signers.clone() {
            if to != s.me {
                s.outputs.push_back(SessionOutput::Send {
                    to,
                    payload: Payload::new(frame.clone()),
                });
            }
        }
        Ok(s)
    }

    fn index_of(&self, p: ParticipantId) -> Option<usize> {
        self.signers.iter().position(|x| *x == p)
    }

    fn fail(&mut self, kind: FailureKind, culprits: BTreeSet<ParticipantId>) {
        self.finished = true;
        self.public = None;
        self.outputs
            .push_back(SessionOutput::Done(Err(Failure { kind, culprits })));
    }

    fn validate(
        &self,
        from: ParticipantId,
        payload: &[u8],
    ) -> Result<(usize, PartialSignature<E>), Rejection> {
        let j = match self.index_of(from) {
            Some(j) if from != self.me => j,
            _ => return Err(Rejection::NotAParticipant),
        };
        let frame = Frame::decode(payload).map_err(Rejection::BadFrame)?;
        if frame.kind != KIND_PARTIAL {
            return Err(Rejection::UnexpectedKind { kind: frame.kind });
        }
        let [bytes] = expect_fields::<1>(frame)?;
        let len = Scalar::<E>::serialized_len();
        if bytes.len() != len {
            return Err(Rejection::WrongSize {
                field: "partial signature",
                expected: len,
                actual: bytes.len(),
            });
        }
        // Refuses values >= the group order (one value, one encoding).
        let sigma = Scalar::<E>::from_be_bytes(&bytes).map_err(|_| Rejection::Malformed {
            field: "partial signature",
        })?;
        Ok((j, PartialSignature { sigma }))
    }

    fn on_message(&mut self, from: ParticipantId, payload: &[u8]) {
        if self.finished {
            return;
        }
        let (j, partial) = match self.validate(from, payload) {
            Ok(x) => x,
            Err(reason) => {
                return self
                    .outputs
                    .push_back(SessionOutput::Misbehaved { from, reason })
            }
        };
        let digest: [u8; 32] = Sha256::digest(payload).into();
        if let Some(previous) = self.seen.get(&from) {
            if *previous != digest {
                self.outputs.push_back(SessionOutput::Misbehaved {
                    from,
                    reason: Rejection::AlreadyReceived,
                });
            }
            return;
        }
        if j >= self.signers.len() {
            return;
        }
        self.seen.insert(from, digest);
        self.received.insert(from, partial);
        if self.received.len() + 1 == self.signers.len() {
            self.finish();
        }
    }

    /// Optimistic: sums the partial signatures and verifies the result against the group key
    /// (two scalar multiplications). Only if that fails is every partial signature checked on its
    /// own against the presignature's commitments (σ_j·Γ = m·Δ̃_j + r·S̃_j), naming each signer whose
    /// share is wrong. Same outcome and blame as checking each share on arrival, at a fraction of
    /// the cost (3·t scalar multiplications saved per signer, and cggmp24's `combine`, which
    /// repeats them, is not called).
    fn finish(&mut self) {
        let Some((public, public_key)) = self.public.take() else {
            return;
        };
        let mut partials = Vec::with_capacity(self.signers.len());
        for p in &self.signers {
            if *p == self.me {
                partials.push((*p, self.own));
            } else if let Some(s) = self.received.get(p) {
                partials.push((*p, *s));
            }
        }
        self.finished = true;
        let r = public.Gamma.x().to_scalar();
        let sum: Scalar<E> = partials.iter().map(|(_, s)| &s.sigma).sum();
        let sig = match (NonZero::from_scalar(r), NonZero::from_scalar(sum)) {
            (Some(r), Some(s)) => Some(cggmp24::Signature::from_raw_parts(r, s)),
            _ => None,
        };
        if let Some(sig) = sig.filter(|s| s.verify(&public_key, &self.message).is_ok()) {
            let nonce_point: Point<E> = *public.Gamma;
            if let Some(sig) = EcdsaSignature::from_cggmp(&sig, Recovery::NoncePoint(&nonce_point))
            {
                self.outputs.push_back(SessionOutput::Done(Ok(sig)));
                return;
            }
        }
        let m = self.message.to_scalar();
        let culprits: BTreeSet<ParticipantId> = partials
            .iter()
            .enumerate()
            .filter(|(j, (_, partial))| match public.commitments.get(*j) {
                Some(c) => partial.sigma * public.Gamma != m * c.tilde_Delta + r * c.tilde_S,
                None => false,
            })
            .map(|(_, (p, _))| *p)
            .collect();
        let failure = if culprits.is_empty() {
            // Every share matches its commitments, so the presignature itself is bad (a cheated
            // presigning run that cggmp24 did not catch): nobody can be named.
            Failure {
                kind: FailureKind::Library("combined signature does not verify".into()),
                culprits,
            }
        } else {
            Failure {
                kind: FailureKind::InvalidSignatureShare,
                culprits,
            }
        };
        self.outputs.push_back(SessionOutput::Done(Err(failure)));
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.finished || now < self.deadline {
            return;
        }
        let silent = self
            .signers
            .iter()
            .copied()
            .filter(|p| *p != self.me && !self.received.contains_key(p))
            .collect();
        self.fail(FailureKind::Timeout { round: 1 }, silent);
    }
}

impl<E: EcdsaCurve> Session for EcdsaSign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    type Output = EcdsaSignature;

    fn handle_input(&mut self, input: SessionInput<'_>) {
        match input {
            SessionInput::Message { from, payload, .. } => self.on_message(from, payload),
            SessionInput::Timeout { now } => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<SessionOutput<EcdsaSignature>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        (!self.finished).then_some((self.deadline, TimerKind::RoundDeadline(1)))
    }

    fn status(&self) -> SessionStatus {
        if self.finished {
            SessionStatus::Finished
        } else {
            SessionStatus::Running
        }
    }

    fn me(&self) -> ParticipantId {
        self.me
    }
}
