//! Cross-crate and multi-process tests (real gRPC + mTLS on loopback, kill -9, partitions).
//!
//! Empty until its issue lands; see README.md.
