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
