//! ECDSA keys as the node runs them: the runs behind `CreateKey`, `Sign` and `Reshare` for the
//! `ecdsa-cggmp24-*` schemes, composed from the core's sessions and driven like every other
//! [`ErasedSession`].
//!
//! - **Key generation** ([`EcdsaNodeDkg`]): the hardened FROST DKG on the same curve (secp256k1
//!   or P-256 group, echo and confirmation rounds, every fault named), whose shares become
//!   cggmp24 key shares with evaluation points `x = participant id`
//!   ([`keygen_output_of`]), then the **aux stage** below. Using one dealerless DKG and one
//!   resharing protocol for every scheme keeps a single set of verifiable checks, and keys with
//!   `x = id` reshare to any member set. (cggmp24's own key generation, in
//!   [`crate::ecdsa::EcdsaKeygen`], places shares at `x = 1..n` by position, which cannot be
//!   reshared among other ids.)
//! - **Aux stage** ([`AuxStage`]): fresh Paillier keys and ring-Pedersen parameters for every new
//!   key version, from one set of this node's pregenerated safe primes that no aux run here has
//!   used before ([`ErasedSession::wants_primes`]; the node marks the set consumed durably before
//!   the stage sends anything, see `crate::ecdsa::primes`). Aux info belongs to a member set, not
//!   to a key (cggmp24's aux info takes no key and no curve), and this node used to reuse what it
//!   held for the same members, in a second key or a refresh; but then a Paillier secret stolen
//!   once decrypts every later presigning round of every such key, and a refresh rotates the
//!   shares without rotating the Paillier keys: no proactive security for ECDSA. The price is
//!   paid on every key creation, refresh and reshare: aux info generation (tens of seconds of CPU
//!   per party, more with many parties) and one set of safe primes per party (minutes of CPU in
//!   the background), see docs/security.md.
//! - **Signing** ([`EcdsaNodeSign`]): per message, one online round from a pooled presignature
//!   (see `node/presign.rs`; the message hashed inside with SHA-256) or, without one, cggmp24's
//!   full interactive protocol (presigning and signing in one run) on the SHA-256 hash of the
//!   **full message**: either way the hash is not the client's choice, the use cggmp24 documents
//!   as safe against CVE-2025-66017. The signers send the signatures to the coordinator, which
//!   verifies each against the group key.
//! - **Resharing** ([`EcdsaNodeReshare`]): the FROST resharing session on the same curve (see
//!   [`crate::ecdsa::reshare`]), then the aux stage among the new members.
//!
//! A stored share ([`encode_share`]) is the members in index order and cggmp24's key share (JSON,
//! validated by cggmp24 when decoded), so a signer needs nothing from the registry.

use std::collections::{BTreeSet, VecDeque};

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point, Scalar};
use cggmp24::KeyShare;
use frost_core::keys::PublicKeyPackage;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::sessions::{library_failure, ErasedOutput, ErasedSession, ReshareShare, StartError};
use crate::ecdsa::reshare::{frost_key_of, keygen_output_of};
use crate::ecdsa::{
    AuxConfig, EcdsaAux, EcdsaAuxOutput, EcdsaCurve, EcdsaInteractiveSign, EcdsaKey, EcdsaSign,
    EcdsaSignature, Level, SafePrimes, SignersConfig,
};
use crate::frost::{canonical, DkgConfig, FrostDkg, SignConfig};
use crate::ids::ParticipantId;
use crate::persist::SecretBytes;
use crate::reshare::{FrostReshare, ReshareConfig, ReshareOutput};
use crate::rng::Seed;
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
};
use crate::time::{Duration, Instant};

type Frost<E> = <E as EcdsaCurve>::Frost;

/// A message of the key-generation or reshare phase (the FROST session's payload inside).
const KIND_FROST: u8 = 1;
// Kind 2 was the aux offer round of aux info reuse, gone (see the module docs): refused.
/// A message of the aux info protocol (the cggmp24 session's payload inside).
const KIND_AUX: u8 = 3;
/// A message of one message's signing run: its index (u16) and the run's payload.
const KIND_SIGN_RUN: u8 = 4;
/// A signer's signatures, to the coordinator: one field per message.
const KIND_SIGN_RESULT: u8 = 5;
/// A signer's run failed: the culprits it names (u16 each), to the coordinator.
const KIND_SIGN_ABORT: u8 = 6;

/// Messages kept for a stage that has not started here yet, per run.
const MAX_EARLY: usize = 256;
/// The rounds of cggmp24's interactive signing, for the coordinator's deadline.
const SIGN_ROUNDS: u32 = 5;

const SHARE_MAGIC: &[u8; 8] = b"ksecdsa1";

// ---------------------------------------------------------------------------------------------
// Stored shares
// ---------------------------------------------------------------------------------------------

/// Encodes a stored ECDSA share: magic, member count (u16), member ids (u16 each), cggmp24's key
/// share as JSON. Secret.
pub fn encode_share<E: EcdsaCurve>(key: &EcdsaKey<E>) -> Result<SecretBytes, String>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let json = Zeroizing::new(serde_json::to_vec(&key.share).map_err(|e| e.to_string())?);
    let count = u16::try_from(key.parties.len()).map_err(|_| "too many members".to_string())?;
    let mut out = Vec::with_capacity(10 + 2 * key.parties.len() + json.len());
    out.extend_from_slice(SHARE_MAGIC);
    out.extend_from_slice(&count.to_be_bytes());
    for p in &key.parties {
        out.extend_from_slice(&p.get().to_be_bytes());
    }
    out.extend_from_slice(&json);
    Ok(SecretBytes::new(out))
}

