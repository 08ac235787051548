//! Helpers for the security and bad-input tests: audit log reading, channels with arbitrary
//! certificates, and a raw-bytes gRPC codec.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use keyshard_grpc::{connect, ConnectOptions, ExpectServer, TlsMaterial};
use keyshard_node::dev::LocalCluster;
use keyshard_pki::SecretPem;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

/// Node `id`'s audit log.
pub fn audit_path(cluster: &LocalCluster, id: u32) -> PathBuf {
    cluster.dir.join(format!("node-{id}")).join("audit.log")
}

/// Every line of an audit log, parsed (a torn last line is skipped: the node may be writing).
pub fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l.trim_end()).unwrap())
        .collect()
}

/// Waits (at most 10 s) until a line after the first `after` lines of the log satisfies
/// `pred`, and returns it; panics naming `what` (and the lines seen) otherwise.
pub async fn wait_audit(
    path: &Path,
    after: usize,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = audit_lines(path);
        if let Some(l) = lines.iter().skip(after).find(|l| pred(l)) {
            return l.clone();
        }
        if Instant::now() > end {
            let tail: Vec<String> = lines.iter().skip(after).map(|l| l.to_string()).collect();
            panic!(
                "no audit record for {what} in {}; new lines:\n{}",
                path.display(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `event` object's string field `field` (empty if absent).
pub fn field<'a>(line: &'a serde_json::Value, field: &str) -> &'a str {
    line["event"][field].as_str().unwrap_or("")
}

/// A mutual-TLS channel to `addr` presenting `cert_pem`/`key_pem`, trusting `ca_pem`.
pub async fn channel_with(ca_pem: &str, cert_pem: &str, key_pem: &str, addr: &str) -> Channel {
    let tls = TlsMaterial {
        ca_pem: ca_pem.into(),
        cert_pem: cert_pem.into(),
        key_pem: SecretPem::new(key_pem.into()),
    };
    connect(
        addr,
        tls.client_config().unwrap(),
        ExpectServer::AnyNode,
        &ConnectOptions::default(),
        None,
    )
    .await
    .unwrap()
}

/// A channel with certificate files from the cluster's certificate folder (`<stem>.pem/.key`).
pub async fn channel_as(cluster: &LocalCluster, stem: &str, addr: &str) -> Channel {
    let certs = cluster.dir.join("certs");
    let read = |f: String| std::fs::read_to_string(certs.join(f)).unwrap();
    channel_with(
        &read("ca.pem".into()),
        &read(format!("{stem}.pem")),
        &read(format!("{stem}.key")),
        addr,
    )
    .await
}

/// Sends raw bytes as gRPC messages (to deliver bytes that are not a valid protobuf).
#[derive(Clone, Copy, Default)]
pub struct RawCodec;
pub struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let out = src.chunk().to_vec();
        src.advance(out.len());
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Opens `Peer/Stream` on `ch`, sends `messages` (raw gRPC message bodies), and returns how the
/// stream ended: the server's status, or `Ok` (ended cleanly, or still open after `wait`).
pub async fn raw_peer_stream(
    ch: Channel,
    messages: Vec<Vec<u8>>,
    wait: Duration,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/keyshard.peer.v1.Peer/Stream");
    // The frames are read in order: a refused one ends the call with its status before the
    // end of our stream is seen.
    let frames = tokio_stream::iter(messages);
    let reply = grpc
        .streaming(tonic::Request::new(frames), path, RawCodec)
        .await?;
    let mut s = reply.into_inner();
    // The node may send frames it had queued for that peer; read past them to the verdict.
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(r) => return r.map(|_| ()),
            Err(_) => return Ok(()),
        }
    }
}
