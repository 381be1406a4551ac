-- Placeholder kept so that data directories keep their numbering: the pg_catalog views
-- that this step once created are now code (mdbc-server/src/pg_catalog.rs), recreated by
-- the server whenever their SQL changes.
SELECT 1;
