//! The client API: authorization and validation here, the work in a [`ClientBackend`].

use std::sync::Arc;

use keyshard_core::ids::ParticipantId;
use keyshard_core::persist::KeyId;
use keyshard_pki::Identity;
use keyshard_proto::client as pb;
use keyshard_proto::client::keyshard_server::{Keyshard, KeyshardServer};
use keyshard_proto::convert::{self, ClientRequest, NewMember};
use tonic::{Request, Response, Status};

use crate::audit::AuditSink;
use crate::authz::{authorize, Rpc};
use crate::identity::peer_identity;

/// What the node does for each client RPC. Every call arrives authenticated (the caller's
/// certificate identity), authorized (its role may make the call) and validated (core types;
/// malformed requests were refused with `INVALID_ARGUMENT` naming the field). Errors are gRPC
/// statuses; [`keyshard_proto::convert::status`] maps core errors to them.
#[tonic::async_trait]
pub trait ClientBackend: Send + Sync + 'static {
    /// Create a key (`request.request` is `Request::CreateKey`).
    async fn create_key(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::CreateKeyResponse, Status>;
    /// A key's public key and parameters.
    async fn get_public_key(&self, who: &Identity, key: KeyId) -> Result<pb::KeyInfo, Status>;
    /// Every key.
    async fn list_keys(&self, who: &Identity) -> Result<pb::ListKeysResponse, Status>;
    /// Sign a batch (`request.request` is `Request::Sign`).
    async fn sign(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::SignResponse, Status>;
    /// Reshare a key (`request.request` is `Request::Reshare`); the caller is an admin.
    async fn reshare(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::ReshareResponse, Status>;
    /// A task by the request id it was submitted with.
    async fn get_task(&self, who: &Identity, request_id: String) -> Result<pb::TaskInfo, Status>;
    /// Leader, term, members.
    async fn cluster_status(&self, who: &Identity) -> Result<pb::ClusterStatusResponse, Status>;
    /// Add a member; the caller is an admin.
    async fn add_member(
        &self,
        who: &Identity,
        member: NewMember,
    ) -> Result<pb::AddMemberResponse, Status>;
    /// Remove a member; the caller is an admin.
    async fn remove_member(
        &self,
        who: &Identity,
        id: ParticipantId,
    ) -> Result<pb::RemoveMemberResponse, Status>;
}

/// The `keyshard.client.v1.Keyshard` service over a [`ClientBackend`].
pub struct ClientService<B> {
    backend: Arc<B>,
    audit: Arc<dyn AuditSink>,
}

impl<B: ClientBackend> ClientService<B> {
    /// The service; refusals are recorded in `audit`.
    pub fn new(backend: Arc<B>, audit: Arc<dyn AuditSink>) -> Self {
        ClientService { backend, audit }
    }

    /// As a tonic server, with message size limits fitting a full signing batch.
    pub fn into_server(self) -> KeyshardServer<Self> {
        KeyshardServer::new(self)
            .max_decoding_message_size(MAX_CLIENT_MESSAGE)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE)
    }

    fn caller<T>(&self, request: &Request<T>, rpc: Rpc) -> Result<Identity, Status> {
        let who = peer_identity(request)?;
        authorize(&who, rpc, &*self.audit)?;
        Ok(who)
    }
}

/// Largest client request or response: a full batch of the largest messages (or signatures)
/// with protobuf framing, plus room for the other fields.
pub const MAX_CLIENT_MESSAGE: usize = keyshard_core::frost::sign::MAX_BATCH
    * (keyshard_core::frost::sign::MAX_MESSAGE_BYTES + 8)
    + 64 * 1024;

#[tonic::async_trait]
impl<B: ClientBackend> Keyshard for ClientService<B> {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let who = self.caller(&request, Rpc::CreateKey)?;
        let valid = convert::create_key(request.into_inner())?;
        self.backend
            .create_key(&who, valid)
            .await
            .map(Response::new)
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::KeyInfo>, Status> {
        let who = self.caller(&request, Rpc::GetPublicKey)?;
        let key = convert::get_public_key(request.into_inner())?;
        self.backend
            .get_public_key(&who, key)
            .await
            .map(Response::new)
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let who = self.caller(&request, Rpc::ListKeys)?;
        self.backend.list_keys(&who).await.map(Response::new)
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let who = self.caller(&request, Rpc::Sign)?;
        let valid = convert::sign(request.into_inner())?;
        self.backend.sign(&who, valid).await.map(Response::new)
    }

    async fn reshare(
        &self,
        request: Request<pb::ReshareRequest>,
    ) -> Result<Response<pb::ReshareResponse>, Status> {
        let who = self.caller(&request, Rpc::Reshare)?;
        let valid = convert::reshare(request.into_inner())?;
        self.backend.reshare(&who, valid).await.map(Response::new)
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::TaskInfo>, Status> {
        let who = self.caller(&request, Rpc::GetTask)?;
        let id = convert::get_task(request.into_inner())?;
        self.backend.get_task(&who, id).await.map(Response::new)
    }

    async fn cluster_status(
        &self,
        request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let who = self.caller(&request, Rpc::ClusterStatus)?;
        self.backend.cluster_status(&who).await.map(Response::new)
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let who = self.caller(&request, Rpc::AddMember)?;
        let member = convert::add_member(request.into_inner())?;
        self.backend
            .add_member(&who, member)
            .await
            .map(Response::new)
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let who = self.caller(&request, Rpc::RemoveMember)?;
        let id = convert::remove_member(request.into_inner())?;
        self.backend
            .remove_member(&who, id)
            .await
            .map(Response::new)
    }
}
