//! Unit tests of `txn`.

use std::time::Duration;

use sql_capture::Command;

use super::*;
use crate::replication::testing::{sites, TestSite};
use crate::store::SessionIdent;

/// A session's connection at `site`.
fn connect(site: &TestSite, pid: i32) -> Connection {
    site.store
        .connect(&SessionIdent {
            pid,
            user: "t".into(),
            database: "t".into(),
        })
        .unwrap()
}

fn plan_of(site: &TestSite, sql: &str) -> Box<SqlPlan> {
    let catalog = site.store.catalog();
    let parsed = sql_capture::parse(sql).unwrap().pop().unwrap();
    match sql_capture::plan(&parsed, &catalog).unwrap() {
        Command::Sql(plan) => plan,
        other => panic!("{sql} planned as {other:?}"),
    }
}

fn alone() -> Situation {
    Situation {
        autocommit: true,
        in_block: false,
        snapshot_starts: true,
        read_local: false,
        allow_stale_strong: false,
    }
}

/// One autocommit write through the three doors, as a session runs it; the number
/// of rows it changed.
async fn write(
    site: &TestSite,
    t: &mut ReplTxn,
    conn: &mut Connection,
    sql: &str,
) -> Result<usize, SqlError> {
    let plan = plan_of(site, sql);
    let mut kept = KeptRead::default();
    t.before_statement(conn, &mut kept, &plan, alone()).await?;
    let guard = site.store.lock_writer().await;
    // SAFETY: `t` ends its capture below, before `conn` goes.
    unsafe { t.start_writes(conn) }?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let catalog = site.store.catalog();
    let ran = async {
        let mut catalog = match t
            .catch_up(conn, &catalog, plan.kind == StmtKind::Ddl)
            .await?
        {
            Some(c) => c,
            None => catalog.clone(),
        };
        let mut changed = 0;
        for s in &plan.sql {
            conn.execute_batch(s)?;
            changed = conn.changes() as usize;
        }
        if plan.kind == StmtKind::Ddl {
            catalog = Arc::new(applier::after_ddl(&site.store, conn, &plan, t.capture())?);
            t.note_ddl(sql.to_string());
        }
        let committed = t.commit(conn, catalog.version).await?;
        if plan.kind == StmtKind::Ddl {
            site.store.publish_catalog(catalog);
        }
        Ok::<_, SqlError>((changed, committed))
    }
    .await;
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    drop(guard);
    t.end();
    let (changed, committed) = ran?;
    let _ = t.acknowledge(committed).await;
    Ok(changed)
}