/// The members of a stored share (cheap: no JSON), if the bytes have the stored-share layout.
pub fn share_parties(bytes: &[u8]) -> Option<Vec<ParticipantId>> {
    split_share(bytes).map(|(p, _)| p)
}

fn split_share(bytes: &[u8]) -> Option<(Vec<ParticipantId>, &[u8])> {
    let rest = bytes.strip_prefix(SHARE_MAGIC.as_slice())?;
    let (count, rest) = rest.split_first_chunk::<2>()?;
    let count = usize::from(u16::from_be_bytes(*count));
    if rest.len() < 2 * count {
        return None;
    }
    let (ids, json) = rest.split_at(2 * count);
    let parties: Vec<ParticipantId> = ids
        .chunks_exact(2)
        .map(|c| ParticipantId::new(u16::from_be_bytes([c[0], c[1]])))
        .collect::<Option<_>>()?;
    // Strictly increasing: the index order every member derives from the id set.
    if parties.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    Some((parties, json))
}

/// Decodes a stored share; cggmp24 validates the key share while decoding (the secret share
/// matches its public share, the public shares lie on one polynomial, Paillier key sizes).
pub fn decode_share<E: EcdsaCurve>(bytes: &[u8]) -> Result<EcdsaKey<E>, StartError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let bad = StartError::BadKeyMaterial;
    let (parties, json) = split_share(bytes).ok_or(bad("stored ECDSA share: bad layout"))?;
    let share: KeyShare<E, Level> =
        serde_json::from_slice(json).map_err(|_| bad("stored ECDSA share does not decode"))?;
    if share.core.public_shares.len() != parties.len() {
        return Err(bad("stored ECDSA share: member count differs"));
    }
    Ok(EcdsaKey { share, parties })
}

/// The FROST key package (canonical encoding) inside a stored ECDSA share: the share as the
/// resharing protocol and the simulator's checkers see it.
pub fn frost_key_package<E: EcdsaCurve>(bytes: &[u8]) -> Result<SecretBytes, StartError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let key = decode_share::<E>(bytes)?;
    let (kp, _) = frost_key_of::<E>(&key.share.core, &key.parties)
        .map_err(|_| StartError::BadKeyMaterial("stored ECDSA share has no FROST form"))?;
    canonical::encode(&kp)
        .map(SecretBytes::new)
        .map_err(|_| StartError::BadKeyMaterial("could not encode the FROST key package"))
}

/// The fingerprints ([`crate::ecdsa::primes::modulus_fingerprint`]) of every member's Paillier
/// modulus `N_j` in a stored share of either curve, in member order: public (aux info publishes
/// the moduli). What shows that a refresh gave every member a new Paillier key.
pub fn paillier_fingerprints(
    scheme: crate::ecdsa::EcdsaScheme,
    share: &[u8],
) -> Option<Vec<[u8; 32]>> {
    fn of<E: EcdsaCurve>(share: &[u8]) -> Option<Vec<[u8; 32]>>
    where
        NonZero<Point<E>>: AlwaysHasAffineX<E>,
    {
        let key = decode_share::<E>(share).ok()?;
        Some(
            key.share
                .aux
                .N
                .iter()
                .map(crate::ecdsa::primes::modulus_fingerprint)
                .collect(),
        )
    }
    match scheme {
        crate::ecdsa::EcdsaScheme::Secp256k1 => of::<cggmp24::supported_curves::Secp256k1>(share),
        crate::ecdsa::EcdsaScheme::P256 => of::<cggmp24::supported_curves::Secp256r1>(share),
    }
}

// ---------------------------------------------------------------------------------------------
// Framing shared by the runs
// ---------------------------------------------------------------------------------------------

fn wrap(kind: u8, inner: &Payload) -> Payload {
    Payload::new(Frame::new(kind, vec![inner.as_bytes().to_vec()]).encode())
}

fn decode_outer(payload: &[u8]) -> Result<Frame, Rejection> {
    Frame::decode(payload).map_err(Rejection::BadFrame)
}

fn single_field(frame: &Frame) -> Result<&[u8], Rejection> {
    match frame.fields.as_slice() {
        [inner] => Ok(inner),
        other => Err(Rejection::WrongCount {
            field: "inner message",
            expected: 1,
            actual: other.len(),
        }),
    }
}

fn failure(kind: FailureKind, culprits: BTreeSet<ParticipantId>) -> Failure {
    Failure { kind, culprits }
}

// ---------------------------------------------------------------------------------------------
// The aux stage
// ---------------------------------------------------------------------------------------------

/// What an aux stage produces for its owner.
enum AuxEvent {
    Send(ParticipantId, Payload),
    Misbehaved(ParticipantId, Rejection),
    Done(Result<EcdsaAuxOutput, Failure>),
}

enum AuxState {
    /// Waiting for the node's primes (taken from its pool, their consumed marks made durable).
    WantPrimes,
    /// Running aux info generation.
    Running(Box<EcdsaAux>),
    /// Ended (the result was emitted).
    Finished,
}

/// Fresh aux info for one key version (see the module docs): waits for one set of this node's
/// primes, then runs cggmp24's aux info generation among the members.
struct AuxStage {
    me: ParticipantId,
    parties: BTreeSet<ParticipantId>,
    session_id: Vec<u8>,
    round_timeout: Duration,
    seed: Seed,
    early: Vec<(ParticipantId, Vec<u8>)>,
    state: AuxState,
    events: VecDeque<AuxEvent>,
}

