use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use super::*;

const NODE: u16 = 7;

/// This node's audit key in these tests.
fn key() -> AuditKey {
    AuditKey::derive(&[7u8; 32])
}

/// The checkpoint next to a test's log.
fn cp(log: &Path) -> PathBuf {
    log.with_file_name(CHECKPOINT_FILE)
}

fn open(path: &Path) -> Result<AuditLog, AuditError> {
    AuditLog::open(path, &cp(path), NODE, key())
}

fn open_repairing(path: &Path, at: SystemTime) -> Result<(AuditLog, Option<TornTail>), AuditError> {
    AuditLog::open_repairing(path, &cp(path), NODE, key(), at)
}

/// Verifies with this node's key and the checkpoint.
fn check(path: &Path) -> Result<VerifyReport, AuditError> {
    verify(path, &key(), Some(&cp(path)))
}

fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_767_225_600_000 + ms)
}

fn signed(i: u32) -> AuditEvent {
    AuditEvent::Signed {
        key: format!("key-{}", i % 3),
        version: 1,
        count: i,
        request_id: format!("req-{i}"),
    }
}

fn events() -> Vec<AuditEvent> {
    let mut v = vec![
        AuditEvent::NodeStarted {
            node: NODE,
            version: "0.1.0".into(),
        },
        AuditEvent::LeaderChanged {
            leader: Some(2),
            term: 4,
        },
        AuditEvent::KeyCreated {
            key: "payments".into(),
            scheme: "frost-ed25519".into(),
            version: 1,
        },
        AuditEvent::Reshared {
            key: "payments".into(),
            from_version: 1,
            to_version: 2,
        },
        AuditEvent::PermissionDenied {
            who: "CN=app-9".into(),
            rpc: "CreateKey".into(),
            reason: "role application may not create keys".into(),
        },
        AuditEvent::PeerRejected {
            who: "10.0.0.9:4411".into(),
            reason: "certificate not signed by the cluster CA".into(),
        },
        AuditEvent::PeerMisbehaved {
            peer: 4,
            reason: "round-2 package for another session".into(),
        },
        AuditEvent::TaskFailed {
            task: "dkg".into(),
            key: "k\n\"quoted\"".into(),
            reason: "timeout in round 2".into(),
            culprits: vec![4, 5],
        },
        AuditEvent::LeaderChanged {
            leader: None,
            term: 5,
        },
        AuditEvent::NodeStopping { node: NODE },
    ];
    v.extend((0..4).map(signed));
    v
}

/// A log written through `AuditLog` (synced appends), and its path.
fn written(dir: &Path) -> PathBuf {
    let path = dir.join("audit.log");
    let mut log = open(&path).unwrap();
    for (i, e) in events().iter().enumerate() {
        let a = log.append(t(i as u64), e).unwrap();
        assert_eq!(a.seq, i as u64 + 1);
    }
    path
}

/// Writes a checkpoint pinning line `seq` (hash `hash`, previous line's hash `prev`), as the
/// writer leaves it, for logs these tests build line by line.
fn pin(path: &Path, seq: u64, hash: &str, prev: &str) {
    let head = |seq, hash: &str| checkpoint::Head {
        node: NODE,
        seq,
        hash: hash.to_string(),
    };
    let file = checkpoint::CheckpointFile::create(&cp(path), &key(), &head(seq - 1, prev)).unwrap();
    file.write(&key(), &head(seq, hash)).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    fs::write(path, s).unwrap();
}

fn err_line(path: &Path) -> (u64, String) {
    let e = check(path).unwrap_err();
    (e.line.expect("a line number"), e.what)
}

#[test]
fn a_written_log_verifies_and_reopening_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let n = events().len() as u64;
    let report = check(&path).unwrap();
    assert_eq!(report.lines, n);
    assert_eq!(report.node, Some(NODE));
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["prev"], genesis(NODE));
    assert_eq!(
        first["time"], "2026-01-01T00:00:00.000Z",
        "time from the clock passed"
    );

    let mut log = open(&path).unwrap();
    assert_eq!(log.seq(), n);
    assert_eq!(Some(log.last_hash().to_string()), report.last_hash);
    let a = log.append(t(99), &signed(99)).unwrap();
    assert_eq!(a.seq, n + 1);
    let again = check(&path).unwrap();
    assert_eq!(again.lines, n + 1);
    assert_eq!(again.last_hash, Some(a.hash));
}

