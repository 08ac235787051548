//! One audit line: its canonical encoding, its MAC, the genesis value, and strict parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::AuditEvent;
use super::key::AuditKey;

/// Longest line (bytes, without the newline) the writer produces or the reader accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// The chain format this code writes and reads (the `v` field of every line).
pub const FORMAT: u8 = 2;

/// Domain prefix of the genesis value.
const GENESIS_DOMAIN: &[u8] = b"keyshard audit log genesis v2\n";

/// Domain prefix of every line's MAC input (the checkpoint's MAC uses another one).
const LINE_DOMAIN: &[u8] = b"keyshard audit line v2\n";

/// The first line's `prev`: hex SHA-256 of a fixed domain string and the node id. Public on
/// purpose: a reader without the key can still tell whose log it is; the MACs are what need it.
pub fn genesis(node: u16) -> String {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update(node.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Which node id, if any, has `prev` as its genesis value (tries all 65,535 ids; cheap).
pub fn genesis_node(prev: &str) -> Option<u16> {
    (1..=u16::MAX).find(|&n| genesis(n) == prev)
}

/// Whether `line` is in the old unkeyed format (v1: plain SHA-256 chain, no `v` field). v1
/// lines always began with their `seq` field; v2 lines begin with `v`.
pub fn is_v1(line: &[u8]) -> bool {
    line.starts_with(b"{\"seq\":")
}

/// The MACed part of a line, in its fixed field order.
#[derive(Serialize)]
struct Body<'a> {
    v: u8,
    seq: u64,
    time: &'a str,
    event: &'a AuditEvent,
    prev: &'a str,
}

/// A whole line as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    v: u8,
    seq: u64,
    time: String,
    event: AuditEvent,
    prev: String,
    hash: String,
}

/// A parsed line whose own MAC and encoding check out (its place in the chain is not checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, 1 for the first line.
    pub seq: u64,
    /// RFC 3339 UTC timestamp.
    pub time: String,
    /// The event.
    pub event: AuditEvent,
    /// The previous line's `hash` (or the genesis value).
    pub prev: String,
    /// This line's MAC (hex), named `hash` in the file.
    pub hash: String,
}

/// The MAC state over `LINE_DOMAIN || prev || "\n" || body`, `body` being the canonical JSON
/// of `{"v","seq","time","event","prev"}` in that order.
fn mac_of(key: &AuditKey, prev: &str, body: &[u8]) -> crate::audit::key::HmacSha256 {
    let mut m = key.mac();
    m.update(LINE_DOMAIN);
    m.update(prev.as_bytes());
    m.update(b"\n");
    m.update(body);
    m
}

fn body_json(seq: u64, time: &str, event: &AuditEvent, prev: &str) -> Result<String, String> {
    serde_json::to_string(&Body {
        v: FORMAT,
        seq,
        time,
        event,
        prev,
    })
    .map_err(|e| format!("cannot encode the record: {e}"))
}

/// RFC 3339 UTC with milliseconds, or why `at` cannot be written (before 1970 or after 9999).
pub fn format_time(at: SystemTime) -> Result<String, String> {
    // humantime panics before the epoch and fails after year 9999; check both first.
    const END_OF_9999: Duration = Duration::from_secs(253_402_300_800);
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) if d < END_OF_9999 => Ok(humantime::format_rfc3339_millis(at).to_string()),
        _ => Err("the clock is outside 1970..9999; cannot timestamp the event".into()),
    }
}

/// Builds the line (without newline) for `event`, and its MAC (hex).
pub fn encode(
    key: &AuditKey,
    seq: u64,
    time: &str,
    event: &AuditEvent,
    prev: &str,
) -> Result<(String, String), String> {
    let body = body_json(seq, time, event, prev)?;
    let hash = hex::encode(mac_of(key, prev, body.as_bytes()).finalize().into_bytes());
    let line = serde_json::to_string(&Line {
        v: FORMAT,
        seq,
        time: time.to_string(),
        event: event.clone(),
        prev: prev.to_string(),
        hash: hash.clone(),
    })
    .map_err(|e| format!("cannot encode the record: {e}"))?;
    if line.len() > MAX_LINE {
        return Err(format!(
            "the record is {} bytes, over the {MAX_LINE}-byte line limit (shorten its strings)",
            line.len()
        ));
    }
    Ok((line, hash))
}

