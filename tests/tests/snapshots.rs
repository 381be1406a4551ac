//! A session keeps its SQLite read transaction open between autocommit reads while no
//! write has happened (store.rs, "write epoch"). These tests hold it to PostgreSQL's rules:
//! a read that starts after another session's COMMIT was acknowledged sees that commit, and
//! an idle session never pins an old snapshot that would stop SQLite from checkpointing.

use tests::{connect, Server};
use tokio_postgres::Client;

async fn count(c: &Client) -> i64 {
    c.query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_every_commit_acknowledged_before_them() {
    let server = Server::start().unwrap();
    let reader = connect(&server).await;
    let writer = connect(&server).await;
    writer
        .batch_execute("create table t (id int primary key)")
        .await
        .unwrap();
    // Alternate: each acknowledged insert must be visible to the reader's very next query,
    // whether it ran in the simple or the extended protocol, and whether the reader's
    // previous read left a snapshot behind.
    for i in 0..300i32 {
        if i % 2 == 0 {
            writer
                .execute("insert into t values ($1)", &[&i])
                .await
                .unwrap();
        } else {
            writer
                .simple_query(&format!("insert into t values ({i})"))
                .await
                .unwrap();
        }
        assert_eq!(count(&reader).await, i64::from(i) + 1, "after insert {i}");
        let rows = reader
            .simple_query(&format!("select id from t where id = {i}"))
            .await
            .unwrap();
        let found = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(found, 1, "row {i}");
    }
    // A block in the reader after autocommit reads starts from the newest data too, and
    // can write (its snapshot was not left behind).
    reader.batch_execute("begin").await.unwrap();
    reader
        .execute("insert into t values (1000)", &[])
        .await
        .unwrap();
    reader.batch_execute("commit").await.unwrap();
    assert_eq!(count(&writer).await, 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reader_does_not_pin_the_wal() {
    let server = Server::start().unwrap();
    let idle = connect(&server).await;
    let writer = connect(&server).await;
    writer
        .batch_execute("create table t (id int primary key, pad text)")
        .await
        .unwrap();
    // The idle session reads once, then says nothing while ~40 MB are written.
    assert_eq!(count(&idle).await, 0);
    let insert = writer
        .prepare("insert into t select x, $3::text from generate_series($1::int, $2::int) as x")
        .await
        .unwrap();
    let pad = "x".repeat(2000);
    for chunk in 0..200i32 {
        let lo = chunk * 100;
        writer
            .execute(&insert, &[&lo, &(lo + 99), &pad])
            .await
            .unwrap();
    }
    let wal = server.tmp_dir().join("data").join("mdbc.db-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // SQLite checkpoints every ~4 MB of WAL; a pinned snapshot would let it reach ~40 MB.
    assert!(
        size < 16 * 1024 * 1024,
        "WAL grew to {size} bytes behind an idle reader's snapshot"
    );
    assert_eq!(count(&idle).await, 20_000);
}
