//! json and jsonb expressions that need their operands' types: SQLite's JSON functions
//! would take a numeric (exact text) for a string and a boolean for 0/1, `||` would join
//! text, and `->>` would hand out objects in SQLite's compact form rather than jsonb's.

use sqlparser::ast::{BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr};

use crate::ast::{call, function_name, take, text};
use crate::types::PgType;

/// The arguments of `json[b]_build_object/array` and `to_json[b]`, made into the JSON
/// values PostgreSQL puts there: a numeric a number, a boolean `true`/`false`, a json
/// value itself (not its text as a string).
pub(crate) fn builder_args(f: &mut Function, types: &[Option<PgType>]) {
    let name = function_name(f);
    // array_agg of arrays builds a multi-dimensional array (mdbc-server's json/array_agg.rs
    // checks the inputs as PostgreSQL does).
    if name == "array_agg" {
        if let Some(Some(t)) = types.first() {
            if t.element().is_some() {
                f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(
                    "pg_array_agg_arrays",
                )]);
            }
        }
        return;
    }
    // An object's key must be there: PostgreSQL raises on a NULL one (when it meets it).
    if matches!(name.as_str(), "json_object_agg" | "jsonb_object_agg") {
        if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
            if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = list.args.first_mut() {
                *e = call(
                    "coalesce",
                    vec![
                        take(e),
                        call(
                            "pg_error",
                            vec![text("22023"), text("field name must not be null")],
                        ),
                    ],
                );
            }
        }
        return;
    }
    if !matches!(
        name.as_str(),
        "json_build_object"
            | "jsonb_build_object"
            | "json_build_array"
            | "jsonb_build_array"
            | "to_json"
            | "to_jsonb"
    ) {
        return;
    }
    let sqlparser::ast::FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    let mut i = 0;
    for arg in list.args.iter_mut() {
        let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else {
            continue;
        };
        let t = types.get(i).copied().flatten();
        let key = name.ends_with("build_object") && i % 2 == 0;
        i += 1;
        if key
            && t.is_some_and(|t| t.element().is_some() || matches!(t, PgType::Json | PgType::Jsonb))
        {
            *e = call(
                "pg_error",
                vec![
                    text("22023"),
                    text("key value must be scalar, not array, composite, or json"),
                ],
            );
            continue;
        }
        *e = match t {
            // A json value inside a json (not jsonb) builder keeps its own text in
            // PostgreSQL, spaces included; SQLite can only re-write it compact.
            Some(PgType::Json) if !name.starts_with("jsonb") && name != "to_json" => call(
                "pg_unsupported",
                vec![text(
                    "a json value inside json_build_object/json_build_array (use jsonb)",
                )],
            ),
            Some(PgType::Numeric | PgType::Json | PgType::Jsonb) => call("json", vec![take(e)]),
            // An array is a JSON array inside (mdbc stores arrays as one); element types
            // whose JSON form is not their stored form are refused.
            Some(t) if t.element().is_some() => match t.element() {
                Some(el) if el.is_integer() || el.is_string() => call("json", vec![take(e)]),
                _ => call(
                    "pg_unsupported",
                    vec![text("an array of this element type inside json")],
                ),
            },
            // PostgreSQL writes dates and times into JSON in ISO 8601 (`T`, `+hh:mm`).
            Some(PgType::Timestamp | PgType::Timestamptz | PgType::Date | PgType::Time) => call(
                "pg_unsupported",
                vec![text("a date or time value inside json (ISO 8601 form)")],
            ),
            Some(PgType::Bool) => call(
                "json",
                vec![crate::ast::bool_case(take(e), text("true"), text("false"))],
            ),
            _ => continue,
        };
    }
}