fn value(conn: &Connection, sql: &str) -> Option<i64> {
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

/// Waits (up to 30 s) until `sql` at `conn` answers `want`.
async fn until(conn: &Connection, sql: &str, want: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = value(conn, sql);
        if got == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql} answered {got:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `docs/DESIGN.md`, "Consistency levels", strong: a strong write takes the domain for its site, and the next
/// site to write it takes it over and applies what it lacks before its own write —
/// so an increment made at another site is never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_owner_catches_up_before_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let sites = sites(
        dir.path(),
        &["a", "b", "c"],
        "[tables]\ndefault = \"strong\"",
    )
    .await;
    let (a, b) = (&sites[0], &sites[1]);
    let (mut ca, mut cb) = (connect(a, 1), connect(b, 2));
    let mut ta = ReplTxn::new(a.repl.clone(), a.store.clone());
    let mut tb = ReplTxn::new(b.repl.clone(), b.store.clone());
    write(
        a,
        &mut ta,
        &mut ca,
        "CREATE TABLE counter (k int PRIMARY KEY, v int NOT NULL)",
    )
    .await
    .unwrap();
    assert_eq!(
        write(a, &mut ta, &mut ca, "INSERT INTO counter VALUES (1, 10)")
            .await
            .unwrap(),
        1
    );
    // b has the table once it applied the schema log (its first door would have
    // caught up on DDL, but this statement is planned against b's catalog first).
    until(
        &cb,
        "SELECT count(*) FROM sqlite_schema WHERE name = 'counter'",
        1,
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while b.store.catalog().table("counter").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "b never saw the table"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        write(
            b,
            &mut tb,
            &mut cb,
            "UPDATE counter SET v = v + 1 WHERE k = 1"
        )
        .await
        .unwrap(),
        1,
        "b's update did not find a's row: it wrote before catching up"
    );
    assert_eq!(value(&cb, "SELECT v FROM counter WHERE k = 1"), Some(11));
    // And back: a takes the domain over and applies b's entry first.
    assert_eq!(
        write(
            a,
            &mut ta,
            &mut ca,
            "UPDATE counter SET v = v * 2 WHERE k = 1"
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(value(&ca, "SELECT v FROM counter WHERE k = 1"), Some(22));
    until(&cb, "SELECT v FROM counter WHERE k = 1", 22).await;
    let pos = |c: &Connection| applied_pos(c, &domain_log("counter")).unwrap();
    assert_eq!(pos(&ca), 3);
    assert_eq!(pos(&cb), 3);
}

/// A strong write in a block that read an eventual table is refused (55000): the
/// value it rests on may be stale here. Allowed when the session says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_write_after_a_stale_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sites = sites(
        dir.path(),
        &["a", "b", "c"],
        "[tables]\ndefault = \"eventual\"\n[tables.levels]\naccounts = \"strong\"",
    )
    .await;
    let a = &sites[0];
    let mut ca = connect(a, 1);
    let mut t = ReplTxn::new(a.repl.clone(), a.store.clone());
    write(
        a,
        &mut t,
        &mut ca,
        "CREATE TABLE prices (k int PRIMARY KEY, p int)",
    )
    .await
    .unwrap();
    write(
        a,
        &mut t,
        &mut ca,
        "CREATE TABLE accounts (k int PRIMARY KEY, v int)",
    )
    .await
    .unwrap();
    let mut kept = KeptRead::default();
    let in_block = |allow| Situation {
        autocommit: false,
        in_block: true,
        snapshot_starts: false,
        read_local: false,
        allow_stale_strong: allow,
    };
    t.begin();
    let read = plan_of(a, "SELECT p FROM prices WHERE k = 1");
    t.before_statement(&mut ca, &mut kept, &read, in_block(false))
        .await
        .unwrap();
    let strong = plan_of(a, "UPDATE accounts SET v = 1 WHERE k = 1");
    let err = t
        .before_statement(&mut ca, &mut kept, &strong, in_block(false))
        .await
        .unwrap_err();
    let (code, msg) = err.code_and_message();
    assert_eq!(code, "55000", "{msg}");
    assert!(msg.contains("\"prices\" is eventual"), "{msg}");
    t.before_statement(&mut ca, &mut kept, &strong, in_block(true))
        .await
        .unwrap();
    t.end();
}

/// DDL at a site that has not applied the schema log yet runs after what it lacks:
/// the new change is written against the newest schema, at every site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_applies_the_ones_before_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let sites = sites(
        dir.path(),
        &["a", "b", "c"],
        "[tables]\ndefault = \"eventual\"",
    )
    .await;
    let (a, b) = (&sites[0], &sites[1]);
    let (mut ca, mut cb) = (connect(a, 1), connect(b, 2));
    let mut ta = ReplTxn::new(a.repl.clone(), a.store.clone());
    let mut tb = ReplTxn::new(b.repl.clone(), b.store.clone());
    for i in 0..5 {
        write(
            a,
            &mut ta,
            &mut ca,
            &format!("CREATE TABLE t{i} (k int PRIMARY KEY)"),
        )
        .await
        .unwrap();
    }
    // b writes the sixth change, whatever its replicator applied of the first five.
    write(b, &mut tb, &mut cb, "CREATE TABLE t5 (k int PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(b.repl.schema_pos(), 6);
    // A change that rebuilds a table renames it; SQLite then checks every view,
    // pg_settings among them, on the replicator's connection too.
    write(a, &mut ta, &mut ca, "CREATE TABLE r (k int NOT NULL)")
        .await
        .unwrap();
    write(a, &mut ta, &mut ca, "ALTER TABLE r ADD PRIMARY KEY (k)")
        .await
        .unwrap();
    until(
        &cb,
        "SELECT pos FROM __mdbc_applied WHERE log = 'domain:__schema'",
        8,
    )
    .await;
    assert_eq!(
        value(
            &cb,
            "SELECT count(*) FROM pragma_table_info('r') WHERE pk > 0"
        ),
        Some(1)
    );
    for c in [&ca, &cb] {
        until(
            c,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name GLOB 't[0-9]'",
            6,
        )
        .await;
        until(
            c,
            "SELECT pos FROM __mdbc_applied WHERE log = 'domain:__schema'",
            8,
        )
        .await;
    }
}
