//! Syntax-tree rewrites from PostgreSQL's dialect into SQLite's.
//!
//! Every rewrite works on the tree, never on text: casts become `pg_coerce(expr, oid,
//! typmod)` (so a bad value raises 22P02 as in PostgreSQL instead of SQLite's silent 0),
//! `$n` becomes `?n`, `ILIKE` becomes a `LIKE` over `lower()`, `= ANY(ARRAY[…])` becomes
//! `IN (…)`, `generate_series(…) AS x` becomes a derived table naming SQLite's `value`
//! column, and values written into typed columns are normalised.

pub(crate) mod assignment;
pub(crate) mod dml;

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, Function, Ident, LimitClause, ObjectName, ObjectNamePart,
    Query, SelectItem, SetExpr, Subscript, TableAlias, TableFactor, TrimWhereField, UnaryOperator,
    Value, VisitMut, VisitorMut,
};

use crate::ast::{
    call, coerce, function_args, function_name, number, object_name_to_table, parse_query,
    quote_ident,
};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::introspect::{functions, lateral, reg};
use crate::types::PgType;
use crate::NUMERIC_COLLATION;

pub(super) struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = Error;

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Error> {
        if relation.0.len() == 2 {
            let name = object_name_to_table(relation);
            if name.starts_with("information_schema_") {
                *relation = ObjectName::from(vec![Ident::new(name)]);
                return ControlFlow::Continue(());
            }
            if let Some(ObjectNamePart::Identifier(schema)) = relation.0.first() {
                // One schema; the system catalogs are views beside the tables
                // (migrations/sqlite/0002_pg_catalog.sql).
                if schema.value.eq_ignore_ascii_case("public")
                    || schema.value.eq_ignore_ascii_case("pg_catalog")
                {
                    relation.0.remove(0);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<Error> {
        materialize_volatile_ctes(q);
        if let Err(e) = crate::distinct_on::rewrite(q) {
            return ControlFlow::Break(e);
        }
        // SQLite takes OFFSET only after a LIMIT; -1 is no limit.
        if let Some(LimitClause::LimitOffset {
            limit: limit @ None,
            offset: Some(_),
            ..
        }) = &mut q.limit_clause
        {
            *limit = Some(number(-1));
        }
        lateral::inline_lateral(q);
        match lateral::set_returning_select_list(q) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<Error> {
        match rewrite_table_factor(tf) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        reg::reg_to_text(expr);
        sequence_by_name(expr);
        // Before the children: the ARRAY inside `= ANY(ARRAY[…])` must become an IN list
        // before the array itself is visited (bare arrays are unsupported).
        match rewrite_any_all(expr) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        match rewrite_expr(expr) {
            Ok(()) => {
                group_operands(expr);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

/// PostgreSQL evaluates a CTE once however often it is read (unless it is inlined, which
/// it never is with a volatile function); SQLite runs it again at each reference, so
/// `WITH q AS (SELECT random()) … q … UNION … q …` would see two different draws. A CTE
/// calling a volatile function is therefore materialized explicitly.
fn materialize_volatile_ctes(q: &mut Query) {
    let Some(with) = q.with.as_mut() else {
        return;
    };
    for cte in &mut with.cte_tables {
        if cte.materialized.is_some() {
            continue;
        }
        let volatile = sqlparser::ast::visit_expressions(&cte.query, |e| match e {
            Expr::Function(f)
                if matches!(
                    function_name(f).as_str(),
                    "random"
                        | "gen_random_uuid"
                        | "uuid_generate_v4"
                        | "nextval"
                        | "setval"
                        | "clock_timestamp"
                        | "timeofday"
                        | "setseed"
                        | "pg_sleep"
                ) =>
            {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        })
        .is_break();
        if volatile {
            cte.materialized = Some(sqlparser::ast::CteAsMaterialized::Materialized);
        }
    }
}

/// The tree says how PostgreSQL grouped an expression; the text SQLite reads must say it
/// too. Their precedences differ — `'a' || 2 + 2` is `'a' || (2 + 2)` in PostgreSQL but
/// `('a' || 2) + 2` in SQLite, and likewise the bit shifts against `+`, or `IS` against
/// comparisons — so an operand is printed in parentheses wherever SQLite would otherwise
/// group it differently from the tree.
fn group_operands(expr: &mut Expr) {
    fn wrap(e: &mut Expr) {
        let inner = std::mem::replace(e, Expr::value(Value::Null));
        *e = Expr::Nested(Box::new(inner));
    }
    match expr {
        Expr::BinaryOp { left, op, right } => {
            let at = binary_strength(op);
            if strength(left) < at {
                wrap(left);
            }
            if strength(right) <= at {
                wrap(right);
            }
        }
        Expr::UnaryOp { op, expr } if strength(expr) < unary_strength(op) => wrap(expr),
        _ => {}
    }
}

/// How tightly SQLite binds a binary operator (its grammar's precedence, loosest first);
/// 0 for one it does not have as such (its operands always get parentheses).
fn binary_strength(op: &BinaryOperator) -> u8 {
    use BinaryOperator as B;
    match op {
        B::Or => 1,
        B::And => 2,
        B::Eq | B::NotEq => 4,
        B::Lt | B::LtEq | B::Gt | B::GtEq => 5,
        B::BitwiseAnd | B::BitwiseOr | B::PGBitwiseShiftLeft | B::PGBitwiseShiftRight => 6,
        B::Plus | B::Minus => 7,
        B::Multiply | B::Divide | B::Modulo => 8,
        B::StringConcat | B::Arrow | B::LongArrow => 9,
        _ => 0,
    }
}

fn unary_strength(op: &UnaryOperator) -> u8 {
    match op {
        UnaryOperator::Not => 3,
        UnaryOperator::Plus | UnaryOperator::Minus | UnaryOperator::BitwiseNot => 10,
        _ => 0,
    }
}

/// How tightly an expression holds together in SQLite's grammar as an operand (u8::MAX
/// for one that cannot be split: a name, a literal, a call, a parenthesised expression).
fn strength(e: &Expr) -> u8 {
    match e {
        Expr::BinaryOp { op, .. } => binary_strength(op),
        Expr::UnaryOp { op, .. } => unary_strength(op),
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::InUnnest { .. } => 4,
        Expr::Collate { .. } => 11,
        _ => u8::MAX,
    }
}

fn rewrite_table_factor(tf: &mut TableFactor) -> Result<()> {
    // SQLite takes an alias without AS in FROM but not in UPDATE or DELETE.
    if let TableFactor::Table { alias: Some(a), .. } = tf {
        a.explicit = true;
    }
    if let TableFactor::UNNEST {
        alias,
        array_exprs,
        with_offset: false,
        with_ordinality: false,
        ..
    } = tf
    {
        // `unnest(array) [AS] x`: the array is kept as a JSON array, walked as it is.
        let [array] = array_exprs.as_slice() else {
            return Err(Error::Unsupported("unnest of several arrays".into()));
        };
        *tf = one_column_function(alias.as_ref(), "unnest", "", std::slice::from_ref(array))?;
        return Ok(());
    }
    match tf {
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } => {
            let fname = object_name_to_table(name);
            let internal = alias
                .as_ref()
                .is_some_and(|a| a.name.value.starts_with("__"));
            if fname == "json_each" && internal {
                // What unnest() becomes (introspect.rs): SQLite's own table function.
                return Ok(());
            }
            if matches!(
                fname.as_str(),
                "regexp_split_to_table" | "regexp_matches" | "unnest"
            ) && !(fname == "unnest" && args.args.len() != 1)
            {
                // One column: the pieces (text) or each match's groups (text[]), walked
                // from the array the scalar form builds; an array is walked as it is.
                let exprs: Vec<Expr> = function_arg_exprs(&args.args);
                let builder = match fname.as_str() {
                    "regexp_matches" => "pg_regexp_matches",
                    "unnest" => "",
                    _ => "regexp_split_to_array",
                };
                *tf = one_column_function(alias.as_ref(), &fname, builder, &exprs)?;
                return Ok(());
            }
            if let Some(json) = crate::json::table_function(&fname) {
                let exprs: Vec<Expr> = function_arg_exprs(&args.args);
                let [arg] = exprs.as_slice() else {
                    return Err(Error::Unsupported(format!(
                        "{fname} with {} arguments",
                        exprs.len()
                    )));
                };
                let names = json.names(alias.as_ref());
                let mut sub = parse_query(&json.subquery_sql(&names))?;
                crate::introspect::fill_query(&mut sub, std::slice::from_ref(arg));
                let table_alias = alias
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| Ident::new(fname.clone()));
                *tf = derived(sub, table_alias);
                return Ok(());
            }
            if fname != "generate_series" {
                return Err(Error::Unsupported(format!("table function {fname}")));
            }
            if !(2..=3).contains(&args.args.len()) {
                return Err(Error::InvalidParameter(
                    "generate_series takes a start, a stop and an optional step".into(),
                ));
            }
            let column_of = |alias: &Option<TableAlias>| match alias {
                Some(a) => {
                    let col = a
                        .columns
                        .first()
                        .map(|c| c.name.value.clone())
                        .unwrap_or_else(|| a.name.value.clone());
                    (a.name.clone(), col)
                }
                None => (Ident::new("generate_series"), "generate_series".to_string()),
            };
            let exprs: Vec<Expr> = function_arg_exprs(&args.args);
            if let Some(kind) = exprs.first().and_then(crate::datetime::series_kind) {
                if exprs.len() != 3 {
                    return Err(Error::Unsupported(
                        "generate_series over timestamps without a step interval".into(),
                    ));
                }
                let (table_alias, column) = column_of(alias);
                let subquery = crate::datetime::series_subquery(exprs, kind, &column)?;
                *tf = derived(subquery, table_alias);
                return Ok(());
            }
            // SQLite's series counts in integers: numeric, timestamp or other bounds would
            // be truncated to integers and give other rows than PostgreSQL's.
            let integral = |a: &sqlparser::ast::FunctionArg| match a {
                sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                    match e {
                        Expr::Value(v) => match &v.value {
                            Value::Number(n, _) => n.parse::<i64>().is_ok(),
                            Value::SingleQuotedString(s) => s.trim().parse::<i64>().is_ok(),
                            Value::Placeholder(_) => true,
                            _ => false,
                        },
                        Expr::Function(f) => {
                            !matches!(function_name(f).as_str(), "pg_coerce")
                                || matches!(
                                    function_args(f).get(1),
                                    Some(Expr::Value(v)) if matches!(&v.value,
                                        Value::Number(oid, _) if matches!(oid.as_str(), "20" | "21" | "23"))
                                )
                        }
                        Expr::Collate { .. } | Expr::Cast { .. } => false,
                        _ => true,
                    }
                }
                _ => true,
            };
            if !args.args.iter().all(integral) {
                return Err(Error::Unsupported(
                    "generate_series over numeric, date or timestamp values".into(),
                ));
            }
            // A zero step is PostgreSQL's 22023 (SQLite would count in ones).
            if let Some(sqlparser::ast::FunctionArg::Unnamed(
                sqlparser::ast::FunctionArgExpr::Expr(step),
            )) = args.args.get_mut(2)
            {
                let s = std::mem::replace(step, Expr::value(Value::Null));
                *step = call("pg_series_step", vec![s]);
            }
            let (table_alias, column) = column_of(alias);
            // The client's argument expressions move into the subquery as they are (not
            // printed and re-parsed: `?1` is not PostgreSQL syntax).
            let sub = format!(
                "SELECT value AS {} FROM generate_series(0, 0)",
                quote_ident(&column)
            );
            let mut subquery = parse_query(&sub)?;
            if let SetExpr::Select(sel) = subquery.body.as_mut() {
                if let Some(TableFactor::Table {
                    args: Some(inner), ..
                }) = sel.from.first_mut().map(|f| &mut f.relation)
                {
                    inner.args = std::mem::take(&mut args.args);
                }
            }
            *tf = derived(subquery, table_alias);
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            // SQLite cannot name a derived table's columns in its alias (`AS v(a, b)`):
            // name them inside the subquery instead.
            let Some(a) = alias else { return Ok(()) };
            if a.columns.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = a.columns.iter().map(|c| c.name.value.clone()).collect();
            match subquery.body.as_mut() {
                SetExpr::Values(values) => {
                    let width = values.rows.first().map(|r| r.content.len()).unwrap_or(0);
                    if width != names.len() {
                        return Err(Error::InvalidParameter(format!(
                            "VALUES has {width} columns but the alias names {}",
                            names.len()
                        )));
                    }
                    let projection: Vec<String> = names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| format!("column{} AS {}", i + 1, quote_ident(n)))
                        .collect();
                    // The VALUES query moves in as it is (re-parsing its text would fail
                    // on `?1`, already SQLite's syntax).
                    let sub = format!("SELECT {} FROM (SELECT 1)", projection.join(", "));
                    let mut outer = parse_query(&sub)?;
                    if let SetExpr::Select(sel) = outer.body.as_mut() {
                        if let Some(TableFactor::Derived {
                            subquery: inner, ..
                        }) = sel.from.first_mut().map(|f| &mut f.relation)
                        {
                            std::mem::swap(inner, subquery);
                        }
                    }
                    **subquery = outer;
                }
                SetExpr::Select(select) => {
                    if select.projection.len() != names.len()
                        || select.projection.iter().any(|p| {
                            matches!(
                                p,
                                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                            )
                        })
                    {
                        return Err(Error::Unsupported(
                            "column aliases on a derived table with a wildcard".into(),
                        ));
                    }
                    for (item, n) in select.projection.iter_mut().zip(&names) {
                        let expr = match item {
                            SelectItem::UnnamedExpr(e) => e.clone(),
                            SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
                            _ => continue,
                        };
                        *item = SelectItem::ExprWithAlias {
                            expr,
                            alias: Ident::with_quote('"', n.clone()),
                        };
                    }
                }
                _ => {
                    return Err(Error::Unsupported(
                        "column aliases on a set-operation derived table".into(),
                    ))
                }
            }
            a.columns.clear();
        }
        _ => {}
    }
    Ok(())
}

fn rewrite_expr(expr: &mut Expr) -> Result<()> {
    match expr {
        Expr::Subquery(q) if !at_most_one_row(q) && single_column(q) => {
            // PostgreSQL refuses a scalar subquery that returns a second row (21000);
            // SQLite would take the first. pg_scalar (mdbc-server) counts them.
            let inner = std::mem::replace(q.as_mut(), empty_query());
            let collation = first_column(&inner).and_then(|e| match e {
                Expr::Collate { collation, .. } => Some(collation.clone()),
                _ => None,
            });
            let mut wrapped = crate::ast::parse_query(
                "WITH __mdbc_s(__mdbc_v) AS (SELECT 1) SELECT pg_scalar(__mdbc_v) FROM __mdbc_s",
            )?;
            if let Some(with) = wrapped.with.as_mut() {
                if let Some(cte) = with.cte_tables.first_mut() {
                    *cte.query = inner;
                }
            }
            if let (Some(collation), SetExpr::Select(s)) = (collation, wrapped.body.as_mut()) {
                if let Some(SelectItem::UnnamedExpr(e)) = s.projection.first_mut() {
                    let x = std::mem::replace(e, null());
                    *e = Expr::Collate {
                        expr: Box::new(x),
                        collation,
                    };
                }
            }
            **q = wrapped;
        }
        Expr::Subquery(q) if !at_most_one_row(q) && column_count(q).is_some_and(|n| n > 1) => {
            // A row subquery (`SET (a, b) = (SELECT x, y …)`): the same rule, checked by
            // counting the rows of the subquery kept as a CTE.
            let n = column_count(q).unwrap_or(0);
            let names: Vec<String> = (1..=n).map(|i| format!("__mdbc_v{i}")).collect();
            let inner = std::mem::replace(q.as_mut(), empty_query());
            let mut wrapped = crate::ast::parse_query(&format!(
                "WITH __mdbc_s({cols}) AS (SELECT 1) SELECT {cols} FROM __mdbc_s WHERE \
                 (SELECT CASE WHEN count(*) > 1 THEN pg_error('21000', 'more than one row \
                 returned by a subquery used as an expression') END FROM __mdbc_s) IS NULL",
                cols = names.join(", ")
            ))?;
            if let Some(cte) = wrapped.with.as_mut().and_then(|w| w.cte_tables.first_mut()) {
                *cte.query = inner;
            }
            **q = wrapped;
        }
        Expr::Value(v) => match &mut v.value {
            Value::Placeholder(p) => {
                if let Some(n) = p.strip_prefix('$') {
                    *p = format!("?{n}");
                }
            }
            Value::EscapedStringLiteral(s) | Value::UnicodeStringLiteral(s) => {
                v.value = Value::SingleQuotedString(std::mem::take(s));
            }
            Value::DollarQuotedString(d) => {
                v.value = Value::SingleQuotedString(std::mem::take(&mut d.value));
            }
            // A decimal (or an integer beyond int8) is a numeric: its exact text, where
            // SQLite would read a double.
            Value::Number(n, false) if is_numeric_literal(n) => {
                v.value = Value::SingleQuotedString(std::mem::take(n));
            }
            _ => {}
        },
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => {
            let name = data_type.to_string();
            if let Some(r) = reg::reg_cast(inner, &name) {
                *expr = r?;
                return Ok(());
            }
            let spec = PgType::parse_sql_name(&name).ok_or_else(|| unsupported_type(&name))?;
            let mut inner = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            if matches!(spec.ty, PgType::Varchar | PgType::Bpchar) && spec.typmod >= 4 {
                // An explicit cast cuts to the length (only storing a value errors).
                inner = call(
                    "substr",
                    vec![inner, number(1), number((spec.typmod - 4) as i64)],
                );
            }
            *expr = typed_value(coerce(inner, spec.ty, spec.typmod), spec.ty);
        }
        Expr::TypedString(ts) => {
            let name = ts.data_type.to_string();
            let spec = PgType::parse_sql_name(&name).ok_or_else(|| unsupported_type(&name))?;
            let value = Expr::Value(ts.value.clone());
            *expr = typed_value(coerce(value, spec.ty, spec.typmod), spec.ty);
        }
        Expr::ILike {
            negated,
            expr: left,
            pattern,
            escape_char,
            any: false,
        } => {
            let left = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
            let pattern = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
            *expr = Expr::Like {
                negated: *negated,
                any: false,
                expr: Box::new(call("lower", vec![left])),
                pattern: Box::new(call("lower", vec![pattern])),
                escape_char: Some(escape_char.clone().unwrap_or_else(backslash)),
            };
        }
        // PostgreSQL's LIKE escapes with a backslash unless told otherwise; SQLite's has
        // no escape character at all.
        // Always, even for a literal without a backslash: plans are reused for other
        // literals of the same shape (literals.rs).
        Expr::Like {
            escape_char: escape @ None,
            ..
        } => *escape = Some(backslash()),
        Expr::Function(_) => rewrite_function(expr)?,
        // TRIM([BOTH | LEADING | TRAILING] [chars] FROM s): SQLite's trim(s, chars).
        // overlay(s placing r from n [for m]): substr(s, 1, n - 1) || r || substr(s, n + m),
        // m defaulting to r's length (characters of text, bytes of bytea, as SQLite's
        // substr and length count them).
        Expr::Overlay {
            expr: inner,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            let s = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            let r = std::mem::replace(overlay_what.as_mut(), Expr::value(Value::Null));
            let n = std::mem::replace(overlay_from.as_mut(), Expr::value(Value::Null));
            let m = match overlay_for.take() {
                Some(m) => *m,
                None => call("length", vec![r.clone()]),
            };
            let one = Expr::value(Value::Number("1".into(), false));
            let head = call(
                "substr",
                vec![
                    s.clone(),
                    one.clone(),
                    Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(n.clone()))),
                        op: BinaryOperator::Minus,
                        right: Box::new(one),
                    },
                ],
            );
            let tail = call(
                "substr",
                vec![
                    s,
                    Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(n))),
                        op: BinaryOperator::Plus,
                        right: Box::new(Expr::Nested(Box::new(m))),
                    },
                ],
            );
            let concat = |a: Expr, b: Expr| Expr::BinaryOp {
                left: Box::new(a),
                op: BinaryOperator::StringConcat,
                right: Box::new(b),
            };
            *expr = Expr::Nested(Box::new(concat(concat(head, r), tail)));
        }
        Expr::Trim {
            expr: inner,
            trim_where,
            trim_what,
            trim_characters,
        } => {
            let s = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            let mut args = vec![s];
            if let Some(w) = trim_what.take() {
                args.push(*w);
            } else if let Some(chars) = trim_characters.take() {
                args.extend(chars);
            }
            let f = match trim_where {
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
                _ => "trim",
            };
            *expr = call(f, args);
        }
        // `pg_catalog.pg_class.relname`: the schema goes, as it does on the relation.
        Expr::CompoundIdentifier(parts)
            if parts.len() == 3
                && (parts[0].value.eq_ignore_ascii_case("pg_catalog")
                    || parts[0].value.eq_ignore_ascii_case("public")) =>
        {
            parts.remove(0);
        }
        Expr::Identifier(id) if id.quote_style.is_none() => {
            let replacement = match id.value.to_ascii_lowercase().as_str() {
                "current_user" | "session_user" | "user" => Some("current_user"),
                "current_schema" => Some("current_schema"),
                "current_catalog" => Some("current_database"),
                _ => None,
            };
            if let Some(f) = replacement {
                *expr = call(f, vec![]);
            }
        }
        Expr::Position { expr: needle, r#in } => {
            let needle = std::mem::replace(needle.as_mut(), Expr::value(Value::Null));
            let hay = std::mem::replace(r#in.as_mut(), Expr::value(Value::Null));
            *expr = call("instr", vec![hay, needle]);
        }
        Expr::Substring {
            expr: s,
            substring_from,
            substring_for,
            ..
        } => {
            let s = std::mem::replace(s.as_mut(), Expr::value(Value::Null));
            let quoted = |e: &Option<Box<Expr>>| {
                matches!(e.as_deref(), Some(Expr::Value(v))
                    if matches!(v.value, Value::SingleQuotedString(_)))
            };
            // `SUBSTRING(s FROM 'pattern')`: the first match of a POSIX regular expression
            // (its first parenthesised group if it has one).
            if quoted(substring_from) {
                if substring_for.is_some() {
                    return Err(Error::Unsupported(
                        "SUBSTRING … FROM pattern FOR escape (SQL regular expressions)".into(),
                    ));
                }
                let pattern = substring_from
                    .take()
                    .map(|b| *b)
                    .unwrap_or_else(|| number(1));
                *expr = call("pg_substring_regex", vec![s, pattern]);
                return Ok(());
            }
            let from = substring_from
                .take()
                .map(|b| *b)
                .unwrap_or_else(|| number(1));
            let mut args = vec![s, from];
            if let Some(f) = substring_for.take() {
                args.push(*f);
            }
            // PostgreSQL's positions: a start before 1 shortens the result (SQLite's substr
            // would count a negative start from the end).
            *expr = call("pg_substr", args);
        }
        Expr::Interval(_) => {
            return Err(Error::Unsupported(
                "this INTERVAL literal's qualifier (fields or precision)".into(),
            ))
        }
        // Arrays are JSON arrays in SQLite (mdbc-server's arrays.rs).
        Expr::Array(a) => *expr = call("json_array", std::mem::take(&mut a.elem)),
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `a[i]` on a (JSON) array; PostgreSQL counts from 1.
            let [AccessExpr::Subscript(Subscript::Index { index })] = access_chain.as_mut_slice()
            else {
                return Err(Error::Unsupported("array slices and nested access".into()));
            };
            let index = std::mem::replace(index, Expr::value(Value::Null));
            let root = std::mem::replace(root.as_mut(), Expr::value(Value::Null));
            let path = Expr::BinaryOp {
                left: Box::new(Expr::BinaryOp {
                    left: Box::new(Expr::value(Value::SingleQuotedString("$[".into()))),
                    op: BinaryOperator::StringConcat,
                    right: Box::new(Expr::Nested(Box::new(Expr::BinaryOp {
                        left: Box::new(index),
                        op: BinaryOperator::Minus,
                        right: Box::new(number(1)),
                    }))),
                }),
                op: BinaryOperator::StringConcat,
                right: Box::new(Expr::value(Value::SingleQuotedString("]".into()))),
            };
            *expr = call("json_extract", vec![root, path]);
        }
        Expr::AtTimeZone { .. } => {
            return Err(Error::Unsupported(
                "AT TIME ZONE on a value not known to be a timestamp".into(),
            ))
        }
        Expr::Extract { .. } => {
            return Err(Error::Unsupported(
                "EXTRACT from a value not known to be a date, time or interval".into(),
            ))
        }
        // PostgreSQL's SIMILAR TO: a regular expression built from the pattern at run time
        // (mdbc-server's pg_similar), the escape character `\` unless another is given.
        Expr::SimilarTo {
            negated,
            expr: left,
            pattern,
            escape_char,
        } => {
            let left = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
            let pattern = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
            let escape = escape_char
                .take()
                .map(|b| *b)
                .unwrap_or_else(|| *backslash());
            let test = call("pg_similar", vec![left, pattern, escape]);
            *expr = if *negated {
                Expr::UnaryOp {
                    op: UnaryOperator::Not,
                    expr: Box::new(Expr::Nested(Box::new(test))),
                }
            } else {
                test
            };
        }
        Expr::Collate {
            expr: inner,
            collation,
        } => {
            // psql's `COLLATE pg_catalog.default`: the database's collation is SQLite's
            // binary one, so the clause changes nothing. Other collations are not here.
            let name = collation
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase());
            match name.as_deref() {
                Some("default" | "c" | "posix") => {
                    *expr = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                }
                // A numeric-valued expression (typed.rs marks them): text affinity, so
                // that what it is compared with is read as text and compared by the
                // collation. A column has its declared affinity already.
                // An interval-valued expression (datetime.rs): its text is canonical, the
                // collation orders it by span.
                Some(
                    crate::INTERVAL_COLLATION | crate::DATETIME_COLLATION | crate::JSONB_COLLATION,
                ) => {}
                Some(NUMERIC_COLLATION) => {
                    if !matches!(
                        inner.as_ref(),
                        Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                    ) {
                        let e = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                        **inner = crate::ast::text_affinity(e);
                    }
                }
                _ => return Err(Error::Unsupported(format!("COLLATE {collation}"))),
            }
        }
        Expr::BinaryOp { left, op, right } => {
            // `OPERATOR(pg_catalog.~)` (what psql writes) is the plain operator.
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                *op = plain_operator(parts)
                    .ok_or_else(|| Error::Unsupported(format!("OPERATOR({})", parts.join("."))))?;
            }
            let regex = match op {
                BinaryOperator::PGRegexMatch => Some(("", false)),
                BinaryOperator::PGRegexIMatch => Some(("i", false)),
                BinaryOperator::PGRegexNotMatch => Some(("", true)),
                BinaryOperator::PGRegexNotIMatch => Some(("i", true)),
                BinaryOperator::PGExp => {
                    let l = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
                    let r = std::mem::replace(right.as_mut(), Expr::value(Value::Null));
                    *expr = call("power", vec![l, r]);
                    return Ok(());
                }
                _ => None,
            };
            if let Some((flags, negated)) = regex {
                let l = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
                let r = std::mem::replace(right.as_mut(), Expr::value(Value::Null));
                let m = call(
                    "pg_regex",
                    vec![l, r, Expr::value(Value::SingleQuotedString(flags.into()))],
                );
                *expr = if negated {
                    Expr::UnaryOp {
                        op: sqlparser::ast::UnaryOperator::Not,
                        expr: Box::new(m),
                    }
                } else {
                    m
                };
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether a number literal is a numeric in PostgreSQL (a point, an exponent, or an
/// integer too large for int8).
pub(crate) fn is_numeric_literal(n: &str) -> bool {
    n.contains(['.', 'e', 'E']) || n.parse::<i64>().is_err()
}

/// A cast's result as SQLite must see it: a numeric or a jsonb gets text affinity and
/// its collation (comparisons and ORDER BY by value, not by text).
fn typed_value(e: Expr, ty: PgType) -> Expr {
    let collation = match ty {
        PgType::Numeric => NUMERIC_COLLATION,
        PgType::Jsonb => crate::JSONB_COLLATION,
        _ => return e,
    };
    Expr::Collate {
        expr: Box::new(crate::ast::text_affinity(e)),
        collation: ObjectName::from(vec![Ident::new(collation)]),
    }
}

fn rewrite_any_all(expr: &mut Expr) -> Result<()> {
    if let Some(chain) = pattern_any_all(expr)? {
        *expr = chain;
        return Ok(());
    }
    match expr {
        Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        } => {
            let negated = match compare_op {
                BinaryOperator::Eq => false,
                op => {
                    // `x < ANY (ARRAY[a, b])` is `x < a OR x < b`, NULLs included.
                    let Some(list) = array_elements(right) else {
                        return Err(Error::Unsupported(format!("{op} ANY (…)")));
                    };
                    let (left, op) = (std::mem::replace(left.as_mut(), null()), op.clone());
                    *expr = chain(list, false, |e| binary(left.clone(), op.clone(), e));
                    return Ok(());
                }
            };
            let left = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
            let Some(list) = array_elements(right) else {
                // An array value (a catalog column, a parameter): its elements.
                let array = std::mem::replace(right.as_mut(), Expr::value(Value::Null));
                *expr = functions::any_of_array(left, array, negated)?;
                return Ok(());
            };
            *expr = Expr::InList {
                expr: Box::new(left),
                list,
                negated,
            };
        }
        Expr::AllOp {
            left,
            compare_op,
            right,
        } => {
            let list = array_elements(right)
                .ok_or_else(|| Error::Unsupported("ALL over a non-literal array".into()))?;
            if *compare_op != BinaryOperator::NotEq {
                let (left, op) = (std::mem::replace(left.as_mut(), null()), compare_op.clone());
                *expr = chain(list, true, |e| binary(left.clone(), op.clone(), e));
                return Ok(());
            }
            let left = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
            *expr = Expr::InList {
                expr: Box::new(left),
                list,
                negated: true,
            };
        }
        _ => {}
    }
    Ok(())
}

/// `x [NOT] [I]LIKE ANY|SOME|ALL (ARRAY[p, q])`, which sqlparser reads as a pattern that
/// calls a function `all` (or as `any: true`): one LIKE per pattern, joined by OR (ANY) or
/// AND (ALL), which gives PostgreSQL's NULL rules; an empty array is false (ANY) or true
/// (ALL). A non-literal array is refused rather than matched as one pattern.
fn pattern_any_all(expr: &mut Expr) -> Result<Option<Expr>> {
    let (negated, left, pattern, escape_char, any, ilike) = match expr {
        Expr::Like {
            negated,
            expr,
            pattern,
            escape_char,
            any,
        } => (*negated, expr, pattern, escape_char, *any, false),
        Expr::ILike {
            negated,
            expr,
            pattern,
            escape_char,
            any,
        } => (*negated, expr, pattern, escape_char, *any, true),
        _ => return Ok(None),
    };
    let (all, array) =
        match pattern.as_ref() {
            Expr::Function(f) if f.name.0.len() == 1 && !any => {
                let name = function_name(f);
                let all = match name.as_str() {
                    "all" => true,
                    "any" | "some" => false,
                    _ => return Ok(None),
                };
                let is_quoted = f.name.0[0]
                    .as_ident()
                    .is_some_and(|i| i.quote_style.is_some());
                let sqlparser::ast::FunctionArguments::List(args) = &f.args else {
                    return Ok(None);
                };
                match args.args.as_slice() {
                    [sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(a),
                    )] if !is_quoted => (all, a.clone()),
                    _ => return Ok(None),
                }
            }
            p if any => (false, p.clone()),
            _ => return Ok(None),
        };
    let what = if all { "ALL" } else { "ANY" };
    let like = if ilike { "ILIKE" } else { "LIKE" };
    let list = array_elements(&array)
        .ok_or_else(|| Error::Unsupported(format!("{like} {what} over a non-literal array")))?;
    let left = std::mem::replace(left.as_mut(), null());
    let escape_char = escape_char.clone();
    Ok(Some(chain(list, all, |p| {
        let (expr, pattern) = (Box::new(left.clone()), Box::new(p));
        let escape_char = escape_char.clone();
        if ilike {
            Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            }
        } else {
            Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            }
        }
    })))
}

