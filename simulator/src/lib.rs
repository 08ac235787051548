//! keyshard's deterministic cluster simulator.
//!
//! A single-threaded world of N real core [`keyshard_core::node::Node`]s, driven exactly as a
//! daemon drives them, over a simulated network ([`network`]), per-node disks ([`disk`]) and
//! drifting clocks ([`clock`]); a seeded client [`workload`]; faults and knobs drawn from the
//! seed ([`swarm`]); invariant [`checkers`] after every step; a hashed, optionally readable
//! [`trace`]. Everything comes from one `u64` seed, so a failing run replays exactly with
//! `keyshard-sim --seed N`.
//!
//! A run has two phases: **safety** (faults on: crashes with torn writes, partitions, one-way
//! cuts, clogged links, loss, duplication, reordering) and **liveness** (the network heals,
//! crashed nodes restart; every waiting request must be answered within a bound, and the
//! cluster must then create a key and sign with it).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod byzantine;
pub mod checkers;
pub mod choices;
pub mod clock;
pub mod disk;
pub mod fuzzing;
pub mod network;
pub mod swarm;
pub mod trace;
pub mod workload;
pub mod world;

pub use world::{run_seed, RunOptions, RunReport};
