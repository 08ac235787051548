//! The MongoDB key store (issue 5: key storage), on the official `mongodb` driver's **sync**
//! API (the driver runs its own tokio runtime inside; the node calls [`Store`] through
//! `spawn_blocking`, where blocking is allowed).
//!
//! Every batch is planned and sealed first ([`keyshard_store::plan`]), then written in one
//! multi-document transaction with write concern `majority` + `j: true`; `apply` returns once the
//! commit is acknowledged. Transient transaction errors are retried (the whole transaction) and an
//! unknown commit result is retried (the commit), up to [`MongoStore::RETRY_FOR`]. Transactions
//! need a replica set (a single-node one is fine); [`MongoStore::open`] refuses a standalone.
//!
//! One database per node. Collections and the lookups they serve:
//!
//! | collection   | `_id`                         | other fields              | index                   |
//! |--------------|-------------------------------|---------------------------|-------------------------|
//! | `raft_log`   | index (int64)                 | `term`, `data`            | `_id` (range scans)     |
//! | `raft_meta`  | `"hard_state"` / `"snapshot"` | term, vote, commit / index, term, data | `_id`      |
//! | `shares`     | `"<key id>/<version>"`        | `key`, `version`, `sealed`| `{key, version}` unique |
//! | `erased`     | `"<key id>/<version>"`        | `key`, `version`          | `{key, version}` unique |
//! | `consumed`   | `{kind, id}`                  |                           | `_id` (exact lookups)   |
//! | `records`    | `{table, key}`                | `table`, `secret`, `value`| `{table}`               |
//!
//! u64 values are stored bit-for-bit as int64 (raft indexes are below 2^63, see
//! [`keyshard_store::plan::MAX_INDEX`], so their order is preserved).
//!
//! Erasure deletes the share's document; the storage engine may keep the old (sealed) bytes in
//! free pages until reused. Limitation: a document is at most 16 MiB, so a Raft snapshot or entry
//! must stay below that (GridFS would lift it; not needed yet).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keyshard_core::persist::{
    HardState, KeyId, KeyVersion, PersistBatch, RaftEntry, RaftSnapshot, RecordValue,
    RestoredState, SecretBytes,
};
use keyshard_store::plan::{plan, LogBounds, Mutation, StoredValue};
use keyshard_store::{open_record, open_share, Sealer, Store, StoreError};
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use mongodb::error::{
    Error as MongoError, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{
    Acknowledgment, CollectionOptions, IndexOptions, ReadConcern, WriteConcern,
};
use mongodb::sync::{Client, ClientSession, Collection, Database};
use mongodb::IndexModel;

const BACKEND: &str = "mongodb";

fn err(e: impl fmt::Display) -> StoreError {
    StoreError::backend(BACKEND, e)
}

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn i64_of(v: u64) -> i64 {
    v as i64 // bit-for-bit; see the module docs
}

fn share_id(key: &KeyId, version: KeyVersion) -> String {
    format!("{}/{}", key.as_str(), version.0)
}

fn consumed_id(kind: &str, id: &[u8]) -> Document {
    doc! { "kind": kind, "id": bin(id) }
}

fn record_id(table: &str, key: &[u8]) -> Document {
    doc! { "table": table, "key": bin(key) }
}

/// Reading fields of stored documents without trusting them.
struct Reader<'a> {
    doc: &'a Document,
    what: &'static str,
}

impl Reader<'_> {
    fn bad(&self, field: &str) -> StoreError {
        StoreError::corrupt(format!(
            "{}: field {field:?} missing or of the wrong type",
            self.what
        ))
    }
    fn u64(&self, field: &str) -> Result<u64, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Int64(v)) => Ok(*v as u64),
            _ => Err(self.bad(field)),
        }
    }
    fn bytes(&self, field: &str) -> Result<Vec<u8>, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
            _ => Err(self.bad(field)),
        }
    }
    fn str(&self, field: &str) -> Result<&str, StoreError> {
        match self.doc.get(field) {
            Some(Bson::String(s)) => Ok(s),
            _ => Err(self.bad(field)),
        }
    }
    fn bool(&self, field: &str) -> Result<bool, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Boolean(b)) => Ok(*b),
            _ => Err(self.bad(field)),
        }
    }
    fn sub(&self, field: &str) -> Result<Reader<'_>, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Document(d)) => Ok(Reader {
                doc: d,
                what: self.what,
            }),
            _ => Err(self.bad(field)),
        }
    }
    fn version(&self) -> Result<KeyVersion, StoreError> {
        u32::try_from(self.u64("version")?)
            .map(KeyVersion)
            .map_err(|_| self.bad("version"))
    }
    fn key_id(&self) -> Result<KeyId, StoreError> {
        KeyId::new(self.str("key")?).map_err(|_| self.bad("key"))
    }
}