/// Operators on json and jsonb, as `pg_json(op, …)` calls (mdbc-server's json module):
/// `-> ->> #> #>>` on both, and jsonb's `@> <@ ? ?| ?& - #- ||`. An operator PostgreSQL
/// defines only for jsonb (or arrays, ranges…) on operands of another or unknown type is
/// refused when it runs, naming it. Comparisons of jsonb get jsonb's order.
pub(crate) fn binary(
    left: &mut Expr,
    op: &BinaryOperator,
    right: &mut Expr,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    let jsonb = |t: Option<PgType>| t == Some(PgType::Jsonb);
    let json_like = |t: Option<PgType>| matches!(t, Some(PgType::Json | PgType::Jsonb));
    let quoted = crate::ast::is_quoted;
    let flag = |b: bool| text(if b { "t" } else { "f" });
    let integer = |e: &Expr, t: Option<PgType>| {
        t.is_some_and(PgType::is_integer)
            || matches!(e, Expr::Value(v) if matches!(&v.value, sqlparser::ast::Value::Number(n, _) if !n.contains(['.', 'e', 'E'])))
            || matches!(e, Expr::UnaryOp { expr, .. } if matches!(expr.as_ref(), Expr::Value(v) if matches!(&v.value, sqlparser::ast::Value::Number(..))))
    };
    let pg_json = |name: &str, mut args: Vec<Expr>| {
        args.insert(0, text(name));
        call("pg_json", args)
    };
    // jsonb || jsonb (a quoted literal beside jsonb is jsonb); text || jsonb stays text.
    let concat = (jsonb(l) && (jsonb(r) || quoted(right))) || (jsonb(r) && quoted(left));
    // An operand already rewritten to an array concatenation (`a || b || c`, typed inner
    // first) is an array too.
    let cat = |e: &Expr| {
        matches!(e, Expr::Function(f) if function_name(f) == "pg_json"
            && crate::ast::function_args(f).first().is_some_and(|a| a.to_string() == "'array_cat'"))
    };
    let l = if cat(left) || matches!(left, Expr::Array(_)) {
        Some(PgType::TextArray)
    } else {
        l
    };
    let r = if cat(right) || matches!(right, Expr::Array(_)) {
        Some(PgType::TextArray)
    } else {
        r
    };
    let array = |t: Option<PgType>| t.is_some_and(|t| t.element().is_some());
    match op {
        BinaryOperator::StringConcat if array(l) || array(r) => {
            if (!array(l) && quoted(left)) || (!array(r) && quoted(right)) {
                return Some(call(
                    "pg_unsupported",
                    vec![text("|| between an array and an untyped literal")],
                ));
            }
            let side = |e: &mut Expr, is_array: bool| {
                if is_array {
                    take(e)
                } else {
                    call("json_array", vec![take(e)])
                }
            };
            Some(pg_json(
                "array_cat",
                vec![side(left, array(l)), side(right, array(r))],
            ))
        }
        BinaryOperator::StringConcat if concat => {
            Some(pg_json("concat", vec![take(left), take(right)]))
        }
        BinaryOperator::Arrow | BinaryOperator::LongArrow if json_like(l) => {
            let kind = if integer(right, r) { "i" } else { "k" };
            Some(pg_json(
                "get",
                vec![
                    take(left),
                    take(right),
                    text(kind),
                    flag(jsonb(l)),
                    flag(*op == BinaryOperator::LongArrow),
                ],
            ))
        }
        BinaryOperator::HashArrow | BinaryOperator::HashLongArrow if json_like(l) => Some(pg_json(
            "path",
            vec![
                take(left),
                take(right),
                flag(jsonb(l)),
                flag(*op == BinaryOperator::HashLongArrow),
            ],
        )),
        BinaryOperator::AtArrow | BinaryOperator::ArrowAt
            if (jsonb(l) || jsonb(r))
                && (jsonb(l) || quoted(left))
                && (jsonb(r) || quoted(right)) =>
        {
            let name = if *op == BinaryOperator::AtArrow {
                "contains"
            } else {
                "contained"
            };
            Some(pg_json(name, vec![take(left), take(right)]))
        }
        BinaryOperator::Question if jsonb(l) => {
            Some(pg_json("exists", vec![take(left), take(right)]))
        }
        BinaryOperator::QuestionPipe | BinaryOperator::QuestionAnd if jsonb(l) => {
            let name = if *op == BinaryOperator::QuestionPipe {
                "exists_any"
            } else {
                "exists_all"
            };
            Some(pg_json(name, vec![take(left), take(right)]))
        }
        BinaryOperator::Minus if jsonb(l) => {
            let kind = if integer(right, r) {
                "i"
            } else if r == Some(PgType::TextArray) {
                "a"
            } else {
                "k"
            };
            Some(pg_json("delete", vec![take(left), take(right), text(kind)]))
        }
        BinaryOperator::HashMinus if jsonb(l) => {
            Some(pg_json("delete_path", vec![take(left), take(right)]))
        }
        // Comparisons of jsonb follow jsonb's order (the pg_jsonb collation, which parses
        // both sides), not the text's: `1.0` equals `1`, `10` is above `9`.
        op if crate::ast::is_comparison(op) && (jsonb(l) || jsonb(r)) => {
            let marked = |e: Expr| {
                crate::ast::collated(crate::ast::text_affinity(e), crate::JSONB_COLLATION)
            };
            Some(Expr::BinaryOp {
                left: Box::new(marked(take(left))),
                op: op.clone(),
                right: Box::new(take(right)),
            })
        }
        // PostgreSQL-only operators left: on these operand types mdbc has no meaning for
        // them, and SQLite would fail with its own tokenizer's error.
        BinaryOperator::AtArrow
        | BinaryOperator::ArrowAt
        | BinaryOperator::Question
        | BinaryOperator::QuestionPipe
        | BinaryOperator::QuestionAnd
        | BinaryOperator::HashArrow
        | BinaryOperator::HashLongArrow
        | BinaryOperator::HashMinus
        | BinaryOperator::AtAt
        | BinaryOperator::AtQuestion => {
            let name = |t: Option<PgType>| t.map(PgType::name).unwrap_or("unknown");
            Some(call(
                "pg_unsupported",
                vec![text(&format!("operator {} {op} {}", name(l), name(r)))],
            ))
        }
        _ => None,
    }
}

