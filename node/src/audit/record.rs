//! One audit line: its canonical encoding, its hash, the genesis value, and strict parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::AuditEvent;

/// Longest line (bytes, without the newline) the writer produces or the reader accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// Domain prefix of the genesis value.
const GENESIS_DOMAIN: &[u8] = b"keyshard audit log genesis v1\n";

/// The first line's `prev`: hex SHA-256 of a fixed domain string and the node id, so a log
/// is tied to the node that wrote it and its first line cannot be dropped unnoticed.
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

/// The hashed part of a line, in its fixed field order.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    event: &'a AuditEvent,
    prev: &'a str,
}

/// A whole line as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    time: String,
    event: AuditEvent,
    prev: String,
    hash: String,
}

/// A parsed line whose own hash and encoding check out (its place in the chain is not checked).
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
    /// This line's hash.
    pub hash: String,
}

/// `hash = hex(SHA-256(prev || "\n" || body))`, `body` being the canonical JSON of
/// `{"seq","time","event","prev"}` in that order.
fn hash_of(prev: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

fn body_json(seq: u64, time: &str, event: &AuditEvent, prev: &str) -> Result<String, String> {
    serde_json::to_string(&Body {
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

/// Builds the line (without newline) for `event`, and its hash.
pub fn encode(
    seq: u64,
    time: &str,
    event: &AuditEvent,
    prev: &str,
) -> Result<(String, String), String> {
    let body = body_json(seq, time, event, prev)?;
    let hash = hash_of(prev, body.as_bytes());
    let line = serde_json::to_string(&Line {
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
/// JSON with exactly the expected fields, a valid RFC 3339 time, the canonical encoding
/// byte for byte, and the hash over its content.
pub fn parse(bytes: &[u8]) -> Result<Record, String> {
    if bytes.is_empty() {
        return Err("empty line".into());
    }
    if bytes.len() > MAX_LINE {
        return Err(format!("line is over the {MAX_LINE}-byte limit"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let line: Line = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    if humantime::parse_rfc3339(&line.time).is_err() {
        return Err(format!(
            "time {:?} is not an RFC 3339 UTC timestamp",
            clip(&line.time)
        ));
    }
    let (canonical, hash) = encode(line.seq, &line.time, &line.event, &line.prev)?;
    if hash != line.hash {
        return Err("hash does not match the line's content (the line was edited)".into());
    }
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

    #[test]
    fn encoding_is_fixed() {
        let prev = genesis(3);
        let (line, hash) = encode(1, "2026-01-02T03:04:05.678Z", &started(), &prev).unwrap();
        assert_eq!(
            line,
            format!(
                "{{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"event\":{{\"type\":\"node_started\",\
                 \"node\":3,\"version\":\"0.1.0\"}},\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}"
            )
        );
        let body = format!(
            "{{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"event\":{{\"type\":\"node_started\",\
             \"node\":3,\"version\":\"0.1.0\"}},\"prev\":\"{prev}\"}}"
        );
        let mut h = Sha256::new();
        h.update(format!("{prev}\n{body}").as_bytes());
        assert_eq!(hash, hex::encode(h.finalize()));
        assert_eq!(parse(line.as_bytes()).unwrap().hash, hash);
    }

    #[test]
    fn genesis_names_its_node() {
        assert_ne!(genesis(1), genesis(2));
        assert_eq!(genesis_node(&genesis(65535)), Some(65535));
        assert_eq!(genesis_node(&"0".repeat(64)), None);
    }

    #[test]
    fn parse_refuses_non_canonical_and_foreign_lines() {
        let (line, _) = encode(1, "2026-01-02T03:04:05.678Z", &started(), &genesis(3)).unwrap();
        let spaced = line.replacen("\"seq\":1", "\"seq\": 1", 1);
        assert!(parse(spaced.as_bytes()).unwrap_err().contains("canonical"));
        let extra = line.replacen("{\"seq\"", "{\"x\":1,\"seq\"", 1);
        assert!(parse(extra.as_bytes()).unwrap_err().contains("bad JSON"));
        let bad_time = line.replacen("2026-01-02T03:04:05.678Z", "yesterday", 1);
        assert!(parse(bad_time.as_bytes()).unwrap_err().contains("RFC 3339"));
        assert!(parse(b"\xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(parse(b"").unwrap_err().contains("empty"));
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
        assert!(encode(1, "2026-01-02T03:04:05.678Z", &e, &genesis(1))
            .unwrap_err()
            .contains("line limit"));
    }
}
