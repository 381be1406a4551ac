-- Index definitions as pg_get_indexdef prints them, rendered from the CREATE INDEX the
-- client sent (SQLite keeps only its own rewritten text): cols and pretty_cols are JSON
-- arrays of each column's text in PostgreSQL's plain and pretty spellings, opts a JSON
-- array of each column's ordering (" DESC", ...), pred and pretty_pred a partial index's
-- predicate. Indexes created before this table existed have no row; the catalog then
-- builds the text from SQLite's schema.
CREATE TABLE IF NOT EXISTS __mdbc_indexes (
    name         TEXT PRIMARY KEY,
    tbl          TEXT NOT NULL,
    cols         TEXT NOT NULL,
    opts         TEXT NOT NULL,
    pred         TEXT,
    pretty_cols  TEXT NOT NULL,
    pretty_pred  TEXT
) WITHOUT ROWID;
