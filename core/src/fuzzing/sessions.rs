//! Session targets: real sessions of a small configuration, fed a fuzz-chosen sequence of honest
//! deliveries (in any order), drops, duplicates, tampered and injected messages, replays and
//! timeouts; then the network is flushed (everything queued delivered, deadlines fired) and the
//! outcome is checked.
//!
//! A party whose identity the fuzzer used (an injected or replayed message "from" it, or one of
//! its messages tampered with in flight) counts as malicious: the guarantees are about the
//! others. A run with no such action, no drop and no deadline passed before the flush is
//! *clean*, and must then succeed everywhere.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, VerifyingKey};

use super::Cursor;
use crate::frost::{DkgConfig, DkgOutput, FrostDkg, FrostSign, SignConfig, SignOutput};
use crate::ids::ParticipantId;
use crate::persist::KeyVersion;
use crate::reshare::{FrostReshare, ReshareConfig, ReshareOutput, ReshareRole};
use crate::rng::Seed;
use crate::session::{Failure, Session, SessionInput, SessionOutput, SessionStatus};
use crate::time::{Duration, Instant};

const ROUND: Duration = Duration::from_secs(1);
const SEED: u64 = 0xf022;
/// A party that is in no session of the run.
const OUTSIDER: u16 = 9;
/// Bounds, so a bug cannot make a run loop forever.
const MAX_OPS: usize = 512;
const MAX_DELIVERIES: usize = 20_000;
const HISTORY: usize = 64;

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap_or_else(|| unreachable!("test ids are non-zero"))
}

fn ids(ns: &[u16]) -> BTreeSet<ParticipantId> {
    ns.iter().map(|n| pid(*n)).collect()
}

struct Msg {
    from: ParticipantId,
    to: ParticipantId,
    bytes: Vec<u8>,
}

/// The sessions of one run and the messages between them.
struct Net<S: Session> {
    sessions: BTreeMap<ParticipantId, S>,
    queue: Vec<Msg>,
    history: Vec<Msg>,
    now: Instant,
    results: BTreeMap<ParticipantId, Result<S::Output, Failure>>,
    /// Parties the fuzzer spoke for (malicious from the others' point of view).
    impersonated: BTreeSet<ParticipantId>,
    clean: bool,
    /// Who delivered anything to each session (a refusal may only name one of them).
    fed: BTreeMap<ParticipantId, BTreeSet<ParticipantId>>,
    /// (sender, frame kind) of every message a session sent.
    sent: Vec<(ParticipantId, u8)>,
    deliveries: usize,
}

impl<S: Session> Net<S> {
    fn new(sessions: impl IntoIterator<Item = S>) -> Self {
        let mut net = Net {
            sessions: sessions.into_iter().map(|s| (s.me(), s)).collect(),
            queue: Vec::new(),
            history: Vec::new(),
            now: Instant::ZERO,
            results: BTreeMap::new(),
            impersonated: BTreeSet::new(),
            clean: true,
            fed: BTreeMap::new(),
            sent: Vec::new(),
            deliveries: 0,
        };
        for id in net.sessions.keys().copied().collect::<Vec<_>>() {
            net.drain(id);
        }
        net
    }

    /// The parties a fuzz byte can name: every session and one outsider.
    fn party(&self, sel: u8) -> ParticipantId {
        let n = self.sessions.len() + 1;
        self.sessions
            .keys()
            .copied()
            .nth(usize::from(sel) % n)
            .unwrap_or(pid(OUTSIDER))
    }

