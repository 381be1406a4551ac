//! Multi-site mdbc (issue 5): real `mdbc-server` processes forming a cluster on loopback,
//! driven by tokio-postgres and psql. Replication is asynchronous, so the tests wait for
//! states (with a deadline), and check convergence by content hash.

mod convergence;
mod membership;
mod reads;
mod strong;

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

/// The SQLSTATE of a failed statement.
fn code_of(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}
