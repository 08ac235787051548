//! The SIGKILL crash harness every durable adapter runs (test support).
//!
//! A child process applies [`crash_batch`]es in a loop and prints `ACK <token>` to stdout after
//! each `apply` returns. The parent kills it with SIGKILL at random points, reopens the store and
//! [`verify`]s that every acknowledged batch is fully present and no batch is partly visible.
//! Every op of batch `t` carries `t` (log entry `t`, share version `t`, erase of version `t-1`,
//! consumed id `t`, record `t`, the secret "last" record, hard state term `t`), so a partial batch
//! shows as a mismatch between them. The hard state's term is the last applied batch `L`; with
//! `A` the highest acknowledged token, `L < A` is a lost batch, and `L` may exceed the larger of
//! `A` and the previous check's `L` by at most one (the batch in flight at the kill).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, PersistOp, PersistToken, RaftEntry, RaftSnapshot,
    RecordValue, SecretBytes,
};

use crate::conformance::Rng;
use crate::Store;

/// The environment variable that turns a test binary into the crash child.
pub const CHILD_ENV: &str = "KEYSHARD_CRASH_CHILD";

const KEY: &str = "crash-key";
const KIND: &str = "crash";
const TABLE: &str = "crash";
const LAST_TABLE: &str = "crash-last";

fn payload(t: u64) -> Vec<u8> {
    format!("batch {t:>12} ").repeat(10).into_bytes()
}

fn share_bytes(t: u64) -> Vec<u8> {
    let mut rng = Rng::new(t ^ 0xC0FF_EE00);
    (0..96).map(|_| rng.next_u64() as u8).collect()
}

fn key() -> KeyId {
    // A constant that is a valid key id.
    KeyId::new(KEY).unwrap_or_else(|_| unreachable!())
}

/// Batch `t` (t >= 1): every op carries `t`; every 16th batch also compacts the log.
pub fn crash_batch(t: u64) -> PersistBatch {
    let mut ops = vec![
        PersistOp::AppendEntries(vec![RaftEntry {
            index: t,
            term: t,
            bytes: payload(t),
        }]),
        PersistOp::PutShare {
            key: key(),
            version: KeyVersion(t as u32),
            share: SecretBytes::new(share_bytes(t)),
        },
    ];
    if t > 1 {
        ops.push(PersistOp::EraseShare {
            key: key(),
            version: KeyVersion((t - 1) as u32),
        });
    }
    ops.push(PersistOp::MarkConsumed {
        kind: KIND.into(),
        id: t.to_be_bytes().to_vec(),
    });
    ops.push(PersistOp::PutRecord {
        table: TABLE.into(),
        key: t.to_be_bytes().to_vec(),
        value: RecordValue::Public(payload(t)),
    });
    ops.push(PersistOp::PutRecord {
        table: LAST_TABLE.into(),
        key: b"last".to_vec(),
        value: RecordValue::Secret(SecretBytes::new(share_bytes(t))),
    });
    if t.is_multiple_of(16) {
        ops.push(PersistOp::InstallSnapshot(RaftSnapshot {
            index: t - 4,
            term: t - 4,
            bytes: payload(t - 4),
        }));
    }
    ops.push(PersistOp::SetHardState(HardState {
        term: t,
        vote: 1,
        commit: t,
    }));
    PersistBatch {
        token: PersistToken(t),
        ops,
    }
}

/// The child's loop: continues after the last applied batch, prints `READY <next>` once and
/// `ACK <t>` after each apply returns, until `max_runtime` (a safety bound; the parent kills it
/// long before).
pub fn child_loop<S: Store>(store: &S, max_runtime: Duration) {
    let start = Instant::now();
    let restored = store
        .restore()
        .unwrap_or_else(|e| panic!("child restore: {e}"));
    let mut t = restored.hard_state.map_or(0, |h| h.term) + 1;
    let stdout = std::io::stdout();
    let say = |line: String| {
        let mut out = stdout.lock();
        // A broken pipe means the parent is gone: stop.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
    };
    // A newline first: libtest may have left "test crash_child ... " unterminated.
    say(format!("\nREADY {t}"));
    while start.elapsed() < max_runtime {
        store
            .apply(&crash_batch(t))
            .unwrap_or_else(|e| panic!("child apply {t}: {e}"));
        say(format!("ACK {t}"));
        t += 1;
    }
}

/// What one verification found.
#[derive(Debug, Default)]
pub struct Verification {
    /// The last batch applied (hard state term).
    pub last_applied: u64,
    /// Acknowledged batches missing.
    pub lost: u64,
    /// What is inconsistent (a partly visible batch, or anything else out of place).
    pub problems: Vec<String>,
}

