//! `keyshard audit verify` run as a process.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use keyshard_node::audit::{AuditEvent, AuditLog};

fn keyshard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyshard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write_log(path: &Path) -> String {
    let mut log = AuditLog::open(path, 5).unwrap();
    for i in 0..3u64 {
        log.append(
            UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i),
            &AuditEvent::LeaderChanged {
                leader: Some(5),
                term: i + 1,
            },
        )
        .unwrap();
    }
    log.last_hash().to_string()
}

#[test]
fn a_good_log_passes_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let hash = write_log(&path);
    let p = path.to_str().unwrap();

    let (code, out, _) = keyshard(&["audit", "verify", p]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("OK, 3 lines, node 5, last hash {hash}")),
        "{out}"
    );

    let (code, out, _) = keyshard(&["audit", "verify", p, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["lines"], 3);
    assert_eq!(v["node"], 5);
    assert_eq!(v["last_hash"], hash);
}

#[test]
fn a_tampered_log_fails_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_log(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"term\":2", "\"term\":9", 1)).unwrap();
    let p = path.to_str().unwrap();

    let (code, _, err) = keyshard(&["audit", "verify", p]);
    assert_eq!(code, 1);
    assert!(
        err.contains("audit log line 2: hash does not match"),
        "{err}"
    );

    let (code, out, _) = keyshard(&["audit", "verify", "--json", p]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["line"], 2);
    assert!(v["error"].as_str().unwrap().contains("edited"));
}

#[test]
fn a_missing_file_and_bad_usage_are_errors() {
    let (code, _, err) = keyshard(&["audit", "verify", "/nonexistent/audit.log"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open /nonexistent/audit.log"), "{err}");
    let (code, _, _) = keyshard(&["audit", "verify"]);
    assert_eq!(code, 2);
    let (code, _, _) = keyshard(&["audit", "rewrite", "x"]);
    assert_eq!(code, 2);
}