/// One test per element, joined by AND (`all`) or OR, parenthesised; an empty list is
/// the empty conjunction (true) or disjunction (false).
fn chain(list: Vec<Expr>, all: bool, test: impl Fn(Expr) -> Expr) -> Expr {
    let op = if all {
        BinaryOperator::And
    } else {
        BinaryOperator::Or
    };
    let joined = list
        .into_iter()
        .map(|e| Expr::Nested(Box::new(test(e))))
        .reduce(|a, b| binary(a, op.clone(), b));
    Expr::Nested(Box::new(
        joined.unwrap_or_else(|| Expr::value(Value::Boolean(all))),
    ))
}

fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn null() -> Expr {
    Expr::value(Value::Null)
}

/// Whether a scalar subquery cannot return a second row: no FROM, an aggregate without
/// GROUP BY, or LIMIT 0/1.
fn at_most_one_row(q: &Query) -> bool {
    if let Some(sqlparser::ast::LimitClause::LimitOffset {
        limit: Some(Expr::Value(v)),
        ..
    }) = &q.limit_clause
    {
        if matches!(&v.value, Value::Number(n, _) if n == "0" || n == "1") {
            return true;
        }
    }
    match q.body.as_ref() {
        SetExpr::Select(s) => {
            let grouped = match &s.group_by {
                sqlparser::ast::GroupByExpr::Expressions(e, _) => !e.is_empty(),
                sqlparser::ast::GroupByExpr::All(_) => true,
            };
            !grouped && (s.from.is_empty() || crate::introspect::empty::has_aggregate(s))
        }
        SetExpr::Values(v) => v.rows.len() <= 1,
        _ => false,
    }
}

