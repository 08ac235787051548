//! Batch apply latency and throughput: MemStore (baseline, no I/O), sled and MongoDB
//! (SecantusDB started here with --sync-on-commit, or KEYSHARD_MONGO_URI), in one run.
//!
//! cargo bench -p keyshard-mongo --bench apply
//!
//! KEYSHARD_BENCH_BATCHES (default 1000) batches per shape for MemStore and sled,
//! KEYSHARD_BENCH_MONGO_BATCHES (default 300) for MongoDB.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, PersistToken, RaftEntry, RecordValue,
    SecretBytes,
};
use keyshard_mongo::MongoStore;
use keyshard_sled::SledStore;
use keyshard_store::{MemDisk, MemStore, Sealer, Store, XChaChaSealer};

/// The batch shapes a node emits most.
#[derive(Clone, Copy)]
enum Shape {
    /// One 256-byte Raft entry and the hard state (steady-state replication).
    RaftSmall,
    /// 64 Raft entries of 1 KiB and the hard state (catching up / bursts).
    RaftBurst,
    /// A new key version: share (sealed), erase of the old one, a task record, a consumed marker.
    Share,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::RaftSmall => "raft-1x256B",
            Shape::RaftBurst => "raft-64x1KiB",
            Shape::Share => "share+erase+record",
        }
    }
    fn ops(self) -> usize {
        match self {
            Shape::RaftSmall => 2,
            Shape::RaftBurst => 65,
            Shape::Share => 4,
        }
    }
    fn batch(self, t: u64, next_index: &mut u64) -> PersistBatch {
        let key = KeyId::new("bench-key").expect("key id");
        let hs = |commit: u64| {
            PersistOp::SetHardState(HardState {
                term: 1,
                vote: 1,
                commit,
            })
        };
        let ops = match self {
            Shape::RaftSmall => vec![entries(next_index, 1, 256), hs(*next_index)],
            Shape::RaftBurst => vec![entries(next_index, 64, 1024), hs(*next_index)],
            Shape::Share => vec![
                PersistOp::PutShare {
                    key: key.clone(),
                    version: KeyVersion(t as u32 + 1),
                    share: SecretBytes::new(vec![7u8; 400]),
                },
                PersistOp::EraseShare {
                    key,
                    version: KeyVersion(t as u32),
                },
                PersistOp::PutRecord {
                    table: "tasks".into(),
                    key: t.to_be_bytes().to_vec(),
                    value: RecordValue::Public(vec![1u8; 200]),
                },
                PersistOp::MarkConsumed {
                    kind: "nonce".into(),
                    id: t.to_be_bytes().to_vec(),
                },
            ],
        };
        PersistBatch {
            token: PersistToken(t),
            ops,
        }
    }
}

fn entries(next_index: &mut u64, n: u64, size: usize) -> PersistOp {
    let first = *next_index;
    *next_index += n;
    PersistOp::AppendEntries(
        (first..first + n)
            .map(|i| RaftEntry {
                index: i,
                term: 1,
                bytes: vec![i as u8; size],
            })
            .collect(),
    )
}

struct Result_ {
    p50: Duration,
    p99: Duration,
    max: Duration,
    per_sec: f64,
}

fn run(store: &dyn Store, shape: Shape, n: u64) -> Result_ {
    let mut next_index = store
        .restore()
        .expect("restore")
        .entries
        .last()
        .map_or(1, |e| e.index + 1);
    let batches: Vec<PersistBatch> = (1..=n).map(|t| shape.batch(t, &mut next_index)).collect();
    // Warm up on a few batches first? No: the log must stay contiguous, so warm-up is the first
    // 5% of the measured run, excluded from the percentiles.
    let warm = (n / 20) as usize;
    let mut lat = Vec::with_capacity(batches.len());
    let start = Instant::now();
    let mut measured_from = start;
    for (i, b) in batches.iter().enumerate() {
        if i == warm {
            measured_from = Instant::now();
        }
        let t0 = Instant::now();
        store.apply(b).expect("apply");
        if i >= warm {
            lat.push(t0.elapsed());
        }
    }
    let elapsed = measured_from.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Result_ {
        p50: pct(0.50),
        p99: pct(0.99),
        max: *lat.last().expect("samples"),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: run only when benchmarking.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("KEYSHARD_BENCH_BATCHES", 1000);
    let n_mongo = env("KEYSHARD_BENCH_MONGO_BATCHES", 300);
    let sealer: Arc<dyn Sealer> = Arc::new(XChaChaSealer::random().expect("rng"));
    let mongo = common::Mongo::new();
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "batches per shape: {n} (MemStore, sled), {n_mongo} (mongo); first 5% are warm-up, excluded"
    );
    println!("| shape | store | p50 µs | p99 µs | max µs | batches/s | ops/s | p50 vs MemStore |");
    println!("|---|---|---|---|---|---|---|---|");
    for (si, shape) in [Shape::RaftSmall, Shape::RaftBurst, Shape::Share]
        .into_iter()
        .enumerate()
    {
        let mem = MemStore::open(MemDisk::new(), "bench", sealer.clone()).expect("mem");
        let sled = SledStore::open(
            dir.path().join(format!("sled-{si}")),
            "bench",
            sealer.clone(),
        )
        .expect("sled");
        let mdb = MongoStore::with_client(
            mongo.client.clone(),
            &common::unique_db("bench"),
            "bench",
            sealer.clone(),
        )
        .expect("mongo");
        let stores: [(&str, &dyn Store); 3] =
            [("MemStore", &mem), ("sled", &sled), ("mongo", &mdb)];
        let mut base = None;
        for (name, store) in stores {
            let r = run(store, shape, if name == "mongo" { n_mongo } else { n });
            let b = *base.get_or_insert(r.p50);
            println!(
                "| {} | {name} | {} | {} | {} | {:.0} | {:.0} | {:.0}x |",
                shape.name(),
                us(r.p50),
                us(r.p99),
                us(r.max),
                r.per_sec,
                r.per_sec * shape.ops() as f64,
                r.p50.as_secs_f64() / b.as_secs_f64().max(1e-9),
            );
        }
    }
}