#[test]
fn an_empty_or_new_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.log");
    let log = open(&path).unwrap();
    assert_eq!((log.seq(), log.last_hash()), (0, genesis(NODE).as_str()));
    assert_eq!(
        check(&path).unwrap(),
        VerifyReport {
            lines: 0,
            last_hash: None,
            node: Some(NODE),
            checkpoint: Some(CheckpointReport {
                seq: 0,
                hash: genesis(NODE),
                warning: None
            }),
        }
    );
    assert_eq!(
        verify(&path, &key(), None).unwrap(),
        VerifyReport {
            lines: 0,
            last_hash: None,
            node: None,
            checkpoint: None,
        }
    );
}

#[test]
fn an_edited_line_is_caught_at_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l[2] = l[2].replace("payments", "payroll");
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 3, "{what}");
    assert!(what.contains("edited"), "{what}");
}

#[test]
fn an_edited_line_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    let rec = record::parse(&key(), l[4].as_bytes()).unwrap();
    let forged = AuditEvent::PermissionDenied {
        who: "CN=someone-else".into(),
        rpc: "CreateKey".into(),
        reason: "-".into(),
    };
    l[4] = record::encode(&key(), rec.seq, &rec.time, &forged, &rec.prev)
        .unwrap()
        .0;
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 6, "{what}");
    assert!(what.contains("prev does not match line 5"), "{what}");
}

#[test]
fn whitespace_in_a_line_is_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l[1] = l[1].replacen(",\"time\"", ", \"time\"", 1);
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 2);
    assert!(what.contains("canonical"), "{what}");
}

#[test]
fn a_removed_line_is_caught_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l.remove(5);
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 6, "{what}");
    assert!(what.contains("seq is 7, expected 6"), "{what}");
}

#[test]
fn a_removed_first_line_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l.remove(0);
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 1);
    assert!(what.contains("seq is 2, expected 1"), "{what}");
    // And renumbering does not help: the first line must chain from a genesis value.
    let rec = record::parse(&key(), l[0].as_bytes()).unwrap();
    l[0] = record::encode(&key(), 1, &rec.time, &rec.event, &rec.prev)
        .unwrap()
        .0;
    rewrite(&path, &l[..1]);
    let (line, what) = err_line(&path);
    assert_eq!(line, 1);
    assert!(what.contains("genesis"), "{what}");
}

#[test]
fn reordered_lines_are_caught_at_the_first_moved_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l.swap(3, 4);
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 4, "{what}");
    assert!(what.contains("seq is 5, expected 4"), "{what}");
}

#[test]
fn a_stretch_cut_from_the_middle_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l.drain(3..8);
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 4, "{what}");
    assert!(what.contains("seq is 9, expected 4"), "{what}");
}

#[test]
fn renumbered_lines_after_a_cut_still_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l.drain(3..5);
    // Renumber every later line and recompute its own hash, but leave `prev` as it was.
    for (i, text) in l.iter_mut().enumerate().skip(3) {
        let rec = record::parse(&key(), text.as_bytes()).unwrap();
        *text = record::encode(&key(), i as u64 + 1, &rec.time, &rec.event, &rec.prev)
            .unwrap()
            .0;
    }
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 4, "{what}");
    assert!(what.contains("prev does not match line 3"), "{what}");
}

#[test]
fn bad_json_is_caught_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    l[7] = l[7][..l[7].len() - 2].to_string();
    rewrite(&path, &l);
    let (line, what) = err_line(&path);
    assert_eq!(line, 8);
    assert!(what.contains("bad JSON"), "{what}");

    let mut l = lines(&path);
    l[7] = String::new();
    rewrite(&path, &l);
    assert_eq!(err_line(&path), (8, "empty line".to_string()));
}

