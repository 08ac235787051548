//! The deterministic cluster simulator (issue: simulator and fuzzing).
//!
//! Empty until its issue lands; see README.md.