impl AuxStage {
    fn start(config: AuxConfig, seed: Seed) -> AuxStage {
        AuxStage {
            me: config.me,
            parties: config.participants,
            session_id: config.session_id,
            round_timeout: config.round_timeout,
            seed,
            early: Vec::new(),
            state: AuxState::WantPrimes,
            events: VecDeque::new(),
        }
    }

    fn on_message(&mut self, from: ParticipantId, frame: &Frame, now: Instant) {
        if !self.parties.contains(&from) || from == self.me {
            return self
                .events
                .push_back(AuxEvent::Misbehaved(from, Rejection::NotAParticipant));
        }
        match frame.kind {
            KIND_AUX => {
                let inner = match single_field(frame) {
                    Ok(i) => i.to_vec(),
                    Err(r) => return self.events.push_back(AuxEvent::Misbehaved(from, r)),
                };
                match &mut self.state {
                    AuxState::Running(run) => {
                        run.handle_input(SessionInput::Message {
                            at: now,
                            from,
                            payload: &inner,
                        });
                        self.pump();
                    }
                    // A member that got its primes first; kept until ours are durable.
                    AuxState::WantPrimes => {
                        if self.early.len() < MAX_EARLY {
                            self.early.push((from, inner));
                        }
                    }
                    AuxState::Finished => {}
                }
            }
            kind => self.events.push_back(AuxEvent::Misbehaved(
                from,
                Rejection::UnexpectedKind { kind },
            )),
        }
    }

    fn give_primes(&mut self, primes: Option<SafePrimes>, now: Instant) {
        if !matches!(self.state, AuxState::WantPrimes) {
            return;
        }
        let Some(primes) = primes else {
            self.state = AuxState::Finished;
            return self
                .events
                .push_back(AuxEvent::Done(Err(library_failure(&format!(
                    "participant {} has no unused safe primes for new aux info (they are \
                 generated in the background, minutes of CPU per set, and each set serves one \
                 aux run only); retry later",
                    self.me
                )))));
        };
        let config = AuxConfig {
            me: self.me,
            participants: self.parties.clone(),
            session_id: self.session_id.clone(),
            round_timeout: self.round_timeout,
        };
        match EcdsaAux::new(config, primes, &self.seed, now) {
            Ok(run) => {
                self.state = AuxState::Running(Box::new(run));
                for (from, payload) in std::mem::take(&mut self.early) {
                    if let AuxState::Running(run) = &mut self.state {
                        run.handle_input(SessionInput::Message {
                            at: now,
                            from,
                            payload: &payload,
                        });
                    }
                }
                self.pump();
            }
            Err(e) => {
                self.state = AuxState::Finished;
                self.events
                    .push_back(AuxEvent::Done(Err(library_failure(&format!(
                        "aux info: {e:?}"
                    )))));
            }
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if let AuxState::Running(run) = &mut self.state {
            run.handle_input(SessionInput::Timeout { now });
            self.pump();
        }
    }

    fn pump(&mut self) {
        let AuxState::Running(run) = &mut self.state else {
            return;
        };
        let mut finished = false;
        while let Some(out) = run.poll_output() {
            match out {
                SessionOutput::Send { to, payload } => self
                    .events
                    .push_back(AuxEvent::Send(to, wrap(KIND_AUX, &payload))),
                SessionOutput::Misbehaved { from, reason } => {
                    self.events.push_back(AuxEvent::Misbehaved(from, reason))
                }
                SessionOutput::Done(result) => {
                    self.events.push_back(AuxEvent::Done(result));
                    finished = true;
                }
            }
        }
        if finished {
            self.state = AuxState::Finished;
        }
    }

    fn wants_primes(&self) -> bool {
        matches!(self.state, AuxState::WantPrimes)
    }

    /// None while waiting for primes: the node answers at once (no primes: the run fails; some:
    /// as soon as their consumed marks are durable).
    fn deadline(&self) -> Option<Instant> {
        match &self.state {
            AuxState::Running(run) => run.poll_timeout().map(|(at, _)| at),
            AuxState::WantPrimes | AuxState::Finished => None,
        }
    }
}

/// Messages for a stage that has not started here yet (another member got there first).
#[derive(Default)]
struct Early(Vec<(ParticipantId, Frame)>);

impl Early {
    fn keep(&mut self, from: ParticipantId, frame: Frame) {
        if self.0.len() < MAX_EARLY {
            self.0.push((from, frame));
        }
    }
}

/// What every ECDSA run started by the node needs besides its FROST-phase configuration.
pub struct EcdsaRunParams {
    /// Unique per run and equal at every participant (the node uses the session key).
    pub session_id: Vec<u8>,
    /// Per-round deadline of the aux stage (long: its proofs take seconds of CPU per round).
    pub aux_round_timeout: Duration,
}

/// What a key generation and a reshare have in common after their FROST phase: the aux stage
/// (planned at the start, begun when the FROST phase hands over), the messages that arrive for
/// it early, the outputs, and the clock.
struct AuxTail {
    me: ParticipantId,
    now: Instant,
    plan: Option<(EcdsaRunParams, Seed)>,
    aux: Option<AuxStage>,
    early: Early,
    out: VecDeque<ErasedOutput>,
    done: bool,
}

/// How a composite run handles one peer message: its FROST phase's, or the aux stage's.
enum Routed {
    Frost(Vec<u8>),
    Handled,
}

impl AuxTail {
    fn new(me: ParticipantId, params: EcdsaRunParams, seed: &Seed, now: Instant) -> Self {
        AuxTail {
            me,
            now,
            plan: Some((params, seed.child(b"aux", b""))),
            aux: None,
            early: Early::default(),
            out: VecDeque::new(),
            done: false,
        }
    }

