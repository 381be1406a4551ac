//! Result-column names as PostgreSQL gives them: an unaliased `count(*)` is `count`, a
//! cast is named after its type, anything else without a name is `?column?`. Taken from
//! the tree before rewriting (after it, `now()` would be `pg_now`).

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr};

use crate::ast::{function_name, ident_value};
use crate::types::PgType;

/// The name PostgreSQL gives an unaliased result column that is not a plain column
/// reference (`count`, `now`, `?column?`, …); `None` when SQLite's own name is right.
pub(crate) fn pg_item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(e) => pg_expr_name(e),
        _ => None,
    }
}

fn pg_expr_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id)
            if id.quote_style.is_none()
                && matches!(
                    id.value.to_ascii_lowercase().as_str(),
                    "current_user" | "session_user" | "user" | "current_schema" | "current_catalog"
                ) =>
        {
            Some(id.value.to_ascii_lowercase())
        }
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        Expr::Nested(inner) => pg_expr_name(inner).or_else(|| match inner.as_ref() {
            Expr::Identifier(i) => Some(ident_value(i)),
            Expr::CompoundIdentifier(p) => p.last().map(ident_value),
            _ => None,
        }),
        Expr::Function(f) => Some(function_name(f)),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            _ if matches!(
                data_type
                    .to_string()
                    .to_ascii_lowercase()
                    .trim_start_matches("pg_catalog."),
                "regclass" | "regtype" | "regnamespace"
            ) && matches!(expr.as_ref(), Expr::Value(_)) =>
            {
                Some(
                    data_type
                        .to_string()
                        .to_ascii_lowercase()
                        .trim_start_matches("pg_catalog.")
                        .to_string(),
                )
            }
            Expr::Identifier(i) => Some(ident_value(i)),
            Expr::CompoundIdentifier(p) => p.last().map(ident_value),
            Expr::Function(f) => Some(function_name(f)),
            _ => Some(
                PgType::parse_sql_name(&data_type.to_string())
                    .map(|s| typname(s.ty).to_string())
                    .unwrap_or_else(|| "?column?".into()),
            ),
        },
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::CompoundFieldAccess { root, .. } => pg_expr_name(root),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Substring {
            shorthand: true, ..
        } => Some("substr".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::TypedString(ts) => Some(
            PgType::parse_sql_name(&ts.data_type.to_string())
                .map(|s| typname(s.ty).to_string())
                .unwrap_or_else(|| "?column?".into()),
        ),
        _ => Some("?column?".into()),
    }
}

/// `pg_type.typname` of a type.
pub(crate) fn typname(t: PgType) -> &'static str {
    match t {
        PgType::Bool => "bool",
        PgType::Int2 => "int2",
        PgType::Int4 => "int4",
        PgType::Int8 => "int8",
        PgType::Float4 => "float4",
        PgType::Float8 => "float8",
        PgType::Numeric => "numeric",
        PgType::Text => "text",
        PgType::Varchar => "varchar",
        PgType::Bpchar => "bpchar",
        PgType::Name => "name",
        PgType::Bytea => "bytea",
        PgType::Date => "date",
        PgType::Time => "time",
        PgType::Timestamp => "timestamp",
        PgType::Timestamptz => "timestamptz",
        PgType::Interval => "interval",
        PgType::Uuid => "uuid",
        PgType::Json => "json",
        PgType::Jsonb => "jsonb",
        PgType::Oid => "oid",
        PgType::Char => "char",
        PgType::BoolArray => "_bool",
        PgType::CharArray => "_char",
        PgType::NameArray => "_name",
        PgType::Int2Array => "_int2",
        PgType::Int4Array => "_int4",
        PgType::TextArray => "_text",
        PgType::OidArray => "_oid",
        PgType::Int8Array => "_int8",
        PgType::Float8Array => "_float8",
        PgType::NumericArray => "_numeric",
        PgType::VarcharArray => "_varchar",
        PgType::Int2Vector => "int2vector",
        PgType::OidVector => "oidvector",
    }
}

pub(crate) fn apply_names(items: &mut [SelectItem], names: Vec<Option<String>>) {
    for (item, name) in items.iter_mut().zip(names) {
        if let (SelectItem::UnnamedExpr(e), Some(n)) = (&*item, name) {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', n),
            };
        }
    }
}

/// PostgreSQL's names for the top-level result columns, taken before rewriting (after it,
/// `now()` would be named `pg_now`).
/// A set operation takes its column names from its leftmost SELECT.
pub fn pg_column_names(q: &Query) -> Vec<Option<String>> {
    fn of(body: &SetExpr) -> Vec<Option<String>> {
        match body {
            SetExpr::Select(s) => s.projection.iter().map(pg_item_name).collect(),
            SetExpr::SetOperation { left, .. } => of(left),
            SetExpr::Query(q) => of(&q.body),
            _ => Vec::new(),
        }
    }
    of(&q.body)
}

/// Gives the top-level result columns the names PostgreSQL would.
pub fn apply_column_names(q: &mut Query, names: Vec<Option<String>>) {
    fn apply(body: &mut SetExpr, names: Vec<Option<String>>) {
        match body {
            SetExpr::Select(s) => apply_names(&mut s.projection, names),
            SetExpr::SetOperation { left, .. } => apply(left, names),
            SetExpr::Query(q) => apply(&mut q.body, names),
            _ => {}
        }
    }
    apply(&mut q.body, names)
}

/// PostgreSQL's names for a query's result columns; `None` when a wildcard hides them.
pub(crate) fn result_names(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(s) => s
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(ident_value(alias)),
                SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
                _ => None,
            })
            .collect(),
        SetExpr::SetOperation { left, .. } => result_names(left),
        SetExpr::Query(q) => result_names(&q.body),
        SetExpr::Values(v) => Some(
            (1..=v.rows.first().map_or(0, |r| r.content.len()))
                .map(|i| format!("column{i}"))
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident_value(i),
        Expr::CompoundIdentifier(p) => p.last().map(ident_value).unwrap_or_default(),
        Expr::Nested(inner) => expr_name(inner),
        Expr::Function(f) => function_name(f),
        Expr::Cast { expr, .. } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => {
                expr_name(expr)
            }
            _ => "?column?".into(),
        },
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// PostgreSQL's `quote_ident`: quotes only names that would not read back as themselves
/// (upper case, odd characters, reserved words).
pub fn pg_quote_ident(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ];
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    if plain {
        name.to_string()
    } else {
        crate::ast::quote_ident(name)
    }
}
