//! The one interface every protocol run implements, and what flows in and out of it.
//!
//! A session is one run of one protocol (a DKG, a signing, a reshare) among an agreed set of
//! participants. It is driven like every other core state machine:
//!
//! ```text
//! session.handle_input(SessionInput::Message { at, from, payload })   // from an authenticated peer
//! session.handle_input(SessionInput::Timeout { now })
//! while let Some(out) = session.poll_output() { .. }                  // Send / Misbehaved / Done
//! session.poll_timeout()                                              // next deadline, if running
//! ```
//!
//! `from` must be the peer's authenticated identity (from its mTLS certificate), never a field
//! inside the payload. Hostile input never panics and never changes the session's state: it is
//! validated completely first and, if rejected, reported as [`SessionOutput::Misbehaved`].
//! A run that cannot finish ends with [`SessionOutput::Done`] carrying a [`Failure`] that names
//! the culprits wherever the protocol can identify them.

mod frame;
pub mod local;
mod payload;

pub use frame::{Frame, FrameError, MAX_FIELDS, MAX_FRAME_BYTES};
pub use payload::Payload;

use std::collections::BTreeSet;
use std::fmt;

use crate::ids::ParticipantId;
use crate::time::Instant;

/// An input to a session.
#[derive(Debug)]
pub enum SessionInput<'a> {
    /// A message from an authenticated peer.
    Message {
        /// When it arrived.
        at: Instant,
        /// The authenticated sender.
        from: ParticipantId,
        /// The raw bytes, not yet trusted.
        payload: &'a [u8],
    },
    /// The driver's clock reached (or passed) a deadline from `poll_timeout`.
    Timeout {
        /// The current time.
        now: Instant,
    },
}

/// What a session asks its driver to do or tells it.
#[derive(Debug)]
pub enum SessionOutput<O> {
    /// Send `payload` to `to` over the authenticated, confidential peer channel.
    Send {
        /// The recipient.
        to: ParticipantId,
        /// The message; may carry a secret share, so it is wiped on drop and never printed.
        payload: Payload,
    },
    /// A peer sent something the session refused; it was dropped and nothing changed.
    Misbehaved {
        /// The authenticated sender.
        from: ParticipantId,
        /// Why it was refused.
        reason: Rejection,
    },
    /// The session ended; no further output follows.
    Done(Result<O, Failure>),
}

/// Why an input from a peer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The sender is not one of this run's participants (or is not allowed to send this kind).
    NotAParticipant,
    /// The sender already sent a message of this kind in this round; only the first counts.
    AlreadyReceived,
    /// A message kind the session does not expect at all in its role or protocol.
    UnexpectedKind {
        /// The kind byte received.
        kind: u8,
    },
    /// The message belongs to a round this session has already finished.
    StaleRound,
    /// The framing is broken (length fields, trailing bytes, size limits).
    BadFrame(FrameError),
    /// The message is larger than the bound for its protocol phase; checked before decoding.
    TooLarge {
        /// The bound.
        max: usize,
        /// The size received.
        actual: usize,
    },
    /// A field has the wrong size; checked before any decoding.
    WrongSize {
        /// Which field.
        field: &'static str,
        /// The exact size expected.
        expected: usize,
        /// The size received.
        actual: usize,
    },
    /// A field's count is wrong (e.g. commitments per signer, messages in a batch).
    WrongCount {
        /// Which field.
        field: &'static str,
        /// The exact count expected.
        expected: usize,
        /// The count received.
        actual: usize,
    },
    /// A field did not decode, or did not re-encode to the same bytes (non-canonical).
    Malformed {
        /// Which field.
        field: &'static str,
    },
    /// The content contradicts what the session already knows (e.g. a signing package that
    /// does not contain this signer's own commitment, or signs a different message).
    Inconsistent {
        /// What did not match.
        what: &'static str,
    },
    /// A signing request arrived after this signer's nonces were spent; answering it would
    /// sign twice with one nonce and leak the key share.
    NoncesAlreadyUsed,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotAParticipant => f.write_str("sender is not a participant of this run"),
            Rejection::AlreadyReceived => f.write_str("sender already sent this round's message"),
            Rejection::UnexpectedKind { kind } => write!(f, "unexpected message kind {kind}"),
            Rejection::StaleRound => f.write_str("message for a round already finished"),
            Rejection::BadFrame(e) => write!(f, "bad framing: {e}"),
            Rejection::TooLarge { max, actual } => {
                write!(f, "{actual} bytes exceeds this phase's {max}-byte limit")
            }
            Rejection::WrongSize {
                field,
                expected,
                actual,
            } => write!(f, "{field}: expected {expected} bytes, got {actual}"),
            Rejection::WrongCount {
                field,
                expected,
                actual,
            } => write!(f, "{field}: expected {expected} entries, got {actual}"),
            Rejection::Malformed { field } => write!(f, "{field}: malformed or non-canonical"),
            Rejection::Inconsistent { what } => write!(f, "inconsistent: {what}"),
            Rejection::NoncesAlreadyUsed => f.write_str("signing nonces already used"),
        }
    }
}