    fn drain(&mut self, id: ParticipantId) {
        loop {
            let Some(session) = self.sessions.get_mut(&id) else {
                return;
            };
            let Some(out) = session.poll_output() else {
                return;
            };
            match out {
                SessionOutput::Send { to, payload } => {
                    assert!(
                        !self.results.contains_key(&id),
                        "{id:?} sent a message after its Done"
                    );
                    assert_ne!(to, id, "{id:?} sent a message to itself");
                    let bytes = payload.as_bytes().to_vec();
                    self.sent.push((id, bytes.get(1).copied().unwrap_or(0)));
                    self.queue.push(Msg {
                        from: id,
                        to,
                        bytes,
                    });
                }
                SessionOutput::Misbehaved { from, .. } => {
                    assert!(
                        self.fed.get(&id).is_some_and(|f| f.contains(&from)),
                        "{id:?} blamed {from:?}, who never sent it anything"
                    );
                }
                SessionOutput::Done(result) => {
                    assert!(
                        self.results.insert(id, result).is_none(),
                        "{id:?} ended twice"
                    );
                    let s = &self.sessions[&id];
                    assert_eq!(
                        s.status(),
                        SessionStatus::Finished,
                        "{id:?} Done but running"
                    );
                    assert!(s.poll_timeout().is_none(), "{id:?} Done but has a deadline");
                }
            }
        }
    }

    fn feed(&mut self, to: ParticipantId, from: ParticipantId, bytes: &[u8]) {
        self.deliveries += 1;
        assert!(self.deliveries <= MAX_DELIVERIES, "message storm");
        let Some(s) = self.sessions.get_mut(&to) else {
            return;
        };
        self.fed.entry(to).or_default().insert(from);
        s.handle_input(SessionInput::Message {
            at: self.now,
            from,
            payload: bytes,
        });
        self.drain(to);
    }

    fn deliver(&mut self, m: Msg) {
        self.feed(m.to, m.from, &m.bytes);
        if self.history.len() >= HISTORY {
            self.history.remove(0);
        }
        self.history.push(m);
    }

    fn pick(&self, k: u8) -> Option<usize> {
        (!self.queue.is_empty()).then(|| usize::from(k) % self.queue.len())
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter(|s| s.status() == SessionStatus::Running)
            .filter_map(|s| s.poll_timeout().map(|(at, _)| at))
            .min()
    }