    /// Starts the aux stage among `parties` and replays what arrived for it early.
    fn begin(&mut self, parties: BTreeSet<ParticipantId>) -> Result<(), Failure> {
        let (params, seed) = self
            .plan
            .take()
            .ok_or_else(|| library_failure("aux stage started twice"))?;
        let config = AuxConfig {
            me: self.me,
            participants: parties,
            session_id: params.session_id,
            round_timeout: params.aux_round_timeout,
        };
        let mut stage = AuxStage::start(config, seed);
        for (from, frame) in std::mem::take(&mut self.early.0) {
            stage.on_message(from, &frame, self.now);
        }
        self.aux = Some(stage);
        Ok(())
    }

    /// Decodes a peer message; aux messages go to the stage (or wait for it if
    /// `aux_expected`), FROST-phase messages go back to the caller while `frost_running`.
    fn route(
        &mut self,
        from: ParticipantId,
        at: Instant,
        payload: &[u8],
        frost_running: bool,
        aux_expected: bool,
    ) -> Routed {
        self.now = self.now.max(at);
        let frame = match decode_outer(payload) {
            Ok(f) => f,
            Err(reason) => return self.misbehaved(from, reason),
        };
        match (frame.kind, frost_running, self.aux.as_mut()) {
            (KIND_FROST, true, _) => match single_field(&frame) {
                Ok(inner) => Routed::Frost(inner.to_vec()),
                Err(reason) => self.misbehaved(from, reason),
            },
            // A late FROST-phase message after this member moved on.
            (KIND_FROST, false, _) => Routed::Handled,
            (KIND_AUX, _, Some(aux)) => {
                aux.on_message(from, &frame, at);
                Routed::Handled
            }
            (KIND_AUX, true, None) if aux_expected => {
                self.early.keep(from, frame);
                Routed::Handled
            }
            (kind, _, _) => self.misbehaved(from, Rejection::UnexpectedKind { kind }),
        }
    }

    fn misbehaved(&mut self, from: ParticipantId, reason: Rejection) -> Routed {
        self.out
            .push_back(ErasedOutput::Misbehaved { from, reason });
        Routed::Handled
    }

    fn on_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if let Some(aux) = self.aux.as_mut() {
            aux.on_timeout(now);
        }
    }

    /// Moves the stage's messages to the outputs; the stage's result once it ends.
    fn drain(&mut self) -> Option<Result<EcdsaAuxOutput, Failure>> {
        while let Some(event) = self.aux.as_mut().and_then(|a| a.events.pop_front()) {
            match event {
                AuxEvent::Send(to, payload) => {
                    self.out.push_back(ErasedOutput::Send { to, payload })
                }
                AuxEvent::Misbehaved(from, reason) => self
                    .out
                    .push_back(ErasedOutput::Misbehaved { from, reason }),
                AuxEvent::Done(result) => {
                    self.aux = None;
                    return Some(result);
                }
            }
        }
        None
    }

    /// Ends the run with `result`.
    fn end(&mut self, result: ErasedOutput) {
        self.done = true;
        self.aux = None;
        self.out.push_back(result);
    }

    fn wants_primes(&self) -> bool {
        !self.done && self.aux.as_ref().is_some_and(AuxStage::wants_primes)
    }

    fn give_primes(&mut self, primes: Option<SafePrimes>) {
        if let Some(aux) = self.aux.as_mut() {
            aux.give_primes(primes, self.now);
        }
    }
}

/// Forwards a FROST-phase session's messages to the outputs, wrapped; its result, if it ended.
fn drain_frost<S: Session>(
    frost: &mut S,
    out: &mut VecDeque<ErasedOutput>,
) -> Option<Result<S::Output, Failure>> {
    while let Some(o) = frost.poll_output() {
        match o {
            SessionOutput::Send { to, payload } => out.push_back(ErasedOutput::Send {
                to,
                payload: wrap(KIND_FROST, &payload),
            }),
            SessionOutput::Misbehaved { from, reason } => {
                out.push_back(ErasedOutput::Misbehaved { from, reason })
            }
            SessionOutput::Done(result) => return Some(result),
        }
    }
    None
}

