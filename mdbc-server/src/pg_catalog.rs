//! PostgreSQL's system catalogs, as SQLite views over SQLite's own schema (`sqlite_schema`,
//! the `pragma_*` table functions) and mdbc's column catalog (`__mdbc_columns`).
//!
//! psql's meta-commands, ORMs' reflection and strict drivers' type lookups read these. Each
//! view is declared here once, with the PostgreSQL type of every column: the store creates
//! the views from this list, and the same list goes into the translation catalog so that
//! results over them are typed as PostgreSQL types them (`boolean` prints `t`, `oid` is
//! `oid`). Catalogs mdbc has nothing for (policies, triggers, publications, inheritance,
//! extended statistics) are views with no rows and the right columns.
//!
//! The views are code, not data: the store recreates them whenever this module's SQL
//! changes ([`refresh`]), so an upgrade never needs a migration for them.
//!
//! Object ids: PostgreSQL's fixed ones for built-in schemas, types and access methods; a
//! table's or an SQLite index's is 16384 plus its row in `sqlite_schema` (stable until an
//! ALTER rebuilds the table). Objects SQLite has no row for get ids in ranges of their own,
//! derived from the table's: an implicit primary-key index 1 000 000 + table oid,
//! constraints 2 000 000 + index oid (keys) or 7 000 000 + 1000 × table + n (foreign keys),
//! sequences 4 000 000 + 1000 × table + column, defaults 5 000 000 + 1000 × table + column.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rusqlite::Connection;
use sql_capture::{ColumnInfo, PgType, SystemRelation, SystemRelations, TableDef};

use PgType::{Bool, Char, Float4, Int2, Int4, Name, Oid, Text};

/// One system view: its columns with their PostgreSQL types, and the SELECT producing them
/// (`None`: always empty).
struct View {
    name: &'static str,
    columns: &'static [(&'static str, PgType)],
    body: Option<Body>,
}