/// Whether a subquery's select list is one expression (what the wrapper can name).
fn single_column(q: &Query) -> bool {
    first_select(q).is_some_and(|s| {
        matches!(
            s.projection.as_slice(),
            [SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }]
        )
    })
}

/// How many expressions a subquery's select list has (`None` with a star in it).
fn column_count(q: &Query) -> Option<usize> {
    let s = first_select(q)?;
    s.projection
        .iter()
        .all(|i| {
            matches!(
                i,
                SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
            )
        })
        .then_some(s.projection.len())
}

fn first_column(q: &Query) -> Option<&Expr> {
    match first_select(q)?.projection.first()? {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

/// The SELECT that names a query's columns (the leftmost of a set operation).
fn first_select(q: &Query) -> Option<&sqlparser::ast::Select> {
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            SetExpr::Select(s) => return Some(s),
            _ => return None,
        }
    }
}

fn empty_query() -> Query {
    Query {
        with: None,
        body: crate::ast::no_rows(),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    }
}

fn unsupported_type(name: &str) -> Error {
    if name.ends_with("[]") {
        Error::Unsupported(format!("array type {name}"))
    } else {
        Error::UndefinedType(name.to_ascii_lowercase())
    }
}

fn array_elements(e: &Expr) -> Option<Vec<Expr>> {
    match e {
        Expr::Array(a) => Some(a.elem.clone()),
        Expr::Nested(inner) => array_elements(inner),
        _ => None,
    }
}

