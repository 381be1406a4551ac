//! Column defaults as the catalogs show them (`pg_attrdef`, `information_schema`).

use sqlparser::ast::{Expr, UnaryOperator, Value};

use crate::types::PgType;

/// A default as PostgreSQL's `pg_get_expr` prints it. PostgreSQL turns a literal default
/// into a constant of its type (a quoted literal takes the column's type) and prints the
/// constant back: a non-negative `integer`, or a `numeric` with a decimal point, bare; a
/// boolean as `true`/`false`; anything else quoted with its type (`'-7'::integer`,
/// `'7'::bigint`, `'x'::text`). Other expressions are shown as written.
pub(crate) fn pg_default_text(e: &Expr, ty: PgType) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => constant(&canonical(s, ty), ty),
            Value::Boolean(b) => b.to_string(),
            Value::Number(n, _) => number(n),
            other => other.to_string(),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => number(&format!("-{n}")),
                _ => e.to_string(),
            },
            _ => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// A number literal's constant: integer if it fits, bigint beyond, numeric with a point.
fn number(n: &str) -> String {
    let ty = if n.contains(['.', 'e', 'E']) {
        PgType::Numeric
    } else if n.parse::<i32>().is_ok() {
        PgType::Int4
    } else if n.parse::<i64>().is_ok() {
        PgType::Int8
    } else {
        PgType::Numeric
    };
    constant(n, ty)
}

/// The output text of literal `s` read as `ty`, where it differs from what was written.
fn canonical(s: &str, ty: PgType) -> String {
    match ty {
        PgType::Int2 | PgType::Int4 | PgType::Int8 => s
            .trim()
            .parse::<i64>()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| s.to_string()),
        PgType::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "tr" | "tru" | "true" | "y" | "ye" | "yes" | "on" | "1" => "true".into(),
            "f" | "fa" | "fal" | "fals" | "false" | "n" | "no" | "of" | "off" | "0" => {
                "false".into()
            }
            _ => s.to_string(),
        },
        _ => s.to_string(),
    }
}

fn constant(text: &str, ty: PgType) -> String {
    let negative = text.starts_with('-');
    match ty {
        PgType::Int4 if !negative => text.to_string(),
        PgType::Numeric if !negative && text.contains('.') => text.to_string(),
        PgType::Bool if text == "true" || text == "false" => text.to_string(),
        _ => format!("'{}'::{}", text.replace('\'', "''"), ty.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_of(sql: &str, ty: PgType) -> String {
        let q = crate::ast::parse_query(&format!("SELECT {sql}")).unwrap();
        let sqlparser::ast::SetExpr::Select(s) = *q.body else {
            panic!()
        };
        let sqlparser::ast::SelectItem::UnnamedExpr(e) = &s.projection[0] else {
            panic!()
        };
        pg_default_text(e, ty)
    }

    #[test]
    fn constants_print_as_postgres_prints_them() {
        // What PostgreSQL 15's information_schema.columns.column_default shows.
        use PgType::*;
        assert_eq!(default_of("'7'", Int4), "7");
        assert_eq!(default_of("'7'", Int8), "'7'::bigint");
        assert_eq!(default_of("'-3'", Int2), "'-3'::smallint");
        assert_eq!(default_of("'5'", Numeric), "'5'::numeric");
        assert_eq!(default_of("'1.5'", Numeric), "1.5");
        assert_eq!(default_of("'1'", Float8), "'1'::double precision");
        assert_eq!(default_of("'yes'", Bool), "true");
        assert_eq!(default_of("-7", Int4), "'-7'::integer");
        assert_eq!(default_of("-1.5", Numeric), "'-1.5'::numeric");
        assert_eq!(default_of("8", Int8), "8");
        assert_eq!(default_of("-8", Int8), "'-8'::integer");
        assert_eq!(default_of("'x'", Text), "'x'::text");
    }
}
