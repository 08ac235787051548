//! An in-memory network of sessions, driven exactly as a node drives one session.
//!
//! Used by the core's tests, its benchmarks and property tests: pure and deterministic (delivery
//! order comes from a seeded RNG, time is virtual). Messages can be intercepted to model
//! attackers, and parties can be silenced to model crashes.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use super::{Failure, Rejection, Session, SessionInput, SessionOutput, SessionStatus};
use crate::ids::ParticipantId;
use crate::rng::{CoreRng, Seed};
use crate::time::Instant;
use crate::transcript::{Recordable, Transcript};

/// How queued messages are picked for delivery.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// First in, first out.
    Fifo,
    /// Uniformly at random among all queued messages, from this seed.
    Random(Seed),
}

/// What an interceptor does with a message in flight.
pub type Interceptor = Box<dyn FnMut(ParticipantId, ParticipantId, &[u8]) -> Vec<Vec<u8>>>;

/// A message in flight.
struct InFlight {
    from: ParticipantId,
    to: ParticipantId,
    bytes: Vec<u8>,
}

/// A network of sessions.
pub struct LocalNet<S: Session> {
    sessions: BTreeMap<ParticipantId, S>,
    now: Instant,
    queue: Vec<InFlight>,
    order: Option<CoreRng>,
    silent: BTreeSet<ParticipantId>,
    interceptor: Option<Interceptor>,
    /// Results per participant.
    pub results: BTreeMap<ParticipantId, Result<S::Output, Failure>>,
    /// Every refusal: (who refused, whom, why).
    pub rejections: Vec<(ParticipantId, ParticipantId, Rejection)>,
    transcript: Transcript,
    sends: Transcript,
    delivered: u64,
}

impl<S: Session> LocalNet<S>
where
    S::Output: Recordable,
{
    /// A network of `sessions` (already created, their first messages queued inside them).
    pub fn new(sessions: impl IntoIterator<Item = S>, delivery: Delivery, now: Instant) -> Self {
        let sessions: BTreeMap<_, _> = sessions.into_iter().map(|s| (s.me(), s)).collect();
        let mut net = LocalNet {
            sessions,
            now,
            queue: Vec::new(),
            order: match delivery {
                Delivery::Fifo => None,
                Delivery::Random(seed) => Some(seed.rng()),
            },
            silent: BTreeSet::new(),
            interceptor: None,
            results: BTreeMap::new(),
            rejections: Vec::new(),
            transcript: Transcript::new(),
            sends: Transcript::new(),
            delivered: 0,
        };
        let ids: Vec<_> = net.sessions.keys().copied().collect();
        for id in ids {
            net.drain(id);
        }
        net
    }

    /// Silences `p`: nothing it sends is delivered and nothing is delivered to it (a crash).
    pub fn silence(&mut self, p: ParticipantId) {
        self.silent.insert(p);
        self.queue.retain(|m| m.from != p && m.to != p);
    }

    /// Routes every message through `f` at delivery, which returns what is delivered instead
    /// (an empty list drops it, several entries deliver several messages).
    pub fn intercept(&mut self, f: Interceptor) {
        self.interceptor = Some(f);
    }

    /// Queues raw bytes as if `from` had sent them to `to` (an attacker's message), ahead of
    /// everything already queued: an attacker races the honest traffic.
    pub fn inject(&mut self, from: ParticipantId, to: ParticipantId, bytes: Vec<u8>) {
        self.queue.insert(0, InFlight { from, to, bytes });
    }

    /// The session of `p`.
    pub fn session(&self, p: ParticipantId) -> Option<&S> {
        self.sessions.get(&p)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Hash of every output of every session, in order.
    pub fn transcript(&self) -> [u8; 32] {
        self.transcript.digest()
    }

    /// Hash of only the messages the sessions sent (refusal events excluded): equal between a
    /// run and the same run with rejected attack messages added iff the attack changed nothing.
    pub fn sends_digest(&self) -> [u8; 32] {
        self.sends.digest()
    }

    fn drain(&mut self, id: ParticipantId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut produced = Vec::new();
        while let Some(out) = session.poll_output() {
            produced.push(out);
        }
        for out in produced {
            match out {
                SessionOutput::Send { to, payload } => {
                    let label = format!("send {id}->{to}");
                    self.transcript.record(&label, payload.as_bytes());
                    self.sends.record(&label, payload.as_bytes());
                    if self.silent.contains(&id) || self.silent.contains(&to) {
                        continue;
                    }
                    self.queue.push(InFlight {
                        from: id,
                        to,
                        bytes: payload.as_bytes().to_vec(),
                    });
                }
                SessionOutput::Misbehaved { from, reason } => {
                    self.transcript.record(
                        &format!("reject {id}<-{from}"),
                        format!("{reason:?}").as_bytes(),
                    );
                    self.rejections.push((id, from, reason));
                }
                SessionOutput::Done(result) => {
                    match &result {
                        Ok(o) => o.record(&mut self.transcript),
                        Err(f) => self
                            .transcript
                            .record(&format!("failure {id}"), format!("{f:?}").as_bytes()),
                    }
                    self.results.insert(id, result);
                }
            }
        }
    }

    /// Delivers one message; `false` if none is queued.
    pub fn step(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let index = match &mut self.order {
            None => 0,
            Some(rng) => (rng.next_u64() % self.queue.len() as u64) as usize,
        };
        let m = self.queue.remove(index);
        self.delivered += 1;
        let copies = match &mut self.interceptor {
            Some(f) => f(m.from, m.to, &m.bytes),
            None => vec![m.bytes],
        };
        for bytes in copies {
            if let Some(s) = self.sessions.get_mut(&m.to) {
                s.handle_input(SessionInput::Message {
                    at: self.now,
                    from: m.from,
                    payload: &bytes,
                });
                self.drain(m.to);
            }
        }
        true
    }

    /// Runs until every live session has finished: delivers messages, and when none are left,
    /// jumps the clock to the earliest deadline and fires it. Returns after at most `max_steps`
    /// deliveries (a bound, so a bug cannot loop forever).
    pub fn run(&mut self, max_steps: u64) {
        let mut steps = 0;
        loop {
            while steps < max_steps && self.step() {
                steps += 1;
            }
            if steps >= max_steps {
                return;
            }
            let next = self
                .sessions
                .iter()
                .filter(|(id, s)| !self.silent.contains(id) && s.status() == SessionStatus::Running)
                .filter_map(|(_, s)| s.poll_timeout())
                .map(|(at, _)| at)
                .min();
            let Some(at) = next else { return };
            self.now = self.now.max(at);
            let ids: Vec<_> = self.sessions.keys().copied().collect();
            for id in ids {
                if self.silent.contains(&id) {
                    continue;
                }
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.handle_input(SessionInput::Timeout { now: self.now });
                }
                self.drain(id);
            }
        }
    }
}
