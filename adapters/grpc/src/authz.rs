//! Which role may call which RPC.
//!
//! | RPC | roles |
//! |---|---|
//! | `Peer/Stream` | `tee`, `mesh` (and the node must be a known member: [`crate::peer`]) |
//! | `CreateKey`, `Sign`, `GetPublicKey`, `ListKeys`, `GetTask`, `ClusterStatus` | `application`, `admin` |
//! | `Reshare`, `AddMember`, `RemoveMember` | `admin` |
//!
//! Health checking and reflection are open to any authenticated certificate. A refusal is
//! `PERMISSION_DENIED` naming the roles needed, and a [`SecurityEvent::PermissionDenied`].

use keyshard_pki::{Identity, Role};
use tonic::Status;

use crate::audit::{AuditSink, SecurityEvent};

/// An RPC subject to authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rpc {
    /// `keyshard.peer.v1.Peer/Stream`.
    PeerStream,
    /// `Keyshard/CreateKey`.
    CreateKey,
    /// `Keyshard/GetPublicKey`.
    GetPublicKey,
    /// `Keyshard/ListKeys`.
    ListKeys,
    /// `Keyshard/Sign`.
    Sign,
    /// `Keyshard/Reshare`.
    Reshare,
    /// `Keyshard/GetTask`.
    GetTask,
    /// `Keyshard/ClusterStatus`.
    ClusterStatus,
    /// `Keyshard/AddMember`.
    AddMember,
    /// `Keyshard/RemoveMember`.
    RemoveMember,
}

const NODES: &[Role] = &[Role::Tee, Role::Mesh];
const CLIENTS: &[Role] = &[Role::Application, Role::Admin];
const ADMINS: &[Role] = &[Role::Admin];

impl Rpc {
    /// The full gRPC method path.
    pub const fn path(self) -> &'static str {
        match self {
            Rpc::PeerStream => "keyshard.peer.v1.Peer/Stream",
            Rpc::CreateKey => "keyshard.client.v1.Keyshard/CreateKey",
            Rpc::GetPublicKey => "keyshard.client.v1.Keyshard/GetPublicKey",
            Rpc::ListKeys => "keyshard.client.v1.Keyshard/ListKeys",
            Rpc::Sign => "keyshard.client.v1.Keyshard/Sign",
            Rpc::Reshare => "keyshard.client.v1.Keyshard/Reshare",
            Rpc::GetTask => "keyshard.client.v1.Keyshard/GetTask",
            Rpc::ClusterStatus => "keyshard.client.v1.Keyshard/ClusterStatus",
            Rpc::AddMember => "keyshard.client.v1.Keyshard/AddMember",
            Rpc::RemoveMember => "keyshard.client.v1.Keyshard/RemoveMember",
        }
    }

    /// The roles that may call it.
    pub const fn allowed(self) -> &'static [Role] {
        match self {
            Rpc::PeerStream => NODES,
            Rpc::CreateKey
            | Rpc::GetPublicKey
            | Rpc::ListKeys
            | Rpc::Sign
            | Rpc::GetTask
            | Rpc::ClusterStatus => CLIENTS,
            Rpc::Reshare | Rpc::AddMember | Rpc::RemoveMember => ADMINS,
        }
    }
}

/// Allows the call if the caller's role may make it; otherwise records the refusal and returns
/// `PERMISSION_DENIED` naming the roles needed.
pub fn authorize(who: &Identity, rpc: Rpc, audit: &dyn AuditSink) -> Result<(), Status> {
    let allowed = rpc.allowed();
    if allowed.contains(&who.role()) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
    let reason = format!(
        "{} needs role {}; the caller has role {}",
        rpc.path(),
        names.join(" or "),
        who.role()
    );
    audit.record(SecurityEvent::PermissionDenied {
        who: who.clone(),
        rpc: rpc.path(),
        reason: reason.clone(),
    });
    Err(Status::permission_denied(reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::MemoryAudit;
    use keyshard_core::ids::ParticipantId;
    use keyshard_pki::{ClientName, ClientRole, NodeRole};

    const ALL: [Rpc; 10] = [
        Rpc::PeerStream,
        Rpc::CreateKey,
        Rpc::GetPublicKey,
        Rpc::ListKeys,
        Rpc::Sign,
        Rpc::Reshare,
        Rpc::GetTask,
        Rpc::ClusterStatus,
        Rpc::AddMember,
        Rpc::RemoveMember,
    ];

    fn who(role: Role) -> Identity {
        match role {
            Role::Tee | Role::Mesh => Identity::Node {
                id: ParticipantId::new(1).unwrap(),
                role: if role == Role::Tee {
                    NodeRole::Tee
                } else {
                    NodeRole::Mesh
                },
            },
            Role::Application | Role::Admin => Identity::Client {
                name: ClientName::new("c").unwrap(),
                role: if role == Role::Admin {
                    ClientRole::Admin
                } else {
                    ClientRole::Application
                },
            },
        }
    }

    #[test]
    fn the_role_table_is_enforced_and_every_refusal_audited() {
        let audit = MemoryAudit::new(100);
        let mut denied = 0;
        for rpc in ALL {
            for role in [Role::Tee, Role::Mesh, Role::Application, Role::Admin] {
                let expected = match rpc {
                    Rpc::PeerStream => role.is_node(),
                    Rpc::Reshare | Rpc::AddMember | Rpc::RemoveMember => role == Role::Admin,
                    _ => !role.is_node(),
                };
                let r = authorize(&who(role), rpc, &audit);
                assert_eq!(r.is_ok(), expected, "{rpc:?} {role:?}");
                if let Err(s) = r {
                    denied += 1;
                    assert_eq!(s.code(), tonic::Code::PermissionDenied);
                    assert!(s.message().contains(rpc.path()), "{}", s.message());
                    assert!(s.message().contains(&format!("has role {role}")));
                }
            }
        }
        let events = audit.events();
        assert_eq!(events.len(), denied);
        assert!(events
            .iter()
            .all(|e| matches!(e, SecurityEvent::PermissionDenied { .. })));
        let s = authorize(&who(Role::Application), Rpc::Reshare, &audit).unwrap_err();
        assert!(s.message().contains("needs role admin"), "{}", s.message());
        let s = authorize(&who(Role::Admin), Rpc::PeerStream, &audit).unwrap_err();
        assert!(
            s.message().contains("needs role tee or mesh"),
            "{}",
            s.message()
        );
    }
}
