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
        i += 1;
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
            Some(PgType::Bool) => call(
                "json",
                vec![crate::ast::bool_case(take(e), text("true"), text("false"))],
            ),
            _ => continue,
        };
    }
}

/// Binary operators on jsonb: `||` concatenates jsonb values (`pg_jsonb_concat`), `->>`
/// gives an object or array in jsonb's text form (`pg_jsonb_text`), and ordering
/// comparisons (PostgreSQL's jsonb order is not the text's) are refused when they run.
pub(crate) fn binary(
    left: &mut Expr,
    op: &BinaryOperator,
    right: &mut Expr,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    let jsonb = |t: Option<PgType>| t == Some(PgType::Jsonb);
    let quoted = crate::ast::is_quoted;
    // jsonb || jsonb (a quoted literal beside jsonb is jsonb); text || jsonb stays text.
    let concat = (jsonb(l) && (jsonb(r) || quoted(right))) || (jsonb(r) && quoted(left));
    match op {
        BinaryOperator::StringConcat if concat => {
            Some(call("pg_jsonb_concat", vec![take(left), take(right)]))
        }
        BinaryOperator::LongArrow if jsonb(l) => Some(call(
            "pg_jsonb_text",
            vec![Expr::BinaryOp {
                left: Box::new(take(left)),
                op: BinaryOperator::Arrow,
                right: Box::new(take(right)),
            }],
        )),
        BinaryOperator::Lt | BinaryOperator::LtEq | BinaryOperator::Gt | BinaryOperator::GtEq
            if jsonb(l) || jsonb(r) =>
        {
            Some(call(
                "pg_unsupported",
                vec![text("ordering comparisons of jsonb values")],
            ))
        }
        _ => None,
    }
}
