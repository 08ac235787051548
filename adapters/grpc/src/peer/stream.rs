//! Moving frames between a peer's queue, one gRPC stream, and the inbound channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use keyshard_proto::peer::PeerFrame;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::{Inbound, Slot};

/// The frames to send on one stream: drains the peer's queue until `stop` is cancelled or the
/// stream is dropped. Only one stream drains a queue at a time (the queue's lock); a frame taken
/// from the queue when the stream dies is lost, which the core tolerates.
pub(super) fn outbound(slot: Arc<Slot>, stop: CancellationToken) -> ReceiverStream<PeerFrame> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut queue = tokio::select! {
            q = slot.rx.lock() => q,
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
        };
        loop {
            let payload = tokio::select! {
                m = queue.recv() => match m {
                    Some(m) => {
                        slot.queued_bytes.fetch_sub(m.len(), Ordering::AcqRel);
                        m
                    }
                    None => return,
                },
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
            };
            tokio::select! {
                r = tx.send(PeerFrame { payload }) => {
                    if r.is_err() {
                        return;
                    }
                    slot.sent.fetch_add(1, Ordering::Relaxed);
                }
                _ = stop.cancelled() => return,
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Delivers the frames of one stream to the inbound channel as coming from `slot.id` until the
/// stream ends or `stop` is cancelled (`Ok`), or the stream fails or carries an oversized frame
/// (`Err`, the status to end the stream with).
pub(super) async fn inbound(
    slot: &Slot,
    mut frames: Streaming<PeerFrame>,
    to: &mpsc::Sender<Inbound>,
    max_frame_bytes: usize,
    stop: &CancellationToken,
) -> Result<(), Status> {
    loop {
        let next = tokio::select! {
            m = frames.message() => m,
            _ = stop.cancelled() => return Ok(()),
        };
        let Some(frame) = next? else {
            return Ok(());
        };
        if frame.payload.len() > max_frame_bytes {
            return Err(Status::out_of_range(format!(
                "a {}-byte frame exceeds the {max_frame_bytes}-byte limit",
                frame.payload.len()
            )));
        }
        slot.received.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            r = to.send((slot.id, frame.payload)) => {
                if r.is_err() {
                    return Ok(()); // nobody reads inbound frames any more: shutting down
                }
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}
