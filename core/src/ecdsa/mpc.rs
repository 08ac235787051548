//! A cggmp24 protocol, stepped through `round_based`'s state machine, as a [`Session`].
//!
//! The protocol itself (proofs, checks, its own echo round for reliable broadcast) is cggmp24's.
//! This layer owns what cggmp24 leaves to the transport, and refuses a bad message before the
//! protocol sees it, so one hostile message cannot end a run that honest messages can finish:
//! - only participants may speak, identified by the authenticated `from` of the input;
//! - a message must be one canonical frame, within the phase's size bound, whose one field is
//!   JSON that decodes to a protocol message and re-encodes to exactly the same bytes;
//! - one message per sender and round: a byte-identical repeat (a duplicated delivery) is
//!   ignored, a different second message is refused;
//! - its delivery type must be the round's (a broadcast round takes no p2p message and the
//!   reverse). The type of a round is learnt from our own message in that round, so a message
//!   for a round we have not reached yet waits (at most one per sender and round) until we have;
//! - each round has a deadline, counted from the moment the previous round was complete; when it
//!   passes, the run ends naming the participants not heard from in that round.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use round_based::state_machine::{ProceedResult, StateMachine};
use round_based::{Incoming, MessageDestination, MessageType, Outgoing, ProtocolMessage};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::blamed_indices;
use crate::ids::ParticipantId;
use crate::session::{
    Failure, FailureKind, Frame, Payload, Rejection, Session, SessionInput, SessionOutput,
    SessionStatus, TimerKind,
};
use crate::time::{Duration, Instant};

/// Frame kind of a message the sender broadcast to every participant.
pub const KIND_BROADCAST: u8 = 1;
/// Frame kind of a message meant for the recipient only.
pub const KIND_P2P: u8 = 2;
/// Frame kind of an abort notice: the sender's run failed; its one field lists the culprits it
/// named (u16 big-endian each). Without it, the others would wait for the aborted party and
/// name it silent when the deadline passes.
pub const KIND_ABORT: u8 = 3;

/// Why a cggmp24 protocol failed, as cggmp24 reported it.
#[derive(Clone, Debug)]
pub struct LibError {
    /// Its `Display` chain.
    pub display: String,
    /// Its `Debug` form, which is where cggmp24's `AbortBlame` entries appear.
    pub debug: String,
}

impl LibError {
    /// Captures any error.
    pub fn of<E: std::error::Error>(e: &E) -> Self {
        let mut display = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            display.push_str(": ");
            display.push_str(&s.to_string());
            source = s.source();
        }
        LibError {
            display,
            debug: format!("{e:?}"),
        }
    }

    /// An error of our own, raised inside a protocol run (e.g. an output that did not validate).
    pub fn msg(what: impl Into<String>) -> Self {
        let display = what.into();
        LibError {
            debug: display.clone(),
            display,
        }
    }
}

/// A boxed cggmp24 state machine whose output is already converted to the session's.
pub type Machine<M, O> = Box<dyn StateMachine<Output = Result<O, LibError>, Msg = M>>;

/// A message accepted from the wire, not yet handed to the protocol.
struct Accepted<M> {
    from: ParticipantId,
    kind: u8,
    round: u16,
    msg: M,
}

/// A validated input.
enum Verdict<M> {
    /// A protocol message.
    Message(Accepted<M>),
    /// The sender's run failed; these are the culprits it named.
    Abort(BTreeSet<ParticipantId>),
}

/// One participant's run of a cggmp24 protocol.
pub struct MpcSession<M, O> {
    phase: &'static str,
    me: ParticipantId,
    /// The participants in cggmp24's index order (index = position).
    parties: Vec<ParticipantId>,
    max_message_bytes: usize,
    round_timeout: Duration,
    deadline: Instant,
    machine: Option<Machine<M, O>>,
    /// Rounds in the order we first sent in them, with the frame kind we used.
    rounds: Vec<(u16, u8)>,
    /// Who we have heard from in each round (accepted, buffered or delivered).
    heard: BTreeMap<u16, BTreeSet<ParticipantId>>,
    /// Digest of the message accepted per (round, sender).
    seen: BTreeMap<(u16, ParticipantId), [u8; 32]>,
    /// Messages for rounds we have not sent in yet (at most one per sender and round).
    early: Vec<Accepted<M>>,
    /// Messages accepted and waiting for the protocol to ask for one.
    inbox: VecDeque<Incoming<M>>,
    next_id: u64,
    /// The round whose deadline is running (index into `rounds`).
    waiting_on: Option<usize>,
    outputs: VecDeque<SessionOutput<O>>,
    finished: bool,
}