/// Checks the store after a kill, given the highest acknowledged token so far and the last
/// applied batch the previous check saw (children start right after it).
pub fn verify<S: Store>(store: &S, acked: u64, prev_last: u64) -> Verification {
    let mut v = Verification::default();
    let r = match store.restore() {
        Ok(r) => r,
        Err(e) => {
            v.problems.push(format!("restore failed: {e}"));
            return v;
        }
    };
    let l = r.hard_state.map_or(0, |h| h.term);
    v.last_applied = l;
    v.lost = acked.saturating_sub(l);
    let p = &mut v.problems;
    // At most one batch past what was acknowledged or already seen applied: the one in flight.
    if l > acked.max(prev_last) + 1 {
        p.push(format!(
            "last applied {l} but only {acked} acknowledged (previously applied {prev_last})"
        ));
    }
    if l < prev_last {
        p.push(format!("state went back from batch {prev_last} to {l}"));
    }
    // Log: snapshot at the last 16k - 4 <= l, entries after it up to l.
    let snap = if l >= 16 { (l / 16) * 16 - 4 } else { 0 };
    match (&r.snapshot, snap) {
        (None, 0) => {}
        (Some(s), n) if s.index == n && s.term == n && s.bytes == payload(n) => {}
        (other, n) => p.push(format!(
            "snapshot {:?} where {n} expected",
            other.as_ref().map(|s| s.index)
        )),
    }
    let got: Vec<u64> = r.entries.iter().map(|e| e.index).collect();
    let want: Vec<u64> = (snap + 1..=l).collect();
    if got != want {
        p.push(format!(
            "log holds {:?}..{:?} ({} entries), expected {}..={l}",
            got.first(),
            got.last(),
            got.len(),
            snap + 1
        ));
    }
    if r.entries
        .iter()
        .any(|e| e.term != e.index || e.bytes != payload(e.index))
    {
        p.push("a log entry has the wrong term or bytes".into());
    }
    // Shares: exactly version l held; 1..l-1 erased.
    let k = key();
    let held = r.share_versions.get(&k).cloned().unwrap_or_default();
    let want_held: Vec<KeyVersion> = if l >= 1 {
        vec![KeyVersion(l as u32)]
    } else {
        vec![]
    };
    if held != want_held {
        p.push(format!("share versions {held:?}, expected {want_held:?}"));
    }
    if l >= 1 {
        match store.get_share(&k, KeyVersion(l as u32)) {
            Ok(Some(s)) if s.expose() == share_bytes(l).as_slice() => {}
            Ok(Some(_)) => p.push(format!("share v{l} has the wrong bytes")),
            Ok(None) => p.push(format!("share v{l} missing")),
            Err(e) => p.push(format!("share v{l}: {e}")),
        }
    }
    match store.erased_versions(&k) {
        Ok(erased) => {
            let want: Vec<KeyVersion> = (1..l).map(|x| KeyVersion(x as u32)).collect();
            if erased != want {
                p.push(format!(
                    "{} erased versions (last {:?}), expected 1..{l}",
                    erased.len(),
                    erased.last()
                ));
            }
        }
        Err(e) => p.push(format!("erased versions: {e}")),
    }
    // Consumed markers and records 1..=l, nothing beyond.
    let consumed: BTreeSet<Vec<u8>> = r
        .consumed
        .get(KIND)
        .map(|ids| ids.iter().cloned().collect())
        .unwrap_or_default();
    let want_ids: BTreeSet<Vec<u8>> = (1..=l).map(|t| t.to_be_bytes().to_vec()).collect();
    if consumed != want_ids {
        p.push(format!("{} consumed markers, expected {l}", consumed.len()));
    }
    let records = r.records.get(TABLE).cloned().unwrap_or_default();
    let keys: BTreeSet<Vec<u8>> = records.keys().cloned().collect();
    if keys != want_ids {
        p.push(format!("{} records, expected {l}", records.len()));
    }
    if records.iter().any(|(k, val)| {
        <[u8; 8]>::try_from(k.as_slice()).map_or(true, |b| *val != payload(u64::from_be_bytes(b)))
    }) {
        p.push("a record has the wrong bytes".into());
    }
    match store.get_secret_record(LAST_TABLE, b"last") {
        Ok(Some(s)) if l >= 1 && s.expose() == share_bytes(l).as_slice() => {}
        Ok(None) if l == 0 => {}
        Ok(_) => p.push(format!("secret record 'last' is not batch {l}'s")),
        Err(e) => p.push(format!("secret record 'last': {e}")),
    }
    v
}

