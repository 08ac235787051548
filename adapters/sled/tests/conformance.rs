//! The conformance suite against sled.

mod common;

#[test]
fn conformance() {
    keyshard_store::conformance::run_all(&common::Sled::new());
}
