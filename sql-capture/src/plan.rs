//! What planning a statement produces: the commands the server runs, the SQLite
//! statements of a plan, and the catalog changes and table rebuilds DDL carries. Plain data,
//! shared by the planner (`translate`, `ddl`) and the server that executes it.

use crate::catalog::{ColumnInfo, TableDef};
use crate::types::PgType;

/// Whether a statement reads, writes rows, or changes the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    /// Reads only.
    Read,
    /// Writes rows (needs the write lock).
    Write,
    /// Changes the schema (needs the write lock and a catalog refresh).
    Ddl,
}

/// The command tag a statement completes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTag {
    /// `SELECT n`
    Select,
    /// `INSERT 0 n`
    Insert,
    /// `UPDATE n`
    Update,
    /// `DELETE n`
    Delete,
    /// A fixed tag such as `CREATE TABLE`.
    Fixed(&'static str),
}

/// EXPLAIN [ANALYZE] of a statement: its plan, and what the output needs to know that
/// SQLite's query plan does not say.
#[derive(Debug, Clone)]
pub struct ExplainPlan {
    /// The statement explained.
    pub plan: SqlPlan,
    /// ANALYZE: run it and report its actual time and rows.
    pub analyze: bool,
    /// FORMAT JSON (else text).
    pub json: bool,
    /// The query aggregates (an Aggregate node on top, as PostgreSQL shows it).
    pub aggregate: bool,
    /// The query has LIMIT/OFFSET/FETCH (a Limit node on top).
    pub limit: bool,
}

/// A statement SQLite runs.
#[derive(Debug, Clone)]
pub struct SqlPlan {
    /// Read, write or DDL.
    pub kind: StmtKind,
    /// SQLite statements to run in order; rows (if any) come from the last one.
    pub sql: Vec<String>,
    /// Completion tag.
    pub tag: CommandTag,
    /// Whether the last statement returns rows (SELECT, or RETURNING).
    pub returns_rows: bool,
    /// Inferred type of each `$n` parameter (index n-1); `None` where nothing tells.
    pub param_types: Vec<Option<PgType>>,
    /// Inferred type of each result column where the projection tells it.
    pub columns: Vec<ResultColumn>,
    /// Tables the statement writes (what replication will capture).
    pub writes: Vec<String>,
    /// Tables a query reads (strong tables make a site sync before reading them).
    pub reads: Vec<String>,
    /// Catalog rows to write in the same transaction.
    pub catalog: Vec<CatalogChange>,
    /// A table rebuild the executor must perform (ALTER TABLE … ADD PRIMARY KEY).
    pub rebuild: Option<TableRebuild>,
    /// Planned by shape ([`plan_shape`]): the client's literals are the parameters
    /// `?1..?n` of the (single) SQLite statement, bound from the query text at each run.
    pub literals: usize,
    /// A statement on the session's temporary objects: run on its own connection only,
    /// never replicated, never written to mdbc's catalog.
    pub temporary: Option<TempEffect>,
}

impl Command {
    /// A DDL statement: SQLite statements run in order, then catalog changes written in
    /// the same transaction.
    pub(crate) fn ddl(sql: Vec<String>, tag: &'static str, catalog: Vec<CatalogChange>) -> Command {
        Command::Sql(Box::new(SqlPlan {
            kind: StmtKind::Ddl,
            sql,
            tag: CommandTag::Fixed(tag),
            returns_rows: false,
            param_types: Vec::new(),
            columns: Vec::new(),
            writes: Vec::new(),
            reads: Vec::new(),
            catalog,
            rebuild: None,
            literals: 0,
            temporary: None,
        }))
    }
}

/// What a statement on temporary objects changes in the session's view of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TempEffect {
    /// CREATE TEMPORARY TABLE.
    CreateTable(TableDef),
    /// DROP TABLE of temporary tables.
    DropTables(Vec<String>),
    /// CREATE INDEX on a temporary table.
    CreateIndex(String),
    /// DROP INDEX of indexes on temporary tables.
    DropIndexes(Vec<String>),
}

/// COPY's data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Tab-separated with `\N` for NULL.
    Text,
    /// Comma-separated values.
    Csv,
}

/// A `COPY … FROM STDIN` or `COPY … TO STDOUT`.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Target table.
    pub table: String,
    /// Columns named in the statement (empty: all).
    pub columns: Vec<String>,
    /// FROM STDIN (true) or TO STDOUT (false).
    pub from_stdin: bool,
    /// Data format.
    pub format: CopyFormat,
    /// Field delimiter.
    pub delimiter: char,
    /// NULL marker.
    pub null: String,
    /// CSV: the first line is a header.
    pub header: bool,
    /// CSV quote character.
    pub quote: char,
    /// CSV escape character (the quote character unless ESCAPE says otherwise).
    pub escape: char,
    /// CSV FORCE_QUOTE: these columns' non-NULL values are always quoted (`Some(empty)`:
    /// every column, `FORCE_QUOTE *`).
    pub force_quote: Option<Vec<String>>,
    /// CSV FORCE_NOT_NULL: in these columns the NULL string is a value, not NULL.
    pub force_not_null: Vec<String>,
    /// CSV FORCE_NULL: in these columns the NULL string is NULL even quoted.
    pub force_null: Vec<String>,
    /// `COPY (query) TO STDOUT`: the query, translated (the table is then empty).
    pub query: Option<CopyQuery>,
}

