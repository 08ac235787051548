//! Shared by this crate's integration tests: a SecantusDB server on loopback (or the server in
//! `KEYSHARD_MONGO_URI`), and the conformance factory.
#![allow(dead_code, clippy::new_without_default)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyshard_core::persist::{KeyId, KeyVersion};
use keyshard_mongo::MongoStore;
use keyshard_store::conformance::Factory;
use keyshard_store::{Sealer, StoreError};
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use mongodb::sync::Client;

const INSTALL_HINT: &str =
    "SecantusDB's secantusd-py was not found. Install it with `.ci/install-secantus` \
(a virtualenv under $HOME/.cache/keyshard/secantus-venv, or KEYSHARD_SECANTUS_VENV), or set \
KEYSHARD_SECANTUSD to the secantusd-py binary, or KEYSHARD_MONGO_URI to a MongoDB replica set \
to test against instead.";

/// Where secantusd-py is: KEYSHARD_SECANTUSD, the install script's venv, or PATH.
pub fn find_secantusd() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYSHARD_SECANTUSD") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "KEYSHARD_SECANTUSD={} does not exist. {INSTALL_HINT}",
            p.display()
        );
        return p;
    }
    let venv = std::env::var_os("KEYSHARD_SECANTUS_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keyshard/secantus-venv"))
        });
    if let Some(v) = venv {
        let p = v.join("bin/secantusd-py");
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("secantusd-py");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{INSTALL_HINT}");
}

/// A SecantusDB server on 127.0.0.1 with a free port and its own temp directory, stopped on drop.
pub struct TestServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut s = TestServer {
            port,
            dir,
            child: None,
        };
        s.spawn();
        s
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?replicaSet=secantus&serverSelectionTimeoutMS=20000",
            self.port
        )
    }

    /// Starts the server (again) on the same port and directory; waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let child = Command::new(find_secantusd())
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--storage-path")
            .arg(self.storage())
            // Fsync the WiredTiger log at every commit: what j:true promises.
            .arg("--sync-on-commit")
            .arg("--log-level")
            .arg("WARNING")
            // configureFailPoint (crash.rs holds a commit at the server with it).
            .arg("--enable-test-commands")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start secantusd-py: {e}. {INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60));
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "secantusd-py exited with {status} at start; log:\n{}",
                    String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default())
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let client = Client::with_uri_str(self.uri()).expect("client");
                if client
                    .database("admin")
                    .run_command(doc! { "ping": 1 })
                    .run()
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                start.elapsed() < limit,
                "secantusd-py did not answer on port {} within {limit:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL (a crash); `spawn` brings it back.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after a bounded wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> Vec<u8> {
        std::fs::read(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The server the tests use: KEYSHARD_MONGO_URI if set, else a fresh SecantusDB.
pub enum Server {
    External(String),
    Local(TestServer),
}

impl Server {
    pub fn get() -> Server {
        match std::env::var("KEYSHARD_MONGO_URI") {
            Ok(uri) if !uri.is_empty() => Server::External(uri),
            _ => Server::Local(TestServer::start()),
        }
    }

    pub fn uri(&self) -> String {
        match self {
            Server::External(u) => u.clone(),
            Server::Local(s) => s.uri(),
        }
    }
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database name unique to this process and call.
pub fn unique_db(prefix: &str) -> String {
    format!(
        "ks_{prefix}_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Mongo {
    pub server: Server,
    pub client: Client,
    dbs: std::sync::Mutex<Vec<String>>,
}

impl Mongo {
    pub fn new() -> Mongo {
        let server = Server::get();
        let client = Client::with_uri_str(server.uri()).expect("client");
        Mongo {
            server,
            client,
            dbs: Default::default(),
        }
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        // Leave nothing behind on an external server.
        if let Server::External(_) = self.server {
            for db in self.dbs.lock().map(|d| d.clone()).unwrap_or_default() {
                drop_database_bounded(&self.client, &db);
            }
        }
    }
}

/// Drops a test database on an external server without hanging the test: a dropDatabase waits
/// for transactions left open by SIGKILLed clients (SecantusDB keeps them until they expire), so
/// end our sessions first and give up after 20 s (printing the name to drop by hand).
pub fn drop_database_bounded(client: &Client, db: &str) {
    let client = client.clone();
    let name = db.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = client
            .database("admin")
            .run_command(doc! { "killAllSessions": [] })
            .run();
        let _ = tx.send(client.database(&name).drop().run().is_ok());
    });
    if rx.recv_timeout(Duration::from_secs(20)) != Ok(true) {
        eprintln!(
            "could not drop test database {db} on KEYSHARD_MONGO_URI's server: drop it by hand"
        );
    }
}

fn share_id(key: &KeyId, version: KeyVersion) -> String {
    format!("{}/{}", key.as_str(), version.0)
}

fn files_under(path: &Path, out: &mut Vec<u8>) {
    let Ok(rd) = std::fs::read_dir(path) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.extend(bytes);
        }
    }
}

impl Factory for Mongo {
    type Store = MongoStore;
    type Place = String;

    fn new_place(&self) -> String {
        let db = unique_db("conf");
        self.dbs.lock().expect("lock").push(db.clone());
        db
    }
    fn open(
        &self,
        place: &String,
        node_id: &str,
        sealer: Arc<dyn Sealer>,
    ) -> Result<MongoStore, StoreError> {
        MongoStore::with_client(self.client.clone(), place, node_id, sealer)
    }
    fn raw_bytes(&self, place: &String) -> Vec<u8> {
        // Every document of every collection, as BSON...
        let db = self.client.database(place);
        let mut out = Vec::new();
        for name in db.list_collection_names().run().expect("collections") {
            for d in db
                .collection::<Document>(&name)
                .find(doc! {})
                .run()
                .expect("find")
            {
                let d = d.expect("doc");
                out.extend(mongodb::bson::to_vec(&d).expect("bson"));
            }
        }
        // ...and every file of a local server's storage (WiredTiger data and log files).
        if let Server::Local(s) = &self.server {
            files_under(&s.storage(), &mut out);
        }
        out
    }
    fn sealed_share(&self, place: &String, key: &KeyId, version: KeyVersion) -> Option<Vec<u8>> {
        let d = self
            .client
            .database(place)
            .collection::<Document>("shares")
            .find_one(doc! { "_id": share_id(key, version) })
            .run()
            .expect("find");
        d.map(|d| match d.get("sealed") {
            Some(Bson::Binary(b)) => b.bytes.clone(),
            other => panic!("sealed field: {other:?}"),
        })
    }
    fn set_sealed_share(&self, place: &String, key: &KeyId, version: KeyVersion, blob: Vec<u8>) {
        let bin = Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: blob,
        });
        let r = self
            .client
            .database(place)
            .collection::<Document>("shares")
            .update_one(
                doc! { "_id": share_id(key, version) },
                doc! { "$set": { "sealed": bin } },
            )
            .run()
            .expect("update");
        assert_eq!(r.matched_count, 1);
    }
    fn logs(&self) -> Vec<u8> {
        match &self.server {
            Server::Local(s) => s.log(),
            Server::External(_) => Vec::new(),
        }
    }
}
