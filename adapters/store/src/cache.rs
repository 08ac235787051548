//! The node's LRU cache of decrypted key packages, bounded by entry count and total bytes.
//!
//! Entries are `Arc<SecretBytes>`: the plaintext is wiped when the last user drops it, so an
//! evicted or erased entry is wiped as soon as no signing session still holds it. The node calls
//! [`ShareCache::invalidate_batch`] with every batch it applies (so `EraseShare` and overwriting
//! `PutShare` drop the cached package), and reads shares through [`ShareCache::get_or_load`].

use core::fmt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use keyshard_core::persist::{KeyId, KeyVersion, PersistBatch, PersistOp, SecretBytes};

use crate::{Store, StoreError};

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Entries pushed out by the count or byte bound.
    pub evictions: u64,
    /// Entries removed because the share was erased or replaced.
    pub invalidations: u64,
    /// Entries now.
    pub entries: usize,
    /// Plaintext bytes now.
    pub bytes: usize,
}

type Slot = (KeyId, KeyVersion);

#[derive(Default)]
struct Inner {
    /// slot -> (last-use tick, package)
    map: BTreeMap<Slot, (u64, Arc<SecretBytes>)>,
    /// last-use tick -> slot; the first entry is the least recently used.
    order: BTreeMap<u64, Slot>,
    tick: u64,
    stats: CacheStats,
}

impl Inner {
    fn touch(&mut self, slot: &Slot) -> Option<Arc<SecretBytes>> {
        self.tick += 1;
        let tick = self.tick;
        let (old, value) = {
            let e = self.map.get_mut(slot)?;
            let old = e.0;
            e.0 = tick;
            (old, e.1.clone())
        };
        self.order.remove(&old);
        self.order.insert(tick, slot.clone());
        Some(value)
    }

    fn remove(&mut self, slot: &Slot) -> bool {
        match self.map.remove(slot) {
            Some((tick, value)) => {
                self.order.remove(&tick);
                self.stats.bytes -= value.len();
                self.stats.entries -= 1;
                true
            }
            None => false,
        }
    }
}

/// An LRU cache of decrypted key packages. Thread-safe; share it by reference or `Arc`.
pub struct ShareCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

impl ShareCache {
    /// A cache holding at most `max_entries` packages and `max_bytes` plaintext bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ShareCache {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below keeps the maps consistent before anything can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached package, counting a hit or a miss.
    pub fn get(&self, key: &KeyId, version: KeyVersion) -> Option<Arc<SecretBytes>> {
        let mut inner = self.lock();
        let found = inner.touch(&(key.clone(), version));
        if found.is_some() {
            inner.stats.hits += 1;
        } else {
            inner.stats.misses += 1;
        }
        found
    }

