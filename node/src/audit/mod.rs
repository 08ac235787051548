//! A hash-chained, append-only audit log of security events.
//!
//! One JSON object per line, in this field order:
//!
//! ```text
//! {"seq":1,"time":"2026-01-02T03:04:05.678Z","event":{"type":"node_started","node":3,"version":"0.1.0"},
//!  "prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! - `seq` counts lines from 1; `time` is RFC 3339 UTC (milliseconds) from the clock the caller
//!   passes; `event` is an [`AuditEvent`] (ids, counts and reasons, never secrets).
//! - `prev` is the previous line's `hash`; the first line's is the *genesis value*
//!   `hex(SHA-256("keyshard audit log genesis v1\n" || node id in decimal))`, which ties a log to
//!   its node and makes dropping the first line detectable.
//! - `hash = hex(SHA-256(prev || "\n" || body))`, `body` being the line without its `hash`
//!   field: `{"seq":..,"time":..,"event":..,"prev":..}` exactly as serialised (no spaces,
//!   fields in the order above). A reader re-encodes every line and requires the same bytes,
//!   so one canonical form exists per record and any edited byte is caught.
//!
//! [`verify`] detects an edited line, a removed, inserted or moved line, lines swapped, a
//! stretch cut out of the middle, bad JSON and an incomplete last line, and names the first line
//! at fault. What a chain alone cannot show is lines cut off the *end*: keep the reported
//! `last_hash` somewhere else (another host, a ticket) to pin the log up to that point.
//!
//! **Durability and crashes.** [`AuditLog::append`] writes the whole line (newline last) with
//! one `write` and calls `sync_data` before it returns, so an acknowledged event is on disk. A
//! crash during an append can leave a *torn tail*: a prefix of the line without its newline
//! (or, on some file systems, zeros). That event was never acknowledged. [`AuditLog::open`]
//! refuses such a file with an error that says so; [`AuditLog::open_repairing`] (what a daemon
//! uses at start) cuts the partial line off, syncs, and appends a
//! [`AuditEvent::TornTailDropped`] event recording the line number, length and SHA-256 of what
//! was cut, so the repair is itself in the chain and cannot be confused with a silent deletion.
//! Opening reads only the first line (to check the anchor) and the last complete line (to
//! resume `seq` and `prev`); run [`verify`] for the whole chain. After a failed write or sync
//! the handle refuses further appends (the file's end is unknown; fsync errors are not retried).
//!
//! [`SharedAuditLog`] is the thread-safe handle (a mutex around the log plus the clock) for
//! async code: `append` blocks on the disk; `append_async` runs it on tokio's blocking pool.

mod event;
mod record;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use event::AuditEvent;
pub use record::{genesis, MAX_LINE};
pub use verify::{verify, VerifyReport};
pub use writer::{Appended, AuditLog, TornTail};

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
