//! Checking a whole log: every line on its own, then its place in the chain.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use super::record::{self, MAX_LINE};
use super::AuditError;

/// A log that checked out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many lines (= events).
    pub lines: u64,
    /// The last line's hash; `None` for an empty file. Recording it elsewhere (another
    /// machine, a ticket) later proves the log was not cut back to before that line.
    pub last_hash: Option<String>,
    /// The node whose genesis value the first line chains from; `None` for an empty file.
    pub node: Option<u16>,
}

/// Checks the log at `path` line by line and stops at the first problem, naming its line:
/// bad JSON or non-canonical encoding, a hash that does not match the line (an edited line),
/// a sequence number out of place (a line removed, inserted or moved), a `prev` that is not
/// the previous line's hash (lines removed or reordered, or an edited line whose hash was
/// recomputed), a first line that is not anchored in a node's genesis value, or an incomplete
/// last line.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, "cannot open", e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut prev: Option<String> = None;
    let mut node = None;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        let number = lines + 1;
        if buf.last() != Some(&b'\n') {
            if n > MAX_LINE {
                return Err(AuditError::at(
                    number,
                    format!("line is over the {MAX_LINE}-byte limit"),
                ));
            }
            return Err(AuditError::at(
                number,
                format!(
                    "incomplete last line ({n} bytes, no newline): a crash during an append \
                     (the event was never acknowledged) or a truncated file"
                ),
            ));
        }
        let rec = record::parse(&buf[..n - 1]).map_err(|what| AuditError::at(number, what))?;
        if rec.seq != number {
            return Err(AuditError::at(
                number,
                format!(
                    "seq is {}, expected {number}: a line is missing, inserted or out of order",
                    rec.seq
                ),
            ));
        }
        match &prev {
            None => match record::genesis_node(&rec.prev) {
                Some(id) => node = Some(id),
                None => {
                    return Err(AuditError::at(
                        number,
                        "prev is not any node's genesis value: the start of the log is missing",
                    ))
                }
            },
            Some(p) if *p != rec.prev => {
                return Err(AuditError::at(
                    number,
                    format!(
                        "prev does not match line {}'s hash: lines were removed, reordered or \
                         rewritten before this one",
                        number - 1
                    ),
                ))
            }
            Some(_) => {}
        }
        prev = Some(rec.hash);
        lines = number;
    }
    Ok(VerifyReport {
        lines,
        last_hash: prev,
        node,
    })
}
