\echo '-- list tables'
\dt
\echo '-- list tables matching b*'
\dt b*
\echo '-- list schemas'
\dn
