-- COMMENT ON TABLE | COLUMN | INDEX: the description of a relation (col = '') or of one of
-- its columns, by name; pg_description gives them their object ids. Written by the DDL
-- each site replays from the schema log, like the other catalog tables.
CREATE TABLE IF NOT EXISTS __mdbc_comments (
    rel          TEXT NOT NULL,
    col          TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL,
    PRIMARY KEY (rel, col)
) WITHOUT ROWID;