/// json/jsonb functions whose PostgreSQL meaning SQLite's same-named functions do not
/// have, as `pg_json(op, …)` calls; `None` for any other function.
pub(crate) fn function(f: &Function, types: &[Option<PgType>]) -> Option<Expr> {
    let name = function_name(f);
    let args: Vec<Expr> = crate::ast::function_args(f).into_iter().cloned().collect();
    let jsonb = name.starts_with("jsonb");
    let pg_json = |op: &str, rest: Vec<Expr>| {
        let mut all = vec![text(op)];
        all.extend(rest);
        call("pg_json", all)
    };
    let flag = |b: bool| text(if b { "t" } else { "f" });
    let n = args.len();
    Some(match (name.as_str(), n) {
        ("jsonb_set", 3 | 4) => pg_json("set", args),
        ("jsonb_insert", 3 | 4) => pg_json("insert", args),
        ("jsonb_strip_nulls", 1) => pg_json("strip_nulls", args),
        ("jsonb_pretty", 1) => pg_json("pretty", args),
        ("jsonb_typeof" | "json_typeof", 1) => pg_json("typeof", args),
        ("jsonb_array_length" | "json_array_length", 1) => pg_json("array_length", args),
        (
            "jsonb_extract_path"
            | "json_extract_path"
            | "jsonb_extract_path_text"
            | "json_extract_path_text",
            n,
        ) if n >= 1 => {
            let mut it = args.into_iter();
            let target = it.next()?;
            let path = call("json_array", it.collect());
            pg_json(
                "path",
                vec![target, path, flag(jsonb), flag(name.ends_with("_text"))],
            )
        }
        ("to_jsonb", 1) if matches!(types.first(), Some(Some(PgType::Json | PgType::Jsonb))) => {
            pg_json("jsonb", args)
        }
        // What SQLite would answer under the same name, differently.
        (
            "json_object"
            | "jsonb_object"
            | "json_each"
            | "jsonb_each"
            | "json_extract"
            | "json_valid"
            | "json_quote"
            | "json_remove"
            | "json_replace"
            | "json_patch"
            | "json_insert"
            | "json_set"
            | "json_type"
            | "json_tree"
            | "json_group_array"
            | "json_group_object"
            | "json_array"
            | "json_error_position"
            | "jsonb_array"
            | "jsonb_extract"
            | "jsonb_group_array"
            | "jsonb_group_object"
            | "jsonb_insert"
            | "jsonb_patch"
            | "jsonb_remove"
            | "jsonb_replace"
            | "jsonb_set",
            _,
        ) => call(
            "pg_unsupported",
            vec![text(&format!("{name} with {n} arguments"))],
        ),
        _ => return None,
    })
}

