//! Applying another site's row images, and stamping this site's own, by row clock.
//!
//! Every replicated row has a clock in `__mdbc_row_clock` (created by mdbc's migrations):
//! the clock of the last image applied to it, kept after a delete as its tombstone. An
//! image is applied only when its clock is greater, so applying the same entries in any
//! order, any number of times, leaves every site with the same rows.
//!
//! Images are upserts on the primary key, not SQLite's REPLACE, so applying a row never
//! deletes it first (which would fire ON DELETE actions). The applier's connection runs
//! without foreign-key enforcement: entries from different sites arrive in no global
//! order, and each was checked where it was written.

use rusqlite::{Connection, OptionalExtension};

use crate::ast::quote_ident;
use crate::capture::{Shapes, TableShape};
use crate::changes::{key_bytes, RowClock, RowImage, TableChanges, Val};

/// Why an entry cannot be applied now.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The entry was written against a schema this site has not reached.
    #[error("table {table} does not match the entry's schema: {why}")]
    SchemaBehind {
        /// Table.
        table: String,
        /// What differs.
        why: String,
    },
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What applying did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Images written (rows upserted or deleted).
    pub written: usize,
    /// Images older than what the row already had.
    pub skipped: usize,
}

/// The clock stored for a row, if any.
pub fn row_clock(conn: &Connection, table: &str, key: &[u8]) -> rusqlite::Result<Option<RowClock>> {
    let mut stmt =
        conn.prepare_cached("SELECT hlc, site FROM __mdbc_row_clock WHERE tbl = ?1 AND key = ?2")?;
    stmt.query_row(rusqlite::params![table, key], |r| {
        Ok(RowClock {
            hlc: r.get::<_, i64>(0)? as u64,
            site: r.get::<_, i64>(1)? as u64,
        })
    })
    .optional()
}

fn set_clock(conn: &Connection, table: &str, key: &[u8], c: RowClock) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO __mdbc_row_clock (tbl, key, hlc, site) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tbl, key) DO UPDATE SET hlc = excluded.hlc, site = excluded.site",
    )?;
    stmt.execute(rusqlite::params![table, key, c.hlc as i64, c.site as i64])?;
    Ok(())
}

/// Records `clock` on every row of a local transaction's changes (inside it).
pub fn stamp(conn: &Connection, changes: &[TableChanges], clock: RowClock) -> rusqlite::Result<()> {
    for t in changes {
        if t.pk.is_empty() {
            continue; // append-only rows are never compared
        }
        for r in &t.rows {
            set_clock(conn, &t.table, &key_bytes(&r.key), clock)?;
        }
    }
    Ok(())
}

fn check_shape(t: &TableChanges, local: &TableShape) -> Result<(), ApplyError> {
    let behind = |why: String| ApplyError::SchemaBehind {
        table: t.table.clone(),
        why,
    };
    if let Some(c) = t.columns.iter().find(|c| !local.columns.contains(c)) {
        return Err(behind(format!("no column {c}")));
    }
    if t.pk != local.pk {
        return Err(behind(format!(
            "primary key ({}) here, ({}) in the entry",
            local.pk.join(", "),
            t.pk.join(", ")
        )));
    }
    Ok(())
}

