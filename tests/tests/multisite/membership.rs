//! Sites joining (from a snapshot, unconfigured), site calls from strangers, and a site
//! removed for good.

use super::*;

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