/// `nextval('s'::regclass)` (how PostgreSQL prints a serial default) and the like: the
/// sequence functions take the name itself, so the cast (which would look up an oid)
/// goes before it is rewritten.
fn sequence_by_name(expr: &mut Expr) {
    let Expr::Function(f) = expr else {
        return;
    };
    if !matches!(function_name(f).as_str(), "nextval" | "currval" | "setval") {
        return;
    }
    if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
        if let Some(sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(
            first,
        ))) = list.args.first_mut()
        {
            if let Expr::Cast {
                expr: inner,
                data_type,
                ..
            } = first
            {
                if data_type.to_string().eq_ignore_ascii_case("regclass")
                    && crate::ast::is_quoted(inner)
                {
                    *first = (**inner).clone();
                }
            }
        }
    }
}

fn rewrite_function(expr: &mut Expr) -> Result<()> {
    let Expr::Function(f) = expr else {
        return Ok(());
    };
    if f.over.is_some() {
        // Window functions exist in SQLite with the same syntax.
    }
    let name = function_name(f);
    if let Some(r) = functions::catalog_function(&name, f).or_else(|| functions::array_subquery(f))
    {
        *expr = r?;
        return Ok(());
    }
    // Drop a `pg_catalog.` qualifier: SQLite would read it as a database name.
    if f.name.0.len() > 1 {
        f.name = ObjectName::from(vec![Ident::new(name.clone())]);
    }
    match name.as_str() {
        // The transaction's start, the statement's, and the wall clock.
        "now" | "current_timestamp" | "transaction_timestamp" => *expr = call("pg_now", vec![]),
        // The transaction's start as a wall clock in the session's zone.
        "localtimestamp" | "localtime" => {
            let target = if name == "localtime" {
                "time"
            } else {
                "timestamp"
            };
            *expr = call(
                "pg_datetime",
                vec![
                    Expr::value(Value::SingleQuotedString("local".into())),
                    Expr::value(Value::SingleQuotedString(target.into())),
                    call("pg_now", vec![]),
                ],
            )
        }
        "current_time" => {
            return Err(Error::Unsupported(
                "current_time (time with time zone; use localtime)".into(),
            ))
        }
        "statement_timestamp" => *expr = call("pg_statement_timestamp", vec![]),
        "clock_timestamp" => *expr = call("pg_clock_timestamp", vec![]),
        // One id per transaction (per site: each site numbers its own transactions).
        "txid_current"
        | "pg_current_xact_id"
        | "txid_current_if_assigned"
        | "pg_current_xact_id_if_assigned" => *expr = call("pg_txid_current", vec![]),
        "current_date" => *expr = call("pg_current_date", vec![]),
        "current_user" | "session_user" | "user" | "current_role" => {
            *expr = call("current_user", vec![])
        }
        "current_schema" => *expr = call("current_schema", vec![]),
        "current_catalog" => *expr = call("current_database", vec![]),
        "random" => *expr = call("pg_random", vec![]),
        // encode takes a bytea: an untyped literal is read as bytea input (`'\x12ab'`).
        "encode" => {
            if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
                if let Some(sqlparser::ast::FunctionArg::Unnamed(
                    sqlparser::ast::FunctionArgExpr::Expr(first),
                )) = list.args.first_mut()
                {
                    if crate::ast::is_quoted(first) {
                        let lit = std::mem::replace(first, Expr::value(Value::Null));
                        *first = crate::ast::coerce(lit, PgType::Bytea, -1);
                    }
                }
            }
        }
        "nextval" | "currval" | "lastval" => {
            let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
            *expr = call(&format!("pg_{name}"), args);
        }
        "setval" => {
            let mut args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
            if args.len() == 2 {
                args.push(Expr::value(Value::Boolean(true)));
            }
            *expr = call("pg_setval", args);
        }
        // Arrays and JSON objects are built by SQLite's JSON functions.
        "array_agg" | "json_agg" | "jsonb_agg" | "json_object_agg" | "jsonb_object_agg" => {
            let object = name.ends_with("object_agg");
            rename(
                f,
                if object {
                    "json_group_object"
                } else {
                    "json_group_array"
                },
            );
            // PostgreSQL's aggregates of no rows are NULL; SQLite's are `[]` / `{}`. The
            // same rows (FILTER included) are counted beside them.
            let window = f.over.is_some();
            let mut count = Function {
                name: ObjectName::from(vec![Ident::new("count")]),
                uses_odbc_syntax: false,
                parameters: sqlparser::ast::FunctionArguments::None,
                args: sqlparser::ast::FunctionArguments::List(
                    sqlparser::ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Wildcard,
                        )],
                        clauses: Vec::new(),
                    },
                ),
                filter: f.filter.clone(),
                null_treatment: None,
                over: f.over.clone(),
                within_group: Vec::new(),
            };
            if window {
                count.over = f.over.clone();
            }
            let agg = std::mem::replace(expr, Expr::value(Value::Null));
            let agg = if name == "json_object_agg" {
                call(
                    "pg_json",
                    vec![
                        Expr::value(Value::SingleQuotedString("object_agg_layout".into())),
                        agg,
                    ],
                )
            } else if name == "json_agg" {
                call(
                    "pg_json_layout",
                    vec![agg, Expr::value(Value::SingleQuotedString(String::new()))],
                )
            } else {
                agg
            };
            *expr = Expr::Case {
                case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                operand: None,
                conditions: vec![sqlparser::ast::CaseWhen {
                    condition: Expr::BinaryOp {
                        left: Box::new(Expr::Function(count)),
                        op: BinaryOperator::Eq,
                        right: Box::new(number(0)),
                    },
                    result: Expr::value(Value::Null),
                }],
                else_result: Some(Box::new(agg)),
            };
        }
        "jsonb_build_object" => rename(f, "json_object"),
        "jsonb_build_array" => rename(f, "json_array"),
        // json (not jsonb) keeps the layout its builder wrote: `{"a" : 1, "b" : 2}`,
        // `[1, 2]` at the top level, where SQLite writes them compact.
        "json_build_object" | "json_build_array" => {
            let object = name == "json_build_object";
            rename(f, if object { "json_object" } else { "json_array" });
            let built = std::mem::replace(expr, Expr::value(Value::Null));
            *expr = call(
                "pg_json_layout",
                vec![
                    built,
                    Expr::value(Value::SingleQuotedString(
                        if object { " : " } else { "" }.into(),
                    )),
                ],
            );
        }
        // A value as JSON (its argument already made a JSON value by json.rs's
        // builder_args), jsonb then normalized.
        "to_json" | "to_jsonb" => {
            let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
            let element = Expr::BinaryOp {
                left: Box::new(call("json_array", args)),
                op: BinaryOperator::Arrow,
                right: Box::new(Expr::value(Value::SingleQuotedString("$[0]".into()))),
            };
            *expr = if name == "to_jsonb" {
                call(
                    "pg_json",
                    vec![
                        Expr::value(Value::SingleQuotedString("jsonb".into())),
                        element,
                    ],
                )
            } else {
                element
            };
        }
        "cardinality" => rename(f, "json_array_length"),
        // Booleans are 0/1: all true is the minimum, any true the maximum.
        "bool_and" | "every" => rename(f, "min"),
        "bool_or" => rename(f, "max"),
        "array_length" | "array_upper" => {
            let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
            let mut all = vec![Expr::value(Value::SingleQuotedString(
                "array_dim_length".into(),
            ))];
            all.extend(args);
            *expr = call("pg_json", all);
        }
        "unnest" | "generate_subscripts" => {
            return Err(Error::Unsupported(format!(
                "{name} other than as a select-list item"
            )))
        }
        "generate_series" => {
            return Err(Error::Unsupported(
                "generate_series in a select list (use it in FROM)".into(),
            ))
        }
        _ => {}
    }
    Ok(())
}

