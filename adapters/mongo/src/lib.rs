//! The MongoDB key store (issue: key storage).
//!
//! Empty until its issue lands; see README.md.
