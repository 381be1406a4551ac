//! The ScyllaDB/Cassandra backend: the key space in one table of a keyspace created from
//! `migrations/cql/` (by version), through the `scylla` crate.
//!
//! - Plain puts and gets run at `LOCAL_ONE`; replicas converge by the database's own
//!   last-write-wins on write timestamps.
//! - Critical writes are lightweight transactions conditioned on the key's fence
//!   (`IF fence <= ref`), so checking the fence and writing are one Paxos round inside
//!   the database; critical reads run at `SERIAL`, so they see every completed critical
//!   write and refuse a ref older than the fence.
//! - Syncing a key for a new holder raises its fence by a lightweight transaction: from
//!   then on older refs are refused everywhere, and the `SERIAL` reads that follow see
//!   the newest value.

use std::sync::Arc;

use bytes::Bytes;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};

use super::{check, DataStore, StoreError, Versioned};
use crate::version::{Hlc, Version};

const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/cql/0001_music.cql")];

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// The keyspace (created if missing).
    pub keyspace: String,
    /// Its replication, as CQL (`{'class': 'NetworkTopologyStrategy', ...}`).
    pub replication: String,
    /// This MUSIC node (writes are stamped with it).
    pub me: u64,
}

impl ScyllaConfig {
    /// Keyspace `music`, NetworkTopologyStrategy with 3 replicas per datacenter.
    pub fn new(nodes: Vec<String>, me: u64) -> ScyllaConfig {
        ScyllaConfig {
            nodes,
            keyspace: "music".into(),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            me,
        }
    }
}

struct Statements {
    put: PreparedStatement,
    get: PreparedStatement,
    serial_get: PreparedStatement,
    write_if_fence: PreparedStatement,
    insert_if_new: PreparedStatement,
    fence_if_lower: PreparedStatement,
    fence_if_new: PreparedStatement,
}

/// The Scylla-backed store (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct ScyllaStore {
    session: Arc<Session>,
    st: Arc<Statements>,
    hlc: Arc<Hlc>,
    me: u64,
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn as_i64(v: &Option<CqlValue>) -> Option<i64> {
    match v {
        Some(CqlValue::BigInt(i)) => Some(*i),
        _ => None,
    }
}

/// A row of `value, epoch, hlc, node, fence` as a versioned value and the fence.
fn parse_row(row: &Row) -> (Option<Versioned>, u64) {
    let c = &row.columns;
    let fence = c.get(4).and_then(as_i64).unwrap_or(0) as u64;
    let value = match c.first() {
        Some(Some(CqlValue::Blob(b))) => Some(Bytes::copy_from_slice(b)),
        _ => None,
    };
    let v = value.map(|value| Versioned {
        value,
        version: Version {
            epoch: c.get(1).and_then(as_i64).unwrap_or(0) as u64,
            hlc: c.get(2).and_then(as_i64).unwrap_or(0) as u64,
            node: c.get(3).and_then(as_i64).unwrap_or(0) as u64,
        },
    });
    (v, fence)
}

/// The `[applied]` flag of a lightweight transaction's result, and the fence the row
/// held when it was not applied.
fn applied(result: scylla::response::query_result::QueryResult) -> Result<(bool, u64), StoreError> {
    let rows = result.into_rows_result().map_err(db)?;
    let row = rows
        .maybe_first_row::<Row>()
        .map_err(db)?
        .ok_or_else(|| db("a conditional write returned no row"))?;
    let ok = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
    // When not applied, the row holds the columns of the condition: [applied], fence.
    let fence = row.columns.get(1).and_then(as_i64).unwrap_or(0) as u64;
    Ok((ok, fence))
}

