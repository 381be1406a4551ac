-- mdbc's own catalog inside each site's SQLite file.
-- __mdbc_columns keeps the PostgreSQL type each column was declared with; SQLite itself
-- only knows an affinity. Applied once, recorded in PRAGMA user_version.
CREATE TABLE IF NOT EXISTS __mdbc_columns (
    tbl      TEXT    NOT NULL,
    col      TEXT    NOT NULL,
    ordinal  INTEGER NOT NULL,
    pg_type  INTEGER NOT NULL,   -- pg_type OID
    typmod   INTEGER NOT NULL,   -- atttypmod, -1 when none
    serial   INTEGER NOT NULL,   -- filled from a sequence when omitted
    not_null INTEGER NOT NULL,
    PRIMARY KEY (tbl, col)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS __mdbc_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
