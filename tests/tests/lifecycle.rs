//! Start, stop and crash (issue 2): SIGTERM rolls back open transactions and exits cleanly;
//! acknowledged commits survive both a clean stop and a kill -9; the data directory is
//! created when missing.

use tests::Server;
use tokio_postgres::NoTls;

async fn client(server: &Server) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&server.conninfo("tester"), NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_open_transactions_and_keeps_commits() {
    let mut server = Server::start().unwrap();
    let c = client(&server).await;
    c.batch_execute("create table t (x int primary key, note text)")
        .await
        .unwrap();
    for i in 0..50 {
        c.execute("insert into t values ($1, 'committed')", &[&i])
            .await
            .unwrap();
    }
    let open = client(&server).await;
    open.batch_execute("begin; insert into t values (1000, 'open'); update t set note = 'changed'")
        .await
        .unwrap();
    let status = server.terminate().unwrap();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("rolling back open transactions"));

    server.restart().unwrap();
    let c = client(&server).await;
    let total: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    let committed: i64 = c
        .query_one("select count(*) from t where note = 'committed'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((total, committed), (50, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_kill_9() {
    let mut server = Server::start().unwrap();
    let c = client(&server).await;
    c.batch_execute("create table log (seq int primary key)")
        .await
        .unwrap();
    let mut acked = 0;
    for i in 0..200 {
        c.execute("insert into log values ($1)", &[&i])
            .await
            .unwrap();
        acked += 1;
    }
    server.kill().unwrap();
    server.restart().unwrap();
    let c = client(&server).await;
    let n: i64 = c
        .query_one("select count(*) from log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, acked);
    let max: i32 = c
        .query_one("select max(seq) from log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, 199);
}