#[test]
fn a_torn_last_line_is_reported_refused_and_repaired_into_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let n = events().len() as u64;
    let whole = fs::read(&path).unwrap();
    // What a crash in the middle of the next append leaves: a prefix without its newline.
    let next = record::encode(&key(), n + 1, "2026-01-01T00:00:01.000Z", &signed(1), "00")
        .unwrap()
        .0;
    let torn = &next.as_bytes()[..40];
    let mut bytes = whole.clone();
    bytes.extend_from_slice(torn);
    fs::write(&path, &bytes).unwrap();

    let (line, what) = err_line(&path);
    assert_eq!(line, n + 1);
    assert!(what.contains("incomplete last line (40 bytes"), "{what}");

    let e = open(&path).unwrap_err();
    assert_eq!(e.line, Some(n + 1));
    assert!(e.what.contains("incomplete"), "{}", e.what);
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "a refused open changes nothing"
    );

    let (mut log, cut) = open_repairing(&path, t(500)).unwrap();
    let cut = cut.expect("the torn line was cut");
    assert_eq!((cut.line, cut.bytes), (n + 1, 40));
    assert_eq!(cut.sha256, hex::encode(sha2::Sha256::digest(torn)));
    assert_eq!(
        log.seq(),
        n + 1,
        "the repair event took the torn line's place"
    );
    log.append(t(501), &signed(7)).unwrap();
    let report = check(&path).unwrap();
    assert_eq!(report.lines, n + 2);
    let l = lines(&path);
    let rec = record::parse(&key(), l[n as usize].as_bytes()).unwrap();
    assert_eq!(
        rec.event,
        AuditEvent::TornTailDropped {
            line: n + 1,
            bytes: 40,
            sha256: cut.sha256
        }
    );
    // A clean log opens with repair as if nothing happened.
    let (_, cut) = open_repairing(&path, t(502)).unwrap();
    assert_eq!(cut, None);
    assert_eq!(check(&path).unwrap().lines, n + 2);
}

#[test]
fn a_torn_only_line_in_a_new_log_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, [0u8; 17]).unwrap(); // zeros, as some file systems leave after a crash
    assert_eq!(verify(&path, &key(), None).unwrap_err().line, Some(1));
    let (log, cut) = open_repairing(&path, t(0)).unwrap();
    assert_eq!(cut.map(|c| (c.line, c.bytes)), Some((1, 17)));
    assert_eq!(log.seq(), 1);
    assert_eq!(check(&path).unwrap().lines, 1);
}

#[test]
fn another_nodes_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let e = AuditLog::open(&path, &cp(&path), NODE + 1, key()).unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.what.contains("it is node 7's log"), "{}", e.what);
}

#[test]
fn a_broken_last_line_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut l = lines(&path);
    let last = l.len() - 1;
    l[last] = l[last].replace("req-3", "req-4");
    rewrite(&path, &l);
    let e = open(&path).unwrap_err();
    assert_eq!(e.line, Some(l.len() as u64));
    assert!(e.what.contains("edited"), "{}", e.what);
}

#[test]
fn a_long_log_resumes_from_its_tail() {
    // Larger than the window `open` reads from the end, written without fsyncs for speed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut text = String::new();
    let mut prev = genesis(NODE);
    let n = 1500u64;
    let mut prev_of_last = String::new();
    for i in 1..=n {
        prev_of_last = prev.clone();
        let (line, hash) = record::encode(
            &key(),
            i,
            "2026-01-01T00:00:00.000Z",
            &signed(i as u32),
            &prev,
        )
        .unwrap();
        text.push_str(&line);
        text.push('\n');
        prev = hash;
    }
    assert!(text.len() > 2 * (MAX_LINE + 1));
    fs::write(&path, &text).unwrap();
    pin(&path, n, &prev, &prev_of_last);
    let mut log = open(&path).unwrap();
    assert_eq!((log.seq(), log.last_hash()), (n, prev.as_str()));
    log.append(t(0), &signed(0)).unwrap();
    assert_eq!(check(&path).unwrap().lines, n + 1);
}

