//! Session freshness: where every session's randomness comes from, and which session keys a
//! node has already served.
//!
//! A session key (`SessionKey`) is chosen by the leader, and the leader may be the attacker. So
//! no session's randomness may be a function of it: a leader that replays a finished
//! `SignStart` with another message would otherwise get the same FROST nonces (three replays
//! solve a signer's share) or the same ECDSA `k` (two signatures give the group key).
//!
//! - [`SessionRandomness`] is the node's own advancing stream (a child of the boot seed, which
//!   is fresh OS randomness at every boot in production and a per-incarnation child seed in the
//!   simulator). Every session draws 32 new bytes from it, hedged with the secret share and a
//!   digest of what the session is about (RFC 9591's hedged nonces, one level up): a repeated
//!   stream alone (a cloned VM, a bad OS RNG) still gives other nonces for another message, and
//!   a known stream alone gives nothing without the share.
//! - [`ServedRuns`] refuses a signing or presigning run id this node has served before in this
//!   boot. Run ids are `(term mod 2^32) << 32 | n` with `n` counting from 1 in each term at the leader
//!   (see `Node::next_run_id`), and a signer only serves runs of its current term from its
//!   current leader, so the record is reset on a new term and stays bounded by a window.
//!   Across a restart the boot seed is new, so a replayed run id gets fresh nonces even though
//!   this record is gone (docs/security.md, "Nonces").

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::ParticipantId;

use sha2::{Digest, Sha256};

use crate::rng::{CoreRng, Seed};
use rand_core::RngCore;

/// The node's own stream of session randomness.
pub(crate) struct SessionRandomness {
    stream: CoreRng,
}

impl SessionRandomness {
    /// The stream for a boot seed (a domain-separated child, so no other use of the boot seed
    /// shares it).
    pub(crate) fn new(boot: &Seed) -> Self {
        SessionRandomness {
            stream: boot.child(b"keyshard/session-randomness/v1", &[]).rng(),
        }
    }

    /// The seed of one session: 32 fresh bytes from the stream, hedged with `secret` (the
    /// node's share, when it has one) and `context` (a digest of the key, version, signers,
    /// messages and session key). Every call advances the stream, so no two sessions of one
    /// boot share randomness, whatever the peers send.
    pub(crate) fn session_seed(&mut self, label: &[u8], secret: &[u8], context: &[u8]) -> Seed {
        let mut fresh = [0u8; 32];
        self.stream.fill_bytes(&mut fresh);
        let mut hedge = Sha256::new();
        hedge.update((secret.len() as u64).to_be_bytes());
        hedge.update(secret);
        hedge.update((context.len() as u64).to_be_bytes());
        hedge.update(context);
        let seed = Seed::from_bytes(fresh).child(label, &hedge.finalize());
        zeroize::Zeroize::zeroize(&mut fresh);
        seed
    }
}

/// How far below the highest run id served in a term a late run start is still accepted
/// (starts may arrive reordered); anything older is refused.
pub(crate) const RUN_WINDOW: u64 = 1 << 16;

/// Signing and presigning run ids this node served in the current term, per coordinator (a
/// node that poses as leader for a moment can only fill its own record, never the real
/// leader's).
#[derive(Default)]
pub(crate) struct ServedRuns {
    term: u64,
    by_coordinator: BTreeMap<ParticipantId, Window>,
}

/// One coordinator's served runs: the highest, and every id within the window below it.
#[derive(Default)]
struct Window {
    highest: u64,
    recent: BTreeSet<u64>,
}

/// Why a run start was refused as not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stale {
    /// The run id's term is not this node's current term.
    OtherTerm,
    /// This run id was served before.
    Served,
    /// The run id is further below the highest served than the window reaches.
    TooOld,
}

impl Stale {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Stale::OtherTerm => "run id from another term than the leader's",
            Stale::Served => "run id already served (a replayed start)",
            Stale::TooOld => "run id older than the replay window",
        }
    }
}

