//! Bounded reads, `sync_replicas`, and strong writes after stale reads.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_reads_see_what_is_older_than_their_bound_or_refuse() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(
        3,
        "[tables.levels]\nsessions = { level = \"bounded\", max_staleness_ms = 100 }\n",
    )
    .unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    a.batch_execute("CREATE TABLE sessions (id int PRIMARY KEY, v int NOT NULL); INSERT INTO sessions VALUES (1, 0)")
        .await
        .unwrap();
    eventually(WAIT, "the row at b", || async {
        Ok(scalar(&b, "SELECT count(*) FROM sessions")
            .await
            .ok()
            .filter(|n| *n == 1))
    })
    .await
    .unwrap();
    // a's pushes to b are lost from now on; b still reaches a (to ask how far its log
    // goes) and c (which holds a's entries).
    cluster.proxies[0][1].as_ref().unwrap().cut();
    for i in 1..=5 {
        a.batch_execute(&format!("UPDATE sessions SET v = {i} WHERE id = 1"))
            .await
            .unwrap();
        // Once the commit is older than the bound, a read at b must show it (b's own
        // background pulls come every 500 ms: without the bound's check it would not).
        tokio::time::sleep(Duration::from_millis(150)).await;
        let got = scalar(&b, "SELECT v FROM sessions WHERE id = 1")
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        assert_eq!(
            got,
            i,
            "b served a read of a bounded table older than its bound\n{}",
            cluster.logs()
        );
    }
    // In a block, reads see the block's snapshot: a bounded read is served while that
    // snapshot is within the bound, and refused (40001) once it has aged past it.
    b.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        scalar(&b, "SELECT v FROM sessions WHERE id = 1")
            .await
            .unwrap(),
        5
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = scalar(&b, "SELECT v FROM sessions WHERE id = 1")
        .await
        .unwrap_err();
    let db = err
        .downcast_ref::<tokio_postgres::Error>()
        .expect("a server error");
    assert_eq!(code_of(db), Some("40001"), "{db:?}");
    b.batch_execute("ROLLBACK").await.unwrap();
    // b cannot hear from a at all: it cannot know what a committed, so it refuses.
    cluster.cut(0, 1);
    // Long enough that what b knew of a is older than the bound.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = scalar(&b, "SELECT v FROM sessions WHERE id = 1")
        .await
        .unwrap_err();
    let db = err
        .downcast_ref::<tokio_postgres::Error>()
        .expect("a server error");
    assert_eq!(code_of(db), Some("57P03"), "{db:?}");
    assert!(format!("{db:?}").contains("site a"), "{db:?}");
    // An eventual read, or a session that asks for local reads, is served.
    b.batch_execute("SET mdbc.read_consistency = local")
        .await
        .unwrap();
    assert_eq!(
        scalar(&b, "SELECT v FROM sessions WHERE id = 1")
            .await
            .unwrap(),
        5
    );
    cluster.heal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replicas_and_strong_writes_after_stale_reads() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(
        3,
        "[tables.levels]\naccounts = \"strong\"\nledger1 = { level = \"eventual\", sync_replicas = 1 }\nledger2 = { level = \"eventual\", sync_replicas = 2 }\n",
    )
    .unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    a.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         CREATE TABLE ledger1 (id int PRIMARY KEY, v int); \
         CREATE TABLE ledger2 (id int PRIMARY KEY, v int); \
         CREATE TABLE notes (id int PRIMARY KEY, v int); \
         INSERT INTO accounts VALUES (1, 100)",
    )
    .await
    .unwrap();
    eventually(WAIT, "the tables at b", || async {
        Ok(scalar(&b, "SELECT count(*) FROM accounts").await.ok())
    })
    .await
    .unwrap();

    // EXPLAIN shows the plan in PostgreSQL's shape and what each replicated table's read
    // waits for.
    let mut plan = Vec::new();
    for m in b
        .simple_query("EXPLAIN SELECT * FROM accounts, notes WHERE accounts.id = notes.id")
        .await
        .unwrap()
    {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            plan.push(r.get(0).unwrap_or_default().to_string());
        }
    }
    assert_eq!(
        plan.first().map(String::as_str),
        Some("Nested Loop"),
        "{plan:?}"
    );
    assert!(
        plan.contains(&"mdbc: accounts is strong: the read first syncs with the domain's lock holder (linearizable)".to_string()),
        "{plan:?}"
    );
    assert!(
        plan.contains(&"mdbc: notes is eventual: read from this site's copy, no wait".to_string()),
        "{plan:?}"
    );

    // sync_replicas: with a's link to c cut, one other site (b) can confirm, two cannot.
    cluster.proxies[0][2].as_ref().unwrap().cut();
    let site_a = cluster.site(0);
    let (one, ok1) = site_a
        .psql(
            "INSERT INTO ledger1 VALUES (1, 1);\n",
            &["-v", "ON_ERROR_STOP=1"],
        )
        .unwrap();
    assert!(ok1 && !one.contains("WARNING"), "{one}");
    let (two, ok2) = site_a
        .psql(
            "INSERT INTO ledger2 VALUES (1, 1);\n",
            &["-v", "ON_ERROR_STOP=1"],
        )
        .unwrap();
    assert!(ok2, "{two}");
    assert!(
        two.contains("WARNING") && two.contains("sync_replicas") && two.contains("only 1 of the 2"),
        "no warning when fewer sites than sync_replicas confirmed: {two}"
    );
    cluster.heal();
    // Committed either way, and delivered once c is back.
    let c = client(cluster.site(2)).await;
    eventually(WAIT, "ledger2 at c", || async {
        Ok(scalar(&c, "SELECT count(*) FROM ledger2")
            .await
            .ok()
            .filter(|n| *n == 1))
    })
    .await
    .unwrap();

    // A strong write after reading an eventual table in the same transaction is refused …
    let err = b
        .batch_execute("BEGIN; SELECT v FROM notes; UPDATE accounts SET bal = bal + 1 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some("55000"), "{err:?}");
    assert!(format!("{err:?}").contains("notes"), "{err:?}");
    b.batch_execute("ROLLBACK").await.unwrap();
    // … as is one statement computing a strong row from an eventual one …
    let err = b
        .batch_execute("INSERT INTO accounts SELECT id + 100, v FROM ledger1")
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some("55000"), "{err:?}");
    // … unless the session allows it.
    let err = b
        .batch_execute("SET mdbc.strong_after_stale_read = sometimes")
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some("22023"), "{err:?}");
    b.batch_execute(
        "SET mdbc.strong_after_stale_read = allow; \
         BEGIN; SELECT v FROM notes; UPDATE accounts SET bal = bal + 1 WHERE id = 1; COMMIT; \
         SET mdbc.strong_after_stale_read = refuse",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&a, "SELECT bal FROM accounts WHERE id = 1")
            .await
            .unwrap(),
        101
    );

    // A strong table read in a block, then changed at another site before the block
    // writes it: the write would rest on the old value, so the block fails with 40001
    // (and a retry reads the new value). The read itself sees every acknowledged commit.
    b.batch_execute("BEGIN").await.unwrap();
    let seen = scalar(&b, "SELECT bal FROM accounts WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(seen, 101);
    a.batch_execute("UPDATE accounts SET bal = bal + 10 WHERE id = 1")
        .await
        .unwrap();
    let err = b
        .batch_execute(&format!(
            "UPDATE accounts SET bal = {} WHERE id = 1",
            seen + 1
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some("40001"), "{err:?}");
    b.batch_execute("ROLLBACK").await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    let seen = scalar(&b, "SELECT bal FROM accounts WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        seen, 111,
        "a block's first read of a strong table missed a commit"
    );
    b.batch_execute(&format!(
        "UPDATE accounts SET bal = {} WHERE id = 1; COMMIT",
        seen + 1
    ))
    .await
    .unwrap();
    assert_eq!(
        scalar(&a, "SELECT bal FROM accounts WHERE id = 1")
            .await
            .unwrap(),
        112
    );
}
