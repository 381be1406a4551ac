-- PostgreSQL's system catalogs, as views over SQLite's schema and mdbc's own catalog, so
-- that psql's meta-commands and ORMs' introspection find what they look for. Queries name
-- them with or without the `pg_catalog.` prefix (translation drops it). Object ids: the
-- fixed ones PostgreSQL gives its built-in schemas; a table's is 16384 + its row in
-- sqlite_schema (stable until the table is rebuilt by an ALTER).
-- Owners: 10 stands for the session's user (pg_get_userbyid answers current_user), 6171
-- is pg_database_owner, which owns `public` as in PostgreSQL 15.
CREATE VIEW pg_namespace (oid, nspname, nspowner, nspacl) AS
    VALUES (11, 'pg_catalog', 10, NULL),
           (99, 'pg_toast', 10, NULL),
           (2200, 'public', 6171, NULL),
           (13000, 'information_schema', 10, NULL);

CREATE VIEW pg_am (oid, amname, amhandler, amtype) AS
    VALUES (2, 'heap', 'heap_tableam_handler', 't'),
           (403, 'btree', 'bthandler', 'i');

CREATE VIEW pg_class AS
    SELECT s.rowid + 16384 AS oid,
           s.name AS relname,
           2200 AS relnamespace,
           0 AS reltype,
           0 AS reloftype,
           10 AS relowner,
           CASE s.type WHEN 'table' THEN 2 WHEN 'index' THEN 403 ELSE 0 END AS relam,
           0 AS relfilenode,
           0 AS reltablespace,
           -1 AS reltuples,
           CASE WHEN s.type = 'table' AND EXISTS (
               SELECT 1 FROM sqlite_schema i WHERE i.type = 'index' AND i.tbl_name = s.name)
               THEN 1 ELSE 0 END AS relhasindex,
           0 AS relisshared,
           'p' AS relpersistence,
           CASE s.type WHEN 'table' THEN 'r' WHEN 'index' THEN 'i' ELSE 'v' END AS relkind,
           (SELECT count(*) FROM __mdbc_columns c WHERE c.tbl = s.name) AS relnatts,
           0 AS relchecks,
           0 AS relhasrules,
           0 AS relhastriggers,
           0 AS relhassubclass,
           0 AS relrowsecurity,
           0 AS relforcerowsecurity,
           'd' AS relreplident,
           0 AS relispartition,
           NULL AS reloptions,
           NULL AS relacl,
           NULL AS relpartbound
    FROM sqlite_schema s
    WHERE s.type IN ('table', 'index', 'view')
      AND s.name NOT LIKE 'sqlite\_%' ESCAPE '\'
      AND s.name NOT LIKE '\_\_mdbc%' ESCAPE '\'
      AND NOT (s.type = 'view' AND s.name LIKE 'pg\_%' ESCAPE '\');
