//! Catalog functions introspection queries call, translated to lookups in the catalog views
//! (`pg_get_*def`, `to_regclass`, `array_*` over catalog arrays), and `= ANY(array)`.

use sqlparser::ast::{
    Expr, Function, FunctionArguments, Ident, SelectItem, SetExpr, TableFactor, Value,
};

use super::reg::{relation_name_input, to_regtype};
use super::{fill, lookup, string_literal, subquery, text};
use crate::ast::{function_args, function_name, parse_query};
use crate::error::Result;

/// `x = ANY(a)` over an array that is not a literal: `x IN (SELECT value FROM
/// json_each(a))`, NULL when the array is NULL (as PostgreSQL; the IN over no rows would
/// say false).
pub(crate) fn any_of_array(left: Expr, array: Expr, negated: bool) -> Result<Expr> {
    let mut q = parse_query("SELECT value FROM json_each(__arg1) AS __any")?;
    fill(&mut q, std::slice::from_ref(&array));
    let test = Expr::InSubquery {
        expr: Box::new(left),
        subquery: Box::new(q),
        negated,
    };
    if matches!(&array, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
        // A catalog column: never NULL where introspection queries use it.
        return Ok(test);
    }
    Ok(Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![sqlparser::ast::CaseWhen {
            condition: Expr::IsNull(Box::new(array)),
            result: Expr::value(Value::Null),
        }],
        else_result: Some(Box::new(test)),
    })
}

/// Catalog functions that need the catalog views (so are not SQL functions the server
/// registers): the replacement expression, or `None` when `name` is none of them.
pub(crate) fn catalog_function(name: &str, f: &Function) -> Option<Result<Expr>> {
    let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
    let first = args.first().cloned().unwrap_or(Expr::value(Value::Null));
    Some(match name {
        // pg_get_indexdef(index [, column number, pretty]): column 0 is the whole
        // definition, another number that column's expression alone.
        "pg_get_indexdef" if args.len() == 3 => subquery(
            "SELECT CASE WHEN __arg2 = 0 THEN CASE WHEN __arg3 THEN indexdef_pretty                                                    ELSE indexdef END                     ELSE coalesce(json_extract(CASE WHEN __arg3 THEN pcols ELSE ccols END,                                                '$[' || (__arg2 - 1) || ']'), '') END              FROM __mdbc_v_index WHERE indexrelid = __arg1",
            &args,
        ),
        "pg_get_indexdef" => lookup("__mdbc_v_index", "indexdef", "indexrelid", first),
        "pg_get_constraintdef" => lookup("__mdbc_v_constraint", "condef", "oid", first),
        // Every comment mdbc keeps is on a pg_class object (COMMENT ON TABLE | INDEX |
        // COLUMN): another catalog's has none.
        "obj_description" => subquery(
            "SELECT description FROM pg_description WHERE objoid = __arg1 AND objsubid = 0 \
             AND coalesce(__arg2, 'pg_class') IN ('pg_class', 'pg_catalog.pg_class')",
            &[
                first,
                args.get(1).cloned().unwrap_or(Expr::value(Value::Null)),
            ],
        ),
        "col_description" => subquery(
            "SELECT description FROM pg_description WHERE objoid = __arg1 AND objsubid = __arg2",
            &[
                first,
                args.get(1).cloned().unwrap_or(Expr::value(Value::Null)),
            ],
        ),
        "to_regclass" => {
            let name = match string_literal(&first) {
                Some(s) => text(&relation_name_input(s)),
                None => first,
            };
            lookup("pg_class", "oid", "relname", name)
        }
        "to_regtype" => to_regtype(&first),
        "to_regnamespace" => {
            let name = string_literal(&first).map(text).unwrap_or(first);
            lookup("pg_namespace", "oid", "nspname", name)
        }
        "pg_get_serial_sequence" => {
            let table = match string_literal(&first) {
                Some(s) => text(&relation_name_input(s)),
                None => first,
            };
            let column = args.get(1).cloned().unwrap_or(Expr::value(Value::Null));
            subquery(
                "SELECT __v FROM (SELECT 'public.' || quote_ident(s.name) AS __v, a.tbl AS __t, \
                 a.attname AS __c FROM __mdbc_v_sequence s \
                 JOIN __mdbc_v_column a ON a.attrelid = s.tbloid AND a.attnum = s.attnum) \
                 WHERE __t = __arg1 AND __c = __arg2",
                &[table, column],
            )
        }
        // Only what a schema search path holds: `pg_catalog` (when asked) and `public`.
        "current_schemas" => {
            let implicit = !matches!(
                args.first(),
                Some(Expr::Value(v)) if matches!(v.value, Value::Boolean(false))
            );
            let mut elems = Vec::new();
            if implicit {
                elems.push(text("pg_catalog"));
            }
            elems.push(text("public"));
            Ok(Expr::Array(sqlparser::ast::Array {
                elem: elems,
                named: true,
            }))
        }
        // `array_position(ARRAY[...], x)` over a literal array: its 1-based index.
        "array_position" => {
            let Some(Expr::Array(arr)) = args.first() else {
                return Some(Err(crate::error::Error::Unsupported(
                    "array_position over a non-literal array".into(),
                )));
            };
            let needle = args.get(1).cloned().unwrap_or(Expr::value(Value::Null));
            Ok(Expr::Case {
                case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                operand: Some(Box::new(needle)),
                conditions: arr
                    .elem
                    .iter()
                    .enumerate()
                    .map(|(i, e)| sqlparser::ast::CaseWhen {
                        condition: e.clone(),
                        result: Expr::value(Value::Number((i + 1).to_string(), false)),
                    })
                    .collect(),
                else_result: None,
            })
        }
        _ => return None,
    })
}