/// A table function of one column walked from the JSON array `builder(exprs)` (`exprs`
/// alone when `builder` is empty), named by `alias` as PostgreSQL names it: `AS t(x)`
/// names the column x, `AS x` both, no alias the function.
fn one_column_function(
    alias: Option<&TableAlias>,
    function: &str,
    builder: &str,
    exprs: &[Expr],
) -> Result<TableFactor> {
    let column = match alias {
        Some(a) => a
            .columns
            .first()
            .map(|c| c.name.value.clone())
            .unwrap_or_else(|| a.name.value.clone()),
        None => function.to_string(),
    };
    let placeholders: Vec<String> = (1..=exprs.len()).map(|i| format!("__arg{i}")).collect();
    let mut sub = parse_query(&format!(
        "SELECT value AS {} FROM json_each({builder}({}))",
        quote_ident(&column),
        placeholders.join(", ")
    ))?;
    crate::introspect::fill_query(&mut sub, exprs);
    let table_alias = alias
        .map(|a| a.name.clone())
        .unwrap_or_else(|| Ident::new(function));
    Ok(derived(sub, table_alias))
}

/// `(subquery) AS alias`: what a table function becomes.
fn derived(subquery: Query, alias: Ident) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(subquery),
        alias: Some(TableAlias {
            explicit: true,
            name: alias,
            columns: vec![],
            at: None,
        }),
        sample: None,
    }
}

