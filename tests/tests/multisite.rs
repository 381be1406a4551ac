//! Multi-site mdbc (issue 5): real `mdbc-server` processes forming a cluster on loopback,
//! driven by tokio-postgres and psql. Replication is asynchronous, so the tests wait for
//! states (with a deadline), and check convergence by content hash.

use std::time::Duration;

use tests::cluster::{eventually, site_config, Cluster};
use tests::Server;
use tokio_postgres::{Client, NoTls};

async fn client(server: &Server) -> Client {
    let (c, conn) = tokio_postgres::connect(&server.conninfo("tester"), NoTls)
        .await
        .expect("connects");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// Every row of `table` as text, ordered by its first column.
async fn rows(c: &Client, table: &str) -> anyhow::Result<Vec<String>> {
    let q = format!("SELECT * FROM {table} ORDER BY 1");
    let mut out = Vec::new();
    for r in c.simple_query(&q).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = r {
            let vals: Vec<String> = (0..r.len())
                .map(|i| r.get(i).unwrap_or("NULL").to_string())
                .collect();
            out.push(vals.join("|"));
        }
    }
    Ok(out)
}

/// A content hash of `table` at a site.
async fn content_hash(c: &Client, table: &str) -> anyhow::Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rows(c, table).await?.hash(&mut h);
    Ok(h.finish())
}

const WAIT: Duration = Duration::from_secs(30);

/// Each test runs three or more servers; on a 2-core machine they run one at a time, so
/// that timings (leases, lock timeouts) mean what they say.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

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

/// How many of its own log entries a site still keeps in SQLite (`__mdbc_site_log`).
fn site_log_rows(site: &Server) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        site.data_dir.join("mdbc.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    Ok(conn.query_row("SELECT count(*) FROM __mdbc_site_log", [], |r| r.get(0))?)
}

/// How many entries (and entry parts) of the log at `prefix` the site's key-space
/// replica holds.
fn log_keys(site: &Server, prefix: &str) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        site.data_dir.join("music").join("store.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let end = format!("{}0", prefix.trim_end_matches('/'));
    Ok(conn.query_row(
        "SELECT count(*) FROM music_values WHERE key >= ?1 AND key < ?2 AND key NOT LIKE '%/head'",
        [prefix, end.as_str()],
        |r| r.get(0),
    )?)
}