#[test]
fn unwritable_times_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut log = open(&path).unwrap();
    let e = log
        .append(UNIX_EPOCH - Duration::from_secs(1), &signed(1))
        .unwrap_err();
    assert_eq!(e.line, Some(1));
    assert_eq!(fs::read(&path).unwrap().len(), 0);
    log.append(t(0), &signed(1)).unwrap();
    assert_eq!(check(&path).unwrap().lines, 1);
}

struct TickingClock(std::sync::atomic::AtomicU64);

impl Clock for TickingClock {
    fn now(&self) -> SystemTime {
        t(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_handle_serialises_appends_from_many_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let clock = Arc::new(TickingClock(0.into()));
    let shared = SharedAuditLog::new(open(&path).unwrap(), clock);
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                let a = shared.append_async(signed(task * 100 + i)).await.unwrap();
                seqs.push(a.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=80).collect::<Vec<u64>>(),
        "every seq exactly once"
    );
    let report = check(&path).unwrap();
    assert_eq!(report.lines, 80);
    assert_eq!(Some(shared.head().unwrap().1), report.last_hash);
    // Timestamps follow line order: the clock is read under the lock.
    let times: Vec<String> = lines(&path)
        .iter()
        .map(|l| record::parse(&key(), l.as_bytes()).unwrap().time)
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

// ---- The keyed chain and the checkpoint (issue 16, item 7) ----

/// A line in the old unkeyed format (v1): `hash = SHA-256(prev || "\n" || body)`.
fn v1_line(seq: u64, event: &AuditEvent, prev: &str) -> (String, String) {
    let body = format!(
        "{{\"seq\":{seq},\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":{},\"prev\":\"{prev}\"}}",
        serde_json::to_string(event).unwrap()
    );
    let hash = hex::encode(sha2::Sha256::digest(format!("{prev}\n{body}").as_bytes()));
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    (line, hash)
}

/// A line in the v2 layout but with a plain SHA-256 where the MAC goes: what someone without
/// the key can compute.
fn unkeyed_v2_line(seq: u64, event: &AuditEvent, prev: &str) -> (String, String) {
    let body = format!(
        "{{\"v\":2,\"seq\":{seq},\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":{},\"prev\":\"{prev}\"}}",
        serde_json::to_string(event).unwrap()
    );
    let hash = hex::encode(sha2::Sha256::digest(format!("{prev}\n{body}").as_bytes()));
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    (line, hash)
}

/// A whole chain of `events` built by `line`, starting from `genesis`.
fn chain(
    events: &[AuditEvent],
    genesis: String,
    line: fn(u64, &AuditEvent, &str) -> (String, String),
) -> String {
    let mut prev = genesis;
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let (l, h) = line(i as u64 + 1, e, &prev);
        text.push_str(&l);
        text.push('\n');
        prev = h;
    }
    text
}

/// The events an intruder would rather the log said.
fn forged_events() -> Vec<AuditEvent> {
    events()
        .into_iter()
        .filter(|e| !matches!(e, AuditEvent::PermissionDenied { .. }))
        .collect()
}

#[test]
fn a_full_rewrite_with_a_recomputed_unkeyed_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let v1_genesis = hex::encode(sha2::Sha256::digest(
        format!("keyshard audit log genesis v1\n{NODE}").as_bytes(),
    ));
    // The old format, recomputed from its public genesis: what the unkeyed chain accepted.
    fs::write(&path, chain(&forged_events(), v1_genesis, v1_line)).unwrap();
    for result in [check(&path), verify(&path, &key(), None)] {
        let e = result.unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.what.contains("unkeyed (v1"), "{e}");
    }
    assert_eq!(open(&path).unwrap_err().line, Some(1));
    // The keyed layout with plain SHA-256 in place of the MAC.
    fs::write(
        &path,
        chain(&forged_events(), genesis(NODE), unkeyed_v2_line),
    )
    .unwrap();
    for result in [check(&path), verify(&path, &key(), None)] {
        let e = result.unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.what.contains("hash does not match"), "{e}");
        assert!(e.what.contains("without this node's key"), "{e}");
    }
    let e = open(&path).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn a_full_rewrite_under_another_key_is_refused_naming_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    // A complete, self-consistent log and checkpoint under another node's key (say, the
    // intruder's own node), copied over this node's files.
    let elsewhere = tempfile::tempdir().unwrap();
    let fake = elsewhere.path().join("audit.log");
    let other = AuditKey::derive(&[8u8; 32]);
    let mut log = AuditLog::open(&fake, &cp(&fake), NODE, other).unwrap();
    for (i, e) in forged_events().iter().enumerate() {
        log.append(t(i as u64), e).unwrap();
    }
    drop(log);
    fs::copy(&fake, &path).unwrap();
    let e = check(&path).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.what.contains("without this node's key"), "{e}");
    fs::copy(cp(&fake), cp(&path)).unwrap();
    let e = check(&path).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.what.contains("without this node's key"), "{e}");
    let e = open(&path).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.what.contains("sealing key was replaced"), "{e}");
    // The same files pass under the key they were written with: the key is what differs.
    let other = AuditKey::derive(&[8u8; 32]);
    assert!(verify(&path, &other, Some(&cp(&path))).is_ok());
}

