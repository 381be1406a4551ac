\echo '-- list tables'
\dt
\echo '-- list tables matching b*'
\dt b*
\echo '-- list schemas'
\dn
\echo '-- list relations'
\d
\echo '-- list indexes'
\di
\echo '-- describe books'
\d books
\echo '-- describe authors'
\d authors
\echo '-- describe audit_log'
\d audit_log
\echo '-- describe tags'
\d tags
\echo '-- list sequences'
\ds
\echo '-- list views'
\dv
\echo '-- describe a view'
\d title_list
\echo '-- expanded display'
\x
select relname, relkind from pg_class where relname = 'books';
\x
\echo '-- pgbench partition check'
select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'books' and o.n is not null group by 1, 2 order by 1 asc limit 1;
\echo '-- tokio-postgres type lookup'
SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, n.nspname, t.typrelid FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1043;
\echo '-- SQLAlchemy hstore lookup'
SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'hstore';
\echo '-- regclass and format_type'
select 'books'::regclass::text, pg_catalog.format_type('numeric'::regtype, 655366), to_regclass('nope') is null;
\echo '-- information_schema'
select table_name, table_type, is_insertable_into from information_schema.tables where table_schema = 'public' order by 1;
select table_name, column_name, ordinal_position, column_default, is_nullable, data_type, character_maximum_length, character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale, datetime_precision, udt_name, is_identity, is_generated, is_updatable from information_schema.columns where table_schema = 'public' order by 1, 3;
select constraint_name, table_name, constraint_type, is_deferrable, nulls_distinct from information_schema.table_constraints where table_schema = 'public' and constraint_type <> 'CHECK' order by 2, 1;
select table_name, count(*) from information_schema.table_constraints where table_schema = 'public' and constraint_type = 'CHECK' group by 1 order by 1;
select constraint_name, table_name, column_name, ordinal_position, position_in_unique_constraint from information_schema.key_column_usage where table_schema = 'public' order by 2, 1, 4;
select catalog_name, schema_name from information_schema.schemata order by 2;
\echo '-- tab completion: relations and columns'
SELECT c.relname, NULL::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'S', 'v', 'm', 'f', 'p') AND (c.relname) LIKE 'bo%' AND pg_catalog.pg_table_is_visible(c.oid) AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog') UNION ALL SELECT NULL::pg_catalog.text, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname LIKE 'bo%' AND n.nspname NOT LIKE E'pg\\_%' LIMIT 1000;
SELECT a.attname, NULL::pg_catalog.text FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c WHERE c.oid = a.attrelid AND a.attnum > 0 AND NOT a.attisdropped AND (a.attname) LIKE 'ti%' AND (c.relname='books' OR c.oid = 0) ORDER BY 1 LIMIT 1000;
\echo '-- unique indexes'
SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c, pg_catalog.pg_index i WHERE c.oid = i.indexrelid AND i.indisunique AND c.relnamespace = 'public'::regnamespace ORDER BY 1;