/// Waits until no site's key space holds a key of the log under `prefix`.
async fn dropped_everywhere(cluster: &Cluster, prefix: &str) {
    for (i, s) in cluster.sites.iter().enumerate() {
        eventually(
            WAIT,
            &format!("{prefix}* dropped from site {i}'s key space"),
            || async { Ok((log_keys(s, prefix)? == 0).then_some(())) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
}

async fn futures_join(cluster: &Cluster) -> Vec<Client> {
    let mut out = Vec::new();
    for s in &cluster.sites {
        out.push(client(s).await);
    }
    out
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

/// Reads both counts in one statement (one snapshot): (replies, posts).
async fn reply_and_post(c: &Client) -> anyhow::Result<(i64, i64)> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM replies), (SELECT count(*) FROM posts)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
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

const BANK: &str = "[tables.levels]\naccounts = \"strong\"\ntransfers = \"strong\"\n\n[domains]\npayments = [\"accounts\", \"transfers\"]\n";

/// The tables of the bank tests (strong, one domain, with [`BANK`]).
const BANK_TABLES: &str = "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
    CREATE TABLE transfers (id bigint PRIMARY KEY, src int, dst int, amount int);";

/// One transfer in one transaction; `Ok(())` when acknowledged, else the refusal.
async fn transfer(c: &Client, id: i64, from: i32, to: i32, amount: i32) -> Result<(), String> {
    let sql = format!(
        "BEGIN; \
         UPDATE accounts SET bal = bal - {amount} WHERE id = {from}; \
         UPDATE accounts SET bal = bal + {amount} WHERE id = {to}; \
         INSERT INTO transfers VALUES ({id}, {from}, {to}, {amount}); \
         COMMIT"
    );
    match c.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let code = e.as_db_error().map(|d| d.code().code().to_string());
            assert!(
                matches!(code.as_deref(), Some("40001" | "57P03")),
                "a transfer failed with an unexpected error: {e:?}"
            );
            let _ = c.batch_execute("ROLLBACK").await;
            Err(format!("{:?}", e.as_db_error().map(|d| d.message())))
        }
    }
}

async fn bank_state(c: &Client) -> anyhow::Result<(i64, Vec<i64>)> {
    let total: i64 = c
        .query_one("SELECT coalesce(sum(bal), 0)::bigint FROM accounts", &[])
        .await?
        .get(0);
    let ids: Vec<i64> = c
        .query("SELECT id::bigint FROM transfers ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((total, ids))
}

/// Waits until site `name` shows every acknowledged transfer; the total is exact at every
/// moment it shows (strong tables are applied a domain entry at a time).
async fn holds_every_transfer(
    cluster: &Cluster,
    c: &Client,
    name: &str,
    total: i64,
    acked: &[i64],
) {
    eventually(
        WAIT,
        &format!("every acknowledged transfer at {name}"),
        || async {
            let (shown, ids) = bank_state(c).await?;
            assert_eq!(shown, total, "{name} shows a total of {shown}");
            Ok(acked.iter().all(|a| ids.contains(a)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_transfers_from_every_site_keep_the_total_and_lose_nothing() {
    let _serial = serial().await;
    let cluster = Cluster::start(3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         CREATE TABLE transfers (id bigint PRIMARY KEY, src int, dst int, amount int)",
    )
    .await
    .unwrap();
    a.batch_execute("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 10) AS g")
        .await
        .unwrap();
    let clients = futures_join(&cluster).await;
    for c in &clients {
        eventually(WAIT, "the accounts everywhere", || async {
            Ok((bank_state(c).await?.0 == 10_000).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    // Every site transfers at once; ownership of the domain moves between them.
    let mut tasks = Vec::new();
    for (site, c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = Vec::new();
            for n in 0..10i64 {
                let id = site as i64 * 1000 + n;
                let from = ((n * 3 + site as i64) % 10 + 1) as i32;
                let to = ((n * 7 + 1 + site as i64) % 10 + 1) as i32;
                match transfer(&c, id, from, to, (n % 9 + 1) as i32).await {
                    Ok(()) => acked.push(id),
                    Err(e) => refused.push(e),
                }
            }
            (c, acked, refused)
        }));
    }
    let mut clients = Vec::new();
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        let (c, mut ids, mut errs) = t.await.unwrap();
        clients.push(c);
        acked.append(&mut ids);
        refused.append(&mut errs);
    }
    assert!(
        acked.len() >= 30,
        "too few transfers acknowledged: {}; refused: {refused:?}\n{}",
        acked.len(),
        cluster.logs()
    );
    for (i, c) in clients.iter().enumerate() {
        holds_every_transfer(&cluster, c, &format!("site {i}"), 10_000, &acked).await;
    }
    let t = rows(&clients[0], "mdbc_tables").await.unwrap();
    assert!(
        t.iter().any(|r| r.starts_with("accounts|strong|payments|")),
        "{t:?}"
    );
    // Every site ends with the same balances and the same transfers (including any that
    // committed although their client saw an error).
    eventually(
        WAIT,
        "identical accounts and transfers everywhere",
        || async {
            let mut hs = Vec::new();
            for c in &clients {
                hs.push((
                    content_hash(c, "accounts").await?,
                    content_hash(c, "transfers").await?,
                ));
            }
            Ok(hs.windows(2).all(|w| w[0] == w[1]).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // Once every site applied them, the domain log's entries leave the key space...
    dropped_everywhere(&cluster, "domain/payments/").await;
    // ...and the domain goes on: a transfer at each site after that keeps the total.
    for (i, c) in clients.iter().enumerate() {
        transfer(c, 9000 + i as i64, 1, 2, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    for c in &clients {
        eventually(WAIT, "transfers after the log was dropped", || async {
            let (total, ids) = bank_state(c).await?;
            assert_eq!(total, 10_000);
            Ok((9000..9003).all(|id| ids.contains(&id)).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_moves_the_domain_and_loses_nothing_acknowledged() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute(&format!(
        "{BANK_TABLES} INSERT INTO accounts VALUES (1, 500), (2, 500)"
    ))
    .await
    .unwrap();
    // The domain stays a's after the connection that took it is gone, for longer than a
    // lease (2 s here): its lease is renewed by the server, not by that connection.
    let (out, ok) = cluster.sites[0]
        .psql(
            "UPDATE accounts SET bal = bal WHERE id = 1",
            &["-v", "ON_ERROR_STOP=1"],
        )
        .unwrap();
    assert!(ok, "{out}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut acked = Vec::new();
    for n in 0..10 {
        if let Err(e) = transfer(&a, n, 1, 2, 1).await {
            panic!("{e}\n{}", cluster.logs());
        }
        acked.push(n);
    }
    // a owns the domain; it dies without releasing it.
    cluster.sites[0].kill().unwrap();
    let b = client(cluster.site(1)).await;
    // b takes over once a's lease (2 s in these tests) has run out.
    let took_over = eventually(WAIT, "b to take the domain over", || async {
        Ok(transfer(&b, 100, 2, 1, 5).await.ok())
    })
    .await;
    took_over.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    acked.push(100);
    // COPY into a strong table commits through the domain log too.
    let (out, ok) = cluster.sites[1]
        .psql(
            "COPY transfers FROM STDIN;\n101\t1\t1\t0\n\\.\n",
            &["-v", "ON_ERROR_STOP=1"],
        )
        .unwrap();
    assert!(ok, "{out}");
    acked.push(101);
    let c = client(cluster.site(2)).await;
    for (name, site) in [("b", &b), ("c", &c)] {
        holds_every_transfer(&cluster, site, name, 1000, &acked).await;
    }
    let (_, ids) = bank_state(&b).await.unwrap();
    assert_eq!(ids, acked, "b lost or invented transfers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_site_serves_eventual_tables_refuses_strong_writes_and_converges() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    let c = client(cluster.site(2)).await;
    a.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         CREATE TABLE transfers (id bigint PRIMARY KEY, src int, dst int, amount int); \
         CREATE TABLE notes (id int PRIMARY KEY, body text); \
         INSERT INTO accounts VALUES (1, 500), (2, 500)",
    )
    .await
    .unwrap();
    eventually(WAIT, "the schema at c", || async {
        Ok((bank_state(&c).await?.0 == 1000).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    cluster.isolate(2);
    // The minority side: eventual writes go on, strong writes fail clearly and in time.
    c.batch_execute("INSERT INTO notes VALUES (3, 'written at c while cut off')")
        .await
        .unwrap();
    // A watchdog, not a performance bound: the write must end (with an error) rather
    // than wait forever; the configured lock timeout is 5 s.
    let refused = tokio::time::timeout(Duration::from_secs(120), transfer(&c, 300, 1, 2, 7))
        .await
        .expect("a strong write on the minority side hung");
    assert!(
        refused.is_err(),
        "a strong write committed on the minority side"
    );
    eventually(WAIT, "c to see a and b unreachable", || async {
        let r = rows(&c, "mdbc_sites").await?;
        Ok(r.iter()
            .filter(|l| !l.starts_with("c|"))
            .all(|l| l.split('|').nth(3) == Some("f"))
            .then_some(()))
    })
    .await
    .unwrap();
    // The majority side carries on.
    transfer(&a, 1, 1, 2, 3).await.unwrap();
    a.batch_execute("INSERT INTO notes VALUES (1, 'written at a')")
        .await
        .unwrap();
    cluster.heal();
    for (name, site) in [("a", &a), ("c", &c)] {
        eventually(WAIT, &format!("convergence at {name}"), || async {
            let notes = rows(site, "notes").await?;
            let (total, ids) = bank_state(site).await?;
            assert_eq!(total, 1000);
            Ok((notes.len() == 2 && ids == vec![1]).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    assert_eq!(
        content_hash(&a, "notes").await.unwrap(),
        content_hash(&c, "notes").await.unwrap()
    );
}

const PGBENCH_STRONG: &str = "[tables]\ndefault = \"eventual\"\n[tables.levels]\n\
pgbench_accounts = \"strong\"\npgbench_branches = \"strong\"\n\
pgbench_tellers = \"strong\"\npgbench_history = \"strong\"\n\
[domains]\npgbench = [\"pgbench_accounts\", \"pgbench_branches\", \"pgbench_tellers\", \"pgbench_history\"]\n";

fn pgbench_at(server: &Server, args: &[&str]) -> std::thread::JoinHandle<(String, bool)> {
    let port = server.port().to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        tests::run(
            std::process::Command::new("pgbench")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "tester"])
                .args(&args)
                .arg("mdbc"),
        )
        .expect("pgbench runs")
    })
}

fn processed(out: &str) -> i64 {
    out.lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no processed count in:\n{out}"))
}

async fn scalar(c: &Client, sql: &str) -> anyhow::Result<i64> {
    let r = c.simple_query(sql).await?;
    r.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("{sql}: no value"))
}

/// pgbench end to end on strong tables: `pgbench -i` at a (a COPY of 100 000 rows, larger
/// than one MUSIC value, into keyless tables that then get primary keys), then TPC-B-like
/// load from a and b at once — the domain moves between them — and at every site the
/// TPC-B invariant holds with one history row per processed transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_from_two_sites_on_strong_tables_keeps_its_invariant() {
    let _serial = serial().await;
    let cluster = Cluster::start(3, PGBENCH_STRONG).unwrap();
    let (out, ok) = pgbench_at(cluster.site(0), &["-i", "-q", "-s", "1"])
        .join()
        .unwrap();
    assert!(ok, "pgbench -i: {out}\n{}", cluster.logs());
    let clients = futures_join(&cluster).await;
    for (i, c) in clients.iter().enumerate() {
        eventually(
            Duration::from_secs(120),
            &format!("accounts at site {i}"),
            || async {
                // The rows, and the primary keys `pgbench -i` adds after loading them
                // (schema changes travel by their own log: rows can arrive first).
                let rows = scalar(c, "SELECT count(*) FROM pgbench_accounts").await?;
                let keys = scalar(
                    c,
                    "SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
                     WHERE i.indisprimary AND t.relname LIKE 'pgbench_%'",
                )
                .await?;
                Ok((rows == 100_000 && keys == 3).then_some(()))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    // 40001 (the domain lock's lease ran out or it was busy) is pgbench's cue to retry.
    let load = ["-n", "-c", "1", "-t", "15", "--max-tries", "50"];
    let at_a = pgbench_at(cluster.site(0), &load);
    let at_b = pgbench_at(cluster.site(1), &load);
    let mut done = 0;
    for (site, h) in [("a", at_a), ("b", at_b)] {
        let (out, ok) = h.join().unwrap();
        assert!(ok, "pgbench at {site}: {out}\n{}", cluster.logs());
        assert!(out.contains("number of failed transactions: 0"), "{out}");
        done += processed(&out);
    }
    assert_eq!(done, 30);
    for (i, c) in clients.iter().enumerate() {
        let sums = eventually(WAIT, &format!("every transaction at site {i}"), || async {
            let h = scalar(c, "SELECT count(*) FROM pgbench_history").await?;
            Ok((h == done).then_some(()))
        })
        .await;
        sums.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        let mut s = Vec::new();
        for q in [
            "SELECT coalesce(sum(delta), 0) FROM pgbench_history",
            "SELECT sum(abalance) FROM pgbench_accounts",
            "SELECT sum(bbalance) FROM pgbench_branches",
            "SELECT sum(tbalance) FROM pgbench_tellers",
        ] {
            s.push(scalar(c, q).await.unwrap());
        }
        assert!(s.iter().all(|v| *v == s[0]), "site {i}: {s:?}");
    }
}

/// Reads of strong tables are linearizable at a site that does not own their domain:
/// with the link a–b cut (b hears of a's commits only through c), a read at b right
/// after each commit at a acknowledged sees it. `SET mdbc.read_consistency = local`
/// reads what b has instead; bad values and `SET mdbc.site` are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_reads_at_another_site_see_every_acknowledged_commit() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    a.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO accounts VALUES (1, 0)")
        .await
        .unwrap();
    eventually(WAIT, "the table at b", || async {
        Ok(scalar(&b, "SELECT count(*) FROM accounts").await.ok())
    })
    .await
    .unwrap();
    cluster.cut(0, 1);
    for i in 1..=5 {
        a.batch_execute(&format!("UPDATE accounts SET bal = {i} WHERE id = 1"))
            .await
            .unwrap();
        let got = scalar(&b, "SELECT bal FROM accounts WHERE id = 1")
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        assert_eq!(got, i, "b read a stale balance after a's commit {i}");
    }
    // Opting out is accepted (what it reads is whatever b has: not asserted).
    b.batch_execute("SET mdbc.read_consistency = local")
        .await
        .unwrap();
    scalar(&b, "SELECT bal FROM accounts WHERE id = 1")
        .await
        .unwrap();
    for (sql, code) in [
        ("SET mdbc.read_consistency = sometimes", "22023"),
        ("SET mdbc.site = 'z'", "55P02"),
    ] {
        let err = b.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{sql}: {err:?}");
    }
    cluster.heal();
}

/// The SQLSTATE of a failed statement.
fn code_of(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_site_joins_empty_from_a_snapshot_and_catches_up() {
    let _serial = serial().await;
    let extra = "[tables.levels]\naccounts = \"strong\"\nscratch = \"local\"\n";
    let mut cluster = Cluster::start_declared(4, 3, extra).unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    a.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         CREATE TABLE events (site text, n int); \
         CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         CREATE TABLE scratch (id int PRIMARY KEY); \
         INSERT INTO accounts VALUES (1, 100), (2, 100); \
         INSERT INTO scratch VALUES (1)",
    )
    .await
    .unwrap();
    // Enough rows that the copy takes several chunks' worth of pages.
    for chunk in 0..20 {
        let values: Vec<String> = (0..500)
            .map(|i| {
                let id = chunk * 500 + i;
                format!("({id}, '{}')", "x".repeat(200 + id % 7))
            })
            .collect();
        a.batch_execute(&format!("INSERT INTO t VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    a.batch_execute("INSERT INTO events VALUES ('a', 1), ('a', 2)")
        .await
        .unwrap();
    b.batch_execute("ALTER TABLE t ADD COLUMN w int DEFAULT 7; INSERT INTO events VALUES ('b', 1)")
        .await
        .unwrap();
    b.batch_execute("UPDATE accounts SET bal = bal - 30 WHERE id = 1; UPDATE accounts SET bal = bal + 30 WHERE id = 2")
        .await
        .unwrap();
    eventually(WAIT, "t, events and the new column at a", || async {
        let n = scalar(&a, "SELECT count(*) FROM t WHERE w = 7").await?;
        let e = scalar(&a, "SELECT count(*) FROM events").await?;
        Ok((n == 10_000 && e == 3).then_some(()))
    })
    .await
    .unwrap();

    // d starts with an empty data directory.
    let d_server = cluster.start_late(extra).unwrap();
    let log = d_server.log_text();
    assert!(
        log.contains("bootstrap from site"),
        "no progress shown:\n{log}"
    );
    assert!(log.contains("snapshot installed"), "{log}");
    let d = client(cluster.site(3)).await;
    // Written after d's snapshot: d gets them from the logs.
    b.batch_execute("INSERT INTO t VALUES (20000, 'after', 1); INSERT INTO events VALUES ('b', 2)")
        .await
        .unwrap();
    eventually(WAIT, "d to hold what a holds", || async {
        let t = content_hash(&d, "t").await?;
        let e = scalar(&d, "SELECT count(*) FROM events").await?;
        Ok((t == content_hash(&a, "t").await? && e == 4).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(
        scalar(&d, "SELECT count(*) FROM t WHERE id = 20000")
            .await
            .unwrap(),
        1
    );
    // The donor's own log entries were not taken for d's: nothing appended twice.
    assert_eq!(scalar(&a, "SELECT count(*) FROM events").await.unwrap(), 4);
    // The donor's local rows stayed with the donor.
    assert_eq!(scalar(&d, "SELECT count(*) FROM scratch").await.unwrap(), 0);
    // d writes like any site: an eventual row reaches a; a strong transfer at d keeps
    // the total and is seen at a.
    d.batch_execute(
        "INSERT INTO t VALUES (30000, 'from d', 2); INSERT INTO events VALUES ('d', 1)",
    )
    .await
    .unwrap();
    d.batch_execute("BEGIN; UPDATE accounts SET bal = bal - 5 WHERE id = 2; UPDATE accounts SET bal = bal + 5 WHERE id = 1; COMMIT")
        .await
        .unwrap();
    eventually(WAIT, "d's rows at a", || async {
        let n = scalar(&a, "SELECT count(*) FROM t WHERE id = 30000")
            .await
            .ok();
        let e = scalar(&a, "SELECT count(*) FROM events").await.ok();
        Ok((n == Some(1) && e == Some(5)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(
        scalar(&a, "SELECT bal FROM accounts WHERE id = 1")
            .await
            .unwrap(),
        75
    );
    assert_eq!(
        scalar(&a, "SELECT sum(bal) FROM accounts").await.unwrap(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_still_copying_its_snapshot_keeps_quorums_when_another_dies() {
    let _serial = serial().await;
    // Four sites declared, so quorums are three of four from the start; d has not
    // started yet.
    let mut cluster = Cluster::start_declared(4, 3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute(&format!(
        "{BANK_TABLES} INSERT INTO accounts VALUES (1, 500), (2, 500)"
    ))
    .await
    .unwrap();
    transfer(&a, 1, 1, 2, 10).await.unwrap();
    // d starts and holds its bootstrap (fault injection) with its cluster node up.
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let d = cluster
        .launch_late(BANK, &[("MDBC_TEST_HOLD_BOOTSTRAP", hold.as_path())])
        .unwrap();
    eventually(WAIT, "d holding its bootstrap", || async {
        Ok(cluster.sites[d]
            .log_text()
            .contains("bootstrap held")
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // c dies: a, b and the bootstrapping d are still three of four.
    cluster.sites[2].kill().unwrap();
    let mut acked = vec![1];
    let mut next = 100;
    eventually(
        WAIT,
        "a strong write with c gone and d bootstrapping",
        || {
            next += 1;
            let id = next;
            let a = &a;
            async move { Ok(transfer(a, id, 1, 2, 1).await.ok().map(|()| id)) }
        },
    )
    .await
    .map(|id| acked.push(id))
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    for id in 200..205 {
        transfer(&a, id, 2, 1, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        acked.push(id);
    }
    assert!(
        !cluster.sites[d].log_text().contains("snapshot installed"),
        "d finished its bootstrap while held"
    );
    // d goes on, and ends with every acknowledged transfer.
    std::fs::remove_file(&hold).unwrap();
    cluster.sites[d]
        .wait_ready(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let dc = client(cluster.site(d)).await;
    let b = client(cluster.site(1)).await;
    for (name, site) in [("b", &b), ("d", &dc)] {
        holds_every_transfer(&cluster, site, name, 1000, &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_the_others_were_not_configured_with_joins_the_running_cluster() {
    let _serial = serial().await;
    let extra = "[tables.levels]\naccounts = \"strong\"\n";
    let mut cluster = Cluster::start(3, extra).unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         CREATE TABLE s (id serial PRIMARY KEY, site text); \
         CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         INSERT INTO accounts VALUES (1, 100), (2, 100); \
         INSERT INTO t SELECT g, 'before' FROM generate_series(1, 500) AS g",
    )
    .await
    .unwrap();
    // d knows a, b and c; they were never told about d.
    let mut names = cluster.names.clone();
    names.push("d".into());
    let mut ports = cluster.cluster_ports.clone();
    ports.push(tests::free_port().unwrap());
    let d_cfg = site_config(&names, &ports, 3, tests::cluster::SECRET, extra);
    let d_server = Server::start_with_config(&d_cfg).unwrap();
    let log = d_server.log_text();
    assert!(log.contains("joined the cluster"), "{log}");
    assert!(log.contains("snapshot installed"), "{log}");
    let d = client(&d_server).await;
    eventually(WAIT, "d in a's view of the cluster", || async {
        Ok((scalar(&a, "SELECT count(*) FROM mdbc_sites").await? == 4).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", cluster.logs(), d_server.log_text()));
    // Rows flow both ways, serials do not collide, strong writes at d keep the total.
    a.batch_execute("INSERT INTO t VALUES (1000, 'from a after d joined')")
        .await
        .unwrap();
    d.batch_execute("INSERT INTO t VALUES (2000, 'from d')")
        .await
        .unwrap();
    for i in 0..5 {
        a.batch_execute(&format!("INSERT INTO s (site) VALUES ('a{i}')"))
            .await
            .unwrap();
        d.batch_execute(&format!("INSERT INTO s (site) VALUES ('d{i}')"))
            .await
            .unwrap();
    }
    d.batch_execute("BEGIN; UPDATE accounts SET bal = bal - 7 WHERE id = 1; UPDATE accounts SET bal = bal + 7 WHERE id = 2; COMMIT")
        .await
        .unwrap();
    let b = client(cluster.site(1)).await;
    for (name, c) in [("a", &a), ("b", &b), ("d", &d)] {
        eventually(WAIT, &format!("every row at {name}"), || async {
            let t = scalar(c, "SELECT count(*) FROM t").await?;
            let s = scalar(c, "SELECT count(DISTINCT id) FROM s").await?;
            Ok((t == 502 && s == 10).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", cluster.logs(), d_server.log_text()));
    }
    assert_eq!(
        scalar(&b, "SELECT bal FROM accounts WHERE id = 2")
            .await
            .unwrap(),
        107
    );
    assert_eq!(
        scalar(&a, "SELECT sum(bal) FROM accounts").await.unwrap(),
        200
    );
    // a restarts with its old configuration and still counts d in.
    drop(a);
    cluster.sites[0].restart().unwrap();
    let a = client(cluster.site(0)).await;
    d.batch_execute("INSERT INTO t VALUES (3000, 'from d after a restarted')")
        .await
        .unwrap();
    eventually(WAIT, "d's row at the restarted a", || async {
        Ok((scalar(&a, "SELECT count(*) FROM t WHERE id = 3000").await? == 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", cluster.logs(), d_server.log_text()));
    assert_eq!(
        scalar(&a, "SELECT count(*) FROM mdbc_sites").await.unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_calls_from_outside_the_cluster_are_refused() {
    use mdbc_server::replication::calls::{decode, encode, Answer, Call};
    use mdbc_server::replication::site_id;
    use music_core::node::AppChannel;
    let _serial = serial().await;
    let cluster = Cluster::start(3, "").unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{}", cluster.cluster_ports[0]);
    let secret = tests::cluster::SECRET.as_bytes();
    let wait = Duration::from_secs(10);
    // Without the secret there is no channel at all.
    assert!(
        AppChannel::connect(&addr, b"not the cluster secret", 42, site_id("a"))
            .await
            .is_err()
    );
    // With it, a node that is not a member may ask to join, and nothing else: no
    // snapshot of the database, no log positions.
    let stranger = AppChannel::connect(&addr, secret, 42, site_id("a"))
        .await
        .unwrap();
    for call in [
        Call::SnapshotStart,
        Call::SnapshotChunk { id: 1, offset: 0 },
        Call::Head,
        Call::Applied,
    ] {
        let err = stranger.call(encode(&call), wait).await.unwrap_err();
        assert!(err.contains("not a member"), "{call:?}: {err}");
    }
    // Joining under a name that is not the caller's is refused, and garbage is an error.
    let err = stranger
        .call(
            encode(&Call::Join {
                site: "z".into(),
                addr: "127.0.0.1:1".into(),
            }),
            wait,
        )
        .await
        .unwrap_err();
    assert!(err.contains("not site z"), "{err}");
    let err = stranger
        .call(bytes::Bytes::from_static(b"\xff\xfe\xfd"), wait)
        .await
        .unwrap_err();
    assert!(err.contains("malformed"), "{err}");
    // A member is answered, and the site goes on serving its clients.
    let member = AppChannel::connect(&addr, secret, site_id("b"), site_id("a"))
        .await
        .unwrap();
    let answer = member.call(encode(&Call::Head), wait).await.unwrap();
    assert!(matches!(decode::<Answer>(&answer), Ok(Answer::Head(n)) if n >= 1));
    assert_eq!(scalar(&a, "SELECT count(*) FROM t").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_gone_for_good_is_removed_and_the_others_go_on() {
    let _serial = serial().await;
    let extra = BANK.replace(
        "transfers = \"strong\"\n",
        "transfers = \"strong\"\nnotes = \"causal\"\n",
    );
    let mut cluster = Cluster::start(4, &extra).unwrap();
    let a = client(cluster.site(0)).await;
    a.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); \
         CREATE TABLE transfers (id bigint PRIMARY KEY, src int, dst int, amount int); \
         CREATE TABLE kv (k int PRIMARY KEY, v text); \
         CREATE TABLE notes (id int PRIMARY KEY, site text); \
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 4) AS g",
    )
    .await
    .unwrap();
    for i in 0..4 {
        let c = client(cluster.site(i)).await;
        eventually(WAIT, &format!("the accounts at site {i}"), || async {
            Ok((bank_state(&c).await?.0 == 4000).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    // d writes a causal row that a sees: a's later causal rows depend on d's log.
    let d = client(cluster.site(3)).await;
    d.batch_execute("INSERT INTO notes VALUES (1, 'd')")
        .await
        .unwrap();
    eventually(WAIT, "d's note at a", || async {
        Ok((scalar(&a, "SELECT count(*) FROM notes").await? == 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    drop(d);
    // d is gone for good; a goes on writing (3 of 4 sites are a quorum).
    cluster.sites[3].kill().unwrap();
    a.batch_execute("INSERT INTO kv SELECT g, 'x' FROM generate_series(1, 50) AS g")
        .await
        .unwrap();
    transfer(&a, 1, 1, 2, 5)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let cfg = cluster.site(0).config_path().unwrap().to_path_buf();
    let remove = |site: &str| {
        tests::run(
            std::process::Command::new(tests::server_binary().unwrap())
                .arg("remove-site")
                .arg("--config")
                .arg(&cfg)
                .args(["--site", site]),
        )
        .unwrap()
    };
    let (out, ok) = remove("d");
    assert!(
        ok && out.contains("site d removed"),
        "{out}\n{}",
        cluster.logs()
    );
    for i in 0..3 {
        let c = client(cluster.site(i)).await;
        eventually(WAIT, &format!("site {i} letting d go"), || async {
            let sites = rows(&c, "mdbc_sites").await?;
            Ok((!sites.iter().any(|r| r.starts_with("d|"))).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    // d no longer holds back the pruning of a's log.
    eventually(WAIT, "a's log copy pruned without d", || async {
        Ok((site_log_rows(cluster.site(0))? == 0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // Losing c as well leaves a quorum of the three members (it would be 2 of 4 had d
    // stayed a member): b takes the domain over from a through the lock service, its
    // transfer commits and reaches a.
    cluster.sites[2].kill().unwrap();
    let b = client(cluster.site(1)).await;
    transfer(&b, 2, 2, 3, 7)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    eventually(WAIT, "b's transfer at a", || async {
        let (total, ids) = bank_state(&a).await?;
        assert_eq!(total, 4000);
        Ok(ids.contains(&2).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // b restarts with a configuration that never named d: it still knows d's log
    // applied up to where it was, so a's causal row (which depends on d's) arrives.
    let names: Vec<String> = cluster.names[..3].to_vec();
    let b_cfg = site_config(
        &names,
        &cluster.cluster_ports[..3],
        1,
        tests::cluster::SECRET,
        &extra,
    );
    std::fs::write(cluster.site(1).config_path().unwrap(), b_cfg).unwrap();
    drop(b);
    cluster.sites[1].restart().unwrap();
    a.batch_execute("INSERT INTO notes VALUES (2, 'a after d left')")
        .await
        .unwrap();
    let b = client(cluster.site(1)).await;
    eventually(WAIT, "a's causal note at b restarted without d", || async {
        Ok((scalar(&b, "SELECT count(*) FROM notes").await? == 2).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // d, started again empty under its old name, is refused and stops.
    std::fs::remove_dir_all(&cluster.site(3).data_dir).unwrap();
    assert!(cluster.sites[3].restart().is_err(), "d started again");
    let log = cluster.site(3).log_text();
    assert!(log.contains("was removed from the cluster"), "{log}");
    // Removing it again changes nothing; a name the cluster never had is an error.
    let (out, ok) = remove("d");
    assert!(ok, "{out}");
    let (out, ok) = remove("zz");
    assert!(!ok && out.contains("no site named zz"), "{out}");
}