impl ServedRuns {
    /// Records `run` from `coordinator` as served in `term` if it is fresh; changes nothing
    /// otherwise. Run ids carry the term's low 32 bits (`Node::next_run_id`).
    pub(crate) fn admit(
        &mut self,
        coordinator: ParticipantId,
        term: u64,
        run: u64,
    ) -> Result<(), Stale> {
        if run >> 32 != term & 0xffff_ffff || run & 0xffff_ffff == 0 {
            return Err(Stale::OtherTerm);
        }
        if term != self.term {
            // A signer follows one leader per term; a new term starts a new record.
            self.term = term;
            self.by_coordinator.clear();
        }
        let w = self.by_coordinator.entry(coordinator).or_default();
        if w.recent.contains(&run) {
            return Err(Stale::Served);
        }
        if run.saturating_add(RUN_WINDOW) <= w.highest {
            return Err(Stale::TooOld);
        }
        w.recent.insert(run);
        if run > w.highest {
            w.highest = run;
            let floor = w.highest.saturating_sub(RUN_WINDOW);
            w.recent = w.recent.split_off(&floor);
        }
        Ok(())
    }
}

/// A digest of what a session is about, for hedging its randomness: domain-separated,
/// length-prefixed parts.
pub(crate) fn context_digest(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keyshard/session-context/v1");
    h.update((label.len() as u64).to_be_bytes());
    h.update(label);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_seed_is_new_even_for_the_same_inputs() {
        let mut r = SessionRandomness::new(&Seed::from_u64(1));
        let a = r.session_seed(b"sign", b"share", b"ctx");
        let b = r.session_seed(b"sign", b"share", b"ctx");
        assert!(a != b);
        // Same boot seed, same sequence (the simulator replays).
        let mut r2 = SessionRandomness::new(&Seed::from_u64(1));
        assert!(r2.session_seed(b"sign", b"share", b"ctx") == a);
        // The hedge matters: another context on the same stream position gives another seed.
        let mut r3 = SessionRandomness::new(&Seed::from_u64(1));
        assert!(r3.session_seed(b"sign", b"share", b"other") != a);
    }

    #[test]
    fn served_runs_refuse_replays_other_terms_and_old_ids() {
        let mut s = ServedRuns::default();
        let l = ParticipantId::new(1).unwrap();
        let t = 7u64;
        assert_eq!(s.admit(l, t, (t << 32) | 5), Ok(()));
        assert_eq!(s.admit(l, t, (t << 32) | 5), Err(Stale::Served));
        // Reordered but fresh.
        assert_eq!(s.admit(l, t, (t << 32) | 3), Ok(()));
        assert_eq!(s.admit(l, t, (t << 32) | 3), Err(Stale::Served));
        // Another term than the caller's, and the zero counter, are never served.
        assert_eq!(s.admit(l, t, (6 << 32) | 9), Err(Stale::OtherTerm));
        assert_eq!(s.admit(l, t, t << 32), Err(Stale::OtherTerm));
        // Far ahead: older ids fall out of the window and are refused, not forgotten.
        assert_eq!(s.admit(l, t, (t << 32) | (RUN_WINDOW + 10)), Ok(()));
        assert_eq!(s.admit(l, t, (t << 32) | 5), Err(Stale::TooOld));
        assert_eq!(s.admit(l, t, (t << 32) | 4), Err(Stale::TooOld));
        // A new term starts afresh; the old term is gone for good.
        assert_eq!(s.admit(l, t + 1, ((t + 1) << 32) | 1), Ok(()));
        assert_eq!(s.admit(l, t + 1, (t << 32) | 6), Err(Stale::OtherTerm));
        assert!(s.by_coordinator[&l].recent.len() <= RUN_WINDOW as usize + 1);
        // Terms past 2^32 still work (their low 32 bits are in the id).
        let big = (1u64 << 32) + 3;
        assert_eq!(s.admit(l, big, (3 << 32) | 1), Ok(()));
        assert_eq!(s.admit(l, big, (3 << 32) | 1), Err(Stale::Served));
    }

    /// A node that poses as leader for a moment and sends the highest counter of the term
    /// cannot make the real leader's later runs look old.
    #[test]
    fn one_coordinator_cannot_age_out_another_s_runs() {
        let mut s = ServedRuns::default();
        let (real, poser) = (
            ParticipantId::new(1).unwrap(),
            ParticipantId::new(2).unwrap(),
        );
        let t = 9u64;
        assert_eq!(s.admit(poser, t, (t << 32) | 0xffff_ffff), Ok(()));
        assert_eq!(s.admit(real, t, (t << 32) | 1), Ok(()));
        assert_eq!(s.admit(real, t, (t << 32) | 2), Ok(()));
        assert_eq!(s.admit(real, t, (t << 32) | 1), Err(Stale::Served));
    }
}