impl<M, O> MpcSession<M, O>
where
    M: Serialize + DeserializeOwned + ProtocolMessage + 'static,
{
    /// Starts `machine` for `me` among `parties` (in the protocol's index order) and runs it
    /// until it first waits for a message.
    pub fn start(
        phase: &'static str,
        me: ParticipantId,
        parties: Vec<ParticipantId>,
        max_message_bytes: usize,
        round_timeout: Duration,
        machine: Machine<M, O>,
        now: Instant,
    ) -> Self {
        let mut s = MpcSession {
            phase,
            me,
            parties,
            max_message_bytes,
            round_timeout,
            deadline: now.saturating_add(round_timeout),
            machine: Some(machine),
            rounds: Vec::new(),
            heard: BTreeMap::new(),
            seen: BTreeMap::new(),
            early: Vec::new(),
            inbox: VecDeque::new(),
            next_id: 0,
            waiting_on: None,
            outputs: VecDeque::new(),
            finished: false,
        };
        s.drive(now);
        s
    }

    /// The participants in protocol index order.
    pub fn parties(&self) -> &[ParticipantId] {
        &self.parties
    }

    fn index_of(&self, p: ParticipantId) -> Option<u16> {
        self.parties
            .iter()
            .position(|x| *x == p)
            .and_then(|i| u16::try_from(i).ok())
    }

    fn others(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        let me = self.me;
        self.parties.iter().copied().filter(move |p| *p != me)
    }

    fn reject(&mut self, from: ParticipantId, reason: Rejection) {
        self.outputs
            .push_back(SessionOutput::Misbehaved { from, reason });
    }

    fn fail(&mut self, kind: FailureKind, culprits: BTreeSet<ParticipantId>) {
        if !matches!(kind, FailureKind::PeerAborted { .. }) {
            let named: Vec<u8> = culprits
                .iter()
                .flat_map(|p| p.get().to_be_bytes())
                .collect();
            let frame = Frame::new(KIND_ABORT, vec![named]).encode();
            for to in self.others().collect::<Vec<_>>() {
                self.outputs.push_back(SessionOutput::Send {
                    to,
                    payload: Payload::new(frame.clone()),
                });
            }
        }
        self.finished = true;
        self.machine = None;
        self.early.clear();
        self.inbox.clear();
        self.outputs
            .push_back(SessionOutput::Done(Err(Failure { kind, culprits })));
    }

    fn fail_lib(&mut self, e: LibError) {
        let culprits = blamed_indices(&e.debug)
            .into_iter()
            .filter_map(|i| self.parties.get(usize::from(i)).copied())
            .filter(|p| *p != self.me)
            .collect();
        let mut reason = format!("cggmp24 {}: {}", self.phase, e.display);
        reason.truncate(1024);
        self.fail(FailureKind::Library(reason), culprits);
    }

    /// Validates an abort notice; returns the culprits it names.
    fn validate_abort(&self, frame: Frame) -> Result<BTreeSet<ParticipantId>, Rejection> {
        let [named] = crate::frost::dkg::expect_fields::<1>(frame)?;
        if named.len() % 2 != 0 || named.len() > 2 * self.parties.len() {
            return Err(Rejection::WrongSize {
                field: "abort culprits",
                expected: 2 * (named.len() / 2).min(self.parties.len()),
                actual: named.len(),
            });
        }
        named
            .chunks_exact(2)
            .map(|c| {
                ParticipantId::new(u16::from_be_bytes([c[0], c[1]]))
                    .filter(|p| self.index_of(*p).is_some())
                    .ok_or(Rejection::Malformed {
                        field: "abort culprit",
                    })
            })
            .collect()
    }

    /// Validates one message completely; nothing changes unless it is accepted.
    fn validate(&self, from: ParticipantId, payload: &[u8]) -> Result<Verdict<M>, Rejection> {
        if from == self.me || self.index_of(from).is_none() {
            return Err(Rejection::NotAParticipant);
        }
        if payload.len() > self.max_message_bytes {
            return Err(Rejection::TooLarge {
                max: self.max_message_bytes,
                actual: payload.len(),
            });
        }
        let frame = Frame::decode(payload).map_err(Rejection::BadFrame)?;
        if frame.kind == KIND_ABORT {
            return self.validate_abort(frame).map(Verdict::Abort);
        }
        if !matches!(frame.kind, KIND_BROADCAST | KIND_P2P) {
            return Err(Rejection::UnexpectedKind { kind: frame.kind });
        }
        let kind = frame.kind;
        let [body] = crate::frost::dkg::expect_fields::<1>(frame)?;
        let msg = decode_canonical::<M>(&body)?;
        Ok(Verdict::Message(Accepted {
            from,
            kind,
            round: msg.round(),
            msg,
        }))
    }

    fn on_message(&mut self, at: Instant, from: ParticipantId, payload: &[u8]) {
        if self.finished {
            // Late traffic after the end changes nothing.
            return;
        }
        let accepted = match self.validate(from, payload) {
            Ok(Verdict::Message(a)) => a,
            Ok(Verdict::Abort(named)) => {
                return self.fail(FailureKind::PeerAborted { by: from }, named);
            }
            Err(reason) => return self.reject(from, reason),
        };
        let digest: [u8; 32] = Sha256::digest(payload).into();
        if let Some(previous) = self.seen.get(&(accepted.round, from)) {
            if *previous != digest {
                self.reject(from, Rejection::AlreadyReceived);
            }
            // A byte-identical repeat (a duplicated delivery) is harmless: ignore it.
            return;
        }
        if let Some(&(_, kind)) = self.rounds.iter().find(|(r, _)| *r == accepted.round) {
            if kind != accepted.kind {
                return self.reject(
                    from,
                    Rejection::Inconsistent {
                        what: "delivery type (broadcast or p2p) of its round",
                    },
                );
            }
            self.seen.insert((accepted.round, from), digest);
            self.heard.entry(accepted.round).or_default().insert(from);
            self.deliver(accepted);
        } else {
            // A round we have not reached: keep it until we know the round's delivery type.
            self.seen.insert((accepted.round, from), digest);
            self.heard.entry(accepted.round).or_default().insert(from);
            self.early.push(accepted);
        }
        self.drive(at);
    }

    fn deliver(&mut self, a: Accepted<M>) {
        let Some(sender) = self.index_of(a.from) else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        self.inbox.push_back(Incoming {
            id,
            sender,
            msg_type: if a.kind == KIND_BROADCAST {
                MessageType::Broadcast
            } else {
                MessageType::P2P
            },
            msg: a.msg,
        });
    }

    /// Runs the protocol until it waits for a message it does not have, or ends.
    fn drive(&mut self, at: Instant) {
        while !self.finished {
            let Some(machine) = self.machine.as_mut() else {
                return;
            };
            match machine.proceed() {
                ProceedResult::SendMsg(out) => self.send(out),
                ProceedResult::NeedsOneMoreMessage => {
                    let Some(m) = self.inbox.pop_front() else {
                        break;
                    };
                    if machine.received_msg(m).is_err() {
                        self.fail_lib(LibError::msg("state machine refused a message"));
                    }
                }
                ProceedResult::Yielded => {}
                ProceedResult::Output(Ok(o)) => {
                    self.finished = true;
                    self.machine = None;
                    self.early.clear();
                    self.outputs.push_back(SessionOutput::Done(Ok(o)));
                }
                ProceedResult::Output(Err(e)) => self.fail_lib(e),
                ProceedResult::Error(e) => self.fail_lib(LibError::of(&e)),
            }
        }
        self.update_deadline(at);
    }

    fn send(&mut self, out: Outgoing<M>) {
        let round = out.msg.round();
        let body = match serde_json::to_vec(&out.msg) {
            Ok(b) => b,
            Err(e) => return self.fail_lib(LibError::of(&e)),
        };
        let (kind, recipients): (u8, Vec<ParticipantId>) = match out.recipient {
            MessageDestination::AllParties => (KIND_BROADCAST, self.others().collect()),
            MessageDestination::OneParty(j) => match self.parties.get(usize::from(j)) {
                Some(p) if *p != self.me => (KIND_P2P, vec![*p]),
                _ => return self.fail_lib(LibError::msg("p2p message to an unknown party")),
            },
        };
        let frame = Frame::new(kind, vec![body]).encode();
        for to in recipients {
            self.outputs.push_back(SessionOutput::Send {
                to,
                payload: Payload::new(frame.clone()),
            });
        }
        if !self.rounds.iter().any(|(r, _)| *r == round) {
            self.rounds.push((round, kind));
            // Messages that arrived early for this round can now be checked and delivered.
            let (now_due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early)
                .into_iter()
                .partition(|a| a.round == round);
            self.early = later;
            for a in now_due {
                if a.kind == kind {
                    self.deliver(a);
                } else {
                    if let Some(h) = self.heard.get_mut(&round) {
                        h.remove(&a.from);
                    }
                    self.seen.remove(&(round, a.from));
                    self.reject(
                        a.from,
                        Rejection::Inconsistent {
                            what: "delivery type (broadcast or p2p) of its round",
                        },
                    );
                }
            }
        }
    }

    /// The first round (in our sending order) not yet heard from every other participant.
    fn blocking_round(&self) -> Option<usize> {
        let others = self.parties.len().saturating_sub(1);
        self.rounds
            .iter()
            .position(|(r, _)| self.heard.get(r).map_or(0, BTreeSet::len) < others)
    }

    fn update_deadline(&mut self, at: Instant) {
        if self.finished {
            return;
        }
        let blocking = self.blocking_round();
        if blocking != self.waiting_on {
            self.waiting_on = blocking;
            self.deadline = at.saturating_add(self.round_timeout);
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.finished || now < self.deadline {
            return;
        }
        let (round, silent) = match self.waiting_on {
            Some(i) => {
                let r = self.rounds.get(i).map_or(0, |(r, _)| *r);
                let heard = self.heard.get(&r).cloned().unwrap_or_default();
                let silent = self.others().filter(|p| !heard.contains(p)).collect();
                (i + 1, silent)
            }
            None => (self.rounds.len() + 1, BTreeSet::new()),
        };
        self.fail(
            FailureKind::Timeout {
                round: u8::try_from(round).unwrap_or(u8::MAX),
            },
            silent,
        );
    }
}

/// Decodes a protocol message, refusing any encoding other than the one we would produce.
pub(crate) fn decode_canonical<M: Serialize + DeserializeOwned>(
    body: &[u8],
) -> Result<M, Rejection> {
    let msg: M = serde_json::from_slice(body).map_err(|_| Rejection::Malformed {
        field: "cggmp24 message",
    })?;
    match serde_json::to_vec(&msg) {
        Ok(again) if again == body => Ok(msg),
        _ => Err(Rejection::Malformed {
            field: "cggmp24 message (non-canonical encoding)",
        }),
    }
}

impl<M, O> Session for MpcSession<M, O>
where
    M: Serialize + DeserializeOwned + ProtocolMessage + 'static,
{
    type Output = O;

    fn handle_input(&mut self, input: SessionInput<'_>) {
        match input {
            SessionInput::Message { at, from, payload } => self.on_message(at, from, payload),
            SessionInput::Timeout { now } => self.on_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<SessionOutput<O>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Instant, TimerKind)> {
        if self.finished {
            return None;
        }
        let round = self.waiting_on.map_or(self.rounds.len(), |i| i) + 1;
        Some((
            self.deadline,
            TimerKind::RoundDeadline(u8::try_from(round).unwrap_or(u8::MAX)),
        ))
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