/// The `ErasedSession` methods a key generation and a reshare share: both hold `frost` (the
/// FROST phase while it runs) and `tail`, and implement `pump` and `aux_expected`.
macro_rules! two_phase_session {
    ($ty:ident) => {
        impl<E: EcdsaCurve> ErasedSession for $ty<E>
        where
            NonZero<Point<E>>: AlwaysHasAffineX<E>,
            Point<E>: HasAffineX<E>,
        {
            fn handle_input(&mut self, input: SessionInput<'_>) {
                if self.tail.done {
                    return;
                }
                match input {
                    SessionInput::Message { at, from, payload } => {
                        let expected = self.aux_expected();
                        let running = self.frost.is_some();
                        if let Routed::Frost(inner) =
                            self.tail.route(from, at, payload, running, expected)
                        {
                            if let Some(frost) = self.frost.as_mut() {
                                let payload = inner.as_slice();
                                Session::handle_input(
                                    frost,
                                    SessionInput::Message { at, from, payload },
                                );
                            }
                        }
                    }
                    SessionInput::Timeout { now } => {
                        if let Some(frost) = self.frost.as_mut() {
                            Session::handle_input(frost, SessionInput::Timeout { now });
                        }
                        self.tail.on_timeout(now);
                    }
                }
                self.pump();
            }

            fn poll_output(&mut self) -> Option<ErasedOutput> {
                self.tail.out.pop_front()
            }

            fn deadline(&self) -> Option<Instant> {
                if self.tail.done {
                    return None;
                }
                match (&self.frost, &self.tail.aux) {
                    (Some(frost), _) => frost.poll_timeout().map(|(at, _)| at),
                    (None, Some(aux)) => aux.deadline(),
                    (None, None) => None,
                }
            }

            fn wants_primes(&self) -> bool {
                self.tail.wants_primes()
            }

            fn give_primes(&mut self, primes: Option<SafePrimes>) {
                self.tail.give_primes(primes);
                self.pump();
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Key generation
// ---------------------------------------------------------------------------------------------

/// An ECDSA key generation: the FROST DKG on the curve, then the aux stage.
pub struct EcdsaNodeDkg<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    participants: BTreeSet<ParticipantId>,
    frost: Option<FrostDkg<Frost<E>>>,
    /// The FROST result, waiting for the aux stage.
    keygen: Option<crate::ecdsa::reshare::FrostKey<E>>,
    tail: AuxTail,
}

impl<E: EcdsaCurve> EcdsaNodeDkg<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    /// Starts the FROST phase.
    pub fn new(
        config: DkgConfig,
        params: EcdsaRunParams,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, StartError> {
        let tail = AuxTail::new(config.me, params, seed, now);
        let participants = config.participants.clone();
        let frost = FrostDkg::<Frost<E>>::new(config, &seed.child(b"frost-dkg", b""), now)
            .map_err(StartError::Config)?;
        let mut run = EcdsaNodeDkg {
            participants,
            frost: Some(frost),
            keygen: None,
            tail,
        };
        run.pump();
        Ok(run)
    }

    fn aux_expected(&self) -> bool {
        true
    }

    fn pump(&mut self) {
        let frost_result = self
            .frost
            .as_mut()
            .and_then(|f| drain_frost(f, &mut self.tail.out));
        match frost_result {
            None => {}
            Some(Err(f)) => {
                self.frost = None;
                return self.tail.end(ErasedOutput::DkgDone(Err(f)));
            }
            Some(Ok(result)) => {
                self.frost = None;
                self.keygen = Some((result.key_package, result.public_key_package));
                if let Err(f) = self.tail.begin(self.participants.clone()) {
                    return self.tail.end(ErasedOutput::DkgDone(Err(f)));
                }
            }
        }
        match self.tail.drain() {
            None => {}
            Some(Err(f)) => self.tail.end(ErasedOutput::DkgDone(Err(f))),
            Some(Ok(aux)) => {
                let done = self.finish(aux);
                self.tail.end(ErasedOutput::DkgDone(done));
            }
        }
    }

    fn finish(&mut self, aux: EcdsaAuxOutput) -> Result<(SecretBytes, Vec<u8>), Failure> {
        let (kp, pkp) = self
            .keygen
            .take()
            .ok_or_else(|| library_failure("aux info without a key"))?;
        let key = keygen_output_of::<E>(&kp, &pkp)
            .and_then(|k| EcdsaKey::from_parts(k, aux))
            .map_err(|e| library_failure(&e.to_string()))?;
        let share = encode_share(&key).map_err(|e| library_failure(&e))?;
        let pkp = canonical::encode(&pkp)
            .map_err(|_| library_failure("could not encode the public key package"))?;
        Ok((share, pkp))
    }
}

two_phase_session!(EcdsaNodeDkg);

// ---------------------------------------------------------------------------------------------
// Resharing
// ---------------------------------------------------------------------------------------------

/// An ECDSA reshare: the FROST resharing session on the curve, then (at new members) the aux
/// stage among the new members.
pub struct EcdsaNodeReshare<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    new_members: BTreeSet<ParticipantId>,
    frost: Option<FrostReshare<Frost<E>>>,
    member: Option<crate::reshare::MemberOutput<Frost<E>>>,
    tail: AuxTail,
}

impl<E: EcdsaCurve> EcdsaNodeReshare<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    /// Starts the FROST phase. `old_share` (a stored ECDSA share) is required of a dealer;
    /// `old_public_key_package` is the FROST public key package of the version being reshared.
    pub fn new(
        config: ReshareConfig,
        old_share: Option<&SecretBytes>,
        old_public_key_package: &[u8],
        params: EcdsaRunParams,
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, StartError> {
        let old = old_share
            .map(|s| {
                let key = decode_share::<E>(s.expose())?;
                frost_key_of::<E>(&key.share.core, &key.parties)
                    .map(|(kp, _)| kp)
                    .map_err(|_| StartError::BadKeyMaterial("stored ECDSA share has no FROST form"))
            })
            .transpose()?;
        let pkp = canonical::decode::<PublicKeyPackage<Frost<E>>>(
            old_public_key_package,
            None,
            "public key package",
        )
        .map_err(|_| StartError::BadKeyMaterial("public key package does not decode"))?;
        let tail = AuxTail::new(config.me, params, seed, now);
        let new_members = config.new_members.clone();
        let frost = FrostReshare::<Frost<E>>::new(
            config,
            old.as_ref(),
            pkp,
            &seed.child(b"frost-reshare", b""),
            now,
        )
        .map_err(StartError::Config)?;
        let mut run = EcdsaNodeReshare {
            new_members,
            frost: Some(frost),
            member: None,
            tail,
        };
        run.pump();
        Ok(run)
    }

    /// A dealer that is not a new member takes no part in the aux stage.
    fn aux_expected(&self) -> bool {
        self.new_members.contains(&self.tail.me)
    }

    fn pump(&mut self) {
        let frost_result = self
            .frost
            .as_mut()
            .and_then(|f| drain_frost(f, &mut self.tail.out));
        match frost_result {
            None => {}
            Some(Err(f)) => {
                self.frost = None;
                return self.tail.end(ErasedOutput::ReshareDone(Err(f)));
            }
            Some(Ok(ReshareOutput::Dealt { .. })) => {
                self.frost = None;
                return self.tail.end(ErasedOutput::ReshareDone(Ok(None)));
            }
            Some(Ok(ReshareOutput::Member(m))) => {
                self.frost = None;
                self.member = Some(*m);
                if let Err(f) = self.tail.begin(self.new_members.clone()) {
                    return self.tail.end(ErasedOutput::ReshareDone(Err(f)));
                }
            }
        }
        match self.tail.drain() {
            None => {}
            Some(Err(f)) => self.tail.end(ErasedOutput::ReshareDone(Err(f))),
            Some(Ok(aux)) => {
                let done = self.finish(aux).map(Some);
                self.tail.end(ErasedOutput::ReshareDone(done));
            }
        }
    }

    fn finish(&mut self, aux: EcdsaAuxOutput) -> Result<ReshareShare, Failure> {
        let m = self
            .member
            .take()
            .ok_or_else(|| library_failure("aux info without a reshared key"))?;
        let key = keygen_output_of::<E>(&m.key_package, &m.public_key_package)
            .and_then(|k| EcdsaKey::from_parts(k, aux))
            .map_err(|e| library_failure(&e.to_string()))?;
        let share = encode_share(&key).map_err(|e| library_failure(&e))?;
        let public_key_package = canonical::encode(&m.public_key_package)
            .map_err(|_| library_failure("could not encode the public key package"))?;
        Ok(ReshareShare {
            version: m.version,
            share,
            public_key_package,
            confirmation_digest: m.confirmation_digest,
        })
    }
}

two_phase_session!(EcdsaNodeReshare);

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// The signature bytes the node returns: secp256k1 `r ‖ s ‖ v` (65 bytes, `v` the recovery id
/// 0 or 1), P-256 `r ‖ s` (64 bytes); `s` low.
fn signature_bytes(sig: &EcdsaSignature) -> Option<Vec<u8>> {
    match sig.scheme {
        crate::ecdsa::EcdsaScheme::Secp256k1 => sig.to_recoverable().map(|b| b.to_vec()),
        crate::ecdsa::EcdsaScheme::P256 => Some(sig.to_compact().to_vec()),
    }
}

/// Checks a signature the coordinator received: it verifies under `public_key` for the
/// SHA-256 hash of `message`, `s` is low, and (secp256k1) the recovery id recovers the key.
fn check_signature<E: EcdsaCurve>(public_key: &Point<E>, message: &[u8], bytes: &[u8]) -> bool
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let expected_len = match E::SCHEME {
        crate::ecdsa::EcdsaScheme::Secp256k1 => 65,
        crate::ecdsa::EcdsaScheme::P256 => 64,
    };
    if bytes.len() != expected_len {
        return false;
    }
    let scalar = |b: &[u8]| {
        Scalar::<E>::from_be_bytes(b)
            .ok()
            .and_then(NonZero::from_scalar)
    };
    let (Some(r), Some(s)) = (scalar(&bytes[..32]), scalar(&bytes[32..64])) else {
        return false;
    };
    let sig = cggmp24::Signature { r, s };
    let data = cggmp24::DataToSign::<E>::digest::<Sha256>(message);
    if sig.verify(public_key, &data).is_err() {
        return false;
    }
    // Re-derive the canonical form (low-S, recovery id) and require exactly the bytes received.
    EcdsaSignature::from_cggmp(
        &sig,
        crate::ecdsa::Recovery::Search {
            public_key,
            z: &cggmp24::signing::AnyDataToSign::to_scalar(&data),
        },
    )
    .and_then(|c| signature_bytes(&c))
    .is_some_and(|canonical| canonical == bytes)
}

/// The frame a signer sends the coordinator and the other signers of signing run it cannot take
/// part in (it no longer holds the presignature the coordinator named: a restart empties the
/// pool). It names no one; the coordinator retries with the interactive protocol.
pub fn abort_frame() -> Vec<u8> {
    Frame::new(KIND_SIGN_ABORT, Vec::new()).encode()
}

/// One message's signing run at a signer.
type SignRun = Box<dyn Session<Output = EcdsaSignature>>;

/// A node's part of signing a batch with an ECDSA key: one run per message at each signer, either
/// cggmp24's full interactive protocol ([`EcdsaNodeSign::new`]) or one online round from pooled
/// presignatures ([`EcdsaNodeSign::presigned`]); the coordinator (signer or not) collects the
/// verified signatures. Both kinds of run exchange the same outer frames.
pub struct EcdsaNodeSign<E: EcdsaCurve>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    me: ParticipantId,
    coordinator: ParticipantId,
    signers: BTreeSet<ParticipantId>,
    messages: Vec<Vec<u8>>,
    public_key: Point<E>,
    /// One run per message: interactive (presigning and signing) or online from a presignature.
    runs: Vec<Option<SignRun>>,
    signatures: Vec<Option<Vec<u8>>>,
    deadline: Instant,
    out: VecDeque<ErasedOutput>,
    done: bool,
}