/// The query of `COPY (query) TO STDOUT`.
#[derive(Debug, Clone)]
pub struct CopyQuery {
    /// The SQLite statement.
    pub sql: String,
    /// Its result columns: names and inferred types.
    pub columns: Vec<(String, ResultColumn)>,
}

/// A value given to SET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    /// `SET x = value`
    Value(String),
    /// `SET x = DEFAULT` or `RESET x`
    Default,
}

/// What to do for one statement.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run on SQLite.
    Sql(Box<SqlPlan>),
    /// UPDATE/DELETE `WHERE CURRENT OF cursor`: planned once the session knows the row
    /// the cursor stands on ([`crate::current_of::CurrentOf::at_row`]).
    CurrentOf(Box<crate::current_of::CurrentOf>),
    /// EXPLAIN of a statement.
    Explain(Box<ExplainPlan>),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT name.
    Savepoint(String),
    /// RELEASE [SAVEPOINT] name.
    Release(String),
    /// ROLLBACK TO [SAVEPOINT] name.
    RollbackTo(String),
    /// SET name = value (session setting).
    Set {
        /// Setting name, lower-case.
        name: String,
        /// New value.
        value: SetValue,
    },
    /// RESET name (SET name TO DEFAULT, answered `RESET`).
    Reset(String),
    /// RESET ALL.
    ResetAll,
    /// SHOW name.
    Show(String),
    /// COPY.
    Copy(CopyPlan),
    /// Transaction modes: `BEGIN ISOLATION LEVEL …` (`begin`), `SET TRANSACTION …`, or
    /// `SET SESSION CHARACTERISTICS AS TRANSACTION …` (`session`): settings to apply,
    /// named as PostgreSQL names them (`transaction_isolation`, `transaction_read_only`).
    TransactionModes {
        /// Start a block first.
        begin: bool,
        /// The session's defaults, not the current transaction's.
        session: bool,
        /// (setting, value) pairs.
        settings: Vec<(String, String)>,
    },
    /// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN`: end the block and start another with the
    /// same modes.
    Chain {
        /// COMMIT (else ROLLBACK).
        commit: bool,
    },
    /// DECLARE, FETCH, MOVE or CLOSE of a session's cursor.
    Cursor(crate::cursor::CursorStatement),
    /// CREATE TABLE … AS / SELECT … INTO, finished by the session (see `create_as`).
    CreateTableAs(Box<CreateTableAs>),
    /// A statement with a data-modifying WITH (or WITH before INSERT/UPDATE/DELETE), run
    /// by the session as steps (see `modifying_with`).
    ModifyingWith(Box<ModifyingWith>),
    /// Accepted without effect, answered with this tag.
    Noop(&'static str),
}

