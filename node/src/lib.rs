//! Building blocks of the `keyshard` daemon and CLI: the audit log, the config file, metrics
//! and the CLI's output encodings. The run loop that drives `keyshard-core` with a transport and
//! a store comes later and wires these together.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod config;
pub mod encoding;
pub mod metrics;