/// The parent's knobs.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    /// Adapter name for the report.
    pub adapter: String,
    /// How many times to kill the child.
    pub kills: usize,
    /// Seed for the kill points (printed, so a run can be replayed in timing terms).
    pub seed: u64,
    /// Kill the child up to this long after it reported READY.
    pub max_delay: Duration,
    /// Give up if the child prints nothing for this long.
    pub stall_timeout: Duration,
}

/// What a crash run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Child processes killed with SIGKILL.
    pub kills: usize,
    /// Kills that landed before the child reported READY (during open/restore).
    pub kills_before_ready: usize,
    /// Batches acknowledged by children, all runs together.
    pub acknowledged: u64,
    /// Acknowledged batches missing after a restart.
    pub lost: u64,
    /// Restarts that found a partly applied batch or any other inconsistency.
    pub partial: u64,
    /// The last batch applied at the end.
    pub last_token: u64,
    /// Every problem seen.
    pub problems: Vec<String>,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kills={} (before ready {}) acknowledged={} lost={} partial={} last_token={}",
            self.kills,
            self.kills_before_ready,
            self.acknowledged,
            self.lost,
            self.partial,
            self.last_token
        )
    }
}

fn reader(stdout: ChildStdout) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, handle)
}

/// Runs the kill loop. `spawn` starts a child (stdout piped) that runs [`child_loop`]; `open`
/// opens the store in the parent (dropped before the next child starts); `after_kill` runs after
/// each kill, before verification (e.g. to also crash and restart a database server).
pub fn run_parent<S: Store>(
    cfg: &CrashConfig,
    mut spawn: impl FnMut() -> Child,
    mut open: impl FnMut() -> S,
    mut after_kill: impl FnMut(usize),
) -> CrashReport {
    let mut rng = Rng::new(cfg.seed);
    let mut report = CrashReport::default();
    let mut acked_max = 0u64;
    eprintln!(
        "crash[{}]: seed {:#x}, {} kills",
        cfg.adapter, cfg.seed, cfg.kills
    );
    for round in 0..cfg.kills {
        let mut child = spawn();
        let Some(stdout) = child.stdout.take() else {
            panic!("child stdout must be piped");
        };
        let (rx, handle) = reader(stdout);
        let early = rng.below(8) == 0;
        let delay = Duration::from_micros(rng.below(cfg.max_delay.as_micros() as u64 + 1));
        let mut ready = false;
        let mut acks: Vec<u64> = Vec::new();
        let on_line = |line: &str, ready: &mut bool, acks: &mut Vec<u64>| {
            if line.contains("READY ") {
                *ready = true;
            } else if let Some(t) = line.strip_prefix("ACK ") {
                acks.push(
                    t.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("bad ACK line {line:?}")),
                );
            }
        };
        if early {
            std::thread::sleep(delay / 8);
        } else {
            let waited = Instant::now();
            while !ready {
                match rx.recv_timeout(cfg.stall_timeout.saturating_sub(waited.elapsed())) {
                    Ok(line) => on_line(&line, &mut ready, &mut acks),
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "crash[{}] round {round}: child not READY within {:?}",
                            cfg.adapter, cfg.stall_timeout
                        );
                    }
                }
            }
            std::thread::sleep(delay);
        }
        // SIGKILL (std's kill() sends SIGKILL on Unix).
        let _ = child.kill();
        let _ = child.wait();
        report.kills += 1;
        // The pipe closes with the child: collect every line it wrote before dying.
        let _ = handle.join();
        while let Ok(line) = rx.try_recv() {
            on_line(&line, &mut ready, &mut acks);
        }
        if !ready {
            report.kills_before_ready += 1;
        }
        if acks.windows(2).any(|w| w[1] != w[0] + 1) {
            report
                .problems
                .push(format!("round {round}: ACKs not consecutive"));
        }
        if let Some(&first) = acks.first() {
            if first != report.last_token + 1 {
                report.problems.push(format!(
                    "round {round}: child started at {first}, not after the last applied batch {}",
                    report.last_token
                ));
            }
        }
        report.acknowledged += acks.len() as u64;
        acked_max = acked_max.max(acks.last().copied().unwrap_or(0));
        after_kill(round);
        let store = open();
        let v = verify(&store, acked_max, report.last_token);
        drop(store);
        report.lost += v.lost;
        if !v.problems.is_empty() {
            report.partial += 1;
            for p in &v.problems {
                report.problems.push(format!("round {round}: {p}"));
            }
        }
        report.last_token = v.last_applied;
        if round % 10 == 9 {
            eprintln!(
                "crash[{}]: after {} kills: {report}",
                cfg.adapter,
                round + 1
            );
        }
    }
    eprintln!("crash[{}]: {report}", cfg.adapter);
    for p in report.problems.iter().take(20) {
        eprintln!("crash[{}]: problem: {p}", cfg.adapter);
    }
    report
}
