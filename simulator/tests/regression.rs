//! Seeds that once failed. Each must now pass every checker (and replay identically).

use keyshard_sim::{run_seed, RunOptions};

/// Seeds and what they found.
const SEEDS: &[(u64, &str)] = &[
    // raft-rs panicked ("the last one of unstable.slice has different index") when a node that
    // had just become leader proposed (queued tasks, re-routed requests) between `ready()` and
    // `advance_append_async`. Fixed in core: the leader-change handling runs after the ready
    // is advanced.
    (2, "a new leader proposing inside a Raft ready"),
    (4, "a new leader proposing inside a Raft ready"),
    // The final probe's sign got NotEnoughParticipants: after a heal, the leader still kept both
    // other nodes of a 3-node cluster in their 60 s timeout cool-down (core's
    // `select::Exclusions`). The probe's client now retries that answer within its bound.
    (474, "signers cooling down after the network healed"),
    // A DKG whose participants were removed stayed `Running` forever (their reports are
    // refused), holding the DKG slot: no key could be created again. Fixed in core: the leader
    // fails running tasks of removed participants.
    (1014, "a DKG stuck after its participants were removed"),
    // A node elected leader after its own removal was proposed applied the removal as leader;
    // raft-rs then panicked in `maybe_commit`. Fixed in core: it steps down and leaves Raft.
    (2846, "a leader applying its own removal"),
    // raft-rs panicked ("to_commit 13 is out of range [last_index 12]") in a follower stepping
    // a heartbeat: the follower had completed an empty ready while an earlier batch was still on
    // its way to disk, so raft-rs took those entries as durable and acknowledged them; a crash
    // lost them and the leader's next heartbeat committed past the follower's log. Fixed in
    // core (an empty ready completes with the pending batch; the same bug the `node` fuzz target
    // found). The `honest-raft-accepted` checker makes sure the core's Raft guard does not
    // merely hide it.
    (
        8211,
        "a follower acknowledging entries before they were durable",
    ),
];

#[test]
fn seeds_that_once_failed_now_pass() {
    for (seed, what) in SEEDS {
        let r = run_seed(&RunOptions {
            seed: *seed,
            ..RunOptions::default()
        });
        assert!(
            r.violations.is_empty(),
            "seed {seed} ({what}) fails again: {:?}\n  replay: {}",
            r.violations,
            r.replay_command()
        );
        assert!(
            r.workload.requests > 0 && r.steps > 1_000,
            "seed {seed} did little: {r:?}"
        );
    }
}

#[test]
fn a_seed_replays_to_the_same_trace_and_another_seed_does_not() {
    let run = |seed| {
        run_seed(&RunOptions {
            seed,
            ..RunOptions::default()
        })
    };
    let (a, b, c) = (run(2), run(2), run(3));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn the_readable_trace_shows_the_run() {
    let r = run_seed(&RunOptions {
        seed: 3,
        trace: true,
        ..RunOptions::default()
    });
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let text = r.trace.join("\n");
    for needle in ["start node 1", "LIVENESS PHASE", "final probe", "Completed"] {
        assert!(text.contains(needle), "the trace lacks {needle:?}");
    }
}

/// With one Byzantine node (replayed run starts, garbage), seeds pass every checker, the
/// attacker did act, and a seed replays to the same trace.
#[test]
fn a_byzantine_node_replaying_starts_breaks_no_checker() {
    let run = |seed| {
        run_seed(&RunOptions {
            seed,
            byzantine: 1,
            ..RunOptions::default()
        })
    };
    let mut replays = 0;
    for seed in 0..8 {
        let r = run(seed);
        assert!(
            r.violations.is_empty(),
            "seed {seed} with --byzantine 1: {:?}\n  replay: {} --byzantine 1",
            r.violations,
            r.replay_command()
        );
        replays += r.world.replays;
    }
    assert!(replays > 0, "the attacker never replayed a start");
    assert_eq!(run(5).trace_hash, run(5).trace_hash);
}
