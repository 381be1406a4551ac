-- The embedded MUSIC data store: one node's replica of the key space.

-- The newest version of each key, by last-writer-wins on (epoch, hlc, node).
CREATE TABLE music_values (
    key    TEXT PRIMARY KEY,
    value  BLOB NOT NULL,
    epoch  INTEGER NOT NULL,
    hlc    INTEGER NOT NULL,
    node   INTEGER NOT NULL,
    -- hash(key) mod 256, for anti-entropy digests
    bucket INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX music_values_bucket ON music_values (bucket, key);

-- The highest lock ref seen per key: critical writes fenced by an older ref are refused.
CREATE TABLE music_fences (
    key   TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
) WITHOUT ROWID;

-- Keys whose newest value a peer has not acknowledged (hinted hand-off).
CREATE TABLE music_hints (
    peer INTEGER NOT NULL,
    key  TEXT NOT NULL,
    PRIMARY KEY (peer, key)
) WITHOUT ROWID;
