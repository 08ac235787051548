//! Writes the seed corpora of the fuzz targets (`keyshard_core::fuzzing::seeds`: real encoded
//! messages and honest op sequences) into `fuzz/corpus/<target>/seed-<sha256 prefix>`.
//!
//! Run: `cargo run -p keyshard-core --features fuzzing --example fuzz_seeds [-- DIR]` (default
//! `fuzz/corpus`). Existing files are kept; a seed already present is not written twice.

// Writing files is this example's whole job; the core's I/O bans are for its library.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"));
    for (target, inputs) in keyshard_core::fuzzing::seeds() {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for input in &inputs {
            let digest = Sha256::digest(input);
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(target_dir.join(format!("seed-{name}")), input)?;
        }
        println!("{target}: {} seeds", inputs.len());
    }
    Ok(())
}
