//! A keyed, hash-chained, append-only audit log of security events, with a tail checkpoint.
//!
//! One JSON object per line, in this field order:
//!
//! ```text
//! {"v":2,"seq":1,"time":"2026-01-02T03:04:05.678Z","event":{"type":"node_started","node":3,
//!  "version":"0.1.0"},"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! - `v` is the format (2: keyed). `seq` counts lines from 1; `time` is RFC 3339 UTC
//!   (milliseconds) from the clock the caller passes; `event` is an [`AuditEvent`] (ids, counts
//!   and reasons, never secrets).
//! - `prev` is the previous line's `hash`; the first line's is the *genesis value*
//!   `hex(SHA-256("keyshard audit log genesis v2\n" || node id in decimal))`, which ties a log to
//!   its node and makes dropping the first line detectable. It is public so a reader without
//!   the key can still tell whose log a file is.
//! - `hash = hex(HMAC-SHA-256(audit key, "keyshard audit line v2\n" || prev || "\n" || body))`,
//!   `body` being the line without its `hash` field: `{"v":..,"seq":..,"time":..,"event":..,
//!   "prev":..}` exactly as serialised (no spaces, fields in the order above). A reader
//!   re-encodes every line and requires the same bytes, so one canonical form exists per record
//!   and any edited byte is caught.
//! - The *audit key* ([`AuditKey`]) is `HMAC-SHA-256(sealing key, "keyshard audit chain v2")`:
//!   a sub-key of the node's sealing key (`<data_dir>/sealing.key`), never the sealing key
//!   itself. With a plain hash chain (format v1) anyone able to write the file could rewrite it
//!   whole with a freshly computed chain; now that takes the key. v1 lines are refused by
//!   [`verify`]; a daemon finding a v1 log at start moves it aside (see
//!   [`AuditLog::open_repairing`]).
//!
//! **The checkpoint** (`<data_dir>/audit.head`, [`CHECKPOINT_FILE`]) holds the chain head
//! `(seq, hash)` under a MAC with the same key, and is rewritten after every append. A chain
//! cannot show lines cut off its *end* (a prefix of a valid chain is valid); [`verify`] given
//! the checkpoint can: the log must reach the line it records, with that hash. It lives apart
//! from the log (the log may be configured elsewhere, e.g. under /var/log). It is node-local:
//! someone who can rewrite both files (root on the node) can put back older copies of both, or
//! delete both; only a copy of the head kept off the node catches that (docs/security.md).
//!
//! [`verify`] detects an edited line, a rewritten log (without the key), a removed, inserted
//! or moved line, lines swapped, a stretch cut out of the middle, lines cut off the end (with
//! the checkpoint), bad JSON and an incomplete last line, and names the first line at fault.
//!
//! **Durability and crashes.** [`AuditLog::append`] writes the whole line (newline last) with
//! one `write` and calls `sync_data`, then rewrites one checkpoint slot with one write and
//! `sync_data`, before it returns, so an acknowledged event is on disk and checkpointed. A
//! crash during an append can leave a *torn tail*: a prefix of the line without its newline
//! (or, on some file systems, zeros). That event was never acknowledged. [`AuditLog::open`]
//! refuses such a file with an error that says so; [`AuditLog::open_repairing`] (what a daemon
//! uses at start) cuts the partial line off, syncs, and appends a
//! [`AuditEvent::TornTailDropped`] event recording the line number, length and SHA-256 of what
//! was cut, so the repair is itself in the chain and cannot be confused with a silent deletion.
//! A crash between the line and the checkpoint leaves the checkpoint one line behind, which is
//! accepted; a torn checkpoint slot is repaired the same way ([`AuditEvent::CheckpointRepaired`]).
//! Opening reads only the first line (to check the anchor) and the last complete line (to
//! resume `seq` and `prev` and compare with the checkpoint); run [`verify`] for the whole
//! chain. After a failed write or sync the handle refuses further appends (the file's end is
//! unknown; fsync errors are not retried).
//!
//! [`SharedAuditLog`] is the thread-safe handle (a mutex around the log plus the clock) for
//! async code: `append` blocks on the disk; `append_async` runs it on tokio's blocking pool.

mod checkpoint;
mod event;
mod key;
mod record;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use checkpoint::Head;
pub use event::AuditEvent;
pub use key::AuditKey;
pub use record::{genesis, MAX_LINE};
pub use verify::{verify, CheckpointReport, VerifyReport};
pub use writer::{Appended, AuditLog, TornTail};

/// The checkpoint's file name in the node's data directory.
pub const CHECKPOINT_FILE: &str = "audit.head";

/// The sealing key's file name in the node's data directory (the audit key derives from it).
pub const SEALING_KEY_FILE: &str = "sealing.key";

/// What went wrong, and on which line when it is about one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditError {
    /// 1-based line number, when the problem is a line.
    pub line: Option<u64>,
    /// What was wrong.
    pub what: String,
}

impl AuditError {
    pub(crate) fn at(line: u64, what: impl Into<String>) -> Self {
        AuditError {
            line: Some(line),
            what: what.into(),
        }
    }

    pub(crate) fn general(what: impl Into<String>) -> Self {
        AuditError {
            line: None,
            what: what.into(),
        }
    }

    pub(crate) fn io(path: &Path, doing: &str, e: std::io::Error) -> Self {
        AuditError::general(format!("{doing} {}: {e}", path.display()))
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "audit log line {n}: {}", self.what),
            None => write!(f, "audit log: {}", self.what),
        }
    }
}

impl std::error::Error for AuditError {}

/// Where event timestamps come from. The daemon passes [`SystemClock`]; tests pass a fixed one.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A cloneable, thread-safe audit log handle. The clock is read under the lock, so line order
/// and timestamp order agree whenever the clock does not go backwards.
#[derive(Clone)]
pub struct SharedAuditLog {
    inner: Arc<Mutex<AuditLog>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SharedAuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAuditLog").finish_non_exhaustive()
    }
}

impl SharedAuditLog {
    /// Shares `log`, stamping events with `clock`.
    pub fn new(log: AuditLog, clock: Arc<dyn Clock>) -> Self {
        SharedAuditLog {
            inner: Arc::new(Mutex::new(log)),
            clock,
        }
    }

    /// Appends `event` now; returns once it is on disk. Blocks: from async code use
    /// [`SharedAuditLog::append_async`].
    pub fn append(&self, event: &AuditEvent) -> Result<Appended, AuditError> {
        let mut log = self.inner.lock().map_err(|_| {
            AuditError::general("the audit log lock is poisoned (an append panicked)")
        })?;
        let at = self.clock.now();
        log.append(at, event)
    }

    /// [`SharedAuditLog::append`] on tokio's blocking thread pool.
    pub async fn append_async(&self, event: AuditEvent) -> Result<Appended, AuditError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append(&event))
            .await
            .map_err(|e| AuditError::general(format!("the append task failed: {e}")))?
    }

    /// The last line's sequence number and hash.
    pub fn head(&self) -> Result<(u64, String), AuditError> {
        let log = self.inner.lock().map_err(|_| {
            AuditError::general("the audit log lock is poisoned (an append panicked)")
        })?;
        Ok((log.seq(), log.last_hash().to_string()))
    }
}
