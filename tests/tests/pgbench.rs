//! pgbench against a real mdbc-server (issue 2): `pgbench -i -s 2`, then TPC-B-like and
//! select-only runs with 8 clients in each protocol mode. Checks zero failed transactions
//! and the TPC-B invariant: every balance table and the history agree, and the history
//! holds one row per processed transaction.

use std::process::Command;

use tests::{run, Server};

fn pgbench(server: &Server, args: &[&str]) -> String {
    let port = server.port().to_string();
    let (out, ok) = run(Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "tester"])
        .args(args)
        .arg("mdbc"))
    .expect("pgbench runs");
    assert!(
        ok,
        "pgbench {args:?} failed:\n{out}\nserver log:\n{}",
        server.log_text()
    );
    out
}

fn field(out: &str, prefix: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{prefix}' in pgbench output:\n{out}"))
}

fn scalar(server: &Server, sql: &str) -> i64 {
    let (out, ok) = server.psql(sql, &["-A", "-t"]).expect("psql runs");
    assert!(ok, "{sql}: {out}");
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: {out}"))
}

fn tpcb_and_select_only(mode: &str) {
    let server = Server::start().expect("server starts");
    let init = pgbench(&server, &["-i", "-s", "2"]);
    assert!(init.contains("done in"), "{init}");
    assert_eq!(
        scalar(&server, "select count(*) from pgbench_accounts"),
        200_000
    );

    let out = pgbench(&server, &["-c", "8", "-j", "2", "-T", "10", "-M", mode]);
    assert_eq!(field(&out, "number of failed transactions: "), 0, "{out}");
    let processed = field(&out, "number of transactions actually processed: ");
    assert!(processed > 0, "{out}");

    let accounts = scalar(&server, "select sum(abalance) from pgbench_accounts");
    let branches = scalar(&server, "select sum(bbalance) from pgbench_branches");
    let tellers = scalar(&server, "select sum(tbalance) from pgbench_tellers");
    let history = scalar(
        &server,
        "select coalesce(sum(delta), 0) from pgbench_history",
    );
    assert_eq!((accounts, branches, tellers), (history, history, history));
    assert_eq!(
        scalar(&server, "select count(*) from pgbench_history") as u64,
        processed,
        "one history row per acknowledged transaction"
    );

    let out = pgbench(
        &server,
        &["-S", "-c", "8", "-j", "2", "-T", "10", "-M", mode],
    );
    assert_eq!(field(&out, "number of failed transactions: "), 0, "{out}");
    assert!(field(&out, "number of transactions actually processed: ") > 0);
}

#[test]
fn pgbench_simple() {
    tpcb_and_select_only("simple");
}

#[test]
fn pgbench_extended() {
    tpcb_and_select_only("extended");
}

#[test]
fn pgbench_prepared() {
    tpcb_and_select_only("prepared");
}
