//! The client API backend: each validated, authorized RPC becomes a core request (or a
//! read-only query) on the run loop.

use std::collections::BTreeMap;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::{Request, RequestError, Response};
use keyshard_core::persist::KeyId;
use keyshard_grpc::ClientBackend;
use keyshard_pki::Identity;
use keyshard_proto::client as pb;
use keyshard_proto::convert::{self, ClientRequest, NewMember};
use tonic::Status;

use crate::daemon::{Answer, DaemonHandle, Stopped};

/// The backend over a running daemon.
pub struct Backend {
    handle: DaemonHandle,
}

impl Backend {
    /// A backend for the daemon behind `handle`.
    pub fn new(handle: DaemonHandle) -> Self {
        Backend { handle }
    }

    async fn run(&self, request: ClientRequest) -> Result<Answer, Status> {
        self.handle
            .request(request.request_id, request.request)
            .await
            .map_err(unavailable)
    }
}

fn unavailable(e: Stopped) -> Status {
    Status::unavailable(e.to_string())
}

/// The request id a membership change gets: the same change asked twice against the same
/// membership is one request; asked again after the membership moved on, it is a new one.
fn membership_request_id(verb: &str, id: ParticipantId, members: &[u16]) -> String {
    let list: Vec<String> = members.iter().map(u16::to_string).collect();
    let mut rid = format!("{verb}:{id}:{}", list.join(","));
    rid.truncate(keyshard_core::node::registry::MAX_REQUEST_ID);
    rid
}

fn membership_answer(answer: Answer) -> Result<BTreeMap<ParticipantId, NodeRole>, Status> {
    match answer {
        Ok(Response::MembershipChanged { members }) => Ok(members),
        Ok(other) => Err(Status::internal(format!(
            "a membership change was answered with {other:?}"
        ))),
        Err(e) => Err(convert::status(&e)),
    }
}

#[tonic::async_trait]
impl ClientBackend for Backend {
    async fn create_key(
        &self,
        _who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::CreateKeyResponse, Status> {
        convert::create_key_result(self.run(request).await?)
    }

    async fn get_public_key(&self, _who: &Identity, key: KeyId) -> Result<pb::KeyInfo, Status> {
        let k = key.clone();
        let record = self
            .handle
            .query(move |n| n.registry().keys.get(&k).cloned())
            .await
            .map_err(unavailable)?;
        match record {
            Some(r) => convert::key_info(&key, &r),
            None => Err(convert::status(&RequestError::NoSuchKey(key))),
        }
    }

    async fn list_keys(&self, _who: &Identity) -> Result<pb::ListKeysResponse, Status> {
        let keys = self
            .handle
            .query(|n| n.registry().keys.clone())
            .await
            .map_err(unavailable)?;
        let keys = keys
            .iter()
            .map(|(k, r)| convert::key_info(k, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pb::ListKeysResponse { keys })
    }

    async fn sign(
        &self,
        _who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::SignResponse, Status> {
        convert::sign_result(self.run(request).await?)
    }

    async fn reshare(
        &self,
        _who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::ReshareResponse, Status> {
        convert::reshare_result(self.run(request).await?)
    }

    async fn get_task(&self, _who: &Identity, request_id: String) -> Result<pb::TaskInfo, Status> {
        let rid = request_id.clone();
        let task = self
            .handle
            .query(move |n| {
                let r = n.registry();
                r.requests.get(&rid).and_then(|t| r.tasks.get(t)).cloned()
            })
            .await
            .map_err(unavailable)?;
        task.map(|t| convert::task_info(&t))
            .ok_or_else(|| Status::not_found(format!("no task with request id {request_id:?}")))
    }

    async fn cluster_status(&self, _who: &Identity) -> Result<pb::ClusterStatusResponse, Status> {
        self.handle
            .query(|n| {
                let scores = n.scores();
                let registry = n.registry();
                pb::ClusterStatusResponse {
                    node_id: u32::from(n.id().get()),
                    leader: n.leader().map_or(0, |l| u32::from(l.get())),
                    term: n.term(),
                    members: registry
                        .members
                        .iter()
                        .map(|(id, role)| {
                            convert::member(
                                *id,
                                *role,
                                registry.addresses.get(id).map(String::as_str),
                                scores.get(id).map(|r| r.score).unwrap_or_default(),
                            )
                        })
                        .collect(),
                }
            })
            .await
            .map_err(unavailable)
    }

    async fn add_member(
        &self,
        _who: &Identity,
        member: NewMember,
    ) -> Result<pb::AddMemberResponse, Status> {
        let members = self.member_ids().await?;
        let request_id = membership_request_id("add", member.id, &members);
        let answer = self
            .handle
            .request(
                request_id,
                Request::AddMember {
                    id: member.id,
                    role: member.role,
                    address: member.address,
                },
            )
            .await
            .map_err(unavailable)?;
        membership_answer(answer).map(|_| pb::AddMemberResponse {})
    }

    async fn remove_member(
        &self,
        _who: &Identity,
        id: ParticipantId,
    ) -> Result<pb::RemoveMemberResponse, Status> {
        let members = self.member_ids().await?;
        let request_id = membership_request_id("remove", id, &members);
        let answer = self
            .handle
            .request(request_id, Request::RemoveMember { id })
            .await
            .map_err(unavailable)?;
        membership_answer(answer).map(|_| pb::RemoveMemberResponse {})
    }
}

impl Backend {
    async fn member_ids(&self) -> Result<Vec<u16>, Status> {
        self.handle
            .query(|n| n.registry().members.keys().map(|p| p.get()).collect())
            .await
            .map_err(unavailable)
    }
}
