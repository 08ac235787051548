//! SIGKILL crash test against MongoDB: a child process (this test binary re-run as
//! `crash_child`) applies batches in a loop; the parent kills it at random points and checks that
//! every acknowledged batch is fully present and no batch is partly visible. Every fifth kill
//! also SIGKILLs the (local) SecantusDB server and restarts it. See docs/reliability.md.
//!
//! `KEYSHARD_CRASH_KILLS` (default 50) and `KEYSHARD_CRASH_SEED` (default: from the clock) tune it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use keyshard_mongo::MongoStore;
use keyshard_store::crash::{child_loop, run_parent, CrashConfig, CHILD_ENV};
use keyshard_store::FileSealer;

const URI_ENV: &str = "KEYSHARD_CRASH_MONGO_URI";
const DB_ENV: &str = "KEYSHARD_CRASH_MONGO_DB";

fn open(dir: &std::path::Path, uri: &str, db: &str) -> MongoStore {
    let sealer = FileSealer::open(dir.join("sealing.key")).expect("sealing key");
    MongoStore::open(uri, db, "crash-node", Arc::new(sealer)).expect("open mongo store")
}

/// The child side; does nothing unless started by the parent below.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let uri = std::env::var(URI_ENV).expect("uri");
    let db = std::env::var(DB_ENV).expect("db");
    child_loop(&open(&dir, &uri, &db), Duration::from_secs(60));
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sigkill_at_random_points() {
    let mut server = common::Server::get();
    let uri = server.uri();
    let db = common::unique_db("crash");
    let dir = tempfile::tempdir().expect("tempdir");
    FileSealer::open_or_create(dir.path().join("sealing.key")).expect("sealing key");
    let exe = std::env::current_exe().expect("test binary path");
    let cfg = CrashConfig {
        adapter: "mongo".into(),
        kills: env_u64("KEYSHARD_CRASH_KILLS").unwrap_or(50) as usize,
        seed: env_u64("KEYSHARD_CRASH_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        }),
        max_delay: Duration::from_millis(1000),
        stall_timeout: Duration::from_secs(60),
    };
    let mut server_kills = 0;
    let report = run_parent(
        &cfg,
        || {
            Command::new(&exe)
                .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, dir.path())
                .env(URI_ENV, &uri)
                .env(DB_ENV, &db)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn child")
        },
        || open(dir.path(), &uri, &db),
        |round| {
            if let common::Server::Local(s) = &mut server {
                if round % 5 == 4 {
                    s.kill();
                    s.spawn();
                    server_kills += 1;
                }
            }
        },
    );
    println!(
        "crash[mongo]: seed {:#x}: {report}, server SIGKILLs {server_kills}",
        cfg.seed
    );
    if let common::Server::External(_) = server {
        let client = mongodb::sync::Client::with_uri_str(&uri).expect("client");
        common::drop_database_bounded(&client, &db);
    }
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.lost, 0);
    assert_eq!(report.partial, 0);
    assert!(report.acknowledged > 0, "no batch was acknowledged");
}
