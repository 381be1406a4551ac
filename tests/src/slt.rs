//! A sqllogictest driver over tokio-postgres's simple query protocol, used both to run the
//! corpus in `tests/golden/slt` against mdbc-server and (by `examples/slt_complete.rs`) to
//! fill in its expected results from PostgreSQL 15.

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// One connection, as sqllogictest's runner drives it.
pub struct SltClient {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl SltClient {
    /// Connects as `tester` to database `mdbc` on `127.0.0.1:port`.
    pub async fn connect(port: u16) -> Result<SltClient, SltError> {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=tester dbname=mdbc"),
            NoTls,
        )
        .await
        .map_err(SltError)?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(SltClient { client, task })
    }
}

impl Drop for SltClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A failed statement as the corpus records it: by its SQLSTATE alone, so that an
/// expected error generated from PostgreSQL (`query error SQLSTATE 22003`) checks the
/// class of error mdbc gives, not PostgreSQL's wording.
#[derive(Debug)]
pub struct SltError(tokio_postgres::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.code() {
            Some(code) => write!(f, "SQLSTATE {}", code.code()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for SltError {}

#[async_trait::async_trait]
impl AsyncDB for SltClient {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let mut width = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for m in self.client.simple_query(sql).await.map_err(SltError)? {
            match m {
                SimpleQueryMessage::RowDescription(cols) => width = Some(cols.len()),
                SimpleQueryMessage::Row(r) => rows.push(
                    (0..r.len())
                        .map(|i| match r.get(i) {
                            None => "NULL".to_string(),
                            Some("") => "(empty)".to_string(),
                            Some(v) => v.to_string(),
                        })
                        .collect(),
                ),
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match width {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "postgres"
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.0.code().map(|c| c.code().to_string())
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await
    }
}
