//! Wire types for the peer protocol and the client API, generated from `proto/keyshard/**`, and
//! their conversions to core types ([`convert`]). Decode and validation errors stop here: what
//! reaches the core is a well-formed core value.
//!
//! - [`peer`]: `keyshard.peer.v1`, the node-to-node stream (opaque core `NodeMessage` bytes).
//! - [`client`]: `keyshard.client.v1`, the client API.
//! - [`FILE_DESCRIPTOR_SET`]: both files' descriptors, for gRPC server reflection.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod convert;

/// `keyshard.peer.v1`: the node-to-node transport.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod peer {
    tonic::include_proto!("keyshard.peer.v1");
}

/// `keyshard.client.v1`: the client API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod client {
    tonic::include_proto!("keyshard.client.v1");
}

/// The encoded `FileDescriptorSet` of every keyshard `.proto` file (for server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keyshard_descriptor.bin"));