impl ScyllaStore {
    /// Connects, creates or migrates the keyspace, and prepares the statements.
    pub async fn connect(cfg: ScyllaConfig) -> Result<ScyllaStore, StoreError> {
        if !valid_name(&cfg.keyspace) {
            return Err(StoreError::Invalid(format!(
                "keyspace {:?}: letters, digits and _ only, starting with a letter",
                cfg.keyspace
            )));
        }
        let session = SessionBuilder::new()
            .known_nodes(&cfg.nodes)
            .build()
            .await
            .map_err(db)?;
        Self::migrate(&session, &cfg).await?;
        let ks = &cfg.keyspace;
        let prepare = |cql: String, c: Consistency| {
            let session = &session;
            async move {
                let mut p = session.prepare(cql).await.map_err(db)?;
                p.set_consistency(c);
                p.set_serial_consistency(Some(SerialConsistency::Serial));
                Ok::<_, StoreError>(p)
            }
        };
        let cols = "value, epoch, hlc, node, fence";
        let st = Statements {
            put: prepare(
                format!("UPDATE {ks}.music_values SET value = ?, epoch = ?, hlc = ?, node = ? WHERE key = ?"),
                Consistency::LocalOne,
            )
            .await?,
            get: prepare(
                format!("SELECT {cols} FROM {ks}.music_values WHERE key = ?"),
                Consistency::LocalOne,
            )
            .await?,
            serial_get: prepare(
                format!("SELECT {cols} FROM {ks}.music_values WHERE key = ?"),
                Consistency::Serial,
            )
            .await?,
            write_if_fence: prepare(
                format!(
                    "UPDATE {ks}.music_values SET value = ?, epoch = ?, hlc = ?, node = ?, fence = ? \
                     WHERE key = ? IF fence <= ?"
                ),
                Consistency::Quorum,
            )
            .await?,
            insert_if_new: prepare(
                format!(
                    "INSERT INTO {ks}.music_values (key, value, epoch, hlc, node, fence) \
                     VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
                ),
                Consistency::Quorum,
            )
            .await?,
            fence_if_lower: prepare(
                format!("UPDATE {ks}.music_values SET fence = ? WHERE key = ? IF fence <= ?"),
                Consistency::Quorum,
            )
            .await?,
            fence_if_new: prepare(
                format!("INSERT INTO {ks}.music_values (key, fence) VALUES (?, ?) IF NOT EXISTS"),
                Consistency::Quorum,
            )
            .await?,
        };
        Ok(ScyllaStore {
            session: Arc::new(session),
            st: Arc::new(st),
            hlc: Arc::new(Hlc::new()),
            me: cfg.me,
        })
    }