    fn fire(&mut self, id: ParticipantId) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.handle_input(SessionInput::Timeout { now: self.now });
        }
        self.drain(id);
    }

    fn fire_all(&mut self) {
        for id in self.sessions.keys().copied().collect::<Vec<_>>() {
            self.fire(id);
        }
    }

    /// A timeout the fuzzer asked for: a run where it passes a deadline is no longer clean.
    fn note_deadline(&mut self) {
        if self.earliest_deadline().is_some_and(|d| d <= self.now) {
            self.clean = false;
        }
    }

    /// The fuzz-chosen part of the run. Ops (first byte `% 8`):
    /// 0 deliver queued #k, 1 drop #k, 2 deliver a copy of #k (keeping it queued), 3 tamper
    /// with #k (xor a byte) and deliver it, 4 inject bytes from any party to any session,
    /// 5 replay an earlier message to any session, 6 advance the clock and fire every
    /// deadline, 7 fire one session's deadline.
    fn run_ops(&mut self, c: &mut Cursor<'_>) {
        let mut ops = 0;
        while !c.is_empty() && ops < MAX_OPS {
            ops += 1;
            match c.u8() % 8 {
                0 => {
                    if let Some(i) = self.pick(c.u8()) {
                        let m = self.queue.remove(i);
                        self.deliver(m);
                    }
                }
                1 => {
                    if let Some(i) = self.pick(c.u8()) {
                        self.queue.remove(i);
                        self.clean = false;
                    }
                }
                2 => {
                    if let Some(i) = self.pick(c.u8()) {
                        let (from, to, bytes) = {
                            let m = &self.queue[i];
                            (m.from, m.to, m.bytes.clone())
                        };
                        self.feed(to, from, &bytes);
                    }
                }
                3 => {
                    let (k, pos, xor) = (c.u8(), c.u16(), c.u8());
                    if let Some(i) = self.pick(k) {
                        let mut m = self.queue.remove(i);
                        if !m.bytes.is_empty() && xor != 0 {
                            let at = usize::from(pos) % m.bytes.len();
                            m.bytes[at] ^= xor;
                            self.impersonated.insert(m.from);
                            self.clean = false;
                        }
                        self.deliver(m);
                    }
                }
                4 => {
                    let to = self.party(c.u8());
                    let from = self.party(c.u8());
                    let bytes = c.bytes().to_vec();
                    self.impersonated.insert(from);
                    self.clean = false;
                    self.deliver(Msg { from, to, bytes });
                }
                5 => {
                    let (k, to_sel) = (c.u8(), c.u8());
                    if !self.history.is_empty() {
                        let i = usize::from(k) % self.history.len();
                        let to = self.party(to_sel);
                        let (from, original_to, bytes) = {
                            let m = &self.history[i];
                            (m.from, m.to, m.bytes.clone())
                        };
                        if to != original_to {
                            // Sent by `from` to someone else: only `from` itself could.
                            self.impersonated.insert(from);
                            self.clean = false;
                        }
                        self.feed(to, from, &bytes);
                    }
                }
                6 => {
                    let dt = u64::from(c.u16());
                    self.now = Instant::from_millis(self.now.as_millis().saturating_add(dt));
                    self.note_deadline();
                    self.fire_all();
                }
                _ => {
                    let id = self.party(c.u8());
                    self.note_deadline();
                    self.fire(id);
                }
            }
        }
    }

    /// Delivers everything queued (in order), then jumps to the next deadline and fires it,
    /// until every session has ended. A session still running after that is a hang.
    fn flush(&mut self) {
        for _ in 0..16 {
            while !self.queue.is_empty() {
                let m = self.queue.remove(0);
                self.deliver(m);
            }
            let Some(at) = self.earliest_deadline() else {
                break;
            };
            assert!(
                !self.clean,
                "a clean run needed a deadline to finish (stalled at {:?})",
                self.now
            );
            self.now = self.now.max(at);
            self.fire_all();
        }
        for (id, s) in &self.sessions {
            assert_eq!(
                s.status(),
                SessionStatus::Finished,
                "{id:?} still running after every deadline fired"
            );
        }
    }

    fn honest(&self, p: &ParticipantId) -> bool {
        !self.impersonated.contains(p)
    }

    fn check_culprits(&self, allowed: &BTreeSet<ParticipantId>) {
        for (id, r) in &self.results {
            if let Err(f) = r {
                assert!(
                    f.culprits.is_subset(allowed),
                    "{id:?} blamed a non-participant: {f:?}"
                );
                assert!(!self.clean, "{id:?} failed in a clean run: {f:?}");
            }
        }
    }
}

fn same_key<C: Ciphersuite>(a: &VerifyingKey<C>, b: &VerifyingKey<C>) -> bool {
    a.serialize().ok() == b.serialize().ok()
}

/// The key `t` of `kps` interpolate to is the group key `vk`.
fn assert_reconstructs<C: Ciphersuite>(kps: &[KeyPackage<C>], vk: &VerifyingKey<C>) {
    let sk = frost_core::keys::reconstruct::<C>(kps)
        .unwrap_or_else(|e| panic!("shares do not reconstruct: {e}"));
    assert!(
        same_key(&VerifyingKey::from(&sk), vk),
        "the shares interpolate to another key than the group key"
    );
}

/// A key package agrees with the public key package it came with.
fn assert_key_material<C: Ciphersuite>(
    me: ParticipantId,
    kp: &KeyPackage<C>,
    pkp: &PublicKeyPackage<C>,
    threshold: u16,
) {
    assert_eq!(
        *kp.identifier(),
        me.to_frost::<C>(),
        "key package of another id"
    );
    assert!(
        same_key(kp.verifying_key(), pkp.verifying_key()),
        "key package of another key"
    );
    assert_eq!(*kp.min_signers(), threshold, "key package threshold");
    assert_eq!(
        pkp.min_signers(),
        Some(threshold),
        "public key package threshold"
    );
    assert_eq!(
        pkp.verifying_shares().get(&me.to_frost()),
        Some(kp.verifying_share()),
        "verifying share does not match the key package"
    );
}

