//! Security events and the hook that records them.
//!
//! Every refusal on the way in is reported exactly where it happens: TLS handshakes that fail
//! (no certificate, another CA's, expired, not TLS at all), certificates that fail verification
//! (with the identity they claim, unverified), authenticated callers without the role an RPC
//! needs, and node certificates refused on the peer stream. The daemon implements [`AuditSink`]
//! to write its audit log; [`MemoryAudit`] keeps events in memory (tests, small tools).

use core::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

use keyshard_pki::Identity;

/// Something security-relevant that was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A TLS handshake failed before any request was read.
    ConnectionRefused {
        /// The remote address, if known.
        remote: Option<SocketAddr>,
        /// The TLS error (e.g. "peer sent no certificates", "invalid peer certificate: ...").
        reason: String,
    },
    /// A client certificate failed verification during a handshake.
    CertificateRejected {
        /// The identity the certificate claims (its keyshard URI), not verified; `None` if it
        /// names none.
        claimed: Option<String>,
        /// Why it was refused.
        reason: String,
    },
    /// An authenticated caller asked for an RPC its role may not call.
    PermissionDenied {
        /// The caller.
        who: Identity,
        /// The RPC (`keyshard.client.v1.Keyshard/Reshare`, ...).
        rpc: &'static str,
        /// What was needed.
        reason: String,
    },
    /// A node certificate was refused on the peer transport (not a member, wrong dialing
    /// direction, or a dialed server that is not the node expected).
    PeerRejected {
        /// The node, as its certificate names it.
        who: Identity,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for SecurityEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityEvent::ConnectionRefused { remote, reason } => match remote {
                Some(a) => write!(f, "connection from {a} refused: {reason}"),
                None => write!(f, "connection refused: {reason}"),
            },
            SecurityEvent::CertificateRejected { claimed, reason } => {
                let who = claimed.as_deref().unwrap_or("no keyshard identity");
                write!(f, "certificate ({who}, unverified) rejected: {reason}")
            }
            SecurityEvent::PermissionDenied { who, rpc, reason } => {
                write!(f, "{who} denied {rpc}: {reason}")
            }
            SecurityEvent::PeerRejected { who, reason } => {
                write!(f, "peer {who} rejected: {reason}")
            }
        }
    }
}

/// Where security events go. Called on the request path: keep it quick (queue, don't block).
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: SecurityEvent);
}

/// Keeps the most recent events in memory (at most `capacity`; older ones are dropped first).
#[derive(Debug)]
pub struct MemoryAudit {
    capacity: usize,
    events: Mutex<Vec<SecurityEvent>>,
}

impl MemoryAudit {
    /// An empty log holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        MemoryAudit {
            capacity: capacity.max(1),
            events: Mutex::new(Vec::new()),
        }
    }

    /// A copy of the events recorded so far, oldest first.
    pub fn events(&self) -> Vec<SecurityEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, event: SecurityEvent) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == self.capacity {
            events.remove(0);
        }
        events.push(event);
    }
}