#[test]
fn truncating_the_tail_is_detected_by_the_checkpoint() {
    let n = events().len();
    for cut in [1, 2, 5, n] {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let l = lines(&path);
        if cut == n {
            fs::write(&path, "").unwrap();
        } else {
            rewrite(&path, &l[..n - cut]);
        }
        let kept = (n - cut) as u64;
        let (line, what) = err_line(&path);
        assert_eq!(line, kept + 1, "cut {cut}: {what}");
        assert!(what.contains("cut off the end"), "cut {cut}: {what}");
        assert!(
            what.contains(&format!(
                "ends at line {kept} but its checkpoint records line {n}"
            )),
            "cut {cut}: {what}"
        );
        // The chain alone cannot see it: this is what the checkpoint adds.
        assert_eq!(verify(&path, &key(), None).unwrap().lines, kept);
        // Nor does the node paper over it by starting to append after the cut.
        for e in [
            open(&path).unwrap_err(),
            open_repairing(&path, t(9)).unwrap_err(),
        ] {
            assert_eq!(e.line, Some(kept + 1), "cut {cut}: {e}");
            assert!(e.what.contains("cut off the end"), "cut {cut}: {e}");
        }
    }
}

#[test]
fn a_missing_checkpoint_is_refused_and_a_foreign_one_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let saved = fs::read(cp(&path)).unwrap();
    fs::remove_file(cp(&path)).unwrap();
    let e = check(&path).unwrap_err();
    assert!(e.what.contains("does not exist"), "{e}");
    assert_eq!(
        verify(&path, &key(), None).unwrap().lines,
        events().len() as u64
    );
    let e = open_repairing(&path, t(9)).unwrap_err();
    assert!(e.what.contains("is missing but the log has"), "{e}");
    assert!(!cp(&path).exists(), "a refused open creates no checkpoint");
    // Another key's checkpoint: the log checks out, the checkpoint does not.
    let other = tempfile::tempdir().unwrap();
    let other_log = other.path().join("audit.log");
    AuditLog::open(
        &other_log,
        &cp(&other_log),
        NODE,
        AuditKey::derive(&[8u8; 32]),
    )
    .unwrap();
    fs::copy(cp(&other_log), cp(&path)).unwrap();
    let e = check(&path).unwrap_err();
    assert_eq!(e.line, None, "{e}");
    assert!(e.what.contains("no usable head"), "{e}");
    // Back to the real one.
    fs::write(cp(&path), saved).unwrap();
    assert!(check(&path).is_ok());
}