/// Parses one line (without its newline) and checks everything a line can check about itself:
/// the keyed format, JSON with exactly the expected fields, a valid RFC 3339 time, the MAC over
/// its content under `key`, and the canonical encoding byte for byte.
pub fn parse(key: &AuditKey, bytes: &[u8]) -> Result<Record, String> {
    if bytes.is_empty() {
        return Err("empty line".into());
    }
    if bytes.len() > MAX_LINE {
        return Err(format!("line is over the {MAX_LINE}-byte limit"));
    }
    if is_v1(bytes) {
        return Err(
            "an unkeyed (v1, plain SHA-256) line: anyone who can write the file can \
                    recompute such a chain, so it proves nothing; this node writes keyed (v2) \
                    lines only"
                .into(),
        );
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let line: Line = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    if line.v != FORMAT {
        return Err(format!(
            "format version {}, expected {FORMAT} (written by another keyshard version?)",
            line.v
        ));
    }
    if humantime::parse_rfc3339(&line.time).is_err() {
        return Err(format!(
            "time {:?} is not an RFC 3339 UTC timestamp",
            clip(&line.time)
        ));
    }
    let mac_ok = match hex::decode(&line.hash) {
        Ok(tag) if tag.len() == 32 => {
            let body = body_json(line.seq, &line.time, &line.event, &line.prev)?;
            // Constant-time comparison (verify_slice) although the verifier is offline: the
            // same code runs in the daemon when it resumes the chain.
            mac_of(key, &line.prev, body.as_bytes())
                .verify_slice(&tag)
                .is_ok()
        }
        _ => false,
    };
    if !mac_ok {
        return Err(
            "hash does not match the line's content under this node's audit key (the line was \
             edited, or the log was written or rewritten without this node's key)"
                .into(),
        );
    }
    let (canonical, _) = encode(key, line.seq, &line.time, &line.event, &line.prev)?;
    if canonical != text {
        return Err("the line is not in canonical form (the line was edited)".into());
    }
    Ok(Record {
        seq: line.seq,
        time: line.time,
        event: line.event,
        prev: line.prev,
        hash: line.hash,
    })
}

/// At most 80 characters of an untrusted string, for error messages.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> AuditEvent {
        AuditEvent::NodeStarted {
            node: 3,
            version: "0.1.0".into(),
        }
    }

    fn key() -> AuditKey {
        AuditKey::derive(&[3u8; 32])
    }

    #[test]
    fn encoding_is_fixed() {
        let prev = genesis(3);
        let (line, hash) =
            encode(&key(), 1, "2026-01-02T03:04:05.678Z", &started(), &prev).unwrap();
        assert_eq!(
            line,
            format!(
                "{{\"v\":2,\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"event\":{{\"type\":\"node_started\",\
                 \"node\":3,\"version\":\"0.1.0\"}},\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}"
            )
        );
        let body = format!(
            "{{\"v\":2,\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"event\":{{\"type\":\"node_started\",\
             \"node\":3,\"version\":\"0.1.0\"}},\"prev\":\"{prev}\"}}"
        );
        let mut m = key().mac();
        m.update(format!("keyshard audit line v2\n{prev}\n{body}").as_bytes());
        assert_eq!(hash, hex::encode(m.finalize().into_bytes()));
        assert_eq!(parse(&key(), line.as_bytes()).unwrap().hash, hash);
    }

    #[test]
    fn a_line_is_refused_under_another_key_and_an_unkeyed_line_is_named() {
        let (line, _) = encode(
            &key(),
            1,
            "2026-01-02T03:04:05.678Z",
            &started(),
            &genesis(3),
        )
        .unwrap();
        let other = AuditKey::derive(&[4u8; 32]);
        assert!(parse(&other, line.as_bytes())
            .unwrap_err()
            .contains("without this node's key"));
        // The same content with a plain SHA-256 in place of the MAC (what an attacker without
        // the key can compute) is refused too.
        let rec = parse(&key(), line.as_bytes()).unwrap();
        let sha = hex::encode(Sha256::digest(line.as_bytes()));
        let forged = line.replace(&rec.hash, &sha);
        assert!(parse(&key(), forged.as_bytes())
            .unwrap_err()
            .contains("hash does not match"));
        let v1 = format!(
            "{{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"event\":{{\"type\":\"node_stopping\",\
             \"node\":3}},\"prev\":\"{}\",\"hash\":\"{sha}\"}}",
            genesis(3)
        );
        assert!(is_v1(v1.as_bytes()));
        assert!(parse(&key(), v1.as_bytes())
            .unwrap_err()
            .contains("unkeyed (v1"));
        let v3 = line.replacen("{\"v\":2,", "{\"v\":3,", 1);
        assert!(parse(&key(), v3.as_bytes())
            .unwrap_err()
            .contains("format version 3"));
    }

    #[test]
    fn genesis_names_its_node() {
        assert_ne!(genesis(1), genesis(2));
        assert_eq!(genesis_node(&genesis(65535)), Some(65535));
        assert_eq!(genesis_node(&"0".repeat(64)), None);
    }

    #[test]
    fn parse_refuses_non_canonical_and_foreign_lines() {
        let (line, _) = encode(
            &key(),
            1,
            "2026-01-02T03:04:05.678Z",
            &started(),
            &genesis(3),
        )
        .unwrap();
        let spaced = line.replacen("\"seq\":1", "\"seq\": 1", 1);
        assert!(parse(&key(), spaced.as_bytes())
            .unwrap_err()
            .contains("canonical"));
        let extra = line.replacen("{\"v\":2,", "{\"v\":2,\"x\":1,", 1);
        assert!(parse(&key(), extra.as_bytes())
            .unwrap_err()
            .contains("bad JSON"));
        let bad_time = line.replacen("2026-01-02T03:04:05.678Z", "yesterday", 1);
        assert!(parse(&key(), bad_time.as_bytes())
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(parse(&key(), b"\xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(parse(&key(), b"").unwrap_err().contains("empty"));
    }

    #[test]
    fn times_outside_the_format_are_errors_not_panics() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(format_time(before).is_err());
        let after = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(format_time(after).is_err());
        let ok = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(ok).unwrap(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn oversized_records_are_refused() {
        let e = AuditEvent::PeerRejected {
            who: "x".repeat(MAX_LINE),
            reason: "r".into(),
        };
        assert!(
            encode(&key(), 1, "2026-01-02T03:04:05.678Z", &e, &genesis(1))
                .unwrap_err()
                .contains("line limit")
        );
    }
}
