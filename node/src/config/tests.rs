use super::*;

const TLS: &str = r#"
[tls]
ca_cert = "/etc/keyshard/ca.pem"
node_cert = "/etc/keyshard/node2.pem"
node_key = "/etc/keyshard/node2.key"
"#;

const PEERS: &str = r#"
[[peers]]
id = 1
address = "node1.example:7001"
role = "tee"

[[peers]]
id = 2
address = "10.0.0.2:7001"
role = "mesh"

[[peers]]
id = 3
address = "[fd00::3]:7001"
role = "tee"
"#;

fn minimal() -> String {
    format!(
        "node_id = 2\nlisten = \"0.0.0.0:7001\"\ndata_dir = \"/var/lib/keyshard\"\n{TLS}{PEERS}"
    )
}

/// `minimal()` with `line` added at the top level (before any table).
fn with(line: &str) -> String {
    format!("{line}\n{}", minimal())
}

/// `minimal()` plus a table.
fn with_table(table: &str) -> String {
    format!("{}\n{table}\n", minimal())
}

fn invalid_field(text: &str) -> (String, String, String) {
    match Config::from_toml_str(text) {
        Err(ConfigError::Invalid { field, value, what }) => (field, value, what),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn syntax(text: &str) -> String {
    match Config::from_toml_str(text) {
        Err(ConfigError::Syntax(m)) => m,
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_minimal_config_gets_the_core_defaults() {
    let c = Config::from_toml_str(&minimal()).unwrap();
    let n = c.to_node_config();
    let d = NodeConfig::new(ParticipantId::new(9).unwrap(), BTreeMap::new());
    assert_eq!(n.id, ParticipantId::new(2).unwrap());
    assert_eq!(
        n.members
            .iter()
            .map(|(k, v)| (k.get(), *v))
            .collect::<Vec<_>>(),
        vec![(1, NodeRole::Tee), (2, NodeRole::Mesh), (3, NodeRole::Tee)]
    );
    assert_eq!(
        (n.tick, n.election_ticks, n.heartbeat_ticks),
        (d.tick, d.election_ticks, d.heartbeat_ticks)
    );
    assert_eq!(
        (n.round_timeout, n.request_timeout, n.rotation_interval),
        (d.round_timeout, d.request_timeout, d.rotation_interval)
    );
    assert_eq!(
        (n.limits.dkg, n.limits.sign, n.limits.reshare),
        (d.limits.dkg, d.limits.sign, d.limits.reshare)
    );
    assert_eq!(
        (n.max_attempts, n.result_cache),
        (d.max_attempts, d.result_cache)
    );
    assert_eq!(
        (n.joining, n.probe_interval, n.probe_timeout),
        (d.joining, d.probe_interval, d.probe_timeout)
    );
    // The documented values, so a change in core shows up here too.
    assert_eq!(n.tick, Duration::from_millis(100));
    assert_eq!(n.rotation_interval, Duration::from_secs(24 * 3600));
    assert_eq!(
        c.store,
        StoreConfig::Sled {
            path: "/var/lib/keyshard/sled".into()
        }
    );
    assert_eq!(c.audit_log, PathBuf::from("/var/lib/keyshard/audit.log"));
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(
        c.peers[&ParticipantId::new(3).unwrap()].address.to_string(),
        "[fd00::3]:7001"
    );
}

#[test]
fn every_field_can_be_set() {
    let text = format!(
        r#"
node_id = 1
listen = "[::]:7001"
data_dir = "data"
store = "mongodb://keyshard:pw@db1:27017,db2:27017/?replicaSet=rs"
metrics_listen = "127.0.0.1:9101"
audit_log = "/var/log/keyshard/audit.log"
log_level = "debug"
rotation_interval = "7days 12h"
{TLS}{PEERS}
[raft]
tick = "50ms"
election_ticks = 20
heartbeat_ticks = 3

[timeouts]
round = "2s 500ms"
request = "2m"

[tasks]
dkg = 4
sign = 128
reshare = 2
max_attempts = 5
result_cache = 10

[probes]
interval = "1s"
timeout = "3s"
"#
    );
    let c = Config::from_toml_str(&text).unwrap();
    let n = c.to_node_config();
    assert_eq!(n.tick, Duration::from_millis(50));
    assert_eq!((n.election_ticks, n.heartbeat_ticks), (20, 3));
    assert_eq!(n.round_timeout, Duration::from_millis(2500));
    assert_eq!(n.request_timeout, Duration::from_secs(120));
    assert_eq!((n.limits.dkg, n.limits.sign, n.limits.reshare), (4, 128, 2));
    assert_eq!((n.max_attempts, n.result_cache), (5, 10));
    assert_eq!(
        (n.probe_interval, n.probe_timeout),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(
        n.rotation_interval,
        Duration::from_secs(7 * 86400 + 12 * 3600)
    );
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9101".parse().unwrap()));
    assert_eq!(c.audit_log, PathBuf::from("/var/log/keyshard/audit.log"));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.data_dir, PathBuf::from("data"));
    match &c.store {
        StoreConfig::Mongo(uri) => assert!(uri.expose().contains(":pw@")),
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{c:?}").contains("pw"),
        "Debug never shows the password"
    );
}

#[test]
fn rotation_zero_is_off() {
    let c = Config::from_toml_str(&with("rotation_interval = \"0\"")).unwrap();
    assert_eq!(c.to_node_config().rotation_interval, Duration::ZERO);
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    assert!(syntax(&with("nodeid = 2")).contains("nodeid"));
    assert!(syntax(&with_table("[raft]\nelection_timeout = \"1s\"")).contains("election_timeout"));
    assert!(syntax(&with_table(
        "[[peers]]\nid = 4\naddress = \"n4:1\"\nrole = \"tee\"\nweight = 2"
    ))
    .contains("weight"));
    assert!(syntax(&minimal().replace("[tls]", "[tls]\nca_key = \"x\"")).contains("ca_key"));
    assert!(syntax(&with_table("[limits]\ndkg = 1")).contains("limits"));
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let m = syntax(&minimal().replace("listen = \"0.0.0.0:7001\"\n", ""));
    assert!(m.contains("listen"), "{m}");
    let m = syntax(&minimal().replace(TLS, ""));
    assert!(m.contains("tls"), "{m}");
    let m = syntax(&minimal().replace("node_id = 2", "node_id = \"2\""));
    assert_eq!(
        m,
        "line 1, column 11 (node_id): invalid type: string \"2\", expected i64"
    );
    let m = syntax("node_id = ");
    assert!(!m.is_empty());
}

#[test]
fn duplicate_peer_ids_are_refused() {
    let text = with_table("[[peers]]\nid = 2\naddress = \"node9:7001\"\nrole = \"mesh\"");
    let (field, value, what) = invalid_field(&text);
    assert_eq!((field.as_str(), value.as_str()), ("peers[3].id", "2"));
    assert!(
        what.contains("duplicate") && what.contains("peers[1]"),
        "{what}"
    );
}

#[test]
fn duplicate_peer_addresses_are_refused() {
    let text = with_table("[[peers]]\nid = 4\naddress = \"NODE1.example:7001\"\nrole = \"mesh\"");
    let (field, value, what) = invalid_field(&text);
    assert_eq!(field, "peers[3].address");
    assert_eq!(value, "\"NODE1.example:7001\"");
    assert!(what.contains("peers[0]"), "{what}");
}

#[test]
fn the_node_must_be_a_peer_unless_joining() {
    let (field, value, what) = invalid_field(&minimal().replace("node_id = 2", "node_id = 4"));
    assert_eq!((field.as_str(), value.as_str()), ("node_id", "4"));
    assert!(what.contains("not in [[peers]]"), "{what}");
    let no_peers = format!("node_id = 1\nlisten = \"0.0.0.0:1\"\ndata_dir = \"d\"\n{TLS}");
    assert_eq!(invalid_field(&no_peers).0, "node_id");

    // Joining: the node is not among the bootstrap members, and there must be some.
    let joining = minimal().replace("node_id = 2", "node_id = 4\njoining = true");
    let c = Config::from_toml_str(&joining).unwrap();
    let n = c.to_node_config();
    assert!(n.joining);
    assert!(!n.members.contains_key(&n.id));
    let (field, value, what) = invalid_field(&with("joining = true"));
    assert_eq!((field.as_str(), value.as_str()), ("joining", "true"));
    assert!(what.contains("node 2 is in [[peers]]"), "{what}");
    let alone =
        format!("node_id = 1\njoining = true\nlisten = \"0.0.0.0:1\"\ndata_dir = \"d\"\n{TLS}");
    assert_eq!(invalid_field(&alone).0, "peers");
}

#[test]
fn node_ids_are_1_to_65535() {
    for (bad, field) in [
        ("node_id = 0", "node_id"),
        ("node_id = 65536", "node_id"),
        ("node_id = -1", "node_id"),
    ] {
        let (f, v, what) = invalid_field(&minimal().replace("node_id = 2", bad));
        assert_eq!(f, field);
        assert_eq!(v, bad["node_id = ".len()..]);
        assert!(what.contains("1 to 65535"), "{what}");
    }
    let (f, v, _) = invalid_field(&minimal().replace("id = 3", "id = 0"));
    assert_eq!((f.as_str(), v.as_str()), ("peers[2].id", "0"));
}

#[test]
fn zero_limits_are_refused() {
    for (table, key) in [
        ("tasks", "dkg"),
        ("tasks", "sign"),
        ("tasks", "reshare"),
        ("tasks", "max_attempts"),
        ("tasks", "result_cache"),
        ("raft", "heartbeat_ticks"),
        ("raft", "election_ticks"),
    ] {
        let (field, value, what) = invalid_field(&with_table(&format!("[{table}]\n{key} = 0")));
        assert_eq!(field, format!("{table}.{key}"));
        assert_eq!(value, "0");
        assert!(what.contains("at least 1"), "{what}");
    }
    let (field, value, _) = invalid_field(&with_table("[tasks]\nsign = -5"));
    assert_eq!((field.as_str(), value.as_str()), ("tasks.sign", "-5"));
}

#[test]
fn election_must_exceed_heartbeat() {
    for (e, h) in [(2, 2), (3, 5)] {
        let text = with_table(&format!(
            "[raft]\nelection_ticks = {e}\nheartbeat_ticks = {h}"
        ));
        let (field, value, what) = invalid_field(&text);
        assert_eq!(field, "raft.election_ticks");
        assert_eq!(value, e.to_string());
        assert!(what.contains(&format!("heartbeat_ticks ({h})")), "{what}");
    }
    assert!(Config::from_toml_str(&with_table(
        "[raft]\nelection_ticks = 3\nheartbeat_ticks = 2"
    ))
    .is_ok());
}

#[test]
fn bad_addresses_are_refused() {
    let (f, v, _) = invalid_field(&minimal().replace("0.0.0.0:7001", "localhost:7001"));
    assert_eq!((f.as_str(), v.as_str()), ("listen", "\"localhost:7001\""));
    let (f, v, _) = invalid_field(&minimal().replace("0.0.0.0:7001", "0.0.0.0:0"));
    assert_eq!((f.as_str(), v.as_str()), ("listen", "\"0.0.0.0:0\""));
    let (f, v, what) = invalid_field(&minimal().replace("10.0.0.2:7001", "10.0.0.2"));
    assert_eq!(
        (f.as_str(), v.as_str()),
        ("peers[1].address", "\"10.0.0.2\"")
    );
    assert!(what.contains("port"), "{what}");
    let (f, v, _) = invalid_field(&minimal().replace("node1.example:7001", "node_1:7001"));
    assert_eq!(
        (f.as_str(), v.as_str()),
        ("peers[0].address", "\"node_1:7001\"")
    );
    let (f, v, _) = invalid_field(&with("metrics_listen = \"9101\""));
    assert_eq!((f.as_str(), v.as_str()), ("metrics_listen", "\"9101\""));
}

#[test]
fn bad_durations_are_refused() {
    for (text, field, value, says) in [
        (
            with_table("[raft]\ntick = \"10 parsecs\""),
            "raft.tick",
            "\"10 parsecs\"",
            "not a duration",
        ),
        (
            with_table("[raft]\ntick = \"0\""),
            "raft.tick",
            "\"0\"",
            "positive",
        ),
        (
            with_table("[timeouts]\nround = \"1500us\""),
            "timeouts.round",
            "\"1500us\"",
            "whole milliseconds",
        ),
        (
            with_table("[timeouts]\nrequest = \"0s\""),
            "timeouts.request",
            "\"0s\"",
            "positive",
        ),
        (
            with("rotation_interval = \"daily\""),
            "rotation_interval",
            "\"daily\"",
            "not a duration",
        ),
        (
            with_table("[probes]\ninterval = \"0\""),
            "probes.interval",
            "\"0\"",
            "positive",
        ),
        (
            with_table("[probes]\ntimeout = \"1s\""),
            "probes.timeout",
            "\"1s\"",
            "at least probes.interval (2s)",
        ),
    ] {
        let (f, v, what) = invalid_field(&text);
        assert_eq!((f.as_str(), v.as_str()), (field, value));
        assert!(what.contains(says), "{what}");
    }
}

#[test]
fn bad_roles_and_levels_are_refused() {
    let (f, v, _) = invalid_field(&minimal().replacen("role = \"tee\"", "role = \"TEE\"", 1));
    assert_eq!((f.as_str(), v.as_str()), ("peers[0].role", "\"TEE\""));
    let (f, v, _) = invalid_field(&with("log_level = \"verbose\""));
    assert_eq!((f.as_str(), v.as_str()), ("log_level", "\"verbose\""));
}

#[test]
fn bad_stores_are_refused_without_showing_credentials() {
    for (store, says) in [
        ("mongodb+srv://admin:pw@cluster.example/", "SRV"),
        ("redis://admin:pw@cache:6379", "mongodb://"),
        ("mongodb://admin:pw@/db", "no host"),
        ("admin:pw@db", "mongodb://"),
    ] {
        let (field, value, what) = invalid_field(&with(&format!("store = \"{store}\"")));
        assert_eq!(field, "store");
        assert!(what.contains(says), "{what}");
        let shown = ConfigError::Invalid { field, value, what }.to_string();
        assert!(!shown.contains("pw") && !shown.contains("admin"), "{shown}");
    }
}

#[test]
fn empty_paths_are_refused() {
    let (f, _, what) = invalid_field(&minimal().replace("/etc/keyshard/node2.key", ""));
    assert_eq!(f, "tls.node_key");
    assert!(what.contains("empty"));
    let (f, _, _) = invalid_field(&with("audit_log = \"\""));
    assert_eq!(f, "audit_log");
    let (f, _, _) = invalid_field(&minimal().replace("/var/lib/keyshard", ""));
    assert_eq!(f, "data_dir");
}

#[test]
fn load_reads_a_file_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, minimal()).unwrap();
    assert_eq!(
        Config::load(&path).unwrap(),
        Config::from_toml_str(&minimal()).unwrap()
    );
    let missing = dir.path().join("missing.toml");
    match Config::load(&missing) {
        Err(e @ ConfigError::Io { .. }) => assert!(e.to_string().contains("missing.toml")),
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, "x".repeat(MAX_FILE as usize + 1)).unwrap();
    assert!(matches!(Config::load(&path), Err(ConfigError::Io { .. })));
}
#[test]
fn syntax_errors_give_the_line_but_never_echo_the_text() {
    let text = with("store = \"mongodb://admin:pw@db1/?replicaSet=rs");
    let m = syntax(&text);
    assert!(m.starts_with("line 1, column 47 (store): "), "{m}");
    assert!(!m.contains("pw") && !m.contains("admin"), "{m}");
    let m = syntax(&with_table("[raft]\nelection_timeout = \"1s\""));
    assert!(
        m.starts_with("line 26, column 1 (election_timeout): unknown field `election_timeout`"),
        "{m}"
    );
}