/// Keys from frost's trusted dealer for ids `1..=n` (deterministic).
pub(super) fn dealer<C: Ciphersuite>(
    t: u16,
    n: u16,
) -> (BTreeMap<ParticipantId, KeyPackage<C>>, PublicKeyPackage<C>) {
    let mut rng = Seed::from_u64(SEED).child(b"fuzz/dealer", &[]).rng();
    let (shares, pkp) = frost_core::keys::generate_with_dealer::<C, _>(
        n,
        t,
        frost_core::keys::IdentifierList::Default,
        &mut rng,
    )
    .unwrap_or_else(|e| unreachable!("dealer: {e}"));
    let kps = (1..=n)
        .map(|i| {
            let share = shares[&pid(i).to_frost::<C>()].clone();
            let kp = KeyPackage::try_from(share).unwrap_or_else(|e| unreachable!("{e}"));
            (pid(i), kp)
        })
        .collect();
    (kps, pkp)
}

fn party_seed(label: &[u8], p: ParticipantId) -> Seed {
    Seed::from_u64(SEED).child(label, &p.get().to_be_bytes())
}

macro_rules! by_suite {
    ($sel:expr, $f:ident ( $($arg:expr),* )) => {
        match $sel % 4 {
            0 => $f::<frost_ed25519::Ed25519Sha512>($($arg),*),
            1 => $f::<frost_secp256k1::Secp256K1Sha256>($($arg),*),
            2 => $f::<frost_p256::P256Sha256>($($arg),*),
            _ => $f::<frost_secp256k1_tr::Secp256K1Sha256TR>($($arg),*),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// DKG
// ---------------------------------------------------------------------------------------------

/// A 3-party `FrostDkg`. First byte: suite (`% 4`), threshold 2 or 3 (bit 2); then ops.
/// Checks: honest parties that succeed hold consistent key material and agree on the public
/// key package; a clean run succeeds everywhere and its shares interpolate to the group key.
pub fn dkg_session(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    by_suite!(cfg, dkg(cfg, &mut c));
}

fn dkg<C: Ciphersuite>(cfg: u8, c: &mut Cursor<'_>) {
    let t = if cfg & 4 == 0 { 2 } else { 3 };
    let parts = ids(&[1, 2, 3]);
    let sessions = parts.iter().map(|&me| {
        let config = DkgConfig {
            me,
            participants: parts.clone(),
            threshold: t,
            round_timeout: ROUND,
        };
        FrostDkg::<C>::new(config, &party_seed(b"fuzz/dkg", me), Instant::ZERO)
            .unwrap_or_else(|e| unreachable!("{e}"))
    });
    let mut net = Net::new(sessions);
    net.run_ops(c);
    net.flush();
    net.check_culprits(&parts);
    let honest_ok: Vec<(ParticipantId, &DkgOutput<C>)> = net
        .results
        .iter()
        .filter(|(p, _)| net.honest(p))
        .filter_map(|(p, r)| r.as_ref().ok().map(|o| (*p, o)))
        .collect();
    for (p, o) in &honest_ok {
        assert_key_material(*p, &o.key_package, &o.public_key_package, t);
    }
    let packages: BTreeSet<Vec<u8>> = honest_ok
        .iter()
        .map(|(_, o)| o.public_key_package.serialize().unwrap_or_default())
        .collect();
    assert!(packages.len() <= 1, "honest parties disagree on the key");
    if net.clean {
        assert_eq!(
            honest_ok.len(),
            parts.len(),
            "a clean DKG did not succeed everywhere"
        );
        let kps: Vec<KeyPackage<C>> = honest_ok
            .iter()
            .take(usize::from(t))
            .map(|(_, o)| o.key_package.clone())
            .collect();
        assert_reconstructs(&kps, honest_ok[0].1.public_key_package.verifying_key());
    }
}

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// `FrostSign` over a 2-of-3 dealer key. First byte: suite (`% 4`) and layout (bits 2-3):
/// coordinator 1 signing with {1,2}; coordinator 1 with {1,2,3} and two messages; coordinator 3
/// (not signing) with {1,2}; the same with two messages (one empty). Then ops.
/// Checks: every signature the coordinator outputs verifies under the group key (whoever is
/// malicious); no signer ever sends two signature-share messages (nonce reuse); a clean run
/// signs.
pub fn sign_session(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    by_suite!(cfg, sign(cfg, &mut c));
}

fn sign<C: crate::frost::CommitmentWire>(cfg: u8, c: &mut Cursor<'_>) {
    let (coordinator, signers, messages): (u16, &[u16], Vec<Vec<u8>>) = match (cfg >> 2) % 4 {
        0 => (1, &[1, 2], vec![b"m0".to_vec()]),
        1 => (1, &[1, 2, 3], vec![b"m0".to_vec(), b"m1".to_vec()]),
        2 => (3, &[1, 2], vec![b"m0".to_vec()]),
        _ => (3, &[1, 2], vec![b"m0".to_vec(), Vec::new()]),
    };
    let (coordinator, signers) = (pid(coordinator), ids(signers));
    let (kps, pkp) = dealer::<C>(2, 3);
    let mut everyone = signers.clone();
    everyone.insert(coordinator);
    let sessions = everyone.iter().map(|&me| {
        let config = SignConfig {
            me,
            coordinator,
            signers: signers.clone(),
            messages: messages.clone(),
            round_timeout: ROUND,
        };
        let kp = signers.contains(&me).then(|| kps[&me].clone());
        let coord_pkp = (me == coordinator).then(|| pkp.clone());
        FrostSign::<C>::new(
            config,
            kp,
            coord_pkp,
            &party_seed(b"fuzz/sign", me),
            Instant::ZERO,
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
    });
    let mut net = Net::new(sessions);
    net.run_ops(c);
    net.flush();
    net.check_culprits(&everyone);
    for s in &signers {
        let shares = net.sent.iter().filter(|(p, k)| p == s && *k == 12).count();
        assert!(shares <= 1, "{s:?} sent {shares} signature-share messages");
    }
    for (p, r) in &net.results {
        match r {
            Ok(SignOutput::Signatures(sigs)) => {
                assert_eq!(*p, coordinator, "a signer output signatures");
                assert_eq!(sigs.len(), messages.len());
                for (sig, m) in sigs.iter().zip(&messages) {
                    assert!(
                        pkp.verifying_key().verify(m, sig).is_ok(),
                        "the coordinator output a signature that does not verify"
                    );
                }
            }
            Ok(SignOutput::SharesSent) => {
                assert_ne!(*p, coordinator, "the coordinator ended without signatures");
            }
            Err(_) => {}
        }
    }
    if net.clean {
        assert!(
            matches!(
                net.results.get(&coordinator),
                Some(Ok(SignOutput::Signatures(_)))
            ),
            "a clean signing run did not sign"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Resharing
// ---------------------------------------------------------------------------------------------

struct ReshareLayout {
    dealers: BTreeSet<ParticipantId>,
    members: BTreeSet<ParticipantId>,
    new_threshold: u16,
}

fn reshare_layout(sel: u8) -> ReshareLayout {
    let (d, m, t): (&[u16], &[u16], u16) = match sel % 4 {
        0 => (&[1, 2, 3], &[1, 2, 3], 2),
        1 => (&[1, 2], &[2, 3, 4], 2),
        2 => (&[1, 2, 3], &[1, 2, 3, 4], 3),
        _ => (&[2, 3], &[3, 4, 5], 3),
    };
    ReshareLayout {
        dealers: ids(d),
        members: ids(m),
        new_threshold: t,
    }
}

/// Every party of a reshare of a 2-of-3 dealer key (version 1) with `layout`.
fn reshare_net<C: Ciphersuite>(
    layout: &ReshareLayout,
) -> (Net<FrostReshare<C>>, PublicKeyPackage<C>) {
    let (kps, pkp) = dealer::<C>(2, 3);
    let everyone: BTreeSet<ParticipantId> =
        layout.dealers.union(&layout.members).copied().collect();
    let sessions: Vec<FrostReshare<C>> = everyone
        .iter()
        .map(|&me| {
            let config = ReshareConfig {
                me,
                from_version: KeyVersion(1),
                dealers: layout.dealers.clone(),
                new_members: layout.members.clone(),
                new_threshold: layout.new_threshold,
                round_timeout: ROUND,
                run: Vec::new(),
            };
            let kp = layout.dealers.contains(&me).then(|| &kps[&me]);
            FrostReshare::<C>::new(
                config,
                kp,
                pkp.clone(),
                &party_seed(b"fuzz/reshare", me),
                Instant::ZERO,
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
        })
        .collect();
    (Net::new(sessions), pkp)
}

fn check_reshare<C: Ciphersuite>(
    net: &Net<FrostReshare<C>>,
    layout: &ReshareLayout,
    old: &PublicKeyPackage<C>,
) {
    let everyone: BTreeSet<ParticipantId> =
        layout.dealers.union(&layout.members).copied().collect();
    net.check_culprits(&everyone);
    let mut agreed = BTreeSet::new();
    let mut member_kps = Vec::new();
    for (p, r) in &net.results {
        let Ok(out) = r else { continue };
        assert_eq!(
            out.version(),
            KeyVersion(2),
            "reshare produced a wrong version"
        );
        match out {
            ReshareOutput::Dealt { .. } => {
                assert!(
                    !layout.members.contains(p),
                    "a new member ended without a share"
                );
            }
            ReshareOutput::Member(m) => {
                assert!(layout.members.contains(p), "a non-member got a share");
                let role = if layout.dealers.contains(p) {
                    ReshareRole::DealerAndReceiver
                } else {
                    ReshareRole::Receiver
                };
                assert_eq!(m.role, role);
                // Whoever is malicious, the group key never moves.
                assert!(
                    same_key(m.public_key_package.verifying_key(), old.verifying_key()),
                    "reshare changed the group key"
                );
                assert_key_material(
                    *p,
                    &m.key_package,
                    &m.public_key_package,
                    layout.new_threshold,
                );
                assert!(m.qualified.is_subset(&layout.dealers));
                assert!(
                    m.qualified.len() >= 2,
                    "fewer qualified dealers than the old threshold"
                );
                if net.honest(p) {
                    agreed.insert((
                        m.public_key_package.serialize().unwrap_or_default(),
                        m.qualified.clone(),
                        m.confirmation_digest,
                    ));
                    member_kps.push(m.key_package.clone());
                }
            }
        }
    }
    assert!(
        agreed.len() <= 1,
        "honest new members disagree on version 2"
    );
    if net.clean {
        assert_eq!(net.results.len(), everyone.len());
        assert!(
            net.results.values().all(|r| r.is_ok()),
            "a clean reshare failed"
        );
        assert_eq!(member_kps.len(), layout.members.len());
        let qualified = agreed.iter().next().map(|a| a.1.clone());
        assert_eq!(
            qualified.as_ref(),
            Some(&layout.dealers),
            "a clean reshare excluded a dealer"
        );
        let t = usize::from(layout.new_threshold);
        assert_reconstructs(&member_kps[..t], old.verifying_key());
    }
}

/// `FrostReshare` of a 2-of-3 dealer key. First byte: suite (`% 4`) and layout (bits 2-3): a
/// refresh of {1,2,3}; dealers {1,2} to {2,3,4} at t'=2; {1,2,3} to {1,2,3,4} at t'=3;
/// {2,3} to {3,4,5} at t'=3. Then ops. Checks: the group key never changes; honest new members
/// that succeed agree on everything; a clean run succeeds with every dealer qualified and the
/// new shares interpolate to the old group key.
pub fn reshare_session(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    by_suite!(cfg, reshare(cfg, &mut c));
}

fn reshare<C: Ciphersuite>(cfg: u8, c: &mut Cursor<'_>) {
    let layout = reshare_layout(cfg >> 2);
    let (mut net, old) = reshare_net::<C>(&layout);
    net.run_ops(c);
    net.flush();
    check_reshare(&net, &layout, &old);
}

/// One message to a reshare receiver in a chosen round: the decoders of deals, verdicts,
/// confirmations and aborts. Layout: dealers {1,2,3} reshare to {1,2,3,4} at t'=3; honest
/// traffic runs in order until receiver 4 is in the chosen round, then the rest of the input
/// arrives at 4 as a message from the chosen sender, then the run is flushed and checked as in
/// [`reshare_session`]. First byte: suite (`% 4`), round (`b / 4 % 3 + 1`), sender (`b / 16`).
pub fn reshare_messages(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    by_suite!(cfg, reshare_message(cfg, &mut c));
}

fn reshare_message<C: Ciphersuite>(cfg: u8, c: &mut Cursor<'_>) {
    let round = cfg / 4 % 3 + 1;
    let layout = reshare_layout(2);
    let (mut net, old) = reshare_net::<C>(&layout);
    let target = pid(4);
    while !net.queue.is_empty() && net.sessions[&target].round().is_some_and(|r| r < round) {
        let m = net.queue.remove(0);
        net.deliver(m);
    }
    let from = net.party(cfg / 16);
    let bytes = c.rest().to_vec();
    net.impersonated.insert(from);
    net.clean = false;
    net.deliver(Msg {
        from,
        to: target,
        bytes,
    });
    net.flush();
    check_reshare(&net, &layout, &old);
}

/// Every honest message receiver 4 gets in the [`reshare_messages`] layout, as
/// (round, sender, bytes): the seeds of that target.
pub(super) fn reshare_probe_messages(suite: u8) -> Vec<(u8, ParticipantId, Vec<u8>)> {
    fn collect<C: Ciphersuite>() -> Vec<(u8, ParticipantId, Vec<u8>)> {
        let (mut net, _) = reshare_net::<C>(&reshare_layout(2));
        let mut out = Vec::new();
        while !net.queue.is_empty() {
            let m = net.queue.remove(0);
            if m.to == pid(4) {
                let round = match m.bytes.get(1) {
                    Some(20) => 1,
                    Some(21) => 2,
                    _ => 3,
                };
                out.push((round, m.from, m.bytes.clone()));
            }
            net.deliver(m);
        }
        out
    }
    by_suite!(suite, collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_runs_succeed_on_every_suite_and_layout() {
        // An empty op list is the honest run: it must pass every check, including the clean
        // ones, so the clean checks cannot be vacuous.
        for cfg in 0..16u8 {
            dkg_session(&[cfg]);
            sign_session(&[cfg]);
            reshare_session(&[cfg]);
        }
    }

    fn dropped_round1_run() -> Net<FrostDkg<frost_ed25519::Ed25519Sha512>> {
        let parts = ids(&[1, 2, 3]);
        let mut net = Net::new(parts.iter().map(|&me| {
            let config = DkgConfig {
                me,
                participants: parts.clone(),
                threshold: 2,
                round_timeout: ROUND,
            };
            FrostDkg::new(config, &party_seed(b"fuzz/dkg", me), Instant::ZERO).unwrap()
        }));
        // Op 1: drop the first queued message (a round-1 package).
        net.run_ops(&mut Cursor::new(&[1, 0]));
        net
    }

    #[test]
    fn a_dropped_message_makes_the_run_unclean_and_it_fails() {
        let mut net = dropped_round1_run();
        assert!(!net.clean);
        net.flush();
        assert!(net.results.values().any(|r| r.is_err()));
        net.check_culprits(&ids(&[1, 2, 3]));
    }

    #[test]
    #[should_panic(expected = "failed in a clean run")]
    fn a_failure_in_a_clean_run_is_caught() {
        let mut net = dropped_round1_run();
        net.flush();
        net.clean = true;
        net.check_culprits(&ids(&[1, 2, 3]));
    }
}