/// A json/jsonb table function: the `pg_json` operation that lists its rows, whether it
/// reads jsonb, whether values come out as text, and its columns (PostgreSQL's names).
pub(crate) struct TableFunction {
    pub op: &'static str,
    pub jsonb: bool,
    pub as_text: bool,
    pub columns: Vec<(&'static str, PgType)>,
}

/// The json/jsonb table function named `name`, if it is one.
pub(crate) fn table_function(name: &str) -> Option<TableFunction> {
    let jsonb = name.starts_with("jsonb_");
    let base = name
        .strip_prefix("jsonb_")
        .or_else(|| name.strip_prefix("json_"))?;
    let value_ty = if jsonb { PgType::Jsonb } else { PgType::Json };
    let (op, as_text, columns) = match base {
        "each" => (
            "each",
            false,
            vec![("key", PgType::Text), ("value", value_ty)],
        ),
        "each_text" => (
            "each",
            true,
            vec![("key", PgType::Text), ("value", PgType::Text)],
        ),
        "array_elements" => ("elements", false, vec![("value", value_ty)]),
        "array_elements_text" => ("elements", true, vec![("value", PgType::Text)]),
        "object_keys" => (
            "keys",
            true,
            vec![(
                if jsonb {
                    "jsonb_object_keys"
                } else {
                    "json_object_keys"
                },
                PgType::Text,
            )],
        ),
        _ => return None,
    };
    Some(TableFunction {
        op,
        jsonb,
        as_text,
        columns,
    })
}

impl TableFunction {
    /// The column names under `alias` (`AS q(k, v)` renames in order; `AS q` alone names
    /// the single column of object_keys, which has no name of its own).
    pub(crate) fn names(&self, alias: Option<&sqlparser::ast::TableAlias>) -> Vec<String> {
        let mut names: Vec<String> = self.columns.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(a) = alias {
            if a.columns.is_empty() && self.op == "keys" {
                names[0] = crate::ast::ident_value(&a.name);
            }
            for (i, c) in a.columns.iter().enumerate() {
                if let Some(n) = names.get_mut(i) {
                    *n = crate::ast::ident_value(&c.name);
                }
            }
        }
        names
    }

    /// The query SQLite runs: `pg_json` lists the rows as a JSON array, SQLite's own
    /// json_each walks it (in order).
    pub(crate) fn subquery_sql(&self, names: &[String]) -> String {
        let flag = |b: bool| if b { "'t'" } else { "'f'" };
        let q = |n: &str| crate::ast::quote_ident(n);
        let list = format!(
            "json_each(pg_json('{}', __arg1, {}, {}))",
            self.op,
            flag(self.jsonb),
            flag(self.as_text)
        );
        match self.op {
            "each" => format!(
                "SELECT json_extract(value, '$[0]') AS {}, json_extract(value, '$[1]') AS {} FROM {list}",
                q(&names[0]),
                q(&names[1])
            ),
            _ => format!("SELECT value AS {} FROM {list}", q(&names[0])),
        }
    }
}

/// `jsonb[…][…]`: PostgreSQL's jsonb subscripting is a path read (`#>`), keys and
/// indexes (negative from the end) alike; json has no subscripting (42804).
pub(crate) fn subscript(e: &mut Expr, root_type: Option<PgType>) -> Option<Expr> {
    let Expr::CompoundFieldAccess { root, access_chain } = e else {
        return None;
    };
    match root_type {
        Some(PgType::Jsonb) => {}
        Some(PgType::Json) => {
            return Some(call(
                "pg_error",
                vec![
                    text("42804"),
                    text("cannot subscript type json because it does not support subscripting"),
                ],
            ))
        }
        _ => return None,
    }
    let mut steps = Vec::with_capacity(access_chain.len());
    for a in access_chain.iter_mut() {
        match a {
            sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index { index }) => {
                steps.push(take(index))
            }
            _ => {
                return Some(call(
                    "pg_unsupported",
                    vec![text("jsonb subscript slices or field access")],
                ))
            }
        }
    }
    Some(call(
        "pg_json",
        vec![
            text("path"),
            take(root),
            call("json_array", steps),
            text("t"),
            text("f"),
        ],
    ))
}
