-- Replication state (multi-site mdbc).
--
-- The clock of the last image applied to each replicated row, kept after a delete as the
-- row's tombstone; key is the row's primary-key values, encoded.
CREATE TABLE IF NOT EXISTS __mdbc_row_clock (
    tbl   TEXT NOT NULL,
    key   BLOB NOT NULL,
    hlc   INTEGER NOT NULL,
    site  INTEGER NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

-- This site's log: every committed transaction's entry, written in the transaction
-- itself, so a crash between commit and shipping loses nothing.
CREATE TABLE IF NOT EXISTS __mdbc_site_log (
    seq    INTEGER PRIMARY KEY,
    entry  BLOB NOT NULL
);

-- How far this site has applied each log ('site:<id>', 'domain:<name>'), updated in the
-- transaction that applies an entry, so replay after a crash is idempotent.
CREATE TABLE IF NOT EXISTS __mdbc_applied (
    log  TEXT PRIMARY KEY,
    pos  INTEGER NOT NULL
) WITHOUT ROWID;
