//! `keyshard audit verify` run as a process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use keyshard_node::audit::{AuditEvent, AuditKey, AuditLog, CHECKPOINT_FILE, SEALING_KEY_FILE};

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

/// A node's data directory as the daemon leaves it: sealing key, audit log, checkpoint.
struct Node {
    log: PathBuf,
    key: PathBuf,
    checkpoint: PathBuf,
}

impl Node {
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "audit",
            "verify",
            self.log.to_str().unwrap(),
            "--sealing-key",
            self.key.to_str().unwrap(),
            "--checkpoint",
            self.checkpoint.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        v
    }
}

fn sealing_key(path: &Path, byte: u8) {
    std::fs::write(path, [byte; 32]).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn write_log(dir: &Path) -> (Node, String) {
    let node = Node {
        log: dir.join("audit.log"),
        key: dir.join(SEALING_KEY_FILE),
        checkpoint: dir.join(CHECKPOINT_FILE),
    };
    sealing_key(&node.key, 42);
    let key = AuditKey::from_sealing_key_file(&node.key).unwrap();
    let mut log = AuditLog::open(&node.log, &node.checkpoint, 5, key).unwrap();
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
    let hash = log.last_hash().to_string();
    (node, hash)
}

#[test]
fn a_good_log_passes_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (node, hash) = write_log(dir.path());

    let (code, out, err) = keyshard(&node.args(&[]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "OK, 3 lines, node 5, last hash {hash}; checkpoint at line 3"
        )),
        "{out}"
    );

    let (code, out, _) = keyshard(&node.args(&["--json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["lines"], 3);
    assert_eq!(v["node"], 5);
    assert_eq!(v["last_hash"], hash);
    assert_eq!(v["checkpoint"]["seq"], 3);
}

#[test]
fn the_node_config_gives_the_log_key_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (_, hash) = write_log(dir.path());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 5\nlisten = \"127.0.0.1:7005\"\ndata_dir = {:?}\n\n[tls]\n\
             ca_cert = \"ca.pem\"\nnode_cert = \"n.pem\"\nnode_key = \"n.key\"\n\n\
             [[peers]]\nid = 5\naddress = \"127.0.0.1:7005\"\nrole = \"tee\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let (code, out, err) = keyshard(&["audit", "verify", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("last hash {hash}; checkpoint at line 3")),
        "{out}"
    );
}

#[test]
fn a_tampered_log_fails_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = write_log(dir.path());
    let text = std::fs::read_to_string(&node.log).unwrap();
    std::fs::write(&node.log, text.replacen("\"term\":2", "\"term\":9", 1)).unwrap();

    let (code, _, err) = keyshard(&node.args(&[]));
    assert_eq!(code, 1);
    assert!(
        err.contains("audit log line 2: hash does not match"),
        "{err}"
    );

    let (code, out, _) = keyshard(&node.args(&["--json"]));
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["line"], 2);
    assert!(v["error"].as_str().unwrap().contains("edited"));
}

#[test]
fn a_log_cut_short_fails_and_another_key_fails_at_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = write_log(dir.path());
    let text = std::fs::read_to_string(&node.log).unwrap();
    let first_two: String = text.split_inclusive('\n').take(2).collect();
    std::fs::write(&node.log, first_two).unwrap();
    let (code, _, err) = keyshard(&node.args(&[]));
    assert_eq!(code, 1);
    assert!(err.contains("audit log line 3: missing"), "{err}");
    assert!(err.contains("cut off the end"), "{err}");
    // Without the checkpoint the cut goes unseen, and the output says that it would.
    let log = node.log.to_str().unwrap();
    let key = node.key.to_str().unwrap();
    let (code, out, _) = keyshard(&[
        "audit",
        "verify",
        log,
        "--sealing-key",
        key,
        "--no-checkpoint",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("OK, 2 lines"), "{out}");
    assert!(out.contains("would go undetected"), "{out}");

    std::fs::write(&node.log, text).unwrap();
    let other = dir.path().join("other.key");
    sealing_key(&other, 43);
    let (code, _, err) = keyshard(&[
        "audit",
        "verify",
        log,
        "--sealing-key",
        other.to_str().unwrap(),
        "--no-checkpoint",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("audit log line 1: hash does not match"),
        "{err}"
    );
}

#[test]
fn a_missing_file_key_and_bad_usage_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = write_log(dir.path());
    let key = node.key.to_str().unwrap();
    let (code, _, err) = keyshard(&[
        "audit",
        "verify",
        "/nonexistent/audit.log",
        "--sealing-key",
        key,
        "--no-checkpoint",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open /nonexistent/audit.log"), "{err}");
    let (code, _, err) = keyshard(&[
        "audit",
        "verify",
        node.log.to_str().unwrap(),
        "--sealing-key",
        "/nonexistent/sealing.key",
        "--no-checkpoint",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("sealing key /nonexistent/sealing.key: cannot open"),
        "{err}"
    );
    // No key given: a usage error that says what to give.
    let (code, _, err) = keyshard(&["audit", "verify", node.log.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the audit log is keyed: give --config"),
        "{err}"
    );
    // A key but no word on the checkpoint.
    let (code, _, err) = keyshard(&[
        "audit",
        "verify",
        node.log.to_str().unwrap(),
        "--sealing-key",
        key,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--checkpoint FILE"), "{err}");
    let (code, _, _) = keyshard(&["audit", "verify"]);
    assert_eq!(code, 2);
    let (code, _, _) = keyshard(&["audit", "rewrite", "x"]);
    assert_eq!(code, 2);
}
