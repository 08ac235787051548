//! CI's replay of the `sim_world` fuzz corpus (`fuzz/corpus/sim_world/`): each input is a whole
//! simulated cluster whose choices come from its bytes, run through the same body cargo-fuzz
//! runs (`keyshard_sim::fuzzing::world`), so an input that once broke a checker fails
//! `cargo test` if the bug comes back.

use std::path::Path;

#[test]
fn replay_the_sim_world_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sim_world");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for f in &files {
        let input = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("{}", f.display());
        keyshard_sim::fuzzing::world(&input);
    }
}

#[test]
fn an_input_replays_to_the_same_world_and_choices_change_it() {
    let run = |input: &[u8]| keyshard_sim::run_seed(&keyshard_sim::fuzzing::options_for(input));
    let mut input = 5u64.to_le_bytes().to_vec();
    input.extend((0..256u32).map(|i| (i * 37 % 251) as u8));
    let (a, b) = (run(&input), run(&input));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert!(a.steps > 100, "the world did little: {a:?}");
    // The same seed with other choices is another world.
    input[40] ^= 0xff;
    input[100] ^= 0xff;
    assert_ne!(run(&input).trace_hash, a.trace_hash);
}
