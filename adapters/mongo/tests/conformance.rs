//! The conformance suite against MongoDB: a SecantusDB server this test starts on loopback, or
//! the server in KEYSHARD_MONGO_URI. Fails (does not skip) if neither is available.

mod common;

#[test]
fn conformance() {
    keyshard_store::conformance::run_all(&common::Mongo::new());
}

#[test]
fn transactions_are_real_and_majority_acknowledged() {
    use mongodb::bson::{doc, Document};
    use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};
    let m = common::Mongo::new();
    let db = m.client.database(&common::unique_db("txn"));
    let a = db.collection::<Document>("a");
    let b = db.collection::<Document>("b");
    db.create_collection("a").run().expect("create");
    db.create_collection("b").run().expect("create");
    let wc = WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build();
    // An aborted transaction leaves nothing; a committed one everything.
    let mut s = m.client.start_session().run().expect("session");
    s.start_transaction()
        .write_concern(wc.clone())
        .read_concern(ReadConcern::snapshot())
        .run()
        .expect("start");
    a.insert_one(doc! { "_id": 1 })
        .session(&mut s)
        .run()
        .expect("insert");
    b.insert_one(doc! { "_id": 1 })
        .session(&mut s)
        .run()
        .expect("insert");
    assert_eq!(
        a.count_documents(doc! {}).run().expect("count"),
        0,
        "uncommitted write visible outside"
    );
    s.abort_transaction().run().expect("abort");
    assert_eq!(
        a.count_documents(doc! {}).run().expect("count")
            + b.count_documents(doc! {}).run().expect("count"),
        0
    );
    s.start_transaction()
        .write_concern(wc)
        .run()
        .expect("start");
    a.insert_one(doc! { "_id": 2 })
        .session(&mut s)
        .run()
        .expect("insert");
    b.insert_one(doc! { "_id": 2 })
        .session(&mut s)
        .run()
        .expect("insert");
    s.commit_transaction().run().expect("commit");
    assert_eq!(a.count_documents(doc! {}).run().expect("count"), 1);
    assert_eq!(b.count_documents(doc! {}).run().expect("count"), 1);
    let _ = db.drop().run();
}