    /// Caches a package (most recently used), evicting least recently used ones to fit. A
    /// package larger than the byte bound is not cached.
    pub fn insert(&self, key: KeyId, version: KeyVersion, package: Arc<SecretBytes>) {
        let mut inner = self.lock();
        let slot = (key, version);
        inner.remove(&slot);
        if package.len() > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while inner.stats.entries >= self.max_entries
            || inner.stats.bytes + package.len() > self.max_bytes
        {
            let Some((_, lru)) = inner.order.iter().next().map(|(t, s)| (*t, s.clone())) else {
                break;
            };
            inner.remove(&lru);
            inner.stats.evictions += 1;
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.stats.bytes += package.len();
        inner.stats.entries += 1;
        inner.order.insert(tick, slot.clone());
        inner.map.insert(slot, (tick, package));
    }

    /// Drops the cached package of `key` at `version`, if any.
    pub fn remove(&self, key: &KeyId, version: KeyVersion) {
        let mut inner = self.lock();
        if inner.remove(&(key.clone(), version)) {
            inner.stats.invalidations += 1;
        }
    }

    /// Drops every cached entry that `batch` erases or replaces. Call it for every batch the
    /// store applied (or failed to apply: the outcome of a failed apply is unknown).
    pub fn invalidate_batch(&self, batch: &PersistBatch) {
        for op in &batch.ops {
            match op {
                PersistOp::PutShare { key, version, .. }
                | PersistOp::EraseShare { key, version } => self.remove(key, *version),
                _ => {}
            }
        }
    }

    /// Applies `batch` to `store` and invalidates the entries it touches (whatever the outcome).
    pub fn apply_through(&self, store: &dyn Store, batch: &PersistBatch) -> Result<(), StoreError> {
        self.invalidate_batch(batch);
        let result = store.apply(batch);
        self.invalidate_batch(batch);
        result
    }

    /// The package from the cache, or unsealed from `store` and cached. Integrity errors are
    /// returned and nothing is cached.
    pub fn get_or_load(
        &self,
        store: &dyn Store,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<Arc<SecretBytes>>, StoreError> {
        if let Some(hit) = self.get(key, version) {
            return Ok(Some(hit));
        }
        match store.get_share(key, version)? {
            None => Ok(None),
            Some(share) => {
                let share = Arc::new(share);
                self.insert(key.clone(), version, share.clone());
                Ok(Some(share))
            }
        }
    }

    /// Empties the cache.
    pub fn clear(&self) {
        let mut inner = self.lock();
        let n = inner.stats.entries as u64;
        inner.map.clear();
        inner.order.clear();
        inner.stats.entries = 0;
        inner.stats.bytes = 0;
        inner.stats.invalidations += n;
    }

    /// Counters and sizes.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }
}

impl fmt::Debug for ShareCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareCache")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshard_core::persist::PersistToken;

    fn k(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }
    fn pkg(n: usize, b: u8) -> Arc<SecretBytes> {
        Arc::new(SecretBytes::new(vec![b; n]))
    }

    #[test]
    fn lru_by_count() {
        let c = ShareCache::new(2, 1000);
        c.insert(k("a"), KeyVersion(1), pkg(10, 1));
        c.insert(k("b"), KeyVersion(1), pkg(10, 2));
        assert!(c.get(&k("a"), KeyVersion(1)).is_some()); // a is now most recent
        c.insert(k("c"), KeyVersion(1), pkg(10, 3)); // evicts b
        assert!(c.get(&k("b"), KeyVersion(1)).is_none());
        assert!(c.get(&k("a"), KeyVersion(1)).is_some());
        assert!(c.get(&k("c"), KeyVersion(1)).is_some());
        let s = c.stats();
        assert_eq!(
            (s.hits, s.misses, s.evictions, s.entries, s.bytes),
            (3, 1, 1, 2, 20)
        );
    }

    #[test]
    fn lru_by_bytes() {
        let c = ShareCache::new(100, 25);
        c.insert(k("a"), KeyVersion(1), pkg(10, 1));
        c.insert(k("a"), KeyVersion(2), pkg(10, 1));
        c.insert(k("b"), KeyVersion(1), pkg(10, 2)); // 30 > 25: evicts a v1
        assert_eq!(c.stats().bytes, 20);
        assert!(c.get(&k("a"), KeyVersion(1)).is_none());
        c.insert(k("big"), KeyVersion(1), pkg(26, 9)); // larger than the bound: not cached
        assert!(c.get(&k("big"), KeyVersion(1)).is_none());
        assert_eq!(c.stats().entries, 2);
        // Replacing an entry does not double-count its bytes.
        c.insert(k("b"), KeyVersion(1), pkg(5, 2));
        assert_eq!(c.stats().bytes, 15);
    }

    #[test]
    fn erase_removes_entry() {
        let c = ShareCache::new(10, 1000);
        c.insert(k("a"), KeyVersion(1), pkg(10, 1));
        c.insert(k("a"), KeyVersion(2), pkg(10, 1));
        c.invalidate_batch(&PersistBatch {
            token: PersistToken(1),
            ops: vec![PersistOp::EraseShare {
                key: k("a"),
                version: KeyVersion(1),
            }],
        });
        assert!(c.get(&k("a"), KeyVersion(1)).is_none());
        assert!(c.get(&k("a"), KeyVersion(2)).is_some());
        assert_eq!(c.stats().invalidations, 1);
        let shown = format!("{c:?}");
        assert!(!shown.contains("1, 1, 1"), "{shown}");
    }
}
