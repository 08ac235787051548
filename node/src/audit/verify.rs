//! Checking a whole log: every line on its own (its MAC under the audit key), then its place
//! in the chain, then the chain's end against the checkpoint.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use super::checkpoint::{self, Head};
use super::key::AuditKey;
use super::record::{self, MAX_LINE};
use super::AuditError;

/// A log that checked out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many lines (= events).
    pub lines: u64,
    /// The last line's hash; `None` for an empty file. Recording it elsewhere (another
    /// machine, a ticket) later proves the log was not cut back to before that line, even by
    /// someone who could also rewrite the checkpoint.
    pub last_hash: Option<String>,
    /// The node whose genesis value the first line chains from (or, for an empty log, whose
    /// checkpoint it is); `None` for an empty file checked without a checkpoint.
    pub node: Option<u16>,
    /// What the checkpoint pinned; `None` when verified without one (the end then unchecked).
    pub checkpoint: Option<CheckpointReport>,
}

/// The checkpoint a log was checked against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    /// The line the checkpoint records (the log may be one line ahead after a crash, or more
    /// if the node's checkpoint updates failed; never behind).
    pub seq: u64,
    /// That line's hash.
    pub hash: String,
    /// Set when one slot was unusable and the older one was used: a crash during a checkpoint
    /// write, or tampering that could hide the last line (the node repairs it at its next
    /// start and records that in the chain).
    pub warning: Option<String>,
}

/// Checks the log at `path`, MACed under `key`, line by line and stops at the first problem,
/// naming its line: an unkeyed (v1) line, a MAC that does not verify under `key` (an edited
/// line, or a log written or rewritten without this node's key), bad JSON or non-canonical
/// encoding, a sequence number out of place (a line removed, inserted or moved), a `prev` that
/// is not the previous line's hash (lines removed or reordered), a first line that is not
/// anchored in a node's genesis value, or an incomplete last line.
///
/// With `checkpoint` (the node's `audit.head`), also: the log must reach the line the
/// checkpoint records, with the hash it records (lines cut off the end are named), and the
/// checkpoint must authenticate under `key`. Without it, a log cut short passes.
pub fn verify(
    path: &Path,
    key: &AuditKey,
    checkpoint: Option<&Path>,
) -> Result<VerifyReport, AuditError> {
    // Read the checkpoint before the log: the log only grows while a node runs, so a log read
    // afterwards is never behind a checkpoint that was current. A checkpoint problem is
    // reported after the log's own check, so a rewritten log is named by its line first.
    let pinned: Option<Result<(Head, Option<String>), AuditError>> =
        checkpoint.map(|cp| match checkpoint::read(cp, key)? {
            Some(found) => Ok((found.head, found.damaged)),
            None => Err(AuditError::general(format!(
                "the checkpoint {} does not exist: without it lines cut off the end of the log \
                 cannot be detected (deleted? pass --no-checkpoint to check the chain alone)",
                cp.display()
            ))),
        });
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
        let rec = record::parse(key, &buf[..n - 1]).map_err(|what| AuditError::at(number, what))?;
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
        if let Some(Ok((head, _))) = &pinned {
            if head.seq == number && head.hash != rec.hash {
                return Err(AuditError::at(
                    number,
                    "hash is not the one the checkpoint records for this line: the log was \
                     replaced or rewritten",
                ));
            }
        }
        prev = Some(rec.hash);
        lines = number;
    }
    let checkpoint = match pinned {
        None => None,
        Some(found) => {
            let (head, warning) = found?;
            if let Some(n) = node.filter(|&n| n != head.node) {
                return Err(AuditError::general(format!(
                    "the checkpoint is node {}'s, the log node {n}'s",
                    head.node
                )));
            }
            if head.seq > lines {
                return Err(AuditError::at(
                    lines + 1,
                    format!(
                        "missing: the log ends at line {lines} but its checkpoint records line \
                         {}: lines were cut off the end",
                        head.seq
                    ),
                ));
            }
            if head.seq == 0 && head.hash != record::genesis(head.node) {
                return Err(AuditError::general(
                    "the checkpoint's empty-log head is not its node's genesis value",
                ));
            }
            node = Some(head.node);
            Some(CheckpointReport {
                seq: head.seq,
                hash: head.hash,
                warning,
            })
        }
    };
    Ok(VerifyReport {
        lines,
        last_hash: prev,
        node,
        checkpoint,
    })
}
