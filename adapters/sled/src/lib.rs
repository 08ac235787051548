//! The embedded default key store on sled (issue: key storage).
//!
//! Empty until its issue lands; see README.md.