    /// Applies the files of `migrations/cql/` not applied yet, in order.
    async fn migrate(session: &Session, cfg: &ScyllaConfig) -> Result<(), StoreError> {
        let ks = &cfg.keyspace;
        let fill = |sql: &str| {
            sql.replace("{keyspace}", ks)
                .replace("{replication}", &cfg.replication)
        };
        // The first file creates the keyspace and the version table; it is idempotent.
        let applied_before = {
            for stmt in MIGRATIONS[0].split("\n;\n") {
                let stmt = strip_comments(&fill(stmt));
                if !stmt.trim().is_empty() {
                    session.query_unpaged(stmt, ()).await.map_err(db)?;
                }
            }
            let r = session
                .query_unpaged(
                    format!("SELECT version FROM {ks}.music_schema WHERE id = 0"),
                    (),
                )
                .await
                .map_err(db)?
                .into_rows_result()
                .map_err(db)?;
            r.maybe_first_row::<(i32,)>()
                .map_err(db)?
                .map(|(v,)| v as usize)
                .unwrap_or(1)
        };
        if applied_before > MIGRATIONS.len() {
            return Err(StoreError::Storage(format!(
                "keyspace {ks} is at schema version {applied_before}, newer than this binary knows ({})",
                MIGRATIONS.len()
            )));
        }
        for sql in &MIGRATIONS[applied_before.max(1)..] {
            for stmt in sql.split("\n;\n") {
                let stmt = strip_comments(&fill(stmt));
                if !stmt.trim().is_empty() {
                    session.query_unpaged(stmt, ()).await.map_err(db)?;
                }
            }
        }
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.music_schema (id, version) VALUES (0, ?)"),
                (MIGRATIONS.len() as i32,),
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn read(&self, key: &str, serial: bool) -> Result<(Option<Versioned>, u64), StoreError> {
        let st = if serial {
            &self.st.serial_get
        } else {
            &self.st.get
        };
        let r = self
            .session
            .execute_unpaged(st, (key,))
            .await
            .map_err(db)?
            .into_rows_result()
            .map_err(db)?;
        Ok(r.maybe_first_row::<Row>()
            .map_err(db)?
            .map(|row| parse_row(&row))
            .unwrap_or((None, 0)))
    }

    /// Raises `key`'s fence to `lock_ref` unless it is higher: Ok, or Fenced.
    async fn raise_fence(&self, key: &str, lock_ref: u64) -> Result<(), StoreError> {
        let r = lock_ref as i64;
        for _ in 0..3 {
            let (ok, seen) = applied(
                self.session
                    .execute_unpaged(&self.st.fence_if_lower, (r, key, r))
                    .await
                    .map_err(db)?,
            )?;
            if ok {
                return Ok(());
            }
            if seen > lock_ref {
                return Err(StoreError::Fenced { lock_ref, seen });
            }
            // No row yet (the condition saw no fence): create it, fenced.
            let (ok, _) = applied(
                self.session
                    .execute_unpaged(&self.st.fence_if_new, (key, r))
                    .await
                    .map_err(db)?,
            )?;
            if ok {
                return Ok(());
            }
        }
        Err(db(
            "the key's row kept changing under a conditional write; retry",
        ))
    }
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DataStore for ScyllaStore {
    async fn put(&self, key: &str, value: Bytes) -> Result<Version, StoreError> {
        check(key, Some(&value))?;
        let (current, fence) = self.read(key, false).await?;
        let version = Version {
            epoch: fence.max(current.map(|c| c.version.epoch).unwrap_or(0)),
            hlc: self.hlc.now(),
            node: self.me,
        };
        self.session
            .execute_unpaged(
                &self.st.put,
                (
                    value.to_vec(),
                    version.epoch as i64,
                    version.hlc as i64,
                    version.node as i64,
                    key,
                ),
            )
            .await
            .map_err(db)?;
        Ok(version)
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        check(key, None)?;
        Ok(self.read(key, false).await?.0)
    }

    async fn critical_put(
        &self,
        key: &str,
        value: Bytes,
        lock_ref: u64,
    ) -> Result<Version, StoreError> {
        check(key, Some(&value))?;
        let version = Version {
            epoch: lock_ref,
            hlc: self.hlc.now(),
            node: self.me,
        };
        let r = lock_ref as i64;
        for _ in 0..3 {
            let (ok, seen) = applied(
                self.session
                    .execute_unpaged(
                        &self.st.write_if_fence,
                        (
                            value.to_vec(),
                            r,
                            version.hlc as i64,
                            version.node as i64,
                            r,
                            key,
                            r,
                        ),
                    )
                    .await
                    .map_err(db)?,
            )?;
            if ok {
                return Ok(version);
            }
            if seen > lock_ref {
                return Err(StoreError::Fenced { lock_ref, seen });
            }
            let (ok, _) = applied(
                self.session
                    .execute_unpaged(
                        &self.st.insert_if_new,
                        (
                            key,
                            value.to_vec(),
                            r,
                            version.hlc as i64,
                            version.node as i64,
                            r,
                        ),
                    )
                    .await
                    .map_err(db)?,
            )?;
            if ok {
                return Ok(version);
            }
        }
        Err(db(
            "the key's row kept changing under a conditional write; retry",
        ))
    }

    async fn critical_get(
        &self,
        key: &str,
        lock_ref: u64,
    ) -> Result<Option<Versioned>, StoreError> {
        check(key, None)?;
        let (v, fence) = self.read(key, true).await?;
        if lock_ref < fence {
            return Err(StoreError::Fenced {
                lock_ref,
                seen: fence,
            });
        }
        Ok(v)
    }

    async fn sync(&self, key: &str, lock_ref: u64) -> Result<(), StoreError> {
        check(key, None)?;
        self.raise_fence(key, lock_ref).await
    }
}
