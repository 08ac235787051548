//! Compiles the .proto files in pure Rust (protox: no protoc binary), generates the messages
//! and tonic services, and saves the descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "proto/keyshard/peer/v1/peer.proto",
    "proto/keyshard/client/v1/client.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(FILES, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("keyshard_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
