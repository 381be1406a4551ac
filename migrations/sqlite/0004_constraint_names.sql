-- Constraint names as the client gave them (CONSTRAINT x UNIQUE …): SQLite keeps them
-- only inside its CREATE TABLE text. kind: p(rimary key), u(nique), f(oreign key);
-- cols: a JSON array of the constrained columns, which is how the pg_catalog views find
-- the index or foreign key a name belongs to.
CREATE TABLE IF NOT EXISTS __mdbc_constraints (
    tbl   TEXT NOT NULL,
    name  TEXT NOT NULL,
    kind  TEXT NOT NULL,
    cols  TEXT NOT NULL,
    PRIMARY KEY (tbl, name)
) WITHOUT ROWID;
