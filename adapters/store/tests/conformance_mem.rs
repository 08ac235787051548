//! The conformance suite against the in-memory store.

use std::sync::Arc;

use keyshard_core::persist::{KeyId, KeyVersion};
use keyshard_store::conformance::{run_all, Factory};
use keyshard_store::{MemDisk, MemStore, Sealer, StoreError};

struct Mem;

impl Factory for Mem {
    type Store = MemStore;
    type Place = MemDisk;

    fn new_place(&self) -> MemDisk {
        MemDisk::new()
    }
    fn open(
        &self,
        place: &MemDisk,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<MemStore, StoreError> {
        MemStore::open(place.clone(), node_id, sealer)
    }
    fn raw_bytes(&self, place: &MemDisk) -> Vec<u8> {
        place.raw_bytes()
    }
    fn sealed_share(&self, place: &MemDisk, key: &KeyId, version: KeyVersion) -> Option<Vec<u8>> {
        place.sealed_share(key, version)
    }
    fn set_sealed_share(&self, place: &MemDisk, key: &KeyId, version: KeyVersion, blob: Vec<u8>) {
        place.set_sealed_share(key, version, blob)
    }
}

#[test]
fn conformance() {
    run_all(&Mem);
}
