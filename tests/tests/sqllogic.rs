//! The sqllogictest corpus in `tests/golden/slt` against a real mdbc-server (issue 6). Its
//! expected results were produced by PostgreSQL 15 (`tests/golden/slt/generate`); every
//! record must give the same answer here. All failures are reported together.

use sqllogictest::{parse_file, DefaultColumnType, Record, Runner};
use tests::slt::SltClient;
use tests::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_matches_postgres() {
    let dir = tests::workspace().join("tests/golden/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    let server = Server::start().unwrap();
    let port = server.port();
    let mut queries = 0;
    let mut failures = Vec::new();
    for file in &files {
        let records = parse_file::<DefaultColumnType>(file).unwrap();
        queries += records
            .iter()
            .filter(|r| matches!(r, Record::Query { .. }))
            .count();
        let mut runner = Runner::new(move || SltClient::connect(port));
        for record in records {
            if let Err(e) = runner.run_async(record).await {
                failures.push(format!("{}", e.display(false)));
            }
        }
        runner.shutdown_async().await;
    }
    assert!(
        failures.is_empty(),
        "{} of {queries} queries differ from PostgreSQL:\n\n{}\n\nserver log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        server.log_text()
    );
    assert!(queries >= 300, "the corpus has only {queries} queries");
}