fn function_arg_exprs(args: &[sqlparser::ast::FunctionArg]) -> Vec<Expr> {
    args.iter()
        .filter_map(|a| match a {
            sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                Some(e.clone())
            }
            _ => None,
        })
        .collect()
}

fn backslash() -> Box<Expr> {
    Box::new(Expr::value(Value::SingleQuotedString("\\".into())))
}

fn rename(f: &mut Function, to: &str) {
    f.name = ObjectName::from(vec![Ident::new(to)]);
}

/// Rewrites every expression and table reference of a query.
pub fn rewrite_query(q: &mut Query, _catalog: &Catalog) -> Result<()> {
    match q.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// Rewrites every expression and table reference inside `node`.
pub(crate) fn visit<T: VisitMut>(node: &mut T) -> Result<()> {
    match node.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// The built-in operator that `OPERATOR(pg_catalog.op)` (or `OPERATOR(op)`) names, for the
/// ones clients write that way.
fn plain_operator(parts: &[String]) -> Option<BinaryOperator> {
    let op = match parts {
        [op] => op,
        [schema, op] if schema.eq_ignore_ascii_case("pg_catalog") => op,
        _ => return None,
    };
    Some(match op.as_str() {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" => BinaryOperator::NotEq,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Command;
    use crate::split::parse;
    use crate::translate::plan;

    fn sqlite(sql: &str) -> String {
        let cat = Catalog::default();
        let p = parse(sql).unwrap();
        match plan(&p[0], &cat).unwrap() {
            Command::Sql(p) => p.sql.join("; "),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 19, "How the translation reads PostgreSQL": SQLite must group operands as
    /// PostgreSQL's tree does; parentheses appear only where SQLite would regroup.
    #[test]
    fn operands_keep_postgres_grouping() {
        // (Arithmetic on typed operands becomes calls, see typed.rs and numeric.rs; these
        // columns have no known type.)
        assert_eq!(
            sqlite("select 'four: ' || a+b as x from t"),
            "SELECT 'four: ' || (a + b) AS x FROM t"
        );
        assert_eq!(
            sqlite("select a - b || 'x' as x from t"),
            "SELECT (a - b) || 'x' AS x FROM t"
        );
        assert_eq!(
            sqlite("select a - (b - c) as x from t"),
            "SELECT a - (b - c) AS x FROM t"
        );
        assert_eq!(
            sqlite("select a - b - c as x from t"),
            "SELECT a - b - c AS x FROM t"
        );
        assert_eq!(
            sqlite("select 'four: ' || 2.5+2 as x"),
            "SELECT 'four: ' || CAST(pg_numeric('+', '2.5', 2) AS TEXT) COLLATE pg_numeric AS x"
        );
        assert_eq!(
            sqlite("select 'four: ' || 2+2 as x"),
            "SELECT 'four: ' || pg_int4('+', 2, 2) AS x"
        );
        assert_eq!(
            sqlite("select 1 as x where 1 = 1 and 2 > 1 or 3 < 2"),
            "SELECT 1 AS x WHERE 1 = 1 AND 2 > 1 OR 3 < 2"
        );
    }

    /// Date/time arithmetic becomes `pg_datetime` calls naming the operand types (SQLite
    /// would subtract the texts' leading numbers); interval results carry the interval
    /// collation so they compare by span.
    #[test]
    fn datetime_arithmetic_names_its_types() {
        for (sql, op) in [
            (
                "select timestamptz '1997-02-11' - timestamptz '1997-01-02'",
                "'timestamptz - timestamptz'",
            ),
            ("select now() - now()", "'timestamptz - timestamptz'"),
            ("select time '10:00' - time '09:00'", "'time - time'"),
            ("select now() + '1 day'", "'timestamptz + interval'"),
            ("select interval '1 day' * 2", "'interval * number'"),
        ] {
            let out = sqlite(sql);
            assert!(out.contains(&format!("pg_datetime({op}")), "{sql}: {out}");
        }
        assert!(sqlite("select now() - now()").contains("COLLATE pg_interval"));
        assert!(sqlite("select date '2020-01-10' - date '2020-01-01'")
            .contains("pg_datetime('date - date'"));
    }

    /// SQLite's series counts in integers: other bounds are refused, not truncated.
    #[test]
    fn generate_series_over_non_integers_is_refused() {
        let p = parse("select x from generate_series(1.5, 3.5, 1.0) x").unwrap();
        assert!(matches!(
            plan(&p[0], &Catalog::default()),
            Err(Error::Unsupported(_))
        ));
        assert!(sqlite("select x from generate_series(1, 3) x").contains("generate_series"));
    }

    #[test]
    fn casts_become_coercions() {
        assert_eq!(
            sqlite("select '12'::int"),
            "SELECT pg_coerce('12', 23, -1) AS \"int4\""
        );
    }

    #[test]
    fn placeholders_and_any() {
        assert_eq!(
            sqlite("select 1 as x where 1 = any(array[$1, 2])"),
            "SELECT 1 AS x WHERE 1 IN (?1, 2)"
        );
    }

    #[test]
    fn generate_series_in_from() {
        let s = sqlite("select x from generate_series(1, 3) as x");
        assert!(
            s.contains("SELECT value AS \"x\" FROM generate_series(1, 3)"),
            "{s}"
        );
    }

    #[test]
    fn values_alias_columns() {
        let s = sqlite("select p0 from (values (1, 2)) as v(p0, p1)");
        assert!(s.contains("column1 AS \"p0\""), "{s}");
    }

    #[test]
    fn session_functions_without_parentheses() {
        assert_eq!(
            sqlite("select current_user, current_schema"),
            "SELECT current_user() AS \"current_user\", current_schema() AS \"current_schema\""
        );
    }

    #[test]
    fn ilike_lowers_both_sides() {
        assert_eq!(
            sqlite("select 'A' ilike 'a'"),
            "SELECT lower('A') LIKE lower('a') ESCAPE '\\' AS \"?column?\""
        );
    }

    #[test]
    fn psql_catalog_idioms() {
        let s = sqlite(
            "select c.relname from pg_catalog.pg_class c \
             where c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default",
        );
        assert!(s.contains("FROM pg_class AS c"), "{s}");
        assert!(s.contains("pg_regex(c.relname, '^(t)$', '')"), "{s}");
        assert!(!s.contains("COLLATE") && !s.contains("OPERATOR"), "{s}");
        assert!(sqlite("select 1 where 'a' operator(pg_catalog.!~) 'b'").contains("NOT pg_regex"));
    }

    #[test]
    fn unknown_operators_and_collations_are_named() {
        for sql in [
            "select 1 where 'a' OPERATOR(myschema.~) 'b'",
            "select 1 where 'a' OPERATOR(pg_catalog.@@) 'b'",
            "select 'a' COLLATE \"de_DE\"",
        ] {
            let p = parse(sql).unwrap();
            let e = plan(&p[0], &Catalog::default()).unwrap_err();
            assert_eq!(e.sqlstate(), "0A000", "{sql}: {e}");
        }
    }

    #[test]
    fn unsupported_named() {
        let p = parse("select extract(year from 'not typed')").unwrap();
        let e = plan(&p[0], &Catalog::default()).unwrap_err();
        assert_eq!(e.sqlstate(), "0A000");
    }
}
