//! keyshard's protocol core: pure, deterministic state machines (Sans-IO).
//!
//! Nothing in this crate touches a socket, a file, a thread, the wall clock or the OS random
//! number generator. Time arrives as an argument ([`time::Instant`]), randomness from a seed the
//! caller injects ([`rng::Seed`]), and the same inputs in the same order give byte-identical
//! outputs. `clippy.toml` in this crate bans the ambient alternatives; `.ci/run` checks it.
//!
//! The pieces:
//! - [`session`]: the one [`session::Session`] interface every protocol run implements, its
//!   inputs, outputs and failures, and the strict wire framing of session messages.
//! - [`frost`]: FROST (RFC 9591) distributed key generation and threshold signing, generic over
//!   `frost_core::Ciphersuite`, hardened against the gaps found in frost-core 3.0.0.
//! - [`reshare`]: resharing and refresh of a key to a new member set and threshold, keeping
//!   its public key.
//! - [`rotation`]: the automatic refresh policy (which keys are due, in virtual time).
//! - [`scheme`]: the signature schemes the product ships and their names on the wire.
//! - [`node`]: node-level policy: health scoring, leader transfer decisions and participant
//!   selection.
//! - `fuzzing` (feature `fuzzing` only): the bodies of the fuzz targets in `fuzz/`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod ecdsa;
pub mod frost;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ids;
pub mod node;
pub mod persist;
pub mod reshare;
pub mod rng;
pub mod rotation;
pub mod scheme;
pub mod session;
pub mod time;
pub mod transcript;
