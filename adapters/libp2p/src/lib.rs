//! The peer transport over libp2p (a second transport, after the gRPC one).
//!
//! Empty until its issue lands; see README.md.
