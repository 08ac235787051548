//! CI's replay of the fuzz corpora: every file under `fuzz/corpus/<target>/` goes through the
//! same target body cargo-fuzz runs (`keyshard_core::fuzzing`), so a crash the fuzzer once
//! found (kept in the corpus) fails `cargo test` if it ever comes back. No cargo-fuzz needed.

// Reading the corpus files is this test's whole job; the core's I/O bans are for its library.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use keyshard_core::fuzzing::TARGETS;

/// Corpora of targets whose bodies live in another crate (`sim_world`: `keyshard_sim::fuzzing`,
/// replayed by `simulator/tests/fuzz_corpus.rs`).
const OTHER_CRATES: &[&str] = &["sim_world"];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let mut dirs: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Targets whose bodies live outside the core replay in their own crate's tests.
    dirs.retain(|d| !OTHER_CRATES.contains(&d.as_str()));
    dirs.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(dirs, names, "fuzz/corpus/* and fuzzing::TARGETS differ");
    for (name, _) in TARGETS {
        assert!(
            !files(&corpus_dir().join(name)).is_empty(),
            "the corpus of {name} is empty"
        );
    }
}

#[test]
fn replay_every_corpus() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = corpus_dir().join(name);
        let files = files(&dir);
        for file in &files {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // Name the input if the target panics, so the failure is reproducible with
            // `cargo fuzz run <target> <file>`.
            let ok = std::panic::catch_unwind(|| target(&data));
            assert!(ok.is_ok(), "fuzz target {name} fails on {}", file.display());
        }
        total += files.len();
    }
    println!("replayed {total} corpus files of {} targets", TARGETS.len());
}
