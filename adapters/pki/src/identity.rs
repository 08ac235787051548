//! The identity URI: `keyshard://node/<id>?role=..` and `keyshard://client/<name>?role=..`.

use core::fmt;
use core::str::FromStr;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;

const SCHEME: &str = "keyshard://";
/// Longest URI accepted (the longest valid one is well under this).
const MAX_URI: usize = 128;
/// Client names are 1 to 64 characters.
const MAX_NAME: usize = 64;

/// Every role a certificate can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A cluster node running inside a TEE.
    Tee,
    /// A cluster node without TEE protection.
    Mesh,
    /// A client application: creates keys, signs, reads.
    Application,
    /// An operator: everything an application may do, plus resharing and membership changes.
    Admin,
}

impl Role {
    /// The role's name in the URI (`tee`, `mesh`, `application`, `admin`).
    pub const fn name(self) -> &'static str {
        match self {
            Role::Tee => "tee",
            Role::Mesh => "mesh",
            Role::Application => "application",
            Role::Admin => "admin",
        }
    }

    /// Whether this is a cluster node's role.
    pub const fn is_node(self) -> bool {
        matches!(self, Role::Tee | Role::Mesh)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role of a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientRole {
    /// A client application.
    Application,
    /// An operator.
    Admin,
}

impl From<ClientRole> for Role {
    fn from(r: ClientRole) -> Role {
        match r {
            ClientRole::Application => Role::Application,
            ClientRole::Admin => Role::Admin,
        }
    }
}

fn node_role(r: NodeRole) -> Role {
    match r {
        NodeRole::Tee => Role::Tee,
        NodeRole::Mesh => Role::Mesh,
    }
}

/// A client's name: 1 to 64 characters of `[a-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientName(String);

impl ClientName {
    /// Validates a client name.
    pub fn new(s: &str) -> Result<ClientName, IdentityError> {
        let ok = (1..=MAX_NAME).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(ClientName(s.to_string()))
        } else {
            Err(IdentityError::BadClientName(excerpt(s)))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientName({})", self.0)
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a certificate belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    /// A cluster node.
    Node {
        /// Its participant id.
        id: ParticipantId,
        /// TEE or mesh.
        role: NodeRole,
    },
    /// A client of the API.
    Client {
        /// Its name.
        name: ClientName,
        /// Application or admin.
        role: ClientRole,
    },
}

/// Why a URI or a certificate does not name a keyshard identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The URI does not start with `keyshard://`.
    NotKeyshardUri(String),
    /// The URI is longer than any valid identity.
    TooLong(usize),
    /// The part after `keyshard://` is neither `node/..` nor `client/..`.
    UnknownKind(String),
    /// The node id is not a canonical decimal number from 1 to 65535.
    BadNodeId(String),
    /// The client name is not 1 to 64 characters of `[a-z0-9._-]`.
    BadClientName(String),
    /// No `?role=` (or anything else after the id or name).
    BadQuery(String),
    /// The role is unknown, or not one this kind of identity may have.
    BadRole {
        /// `node` or `client`.
        kind: &'static str,
        /// The role given.
        role: String,
    },
    /// The certificate could not be parsed as DER X.509.
    BadCertificate(String),
    /// The certificate has no `keyshard://` URI subject alternative name.
    NoIdentity,
    /// The certificate has more than one `keyshard://` URI subject alternative name.
    AmbiguousIdentity(usize),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NotKeyshardUri(s) => {
                write!(f, "identity URI {s:?} does not start with {SCHEME}")
            }
            IdentityError::TooLong(n) => {
                write!(f, "identity URI is {n} bytes, more than {MAX_URI}")
            }
            IdentityError::UnknownKind(s) => write!(
                f,
                "identity URI {s:?} names neither keyshard://node/<id> nor keyshard://client/<name>"
            ),
            IdentityError::BadNodeId(s) => write!(
                f,
                "node id {s:?} is not a decimal number from 1 to 65535 without leading zeros"
            ),
            IdentityError::BadClientName(s) => write!(
                f,
                "client name {s:?} is not 1 to {MAX_NAME} characters of a-z 0-9 . _ -"
            ),
            IdentityError::BadQuery(s) => {
                write!(f, "identity URI query {s:?} is not exactly role=<role>")
            }
            IdentityError::BadRole { kind, role } => {
                let allowed = if *kind == "node" {
                    "tee or mesh"
                } else {
                    "application or admin"
                };
                write!(f, "role {role:?} is not a {kind} role ({allowed})")
            }
            IdentityError::BadCertificate(s) => write!(f, "certificate does not parse: {s}"),
            IdentityError::NoIdentity => {
                write!(
                    f,
                    "certificate has no {SCHEME} URI subject alternative name"
                )
            }
            IdentityError::AmbiguousIdentity(n) => write!(
                f,
                "certificate has {n} {SCHEME} URI subject alternative names; exactly one is allowed"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// At most 80 characters of untrusted input, for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

impl Identity {
    /// The role.
    pub fn role(&self) -> Role {
        match self {
            Identity::Node { role, .. } => node_role(*role),
            Identity::Client { role, .. } => Role::from(*role),
        }
    }

    /// The node id, for a node identity.
    pub fn node_id(&self) -> Option<ParticipantId> {
        match self {
            Identity::Node { id, .. } => Some(*id),
            Identity::Client { .. } => None,
        }
    }

    /// The canonical URI (the form [`Identity::from_uri`] accepts).
    pub fn to_uri(&self) -> String {
        match self {
            Identity::Node { id, role } => {
                format!("{SCHEME}node/{}?role={}", id.get(), node_role(*role))
            }
            Identity::Client { name, role } => {
                format!("{SCHEME}client/{name}?role={}", Role::from(*role))
            }
        }
    }

    /// Parses an identity URI. Exactly the canonical form is accepted: lowercase scheme and
    /// role, no leading zeros, no other query parameters, no fragment, no trailing slash.
    pub fn from_uri(uri: &str) -> Result<Identity, IdentityError> {
        if uri.len() > MAX_URI {
            return Err(IdentityError::TooLong(uri.len()));
        }
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| IdentityError::NotKeyshardUri(excerpt(uri)))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (kind, subject) = path
            .split_once('/')
            .ok_or_else(|| IdentityError::UnknownKind(excerpt(uri)))?;
        let role = match query.and_then(|q| q.strip_prefix("role=")) {
            Some(r) if !r.contains(['&', '#', '=']) => r,
            _ => return Err(IdentityError::BadQuery(excerpt(query.unwrap_or("")))),
        };
        match kind {
            "node" => {
                let id = parse_node_id(subject)?;
                let role = match role {
                    "tee" => NodeRole::Tee,
                    "mesh" => NodeRole::Mesh,
                    other => {
                        return Err(IdentityError::BadRole {
                            kind: "node",
                            role: excerpt(other),
                        })
                    }
                };
                Ok(Identity::Node { id, role })
            }
            "client" => {
                let name = ClientName::new(subject)?;
                let role = match role {
                    "application" => ClientRole::Application,
                    "admin" => ClientRole::Admin,
                    other => {
                        return Err(IdentityError::BadRole {
                            kind: "client",
                            role: excerpt(other),
                        })
                    }
                };
                Ok(Identity::Client { name, role })
            }
            _ => Err(IdentityError::UnknownKind(excerpt(uri))),
        }
    }
}

fn parse_node_id(s: &str) -> Result<ParticipantId, IdentityError> {
    let bad = || IdentityError::BadNodeId(excerpt(s));
    if s.is_empty() || s.len() > 5 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u16 = s.parse().map_err(|_| bad())?;
    ParticipantId::new(n).ok_or_else(bad)
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

impl FromStr for Identity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identity::from_uri(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u16, role: NodeRole) -> Identity {
        Identity::Node {
            id: ParticipantId::new(id).unwrap(),
            role,
        }
    }

    fn client(name: &str, role: ClientRole) -> Identity {
        Identity::Client {
            name: ClientName::new(name).unwrap(),
            role,
        }
    }

    #[test]
    fn canonical_uris_round_trip() {
        let cases = [
            (node(1, NodeRole::Tee), "keyshard://node/1?role=tee"),
            (
                node(65535, NodeRole::Mesh),
                "keyshard://node/65535?role=mesh",
            ),
            (
                client("billing-svc.prod_1", ClientRole::Application),
                "keyshard://client/billing-svc.prod_1?role=application",
            ),
            (
                client("ops", ClientRole::Admin),
                "keyshard://client/ops?role=admin",
            ),
        ];
        for (identity, uri) in cases {
            assert_eq!(identity.to_uri(), uri);
            assert_eq!(Identity::from_uri(uri).unwrap(), identity);
        }
        let long = "a".repeat(64);
        let uri = format!("keyshard://client/{long}?role=admin");
        assert_eq!(
            Identity::from_uri(&uri).unwrap(),
            client(&long, ClientRole::Admin)
        );
    }

    #[test]
    fn every_malformed_uri_is_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("https://node/1?role=tee", "does not start with"),
            ("KEYSHARD://node/1?role=tee", "does not start with"),
            ("keyshard://host/1?role=tee", "names neither"),
            ("keyshard://node?role=tee", "names neither"),
            ("keyshard://node/0?role=tee", "node id \"0\""),
            ("keyshard://node/01?role=tee", "node id \"01\""),
            ("keyshard://node/65536?role=tee", "node id \"65536\""),
            ("keyshard://node/+1?role=tee", "node id \"+1\""),
            ("keyshard://node/1/?role=tee", "node id \"1/\""),
            ("keyshard://node/1", "query \"\""),
            ("keyshard://node/1?role=tee&x=1", "query"),
            ("keyshard://node/1?x=1&role=tee", "query"),
            ("keyshard://node/1?role=tee#f", "query"),
            ("keyshard://node/1?role=admin", "not a node role"),
            ("keyshard://node/1?role=TEE", "not a node role"),
            ("keyshard://client/ops?role=tee", "not a client role"),
            ("keyshard://client/Ops?role=admin", "client name \"Ops\""),
            ("keyshard://client/?role=admin", "client name \"\""),
            ("keyshard://client/a b?role=admin", "client name"),
            ("keyshard://client/a/b?role=admin", "client name"),
        ];
        for (uri, why) in cases {
            let err = Identity::from_uri(uri).unwrap_err().to_string();
            assert!(err.contains(why), "{uri}: {err}");
        }
        let too_long = format!("keyshard://client/{}?role=admin", "a".repeat(65));
        assert!(Identity::from_uri(&too_long)
            .unwrap_err()
            .to_string()
            .contains("client name"));
        let huge = format!("keyshard://client/{}?role=admin", "a".repeat(500));
        assert_eq!(
            Identity::from_uri(&huge).unwrap_err(),
            IdentityError::TooLong(huge.len())
        );
    }

    #[test]
    fn roles_know_whether_they_are_nodes() {
        assert!(node(3, NodeRole::Tee).role().is_node());
        assert!(node(3, NodeRole::Mesh).role().is_node());
        assert!(!client("a", ClientRole::Application).role().is_node());
        assert_eq!(client("a", ClientRole::Admin).role(), Role::Admin);
        assert_eq!(node(3, NodeRole::Mesh).node_id(), ParticipantId::new(3));
        assert_eq!(client("a", ClientRole::Admin).node_id(), None);
    }
}
