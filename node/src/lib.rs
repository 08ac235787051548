//! The keyshard daemon and CLI: config, run loop, metrics, audit log (issue: gRPC node).
//!
//! Empty until its issue lands; see README.md.
