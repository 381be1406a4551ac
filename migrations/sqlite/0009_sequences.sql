-- CREATE SEQUENCE: each sequence's definition, written by the DDL every site replays from
-- the schema log. The values handed out are each site's own (mdbc-server's Sequences,
-- with a reservation file beside the database), never rows here: a value must not come
-- back when a transaction that drew it rolls back.
CREATE TABLE IF NOT EXISTS __mdbc_sequences (
    name       TEXT PRIMARY KEY,
    typid      INTEGER NOT NULL,
    start      INTEGER NOT NULL,
    increment  INTEGER NOT NULL,
    minvalue   INTEGER NOT NULL,
    maxvalue   INTEGER NOT NULL,
    cache      INTEGER NOT NULL,
    cycle      INTEGER NOT NULL,
    owned_tbl  TEXT,
    owned_col  TEXT
);
