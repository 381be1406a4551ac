//! # sql-capture
//!
//! Room in the design (see `docs/DESIGN.md`, "Crates, bottom up", and this crate's `DESIGN.md`): everything mdbc knows about SQL text and
//! nothing about sockets or replication. It
//!
//! - splits a PostgreSQL query string into statements and parses each with `sqlparser`
//!   ([`parse`]);
//! - classifies each statement (read, write, DDL, transaction control, session command) and
//!   rewrites its syntax tree into SQLite's dialect ([`plan`]);
//! - infers PostgreSQL types for `$n` parameters and result columns from the schema
//!   ([`Catalog`], which also holds the server's system views), so strict drivers get
//!   exactly the types they expect;
//! - translates what introspection queries need beyond plain SQL: `reg*` casts, the
//!   `pg_get_*def` deparsers, set-returning functions in a select list, and queries over
//!   catalogs mdbc keeps empty, answered without running;
//! - reduces queries with inlined values to their shape so that a statement is planned once
//!   however its values change ([`literals`]).
//!
//! - captures a transaction's row changes with SQLite's session extension ([`capture`]),
//!   as full row images with a row clock ([`changes`]), and applies other sites' images
//!   by last writer wins per row ([`apply`]).
//!
//! The crate has no clock, thread, socket or file of its own: capture and apply work on a
//! connection the caller owns, inside the caller's transaction, with the clock the caller
//! gives. Values are normalised at run time by SQL functions the server registers
//! (`pg_coerce`, `pg_now`, …); this crate only emits calls to them.
#![deny(missing_docs)]

mod alter_column;
pub mod apply;
mod ast;
pub mod capture;
mod catalog;
pub mod changes;
pub mod changeset;
mod comment;
mod create_as;
pub mod current_of;
mod cursor;
mod datetime;
mod ddl;
mod defaults;
pub use rebuild::NOT_NULL_CHECK;
mod distinct_on;
mod error;
mod folding;
pub mod index_def;
mod infer;
mod introspect;
mod json;
pub mod literals;
mod modifying_with;
mod naming;
mod numeric;
mod plan;
pub mod rebuild;
mod rewrite;
mod sequence;
mod sequence_syntax;
mod set_operations;
mod split;
mod translate;
mod typed;
pub mod types;
mod view;
mod windows;

pub use ast::quote_ident;
pub use catalog::{
    Catalog, ColumnInfo, SequenceDef, SystemRelation, SystemRelations, TableDef, ViewDef,
};
pub use cursor::{CursorStatement, Motion};
pub use error::{Error, Result};
pub use literals::{LiteralValue, Literals, Shape};
pub use naming::pg_quote_ident;
pub use plan::{
    CatalogChange, ColumnRedefinition, Command, CommandTag, CopyFormat, CopyPlan, CopyQuery,
    CreateTableAs, ExplainPlan, ModifyingWith, ResultColumn, SetValue, SqlPlan, StmtKind,
    TableRebuild, TempEffect, WithStep,
};
pub use split::{parse, Parsed};
pub use translate::{plan, plan_shape};
pub use types::{PgType, TypeSpec};

/// The collation numeric columns and numeric-valued expressions carry in SQLite: numeric
/// values are their exact text, compared as numbers (mdbc-server's numeric module).
pub const NUMERIC_COLLATION: &str = "pg_numeric";
/// The collation jsonb columns and casts get: jsonb's btree order (mdbc-server's
/// json/order.rs), so that `1.0` and `1` inside are one value and `ORDER BY` is
/// PostgreSQL's.
pub const JSONB_COLLATION: &str = "pg_jsonb";

/// The collation interval values carry in SQLite: intervals are kept as PostgreSQL's text
/// and compared by their span, a month counting 30 days (mdbc-server's datetime module).
pub const INTERVAL_COLLATION: &str = "pg_interval";

/// The collation dates, timestamps and timestamptz carry in SQLite: their text sorts
/// chronologically for years 1 to 9999, and this orders BC dates and later years too.
pub const DATETIME_COLLATION: &str = "pg_datetime";

/// Names of the SQL functions the executing side must register on every SQLite connection,
/// with the number of arguments each takes (-1: any).
pub const REQUIRED_FUNCTIONS: &[(&str, i32)] = &[
    ("pg_coerce", 3),
    ("pg_now", 0),
    ("pg_current_date", 0),
    ("pg_statement_timestamp", 0),
    ("pg_clock_timestamp", 0),
    ("pg_nextval", 1),
    ("pg_currval", 1),
    ("pg_lastval", 0),
    ("pg_setval", 3),
    ("pg_regex", 3),
    ("pg_int2", 3),
    ("pg_int4", 3),
    ("pg_int8", 3),
    ("pg_random", 0),
    ("pg_numeric", -1),
    ("pg_json", -1),
    ("pg_series_step", 1),
    ("pg_not_null", 3),
    ("pg_json_layout", 2),
    ("pg_unsupported", 1),
    ("pg_float4", 3),
    ("pg_float8", 3),
    ("pg_array_agg_arrays", 1),
    ("pg_float4_sum", 1),
    ("pg_float8_sum", 1),
    ("pg_float8_avg", 1),
    ("pg_scalar", 1),
    ("pg_substr", 3),
    ("pg_substr", 2),
    ("pg_substring_regex", 2),
    ("pg_numeric_sum", 1),
    ("pg_numeric_avg", 1),
    ("version", 0),
    ("current_database", 0),
    ("current_schema", 0),
    ("current_user", 0),
    ("pg_backend_pid", 0),
    ("greatest", -1),
    ("least", -1),
];