/// Why a session ended without a result, and who is to blame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The participants the protocol identifies as responsible (for a timeout: exactly the
    /// silent ones). Empty when the fault cannot be attributed.
    pub culprits: BTreeSet<ParticipantId>,
}

/// The kinds of session failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A round's deadline passed; the culprits are the participants not heard from in it.
    Timeout {
        /// The round (1-based) that timed out.
        round: u8,
    },
    /// A DKG participant's proof of knowledge of its secret did not verify.
    InvalidProofOfKnowledge,
    /// A secret share did not match its sender's public commitments.
    InvalidSecretShare,
    /// Two participants saw different round-1 broadcasts from `sender`: either `sender` sent
    /// different packages to different parties, or `reporter` misreported what it received.
    /// Over authenticated but non-transferable channels these two cannot be told apart; the
    /// culprit named is `sender`, the party whose broadcast is in dispute.
    InconsistentBroadcast {
        /// Whose round-1 package is disputed.
        sender: ParticipantId,
        /// Who reported a different digest.
        reporter: ParticipantId,
    },
    /// After key generation, a participant announced a different public key package.
    ConfirmationMismatch,
    /// A signature share did not verify against its sender's verifying share.
    InvalidSignatureShare,
    /// A reshare ended with fewer qualified dealers than the old threshold; the culprits are
    /// the excluded dealers (see the reshare output's exclusions for who reported what).
    TooFewQualifiedDealers {
        /// Dealers on whom every receiver agreed.
        qualified: usize,
        /// The old threshold.
        needed: u16,
    },
    /// Another participant ended the run and said why: `culprits` are the ones it named. Its
    /// word cannot be checked (channels are not transferable); `by` is kept so that a party
    /// that keeps framing others shows up.
    PeerAborted {
        /// Who aborted.
        by: ParticipantId,
    },
    /// A reshare's combined commitment does not carry the old group key: the old public key
    /// package is inconsistent (its verifying shares do not interpolate to its key).
    GroupKeyChanged,
    /// The FROST library refused an operation for a reason not attributable to a peer.
    Library(String),
}

/// Which deadline `poll_timeout` reports, for readable traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The deadline of the given round (1-based).
    RoundDeadline(u8),
}

/// Whether a session is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for input.
    Running,
    /// `Done` has been emitted (or is queued).
    Finished,
}

/// One protocol run. See the module documentation for the driving contract.
pub trait Session {
    /// The result of a successful run.
    type Output;

    /// Feeds one input. Never panics on peer input; refusals come out as `Misbehaved`.
    fn handle_input(&mut self, input: SessionInput<'_>);

    /// The next output, or `None` once drained.
    fn poll_output(&mut self) -> Option<SessionOutput<Self::Output>>;

    /// The next deadline while running.
    fn poll_timeout(&self) -> Option<(Instant, TimerKind)>;

    /// Whether the session has ended.
    fn status(&self) -> SessionStatus;

    /// This participant's identifier.
    fn me(&self) -> ParticipantId;
}
