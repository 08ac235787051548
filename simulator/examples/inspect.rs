//! Runs a seed up to a virtual time and prints every running node's view of the registry
//! (leader, term, members, tasks): for investigating a failing seed beyond its trace.
//! `cargo run --release -p keyshard-sim --example inspect -- SEED UNTIL_MS`

use keyshard_core::ids::ParticipantId;
use keyshard_sim::world::World;
use keyshard_sim::RunOptions;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (seed, until) = (
        args.first().copied().unwrap_or(0),
        args.get(1).copied().unwrap_or(60_000),
    );
    let mut w = World::new(&RunOptions {
        seed,
        ..RunOptions::default()
    });
    while w.now() < until && w.step() {}
    for id in (1..=16).filter_map(ParticipantId::new) {
        let Some(n) = w.node(id) else { continue };
        let r = n.registry();
        println!(
            "node {id}: term {} leader {:?} members {:?} keys {:?}",
            n.term(),
            n.leader(),
            r.members.keys().map(|p| p.get()).collect::<Vec<_>>(),
            r.keys
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.version.0))
                .collect::<Vec<_>>()
        );
        if let Some(d) = w.disk(id) {
            println!("  durable hard state {:?}", d.hard_state);
            for e in d.entries.values() {
                let mut rd = keyshard_core::codec::Reader::new(&e.bytes);
                let Ok(entry) = keyshard_core::node::raft_wire::read_entry(&mut rd) else {
                    continue;
                };
                let what = if entry.get_data().is_empty() {
                    "(empty)".to_string()
                } else {
                    match keyshard_core::node::registry::Replicated::decode(entry.get_data()) {
                        Ok(cmd) => format!("{cmd:?}").chars().take(160).collect(),
                        Err(e) => format!("undecodable: {e}"),
                    }
                };
                println!("  entry {} term {}: {what}", e.index, e.term);
            }
        }
        println!("  requests {:?}", r.requests);
        for (t, rec) in &r.tasks {
            println!(
                "  task {t}: {} {:?} attempt {} {:?}",
                rec.request_id, rec.kind, rec.attempt, rec.state
            );
        }
    }
}