/// Whether a call named `name` is `ARRAY(SELECT …)` (typed.rs renames it to say what
/// its rows are).
pub(crate) fn is_array_subquery(name: &str) -> bool {
    matches!(
        name,
        "array" | "__mdbc_array_nested" | "__mdbc_array_scalar"
    )
}

/// `ARRAY(SELECT x …)`: the rows' values gathered into the JSON array mdbc keeps arrays
/// as, in the subquery's order; rows that are arrays themselves are embedded as arrays
/// (PostgreSQL's one dimension more, each the same size and none NULL or empty).
pub(crate) fn array_subquery(f: &Function) -> Option<Result<Expr>> {
    let name = function_name(f);
    if !is_array_subquery(&name) {
        return None;
    }
    if name == "array" {
        return Some(Err(crate::error::Error::Unsupported(
            "ARRAY(subquery) whose column type mdbc does not infer".into(),
        )));
    }
    let FunctionArguments::Subquery(q) = &f.args else {
        return None;
    };
    let mut q = (**q).clone();
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return Some(Err(crate::error::Error::Unsupported(
            "ARRAY over a set operation".into(),
        )));
    };
    let [item] = sel.projection.as_mut_slice() else {
        return Some(Err(crate::error::Error::Syntax(
            "subquery must return only one column".into(),
        )));
    };
    let expr = match item {
        SelectItem::UnnamedExpr(e) => e.clone(),
        SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
        _ => {
            return Some(Err(crate::error::Error::Unsupported(
                "ARRAY(SELECT *)".into(),
            )))
        }
    };
    *item = SelectItem::ExprWithAlias {
        expr,
        alias: Ident::new("__elem"),
    };
    let outer = parse_query(if name == "__mdbc_array_nested" {
        "SELECT coalesce(pg_array_agg_arrays(__elem), '[]') FROM (SELECT 1) AS __a"
    } else {
        "SELECT json_group_array(__elem) FROM (SELECT 1) AS __a"
    });
    Some(outer.map(|mut outer| {
        if let SetExpr::Select(s) = outer.body.as_mut() {
            if let Some(TableFactor::Derived { subquery, .. }) =
                s.from.first_mut().map(|f| &mut f.relation)
            {
                **subquery = q;
            }
        }
        Expr::Subquery(Box::new(outer))
    }))
}