#[test]
fn a_checkpoint_one_line_behind_is_what_a_crash_leaves_and_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let n = events().len() as u64;
    let before = fs::read(cp(&path)).unwrap();
    let mut log = open(&path).unwrap();
    log.append(t(50), &signed(50)).unwrap();
    drop(log);
    // As if the node died after syncing line n+1 and before its checkpoint write.
    fs::write(cp(&path), &before).unwrap();
    let report = check(&path).unwrap();
    assert_eq!(report.lines, n + 1);
    assert_eq!(report.checkpoint.as_ref().map(|c| c.seq), Some(n));
    // Opening moves the checkpoint to the log's head.
    let mut log = open(&path).unwrap();
    assert_eq!(check(&path).unwrap().checkpoint.map(|c| c.seq), Some(n + 1));
    // Two lines behind is no crash: an old copy put back.
    log.append(t(51), &signed(51)).unwrap();
    drop(log);
    fs::write(cp(&path), &before).unwrap();
    let e = open(&path).unwrap_err();
    assert!(e.what.contains("older copy of the checkpoint"), "{e}");
}

#[test]
fn a_torn_checkpoint_slot_warns_then_is_repaired_into_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let n = events().len() as u64;
    // Tear the newest slot (line n's), as a crash during its write could.
    let mut bytes = fs::read(cp(&path)).unwrap();
    let slot = (n % 2) as usize * checkpoint::SLOT;
    bytes[slot + 20..slot + 60].fill(0);
    fs::write(cp(&path), &bytes).unwrap();
    let report = check(&path).unwrap();
    let c = report.checkpoint.unwrap();
    assert_eq!(c.seq, n - 1);
    assert!(c.warning.unwrap().contains("unusable"));
    let e = open(&path).unwrap_err();
    assert!(e.what.contains("unusable"), "{e}");
    let (log, cut) = open_repairing(&path, t(70)).unwrap();
    assert_eq!((log.seq(), cut), (n + 1, None));
    let last = lines(&path).pop().unwrap();
    let rec = record::parse(&key(), last.as_bytes()).unwrap();
    assert!(
        matches!(&rec.event, AuditEvent::CheckpointRepaired { reason } if reason.contains("slot")),
        "{:?}",
        rec.event
    );
    let report = check(&path).unwrap();
    assert_eq!(report.checkpoint.unwrap().warning, None);
}

#[test]
fn rolling_back_both_files_together_is_not_detected_locally() {
    // The documented limit of a node-local checkpoint (docs/security.md): someone who can
    // write both files can put back an earlier copy of both. Only a copy of the head kept off
    // the node (peers, a ticket) catches this.
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let (old_log, old_cp) = (fs::read(&path).unwrap(), fs::read(cp(&path)).unwrap());
    let mut log = open(&path).unwrap();
    for i in 0..3 {
        log.append(t(80 + i), &signed(80 + i as u32)).unwrap();
    }
    drop(log);
    fs::write(&path, old_log).unwrap();
    fs::write(cp(&path), old_cp).unwrap();
    assert_eq!(check(&path).unwrap().lines, events().len() as u64);
}

#[test]
fn a_v1_log_is_moved_aside_and_pinned_by_the_new_keyed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let v1_genesis = hex::encode(sha2::Sha256::digest(
        format!("keyshard audit log genesis v1\n{NODE}").as_bytes(),
    ));
    let old = chain(&events(), v1_genesis, v1_line);
    fs::write(&path, &old).unwrap();
    let e = open(&path).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.what.contains("moves a v1 log aside"), "{e}");

    let (log, _) = open_repairing(&path, t(0)).unwrap();
    assert_eq!(log.seq(), 1);
    let moved: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("audit.log.v1-"))
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(fs::read_to_string(&moved[0]).unwrap(), old);
    let first = record::parse(&key(), lines(&path)[0].as_bytes()).unwrap();
    assert_eq!(
        first.event,
        AuditEvent::LegacyLogArchived {
            file: moved[0].display().to_string(),
            bytes: old.len() as u64,
            lines: events().len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(old.as_bytes())),
        }
    );
    assert_eq!(check(&path).unwrap().lines, 1);

    // A keyed log (it has a checkpoint) replaced by an unkeyed one is no upgrade: refused.
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let v1 = chain(&events(), "00".repeat(32), v1_line);
    fs::write(&path, &v1).unwrap();
    let e = open_repairing(&path, t(0)).unwrap_err();
    assert!(e.what.contains("replaced by an unkeyed one"), "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), v1, "nothing moved");
}
