//! json and jsonb as PostgreSQL defines them, as SQL functions SQLite calls. SQLite's own
//! JSON functions share names with PostgreSQL's but not their behaviour (key order,
//! duplicate keys, number precision, negative indexes, which values are SQL NULL), so
//! translation routes every json/jsonb operator and function here (`pg_json(op, …)`, see
//! `sql.rs`). See sql-capture/DESIGN.md, "json and jsonb".

mod array_agg;
mod error;
mod ops;
pub mod order;
mod parse;
pub mod sql;
mod value;

#[cfg(test)]
mod tests;

pub use error::JsonError;
pub use value::Jsonb;

/// jsonb's text form of json text input (what a jsonb column stores).
pub fn jsonb_text(input: &str) -> Result<String, JsonError> {
    Jsonb::parse(input).map(|v| v.text())
}

/// Checks json text input (json keeps the text as given).
pub fn check_json(input: &str) -> Result<(), JsonError> {
    parse::parse(input).map(|_| ())
}
