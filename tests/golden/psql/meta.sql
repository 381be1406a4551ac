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
