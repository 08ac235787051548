//! Test modules
#![allow(clippy::indexing_slicing)]
#![allow(clippy::unwrap_used)]

pub mod batch;
pub mod ciphersuite_generic;
pub mod coefficient_commitment;
pub mod helpers;
pub mod proptests;
pub mod refresh;
pub mod repairable;
pub mod vectors;
pub mod vectors_dkg;
pub mod vss_commitment;
