//! The accepting side: `Peer/Stream` from lower-id members.

use std::pin::Pin;
use std::sync::Arc;

use keyshard_pki::Identity;
use keyshard_proto::peer::peer_server::Peer;
use keyshard_proto::peer::PeerFrame;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{stream, Shared, Slot};
use crate::audit::SecurityEvent;
use crate::authz::{authorize, Rpc};
use crate::identity::peer_identity;

/// The `keyshard.peer.v1.Peer` service of a [`super::PeerTransport`].
pub struct PeerService {
    shared: Arc<Shared>,
}

impl PeerService {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PeerService { shared }
    }

    /// The slot of the member `who` if it may open a stream to this node.
    fn admit(&self, who: &Identity) -> Result<Arc<Slot>, Status> {
        let shared = &self.shared;
        let reject = |reason: String| {
            shared.audit.record(SecurityEvent::PeerRejected {
                who: who.clone(),
                reason: reason.clone(),
            });
            Status::permission_denied(reason)
        };
        let Identity::Node { id, role } = who else {
            // authorize() already refused non-node roles; kept for safety.
            return Err(reject(format!("{who} is not a node")));
        };
        let (id, role) = (*id, *role);
        if id == shared.me {
            return Err(reject(format!(
                "node {id} presented this node's own identity"
            )));
        }
        let Some(slot) = shared.slot(id) else {
            return Err(reject(format!("node {id} is not a member")));
        };
        shared.check_role(id, role).map_err(reject)?;
        if id > shared.me {
            return Err(reject(format!(
                "node {id} dialed node {}; the lower id dials the higher",
                shared.me
            )));
        }
        Ok(slot)
    }
}

/// The frames this node sends on an accepted stream.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<PeerFrame, Status>> + Send>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type StreamStream = FrameStream;

    async fn stream(
        &self,
        request: Request<Streaming<PeerFrame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let who = peer_identity(&request)?;
        authorize(&who, Rpc::PeerStream, &*self.shared.audit)?;
        let slot = self.admit(&who)?;

        // This stream replaces any earlier one from the same peer (e.g. before it restarted).
        let stop = slot.stop.child_token();
        if let Some(old) = slot
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(stop.clone())
        {
            old.cancel();
        }
        let up = slot.up();
        let frames = stream::outbound(slot.clone(), stop.clone());
        // A failed inbound side (decode error, oversized frame) ends the response with its status.
        let (failed_tx, failed) = mpsc::channel(1);
        let shared = self.shared.clone();
        let incoming = request.into_inner();
        tokio::spawn(async move {
            let _up = up;
            let end = stream::inbound(
                &slot,
                incoming,
                &shared.inbound,
                shared.max_frame_bytes,
                &stop,
            )
            .await;
            if let Err(status) = end {
                // Capacity 1 and the only send: never full.
                let _ = failed_tx.try_send(Err(status));
            }
            stop.cancel();
        });
        Ok(Response::new(Box::pin(
            frames.map(Ok).chain(ReceiverStream::new(failed)),
        )))
    }
}
