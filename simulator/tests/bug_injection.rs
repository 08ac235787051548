//! Deliberate core bugs (feature `bug-injection`, switched on per node at run time) must be
//! caught by a checker within the CI seed budget, and the same seeds must pass without them.

use keyshard_sim::world::InjectedBug;
use keyshard_sim::{run_seed, RunOptions};

/// The CI runs seeds 0..200; a bug must be caught by one of them (the search stops at the
/// first, which is early in practice).
const CI_SEEDS: u64 = 200;

fn caught(bug: InjectedBug, checker: &str) -> u64 {
    caught_with(bug, checker, 0)
}

/// As [`caught`], with `byzantine` nodes controlled by the attacker.
fn caught_with(bug: InjectedBug, checker: &str, byzantine: u16) -> u64 {
    for seed in 0..CI_SEEDS {
        let r = run_seed(&RunOptions {
            seed,
            bug: Some(bug),
            byzantine,
            ..RunOptions::default()
        });
        if r.violations.iter().any(|v| v.checker == checker) {
            // The same seed passes with the real code.
            let clean = run_seed(&RunOptions {
                seed,
                byzantine,
                ..RunOptions::default()
            });
            assert!(
                clean.violations.is_empty(),
                "seed {seed} fails without the bug too: {:?}",
                clean.violations
            );
            return seed;
        }
    }
    panic!("{bug:?} was not caught by {checker} in seeds 0..{CI_SEEDS}");
}

#[test]
fn erasing_the_old_version_when_the_new_one_is_staged_is_caught() {
    let seed = caught(InjectedBug::EraseOldWhenStaged, "erase-after-commit");
    eprintln!("EraseOldWhenStaged caught by seed {seed}");
}

#[test]
fn completing_a_dkg_before_every_participant_reported_is_caught() {
    let seed = caught(InjectedBug::CompleteDkgEarly, "members-hold-shares");
    eprintln!("CompleteDkgEarly caught by seed {seed}");
}

/// The nonce-reuse bug of issue 16 (signing randomness from the leader's session key, replayed
/// starts served) is caught by the nonce checker once a Byzantine leader replays its starts.
#[test]
fn signing_randomness_from_the_session_key_is_caught_under_a_byzantine_leader() {
    let seed = caught_with(InjectedBug::ReplayableSigning, "no-nonce-reuse", 1);
    eprintln!("ReplayableSigning caught by seed {seed}");
}