/// Applies one table's images with `clock` (see the module docs). `version` is the
/// schema version `shapes` are valid for. `older` says the entry was written against an
/// older schema than this site's: a schema change that reached this site first (a
/// dropped table or column, a primary key added to a keyless table) is then applied to
/// the images instead of waiting for a schema that will never come back.
pub fn apply(
    conn: &Connection,
    shapes: &mut Shapes,
    version: u64,
    t: &TableChanges,
    clock: RowClock,
    older: bool,
) -> Result<Applied, ApplyError> {
    let Some(local) = shapes.get(conn, version, &t.table)? else {
        if older {
            return Ok(Applied {
                written: 0,
                skipped: t.rows.len(),
            }); // the table was dropped since
        }
        return Err(ApplyError::SchemaBehind {
            table: t.table.clone(),
            why: "no such table".into(),
        });
    };
    let adapted;
    let t = match check_shape(t, local) {
        Ok(()) => t,
        Err(e) => match older.then(|| adapt(t, local)).flatten() {
            Some(a) => {
                adapted = a;
                &adapted
            }
            None => return Err(e),
        },
    };
    let cols = t.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
    let marks = (1..=cols.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    if t.pk.is_empty() {
        return append(conn, t, &cols.join(", "), &marks);
    }
    let pk =
        t.pk.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
    let sets = t
        .columns
        .iter()
        .filter(|c| !t.pk.contains(c))
        .map(|c| format!("{0} = excluded.{0}", quote_ident(c)))
        .collect::<Vec<_>>();
    let table = quote_ident(&t.table);
    let col_list = cols.join(", ");
    let upsert = if sets.is_empty() {
        format!("INSERT INTO {table} ({col_list}) VALUES ({marks}) ON CONFLICT ({pk}) DO NOTHING")
    } else {
        format!(
            "INSERT INTO {table} ({col_list}) VALUES ({marks}) ON CONFLICT ({pk}) DO UPDATE SET {}",
            sets.join(", ")
        )
    };
    let replace = format!("INSERT OR REPLACE INTO {table} ({col_list}) VALUES ({marks})");
    let delete = format!(
        "DELETE FROM {table} WHERE {}",
        t.pk.iter()
            .enumerate()
            .map(|(i, c)| format!("{} IS ?{}", quote_ident(c), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let mut done = Applied::default();
    for r in &t.rows {
        let key = key_bytes(&r.key);
        if row_clock(conn, &t.table, &key)?.is_some_and(|c| c >= clock) {
            done.skipped += 1;
            continue;
        }
        match &r.values {
            Some(values) => {
                let run = |sql: &str| -> rusqlite::Result<usize> {
                    let mut stmt = conn.prepare_cached(sql)?;
                    for (i, v) in values.iter().enumerate() {
                        stmt.raw_bind_parameter(i + 1, v)?;
                    }
                    stmt.raw_execute()
                };
                if let Err(e) = run(&upsert) {
                    if e.sqlite_error_code() != Some(rusqlite::ErrorCode::ConstraintViolation) {
                        return Err(e.into());
                    }
                    // Another row holds one of this image's unique values here (unique
                    // keys beyond the primary key are not coordinated between sites on
                    // eventual tables; see the README). The image with the newer clock
                    // keeps the slot and the other row is absent, whichever arrived
                    // first, so two sites receiving the two rows in opposite orders agree.
                    let rivals = unique_rivals(conn, t, values, &r.key)?;
                    if rivals.is_empty() {
                        run(&replace)?;
                    } else {
                        let newest = rivals
                            .iter()
                            .filter_map(|k| row_clock(conn, &t.table, &key_bytes(k)).transpose())
                            .collect::<rusqlite::Result<Vec<_>>>()?
                            .into_iter()
                            .max();
                        if newest.is_some_and(|c| c > clock) {
                            delete_row(conn, &delete, &r.key)?;
                        } else {
                            for k in &rivals {
                                delete_row(conn, &delete, k)?;
                            }
                            // A collision this could not see (an index with a collation of
                            // its own): the arriving image takes the slot, as before.
                            if run(&upsert).is_err() {
                                run(&replace)?;
                            }
                        }
                    }
                }
            }
            None => delete_row(conn, &delete, &r.key)?,
        }
        set_clock(conn, &t.table, &key, clock)?;
        done.written += 1;
    }
    Ok(done)
}

/// `t`'s images in `local`'s shape: columns dropped since are left out, and when the
/// primary key changed (a keyless table got one) each image's key is read from its
/// values. `None` when that cannot be done (a delete under another key).
fn adapt(t: &TableChanges, local: &TableShape) -> Option<TableChanges> {
    let keep: Vec<usize> = (0..t.columns.len())
        .filter(|&i| local.columns.contains(&t.columns[i]))
        .collect();
    let columns: Vec<String> = keep.iter().map(|&i| t.columns[i].clone()).collect();
    let key_at: Vec<usize> = local
        .pk
        .iter()
        .map(|c| columns.iter().position(|x| x == c))
        .collect::<Option<_>>()?;
    let mut rows = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let values = match &r.values {
            Some(v) => Some(keep.iter().map(|&i| v[i].clone()).collect::<Vec<_>>()),
            None if t.pk == local.pk => None,
            None => return None,
        };
        let key = match &values {
            Some(v) if t.pk != local.pk => key_at.iter().map(|&i| v[i].clone()).collect(),
            _ => r.key.clone(),
        };
        rows.push(RowImage { key, values });
    }
    Some(TableChanges {
        table: t.table.clone(),
        columns,
        pk: local.pk.clone(),
        rows,
    })
}

/// Rows of a table without a primary key: inserts only (the capture refuses anything
/// else), each entry applied exactly once by the caller's applied position, so plain
/// inserts leave every site with the same multiset of rows.
fn append(
    conn: &Connection,
    t: &TableChanges,
    col_list: &str,
    marks: &str,
) -> Result<Applied, ApplyError> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO {} ({col_list}) VALUES ({marks})",
        quote_ident(&t.table)
    ))?;
    let mut done = Applied::default();
    for r in &t.rows {
        if let Some(values) = &r.values {
            for (i, v) in values.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
            stmt.raw_execute()?;
            done.written += 1;
        }
    }
    Ok(done)
}