/// A change to mdbc's catalog that must commit with the DDL that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    /// A new table.
    CreateTable(TableDef),
    /// A dropped table.
    DropTable(String),
    /// A column added to a table.
    AddColumn {
        /// Table.
        table: String,
        /// New column.
        column: ColumnInfo,
    },
    /// A column removed.
    DropColumn {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// A column renamed.
    RenameColumn {
        /// Table.
        table: String,
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// A table renamed.
    RenameTable {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// A column redefined by ALTER COLUMN (type, NOT NULL, default), in place.
    AlterColumn {
        /// Table.
        table: String,
        /// The column as it now is.
        column: ColumnInfo,
    },
    /// A description set (`text`) or removed (`None`) by COMMENT ON, on a relation or one
    /// of its columns.
    Comment {
        /// Table or index.
        relation: String,
        /// Column, for COMMENT ON COLUMN.
        column: Option<String>,
        /// The description.
        text: Option<String>,
    },
    /// Columns that became NOT NULL (primary key added).
    SetNotNull {
        /// Table.
        table: String,
        /// Columns.
        columns: Vec<String>,
    },
    /// A constraint's name, which SQLite does not keep where the catalogs can read it:
    /// `p`rimary key, `u`nique or `f`oreign key, identified by its columns.
    NameConstraint {
        /// Table.
        table: String,
        /// Constraint name.
        name: String,
        /// `p`, `u` or `f`.
        kind: char,
        /// Its columns, in order.
        columns: Vec<String>,
    },
    /// An index's definition as `pg_get_indexdef` prints it (SQLite keeps only its own
    /// rewritten text): the column list and the predicate.
    DescribeIndex {
        /// Index name.
        name: String,
        /// Its table.
        table: String,
        /// PostgreSQL's plain spelling (`((a + 1))`, `WHERE (a > 0)`).
        plain: crate::index_def::IndexText,
        /// Its pretty spelling (`(a + 1)`, `WHERE a > 0`).
        pretty: crate::index_def::IndexText,
    },
    /// Indexes dropped.
    DropIndexes(Vec<String>),
    /// A view created or replaced.
    CreateView(crate::catalog::ViewDef),
    /// Views dropped.
    DropViews(Vec<String>),
    /// A sequence created (or redefined by ALTER SEQUENCE).
    CreateSequence(crate::catalog::SequenceDef),
    /// Sequences dropped.
    DropSequences(Vec<String>),
    /// ALTER SEQUENCE … RESTART: the next value this site hands out is `value`.
    RestartSequence {
        /// The sequence.
        name: String,
        /// Its next value.
        value: i64,
    },
}

/// A change SQLite can only make by rebuilding the table (it has no `ALTER TABLE … ADD
/// CONSTRAINT` or `ALTER COLUMN`): the executor creates a copy with the new definition
/// ([`crate::rebuild::redefine`]), moves the rows, and swaps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRebuild {
    /// Table to rebuild.
    pub table: String,
    /// Constraint clause in SQLite syntax, added to the table's definition.
    pub constraint: Option<String>,
    /// Columns redefined (ALTER COLUMN).
    pub columns: Vec<ColumnRedefinition>,
    /// Columns added, as SQLite column definitions: those whose default SQLite's own ADD
    /// COLUMN refuses (not a constant), filled row by row by the copy.
    pub added: Vec<String>,
    /// A constraint dropped by name (ALTER TABLE DROP CONSTRAINT).
    pub drop_constraint: Option<String>,
    /// DROP CONSTRAINT IF EXISTS: a name that is not there is no error.
    pub drop_if_exists: bool,
    /// The SQLite statement that fills the copy (named [`crate::rebuild::REBUILD_TABLE`])
    /// from the table, converting the columns whose type changes; `None`: rows as they are.
    pub copy: Option<String>,
}

/// One column's new SQLite definition; `None` fields keep what the column has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnRedefinition {
    /// Column name.
    pub name: String,
    /// New type: SQLite's declared type and collation (`PgType::sqlite_decl`).
    pub decl: Option<String>,
    /// New default as an SQLite expression, or `Some(None)` for none.
    pub default: Option<Option<String>>,
    /// NOT NULL or not.
    pub not_null: Option<bool>,
}

/// The inferred type of one result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultColumn {
    /// Type, if known.
    pub ty: Option<PgType>,
    /// Type modifier (-1 when none).
    pub typmod: i32,
}

impl ResultColumn {
    pub(crate) fn unknown() -> Self {
        ResultColumn {
            ty: None,
            typmod: -1,
        }
    }
    pub(crate) fn of(ty: PgType, typmod: i32) -> Self {
        ResultColumn {
            ty: Some(ty),
            typmod,
        }
    }
}

/// The steps of a statement with a data-modifying WITH: each CTE into a temporary table,
/// in order, then the main statement reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyingWith {
    /// One per CTE, in the order written.
    pub steps: Vec<WithStep>,
    /// The main statement (PostgreSQL's syntax), CTE names replaced by the steps' tables.
    pub main: String,
    /// Whether the main statement returns rows (a query, or RETURNING).
    pub returns_rows: bool,
}

/// One CTE of a [`ModifyingWith`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithStep {
    /// The temporary table that holds its rows.
    pub temp: String,
    /// Column names the CTE gives (`WITH d (a, b) AS (DELETE … RETURNING x, y)`).
    pub column_names: Vec<String>,
    /// The query or the INSERT/UPDATE/DELETE (PostgreSQL's syntax).
    pub sql: String,
    /// An INSERT, UPDATE or DELETE (else a query, kept with CREATE TEMP TABLE … AS).
    pub modifies: bool,
    /// Whether it returns rows (a data change without RETURNING has no table).
    pub returning: bool,
}

/// What the session needs to run a `CREATE TABLE … AS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTableAs {
    /// The new table's name as mdbc stores it.
    pub table: String,
    /// `CREATE TEMP TABLE … AS`.
    pub temporary: bool,
    /// Names given for the first columns (`CREATE TABLE t (a, b) AS …`).
    pub column_names: Vec<String>,
    /// The query, in PostgreSQL's syntax.
    pub query: String,
    /// `WITH DATA` (the default) or `WITH NO DATA`.
    pub with_data: bool,
}