struct Colls {
    log: Collection<Document>,
    meta: Collection<Document>,
    shares: Collection<Document>,
    erased: Collection<Document>,
    consumed: Collection<Document>,
    records: Collection<Document>,
}

/// The MongoDB store: one database per node.
pub struct MongoStore {
    client: Client,
    db_name: String,
    colls: Colls,
    node_id: String,
    sealer: Arc<dyn Sealer>,
    /// Serializes `apply` and caches the log's bounds.
    bounds: Mutex<LogBounds>,
}

impl MongoStore {
    /// How long `apply` keeps retrying transient transaction errors (a write conflict with a
    /// transaction a crashed predecessor left open lasts until the server reaps it).
    pub const RETRY_FOR: Duration = Duration::from_secs(90);

    /// Connects to `uri` and opens (creating collections and indexes if needed) database
    /// `db_name` for `node_id`. The server must support transactions (a replica set).
    pub fn open(
        uri: &str,
        db_name: &str,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Self, StoreError> {
        let client = Client::with_uri_str(uri).map_err(|e| err(format!("bad URI: {e}")))?;
        Self::with_client(client, db_name, node_id, sealer)
    }

    /// As [`MongoStore::open`], on an existing client.
    pub fn with_client(
        client: Client,
        db_name: &str,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Self, StoreError> {
        let db = client.database(db_name);
        let hello = db
            .run_command(doc! { "hello": 1 })
            .run()
            .map_err(|e| err(format!("cannot reach the server: {e}")))?;
        let replica_set = hello.get_str("setName").is_ok();
        let mongos = hello.get_str("msg") == Ok("isdbgrid");
        if !replica_set && !mongos {
            return Err(err(
                "the server is a standalone; multi-document transactions need a replica set \
                 (a single-node one is enough: start mongod with --replSet and rs.initiate())",
            ));
        }
        let colls = Self::collections(&db);
        Self::ensure_schema(&db, &colls)?;
        let store = MongoStore {
            client,
            db_name: db_name.to_string(),
            colls,
            node_id: node_id.to_string(),
            sealer,
            bounds: Mutex::new(LogBounds::EMPTY),
        };
        let bounds = store.read_bounds()?;
        *store.lock() = bounds;
        Ok(store)
    }

    fn write_concern() -> WriteConcern {
        WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .build()
    }

    fn collections(db: &Database) -> Colls {
        let opts = CollectionOptions::builder()
            .read_concern(ReadConcern::majority())
            .write_concern(Self::write_concern())
            .build();
        let c = |name: &str| db.collection_with_options::<Document>(name, opts.clone());
        Colls {
            log: c("raft_log"),
            meta: c("raft_meta"),
            shares: c("shares"),
            erased: c("erased"),
            consumed: c("consumed"),
            records: c("records"),
        }
    }

    fn ensure_schema(db: &Database, colls: &Colls) -> Result<(), StoreError> {
        // Collections must exist before a transaction writes to them (servers before 4.4
        // cannot create them inside one).
        let existing = db
            .list_collection_names()
            .run()
            .map_err(|e| err(format!("list collections: {e}")))?;
        for name in [
            "raft_log",
            "raft_meta",
            "shares",
            "erased",
            "consumed",
            "records",
        ] {
            if !existing.iter().any(|n| n == name) {
                if let Err(e) = db.create_collection(name).run() {
                    // Another opener may have created it meanwhile (NamespaceExists, code 48).
                    if !matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 48)
                    {
                        return Err(err(format!("create collection {name}: {e}")));
                    }
                }
            }
        }
        let unique = IndexOptions::builder().unique(true).build();
        let key_version = IndexModel::builder()
            .keys(doc! { "key": 1, "version": 1 })
            .options(unique)
            .build();
        for c in [&colls.shares, &colls.erased] {
            c.create_index(key_version.clone())
                .run()
                .map_err(|e| err(format!("create index: {e}")))?;
        }
        colls
            .records
            .create_index(IndexModel::builder().keys(doc! { "table": 1 }).build())
            .run()
            .map_err(|e| err(format!("create index: {e}")))?;
        Ok(())
    }

    /// The database name.
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// The driver client (to share it, or for tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn lock(&self) -> MutexGuard<'_, LogBounds> {
        // The guarded value is re-read from the server after any failure.
        self.bounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_bounds(&self) -> Result<LogBounds, StoreError> {
        let snapshot_index = match self
            .colls
            .meta
            .find_one(doc! { "_id": "snapshot" })
            .projection(doc! { "index": 1 })
            .run()
            .map_err(err)?
        {
            Some(d) => Some(
                Reader {
                    doc: &d,
                    what: "snapshot",
                }
                .u64("index")?,
            ),
            None => None,
        };
        let edge = |dir: i32| -> Result<Option<u64>, StoreError> {
            let found = self
                .colls
                .log
                .find_one(doc! {})
                .sort(doc! { "_id": dir })
                .projection(doc! { "_id": 1 })
                .run()
                .map_err(err)?;
            match found {
                Some(d) => Reader {
                    doc: &d,
                    what: "raft log entry",
                }
                .u64("_id")
                .map(Some),
                None => Ok(None),
            }
        };
        LogBounds::from_stored(snapshot_index, edge(1)?, edge(-1)?)
    }

    fn write(&self, s: &mut ClientSession, mutations: &[Mutation<'_>]) -> Result<(), MongoError> {
        let c = &self.colls;
        let mut i = 0;
        while i < mutations.len() {
            let m = &mutations[i];
            i += 1;
            match m {
                Mutation::PutEntry { index, .. } => {
                    // A run of consecutive entries (one AppendEntries) is one insert_many (the
                    // plan deleted any entry they replace).
                    let run_start = i - 1;
                    let mut next = index + 1;
                    while let Some(Mutation::PutEntry { index, .. }) = mutations.get(i) {
                        if *index != next {
                            break;
                        }
                        next += 1;
                        i += 1;
                    }
                    let docs: Vec<Document> = mutations[run_start..i]
                        .iter()
                        .filter_map(|m| match m {
                            Mutation::PutEntry { index, term, bytes } => Some(
                                doc! { "_id": i64_of(*index), "term": i64_of(*term), "data": bin(bytes) },
                            ),
                            _ => None,
                        })
                        .collect();
                    c.log.insert_many(docs).session(&mut *s).run()?;
                }
                Mutation::DeleteEntries { from, to } => {
                    // `$in` on _id, in chunks: SecantusDB serves a range filter on _id by a
                    // collection scan inside transactions (O(log size)), but `$in` by the index.
                    let mut lo = *from;
                    while lo <= *to {
                        let hi = to.min(&(lo + 999)).to_owned();
                        let ids: Vec<i64> = (lo..=hi).map(i64_of).collect();
                        c.log
                            .delete_many(doc! { "_id": { "$in": ids } })
                            .session(&mut *s)
                            .run()?;
                        lo = hi + 1;
                    }
                }
                Mutation::PutHardState(hs) => {
                    c.meta
                        .replace_one(
                            doc! { "_id": "hard_state" },
                            doc! {
                                "_id": "hard_state",
                                "term": i64_of(hs.term),
                                "vote": i64_of(hs.vote),
                                "commit": i64_of(hs.commit),
                            },
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::PutSnapshot(snap) => {
                    c.meta
                        .replace_one(
                            doc! { "_id": "snapshot" },
                            doc! {
                                "_id": "snapshot",
                                "index": i64_of(snap.index),
                                "term": i64_of(snap.term),
                                "data": bin(&snap.bytes),
                            },
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::PutShare {
                    key,
                    version,
                    sealed,
                } => {
                    let id = share_id(key, *version);
                    c.erased
                        .delete_one(doc! { "_id": &id })
                        .session(&mut *s)
                        .run()?;
                    c.shares
                        .replace_one(
                            doc! { "_id": &id },
                            doc! {
                                "_id": &id,
                                "key": key.as_str(),
                                "version": i64::from(version.0),
                                "sealed": bin(sealed),
                            },
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::EraseShare { key, version } => {
                    let id = share_id(key, *version);
                    c.shares
                        .delete_one(doc! { "_id": &id })
                        .session(&mut *s)
                        .run()?;
                    c.erased
                        .replace_one(
                            doc! { "_id": &id },
                            doc! { "_id": &id, "key": key.as_str(), "version": i64::from(version.0) },
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::MarkConsumed { kind, id } => {
                    let id = consumed_id(kind, id);
                    c.consumed
                        .replace_one(doc! { "_id": id.clone() }, doc! { "_id": id })
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::PutRecord { table, key, value } => {
                    let id = record_id(table, key);
                    let (secret, bytes) = match value {
                        StoredValue::Public(b) => (false, *b),
                        StoredValue::Sealed(b) => (true, b.as_slice()),
                    };
                    c.records
                        .replace_one(
                            doc! { "_id": id.clone() },
                            doc! { "_id": id, "table": *table, "secret": secret, "value": bin(bytes) },
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .run()?;
                }
                Mutation::DeleteRecord { table, key } => {
                    c.records
                        .delete_one(doc! { "_id": record_id(table, key) })
                        .session(&mut *s)
                        .run()?;
                }
            }
        }
        Ok(())
    }

    /// One transaction with retries; returns once the commit is acknowledged by a majority.
    fn commit(&self, mutations: &[Mutation<'_>]) -> Result<(), StoreError> {
        let deadline = Instant::now() + Self::RETRY_FOR;
        let mut backoff = Duration::from_millis(5);
        let mut session = self.client.start_session().run().map_err(err)?;
        loop {
            session
                .start_transaction()
                .write_concern(Self::write_concern())
                .read_concern(ReadConcern::snapshot())
                .run()
                .map_err(err)?;
            let result = self.write(&mut session, mutations);
            match result {
                Ok(()) => loop {
                    match session.commit_transaction().run() {
                        Ok(()) => return Ok(()),
                        Err(e)
                            if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_millis(500));
                        }
                        Err(e)
                            if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                                && Instant::now() < deadline =>
                        {
                            break;
                        }
                        Err(e) => return Err(err(format!("commit: {e}"))),
                    }
                },
                Err(e) => {
                    let _ = session.abort_transaction().run();
                    if !(e.contains_label(TRANSIENT_TRANSACTION_ERROR) && Instant::now() < deadline)
                    {
                        return Err(err(e));
                    }
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    fn versions(coll: &Collection<Document>, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        let cursor = coll
            .find(doc! { "key": key.as_str() })
            .sort(doc! { "key": 1, "version": 1 })
            .projection(doc! { "version": 1 })
            .run()
            .map_err(err)?;
        let mut out = Vec::new();
        for d in cursor {
            let d = d.map_err(err)?;
            out.push(
                Reader {
                    doc: &d,
                    what: "share",
                }
                .version()?,
            );
        }
        Ok(out)
    }

    fn all(coll: &Collection<Document>, filter: Document) -> Result<Vec<Document>, StoreError> {
        coll.find(filter)
            .sort(doc! { "_id": 1 })
            .run()
            .map_err(err)?
            .map(|d| d.map_err(err))
            .collect()
    }
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("db", &self.db_name)
            .field("node_id", &self.node_id)
            .field("sealer", &self.sealer)
            .field("log", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Store for MongoStore {
    fn apply(&self, batch: &PersistBatch) -> Result<(), StoreError> {
        let mut bounds = self.lock();
        let plan = plan(batch, *bounds, &*self.sealer, &self.node_id)?;
        if plan.mutations.is_empty() {
            return Ok(());
        }
        match self.commit(&plan.mutations) {
            Ok(()) => {
                *bounds = plan.bounds_after;
                Ok(())
            }
            Err(e) => {
                if let Ok(b) = self.read_bounds() {
                    *bounds = b;
                }
                Err(e)
            }
        }
    }

    fn restore(&self) -> Result<RestoredState, StoreError> {
        let c = &self.colls;
        let mut out = RestoredState::default();
        for d in Self::all(&c.meta, doc! {})? {
            match d.get("_id") {
                Some(Bson::String(id)) if id == "hard_state" => {
                    let r = Reader {
                        doc: &d,
                        what: "hard state",
                    };
                    out.hard_state = Some(HardState {
                        term: r.u64("term")?,
                        vote: r.u64("vote")?,
                        commit: r.u64("commit")?,
                    });
                }
                Some(Bson::String(id)) if id == "snapshot" => {
                    let r = Reader {
                        doc: &d,
                        what: "snapshot",
                    };
                    out.snapshot = Some(RaftSnapshot {
                        index: r.u64("index")?,
                        term: r.u64("term")?,
                        bytes: r.bytes("data")?,
                    });
                }
                _ => return Err(StoreError::corrupt("unknown document in raft_meta")),
            }
        }
        for d in Self::all(&c.log, doc! {})? {
            let r = Reader {
                doc: &d,
                what: "raft log entry",
            };
            out.entries.push(RaftEntry {
                index: r.u64("_id")?,
                term: r.u64("term")?,
                bytes: r.bytes("data")?,
            });
        }
        if out.entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
            return Err(StoreError::corrupt("raft log has a gap"));
        }
        for d in Self::all(&c.shares, doc! {})? {
            let r = Reader {
                doc: &d,
                what: "share",
            };
            out.share_versions
                .entry(r.key_id()?)
                .or_default()
                .push(r.version()?);
        }
        for list in out.share_versions.values_mut() {
            list.sort();
        }
        for d in Self::all(&c.consumed, doc! {})? {
            let r = Reader {
                doc: &d,
                what: "consumed marker",
            };
            let id = r.sub("_id")?;
            out.consumed
                .entry(id.str("kind")?.to_string())
                .or_default()
                .push(id.bytes("id")?);
        }
        for d in Self::all(&c.records, doc! { "secret": false })? {
            let r = Reader {
                doc: &d,
                what: "record",
            };
            let id = r.sub("_id")?;
            out.records
                .entry(id.str("table")?.to_string())
                .or_default()
                .insert(id.bytes("key")?, r.bytes("value")?);
        }
        Ok(out)
    }

    fn get_share(
        &self,
        key: &KeyId,
        version: KeyVersion,
    ) -> Result<Option<SecretBytes>, StoreError> {
        let found = self
            .colls
            .shares
            .find_one(doc! { "_id": share_id(key, version) })
            .run()
            .map_err(err)?;
        let Some(d) = found else { return Ok(None) };
        // A sealed field of the wrong type is corruption of the sealed item: report it as such.
        let blob = Reader {
            doc: &d,
            what: "share",
        }
        .bytes("sealed")
        .unwrap_or_default();
        open_share(&*self.sealer, &self.node_id, key, version, &blob).map(Some)
    }

    fn share_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Self::versions(&self.colls.shares, key)
    }

    fn erased_versions(&self, key: &KeyId) -> Result<Vec<KeyVersion>, StoreError> {
        Self::versions(&self.colls.erased, key)
    }

    fn get_record(&self, table: &str, key: &[u8]) -> Result<Option<RecordValue>, StoreError> {
        let found = self
            .colls
            .records
            .find_one(doc! { "_id": record_id(table, key) })
            .run()
            .map_err(err)?;
        let Some(d) = found else { return Ok(None) };
        let r = Reader {
            doc: &d,
            what: "record",
        };
        if r.bool("secret")? {
            let blob = r.bytes("value").unwrap_or_default();
            open_record(&*self.sealer, &self.node_id, table, key, &blob)
                .map(|s| Some(RecordValue::Secret(s)))
        } else {
            Ok(Some(RecordValue::Public(r.bytes("value")?)))
        }
    }

    fn is_consumed(&self, kind: &str, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .colls
            .consumed
            .find_one(doc! { "_id": consumed_id(kind, id) })
            .projection(doc! { "_id": 1 })
            .run()
            .map_err(err)?
            .is_some())
    }
}
