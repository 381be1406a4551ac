//! Strong tables: bank transfers from every site, the owner killed, a partition, pgbench
//! on strong tables, and linearizable reads at another site.

use super::*;

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
/// after each commit at a acknowledged sees it, also through a view. `SET mdbc.read_consistency = local`
/// reads what b has instead; bad values and `SET mdbc.site` are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_reads_at_another_site_see_every_acknowledged_commit() {
    let _serial = serial().await;
    let cluster = Cluster::start_with_proxies(3, BANK).unwrap();
    let a = client(cluster.site(0)).await;
    let b = client(cluster.site(1)).await;
    a.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO accounts VALUES (1, 0);
         CREATE VIEW balances AS SELECT id, bal * 10 AS tenfold FROM accounts",
    )
    .await
    .unwrap();
    // The view reaches b through the schema log.
    eventually(WAIT, "the table and its view at b", || async {
        Ok(scalar(&b, "SELECT count(*) FROM balances").await.ok())
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
        // A read through a view syncs the strong table beneath it as well.
        a.batch_execute(&format!(
            "UPDATE accounts SET bal = {} WHERE id = 1",
            i + 100
        ))
        .await
        .unwrap();
        let got = scalar(&b, "SELECT tenfold FROM balances WHERE id = 1")
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        assert_eq!(
            got,
            (i + 100) * 10,
            "b read a stale balance through the view after a's commit"
        );
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