enum Body {
    Sql(&'static str),
    Built(fn() -> String),
}

/// Helper views the system views share; hidden from pg_class by their `__mdbc` prefix.
const HELPERS: &[(&str, &str)] = &[
    // The two bases every other view reads: SQLite's schema and mdbc's column catalog. A
    // session with temporary tables shadows both with its own (see
    // [`temporary_overlay`]), and every view above them with a copy that reads those.
    (
        "__mdbc_v_schema",
        r#"SELECT rowid AS rowid, type, name, tbl_name, sql, 2200 AS nsp, 'p' AS persistence
          FROM main.sqlite_schema"#,
    ),
    ("__mdbc_v_columns", "SELECT * FROM main.__mdbc_columns"),
    (
        "__mdbc_v_rel",
        r#"SELECT CAST(s.rowid + 16384 AS INTEGER) AS oid, s.name AS name, s.type AS type,
                 s.nsp AS nsp, s.persistence AS persistence
          FROM __mdbc_v_schema s
          WHERE (s.type = 'table' OR (s.type = 'view' AND s.name IN
                                        (SELECT name FROM main.__mdbc_views)))
            AND s.name NOT LIKE 'sqlite\_%' ESCAPE '\'
            AND s.name NOT LIKE '\_\_mdbc%' ESCAPE '\'"#,
    ),
    (
        "__mdbc_v_column",
        r#"SELECT t.oid AS attrelid, c.tbl AS tbl, c.col AS attname, c.ordinal + 1 AS attnum,
                 c.pg_type AS atttypid, c.typmod AS atttypmod, c.not_null AS attnotnull,
                 c.serial AS serial,
                 CASE WHEN c.serial THEN
                          'nextval(' || quote_literal(quote_ident(c.tbl || '_' || c.col || '_seq'))
                          || '::regclass)'
                      ELSE coalesce(c.pg_default, p.dflt_value) END AS adbin
          FROM __mdbc_v_rel t
          JOIN __mdbc_v_columns c ON c.tbl = t.name
          LEFT JOIN pragma_table_info(t.name) p ON p.name = c.col"#,
    ),
    (
        // Every index, with the name PostgreSQL would show: SQLite's own name for a
        // CREATE INDEX; for the indexes behind PRIMARY KEY and UNIQUE, the constraint's
        // recorded name (__mdbc_constraints) or PostgreSQL's default (t_pkey, t_a_b_key).
        // A rowid primary key has no SQLite index; it gets one here.
        "__mdbc_v_index",
        // The definition as CREATE INDEX recorded it (__mdbc_indexes) when it did, in
        // PostgreSQL's plain and pretty spellings; ccols/pcols: each column's text.
        r#"SELECT y.*,
                 'CREATE ' || CASE WHEN y.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                 || quote_ident(y.relname) || ' ON '
                 || CASE y.persistence WHEN 't' THEN 'pg_temp_3.' ELSE 'public.' END
                 || quote_ident(y.tbl)
                 || ' USING btree (' || coalesce((SELECT group_concat(c.value || o.value, ', '
                                                  ORDER BY c.key)
                                                  FROM json_each(d.cols) c
                                                  JOIN json_each(d.opts) o ON o.key = c.key),
                                                 y.cols) || ')'
                 || coalesce(' WHERE ' || d.pred, '') AS indexdef,
                 'CREATE ' || CASE WHEN y.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                 || quote_ident(y.relname) || ' ON ' || quote_ident(y.tbl)
                 || ' USING btree (' || coalesce((SELECT group_concat(c.value || o.value, ', '
                                                  ORDER BY c.key)
                                                  FROM json_each(d.pretty_cols) c
                                                  JOIN json_each(d.opts) o ON o.key = c.key),
                                                 y.cols) || ')'
                 || coalesce(' WHERE ' || d.pretty_pred, '') AS indexdef_pretty,
                 coalesce(d.cols, (SELECT json_group_array(quote_ident(coalesce(j.value, '?'))
                                                           ORDER BY j.key)
                                   FROM json_each(y.colnames) j)) AS ccols,
                 coalesce(d.pretty_cols, (SELECT json_group_array(quote_ident(coalesce(j.value, '?'))
                                                                  ORDER BY j.key)
                                          FROM json_each(y.colnames) j)) AS pcols
          FROM (
          SELECT x.indexrelid, x.indrelid, x.tbl,
                 coalesce((SELECT k.name FROM __mdbc_constraints k
                           WHERE x.origin IN ('pk', 'u') AND k.tbl = x.tbl
                             AND k.kind = CASE x.origin WHEN 'pk' THEN 'p' ELSE 'u' END
                             AND k.cols = x.colnames), x.relname) AS relname,
                 x.indisunique, x.indisprimary, x.origin,
                 CASE WHEN x.origin = 'pk' THEN 'p' WHEN x.origin = 'u' THEN 'u'
                      WHEN x.indisunique AND EXISTS (SELECT 1 FROM __mdbc_constraints k
                          WHERE k.tbl = x.tbl AND k.kind = 'u' AND k.name = x.relname)
                      THEN 'u' END AS contype,
                 x.indkey, x.cols, x.colnames, x.indnatts, x.nsp, x.persistence
          FROM (
          SELECT CAST(coalesce(ix.rowid + 16384, 1000000 + t.oid) AS INTEGER) AS indexrelid,
                 t.oid AS indrelid, t.name AS tbl,
                 CASE il.origin
                     WHEN 'pk' THEN t.name || '_pkey'
                     WHEN 'u' THEN t.name || '_' || (SELECT group_concat(ii.name, '_' ORDER BY ii.seqno)
                                                     FROM pragma_index_info(il.name) ii) || '_key'
                     ELSE il.name END AS relname,
                 il."unique" AS indisunique, il.origin = 'pk' AS indisprimary, il.origin AS origin,
                 (SELECT json_group_array(coalesce(c.ordinal + 1, 0) ORDER BY ii.seqno)
                  FROM pragma_index_info(il.name) ii
                  LEFT JOIN __mdbc_v_columns c ON c.tbl = t.name AND c.col = ii.name) AS indkey,
                 (SELECT group_concat(quote_ident(coalesce(ii.name, '?'))
                                      || CASE WHEN ii."desc" THEN ' DESC' ELSE '' END,
                                      ', ' ORDER BY ii.seqno)
                  FROM pragma_index_xinfo(il.name) ii WHERE ii.key) AS cols,
                 (SELECT json_group_array(ii.name ORDER BY ii.seqno)
                  FROM pragma_index_info(il.name) ii) AS colnames,
                 (SELECT count(*) FROM pragma_index_info(il.name)) AS indnatts,
                 t.nsp AS nsp, t.persistence AS persistence
          FROM __mdbc_v_rel t
          JOIN pragma_index_list(t.name) il
          LEFT JOIN __mdbc_v_schema ix ON ix.type = 'index' AND ix.name = il.name
          WHERE t.type = 'table'
          UNION ALL
          SELECT CAST(1000000 + t.oid AS INTEGER), t.oid, t.name, t.name || '_pkey', 1, 1, 'pk',
                 (SELECT json_group_array(c.ordinal + 1 ORDER BY p.pk)
                  FROM pragma_table_info(t.name) p
                  JOIN __mdbc_v_columns c ON c.tbl = t.name AND c.col = p.name WHERE p.pk > 0),
                 (SELECT group_concat(quote_ident(p.name), ', ' ORDER BY p.pk)
                  FROM pragma_table_info(t.name) p WHERE p.pk > 0),
                 (SELECT json_group_array(p.name ORDER BY p.pk)
                  FROM pragma_table_info(t.name) p WHERE p.pk > 0),
                 (SELECT count(*) FROM pragma_table_info(t.name) p WHERE p.pk > 0),
                 t.nsp, t.persistence
          FROM __mdbc_v_rel t
          WHERE t.type = 'table'
            AND EXISTS (SELECT 1 FROM pragma_table_info(t.name) p WHERE p.pk > 0)
            AND NOT EXISTS (SELECT 1 FROM pragma_index_list(t.name) il WHERE il.origin = 'pk')
          ) x) y
          LEFT JOIN __mdbc_indexes d ON d.name = y.relname AND d.tbl = y.tbl"#,
    ),
    (
        "__mdbc_v_constraint",
        r#"SELECT CAST(2000000 + i.indexrelid AS INTEGER) AS oid, i.relname AS conname,
                 i.contype AS contype,
                 i.indrelid AS conrelid, i.indexrelid AS conindid, 0 AS confrelid,
                 'a' AS confupdtype, 'a' AS confdeltype, ' ' AS confmatchtype,
                 i.indkey AS conkey, NULL AS confkey,
                 CASE i.contype WHEN 'p' THEN 'PRIMARY KEY (' ELSE 'UNIQUE (' END
                     || i.cols || ')' AS condef
          FROM __mdbc_v_index i WHERE i.contype IS NOT NULL
          UNION ALL
          SELECT g.oid,
                 coalesce((SELECT k.name FROM __mdbc_constraints k
                           WHERE k.tbl = g.tbl AND k.kind = 'f' AND k.cols = g.fromcols),
                          g.tbl || '_' || g.from_us || '_fkey'),
                 'f', g.conrelid, g.conindid, g.confrelid, g.upd, g.del, 's', g.conkey,
                 g.confkey, g.condef
          FROM (
          SELECT CAST(7000000 + (t.oid - 16384) * 1000 + fk.id AS INTEGER) AS oid,
                 t.name AS tbl, t.oid AS conrelid,
                 json_group_array(fk."from" ORDER BY fk.seq) AS fromcols,
                 group_concat(fk."from", '_' ORDER BY fk.seq) AS from_us,
                 -- The referenced key's index: SQLite's own (primary key or unique),
                 -- else the rowid primary key's stand-in (see __mdbc_v_index).
                 coalesce((SELECT ix.rowid + 16384 FROM pragma_index_list(fk."table") il
                           JOIN __mdbc_v_schema ix ON ix.type = 'index' AND ix.name = il.name
                           WHERE il.origin IN ('pk', 'u')
                           ORDER BY il.origin = 'pk' DESC LIMIT 1),
                          (SELECT 1000000 + r.oid FROM __mdbc_v_rel r
                           WHERE r.name = fk."table"), 0) AS conindid,
                 coalesce((SELECT r.oid FROM __mdbc_v_rel r WHERE r.name = fk."table"), 0)
                     AS confrelid,
                 CASE max(fk.on_update) WHEN 'CASCADE' THEN 'c' WHEN 'SET NULL' THEN 'n'
                     WHEN 'SET DEFAULT' THEN 'd' WHEN 'RESTRICT' THEN 'r' ELSE 'a' END AS upd,
                 CASE max(fk.on_delete) WHEN 'CASCADE' THEN 'c' WHEN 'SET NULL' THEN 'n'
                     WHEN 'SET DEFAULT' THEN 'd' WHEN 'RESTRICT' THEN 'r' ELSE 'a' END AS del,
                 json_group_array((SELECT c.ordinal + 1 FROM __mdbc_v_columns c
                                   WHERE c.tbl = t.name AND c.col = fk."from") ORDER BY fk.seq)
                     AS conkey,
                 json_group_array((SELECT c.ordinal + 1 FROM __mdbc_v_columns c
                                   WHERE c.tbl = fk."table"
                                     AND c.col = coalesce(fk."to", (SELECT p.name
                                         FROM pragma_table_info(fk."table") p
                                         WHERE p.pk = fk.seq + 1))) ORDER BY fk.seq) AS confkey,
                 'FOREIGN KEY (' || group_concat(quote_ident(fk."from"), ', ' ORDER BY fk.seq)
                 || ') REFERENCES ' || quote_ident(fk."table") || '('
                 || group_concat(quote_ident(coalesce(fk."to", (SELECT p.name
                        FROM pragma_table_info(fk."table") p WHERE p.pk = fk.seq + 1))),
                        ', ' ORDER BY fk.seq) || ')'
                 || CASE max(fk.on_update) WHEN 'NO ACTION' THEN ''
                        ELSE ' ON UPDATE ' || max(fk.on_update) END
                 || CASE max(fk.on_delete) WHEN 'NO ACTION' THEN ''
                        ELSE ' ON DELETE ' || max(fk.on_delete) END AS condef
          FROM __mdbc_v_rel t
          JOIN pragma_foreign_key_list(t.name) fk
          WHERE t.type = 'table'
          GROUP BY t.oid, fk.id) g"#,
    ),
    (
        "__mdbc_v_sequence",
        // A serial column's sequence, then those of CREATE SEQUENCE (with their values as
        // this site hands them out: pg_sequence_state).
        r#"SELECT CAST(4000000 + (t.oid - 16384) * 1000 + c.ordinal + 1 AS INTEGER) AS oid,
                 c.tbl || '_' || c.col || '_seq' AS name, t.oid AS tbloid, c.ordinal + 1 AS attnum,
                 c.pg_type AS typid, t.nsp AS nsp, t.persistence AS persistence,
                 1 AS start, 1 AS increment, 1 AS minvalue,
                 CASE c.pg_type WHEN 21 THEN 32767 WHEN 23 THEN 2147483647
                     ELSE 9223372036854775807 END AS maxvalue, 1 AS cache, 0 AS cycle
          FROM __mdbc_v_columns c JOIN __mdbc_v_rel t ON t.name = c.tbl
          WHERE c.serial
          UNION ALL
          SELECT CAST(5000000 + q.rowid AS INTEGER), q.name, t.oid,
                 (SELECT c.ordinal + 1 FROM __mdbc_v_columns c
                  WHERE c.tbl = q.owned_tbl AND c.col = q.owned_col),
                 q.typid, 2200, 'p', q.start, q.increment, q.minvalue, q.maxvalue, q.cache,
                 q.cycle
          FROM main.__mdbc_sequences q LEFT JOIN __mdbc_v_rel t ON t.name = q.owned_tbl"#,
    ),
];

const EMPTY: Option<Body> = None;

const VIEWS: &[View] = &[
    View {
        name: "pg_namespace",
        columns: &[
            ("oid", Oid),
            ("nspname", Name),
            ("nspowner", Oid),
            ("nspacl", Text),
        ],
        // The session's own schema for temporary tables, while it has some.
        body: Some(Body::Sql(
            "SELECT * FROM (VALUES (11, 'pg_catalog', 10, NULL), (99, 'pg_toast', 10, NULL), \
             (2200, 'public', 6171, NULL), (13000, 'information_schema', 10, NULL)) \
             UNION ALL SELECT 16383, 'pg_temp_3', 10, NULL \
             WHERE EXISTS (SELECT 1 FROM __mdbc_v_rel WHERE persistence = 't')",
        )),
    },
    View {
        name: "pg_am",
        columns: &[
            ("oid", Oid),
            ("amname", Name),
            ("amhandler", Text),
            ("amtype", Char),
        ],
        body: Some(Body::Sql(
            "VALUES (2, 'heap', 'heap_tableam_handler', 't'), (403, 'btree', 'bthandler', 'i')",
        )),
    },
    View {
        name: "pg_class",
        columns: &[
            ("oid", Oid),
            ("relname", Name),
            ("relnamespace", Oid),
            ("reltype", Oid),
            ("reloftype", Oid),
            ("relowner", Oid),
            ("relam", Oid),
            ("relfilenode", Oid),
            ("reltablespace", Oid),
            ("relpages", Int4),
            ("reltuples", Float4),
            ("relallvisible", Int4),
            ("reltoastrelid", Oid),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Char),
            ("relkind", Char),
            ("relnatts", Int2),
            ("relchecks", Int2),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Char),
            ("relispartition", Bool),
            ("relrewrite", Oid),
            ("relacl", Text),
            ("reloptions", PgType::TextArray),
            ("relpartbound", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT r.oid, r.name, r.nsp, 0, 0, 10, CASE r.type WHEN 'table' THEN 2 ELSE 0 END,
                     0, 0, 0, -1, 0, 0,
                     -- Straight from SQLite's pragmas: the index and constraint views
                     -- would be computed for every table once per row.
                     r.type = 'table' AND (EXISTS (SELECT 1 FROM pragma_index_list(r.name))
                         OR EXISTS (SELECT 1 FROM pragma_table_info(r.name) p WHERE p.pk > 0)),
                     0, r.persistence,
                     CASE r.type WHEN 'table' THEN 'r' ELSE 'v' END,
                     CASE r.type WHEN 'table'
                         THEN (SELECT count(*) FROM __mdbc_v_columns c WHERE c.tbl = r.name)
                         ELSE (SELECT count(*) FROM pragma_table_info(r.name)) END,
                     0, r.type = 'view',
                     -- PostgreSQL enforces foreign keys with triggers on both tables, and
                     -- psql shows foreign keys only for tables that have triggers.
                     r.type = 'table' AND (
                         EXISTS (SELECT 1 FROM pragma_foreign_key_list(r.name))
                         OR EXISTS (SELECT 1 FROM __mdbc_v_rel o, pragma_foreign_key_list(o.name) f
                                    WHERE o.type = 'table' AND f."table" = r.name)),
                     0, 0, 0, 1, 'd', 0, 0, NULL, NULL, NULL
              FROM __mdbc_v_rel r
              UNION ALL
              SELECT i.indexrelid, i.relname, i.nsp, 0, 0, 10, 403, 0, 0, 0, -1, 0, 0, 0, 0,
                     i.persistence,
                     'i', i.indnatts, 0, 0, 0, 0, 0, 0, 1, 'n', 0, 0, NULL, NULL, NULL
              FROM __mdbc_v_index i
              UNION ALL
              SELECT s.oid, s.name, s.nsp, 0, 0, 10, 0, 0, 0, 0, -1, 0, 0, 0, 0, s.persistence,
                     'S', 3, 0, 0, 0, 0, 0, 0, 1, 'n', 0, 0, NULL, NULL, NULL
              FROM __mdbc_v_sequence s
              UNION ALL
              -- The system catalogs mdbc answers for, with PostgreSQL 15's fixed ids
              -- (oid, row type, file, tablespace, toast table as initdb leaves them), so
              -- that 'pg_class'::regclass and lookups by name find them.
              SELECT k.column1, k.column2, 11, k.column3, 0, 10, 2, k.column4, k.column5, 0,
                     -1, 0, k.column6, 1, k.column7, 'p', 'r', k.column8, 0, 0, 0, 0, 0, 0,
                     1, 'n', 0, 0, NULL, NULL, NULL
              FROM (VALUES
                  (1213, 'pg_tablespace', 10056, 0, 1664, 4185, 1, 5),
                  (1247, 'pg_type', 71, 0, 0, 4171, 0, 32),
                  (1249, 'pg_attribute', 75, 0, 0, 0, 0, 26),
                  (1255, 'pg_proc', 81, 0, 0, 2836, 0, 30),
                  (1259, 'pg_class', 83, 0, 0, 0, 0, 33),
                  (1261, 'pg_auth_members', 2843, 0, 1664, 0, 1, 4),
                  (1262, 'pg_database', 1248, 0, 1664, 4177, 1, 16),
                  (2224, 'pg_sequence', 10105, 2224, 0, 0, 0, 8),
                  (2601, 'pg_am', 10015, 2601, 0, 0, 0, 4),
                  (2604, 'pg_attrdef', 10001, 2604, 0, 2830, 0, 4),
                  (2606, 'pg_constraint', 10003, 2606, 0, 2832, 0, 26),
                  (2608, 'pg_depend', 10051, 2608, 0, 0, 0, 7),
                  (2609, 'pg_description', 10041, 2609, 0, 2834, 0, 4),
                  (2610, 'pg_index', 10007, 2610, 0, 0, 0, 21),
                  (2611, 'pg_inherits', 10005, 2611, 0, 0, 0, 4),
                  (2615, 'pg_namespace', 10047, 2615, 0, 4163, 0, 4),
                  (2616, 'pg_opclass', 10013, 2616, 0, 0, 0, 9),
                  (2618, 'pg_rewrite', 10035, 2618, 0, 2838, 0, 8),
                  (2620, 'pg_trigger', 10037, 2620, 0, 2336, 0, 19),
                  (3079, 'pg_extension', 10074, 3079, 0, 4147, 0, 8),
                  (3256, 'pg_policy', 10084, 3256, 0, 4167, 0, 8),
                  (3350, 'pg_partitioned_table', 10099, 3350, 0, 4165, 0, 8),
                  (3381, 'pg_statistic_ext', 10031, 3381, 0, 3439, 0, 9),
                  (3456, 'pg_collation', 10095, 3456, 0, 6175, 0, 11),
                  (3501, 'pg_enum', 10045, 3501, 0, 0, 0, 4),
                  (3541, 'pg_range', 10101, 3541, 0, 0, 0, 7),
                  (6104, 'pg_publication', 10107, 6104, 0, 0, 0, 9),
                  (6106, 'pg_publication_rel', 10111, 6106, 0, 6228, 0, 5),
                  (6237, 'pg_publication_namespace', 10109, 6237, 0, 0, 0, 3)) k"#,
        )),
    },
    View {
        name: "pg_attribute",
        columns: &[
            ("attrelid", Oid),
            ("attname", Name),
            ("atttypid", Oid),
            ("attstattarget", Int4),
            ("attlen", Int2),
            ("attnum", Int2),
            ("attndims", Int4),
            ("attcacheoff", Int4),
            ("atttypmod", Int4),
            ("attbyval", Bool),
            ("attalign", Char),
            ("attstorage", Char),
            ("attcompression", Char),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Char),
            ("attgenerated", Char),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int4),
            ("attcollation", Oid),
            ("attacl", Text),
            ("attoptions", PgType::TextArray),
            ("attfdwoptions", PgType::TextArray),
            ("attmissingval", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT a.attrelid, a.attname, a.atttypid, -1, coalesce(t.typlen, -1), a.attnum, 0,
                     -1, a.atttypmod, coalesce(t.typbyval, 0), coalesce(t.typalign, 'i'),
                     coalesce(t.typstorage, 'x'), '', a.attnotnull, a.adbin IS NOT NULL, 0, '',
                     '', 0, 1, 0, coalesce(t.typcollation, 0), NULL, NULL, NULL, NULL
              FROM __mdbc_v_column a LEFT JOIN pg_type t ON t.oid = a.atttypid"#,
        )),
    },
    View {
        name: "pg_attrdef",
        columns: &[
            ("oid", Oid),
            ("adrelid", Oid),
            ("adnum", Int2),
            ("adbin", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT CAST(5000000 + (a.attrelid - 16384) * 1000 + a.attnum AS INTEGER),
                     a.attrelid, a.attnum, a.adbin
              FROM __mdbc_v_column a WHERE a.adbin IS NOT NULL"#,
        )),
    },
    View {
        name: "pg_index",
        columns: &[
            ("indexrelid", Oid),
            ("indrelid", Oid),
            ("indnatts", Int2),
            ("indnkeyatts", Int2),
            ("indisunique", Bool),
            ("indnullsnotdistinct", Bool),
            ("indisprimary", Bool),
            ("indisexclusion", Bool),
            ("indimmediate", Bool),
            ("indisclustered", Bool),
            ("indisvalid", Bool),
            ("indcheckxmin", Bool),
            ("indisready", Bool),
            ("indislive", Bool),
            ("indisreplident", Bool),
            ("indkey", PgType::Int2Vector),
            ("indcollation", PgType::OidVector),
            ("indclass", PgType::OidVector),
            ("indoption", PgType::Int2Vector),
            ("indexprs", Text),
            ("indpred", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT i.indexrelid, i.indrelid, i.indnatts, i.indnatts, i.indisunique, 0,
                     i.indisprimary, 0, 1, 0, 1, 0, 1, 1, 0, i.indkey,
                     (SELECT json_group_array(0) FROM json_each(i.indkey)),
                     (SELECT json_group_array(0) FROM json_each(i.indkey)),
                     (SELECT json_group_array(0) FROM json_each(i.indkey)), NULL, NULL
              FROM __mdbc_v_index i"#,
        )),
    },
    View {
        name: "pg_constraint",
        columns: &[
            ("oid", Oid),
            ("conname", Name),
            ("connamespace", Oid),
            ("contype", Char),
            ("condeferrable", Bool),
            ("condeferred", Bool),
            ("convalidated", Bool),
            ("conrelid", Oid),
            ("contypid", Oid),
            ("conindid", Oid),
            ("conparentid", Oid),
            ("confrelid", Oid),
            ("confupdtype", Char),
            ("confdeltype", Char),
            ("confmatchtype", Char),
            ("conislocal", Bool),
            ("coninhcount", Int4),
            ("connoinherit", Bool),
            ("conkey", PgType::Int2Array),
            ("confkey", PgType::Int2Array),
            ("conpfeqop", PgType::OidArray),
            ("conppeqop", PgType::OidArray),
            ("conffeqop", PgType::OidArray),
            ("confdelsetcols", PgType::Int2Array),
            ("conexclop", PgType::OidArray),
            ("conbin", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT c.oid, c.conname, 2200, c.contype, 0, 0, 1, c.conrelid, 0, c.conindid, 0,
                     c.confrelid, c.confupdtype, c.confdeltype, c.confmatchtype, 1, 0, 0,
                     c.conkey, c.confkey, NULL, NULL, NULL, NULL, NULL, NULL
              FROM __mdbc_v_constraint c"#,
        )),
    },
    View {
        name: "pg_type",
        columns: &[
            ("oid", Oid),
            ("typname", Name),
            ("typnamespace", Oid),
            ("typowner", Oid),
            ("typlen", Int2),
            ("typbyval", Bool),
            ("typtype", Char),
            ("typcategory", Char),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Char),
            ("typrelid", Oid),
            ("typsubscript", Text),
            ("typelem", Oid),
            ("typarray", Oid),
            ("typinput", Text),
            ("typoutput", Text),
            ("typreceive", Text),
            ("typsend", Text),
            ("typmodin", Text),
            ("typmodout", Text),
            ("typanalyze", Text),
            ("typalign", Char),
            ("typstorage", Char),
            ("typnotnull", Bool),
            ("typbasetype", Oid),
            ("typtypmod", Int4),
            ("typndims", Int4),
            ("typcollation", Oid),
            ("typdefaultbin", Text),
            ("typdefault", Text),
            ("typacl", Text),
        ],
        body: Some(Body::Built(pg_type_rows)),
    },
    View {
        name: "pg_collation",
        columns: &[
            ("oid", Oid),
            ("collname", Name),
            ("collnamespace", Oid),
            ("collowner", Oid),
            ("collprovider", Char),
            ("collisdeterministic", Bool),
            ("collencoding", Int4),
            ("collcollate", Text),
            ("collctype", Text),
            ("colliculocale", Text),
            ("collversion", Text),
        ],
        body: Some(Body::Sql(
            "VALUES (100, 'default', 11, 10, 'd', 1, -1, NULL, NULL, NULL, NULL), \
                    (950, 'C', 11, 10, 'c', 1, -1, 'C', 'C', NULL, NULL), \
                    (951, 'POSIX', 11, 10, 'c', 1, -1, 'POSIX', 'POSIX', NULL, NULL)",
        )),
    },
    View {
        name: "pg_database",
        columns: &[
            ("oid", Oid),
            ("datname", Name),
            ("datdba", Oid),
            ("encoding", Int4),
            ("datlocprovider", Char),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int4),
            ("dattablespace", Oid),
            ("datcollate", Text),
            ("datctype", Text),
            ("daticulocale", Text),
            ("datcollversion", Text),
            ("datacl", Text),
        ],
        body: Some(Body::Sql(
            "SELECT 16383, current_database(), 10, 6, 'c', 0, 1, -1, 1663, 'C.UTF-8', \
                    'C.UTF-8', NULL, NULL, NULL",
        )),
    },
    View {
        name: "pg_roles",
        columns: &[
            ("rolname", Name),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int4),
            ("rolpassword", Text),
            ("rolvaliduntil", PgType::Timestamptz),
            ("rolbypassrls", Bool),
            ("rolconfig", PgType::TextArray),
            ("oid", Oid),
        ],
        // The session's user stands for every role mdbc knows (it may do everything a
        // client can do); pg_database_owner is there because it owns `public`.
        body: Some(Body::Sql(
            "VALUES (current_user(), 1, 1, 0, 0, 1, 0, -1, '********', NULL, 0, NULL, 10), \
                    ('pg_database_owner', 0, 1, 0, 0, 0, 0, -1, '********', NULL, 0, NULL, 6171)",
        )),
    },
    View {
        name: "pg_user",
        columns: &[
            ("usename", Name),
            ("usesysid", Oid),
            ("usecreatedb", Bool),
            ("usesuper", Bool),
            ("userepl", Bool),
            ("usebypassrls", Bool),
            ("passwd", Text),
            ("valuntil", PgType::Timestamptz),
            ("useconfig", PgType::TextArray),
        ],
        body: Some(Body::Sql(
            "SELECT current_user(), 10, 0, 1, 0, 0, '********', NULL, NULL",
        )),
    },
    View {
        name: "pg_auth_members",
        columns: &[
            ("roleid", Oid),
            ("member", Oid),
            ("grantor", Oid),
            ("admin_option", Bool),
        ],
        body: EMPTY,
    },
    // mdbc's own views of the cluster (see replication::Replication::sites_json).
    View {
        name: "mdbc_sites",
        columns: &[
            ("site", Text),
            ("address", Text),
            ("is_self", Bool),
            ("reachable", Bool),
            ("applied", PgType::Int8),
            ("lag_ms", PgType::Int8),
        ],
        body: Some(Body::Sql(
            "SELECT json_extract(value, '$.site'), json_extract(value, '$.address'), \
                    json_extract(value, '$.is_self'), json_extract(value, '$.reachable'), \
                    json_extract(value, '$.applied'), json_extract(value, '$.lag_ms') \
             FROM json_each(__mdbc_sites())",
        )),
    },
    View {
        name: "mdbc_tables",
        columns: &[
            ("table_name", Text),
            ("level", Text),
            ("domain", Text),
            ("owner", Text),
            ("log_position", PgType::Int8),
        ],
        body: Some(Body::Sql(
            "SELECT s.name, json_extract(j.value, '$.level'), json_extract(j.value, '$.domain'), \
                    json_extract(j.value, '$.owner'), json_extract(j.value, '$.position') \
             FROM main.sqlite_schema s, json_each(__mdbc_table_policy(s.name)) j \
             WHERE s.type = 'table' AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
               AND s.name NOT LIKE '\\_\\_mdbc%' ESCAPE '\\'",
        )),
    },
    View {
        name: "pg_tablespace",
        columns: &[
            ("oid", Oid),
            ("spcname", Name),
            ("spcowner", Oid),
            ("spcacl", Text),
            ("spcoptions", PgType::TextArray),
        ],
        body: Some(Body::Sql(
            "VALUES (1663, 'pg_default', 10, NULL, NULL), (1664, 'pg_global', 10, NULL, NULL)",
        )),
    },
    View {
        name: "pg_indexes",
        columns: &[
            ("schemaname", Name),
            ("tablename", Name),
            ("indexname", Name),
            ("tablespace", Name),
            ("indexdef", Text),
        ],
        body: Some(Body::Sql(
            "SELECT 'public', i.tbl, i.relname, NULL, i.indexdef FROM __mdbc_v_index i",
        )),
    },
    View {
        name: "pg_tables",
        columns: &[
            ("schemaname", Name),
            ("tablename", Name),
            ("tableowner", Name),
            ("tablespace", Name),
            ("hasindexes", Bool),
            ("hasrules", Bool),
            ("hastriggers", Bool),
            ("rowsecurity", Bool),
        ],
        body: Some(Body::Sql(
            r#"SELECT n.nspname, c.relname, current_user(), NULL, c.relhasindex,
                      c.relhasrules, c.relhastriggers, c.relrowsecurity
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p')"#,
        )),
    },
    View {
        // The definition as PostgreSQL prints it is its own deparsing of the query
        // (qualified columns, explicit casts, its layout): not reproduced, so refused
        // when read rather than answered in another form.
        name: "pg_views",
        columns: &[
            ("schemaname", Name),
            ("viewname", Name),
            ("viewowner", Name),
            ("definition", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT 'public', v.name, current_user(),
                      pg_unsupported('a view''s definition as PostgreSQL prints it (pg_views.definition)')
               FROM __mdbc_views v"#,
        )),
    },
    View {
        name: "information_schema_views",
        columns: &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("view_definition", Text),
            ("check_option", Text),
            ("is_updatable", Text),
            ("is_insertable_into", Text),
            ("is_trigger_updatable", Text),
            ("is_trigger_deletable", Text),
            ("is_trigger_insertable_into", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT current_database(), 'public', v.name,
                      pg_unsupported('a view''s definition as PostgreSQL prints it (information_schema.views.view_definition)'),
                      'NONE', 'NO', 'NO', 'NO', 'NO', 'NO'
               FROM __mdbc_views v"#,
        )),
    },
    View {
        name: "pg_sequences",
        columns: &[
            ("schemaname", Name),
            ("sequencename", Name),
            ("sequenceowner", Name),
            ("data_type", PgType::Text),
            ("start_value", PgType::Int8),
            ("min_value", PgType::Int8),
            ("max_value", PgType::Int8),
            ("increment_by", PgType::Int8),
            ("cycle", Bool),
            ("cache_size", PgType::Int8),
            ("last_value", PgType::Int8),
        ],
        body: Some(Body::Sql(
            r#"SELECT 'public', s.name, current_user(),
                      CASE s.typid WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer'
                          ELSE 'bigint' END,
                      s.start, s.minvalue, s.maxvalue, s.increment, s.cycle, s.cache,
                      pg_sequence_last_value(s.name)
               FROM __mdbc_v_sequence s"#,
        )),
    },
    View {
        name: "information_schema_sequences",
        columns: &[
            ("sequence_catalog", Name),
            ("sequence_schema", Name),
            ("sequence_name", Name),
            ("data_type", Text),
            ("numeric_precision", Int4),
            ("numeric_precision_radix", Int4),
            ("numeric_scale", Int4),
            ("start_value", Text),
            ("minimum_value", Text),
            ("maximum_value", Text),
            ("increment", Text),
            ("cycle_option", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT current_database(), 'public', s.name,
                      CASE s.typid WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer'
                          ELSE 'bigint' END,
                      CASE s.typid WHEN 21 THEN 16 WHEN 23 THEN 32 ELSE 64 END, 2, 0,
                      CAST(s.start AS TEXT), CAST(s.minvalue AS TEXT),
                      CAST(s.maxvalue AS TEXT), CAST(s.increment AS TEXT),
                      CASE WHEN s.cycle THEN 'YES' ELSE 'NO' END
               FROM __mdbc_v_sequence s"#,
        )),
    },
    View {
        name: "pg_sequence",
        columns: &[
            ("seqrelid", Oid),
            ("seqtypid", Oid),
            ("seqstart", PgType::Int8),
            ("seqincrement", PgType::Int8),
            ("seqmax", PgType::Int8),
            ("seqmin", PgType::Int8),
            ("seqcache", PgType::Int8),
            ("seqcycle", Bool),
        ],
        body: Some(Body::Sql(
            r#"SELECT s.oid, s.typid, s.start, s.increment, s.maxvalue, s.minvalue, s.cache,
                     s.cycle
              FROM __mdbc_v_sequence s"#,
        )),
    },
    View {
        name: "information_schema_schemata",
        columns: &[
            ("catalog_name", Name),
            ("schema_name", Name),
            ("schema_owner", Name),
            ("default_character_set_catalog", Name),
            ("default_character_set_schema", Name),
            ("default_character_set_name", Name),
            ("sql_path", Text),
        ],
        body: Some(Body::Sql(
            // pg_toast is not listed: clients have no privilege on it.
            "SELECT current_database(), n.nspname, pg_get_userbyid(n.nspowner), NULL, NULL, \
                    NULL, NULL FROM pg_namespace n WHERE n.nspname <> 'pg_toast'",
        )),
    },
    View {
        name: "information_schema_tables",
        columns: &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("table_type", Text),
            ("self_referencing_column_name", Name),
            ("reference_generation", Text),
            ("user_defined_type_catalog", Name),
            ("user_defined_type_schema", Name),
            ("user_defined_type_name", Name),
            ("is_insertable_into", Text),
            ("is_typed", Text),
            ("commit_action", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT current_database(),
                      CASE r.persistence WHEN 't' THEN 'pg_temp_3' ELSE 'public' END, r.name,
                      CASE WHEN r.persistence = 't' THEN 'LOCAL TEMPORARY'
                           WHEN r.type = 'table' THEN 'BASE TABLE' ELSE 'VIEW' END,
                      NULL, NULL, NULL, NULL, NULL,
                      CASE r.type WHEN 'table' THEN 'YES' ELSE 'NO' END, 'NO', NULL
               FROM __mdbc_v_rel r"#,
        )),
    },
    View {
        name: "information_schema_columns",
        columns: &[
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int4),
            ("character_octet_length", Int4),
            ("numeric_precision", Int4),
            ("numeric_precision_radix", Int4),
            ("numeric_scale", Int4),
            ("datetime_precision", Int4),
            ("interval_type", Text),
            ("interval_precision", Int4),
            ("character_set_catalog", Name),
            ("character_set_schema", Name),
            ("character_set_name", Name),
            ("collation_catalog", Name),
            ("collation_schema", Name),
            ("collation_name", Name),
            ("domain_catalog", Name),
            ("domain_schema", Name),
            ("domain_name", Name),
            ("udt_catalog", Name),
            ("udt_schema", Name),
            ("udt_name", Name),
            ("scope_catalog", Name),
            ("scope_schema", Name),
            ("scope_name", Name),
            ("maximum_cardinality", Int4),
            ("dtd_identifier", Name),
            ("is_self_referencing", Text),
            ("is_identity", Text),
            ("identity_generation", Text),
            ("identity_start", Text),
            ("identity_increment", Text),
            ("identity_maximum", Text),
            ("identity_minimum", Text),
            ("identity_cycle", Text),
            ("is_generated", Text),
            ("generation_expression", Text),
            ("is_updatable", Text),
        ],
        body: Some(Body::Sql(
            r#"SELECT current_database(), 'public', a.tbl, a.attname, a.attnum, a.adbin,
                      CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END,
                      format_type(a.atttypid, NULL),
                      CASE WHEN a.atttypid IN (1042, 1043) AND a.atttypmod >= 4
                           THEN a.atttypmod - 4 END,
                      CASE WHEN a.atttypid IN (1042, 1043) AND a.atttypmod >= 4
                               THEN (a.atttypmod - 4) * 4
                           WHEN a.atttypid IN (25, 1042, 1043) THEN 1073741824 END,
                      CASE a.atttypid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64
                           WHEN 700 THEN 24 WHEN 701 THEN 53
                           WHEN 1700 THEN CASE WHEN a.atttypmod >= 4
                                              THEN (a.atttypmod - 4) >> 16 END END,
                      CASE WHEN a.atttypid IN (21, 23, 20, 700, 701) THEN 2
                           WHEN a.atttypid = 1700 THEN 10 END,
                      CASE WHEN a.atttypid IN (21, 23, 20) THEN 0
                           WHEN a.atttypid = 1700 AND a.atttypmod >= 4
                               THEN (a.atttypmod - 4) & 65535 END,
                      CASE WHEN a.atttypid = 1082 THEN 0
                           WHEN a.atttypid IN (1083, 1114, 1184, 1186) THEN 6 END,
                      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                      current_database(), 'pg_catalog',
                      (SELECT t.typname FROM pg_type t WHERE t.oid = a.atttypid),
                      NULL, NULL, NULL, NULL, CAST(a.attnum AS TEXT), 'NO', 'NO', NULL, NULL,
                      NULL, NULL, NULL, 'NO', 'NEVER', NULL,
                      -- mdbc writes through no view.
                      CASE WHEN a.tbl IN (SELECT name FROM main.__mdbc_views) THEN 'NO'
                           ELSE 'YES' END
               FROM __mdbc_v_column a"#,
        )),
    },
    View {
        name: "information_schema_table_constraints",
        columns: &[
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("constraint_type", Text),
            ("is_deferrable", Text),
            ("initially_deferred", Text),
            ("enforced", Text),
            ("nulls_distinct", Text),
        ],
        // As in PostgreSQL 15, NOT NULL columns are listed as CHECK constraints named
        // schema-oid_table-oid_column_not_null.
        body: Some(Body::Sql(
            r#"SELECT current_database(), 'public', c.conname, current_database(), 'public',
                      r.name, CASE c.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE'
                                             WHEN 'f' THEN 'FOREIGN KEY' ELSE 'CHECK' END,
                      'NO', 'NO', 'YES', CASE WHEN c.contype = 'u' THEN 'YES' END
               FROM __mdbc_v_constraint c JOIN __mdbc_v_rel r ON r.oid = c.conrelid
               UNION ALL
               SELECT current_database(), 'public',
                      '2200_' || a.attrelid || '_' || a.attnum || '_not_null',
                      current_database(), 'public', a.tbl, 'CHECK', 'NO', 'NO', 'YES', NULL
               FROM __mdbc_v_column a WHERE a.attnotnull"#,
        )),
    },
    View {
        name: "information_schema_key_column_usage",
        columns: &[
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
            ("position_in_unique_constraint", Int4),
        ],
        body: Some(Body::Sql(
            r#"SELECT current_database(), 'public', c.conname, current_database(), 'public',
                      r.name, a.attname, k.key + 1,
                      CASE WHEN c.contype = 'f' THEN k.key + 1 END
               FROM __mdbc_v_constraint c
               JOIN __mdbc_v_rel r ON r.oid = c.conrelid
               JOIN json_each(c.conkey) k
               JOIN __mdbc_v_column a ON a.attrelid = c.conrelid AND a.attnum = k.value
               WHERE c.contype IN ('p', 'u', 'f')"#,
        )),
    },
    View {
        // The session's own settings (session.rs registers __mdbc_settings).
        name: "pg_settings",
        columns: &[
            ("name", Text),
            ("setting", Text),
            ("unit", Text),
            ("category", Text),
            ("short_desc", Text),
            ("extra_desc", Text),
            ("context", Text),
            ("vartype", Text),
            ("source", Text),
            ("min_val", Text),
            ("max_val", Text),
            ("enumvals", PgType::TextArray),
            ("boot_val", Text),
            ("reset_val", Text),
            ("sourcefile", Text),
            ("sourceline", Int4),
            ("pending_restart", Bool),
        ],
        body: Some(Body::Sql(
            "SELECT key, value, NULL, 'Client Connection Defaults', '', NULL, 'user', \
                    'string', 'default', NULL, NULL, NULL, value, value, NULL, NULL, 0 \
             FROM json_each(__mdbc_settings())",
        )),
    },
    View {
        name: "pg_description",
        columns: &[
            ("objoid", Oid),
            ("classoid", Oid),
            ("objsubid", Int4),
            ("description", Text),
        ],
        // COMMENT ON TABLE | INDEX | COLUMN, all objects of pg_class (1259).
        body: Some(Body::Sql(
            "SELECT c.oid, 1259, coalesce(a.attnum, 0), d.description \
             FROM __mdbc_comments d \
             JOIN pg_class c ON c.relname = d.rel AND c.relnamespace = 2200 \
             LEFT JOIN pg_attribute a ON d.col <> '' AND a.attrelid = c.oid \
                  AND a.attname = d.col \
             WHERE d.col = '' OR a.attnum IS NOT NULL",
        )),
    },
    View {
        name: "pg_inherits",
        columns: &[
            ("inhrelid", Oid),
            ("inhparent", Oid),
            ("inhseqno", Int4),
            ("inhdetachpending", Bool),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_partitioned_table",
        columns: &[
            ("partrelid", Oid),
            ("partstrat", Char),
            ("partnatts", Int2),
            ("partdefid", Oid),
            ("partattrs", PgType::Int2Vector),
            ("partclass", PgType::OidVector),
            ("partcollation", PgType::OidVector),
            ("partexprs", Text),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_policy",
        columns: &[
            ("oid", Oid),
            ("polname", Name),
            ("polrelid", Oid),
            ("polcmd", Char),
            ("polpermissive", Bool),
            ("polroles", PgType::OidArray),
            ("polqual", Text),
            ("polwithcheck", Text),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_trigger",
        columns: &[
            ("oid", Oid),
            ("tgrelid", Oid),
            ("tgparentid", Oid),
            ("tgname", Name),
            ("tgfoid", Oid),
            ("tgtype", Int2),
            ("tgenabled", Char),
            ("tgisinternal", Bool),
            ("tgconstrrelid", Oid),
            ("tgconstrindid", Oid),
            ("tgconstraint", Oid),
            ("tgdeferrable", Bool),
            ("tginitdeferred", Bool),
            ("tgnargs", Int2),
            ("tgattr", PgType::Int2Vector),
            ("tgargs", PgType::Bytea),
            ("tgqual", Text),
            ("tgoldtable", Name),
            ("tgnewtable", Name),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_statistic_ext",
        columns: &[
            ("oid", Oid),
            ("stxrelid", Oid),
            ("stxname", Name),
            ("stxnamespace", Oid),
            ("stxowner", Oid),
            ("stxstattarget", Int4),
            ("stxkeys", PgType::Int2Vector),
            ("stxkind", PgType::CharArray),
            ("stxexprs", Text),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_publication",
        columns: &[
            ("oid", Oid),
            ("pubname", Name),
            ("pubowner", Oid),
            ("puballtables", Bool),
            ("pubinsert", Bool),
            ("pubupdate", Bool),
            ("pubdelete", Bool),
            ("pubtruncate", Bool),
            ("pubviaroot", Bool),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_publication_rel",
        columns: &[
            ("oid", Oid),
            ("prpubid", Oid),
            ("prrelid", Oid),
            ("prqual", Text),
            ("prattrs", PgType::Int2Vector),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_publication_namespace",
        columns: &[("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)],
        body: EMPTY,
    },
    View {
        name: "pg_range",
        columns: &[
            ("rngtypid", Oid),
            ("rngsubtype", Oid),
            ("rngmultitypid", Oid),
            ("rngcollation", Oid),
            ("rngsubopc", Oid),
            ("rngcanonical", Text),
            ("rngsubdiff", Text),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_enum",
        columns: &[
            ("oid", Oid),
            ("enumtypid", Oid),
            ("enumsortorder", Float4),
            ("enumlabel", Name),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_extension",
        columns: &[
            ("oid", Oid),
            ("extname", Name),
            ("extowner", Oid),
            ("extnamespace", Oid),
            ("extrelocatable", Bool),
            ("extversion", Text),
            ("extconfig", PgType::OidArray),
            ("extcondition", PgType::TextArray),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_rewrite",
        columns: &[
            ("oid", Oid),
            ("rulename", Name),
            ("ev_class", Oid),
            ("ev_type", Char),
            ("ev_enabled", Char),
            ("is_instead", Bool),
            ("ev_qual", Text),
            ("ev_action", Text),
        ],
        body: EMPTY,
    },
    View {
        name: "pg_opclass",
        columns: &[
            ("oid", Oid),
            ("opcmethod", Oid),
            ("opcname", Name),
            ("opcnamespace", Oid),
            ("opcowner", Oid),
            ("opcfamily", Oid),
            ("opcintype", Oid),
            ("opcdefault", Bool),
            ("opckeytype", Oid),
        ],
        body: EMPTY,
    },
    View {
        // The functions mdbc runs, for clients that check whether one exists.
        name: "pg_proc",
        columns: &[
            ("oid", Oid),
            ("proname", Name),
            ("pronamespace", Oid),
            ("proowner", Oid),
            ("prolang", Oid),
            ("procost", Float4),
            ("prorows", Float4),
            ("provariadic", Oid),
            ("prosupport", Text),
            ("prokind", Char),
            ("prosecdef", Bool),
            ("proleakproof", Bool),
            ("proisstrict", Bool),
            ("proretset", Bool),
            ("provolatile", Char),
            ("proparallel", Char),
            ("pronargs", Int2),
            ("pronargdefaults", Int2),
            ("prorettype", Oid),
            ("proargtypes", PgType::OidVector),
            ("proallargtypes", PgType::OidArray),
            ("proargmodes", PgType::CharArray),
            ("proargnames", PgType::TextArray),
            ("proargdefaults", Text),
            ("protrftypes", PgType::OidArray),
            ("prosrc", Text),
            ("probin", Text),
            ("prosqlbody", Text),
            ("proconfig", PgType::TextArray),
            ("proacl", PgType::TextArray),
        ],
        body: Some(Body::Built(pg_proc_rows)),
    },
    View {
        name: "pg_depend",
        columns: &[
            ("classid", Oid),
            ("objid", Oid),
            ("objsubid", Int4),
            ("refclassid", Oid),
            ("refobjid", Oid),
            ("refobjsubid", Int4),
            ("deptype", Char),
        ],
        body: EMPTY,
    },
];

/// A base type's `pg_type` row (see [`TypeRow`]).
fn type_facts(t: PgType) -> Option<TypeRow<'static>> {
    use PgType::*;
    let (name, len, byval, cat, array, align, storage, coll) = match t {
        Bool => ("bool", 1, true, 'B', 1000, 'c', 'p', 0),
        Bytea => ("bytea", -1, false, 'U', 1001, 'i', 'x', 0),
        Char => ("char", 1, true, 'Z', 1002, 'c', 'p', 0),
        Name => ("name", 64, false, 'S', 1003, 'c', 'p', 950),
        Int8 => ("int8", 8, true, 'N', 1016, 'd', 'p', 0),
        Int2 => ("int2", 2, true, 'N', 1005, 's', 'p', 0),
        Int4 => ("int4", 4, true, 'N', 1007, 'i', 'p', 0),
        Text => ("text", -1, false, 'S', 1009, 'i', 'x', 100),
        Oid => ("oid", 4, true, 'N', 1028, 'i', 'p', 0),
        Json => ("json", -1, false, 'U', 199, 'i', 'x', 0),
        Float4 => ("float4", 4, true, 'N', 1021, 'i', 'p', 0),
        Float8 => ("float8", 8, true, 'N', 1022, 'd', 'p', 0),
        Bpchar => ("bpchar", -1, false, 'S', 1014, 'i', 'x', 100),
        Varchar => ("varchar", -1, false, 'S', 1015, 'i', 'x', 100),
        Date => ("date", 4, true, 'D', 1182, 'i', 'p', 0),
        Time => ("time", 8, true, 'D', 1183, 'd', 'p', 0),
        Timestamp => ("timestamp", 8, true, 'D', 1115, 'd', 'p', 0),
        Timestamptz => ("timestamptz", 8, true, 'D', 1185, 'd', 'p', 0),
        Interval => ("interval", 16, false, 'T', 1187, 'd', 'p', 0),
        Numeric => ("numeric", -1, false, 'N', 1231, 'i', 'm', 0),
        Uuid => ("uuid", 16, false, 'U', 2951, 'c', 'p', 0),
        Jsonb => ("jsonb", -1, false, 'U', 3807, 'i', 'x', 0),
        _ => return None,
    };
    Some((
        t.oid(),
        name,
        len,
        byval,
        cat,
        0,
        array,
        align,
        storage,
        coll,
    ))
}

/// Every type mdbc stores, in OID order.
pub const ALL_TYPES: &[PgType] = &[
    PgType::Bool,
    PgType::Bytea,
    PgType::Char,
    PgType::Name,
    PgType::Int8,
    PgType::Int2,
    PgType::Int4,
    PgType::Text,
    PgType::Oid,
    PgType::Json,
    PgType::Float4,
    PgType::Float8,
    PgType::Bpchar,
    PgType::Varchar,
    PgType::Date,
    PgType::Time,
    PgType::Timestamp,
    PgType::Timestamptz,
    PgType::Interval,
    PgType::Numeric,
    PgType::Uuid,
    PgType::Jsonb,
];

/// Types that only the catalogs use (mdbc stores none of them in tables): (oid, name,
/// length, by value, category, array).
const CATALOG_TYPES: &[(u32, &str, i32, bool, char, u32)] = &[
    (22, "int2vector", -1, false, 'A', 1006),
    (24, "regproc", 4, true, 'N', 1008),
    (30, "oidvector", -1, false, 'A', 1013),
    (705, "unknown", -2, false, 'X', 0),
    (2205, "regclass", 4, true, 'N', 2210),
    (2206, "regtype", 4, true, 'N', 2211),
    (4089, "regnamespace", 4, true, 'N', 4090),
];

/// The name `format_type` gives a catalog-only type.
pub fn catalog_type_name(oid: u32) -> Option<&'static str> {
    CATALOG_TYPES.iter().find(|t| t.0 == oid).map(|t| t.1)
}

/// Functions listed in pg_proc: name, argument count, result type, kind (`f`unction,
/// `a`ggregate, `w`indow), volatility (`i`mmutable, `s`table, `v`olatile).
const FUNCTIONS: &[(&str, i16, u32, char, char)] = &[
    ("abs", 1, 1700, 'f', 'i'),
    ("array_agg", 1, 2277, 'a', 'i'),
    ("array_length", 2, 23, 'f', 'i'),
    ("array_position", 2, 23, 'f', 'i'),
    ("array_to_string", 2, 25, 'f', 's'),
    ("ascii", 1, 23, 'f', 'i'),
    ("avg", 1, 1700, 'a', 'i'),
    ("bool_and", 1, 16, 'a', 'i'),
    ("bool_or", 1, 16, 'a', 'i'),
    ("btrim", 2, 25, 'f', 'i'),
    ("ceil", 1, 1700, 'f', 'i'),
    ("char_length", 1, 23, 'f', 'i'),
    ("chr", 1, 25, 'f', 'i'),
    ("coalesce", 2, 2283, 'f', 'i'),
    ("concat", 2, 25, 'f', 's'),
    ("concat_ws", 3, 25, 'f', 's'),
    ("count", 1, 20, 'a', 'i'),
    ("currval", 1, 20, 'f', 'v'),
    ("current_database", 0, 19, 'f', 's'),
    ("current_schema", 0, 19, 'f', 's'),
    ("current_schemas", 1, 1003, 'f', 's'),
    ("current_setting", 1, 25, 'f', 's'),
    ("dense_rank", 0, 20, 'w', 'i'),
    ("exp", 1, 701, 'f', 'i'),
    ("floor", 1, 1700, 'f', 'i'),
    ("format", 2, 25, 'f', 's'),
    ("format_type", 2, 25, 'f', 's'),
    ("gen_random_uuid", 0, 2950, 'f', 'v'),
    ("generate_series", 2, 23, 'f', 'i'),
    ("generate_subscripts", 2, 23, 'f', 'i'),
    ("greatest", 2, 2283, 'f', 'i'),
    ("has_table_privilege", 2, 16, 'f', 's'),
    ("initcap", 1, 25, 'f', 'i'),
    ("json_agg", 1, 114, 'a', 's'),
    ("json_build_object", 2, 114, 'f', 's'),
    ("lag", 1, 2283, 'w', 'i'),
    ("lastval", 0, 20, 'f', 'v'),
    ("lead", 1, 2283, 'w', 'i'),
    ("least", 2, 2283, 'f', 'i'),
    ("left", 2, 25, 'f', 'i'),
    ("length", 1, 23, 'f', 'i'),
    ("ln", 1, 701, 'f', 'i'),
    ("lower", 1, 25, 'f', 'i'),
    ("lpad", 3, 25, 'f', 'i'),
    ("ltrim", 1, 25, 'f', 'i'),
    ("max", 1, 2283, 'a', 'i'),
    ("md5", 1, 25, 'f', 'i'),
    ("min", 1, 2283, 'a', 'i'),
    ("mod", 2, 23, 'f', 'i'),
    ("nextval", 1, 20, 'f', 'v'),
    ("now", 0, 1184, 'f', 's'),
    ("nullif", 2, 2283, 'f', 'i'),
    ("obj_description", 2, 25, 'f', 's'),
    ("pg_backend_pid", 0, 23, 'f', 's'),
    ("pg_get_constraintdef", 2, 25, 'f', 's'),
    ("pg_get_expr", 2, 25, 'f', 's'),
    ("pg_get_indexdef", 1, 25, 'f', 's'),
    ("pg_get_serial_sequence", 2, 25, 'f', 's'),
    ("pg_get_userbyid", 1, 19, 'f', 's'),
    ("pg_table_is_visible", 1, 16, 'f', 's'),
    ("power", 2, 701, 'f', 'i'),
    ("quote_ident", 1, 25, 'f', 'i'),
    ("quote_literal", 1, 25, 'f', 'i'),
    ("random", 0, 701, 'f', 'v'),
    ("rank", 0, 20, 'w', 'i'),
    ("repeat", 2, 25, 'f', 'i'),
    ("replace", 3, 25, 'f', 'i'),
    ("reverse", 1, 25, 'f', 'i'),
    ("right", 2, 25, 'f', 'i'),
    ("round", 1, 1700, 'f', 'i'),
    ("row_number", 0, 20, 'w', 'i'),
    ("rpad", 3, 25, 'f', 'i'),
    ("rtrim", 1, 25, 'f', 'i'),
    ("setval", 2, 20, 'f', 'v'),
    ("sign", 1, 1700, 'f', 'i'),
    ("split_part", 3, 25, 'f', 'i'),
    ("sqrt", 1, 701, 'f', 'i'),
    ("string_agg", 2, 25, 'a', 'i'),
    ("strpos", 2, 23, 'f', 'i'),
    ("substr", 3, 25, 'f', 'i'),
    ("sum", 1, 1700, 'a', 'i'),
    ("to_hex", 1, 25, 'f', 'i'),
    ("to_regclass", 1, 2205, 'f', 's'),
    ("to_regtype", 1, 2206, 'f', 's'),
    ("trunc", 1, 1700, 'f', 'i'),
    ("unnest", 1, 2283, 'f', 'i'),
    ("upper", 1, 25, 'f', 'i'),
    ("version", 0, 25, 'f', 's'),
];

fn pg_proc_rows() -> String {
    let rows: Vec<String> = FUNCTIONS
        .iter()
        .enumerate()
        .map(|(i, (name, nargs, ret, kind, volatile))| {
            format!(
                "({oid}, '{name}', 11, 10, 12, 1, 0, 0, NULL, '{kind}', 0, 0, 1, {set}, \
                 '{volatile}', 's', {nargs}, 0, {ret}, '[]', NULL, NULL, NULL, NULL, NULL, \
                 '{name}', NULL, NULL, NULL, NULL)",
                oid = 9000 + i,
                set = matches!(*name, "generate_series" | "generate_subscripts" | "unnest") as i32,
            )
        })
        .collect();
    format!("VALUES {}", rows.join(", "))
}

/// A `pg_type` row: oid, name, length, by value, category, element, array, alignment,
/// storage, collation.
type TypeRow<'a> = (u32, &'a str, i32, bool, char, u32, u32, char, char, u32);

fn pg_type_rows() -> String {
    let mut rows: Vec<TypeRow> = ALL_TYPES.iter().filter_map(|&t| type_facts(t)).collect();
    for &(oid, name, len, byval, cat, array) in CATALOG_TYPES {
        rows.push((oid, name, len, byval, cat, 0, array, 'i', 'p', 0));
    }
    // The array types of the base types, named as PostgreSQL names them (`_int4`).
    let arrays: Vec<(u32, String, u32, u32)> = rows
        .iter()
        .filter(|r| r.6 != 0)
        .map(|r| (r.6, format!("_{}", r.1), r.0, r.9))
        .collect();
    let mut values: Vec<String> = Vec::new();
    let mut push = |(oid, name, len, byval, cat, elem, array, align, storage, coll): TypeRow| {
        let preferred = matches!(
            name,
            "bool" | "text" | "float8" | "oid" | "timestamptz" | "interval"
        );
        let io = name.trim_start_matches('_');
        let io = if name.starts_with('_') { "array" } else { io };
        values.push(format!(
            "({oid}, '{name}', 11, 10, {len}, {byval}, 'b', '{cat}', {pref}, 1, ',', 0, \
             {sub}, {elem}, {array}, '{io}_in', '{io}_out', '{io}_recv', '{io}_send', NULL, \
             NULL, NULL, '{align}', '{storage}', 0, 0, -1, 0, {coll}, NULL, NULL, NULL)",
            byval = byval as i32,
            pref = preferred as i32,
            sub = if elem != 0 {
                "'array_subscript_handler'"
            } else {
                "NULL"
            },
        ));
    };
    for r in &rows {
        push(*r);
    }
    for (oid, name, elem, coll) in &arrays {
        push((*oid, name, -1, false, 'A', *elem, 0, 'i', 'x', *coll));
    }
    format!("VALUES {}", values.join(", "))
}

fn view_sql(v: &View) -> String {
    let cols = v
        .columns
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let body = match &v.body {
        Some(Body::Sql(s)) => s.to_string(),
        Some(Body::Built(f)) => f(),
        None => format!(
            "SELECT {} WHERE 0",
            vec!["NULL"; v.columns.len()].join(", ")
        ),
    };
    format!("CREATE VIEW {} ({cols}) AS {body};\n", v.name)
}

/// Each catalog view's name and the statement creating it, helpers first.
fn statements() -> &'static [(String, String)] {
    static SQL: OnceLock<Vec<(String, String)>> = OnceLock::new();
    SQL.get_or_init(|| {
        let mut out: Vec<(String, String)> = HELPERS
            .iter()
            .map(|(name, body)| (name.to_string(), format!("CREATE VIEW {name} AS {body};\n")))
            .collect();
        // pg_type first: pg_attribute reads it.
        let mut views: Vec<&View> = VIEWS.iter().collect();
        views.sort_by_key(|v| v.name != "pg_type");
        out.extend(views.into_iter().map(|v| (v.name.to_string(), view_sql(v))));
        out
    })
}

/// The offset of a temporary relation's row in SQLite's `temp` schema, so that its oid
/// (16384 plus the row) is not a shared relation's.
const TEMP_ROWS: i64 = 4_000_000;

/// The SQL giving a session's connection its own view of the catalogs once it has
/// temporary tables: the two base helpers shadowed by temporary views that add the
/// `temp` schema's tables and indexes (schema `pg_temp_3`, persistence `t`) and the
/// columns the session records in `temp.__mdbc_temp_columns`, then every other catalog
/// view recreated as a temporary view, which reads the shadows (SQLite resolves a name
/// in `temp` first). Shared views cannot read `temp`; other sessions see nothing of it.
pub fn temporary_overlay() -> String {
    let mut sql = format!(
        // The columns of __mdbc_columns, spelled out: copying them with CREATE … AS
        // SELECT would read `main`, and a read there pins the transaction's snapshot of it
        // (a later write after another site's change would then fail with 40001).
        "CREATE TEMP TABLE IF NOT EXISTS __mdbc_temp_columns (tbl TEXT NOT NULL, \
             col TEXT NOT NULL, ordinal INTEGER NOT NULL, pg_type INTEGER NOT NULL, \
             typmod INTEGER NOT NULL, serial INTEGER NOT NULL, not_null INTEGER NOT NULL, \
             pg_default TEXT, PRIMARY KEY (tbl, col)) WITHOUT ROWID;\n\
         CREATE TEMP VIEW __mdbc_v_schema AS \
             SELECT rowid AS rowid, type, name, tbl_name, sql, 2200 AS nsp, 'p' AS persistence \
             FROM main.sqlite_schema \
             UNION ALL SELECT rowid + {TEMP_ROWS}, type, name, tbl_name, sql, 16383, 't' \
             FROM temp.sqlite_temp_schema \
             WHERE name NOT LIKE '\\_\\_mdbc%' ESCAPE '\\' \
               AND name NOT LIKE '\\_mdbc\\_with\\_%' ESCAPE '\\';\n\
         CREATE TEMP VIEW __mdbc_v_columns AS \
             SELECT * FROM main.__mdbc_columns UNION ALL SELECT * FROM temp.__mdbc_temp_columns;\n"
    );
    for (name, stmt) in statements() {
        if name == "__mdbc_v_schema" || name == "__mdbc_v_columns" {
            continue;
        }
        if let Some(body) = stmt.strip_prefix("CREATE VIEW ") {
            sql.push_str("CREATE TEMP VIEW ");
            sql.push_str(body);
        }
    }
    sql
}

/// Recreates the catalog views unless those in the file were made from the same SQL.
/// Runs in its own transaction at open, before any session. A user table that has a
/// catalog view's name (an older mdbc allowed it) keeps it: that view is left out, with a
/// warning, instead of the server refusing to start.
pub fn refresh(conn: &Connection) -> rusqlite::Result<()> {
    let tables: std::collections::HashSet<String> = {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<_>>()?
    };
    let mut sql = String::new();
    for (name, stmt) in statements() {
        if tables.contains(name) {
            tracing::warn!(
                "table \"{name}\" hides the catalog view of that name; clients that read \
                 it get the table"
            );
        } else {
            sql.push_str(stmt);
        }
    }
    let current: Option<String> = conn
        .query_row(
            "SELECT value FROM __mdbc_meta WHERE key = 'pg_catalog_views'",
            [],
            |r| r.get(0),
        )
        .ok();
    if current.as_deref() == Some(sql.as_str()) {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let old: Vec<String> = {
            let mut stmt = conn.prepare(
                r#"SELECT name FROM sqlite_schema WHERE type = 'view'
                  AND (name LIKE 'pg\_%' ESCAPE '\' OR name LIKE '\_\_mdbc\_v\_%' ESCAPE '\'
                       OR name LIKE 'information\_schema\_%' ESCAPE '\'
                       OR name IN ('mdbc_sites', 'mdbc_tables'))
                  AND name NOT IN (SELECT name FROM __mdbc_views)"#,
            )?;
            let names = stmt.query_map([], |r| r.get(0))?;
            names.collect::<rusqlite::Result<_>>()?
        };
        for name in old {
            conn.execute_batch(&format!(
                "DROP VIEW IF EXISTS {}",
                sql_capture::quote_ident(&name)
            ))?;
        }
        conn.execute_batch(&sql)?;
        conn.execute(
            "INSERT OR REPLACE INTO __mdbc_meta (key, value) VALUES ('pg_catalog_views', ?1)",
            [&sql],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The views' column types, for the translation catalog.
pub fn relations() -> SystemRelations {
    static RELS: OnceLock<SystemRelations> = OnceLock::new();
    RELS.get_or_init(|| {
        let mut map = HashMap::new();
        for v in VIEWS {
            let def = TableDef {
                name: v.name.to_string(),
                columns: v
                    .columns
                    .iter()
                    .map(|&(name, ty)| ColumnInfo::plain(name, ty))
                    .collect(),
            };
            map.insert(
                v.name.to_string(),
                SystemRelation {
                    def: Arc::new(def),
                    always_empty: v.body.is_none(),
                },
            );
        }
        Arc::new(map)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&conn).unwrap();
        crate::store::register_catalog_functions(&conn, "tester", "mdbc").unwrap();
        conn.create_scalar_function(
            "__mdbc_settings",
            0,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8,
            |_| Ok(r#"{"work_mem":"4MB"}"#),
        )
        .unwrap();
        crate::store::register_single_site_functions(&conn).unwrap();
        crate::store::register_sequence_functions(&conn).unwrap();
        refresh(&conn).unwrap();
        conn
    }

    #[test]
    fn every_view_has_the_declared_columns() {
        let conn = store();
        for v in VIEWS {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {}", v.name)).unwrap();
            let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
            let declared: Vec<&str> = v.columns.iter().map(|c| c.0).collect();
            assert_eq!(names, declared, "{}", v.name);
            // Every view runs.
            let mut rows = stmt.query([]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
    }

    #[test]
    fn pg_type_lists_every_stored_type_under_its_oid() {
        let conn = store();
        for &t in ALL_TYPES {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM pg_type WHERE oid = ?1",
                    [t.oid() as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{t:?}");
        }
    }

    #[test]
    fn a_user_table_with_a_catalog_name_keeps_the_server_starting() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&conn).unwrap();
        conn.execute_batch("CREATE TABLE pg_index (x int)").unwrap();
        refresh(&conn).unwrap();
        let kind: String = conn
            .query_row(
                "SELECT type FROM sqlite_schema WHERE name = 'pg_index'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "table");
        let views: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = 'pg_class'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(views, 1);
    }

    #[test]
    fn refresh_is_idempotent_and_replaces_stale_views() {
        let conn = store();
        conn.execute_batch(
            "DROP VIEW pg_am; CREATE VIEW pg_am AS SELECT 1 AS stale; \
             UPDATE __mdbc_meta SET value = 'old' WHERE key = 'pg_catalog_views'",
        )
        .unwrap();
        refresh(&conn).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM pg_am WHERE amname = 'btree'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        refresh(&conn).unwrap();
    }
}
