//! tokio-postgres against a real mdbc-server (issue 2): binary parameters and binary results
//! for every supported type, exact result types (int4 stays int4, int8 stays int8),
//! parameter types inferred at Describe, transactions, row limits, cancel, errors with
//! SQLSTATE, and many concurrent connections.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use tests::{connect, Server};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

const CREATE: &str = "create table every_type (
    id int primary key, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real,
    f8 double precision, n numeric(12,3), t text, v varchar(20), c char(4), by bytea,
    d date, tm time, ts timestamp, tz timestamptz, u uuid, j json, jb jsonb)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_in_binary() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    client.batch_execute(CREATE).await.unwrap();

    let n = Decimal::new(123_456, 3); // 123.456
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let tm = NaiveTime::from_hms_micro_opt(13, 14, 15, 123_456).unwrap();
    let ts = NaiveDateTime::new(d, tm);
    let tz: DateTime<Utc> = DateTime::from_naive_utc_and_offset(ts, Utc);
    let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let j = serde_json::json!({"k": [1, 2, {"x": null}]});
    let insert = client
        .prepare(
            "insert into every_type values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
        )
        .await
        .unwrap();
    // Parameter types come from the column types (Describe statement).
    let expect_params = [
        Type::INT4,
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::BYTEA,
        Type::DATE,
        Type::TIME,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::UUID,
        Type::JSON,
        Type::JSONB,
    ];
    assert_eq!(insert.params(), &expect_params);
    let rows = client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-7i16,
                &2_000_000_000i32,
                &-9_000_000_000_000i64,
                &1.5f32,
                &-2.25f64,
                &n,
                &"text ✓",
                &"varchar",
                &"ab",
                &vec![0u8, 1, 255],
                &d,
                &tm,
                &ts,
                &tz,
                &u,
                &j,
                &j,
            ],
        )
        .await
        .unwrap();
    assert_eq!(rows, 1);
    client
        .execute("insert into every_type (id) values ($1)", &[&2i32])
        .await
        .unwrap();

    let row = client
        .query_one("select * from every_type where id = $1", &[&1i32])
        .await
        .unwrap();
    let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
    let mut expect_cols = vec![Type::INT4];
    expect_cols.extend_from_slice(&expect_params[1..]);
    assert_eq!(types, expect_cols);
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), -7);
    assert_eq!(row.get::<_, i32>("i4"), 2_000_000_000);
    assert_eq!(row.get::<_, i64>("i8"), -9_000_000_000_000);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), -2.25);
    assert_eq!(row.get::<_, Decimal>("n"), n);
    assert_eq!(row.get::<_, String>("t"), "text ✓");
    assert_eq!(row.get::<_, String>("v"), "varchar");
    assert_eq!(row.get::<_, String>("c"), "ab  ");
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![0u8, 1, 255]);
    assert_eq!(row.get::<_, NaiveDate>("d"), d);
    assert_eq!(row.get::<_, NaiveTime>("tm"), tm);
    assert_eq!(row.get::<_, NaiveDateTime>("ts"), ts);
    assert_eq!(row.get::<_, DateTime<Utc>>("tz"), tz);
    assert_eq!(row.get::<_, uuid::Uuid>("u"), u);
    assert_eq!(row.get::<_, serde_json::Value>("j"), j);
    assert_eq!(row.get::<_, serde_json::Value>("jb"), j);

    let nulls = client
        .query_one("select * from every_type where id = 2", &[])
        .await
        .unwrap();
    assert_eq!(nulls.get::<_, Option<i64>>("i8"), None);
    assert_eq!(nulls.get::<_, Option<String>>("t"), None);
    assert_eq!(nulls.get::<_, Option<DateTime<Utc>>>("tz"), None);
    assert_eq!(nulls.get::<_, Option<Decimal>>("n"), None);

    // Expressions get PostgreSQL's result types.
    let r = client
        .query_one(
            "select count(*), sum(i4), max(i2), 1 + 1, $1::int8 * 2 from every_type",
            &[&21i64],
        )
        .await
        .unwrap();
    assert_eq!(r.columns()[0].type_(), &Type::INT8);
    assert_eq!(r.get::<_, i64>(0), 2);
    assert_eq!(r.get::<_, i64>(1), 2_000_000_000);
    assert_eq!(r.get::<_, i16>(2), -7);
    assert_eq!(r.get::<_, i32>(3), 2);
    assert_eq!(r.get::<_, i64>(4), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_errors_and_portals() {
    let server = Server::start().unwrap();
    let mut client = connect(&server).await;
    client
        .batch_execute("create table acc (id int primary key, bal bigint not null)")
        .await
        .unwrap();
    {
        let tx = client.transaction().await.unwrap();
        for i in 0..100i32 {
            tx.execute("insert into acc values ($1, $2)", &[&i, &100i64])
                .await
                .unwrap();
        }
        tx.rollback().await.unwrap();
    }
    let n: i64 = client
        .query_one("select count(*) from acc", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "rolled back");
    {
        let tx = client.transaction().await.unwrap();
        for i in 0..100i32 {
            tx.execute("insert into acc values ($1, $2)", &[&i, &100i64])
                .await
                .unwrap();
        }
        // A portal read 7 rows at a time (Execute with a row limit, PortalSuspended).
        let stmt = tx.prepare("select id from acc order by id").await.unwrap();
        let portal = tx.bind(&stmt, &[]).await.unwrap();
        let mut seen = Vec::new();
        loop {
            let rows = tx.query_portal(&portal, 7).await.unwrap();
            if rows.is_empty() {
                break;
            }
            assert!(rows.len() <= 7);
            seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        tx.commit().await.unwrap();
    }
    let total: i64 = client
        .query_one("select sum(bal)::int8 from acc", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 10_000);

    for (sql, code) in [
        ("selec 1", "42601"),
        ("select * from missing", "42P01"),
        ("select nope from acc", "42703"),
        ("insert into acc values (1, 1)", "23505"),
        ("insert into acc values (500, null)", "23502"),
        ("select 'x'::int", "22P02"),
        ("create materialized view v as select 1", "0A000"),
    ] {
        let err = client.simple_query(sql).await.unwrap_err();
        let got = err.code().map(|c| c.code().to_string());
        assert_eq!(got.as_deref(), Some(code), "{sql}: {err}");
        // The extended protocol reports the same.
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{sql}: {err}");
    }
    // Inside a transaction an error fails the block until ROLLBACK.
    client.batch_execute("begin").await.unwrap();
    assert!(client.simple_query("select * from missing").await.is_err());
    let err = client.simple_query("select 1").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25P02"));
    client.batch_execute("rollback").await.unwrap();
    assert_eq!(
        client
            .query_one("select 1 + 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_a_running_statement() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    let token = client.cancel_token();
    let long = tokio::spawn(async move {
        client
            .simple_query("select count(*) from generate_series(1, 100000000000) a")
            .await
    });
    // The cancel may arrive before the statement starts (then it is a no-op, as in
    // PostgreSQL), so repeat it until the statement reports the cancellation.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        token.cancel_query(NoTls).await.unwrap();
        if long.is_finished() {
            break;
        }
        assert!(Instant::now() < deadline, "statement was never cancelled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = long.await.unwrap().unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_write_concurrently() {
    let server = Server::start().unwrap();
    let admin = connect(&server).await;
    admin
        .batch_execute("create table hits (conn int primary key, n int not null)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200i32 {
        let info = server.conninfo("tester");
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&info, NoTls).await.unwrap();
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let tx = c.transaction().await.unwrap();
            tx.execute("insert into hits values ($1, 0)", &[&i])
                .await
                .unwrap();
            tx.execute("update hits set n = n + 1 where conn = $1", &[&i])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let n: i32 = c
                .query_one("select n from hits where conn = $1", &[&i])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 1);
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let r = admin
        .query_one("select count(*), sum(n) from hits", &[])
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (200, 200));
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_rolls_back_and_releases_the_writer() {
    let server = Server::start().unwrap();
    let admin = connect(&server).await;
    admin.batch_execute("create table t (x int)").await.unwrap();
    {
        let (c, conn) = tokio_postgres::connect(&server.conninfo("tester"), NoTls)
            .await
            .unwrap();
        let handle = tokio::spawn(async move {
            let _ = conn.await;
        });
        c.batch_execute("begin; insert into t values (1)")
            .await
            .unwrap();
        // Kill the connection mid-transaction.
        handle.abort();
        drop(c);
    }
    // This write needs the writer the dead session held; it must not wait forever.
    tokio::time::timeout(
        Duration::from_secs(30),
        admin.execute("insert into t values (2)", &[]),
    )
    .await
    .expect("writer released")
    .unwrap();
    let xs: Vec<i32> = admin
        .query("select x from t order by x", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(xs, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_adds_keys_and_columns_like_postgres() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    client
        .batch_execute(
            "create table parent (id int not null, name text);
             create table child (id int, parent_id int);
             insert into parent values (1, 'one'), (2, 'two');
             insert into child values (10, 1);
             alter table parent add primary key (id);
             alter table child add constraint child_parent_fk foreign key (parent_id) references parent (id);
             alter table child add column note varchar(5) default 'n/a';
             alter table parent rename column name to label;",
        )
        .await
        .unwrap();
    // The primary key added by a rebuild is enforced, and the rows survived it.
    let err = client
        .execute("insert into parent values (1, 'dup')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    let err = client
        .execute("insert into child values (11, 99)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23503"));
    let row = client
        .query_one(
            "select c.note, p.label from child c join parent p on p.id = c.parent_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "n/a");
    assert_eq!(row.get::<_, String>(1), "one");
    // A foreign key that existing rows break is refused, as PostgreSQL validates it.
    client
        .batch_execute("create table orphan (pid int); insert into orphan values (42)")
        .await
        .unwrap();
    let err = client
        .batch_execute("alter table orphan add foreign key (pid) references parent (id)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23503"), "{err}");
    // DROP COLUMN and RENAME TO keep the catalog in step with SQLite.
    client
        .batch_execute("alter table child drop column note; alter table orphan rename to orphan2")
        .await
        .unwrap();
    let cols = client.query_one("select * from child", &[]).await.unwrap();
    assert_eq!(cols.len(), 2);
    let pid: i32 = client
        .query_one("select pid from orphan2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pid, 42);
    let err = client
        .simple_query("select * from orphan")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    // pgbench's server-side data generation (init step G).
    client
        .batch_execute(
            "create table gen (aid int primary key, bid int, abalance int, filler char(8));
             insert into gen (aid, bid, abalance, filler)
               select aid, (aid - 1) / 100 + 1, 0, '' from generate_series(1, 1000) as aid;",
        )
        .await
        .unwrap();
    let r = client
        .query_one("select count(*), max(bid), min(filler) from gen", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 1000);
    assert_eq!(r.get::<_, i32>(1), 10);
    assert_eq!(r.get::<_, String>(2), "        ");
}

/// Parameters inside constructs the rewriter restructures (CLIENTS.md: SQLAlchemy's bulk
/// insert selects from `(VALUES …) AS alias(cols)`; `generate_series($1, $2) AS x`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_inside_values_aliases_and_generate_series() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    client
        .batch_execute("create table bulk (id int primary key, name text)")
        .await
        .unwrap();
    let n = client
        .execute(
            "insert into bulk (id, name) select p0, p1 from (values ($1::int, $2::text), ($3::int, $4::text)) as imp(p0, p1)",
            &[&1i32, &"one", &2i32, &"two"],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let rows = client
        .query(
            "select x, (select name from bulk where id = x) from generate_series($1::int, $2::int) as x",
            &[&1i32, &3i32],
        )
        .await
        .unwrap();
    let got: Vec<(i32, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![(1, Some("one".into())), (2, Some("two".into())), (3, None)]
    );
}

/// What tokio-postgres sends to learn about a type OID it does not know, decoded into the
/// Rust types it decodes them into (`"char"` into i8, `oid` into u32): every type mdbc
/// reports must be found, in pg_catalog. The catalog columns are typed as PostgreSQL
/// types them, and `$1` is an oid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_lookup_by_oid_decodes_like_postgres() {
    const TYPEINFO: &str = "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, \
        t.typbasetype, n.nspname, t.typrelid \
        FROM pg_catalog.pg_type t \
        LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid \
        INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid \
        WHERE t.oid = $1";
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    let stmt = client.prepare(TYPEINFO).await.unwrap();
    assert_eq!(stmt.params(), &[Type::OID]);
    let types: Vec<&Type> = stmt.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types,
        [
            &Type::NAME,
            &Type::CHAR,
            &Type::OID,
            &Type::OID,
            &Type::OID,
            &Type::NAME,
            &Type::OID
        ]
    );
    for ty in [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::NUMERIC,
        Type::VARCHAR,
        Type::TIMESTAMPTZ,
        Type::UUID,
        Type::JSONB,
        Type::CHAR,
        Type::OID,
    ] {
        let row = client.query_one(&stmt, &[&ty.oid()]).await.unwrap();
        let name: String = row.get(0);
        let typtype: i8 = row.get(1);
        let elem: u32 = row.get(2);
        let range: Option<u32> = row.get(3);
        let base: u32 = row.get(4);
        let schema: String = row.get(5);
        let relid: u32 = row.get(6);
        assert_eq!(name, ty.name(), "{ty}");
        assert_eq!(typtype, b'b' as i8, "{ty}");
        assert_eq!((elem, range, base, relid), (0, None, 0, 0), "{ty}");
        assert_eq!(schema, "pg_catalog");
    }
    // An OID that names nothing: no row, as in PostgreSQL.
    assert!(client
        .query_opt(&stmt, &[&999_999u32])
        .await
        .unwrap()
        .is_none());

    // Catalog booleans and kinds decode as bool and i8.
    client
        .batch_execute("create table cat_t (id serial primary key, v text unique)")
        .await
        .unwrap();
    let row = client
        .query_one(
            "select c.relkind, c.relhasindex, c.relnatts, c.oid from pg_class c where c.relname = $1",
            &[&"cat_t"],
        )
        .await
        .unwrap();
    let kind: i8 = row.get(0);
    let has_index: bool = row.get(1);
    let natts: i16 = row.get(2);
    let oid: u32 = row.get(3);
    assert_eq!((kind, has_index, natts), (b'r' as i8, true, 2));
    let name: String = client
        .query_one("select $1::oid::regclass::text", &[&oid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "cat_t");
}

/// What drivers and tools send on connect (issue 19 §4): SHOW ALL agrees with pg_settings,
/// set_config changes what SHOW and current_setting report, a zero session time zone given
/// as an interval is UTC, pg_sleep is cancellable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_functions_clients_call_on_connect() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    let text = |m: &[tokio_postgres::SimpleQueryMessage]| -> Vec<Vec<String>> {
        m.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    };
    client
        .batch_execute("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE")
        .await
        .unwrap();
    let r = client
        .simple_query("SELECT set_config('search_path', '', false)")
        .await
        .unwrap();
    assert_eq!(text(&r), vec![vec![String::new()]]);
    let all = text(&client.simple_query("SHOW ALL").await.unwrap());
    let settings = text(
        &client
            .simple_query("SELECT name, setting FROM pg_settings ORDER BY name")
            .await
            .unwrap(),
    );
    let shown: Vec<Vec<String>> = all.iter().map(|r| r[..2].to_vec()).collect();
    assert_eq!(shown, settings);
    assert!(shown.contains(&vec!["search_path".to_string(), String::new()]));
    assert!(shown.contains(&vec!["timezone".to_string(), "<+00>-00".to_string()]));
    let err = client
        .simple_query("SELECT set_config('datestyle', 'SQL, DMY', false)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
    // pg_sleep ends early on a cancel request, with PostgreSQL's SQLSTATE.
    let cancel = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel_query(NoTls).await
    });
    let err = client
        .simple_query("SELECT pg_sleep(30)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(25));
    canceller.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_modifying_with_through_the_extended_protocol() {
    let server = Server::start().unwrap();
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE jobs (id int PRIMARY KEY, state text);
             CREATE TABLE done (id int, state text);
             INSERT INTO jobs SELECT i, 'new' FROM generate_series(1, 5) i;",
        )
        .await
        .unwrap();
    // Moving rows in one statement, with a binary int4 parameter typed from the step.
    let moved = client
        .execute(
            "WITH d AS (DELETE FROM jobs WHERE id <= $1 RETURNING *) \
             INSERT INTO done SELECT id, 'moved' FROM d",
            &[&3i32],
        )
        .await
        .unwrap();
    assert_eq!(moved, 3);
    let left: i64 = client
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2);
    let done: Vec<i32> = client
        .query("SELECT id FROM done ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(done, vec![1, 2, 3]);
    // Rows back from such a statement need their columns at Describe, before any step
    // has run: refused clearly there, answered through the simple protocol.
    let err = client
        .query(
            "WITH d AS (DELETE FROM jobs WHERE id = $1 RETURNING id) SELECT id FROM d",
            &[&4i32],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
    let rows = client
        .simple_query("WITH d AS (DELETE FROM jobs WHERE id = 4 RETURNING id) SELECT id FROM d")
        .await
        .unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec!["4"]);
    // The refused Describe changed nothing; the temporary tables of each run are gone.
    let left: i64 = client
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
    for temp in ["_mdbc_with_1", "_mdbc_with_2"] {
        let err = client
            .simple_query(&format!("SELECT * FROM {temp}"))
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_current_of_through_the_extended_protocol() {
    let server = Server::start().unwrap();
    let mut client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE queue (id int PRIMARY KEY, state text);
             INSERT INTO queue SELECT i, 'new' FROM generate_series(1, 4) i;",
        )
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("DECLARE q CURSOR FOR SELECT id FROM queue WHERE state = 'new' FOR UPDATE")
        .await
        .unwrap();
    // Claim every other row through the cursor, with a typed parameter and RETURNING.
    let claim = tx
        .prepare("UPDATE queue SET state = $1 WHERE CURRENT OF q RETURNING id, state")
        .await
        .unwrap();
    assert_eq!(claim.params(), &[Type::TEXT]);
    let mut claimed = Vec::new();
    for _ in 0..2 {
        let row = tx.query_one("FETCH q", &[]).await.unwrap();
        let id: i32 = row.get(0);
        let back = tx.query_one(&claim, &[&"taken"]).await.unwrap();
        assert_eq!(back.get::<_, i32>(0), id);
        assert_eq!(back.get::<_, &str>(1), "taken");
        claimed.push(id);
        tx.query("FETCH q", &[]).await.unwrap();
    }
    tx.commit().await.unwrap();
    let taken: Vec<i32> = client
        .query(
            "SELECT id FROM queue WHERE state = 'taken' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    claimed.sort();
    assert_eq!(taken, claimed);
    assert_eq!(taken.len(), 2);
    // Outside a cursor's rows: 24000, as PostgreSQL.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("DECLARE q2 CURSOR FOR SELECT id FROM queue")
        .await
        .unwrap();
    let err = tx
        .execute("DELETE FROM queue WHERE CURRENT OF q2", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("24000"), "{err:?}");
    tx.rollback().await.unwrap();
    // FETCH in binary (tokio-postgres asks for it): each value as its type's binary form.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "SET TIME ZONE 'Europe/Paris';
         DECLARE v CURSOR FOR SELECT 123.456::numeric, '2024-02-29 13:14:15+00'::timestamptz,
             ARRAY[1, 2]::int4[], 'x'::text, NULL::int, 2.5::float8",
    )
    .await
    .unwrap();
    let row = tx.query_one("FETCH v", &[]).await.unwrap();
    assert_eq!(row.get::<_, Decimal>(0), Decimal::new(123_456, 3));
    let at = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_opt(13, 14, 15)
        .unwrap();
    assert_eq!(
        row.get::<_, DateTime<Utc>>(1),
        DateTime::<Utc>::from_naive_utc_and_offset(at, Utc)
    );
    assert_eq!(row.get::<_, Vec<i32>>(2), vec![1, 2]);
    assert_eq!(row.get::<_, &str>(3), "x");
    assert_eq!(row.get::<_, Option<i32>>(4), None);
    assert_eq!(row.get::<_, f64>(5), 2.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_table_does_not_pin_the_shared_snapshot() {
    let server = Server::start().unwrap();
    let a = connect(&server).await;
    let b = connect(&server).await;
    a.batch_execute("CREATE TABLE shared_log (k int)")
        .await
        .unwrap();
    // A session's first temporary table builds its catalog overlay; that must not read
    // the shared database, or the block would hold a snapshot that B's commit makes stale.
    // (A statement naming a table would read the shared schema, and so pin the snapshot
    // as any read in a block does.)
    a.batch_execute("BEGIN; CREATE TEMP TABLE scratch (k int)")
        .await
        .unwrap();
    b.batch_execute("INSERT INTO shared_log VALUES (1)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO shared_log VALUES (2); COMMIT")
        .await
        .unwrap();
    let n: i64 = b
        .query_one("SELECT count(*) FROM shared_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