// This crate does not log; the caller sees the outcome in its counts. Kept as a named
// hook so the one lossy path is easy to find.
fn delete_row(conn: &Connection, delete: &str, key: &[Val]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(delete)?;
    for (i, v) in key.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    stmt.raw_execute()?;
    Ok(())
}

/// The primary keys of the other rows of `t` holding a value of a unique index (other
/// than the primary key) that `values` (an image of the row keyed `key`) also has.
fn unique_rivals(
    conn: &Connection,
    t: &TableChanges,
    values: &[Val],
    key: &[Val],
) -> rusqlite::Result<Vec<Vec<Val>>> {
    let indexes: Vec<String> = conn
        .prepare_cached(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND NOT partial AND origin <> 'pk'",
        )?
        .query_map([&t.table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let pk =
        t.pk.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
    let mut out: Vec<Vec<Val>> = Vec::new();
    for index in indexes {
        let cols: Vec<Option<String>> = conn
            .prepare_cached("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
            .query_map([&index], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // Expression indexes (no column name) and partial ones (filtered out above)
        // are left to SQLite.
        let Some(at) = cols
            .iter()
            .map(|c| {
                c.as_ref()
                    .and_then(|c| t.columns.iter().position(|x| x == c))
            })
            .collect::<Option<Vec<usize>>>()
        else {
            continue;
        };
        let Some(vals) = at
            .iter()
            .map(|&i| values.get(i))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        // NULLs never collide in a unique index.
        if vals.iter().any(|v| matches!(v, Val::Null)) {
            continue;
        }
        let cond = at
            .iter()
            .enumerate()
            .map(|(n, &i)| format!("{} = ?{}", quote_ident(&t.columns[i]), n + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {pk} FROM {} WHERE {cond}",
            quote_ident(&t.table)
        ))?;
        for (n, v) in vals.iter().enumerate() {
            stmt.raw_bind_parameter(n + 1, *v)?;
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let k: Vec<Val> = (0..t.pk.len())
                .map(|i| row.get_ref(i).map(Val::from_ref))
                .collect::<rusqlite::Result<_>>()?;
            if k != key && !out.contains(&k) {
                out.push(k);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Capture;
    use crate::changes::{Entry, Val};

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../migrations/sqlite/0005_replication.sql"))
            .unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER);
             CREATE TABLE k (a TEXT, b INTEGER, w REAL, PRIMARY KEY (b, a));
             CREATE TABLE nopk (x INTEGER);",
        )
        .unwrap();
        c
    }

    // Runs `sql` in one transaction at `conn` and returns what it ships.
    fn write(conn: &Connection, sql: &str, origin: u64, hlc: u64) -> Entry {
        conn.execute_batch("BEGIN").unwrap();
        let cap = unsafe { Capture::start(conn) }.unwrap();
        conn.execute_batch(sql).unwrap();
        let mut shapes = Shapes::default();
        let tables = cap
            .collect(conn, &mut shapes, 0, &mut |t| !t.starts_with("__mdbc"))
            .unwrap();
        drop(cap);
        let clock = RowClock { hlc, site: origin };
        stamp(conn, &tables, clock).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        Entry {
            origin,
            seq: 0,
            hlc,
            schema: 0,
            deps: vec![],
            ddl: vec![],
            tables,
        }
    }

    fn receive(conn: &Connection, e: &Entry) {
        let mut shapes = Shapes::default();
        conn.execute_batch("BEGIN").unwrap();
        for t in &e.tables {
            apply(conn, &mut shapes, 0, t, e.clock(), false).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    fn content(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for q in [
            "SELECT id, v, n FROM t ORDER BY id",
            "SELECT a, b, w FROM k ORDER BY b, a",
        ] {
            let mut s = conn.prepare(q).unwrap();
            let rows = s
                .query_map([], |r| {
                    Ok(format!(
                        "{:?}|{:?}|{:?}",
                        Val::from_ref(r.get_ref(0)?),
                        Val::from_ref(r.get_ref(1)?),
                        Val::from_ref(r.get_ref(2)?)
                    ))
                })
                .unwrap();
            out.extend(rows.map(|r| r.unwrap()));
        }
        out
    }

    #[test]
    fn captures_full_images_and_tombstones_and_skips_undone_work() {
        let a = db();
        a.execute_batch("INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2)")
            .unwrap();
        let e = write(
            &a,
            "UPDATE t SET n = 10 WHERE id = 1; DELETE FROM t WHERE id = 2;
             INSERT INTO t VALUES (3, 'three', 3);
             SAVEPOINT s; INSERT INTO t VALUES (4, 'gone', 4); ROLLBACK TO s; RELEASE s;",
            1,
            100,
        );
        assert_eq!(e.tables.len(), 1, "{e:?}");
        let mut rows = e.tables[0].rows.clone();
        rows.sort_by_key(|r| format!("{:?}", r.key));
        assert_eq!(
            rows,
            vec![
                crate::changes::RowImage {
                    key: vec![Val::Int(1)],
                    values: Some(vec![Val::Int(1), Val::Text("one".into()), Val::Int(10)]),
                },
                crate::changes::RowImage {
                    key: vec![Val::Int(2)],
                    values: None,
                },
                crate::changes::RowImage {
                    key: vec![Val::Int(3)],
                    values: Some(vec![Val::Int(3), Val::Text("three".into()), Val::Int(3)]),
                },
            ]
        );
    }

    #[test]
    fn a_unique_value_goes_to_the_newer_row_whatever_the_order() {
        let site = || {
            let c = db();
            c.execute_batch(
                "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER)",
            )
            .unwrap();
            c
        };
        let rows = |c: &Connection| -> Vec<(i64, Option<String>, i64)> {
            c.prepare("SELECT id, email, n FROM u ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let (a, b, c, d) = (site(), site(), site(), site());
        // The same address registered at two sites under two keys; b's is newer.
        let ea = write(&a, "INSERT INTO u VALUES (1, 'x@example.org', 1)", 1, 100);
        let eb = write(
            &b,
            "INSERT INTO u VALUES (2, 'x@example.org', 2), (3, NULL, 3)",
            2,
            200,
        );
        receive(&a, &eb);
        receive(&b, &ea);
        receive(&c, &ea);
        receive(&c, &eb);
        receive(&d, &eb);
        receive(&d, &ea);
        let want = vec![(2, Some("x@example.org".to_string()), 2), (3, None, 3)];
        for (name, s) in [("a", &a), ("b", &b), ("c", &c), ("d", &d)] {
            assert_eq!(rows(s), want, "site {name}");
        }
        // The loser's key keeps its clock: an older image of it stays out, a newer one
        // takes the value back everywhere.
        // Site e has seen only a's row, and updates it after b's write.
        let e = site();
        receive(&e, &ea);
        let back = write(&e, "UPDATE u SET n = 10 WHERE id = 1", 5, 300);
        for s in [&a, &b, &c, &d] {
            receive(s, &back);
            receive(s, &ea);
        }
        receive(&e, &eb);
        let want = vec![(1, Some("x@example.org".to_string()), 10), (3, None, 3)];
        for (name, s) in [("a", &a), ("b", &b), ("c", &c), ("d", &d), ("e", &e)] {
            assert_eq!(rows(s), want, "site {name} after the newer write");
        }
    }

    #[test]
    fn sites_converge_whatever_the_order_and_duplication() {
        // Three sites write conflicting changes; each receives the others' entries in a
        // different order, some twice. All end identical: the greatest clock per row wins.
        let sites = [db(), db(), db()];
        let mut entries = Vec::new();
        entries.push(write(
            &sites[0],
            "INSERT INTO t VALUES (1, 'a', 1); INSERT INTO k VALUES ('x', 1, 0.5)",
            1,
            10,
        ));
        entries.push(write(
            &sites[1],
            "INSERT INTO t VALUES (1, 'b', 2); INSERT INTO t VALUES (2, 'b', 2)",
            2,
            11,
        ));
        entries.push(write(
            &sites[2],
            "INSERT INTO t VALUES (2, 'c', 3); DELETE FROM t WHERE id = 1",
            3,
            12,
        ));
        // A delete that found its row: a tombstone that an older update cannot undo.
        sites[2]
            .execute_batch("INSERT INTO t VALUES (9, 'z', 9)")
            .unwrap();
        receive(&sites[0], &write(&sites[2], "", 3, 1)); // nothing
        entries.push(write(
            &sites[1],
            "INSERT INTO t VALUES (9, 'old', 0)",
            2,
            14,
        ));
        entries.push(write(&sites[2], "DELETE FROM t WHERE id = 9", 3, 15));
        entries.push(write(
            &sites[0],
            "UPDATE k SET w = 1.5 WHERE a = 'x'",
            1,
            13,
        ));
        // Every site gets every other site's entries: in its own order, some twice.
        let orders: [&[usize]; 3] = [&[4, 1, 2, 3, 1, 4], &[5, 4, 2, 0, 0, 2], &[0, 3, 1, 5, 1]];
        for (site, order) in orders.iter().enumerate() {
            for &i in *order {
                if entries[i].origin != site as u64 + 1 {
                    receive(&sites[site], &entries[i]);
                }
            }
        }
        let want = content(&sites[0]);
        // Site 3's delete of row 1 found no row there, so it shipped nothing for it.
        assert_eq!(
            want,
            vec![
                "Int(1)|Text(\"b\")|Int(2)",
                "Int(2)|Text(\"c\")|Int(3)",
                "Text(\"x\")|Int(1)|Real(1.5)"
            ]
        );
        assert_eq!(content(&sites[1]), want);
        assert_eq!(content(&sites[2]), want);
    }

    #[test]
    fn keyless_tables_ship_inserts_and_refuse_updates_and_deletes() {
        let a = db();
        let b = db();
        b.execute_batch("INSERT INTO nopk VALUES (7)").unwrap(); // b's own row, rowid 1
        let e = write(&a, "INSERT INTO nopk VALUES (1), (1), (2)", 1, 5);
        assert_eq!(e.tables.len(), 1);
        assert!(e.tables[0].pk.is_empty());
        assert_eq!(e.tables[0].rows.len(), 3);
        receive(&b, &e);
        let mut s = b.prepare("SELECT x FROM nopk ORDER BY x").unwrap();
        let xs: Vec<i64> = s
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(xs, vec![1, 1, 2, 7]);

        for (sql, action) in [
            ("UPDATE nopk SET x = 3 WHERE x = 2", "update"),
            ("DELETE FROM nopk WHERE x = 2", "delete from"),
        ] {
            a.execute_batch("BEGIN").unwrap();
            let cap = unsafe { Capture::start(&a) }.unwrap();
            a.execute_batch(sql).unwrap();
            let err = cap
                .collect(&a, &mut Shapes::default(), 0, &mut |t| {
                    !t.starts_with("__mdbc")
                })
                .unwrap_err();
            drop(cap);
            a.execute_batch("ROLLBACK").unwrap();
            assert!(
                matches!(&err, crate::capture::CaptureError::Keyless { table, action: got }
                    if table == "nopk" && *got == action),
                "{err}"
            );
        }
        // A statement that changes no row of it is fine (pgbench's TRUNCATE of an empty table).
        let e = write(&a, "DELETE FROM nopk WHERE x = 99", 1, 6);
        assert!(e.tables.is_empty());
    }

    #[test]
    fn an_entry_from_an_older_schema_follows_the_newer_one() {
        // b got the schema changes first: nopk gained a primary key, t lost column n,
        // and k was dropped. a's entries, written before them, still apply.
        let a = db();
        let e = write(
            &a,
            "INSERT INTO nopk VALUES (5); INSERT INTO t VALUES (1, 'one', 1);
             INSERT INTO k VALUES ('x', 1, 0.5)",
            1,
            5,
        );
        let b = Connection::open_in_memory().unwrap();
        b.execute_batch(include_str!("../../migrations/sqlite/0005_replication.sql"))
            .unwrap();
        b.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE nopk (x INTEGER PRIMARY KEY);",
        )
        .unwrap();
        let mut shapes = Shapes::default();
        for t in &e.tables {
            // Not older: the entry waits (it could be from a schema b has not reached).
            assert!(matches!(
                apply(&b, &mut shapes, 0, t, e.clock(), false),
                Err(ApplyError::SchemaBehind { .. })
            ));
            apply(&b, &mut shapes, 0, t, e.clock(), true).unwrap();
        }
        let got: (i64, String, i64) = b
            .query_row("SELECT t.id, t.v, nopk.x FROM t, nopk", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(got, (1, "one".to_string(), 5));
        // The adapted keyless row has a clock under its new key: a newer image wins.
        let clock = row_clock(&b, "nopk", &key_bytes(&[Val::Int(5)])).unwrap();
        assert_eq!(clock, Some(e.clock()));
    }

    #[test]
    fn an_entry_for_a_schema_not_reached_is_refused_not_half_applied() {
        let a = db();
        let e = write(&a, "INSERT INTO t VALUES (1, 'a', 1)", 1, 5);
        let b = Connection::open_in_memory().unwrap();
        b.execute_batch(include_str!("../../migrations/sqlite/0005_replication.sql"))
            .unwrap();
        b.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let mut shapes = Shapes::default();
        let err = apply(&b, &mut shapes, 0, &e.tables[0], e.clock(), false).unwrap_err();
        assert!(matches!(err, ApplyError::SchemaBehind { .. }), "{err}");
    }
}
