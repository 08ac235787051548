//! The body of the `sim_world` fuzz target (`fuzz/fuzz_targets/sim_world.rs`): a whole
//! simulated cluster whose choices come from the fuzz input (see [`crate::choices`]), with every
//! checker as the assertion. `simulator/tests/fuzz_corpus.rs` replays the committed corpus in
//! `cargo test`; `keyshard-sim --choices FILE --trace` replays one input with its event log.

use crate::{run_seed, RunOptions};

/// The run an input describes: its first 8 bytes (little-endian, zero-padded) seed the nodes'
/// own randomness; the rest is the tape of the world's choices.
pub fn options_for(input: &[u8]) -> RunOptions {
    let (head, tape) = input.split_at(input.len().min(8));
    let mut seed = [0u8; 8];
    seed[..head.len()].copy_from_slice(head);
    RunOptions {
        seed: u64::from_le_bytes(seed),
        choices: Some(tape.to_vec()),
        ..RunOptions::default()
    }
}

/// Runs the world `input` describes and panics (a libFuzzer crash) on the first violation.
pub fn world(input: &[u8]) {
    let report = run_seed(&options_for(input));
    if let Some(v) = report.violations.first() {
        panic!(
            "sim_world: violation at {} ms [{}]: {}\n  knobs: {}\n  replay: keyshard-sim --choices <this input> --trace",
            v.at, v.checker, v.detail, report.params
        );
    }
}
