//! The `reg*` types: a cast to `regclass` or `regtype` looks the name up in the catalog
//! views, and a `reg*` value in a select list prints as the name PostgreSQL would.

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Value};

use super::{lookup, string_literal, subquery, text};
use crate::ast::function_name;
use crate::error::Result;
use crate::types::PgType;

/// A relation name as `regclass` input reads it: optionally schema-qualified (only
/// `public` and `pg_catalog` exist), each part folded to lower case unless quoted.
pub(super) fn relation_name_input(s: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                parts.push(if was_quoted {
                    cur.clone()
                } else {
                    cur.to_ascii_lowercase()
                });
                cur.clear();
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    parts.push(if was_quoted {
        cur
    } else {
        cur.to_ascii_lowercase()
    });
    match parts.as_slice() {
        [name] => name.clone(),
        [schema, name] if schema == "public" || schema == "pg_catalog" => name.clone(),
        // Another schema: nothing there.
        _ => format!("{}\u{0}", s),
    }
}

/// `expr::regclass`, `::regtype`, `::regnamespace`: a literal or parameter names an object
/// and becomes its oid; any other expression is an oid and becomes the object's name (what
/// a `reg*` value prints as). `None` for other types.
pub(crate) fn reg_cast(inner: &Expr, type_name: &str) -> Option<Result<Expr>> {
    let (catalog, name_col) = reg_kind(type_name)?;
    let arg = inner.clone();
    let oid = match inner {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.trim().parse::<u32>().ok(),
            Value::Number(n, _) => n.parse::<u32>().ok(),
            _ => None,
        },
        _ => {
            // An oid: print the name (a type as format_type spells it).
            return Some(if catalog == "pg_type" {
                subquery("SELECT format_type(__arg1, NULL)", &[arg])
            } else {
                lookup(catalog, name_col, "oid", arg)
            });
        }
    };
    Some(if let Some(oid) = oid {
        // A new literal, not the client's: a plan reused for this statement's shape with
        // a name in that place would take the name for an oid (literals.rs).
        // Nested, so that an enclosing reg* cast takes it for an oid, not a name.
        Ok(Expr::Nested(Box::new(Expr::value(Value::Number(
            oid.to_string(),
            false,
        )))))
    } else if catalog == "pg_type" {
        to_regtype(inner)
    } else if let (Some(s), "pg_class") = (string_literal(inner), catalog) {
        lookup(catalog, "oid", name_col, text(&relation_name_input(s)))
    } else if catalog == "pg_class" {
        // A parameter: a name, or an oid written as text.
        subquery(
            "SELECT __v FROM (SELECT oid AS __v, relname AS __k FROM pg_class) \
             WHERE __k = __arg1 OR CAST(__v AS TEXT) = __arg1",
            &[arg],
        )
    } else {
        // A new literal for a name, as for an oid above.
        let name = string_literal(inner).map(text).unwrap_or(arg);
        lookup(catalog, "oid", name_col, name)
    })
}

/// `'name'::regclass::text` prints the name back: the literal becomes an oid (inner cast)
/// that the outer one turns into a name again. Runs before the children are rewritten.
pub(crate) fn reg_to_text(expr: &mut Expr) {
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return;
    };
    let outer = data_type.to_string().to_ascii_lowercase();
    if !matches!(
        outer.trim_start_matches("pg_catalog."),
        "text" | "varchar" | "name" | "character varying"
    ) {
        return;
    }
    // to_regclass('t')::text: the oid it finds, printed as the name.
    if let Expr::Function(f) = inner.as_ref() {
        let reg = match function_name(f).as_str() {
            "to_regclass" => "regclass",
            "to_regtype" => "regtype",
            "to_regnamespace" => "regnamespace",
            _ => "",
        };
        if !reg.is_empty() {
            let call = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            **inner = Expr::Cast {
                kind: sqlparser::ast::CastKind::DoubleColon,
                expr: Box::new(call),
                data_type: sqlparser::ast::DataType::Custom(
                    sqlparser::ast::ObjectName::from(vec![Ident::new(reg)]),
                    vec![],
                ),
                format: None,
            };
            return;
        }
    }
    if let Expr::Cast {
        expr: literal,
        data_type: reg,
        kind,
        format,
    } = inner.as_mut()
    {
        let is_reg = reg_kind(&reg.to_string()).is_some();
        if is_reg && matches!(literal.as_ref(), Expr::Value(_)) {
            let lit = std::mem::replace(literal.as_mut(), Expr::value(Value::Null));
            **literal = Expr::Cast {
                kind: kind.clone(),
                expr: Box::new(lit),
                data_type: reg.clone(),
                format: format.clone(),
            };
        }
    }
}

/// A `reg*` value in the select list prints as the object's name, as PostgreSQL's output
/// function does; elsewhere (comparisons, joins) it stays an oid.
pub(crate) fn reg_in_select_list(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    for item in &mut sel.projection {
        let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
            continue;
        };
        if let Expr::Cast { data_type, .. } = e {
            if reg_kind(&data_type.to_string()).is_some() {
                let inner = std::mem::replace(e, Expr::value(Value::Null));
                *e = Expr::Cast {
                    kind: sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(inner),
                    data_type: sqlparser::ast::DataType::Text,
                    format: None,
                };
            }
        }
    }
}

fn reg_kind(type_name: &str) -> Option<(&'static str, &'static str)> {
    let ty = type_name.trim().to_ascii_lowercase();
    Some(match ty.trim_start_matches("pg_catalog.") {
        "regclass" => ("pg_class", "relname"),
        "regtype" => ("pg_type", "typname"),
        "regnamespace" => ("pg_namespace", "nspname"),
        _ => return None,
    })
}

pub(super) fn to_regtype(arg: &Expr) -> Result<Expr> {
    // A literal type name is resolved here, aliases included (`int`, `varchar(20)`).
    if let Some(s) = string_literal(arg) {
        if let Some(spec) = PgType::parse_sql_name(s) {
            // Nested: an oid now, no longer a name to look up (`'int'::regtype::text`).
            return Ok(Expr::Nested(Box::new(Expr::value(Value::Number(
                spec.ty.oid().to_string(),
                false,
            )))));
        }
    }
    // A literal name becomes a new literal: plans are reused by shape (literals.rs).
    let arg = string_literal(arg).map(text).unwrap_or_else(|| arg.clone());
    subquery(
        "SELECT __v FROM (SELECT oid AS __v, typname AS __k FROM pg_type) \
         WHERE __k = __arg1 OR format_type(__v, NULL) = __arg1",
        &[arg],
    )
}
