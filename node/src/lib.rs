//! The keyshard daemon and CLI: the run loop that drives the core `Node` with a real clock,
//! store and transport ([`daemon`]); the audit log, the config file, metrics and the CLI's
//! output encodings.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod bench;
pub mod certs;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dev;
pub mod encoding;
pub mod metrics;
pub mod run;
pub mod service;
