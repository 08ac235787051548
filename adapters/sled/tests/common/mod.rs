//! Shared by this crate's integration tests: the conformance factory and raw-access hooks.
#![allow(dead_code, clippy::new_without_default)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyshard_core::persist::{KeyId, KeyVersion};
use keyshard_sled::SledStore;
use keyshard_store::conformance::Factory;
use keyshard_store::{Sealer, StoreError};

/// The `shares` tree key (see the layout in src/lib.rs).
fn share_key(key: &KeyId, version: KeyVersion) -> Vec<u8> {
    let mut k = key.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.0.to_be_bytes());
    k
}

fn with_shares<R>(path: &Path, f: impl FnOnce(&sled::Tree) -> R) -> R {
    let db = sled::open(path).expect("open sled directly");
    let tree = db.open_tree("shares").expect("shares tree");
    let r = f(&tree);
    db.flush().expect("flush");
    r
}

/// Every byte of every file under `path`.
pub fn raw_bytes(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.extend(std::fs::read(&p).expect("read file"));
            }
        }
    }
    out
}

pub struct Sled {
    pub root: tempfile::TempDir,
}

impl Sled {
    pub fn new() -> Self {
        Sled {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }
}

pub struct Place(pub PathBuf);

impl Factory for Sled {
    type Store = SledStore;
    type Place = Place;

    fn new_place(&self) -> Place {
        Place(
            tempfile::tempdir_in(self.root.path())
                .expect("tempdir")
                .keep(),
        )
    }
    fn open(
        &self,
        place: &Place,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<SledStore, StoreError> {
        SledStore::open(&place.0, node_id, sealer)
    }
    fn raw_bytes(&self, place: &Place) -> Vec<u8> {
        raw_bytes(&place.0)
    }
    fn sealed_share(&self, place: &Place, key: &KeyId, version: KeyVersion) -> Option<Vec<u8>> {
        with_shares(&place.0, |t| {
            t.get(share_key(key, version))
                .expect("get")
                .map(|v| v.to_vec())
        })
    }
    fn set_sealed_share(&self, place: &Place, key: &KeyId, version: KeyVersion, blob: Vec<u8>) {
        with_shares(&place.0, |t| {
            t.insert(share_key(key, version), blob).expect("insert");
        })
    }
}
