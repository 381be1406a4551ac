//! Column defaults as the catalogs show them (`pg_attrdef`, `information_schema`).

use sqlparser::ast::{Expr, Value};

use crate::types::PgType;

/// A default as PostgreSQL's `pg_get_expr` prints it: string literals carry their cast
/// (`'x'::text`), the rest as written.
pub(crate) fn pg_default_text(e: &Expr, ty: PgType) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => {
                format!("'{}'::{}", s.replace('\'', "''"), ty.name())
            }
            Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}