impl<E: EcdsaCurve> EcdsaNodeSign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    /// Starts signing. `share` (a stored ECDSA share) is required of a signer; a coordinator
    /// that does not sign needs the FROST `public_key_package` of the key (for the group key).
    pub fn new(
        config: SignConfig,
        share: Option<&SecretBytes>,
        public_key_package: Option<&[u8]>,
        session_id: &[u8],
        seed: &Seed,
        now: Instant,
    ) -> Result<Self, StartError> {
        let cfg_err = StartError::Config;
        if config.messages.is_empty() || config.messages.len() > crate::frost::sign::MAX_BATCH {
            return Err(cfg_err(crate::frost::ConfigError::BadBatchSize(
                config.messages.len(),
            )));
        }
        if let Some(m) = config
            .messages
            .iter()
            .find(|m| m.len() > crate::ecdsa::online::MAX_MESSAGE_BYTES)
        {
            return Err(cfg_err(crate::frost::ConfigError::MessageTooLarge(m.len())));
        }
        let signs = config.signers.contains(&config.me);
        let key = match (signs, share) {
            (true, Some(s)) => Some(decode_share::<E>(s.expose())?),
            (true, None) => return Err(StartError::BadKeyMaterial("a signer needs its share")),
            (false, _) => None,
        };
        let public_key = match (&key, public_key_package) {
            (Some(k), _) => *k.share.core.shared_public_key,
            (None, Some(pkp)) => {
                let pkp = canonical::decode::<PublicKeyPackage<Frost<E>>>(pkp, None, "pkp")
                    .map_err(|_| {
                        StartError::BadKeyMaterial("public key package does not decode")
                    })?;
                let bytes = pkp
                    .verifying_key()
                    .serialize()
                    .map_err(|_| StartError::BadKeyMaterial("group key"))?;
                Point::<E>::from_bytes(&bytes)
                    .map_err(|_| StartError::BadKeyMaterial("group key"))?
            }
            (None, None) => {
                return Err(StartError::BadKeyMaterial(
                    "a coordinator that does not sign needs the public key package",
                ))
            }
        };
        let mut runs = Vec::new();
        if let Some(key) = &key {
            for (i, m) in config.messages.iter().enumerate() {
                let prehash: [u8; 32] = Sha256::digest(m).into();
                let mut id = session_id.to_vec();
                id.extend_from_slice(&(i as u64).to_be_bytes());
                let signers_config = SignersConfig {
                    me: config.me,
                    signers: config.signers.clone(),
                    session_id: id,
                    round_timeout: config.round_timeout,
                };
                let run_seed = seed.child(b"ecdsa-sign", &(i as u64).to_be_bytes());
                let run: SignRun = Box::new(
                    EcdsaInteractiveSign::<E>::new(signers_config, key, prehash, &run_seed, now)
                        .map_err(cfg_err)?,
                );
                runs.push(Some(run));
            }
        }
        Ok(Self::assemble(config, public_key, runs, now))
    }

    /// Starts a signer's online round from presignatures it has already spent (the spend marks
    /// are durable: the caller got them acknowledged), one per message in order. The runs' first
    /// outputs are this signer's partial signatures.
    pub fn presigned(
        config: SignConfig,
        public_key: Point<E>,
        runs: Vec<EcdsaSign<E>>,
        now: Instant,
    ) -> Result<Self, StartError> {
        if runs.len() != config.messages.len() || !config.signers.contains(&config.me) {
            return Err(StartError::BadKeyMaterial(
                "one presignature per message, spent by a signer",
            ));
        }
        let runs = runs
            .into_iter()
            .map(|r| Some(Box::new(r) as SignRun))
            .collect();
        Ok(Self::assemble(config, public_key, runs, now))
    }

    fn assemble(
        config: SignConfig,
        public_key: Point<E>,
        runs: Vec<Option<SignRun>>,
        now: Instant,
    ) -> Self {
        let n = config.messages.len();
        let mut run = EcdsaNodeSign {
            me: config.me,
            coordinator: config.coordinator,
            signers: config.signers,
            messages: config.messages,
            public_key,
            runs,
            signatures: vec![None; n],
            deadline: now.saturating_add(config.round_timeout.saturating_mul(SIGN_ROUNDS)),
            out: VecDeque::new(),
            done: false,
        };
        run.pump();
        run
    }

    fn signs(&self) -> bool {
        self.signers.contains(&self.me)
    }

    fn end(&mut self, result: Result<Option<Vec<Vec<u8>>>, Failure>) {
        self.done = true;
        self.runs.clear();
        self.out.push_back(ErasedOutput::SignDone(result));
    }

    /// A signer's failure: tell a coordinator that does not sign (a signing one sees the
    /// failure in its own run), then end.
    fn abort(&mut self, f: Failure) {
        if !self.signers.contains(&self.coordinator) {
            let fields = f
                .culprits
                .iter()
                .map(|p| p.get().to_be_bytes().to_vec())
                .collect();
            self.out.push_back(ErasedOutput::Send {
                to: self.coordinator,
                payload: Payload::new(Frame::new(KIND_SIGN_ABORT, fields).encode()),
            });
        }
        self.end(Err(f));
    }

    fn pump(&mut self) {
        let mut failed = None;
        for (i, slot) in self.runs.iter_mut().enumerate() {
            let Some(run) = slot.as_mut() else { continue };
            while let Some(o) = run.poll_output() {
                match o {
                    SessionOutput::Send { to, payload } => {
                        let frame = Frame::new(
                            KIND_SIGN_RUN,
                            vec![
                                (i as u16).to_be_bytes().to_vec(),
                                payload.as_bytes().to_vec(),
                            ],
                        );
                        self.out.push_back(ErasedOutput::Send {
                            to,
                            payload: Payload::new(frame.encode()),
                        });
                    }
                    SessionOutput::Misbehaved { from, reason } => self
                        .out
                        .push_back(ErasedOutput::Misbehaved { from, reason }),
                    SessionOutput::Done(Ok(sig)) => {
                        *slot = None;
                        match signature_bytes(&sig) {
                            Some(b) => self.signatures[i] = Some(b),
                            None => {
                                failed = Some(library_failure(
                                    "the signature has no recovery id (nonce x above the order)",
                                ))
                            }
                        }
                        break;
                    }
                    SessionOutput::Done(Err(f)) => {
                        *slot = None;
                        failed = Some(f);
                        break;
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(f) = failed {
            return self.abort(f);
        }
        if self.signs() && !self.done && self.signatures.iter().all(Option::is_some) {
            let sigs: Vec<Vec<u8>> = self.signatures.iter().flatten().cloned().collect();
            if self.coordinator == self.me {
                self.end(Ok(Some(sigs)));
            } else {
                self.out.push_back(ErasedOutput::Send {
                    to: self.coordinator,
                    payload: Payload::new(Frame::new(KIND_SIGN_RESULT, sigs).encode()),
                });
                self.end(Ok(None));
            }
        }
    }

    fn on_result(&mut self, from: ParticipantId, frame: &Frame) {
        if self.coordinator != self.me || self.signs() {
            // A coordinating signer has its own signatures; a non-coordinator gets no results.
            return self.out.push_back(ErasedOutput::Misbehaved {
                from,
                reason: Rejection::UnexpectedKind { kind: frame.kind },
            });
        }
        if frame.fields.len() != self.messages.len() {
            return self.out.push_back(ErasedOutput::Misbehaved {
                from,
                reason: Rejection::WrongCount {
                    field: "signatures",
                    expected: self.messages.len(),
                    actual: frame.fields.len(),
                },
            });
        }
        let ok = frame
            .fields
            .iter()
            .zip(&self.messages)
            .all(|(sig, m)| check_signature::<E>(&self.public_key, m, sig));
        if !ok {
            // Every signer ends with the same signatures; a wrong one is this sender's fault.
            self.out.push_back(ErasedOutput::Misbehaved {
                from,
                reason: Rejection::Inconsistent {
                    what: "a signature does not verify under the group key",
                },
            });
            return self.end(Err(failure(
                FailureKind::InvalidSignatureShare,
                BTreeSet::from([from]),
            )));
        }
        self.end(Ok(Some(frame.fields.clone())));
    }
}

impl<E: EcdsaCurve> ErasedSession for EcdsaNodeSign<E>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    fn handle_input(&mut self, input: SessionInput<'_>) {
        if self.done {
            return;
        }
        match input {
            SessionInput::Message { at, from, payload } => {
                if !self.signers.contains(&from) {
                    return self.out.push_back(ErasedOutput::Misbehaved {
                        from,
                        reason: Rejection::NotAParticipant,
                    });
                }
                let frame = match decode_outer(payload) {
                    Ok(f) => f,
                    Err(reason) => {
                        return self
                            .out
                            .push_back(ErasedOutput::Misbehaved { from, reason })
                    }
                };
                match frame.kind {
                    KIND_SIGN_RUN => {
                        let [index, inner] = frame.fields.as_slice() else {
                            return self.out.push_back(ErasedOutput::Misbehaved {
                                from,
                                reason: Rejection::WrongCount {
                                    field: "signing run message",
                                    expected: 2,
                                    actual: frame.fields.len(),
                                },
                            });
                        };
                        let Ok(index) = <[u8; 2]>::try_from(index.as_slice()) else {
                            return self.out.push_back(ErasedOutput::Misbehaved {
                                from,
                                reason: Rejection::WrongSize {
                                    field: "run index",
                                    expected: 2,
                                    actual: index.len(),
                                },
                            });
                        };
                        let index = usize::from(u16::from_be_bytes(index));
                        match self.runs.get_mut(index) {
                            Some(Some(run)) => run.handle_input(SessionInput::Message {
                                at,
                                from,
                                payload: inner,
                            }),
                            Some(None) => {}
                            None => self.out.push_back(ErasedOutput::Misbehaved {
                                from,
                                reason: Rejection::Inconsistent {
                                    what: "signing run index out of range",
                                },
                            }),
                        }
                    }
                    KIND_SIGN_RESULT => self.on_result(from, &frame),
                    // A signer that cannot take part (a coordinator that does not sign hears of
                    // every failure this way; any signer may give up on a presignature it no
                    // longer holds, see `abort_frame`).
                    KIND_SIGN_ABORT => {
                        let culprits = frame
                            .fields
                            .iter()
                            .filter_map(|f| <[u8; 2]>::try_from(f.as_slice()).ok())
                            .filter_map(|b| ParticipantId::new(u16::from_be_bytes(b)))
                            .filter(|p| self.signers.contains(p))
                            .collect();
                        return self.end(Err(failure(
                            FailureKind::PeerAborted { by: from },
                            culprits,
                        )));
                    }
                    kind => self.out.push_back(ErasedOutput::Misbehaved {
                        from,
                        reason: Rejection::UnexpectedKind { kind },
                    }),
                }
            }
            SessionInput::Timeout { now } => {
                for run in self.runs.iter_mut().flatten() {
                    run.handle_input(SessionInput::Timeout { now });
                }
                if !self.signs() && now >= self.deadline {
                    let silent = self.signers.clone();
                    return self.end(Err(failure(FailureKind::Timeout { round: 1 }, silent)));
                }
            }
        }
        self.pump();
    }

    fn poll_output(&mut self) -> Option<ErasedOutput> {
        self.out.pop_front()
    }

    fn deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        if !self.signs() {
            return Some(self.deadline);
        }
        self.runs
            .iter()
            .flatten()
            .filter_map(|r| r.poll_timeout().map(|(at, _)| at))
            .min()
    }
}
