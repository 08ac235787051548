//! Wire types (.proto) for the peer protocol and the client API, and their conversions to core types (issue: gRPC node).
//!
//! Empty until its issue lands; see README.md.
