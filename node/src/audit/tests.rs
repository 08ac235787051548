use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use super::*;

const NODE: u16 = 7;

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
    let mut log = AuditLog::open(&path, NODE).unwrap();
    for (i, e) in events().iter().enumerate() {
        let a = log.append(t(i as u64), e).unwrap();
        assert_eq!(a.seq, i as u64 + 1);
    }
    path
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
    let e = verify(path).unwrap_err();
    (e.line.expect("a line number"), e.what)
}

#[test]
fn a_written_log_verifies_and_reopening_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let n = events().len() as u64;
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, n);
    assert_eq!(report.node, Some(NODE));
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["prev"], genesis(NODE));
    assert_eq!(
        first["time"], "2026-01-01T00:00:00.000Z",
        "time from the clock passed"
    );

    let mut log = AuditLog::open(&path, NODE).unwrap();
    assert_eq!(log.seq(), n);
    assert_eq!(Some(log.last_hash().to_string()), report.last_hash);
    let a = log.append(t(99), &signed(99)).unwrap();
    assert_eq!(a.seq, n + 1);
    let again = verify(&path).unwrap();
    assert_eq!(again.lines, n + 1);
    assert_eq!(again.last_hash, Some(a.hash));
}

#[test]
fn an_empty_or_new_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.log");
    let log = AuditLog::open(&path, NODE).unwrap();
    assert_eq!((log.seq(), log.last_hash()), (0, genesis(NODE).as_str()));
    assert_eq!(
        verify(&path).unwrap(),
        VerifyReport {
            lines: 0,
            last_hash: None,
            node: None
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
    let rec = record::parse(l[4].as_bytes()).unwrap();
    let forged = AuditEvent::PermissionDenied {
        who: "CN=someone-else".into(),
        rpc: "CreateKey".into(),
        reason: "-".into(),
    };
    l[4] = record::encode(rec.seq, &rec.time, &forged, &rec.prev)
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
    let rec = record::parse(l[0].as_bytes()).unwrap();
    l[0] = record::encode(1, &rec.time, &rec.event, &rec.prev)
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
        let rec = record::parse(text.as_bytes()).unwrap();
        *text = record::encode(i as u64 + 1, &rec.time, &rec.event, &rec.prev)
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
    let next = record::encode(n + 1, "2026-01-01T00:00:01.000Z", &signed(1), "00")
        .unwrap()
        .0;
    let torn = &next.as_bytes()[..40];
    let mut bytes = whole.clone();
    bytes.extend_from_slice(torn);
    fs::write(&path, &bytes).unwrap();

    let (line, what) = err_line(&path);
    assert_eq!(line, n + 1);
    assert!(what.contains("incomplete last line (40 bytes"), "{what}");

    let e = AuditLog::open(&path, NODE).unwrap_err();
    assert_eq!(e.line, Some(n + 1));
    assert!(e.what.contains("incomplete"), "{}", e.what);
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "a refused open changes nothing"
    );

    let (mut log, cut) = AuditLog::open_repairing(&path, NODE, t(500)).unwrap();
    let cut = cut.expect("the torn line was cut");
    assert_eq!((cut.line, cut.bytes), (n + 1, 40));
    assert_eq!(cut.sha256, hex::encode(sha2::Sha256::digest(torn)));
    assert_eq!(
        log.seq(),
        n + 1,
        "the repair event took the torn line's place"
    );
    log.append(t(501), &signed(7)).unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, n + 2);
    let l = lines(&path);
    let rec = record::parse(l[n as usize].as_bytes()).unwrap();
    assert_eq!(
        rec.event,
        AuditEvent::TornTailDropped {
            line: n + 1,
            bytes: 40,
            sha256: cut.sha256
        }
    );
    // A clean log opens with repair as if nothing happened.
    let (_, cut) = AuditLog::open_repairing(&path, NODE, t(502)).unwrap();
    assert_eq!(cut, None);
    assert_eq!(verify(&path).unwrap().lines, n + 2);
}

#[test]
fn a_torn_only_line_in_a_new_log_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, [0u8; 17]).unwrap(); // zeros, as some file systems leave after a crash
    assert_eq!(verify(&path).unwrap_err().line, Some(1));
    let (log, cut) = AuditLog::open_repairing(&path, NODE, t(0)).unwrap();
    assert_eq!(cut.map(|c| (c.line, c.bytes)), Some((1, 17)));
    assert_eq!(log.seq(), 1);
    assert_eq!(verify(&path).unwrap().lines, 1);
}

#[test]
fn another_nodes_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let e = AuditLog::open(&path, NODE + 1).unwrap_err();
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
    let e = AuditLog::open(&path, NODE).unwrap_err();
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
    for i in 1..=n {
        let (line, hash) =
            record::encode(i, "2026-01-01T00:00:00.000Z", &signed(i as u32), &prev).unwrap();
        text.push_str(&line);
        text.push('\n');
        prev = hash;
    }
    assert!(text.len() > 2 * (MAX_LINE + 1));
    fs::write(&path, &text).unwrap();
    let mut log = AuditLog::open(&path, NODE).unwrap();
    assert_eq!((log.seq(), log.last_hash()), (n, prev.as_str()));
    log.append(t(0), &signed(0)).unwrap();
    assert_eq!(verify(&path).unwrap().lines, n + 1);
}

#[test]
fn unwritable_times_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut log = AuditLog::open(&path, NODE).unwrap();
    let e = log
        .append(UNIX_EPOCH - Duration::from_secs(1), &signed(1))
        .unwrap_err();
    assert_eq!(e.line, Some(1));
    assert_eq!(fs::read(&path).unwrap().len(), 0);
    log.append(t(0), &signed(1)).unwrap();
    assert_eq!(verify(&path).unwrap().lines, 1);
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
    let shared = SharedAuditLog::new(AuditLog::open(&path, NODE).unwrap(), clock);
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
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 80);
    assert_eq!(Some(shared.head().unwrap().1), report.last_hash);
    // Timestamps follow line order: the clock is read under the lock.
    let times: Vec<String> = lines(&path)
        .iter()
        .map(|l| record::parse(l.as_bytes()).unwrap().time)
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}
