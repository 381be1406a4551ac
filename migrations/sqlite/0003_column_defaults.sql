-- Each column's default as PostgreSQL prints it (pg_attrdef, psql's \d): SQLite keeps
-- only its own translation of the expression.
ALTER TABLE __mdbc_columns ADD COLUMN pg_default TEXT;
