-- CREATE VIEW: SQLite holds each view's translation; this table says which SQLite views
-- are the user's, the query as it was written, and the relations it names (JSON array),
-- for DROP … CASCADE and for syncing strong tables read through a view. The view's
-- columns are in __mdbc_columns, typed as for a table.
CREATE TABLE IF NOT EXISTS __mdbc_views (
    name     TEXT PRIMARY KEY,
    query    TEXT NOT NULL,
    depends  TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
