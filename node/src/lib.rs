//! The keyshard daemon and CLI: the run loop that drives the core `Node` with a real clock,
//! store and transport; configuration, metrics and the audit log.

pub mod daemon;
