//! Writes and schema changes everywhere, convergence by content hash, catch-up after a
//! kill, causal order, and a site with the wrong secret.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_schema_changes_reach_every_site() {
    let _serial = serial().await;
    let cluster = Cluster::start(3, "").unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    let c = client(cluster.site(2)).await;
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    for (name, site) in [("b", &b), ("c", &c)] {
        let got = eventually(WAIT, &format!("rows at {name}"), || async {
            let r = rows(site, "t").await?;
            Ok((r.len() == 2).then_some(r))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        assert_eq!(got, vec!["1|one", "2|two"]);
    }
    // A sequence created at a is drawn from at every site at once: no value twice.
    a.batch_execute("CREATE SEQUENCE tickets START 100 INCREMENT 5")
        .await
        .unwrap();
    for (name, site) in [("b", &b), ("c", &c)] {
        eventually(WAIT, &format!("the sequence at {name}"), || async {
            let n = scalar(
                site,
                "SELECT count(*) FROM pg_sequences WHERE sequencename = 'tickets'",
            )
            .await?;
            Ok((n == 1).then_some(()))
        })
        .await
        .unwrap();
    }
    async fn draw(site: &Client) -> anyhow::Result<Vec<i64>> {
        let mut got = Vec::new();
        for _ in 0..40 {
            got.push(scalar(site, "SELECT nextval('tickets')").await?);
        }
        Ok(got)
    }
    let (x, y, z) = tokio::join!(draw(&a), draw(&b), draw(&c));
    let mut all: Vec<i64> = [x.unwrap(), y.unwrap(), z.unwrap()].concat();
    let drawn = all.len();
    assert!(
        all.iter().all(|v| *v >= 100 && (v - 100) % 5 == 0),
        "{all:?}"
    );
    all.sort();
    all.dedup();
    assert_eq!(all.len(), drawn, "a sequence value was handed out twice");
    // A schema change at b is usable at c, and c's rows in the new shape reach a.
    b.batch_execute("ALTER TABLE t ADD COLUMN n int")
        .await
        .unwrap();
    eventually(WAIT, "the new column at c", || async {
        Ok(c.batch_execute("INSERT INTO t VALUES (3, 'three', 33)")
            .await
            .ok())
    })
    .await
    .unwrap();
    let got = eventually(WAIT, "c's row at a", || async {
        let r = rows(&a, "t").await?;
        Ok((r.len() == 3).then_some(r))
    })
    .await
    .unwrap();
    assert_eq!(got, vec!["1|one|NULL", "2|two|NULL", "3|three|33"]);
    // A column's type changes at c: every site converts its rows by the same USING and
    // enforces the new NOT NULL; a row in the new type from a reaches b.
    c.batch_execute(
        "ALTER TABLE t ALTER COLUMN n TYPE text USING coalesce(n::text, 'none'), \
         ALTER COLUMN n SET NOT NULL",
    )
    .await
    .unwrap();
    eventually(WAIT, "the converted column at a", || async {
        Ok(a.batch_execute("INSERT INTO t VALUES (4, 'four', 'forty')")
            .await
            .ok())
    })
    .await
    .unwrap();
    let err = a
        .batch_execute("INSERT INTO t VALUES (5, 'five', NULL)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23502"), "{err:?}");
    let got = eventually(WAIT, "converted rows at b", || async {
        let r = rows(&b, "t").await?;
        Ok((r.len() == 4).then_some(r))
    })
    .await
    .unwrap();
    assert_eq!(
        got,
        vec!["1|one|none", "2|two|none", "3|three|33", "4|four|forty"]
    );
    // A transaction creating a table and writing it ships both, in order.
    c.batch_execute("BEGIN; CREATE TABLE u (id serial PRIMARY KEY, who text); INSERT INTO u (who) VALUES ('c'); COMMIT")
        .await
        .unwrap();
    // Serial keys drawn at two sites at once never collide.
    eventually(WAIT, "table u at a", || async {
        Ok(a.batch_execute("INSERT INTO u (who) VALUES ('a')")
            .await
            .ok())
    })
    .await
    .unwrap();
    b.batch_execute("CREATE TABLE IF NOT EXISTS u (id serial PRIMARY KEY, who text)")
        .await
        .unwrap();
    eventually(WAIT, "table u at b", || async {
        Ok(b.batch_execute("INSERT INTO u (who) VALUES ('b')")
            .await
            .ok())
    })
    .await
    .unwrap();
    for site in [&a, &b, &c] {
        let got = eventually(WAIT, "every u row everywhere", || async {
            let r = rows(site, "u").await?;
            Ok((r.len() == 3).then_some(r))
        })
        .await;
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                let mut have = Vec::new();
                for s in [&a, &b, &c] {
                    have.push(rows(s, "u").await);
                }
                panic!("{e}\nu at a, b, c: {have:?}\n{}", cluster.logs())
            }
        };
        let mut who: Vec<&str> = got.iter().filter_map(|r| r.split('|').nth(1)).collect();
        who.sort();
        assert_eq!(who, vec!["a", "b", "c"], "{got:?}");
    }
    // A table without a primary key replicates as append-only: inserts from two sites
    // reach all three; an update or delete is refused (55000), as PostgreSQL's logical
    // replication refuses one on a table without a replica identity.
    a.batch_execute(
        "CREATE TABLE hist (who text, n int); INSERT INTO hist VALUES ('a', 1), ('a', 1)",
    )
    .await
    .unwrap();
    eventually(WAIT, "table hist at c", || async {
        Ok(c.batch_execute("INSERT INTO hist VALUES ('c', 2)")
            .await
            .ok())
    })
    .await
    .unwrap();
    for site in [&a, &b, &c] {
        let got = eventually(WAIT, "every hist row everywhere", || async {
            let mut r = rows(site, "hist").await?;
            r.sort();
            Ok((r.len() == 3).then_some(r))
        })
        .await
        .unwrap();
        assert_eq!(got, vec!["a|1", "a|1", "c|2"]);
    }
    for sql in ["UPDATE hist SET n = 5 WHERE who = 'c'", "DELETE FROM hist"] {
        let err = b.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("55000"),
            "{sql}: {err:?}"
        );
    }
    let mut left = rows(&b, "hist").await.unwrap();
    left.sort();
    assert_eq!(left, vec!["a|1", "a|1", "c|2"]);
    // Numerics ship exactly: what a wrote reads back digit for digit at b and c, in
    // numeric order, and sums exactly there.
    a.batch_execute(
        "CREATE TABLE money (id int PRIMARY KEY, amount numeric(30,10), x numeric);
         INSERT INTO money VALUES (1, 0.1, 12345678901234567890.123456789),
           (2, 0.2, 'NaN'), (3, -1e-10, 9.50), (4, 1.005, '-Infinity')",
    )
    .await
    .unwrap();
    for site in [&b, &c] {
        let got = eventually(WAIT, "money rows", || async {
            let r = rows(site, "money").await?;
            Ok((r.len() == 4).then_some(r))
        })
        .await
        .unwrap();
        assert_eq!(
            got,
            vec![
                "1|0.1000000000|12345678901234567890.123456789",
                "2|0.2000000000|NaN",
                "3|-0.0000000001|9.50",
                "4|1.0050000000|-Infinity"
            ]
        );
        let order = rows(
            site,
            "(SELECT row_number() OVER (ORDER BY x) AS r, id, sum(amount) OVER () AS s FROM money) q",
        )
        .await
        .unwrap();
        assert_eq!(
            order,
            vec![
                "1|4|1.3049999999",
                "2|3|1.3049999999",
                "3|1|1.3049999999",
                "4|2|1.3049999999"
            ]
        );
    }
    b.batch_execute("DROP TABLE money").await.unwrap();
    // Dates, times and intervals ship as the instants and values they are: a writes in its
    // session's zone (India, no daylight saving), b reads the same instants in New York's
    // (on both sides of its DST changes), c in UTC; intervals order by span (1 mon = 30
    // days) and BC dates in calendar order at every site.
    a.batch_execute(
        "SET TIME ZONE 'Asia/Kolkata';
         CREATE TABLE events (id int PRIMARY KEY, at timestamptz, took interval, born date);
         INSERT INTO events VALUES (1, '2024-03-10 01:30', '1 mon', '0044-03-15 BC'),
           (2, '2024-11-03 12:00', '29 days', '2000-02-29'),
           (3, '2024-07-01 05:30', '1 day 1 hour', '1999-12-31')",
    )
    .await
    .unwrap();
    b.batch_execute("SET TIME ZONE 'America/New_York'")
        .await
        .unwrap();
    for (site, instants) in [
        (
            &b,
            [
                "2024-03-09 15:00:00-05",
                "2024-11-03 01:30:00-05",
                "2024-06-30 20:00:00-04",
            ],
        ),
        (
            &c,
            [
                "2024-03-09 20:00:00+00",
                "2024-11-03 06:30:00+00",
                "2024-07-01 00:00:00+00",
            ],
        ),
    ] {
        let got = eventually(WAIT, "events rows", || async {
            let r = rows(site, "(SELECT id, at FROM events) e").await?;
            Ok((r.len() == 3).then_some(r))
        })
        .await
        .unwrap();
        let want: Vec<String> = instants
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}|{t}", i + 1))
            .collect();
        assert_eq!(got, want);
        let order = rows(
            site,
            "(SELECT row_number() OVER (ORDER BY took) AS r, id, took, \
             row_number() OVER (ORDER BY born) AS by_birth, born FROM events) q",
        )
        .await
        .unwrap();
        assert_eq!(
            order,
            vec![
                "1|3|1 day 01:00:00|2|1999-12-31",
                "2|2|29 days|3|2000-02-29",
                "3|1|1 mon|1|0044-03-15 BC"
            ]
        );
    }
    b.batch_execute("DROP TABLE events").await.unwrap();
    // A temporary table is its session's own: another session at the same site does not
    // see it, no other site gets it, and it shadows a shared table of the same name.
    a.batch_execute(
        "CREATE TEMP TABLE t (k int, note text); INSERT INTO t VALUES (7, 'mine');
         INSERT INTO u (who) VALUES ('after temp')",
    )
    .await
    .unwrap();
    assert_eq!(rows(&a, "t").await.unwrap(), vec!["7|mine"]);
    let shared = vec!["1|one|none", "2|two|none", "3|three|33", "4|four|forty"];
    let other = client(cluster.site(0)).await;
    assert_eq!(rows(&other, "t").await.unwrap(), shared);
    // The row in u was written after the temporary table: once it is at b, the temporary
    // table and its row would be too if they travelled.
    eventually(WAIT, "the row after the temporary table at b", || async {
        let r = rows(&b, "u").await?;
        Ok(r.iter().any(|l| l.ends_with("|after temp")).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(rows(&b, "t").await.unwrap(), shared);
    a.batch_execute("DROP TABLE t").await.unwrap();
    assert_eq!(rows(&a, "t").await.unwrap(), shared);
    // Deleting every row (which SQLite would do at once, unseen by the capture) and
    // TRUNCATE reach the other sites too.
    b.batch_execute("DELETE FROM t").await.unwrap();
    c.batch_execute("TRUNCATE u").await.unwrap();
    for site in [&a, &b, &c] {
        eventually(WAIT, "t and u emptied everywhere", || async {
            Ok(
                (rows(site, "t").await?.is_empty() && rows(site, "u").await?.is_empty())
                    .then_some(()),
            )
        })
        .await
        .unwrap();
    }
    // SHOW mdbc.site names the site.
    let r = b.simple_query("SHOW mdbc.site").await.unwrap();
    let site = r.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(site.as_deref(), Some("b"));
    // mdbc_sites lists every site, reachable, with what b applied of each.
    let sites = eventually(WAIT, "every site reachable in mdbc_sites", || async {
        let r = rows(&b, "mdbc_sites").await?;
        Ok((r.len() == 3 && r.iter().all(|l| l.split('|').nth(3) == Some("t"))).then_some(r))
    })
    .await
    .unwrap();
    assert!(
        sites[1].starts_with("b|") && sites[1].split('|').nth(2) == Some("t"),
        "{sites:?}"
    );
    let tables = rows(&b, "mdbc_tables").await.unwrap();
    assert_eq!(
        tables,
        vec![
            "hist|eventual|NULL|NULL|NULL",
            "t|eventual|NULL|NULL|NULL",
            "u|eventual|NULL|NULL|NULL"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_updates_converge() {
    let _serial = serial().await;
    let cluster = Cluster::start(3, "").unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v text, n int)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO kv SELECT g, 'init', 0 FROM generate_series(1, 20) AS g")
        .await
        .unwrap();
    let clients: Vec<Client> = futures_join(&cluster).await;
    for (i, c) in clients.iter().enumerate() {
        eventually(WAIT, &format!("initial rows at site {i}"), || async {
            Ok((rows(c, "kv").await?.len() == 20).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    // Every site updates, deletes and re-inserts the same keys at once.
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for round in 0..40u32 {
                let k = (round * 7 + i as u32 * 3) % 20 + 1;
                let sql = match round % 5 {
                    0 => format!("DELETE FROM kv WHERE k = {k}"),
                    1 => format!(
                        "INSERT INTO kv VALUES ({k}, 's{i}r{round}', {round}) ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = excluded.n"
                    ),
                    _ => format!("UPDATE kv SET v = 's{i}r{round}', n = n + 1 WHERE k IN ({k}, {})", k % 20 + 1),
                };
                c.batch_execute(&sql).await.expect("write");
            }
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    // Converged: the same content hash at every site (polled until it holds).
    eventually(WAIT, "identical content at every site", || async {
        let mut hs = Vec::new();
        for c in &clients {
            hs.push(content_hash(c, "kv").await?);
        }
        Ok(hs.windows(2).all(|w| w[0] == w[1]).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // Every surviving value is one some site wrote.
    for r in rows(&clients[0], "kv").await.unwrap() {
        let v = r.split('|').nth(1).unwrap_or("");
        assert!(v == "init" || v.starts_with('s'), "{r}");
    }
    // Once every site applied them, a site drops its own copy of its log entries.
    let written = scalar(&clients[0], "SELECT applied FROM mdbc_sites WHERE is_self")
        .await
        .unwrap();
    assert!(written > 10, "a wrote {written} log entries");
    eventually(WAIT, "a's log copy to be pruned", || async {
        Ok((site_log_rows(cluster.site(0))? == 0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // And the key space's copies of a's log, at every replica.
    dropped_everywhere(&cluster, "site/a/").await;
    // The log goes on above what was dropped.
    clients[0]
        .batch_execute("UPDATE kv SET v = 'after pruning' WHERE k = (SELECT min(k) FROM kv)")
        .await
        .unwrap();
    let h = content_hash(&clients[0], "kv").await.unwrap();
    for c in &clients[1..] {
        eventually(WAIT, "a's write after pruning everywhere", || async {
            Ok((content_hash(c, "kv").await? == h).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_site_catches_up_when_it_returns() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3, "").unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO t VALUES (0, 'before')")
        .await
        .unwrap();
    {
        let c = client(cluster.site(2)).await;
        eventually(WAIT, "the first row at c", || async {
            Ok((rows(&c, "t").await?.len() == 1).then_some(()))
        })
        .await
        .unwrap();
    }
    cluster.sites[2].kill().unwrap();
    for i in 1..=50 {
        a.execute("INSERT INTO t VALUES ($1, 'while c was down')", &[&i])
            .await
            .unwrap();
    }
    a.batch_execute("ALTER TABLE t ADD COLUMN extra text")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO t VALUES (51, 'after the change', 'x')")
        .await
        .unwrap();
    cluster.sites[2].restart().unwrap();
    let c = client(cluster.site(2)).await;
    let want = rows(&a, "t").await.unwrap();
    let caught_up = eventually(WAIT, "c to catch up", || async {
        Ok((rows(&c, "t").await? == want).then_some(()))
    })
    .await;
    if let Err(e) = caught_up {
        let have = rows(&c, "t").await;
        panic!("{e}\nc has {have:?}\nwant {want:?}\n{}", cluster.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_the_wrong_secret_is_refused() {
    let _serial = serial().await;
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let ports: Vec<u16> = (0..3).map(|_| tests::free_port().unwrap()).collect();
    let a = Server::start_with_config(&site_config(&names, &ports, 0, tests::cluster::SECRET, ""))
        .unwrap();
    let b = Server::start_with_config(&site_config(&names, &ports, 1, tests::cluster::SECRET, ""))
        .unwrap();
    let intruder =
        Server::start_with_config(&site_config(&names, &ports, 2, "not-the-secret", "")).unwrap();
    let ca = client(&a).await;
    let cb = client(&b).await;
    let ci = client(&intruder).await;
    ca.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    // The intruder can take no lock (its peers refuse it, so it has no quorum): its schema
    // change fails with a clear error instead of hanging or committing locally.
    let err = ci
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .expect_err("the intruder cannot change the schema");
    let db = err.as_db_error().expect("a server error");
    assert!(matches!(db.code().code(), "57P03" | "40001"), "{db:?}");
    // Nor does it get the others' schema or rows.
    ca.batch_execute("INSERT INTO t VALUES (1, 'from a')")
        .await
        .unwrap();
    eventually(WAIT, "a's row at b", || async {
        Ok((rows(&cb, "t").await?.len() == 1).then_some(()))
    })
    .await
    .unwrap();
    let intruder_sees = ci.simple_query("SELECT * FROM t").await;
    assert!(intruder_sees.is_err(), "the intruder got the schema");
    let logs = format!("{}{}", a.log_text(), b.log_text());
    assert!(
        logs.contains("refused") || logs.contains("secret"),
        "no refusal logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_a_reply_is_never_visible_without_its_post() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(3, "[tables]\ndefault = \"causal\"").unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    let c = client(cluster.site(2)).await;
    a.batch_execute(
        "CREATE TABLE posts (id int PRIMARY KEY, body text); \
         CREATE TABLE replies (id int PRIMARY KEY, post int, body text)",
    )
    .await
    .unwrap();
    eventually(WAIT, "the schema at c", || async {
        Ok(reply_and_post(&c).await.ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // a cannot reach c: the post travels to c only by way of b.
    cluster.cut(0, 2);
    a.batch_execute("INSERT INTO posts VALUES (1, 'the post')")
        .await
        .unwrap();
    eventually(WAIT, "the post at b", || async {
        Ok((reply_and_post(&b).await?.1 == 1).then_some(()))
    })
    .await
    .unwrap();
    b.batch_execute("INSERT INTO replies VALUES (1, 1, 'a reply')")
        .await
        .unwrap();
    // At c, from now until both are there, a reply never shows without its post.
    eventually(WAIT, "post and reply at c", || async {
        let (replies, posts) = reply_and_post(&c).await?;
        assert!(
            replies == 0 || posts == 1,
            "c shows the reply without the post"
        );
        Ok((replies == 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    cluster.heal();
}
