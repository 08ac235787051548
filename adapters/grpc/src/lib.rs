//! tonic + rustls mutual-TLS peer transport and client API (issue: gRPC node).
//!
//! Empty until its issue lands; see README.md.
