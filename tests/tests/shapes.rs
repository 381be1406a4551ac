//! Simple-protocol queries with inlined values are planned once per shape and run with
//! their values bound (sql_capture::literals). These tests hold that reuse to the rule
//! "never a different answer": a model checks every result of many queries that share a
//! shape, and the cases where a literal must not become a parameter (positional ORDER BY,
//! a value deciding a range check, a type decided by a literal's size) are run with
//! several values each.

use std::collections::BTreeMap;

use tests::{connect, Server};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Rows of a simple query as text.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(out)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_values_one_shape_match_a_model() {
    let server = Server::start().unwrap();
    let c = connect(&server).await;
    c.batch_execute("create table kv (id int primary key, s smallint, name text, big bigint)")
        .await
        .unwrap();
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed);
    let mut model: BTreeMap<i64, (i64, String, i64)> = BTreeMap::new();
    let names = [
        "a",
        "it''s",
        "x y",
        "ünï",
        "--no comment",
        "$1",
        "; select 1",
        "",
    ];
    for _ in 0..400 {
        let id = rng.below(120) as i64;
        // Mostly in smallint's range, sometimes past it: the range check must follow the
        // value, not the first execution of the shape.
        let s = if rng.below(6) == 0 {
            32_768 + rng.below(100_000) as i64
        } else {
            rng.below(32_768) as i64
        };
        let name = names[rng.below(names.len() as u64) as usize];
        let big = rng.below(u64::MAX / 4) as i64;
        let sql = match rng.below(3) {
            0 => format!("insert into kv values ({id}, {s}, '{name}', {big})"),
            1 => format!("update kv set s = {s}, name = '{name}', big = {big} where id = {id}"),
            _ => format!("delete from kv where id = {id}"),
        };
        let result = c.simple_query(&sql).await;
        let stored = name.replace("''", "'");
        match (sql.as_bytes()[0], result) {
            (b'i', Ok(_)) => {
                assert!(
                    s <= 32_767 && !model.contains_key(&id),
                    "{sql} was accepted"
                );
                model.insert(id, (s, stored, big));
            }
            (b'i', Err(e)) => {
                let code = sqlstate(&e);
                if s > 32_767 {
                    assert_eq!(code, "22003", "{sql}: {e}");
                } else {
                    assert!(model.contains_key(&id) && code == "23505", "{sql}: {e}");
                }
            }
            (b'u', Ok(_)) => {
                // (PostgreSQL folds the cast and refuses an out-of-range value even when
                // no row matches; mdbc checks the rows it writes.)
                if let Some(row) = model.get_mut(&id) {
                    assert!(s <= 32_767, "{sql} was accepted");
                    *row = (s, stored, big);
                }
            }
            (b'u', Err(e)) => {
                assert_eq!(sqlstate(&e), "22003", "{sql}: {e}");
                assert!(s > 32_767, "{sql}: {e}");
            }
            (b'd', Ok(_)) => {
                model.remove(&id);
            }
            (_, Err(e)) => panic!("{sql}: {e}"),
            _ => unreachable!(),
        }
        // Read one row back through a shape of its own.
        let probe = rng.below(120) as i64;
        let got = rows(
            &c,
            &format!("select s, name, big from kv where id = {probe} and big >= -1"),
        )
        .await
        .unwrap();
        let want: Vec<Vec<Option<String>>> = model
            .get(&probe)
            .map(|(s, n, b)| {
                vec![vec![
                    Some(s.to_string()),
                    Some(n.clone()),
                    Some(b.to_string()),
                ]]
            })
            .unwrap_or_default();
        assert_eq!(got, want, "seed {seed}: row {probe}");
    }
    // The whole table, through a shape whose literal is a LIMIT.
    let all = rows(&c, "select id from kv order by id limit 1000")
        .await
        .unwrap();
    let want: Vec<Vec<Option<String>>> = model.keys().map(|k| vec![Some(k.to_string())]).collect();
    assert_eq!(all, want, "seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literals_with_a_meaning_of_their_own() {
    let server = Server::start().unwrap();
    let c = connect(&server).await;
    c.batch_execute(
        "create table p (id int primary key, name text);
         insert into p values (1, 'c'), (2, 'b'), (3, 'a');",
    )
    .await
    .unwrap();
    // Positional ORDER BY: same shape, different column.
    let by1 = rows(&c, "select id, name from p order by 1").await.unwrap();
    let by2 = rows(&c, "select id, name from p order by 2").await.unwrap();
    assert_eq!(by1[0][0].as_deref(), Some("1"));
    assert_eq!(by2[0][0].as_deref(), Some("3"));
    // A schema change between two executions of a shape.
    assert_eq!(
        rows(&c, "select name from p where id = 1").await.unwrap()[0][0].as_deref(),
        Some("c")
    );
    c.batch_execute("alter table p add column extra int")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "select name from p where id = 3").await.unwrap()[0][0].as_deref(),
        Some("a")
    );
    // Integer literals past int4 are int8, and arithmetic on them exact; within int4 it
    // stays int4, whose overflow is an error (PostgreSQL: "integer out of range").
    let r = rows(&c, "select 2147483648 + 1, 3000000000 * 2")
        .await
        .unwrap();
    assert_eq!(
        r[0],
        vec![Some("2147483649".into()), Some("6000000000".into())]
    );
    let e = rows(&c, "select 2147483647 + 1").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::NUMERIC_VALUE_OUT_OF_RANGE)
    );
    let r = rows(&c, "select 1 + 1, 2 * 3").await.unwrap();
    assert_eq!(r[0], vec![Some("2".into()), Some("6".into())]);
    // Strings that look like SQL stay strings.
    let r = rows(&c, "select 'a''; drop table p; --', 'x'")
        .await
        .unwrap();
    assert_eq!(
        r[0],
        vec![Some("a'; drop table p; --".into()), Some("x".into())]
    );
    assert_eq!(
        rows(&c, "select count(*) from p").await.unwrap()[0][0].as_deref(),
        Some("3")
    );
}
