//! Resharing: key version `v` becomes `v+1` with the same group public key, a new member set
//! and a new threshold; refresh is the special case of the same members and threshold.
//!
//! - [`math`]: the dealing, checks and combination, generic over any `frost_core::Ciphersuite`
//!   group (reusable by threshold-ECDSA key shares on the same curves).
//! - [`session`]: [`FrostReshare`], the [`crate::session::Session`] that runs it among nodes:
//!   deal, verdict (echo + complaints, agreement on the qualified dealers), confirm.
//! - [`versions`]: the key-version bookkeeping around it (store `v+1` beside `v`, activate only
//!   on proof, then erase `v`; reconcile after a crash), as `PersistOp`s for the node.
//!
//! Why this design (the full protocol, its checks and the blame rules are in
//! `docs/resharing.md`):
//! - Dealers re-share their *unweighted* old share; receivers apply the Lagrange weights of the
//!   agreed qualified set `Q`. A cheating or crashed dealer is dropped inside the same run and the
//!   run still finishes while `|Q| ≥ t`, instead of restarting with a new dealer set.
//! - The constant term of each dealer's commitment must equal its old verifying share `Y_i`: a
//!   dealer cannot re-share anything but its own share, so the group key cannot move.
//! - Commitments are a broadcast over point-to-point channels: receivers echo their digests and
//!   only dealers on whom every receiver agrees qualify; equivocation excludes the dealer.
//! - A complaint excludes the accused dealer without a reveal round. Any participant can already
//!   veto a dealer by echoing a wrong digest (channels are not transferable, so that lie cannot be
//!   told apart from equivocation), so reveals would add a round without removing that power.
//!   A malicious receiver can therefore cause exclusions and, with enough of them, an abort
//!   (denial of service, named in the result); it cannot learn anything about the key or change it.
//! - Identifiers are stable `u16` values; new members may be fresh identifiers.
//! - The session never modifies or erases version `v`; [`versions`] and `docs/resharing.md` say
//!   what the node must do to store `v+1` beside `v` and activate it.

pub mod math;
pub mod session;
pub mod versions;

#[cfg(test)]
mod tests;

pub use session::{
    Exclusion, ExclusionReason, FrostReshare, MemberOutput, ReshareConfig, ReshareOutput,
    ReshareRole, Verdict,
};
