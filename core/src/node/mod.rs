//! Node-level policy that sits above single protocol sessions.
//!
//! - [`scoring`]: per-node rolling performance metrics, a fixed-point health score, and the
//!   debounced decision to transfer Raft leadership away from a leader that lags.
//! - [`select`]: seeded, health-weighted choice of the participants for a signing or reshare
//!   session that never picks a node still cooling down after blame or repeated timeouts.
//!
//! Both are pure functions of their inputs, the caller's virtual time and the injected RNG, so a
//! simulator seed replays every selection and every leadership transfer exactly.

pub mod scoring;
pub mod select;
