//! sqlx (its PostgreSQL driver) against a real mdbc-server (issue 6). sqlx prepares every
//! statement, sends parameters with its own types in binary, asks for binary results and
//! refuses to decode a column whose reported type does not match the Rust type: every
//! declared column type, catalog column and array must come back exactly.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_core::types::Json;
use sqlx_postgres::types::Oid;
use sqlx_postgres::{PgConnectOptions, PgConnection};
use tests::Server;

async fn connect(server: &Server) -> PgConnection {
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(server.port())
        .username("tester")
        .database("mdbc");
    PgConnection::connect_with(&opts)
        .await
        .expect("sqlx connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_declared_type_decodes_into_its_rust_type() {
    let server = Server::start().unwrap();
    let mut conn = connect(&server).await;
    query(
        "create table sx (id int primary key, b boolean, i2 smallint, i4 integer, i8 bigint,
         f4 real, f8 double precision, n numeric(12,3), t text, v varchar(20), c char(4),
         by bytea, d date, tm time, ts timestamp, tz timestamptz, u uuid, j json, jb jsonb)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let n = Decimal::new(-123_456, 3);
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let tm = NaiveTime::from_hms_micro_opt(23, 59, 58, 654_321).unwrap();
    let ts = NaiveDateTime::new(d, tm);
    let tz: DateTime<Utc> = DateTime::from_naive_utc_and_offset(ts, Utc);
    let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let j = serde_json::json!({"k": [1, 2, {"x": null}], "s": "é"});
    query(
        "insert into sx values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
    )
    .bind(1i32)
    .bind(true)
    .bind(-32_768i16)
    .bind(i32::MIN)
    .bind(i64::MAX)
    .bind(1.5f32)
    .bind(-2.25e300f64)
    .bind(n)
    .bind("tëxt")
    .bind("varchar")
    .bind("ab")
    .bind(vec![0u8, 1, 254, 255])
    .bind(d)
    .bind(tm)
    .bind(ts)
    .bind(tz)
    .bind(u)
    .bind(Json(j.clone()))
    .bind(Json(j.clone()))
    .execute(&mut conn)
    .await
    .unwrap();
    query("insert into sx (id) values ($1)")
        .bind(2i32)
        .execute(&mut conn)
        .await
        .unwrap();

    let row = query("select * from sx where id = $1")
        .bind(1i32)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.try_get::<i32, _>("id").unwrap(), 1);
    assert!(row.try_get::<bool, _>("b").unwrap());
    assert_eq!(row.try_get::<i16, _>("i2").unwrap(), -32_768);
    assert_eq!(row.try_get::<i32, _>("i4").unwrap(), i32::MIN);
    assert_eq!(row.try_get::<i64, _>("i8").unwrap(), i64::MAX);
    assert_eq!(row.try_get::<f32, _>("f4").unwrap(), 1.5);
    assert_eq!(row.try_get::<f64, _>("f8").unwrap(), -2.25e300);
    assert_eq!(row.try_get::<Decimal, _>("n").unwrap(), n);
    assert_eq!(row.try_get::<String, _>("t").unwrap(), "tëxt");
    assert_eq!(row.try_get::<String, _>("v").unwrap(), "varchar");
    assert_eq!(row.try_get::<String, _>("c").unwrap(), "ab  ");
    assert_eq!(
        row.try_get::<Vec<u8>, _>("by").unwrap(),
        vec![0, 1, 254, 255]
    );
    assert_eq!(row.try_get::<NaiveDate, _>("d").unwrap(), d);
    assert_eq!(row.try_get::<NaiveTime, _>("tm").unwrap(), tm);
    assert_eq!(row.try_get::<NaiveDateTime, _>("ts").unwrap(), ts);
    assert_eq!(row.try_get::<DateTime<Utc>, _>("tz").unwrap(), tz);
    assert_eq!(row.try_get::<uuid::Uuid, _>("u").unwrap(), u);
    assert_eq!(row.try_get::<Json<serde_json::Value>, _>("j").unwrap().0, j);
    assert_eq!(
        row.try_get::<Json<serde_json::Value>, _>("jb").unwrap().0,
        j
    );
    // A declared int4 is not an int8: sqlx refuses the mismatch, as against PostgreSQL.
    assert!(row.try_get::<i64, _>("i4").is_err());

    let nulls = query("select * from sx where id = 2")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(nulls.try_get::<Option<bool>, _>("b").unwrap(), None);
    assert_eq!(nulls.try_get::<Option<Decimal>, _>("n").unwrap(), None);
    assert_eq!(
        nulls.try_get::<Option<DateTime<Utc>>, _>("tz").unwrap(),
        None
    );

    // Expressions typed as PostgreSQL types them.
    let row = query("select count(*), sum(i4), avg(i2), max(t), $1::int8 + 1 from sx")
        .bind(41i64)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>(0).unwrap(), 2);
    assert_eq!(
        row.try_get::<Option<i64>, _>(1).unwrap(),
        Some(i32::MIN as i64)
    );
    assert_eq!(
        row.try_get::<Option<Decimal>, _>(2).unwrap(),
        Some(Decimal::from(-32_768))
    );
    assert_eq!(
        row.try_get::<Option<String>, _>(3).unwrap().as_deref(),
        Some("tëxt")
    );
    assert_eq!(row.try_get::<i64, _>(4).unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_columns_and_arrays_decode_in_binary() {
    let server = Server::start().unwrap();
    let mut conn = connect(&server).await;
    for ddl in [
        "create table parent (a int, b text, primary key (a, b))",
        "create table child (id serial primary key, a int, b text,
             foreign key (a, b) references parent (a, b))",
    ] {
        query(ddl).execute(&mut conn).await.unwrap();
    }

    let row = query(
        "select c.oid, c.relkind, c.relhasindex, c.relnatts, c.relname
         from pg_catalog.pg_class c where c.relname = $1",
    )
    .bind("child")
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let oid: Oid = row.try_get(0).unwrap();
    assert_eq!(row.try_get::<i8, _>(1).unwrap(), b'r' as i8);
    assert!(row.try_get::<bool, _>(2).unwrap());
    assert_eq!(row.try_get::<i16, _>(3).unwrap(), 3);
    assert_eq!(row.try_get::<String, _>(4).unwrap(), "child");

    // int2[] and text[] arrive as arrays, element by element.
    let row = query(
        "select con.conkey, con.confkey, pg_catalog.pg_get_constraintdef(con.oid, true)
         from pg_catalog.pg_constraint con where con.conrelid = $1 and con.contype = 'f'",
    )
    .bind(oid)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.try_get::<Vec<i16>, _>(0).unwrap(), vec![2, 3]);
    assert_eq!(row.try_get::<Vec<i16>, _>(1).unwrap(), vec![1, 2]);
    assert_eq!(
        row.try_get::<String, _>(2).unwrap(),
        "FOREIGN KEY (a, b) REFERENCES parent(a, b)"
    );
    let names: Vec<String> = query(
        "select array_agg(a.attname::text order by a.attnum) from pg_catalog.pg_attribute a
         where a.attrelid = $1 and a.attnum > 0",
    )
    .bind(oid)
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(names, ["id", "a", "b"]);
    let ids: Vec<i32> = query("select array[3, 1, 2]")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(ids, [3, 1, 2]);
}
