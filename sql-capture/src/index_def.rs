//! An index's definition as `pg_get_indexdef` prints it: PostgreSQL deparses the stored
//! expression tree (`lower(b)`, `((a + 1)) DESC NULLS LAST`, `WHERE ((a > 0) AND e)`),
//! where SQLite keeps only its own rewritten text. psql's `\d`, `pg_indexes` and ORMs'
//! reflection show this text, so it is rendered once, at CREATE INDEX, from the statement
//! as the client wrote it, and recorded beside the index — in both of PostgreSQL's
//! spellings: plain (every operator in parentheses) and pretty (parentheses only where
//! precedence needs them, what psql's `\d` asks for).
//!
//! What is rendered exactly as PostgreSQL would: column references, function calls over
//! them, operators, casts, `IS [NOT] NULL`, `NOT`, `AND`/`OR`, and constants whose printed
//! form does not depend on inference PostgreSQL does and mdbc does not (non-negative
//! integers, strings compared with `text` columns, booleans), each only where both sides
//! have one type (between two types PostgreSQL inserts casts). Any other expression is
//! shown as the client wrote it, in parentheses: the same index, spelled differently.

use sqlparser::ast::{
    BinaryOperator, CastKind, CreateIndex, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    OrderByExpr, OrderBySort, UnaryOperator, Value,
};

use crate::ast::{function_name, ident_value};
use crate::catalog::TableDef;
use crate::naming::pg_quote_ident;
use crate::types::{PgType, TypeSpec};

/// One spelling of an index definition: the text of each column (as the column-number
/// form of `pg_get_indexdef` returns it), each column's ordering options, and the
/// predicate of a partial index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexText {
    /// Each column's expression.
    pub columns: Vec<String>,
    /// Each column's ordering (` DESC`, ` NULLS FIRST`, or empty).
    pub options: Vec<String>,
    /// The predicate.
    pub predicate: Option<String>,
}

/// The plain and pretty spellings of `ci`'s columns and predicate.
pub(crate) fn render(ci: &CreateIndex, def: &TableDef) -> (IndexText, IndexText) {
    let nodes: Vec<Option<Node>> = ci
        .columns
        .iter()
        .map(|c| build(&c.column.expr, def).map(|n| n.0))
        .collect();
    let predicate = ci
        .predicate
        .as_ref()
        .map(|p| (p, build(p, def).map(|n| n.0)));
    let options: Vec<String> = ci.columns.iter().map(|c| ordering(&c.column)).collect();
    let spell = |pretty: bool| IndexText {
        columns: ci
            .columns
            .iter()
            .zip(&nodes)
            .map(|(c, n)| {
                n.as_ref()
                    .and_then(|n| column(n, pretty))
                    .unwrap_or_else(|| match &c.column.expr {
                        Expr::Function(_) => c.column.expr.to_string(),
                        e => format!("({e})"),
                    })
            })
            .collect(),
        options: options.clone(),
        predicate: predicate.as_ref().map(|(p, n)| {
            n.as_ref()
                .and_then(|n| print(n, pretty))
                .unwrap_or_else(|| format!("({p})"))
        }),
    };
    (spell(false), spell(true))
}

/// A column's ordering where it is not the default (ascending, NULLs last; descending,
/// NULLs first).
fn ordering(c: &OrderByExpr) -> String {
    let desc = matches!(c.options.sort, Some(OrderBySort::Desc));
    let nulls = match (desc, c.options.nulls_first) {
        (false, Some(true)) => " NULLS FIRST",
        (true, Some(false)) => " NULLS LAST",
        _ => "",
    };
    format!("{}{nulls}", if desc { " DESC" } else { "" })
}

/// An expression as PostgreSQL stores it, reduced to what is rendered.
#[derive(Debug, Clone)]
enum Node {
    Column(String),
    Constant(String),
    Call(String, Vec<Node>),
    Op(&'static str, Box<Node>, Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    NullTest(Box<Node>, bool),
    Cast(Box<Node>, String),
}

/// An index column: a column or a function call bare, anything else in parentheses.
fn column(n: &Node, pretty: bool) -> Option<String> {
    let text = print(n, pretty)?;
    Some(match n {
        Node::Column(_) | Node::Call(..) => text,
        _ => format!("({text})"),
    })
}

fn print(n: &Node, pretty: bool) -> Option<String> {
    let child = |c: &Node, left: bool| -> Option<String> {
        let text = print(c, pretty)?;
        if !pretty || simple(c, n, left)? {
            Some(text)
        } else {
            Some(format!("({text})"))
        }
    };
    // Plain spelling: every operator, test and Boolean in parentheses of its own.
    let own = |s: String| if pretty { s } else { format!("({s})") };
    Some(match n {
        Node::Column(s) | Node::Constant(s) => s.clone(),
        Node::Call(name, args) => {
            let args = args
                .iter()
                .map(|a| print(a, pretty))
                .collect::<Option<Vec<_>>>()?;
            format!("{name}({})", args.join(", "))
        }
        Node::Op(op, l, r) => own(format!("{} {op} {}", child(l, true)?, child(r, false)?)),
        Node::And(items) | Node::Or(items) => {
            let word = if matches!(n, Node::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let items = items
                .iter()
                .map(|i| child(i, false))
                .collect::<Option<Vec<_>>>()?;
            own(items.join(word))
        }
        Node::Not(x) => own(format!("NOT {}", child(x, false)?)),
        Node::NullTest(x, not) => own(format!(
            "{} IS {}NULL",
            child(x, false)?,
            if *not { "NOT " } else { "" }
        )),
        Node::Cast(x, ty) => {
            let inner = print(x, pretty)?;
            if pretty && !simple(x, n, false)? {
                format!("({inner})::{ty}")
            } else if pretty {
                format!("{inner}::{ty}")
            } else {
                format!("({inner})::{ty}")
            }
        }
    })
}

/// Whether pretty printing leaves `child` of `parent` without parentheses (PostgreSQL's
/// rule: by operator priority for `+ - * / %`, by Boolean nesting, never under a cast
/// or a test). `None`: a combination outside what is rendered.
fn simple(child: &Node, parent: &Node, left: bool) -> Option<bool> {
    let priority = |op: &str| match op {
        "+" | "-" => Some(1),
        "*" | "/" | "%" => Some(2),
        _ => None,
    };
    Some(match child {
        Node::Column(_) | Node::Constant(_) | Node::Call(..) => true,
        Node::Cast(..) => true,
        Node::Op(op, ..) => match parent {
            Node::Op(parent_op, ..) => match (priority(op), priority(parent_op)) {
                (Some(c), Some(p)) if c != p => c > p,
                (Some(_), Some(_)) => left,
                _ => false,
            },
            Node::And(_) | Node::Or(_) | Node::Not(_) => true,
            _ => false,
        },
        Node::NullTest(..) => matches!(parent, Node::And(_) | Node::Or(_) | Node::Not(_)),
        Node::And(_) | Node::Not(_) => matches!(parent, Node::And(_) | Node::Or(_)),
        Node::Or(_) => matches!(parent, Node::Or(_)),
    })
}

/// The node for `e` and its type, or `None` when `e` is outside what is rendered.
fn build(e: &Expr, def: &TableDef) -> Option<(Node, Option<PgType>)> {
    match e {
        Expr::Nested(inner) => build(inner, def),
        Expr::Identifier(id) => {
            let col = def.column(&ident_value(id))?;
            Some((Node::Column(pg_quote_ident(&col.name)), Some(col.ty)))
        }
        Expr::Function(f) => {
            if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
                return None;
            }
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                return None;
            }
            let mut args = Vec::new();
            for a in &list.args {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(build(e, def)?),
                    _ => return None,
                }
            }
            let name = function_name(f).to_ascii_lowercase();
            if name != "coalesce" {
                args = args.into_iter().map(as_text).collect();
            }
            let types: Vec<Option<PgType>> = args.iter().map(|a| a.1).collect();
            let nodes: Vec<Node> = args.into_iter().map(|a| a.0).collect();
            // Functions of text over text arguments (a varchar argument gets the cast
            // PostgreSQL adds: `lower((f)::text)`).
            let (shown, ty) = match name.as_str() {
                "lower" | "upper" | "btrim" | "ltrim" | "rtrim" | "md5" | "initcap"
                    if types == [Some(PgType::Text)] =>
                {
                    (name.clone(), PgType::Text)
                }
                "length" | "char_length" if types == [Some(PgType::Text)] => {
                    (name.clone(), PgType::Int4)
                }
                "coalesce" if !types.is_empty() && types.iter().all(|t| t == &types[0]) => {
                    ("COALESCE".to_string(), types[0]?)
                }
                _ => return None,
            };
            Some((Node::Call(shown, nodes), Some(ty)))
        }
        Expr::BinaryOp { left, op, right } => binary(left, op, right, def),
        // PostgreSQL folds NOT into what it negates (`NOT a = b` is `a <> b`); over a
        // boolean column it stays.
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } if matches!(expr.as_ref(), Expr::Identifier(_)) => match build(expr, def)? {
            (node, Some(PgType::Bool)) => Some((Node::Not(Box::new(node)), Some(PgType::Bool))),
            _ => None,
        },
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
            let (node, _) = build(inner, def)?;
            let not = matches!(e, Expr::IsNotNull(_));
            Some((Node::NullTest(Box::new(node), not), Some(PgType::Bool)))
        }
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type,
            format: None,
            ..
        } => {
            let TypeSpec { ty, typmod, serial } = PgType::parse_sql_name(&data_type.to_string())?;
            if serial {
                return None;
            }
            if let Expr::Value(v) = expr.as_ref() {
                // A cast constant is folded before it is stored; an integer constant
                // made bigint, smallint or numeric prints as a cast of its digits.
                return match &v.value {
                    Value::Number(n, _)
                        if n.bytes().all(|b| b.is_ascii_digit())
                            && matches!(ty, PgType::Int2 | PgType::Int8 | PgType::Numeric)
                            && typmod == -1 =>
                    {
                        Some((
                            Node::Cast(Box::new(Node::Constant(n.clone())), ty.name().into()),
                            Some(ty),
                        ))
                    }
                    _ => None,
                };
            }
            let (inner, from) = build(expr, def)?;
            // A cast to the type the value already has is no cast at all.
            if from == Some(ty) && typmod == -1 {
                return Some((inner, from));
            }
            Some((
                Node::Cast(Box::new(inner), ty.format_with_typmod(typmod)),
                Some(ty),
            ))
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {
                let ty = match n.parse::<i64>() {
                    Ok(x) if i32::try_from(x).is_ok() => PgType::Int4,
                    Ok(_) => PgType::Int8,
                    Err(_) => return None,
                };
                Some((Node::Constant(n.clone()), Some(ty)))
            }
            Value::Number(n, _)
                if n.bytes().filter(|b| *b == b'.').count() == 1
                    && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && !n.starts_with('.')
                    && !n.ends_with('.') =>
            {
                Some((Node::Constant(n.clone()), Some(PgType::Numeric)))
            }
            Value::Boolean(b) => Some((Node::Constant(b.to_string()), Some(PgType::Bool))),
            _ => None,
        },
        // A negative constant is printed quoted, with its type.
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    let ty = match format!("-{n}").parse::<i64>() {
                        Ok(x) if i32::try_from(x).is_ok() => PgType::Int4,
                        Ok(_) => PgType::Int8,
                        Err(_) => return None,
                    };
                    Some((Node::Constant(format!("'-{n}'::{}", ty.name())), Some(ty)))
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn binary(
    left: &Expr,
    op: &BinaryOperator,
    right: &Expr,
    def: &TableDef,
) -> Option<(Node, Option<PgType>)> {
    if matches!(op, BinaryOperator::And | BinaryOperator::Or) {
        // PostgreSQL keeps a chain of ANDs (or ORs) as one list.
        let mut items = Vec::new();
        flatten(left, op, def, &mut items)?;
        flatten(right, op, def, &mut items)?;
        let node = if *op == BinaryOperator::And {
            Node::And(items)
        } else {
            Node::Or(items)
        };
        return Some((node, Some(PgType::Bool)));
    }
    let shown = match op {
        BinaryOperator::Eq => "=",
        BinaryOperator::NotEq => "<>",
        BinaryOperator::Lt => "<",
        BinaryOperator::LtEq => "<=",
        BinaryOperator::Gt => ">",
        BinaryOperator::GtEq => ">=",
        BinaryOperator::Plus => "+",
        BinaryOperator::Minus => "-",
        BinaryOperator::Multiply => "*",
        BinaryOperator::StringConcat => "||",
        _ => return None,
    };
    if matches!(left, Expr::Value(_)) && matches!(right, Expr::Value(_)) {
        // Folded by PostgreSQL before it is stored.
        return None;
    }
    let string_constant =
        |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
    let side = |e: &Expr, other: &Expr| {
        let built = operand(e, other, def)?;
        // Compared with a string constant, or concatenated, varchar is read as text.
        Some(if string_constant(other) || shown == "||" {
            as_text(built)
        } else {
            built
        })
    };
    let (mut l, mut lt) = side(left, right)?;
    let (mut r, mut rt) = side(right, left)?;
    // An integer meeting a numeric is cast to numeric, as PostgreSQL resolves it.
    let numeric = |node: Node| Node::Cast(Box::new(node), "numeric".into());
    match (lt, rt) {
        (Some(a), Some(PgType::Numeric)) if a.is_integer() => {
            l = numeric(l);
            lt = Some(PgType::Numeric);
        }
        (Some(PgType::Numeric), Some(b)) if b.is_integer() => {
            r = numeric(r);
            rt = Some(PgType::Numeric);
        }
        _ => {}
    }
    // Only operators over operands of one known type: between two types PostgreSQL
    // inserts casts that would have to be guessed.
    let ty = match (lt, rt) {
        (Some(a), Some(b)) if a == b => a,
        // smallint, integer and bigint have operators across each other: no cast.
        (Some(a), Some(b)) if a.is_integer() && b.is_integer() => wider_integer(a, b),
        _ => return None,
    };
    if shown == "||" && !ty.is_string() {
        return None;
    }
    let result = match shown {
        "+" | "-" | "*" | "||" => ty,
        _ => PgType::Bool,
    };
    Some((Node::Op(shown, Box::new(l), Box::new(r)), Some(result)))
}

fn wider_integer(a: PgType, b: PgType) -> PgType {
    let rank = |t: PgType| match t {
        PgType::Int2 => 0,
        PgType::Int4 => 1,
        _ => 2,
    };
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

/// A `varchar` value where PostgreSQL wants `text` gets the cast PostgreSQL inserts.
fn as_text((node, ty): (Node, Option<PgType>)) -> (Node, Option<PgType>) {
    match ty {
        Some(PgType::Varchar) => (
            Node::Cast(Box::new(node), "text".into()),
            Some(PgType::Text),
        ),
        _ => (node, ty),
    }
}

/// An operand: a string constant takes the other side's type when that is `text`, as
/// PostgreSQL resolves an unknown literal and then prints it (`'x'::text`).
fn operand(e: &Expr, other: &Expr, def: &TableDef) -> Option<(Node, Option<PgType>)> {
    if let Expr::Value(v) = e {
        if let Value::SingleQuotedString(s) = &v.value {
            if as_text(build(other, def)?).1 != Some(PgType::Text) {
                return None;
            }
            return Some((
                Node::Constant(format!("'{}'::text", s.replace('\'', "''"))),
                Some(PgType::Text),
            ));
        }
    }
    build(e, def)
}

fn flatten(e: &Expr, op: &BinaryOperator, def: &TableDef, out: &mut Vec<Node>) -> Option<()> {
    match e {
        Expr::BinaryOp {
            left,
            op: inner,
            right,
        } if inner == op => {
            flatten(left, op, def, out)?;
            flatten(right, op, def, out)
        }
        Expr::Nested(inner) => flatten(inner, op, def, out),
        _ => match build(e, def)? {
            (node, Some(PgType::Bool)) => {
                out.push(node);
                Some(())
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnInfo;

    fn def() -> TableDef {
        TableDef {
            name: "ti".into(),
            columns: vec![
                ColumnInfo::plain("a", PgType::Int4),
                ColumnInfo::plain("b", PgType::Text),
                ColumnInfo::plain("c", PgType::Numeric),
                ColumnInfo::plain("e", PgType::Bool),
                ColumnInfo::plain("f", PgType::Varchar),
            ],
        }
    }

    fn spell(sql: &str) -> (IndexText, IndexText) {
        let parsed =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap();
        let sqlparser::ast::Statement::CreateIndex(ci) = &parsed[0] else {
            panic!("not CREATE INDEX")
        };
        render(ci, &def())
    }

    // Expected texts: PostgreSQL 15's pg_get_indexdef(oid, n, false/true) for the same
    // statements over the same table.
    #[test]
    fn columns_and_predicates_spelled_as_postgresql_spells_them() {
        let (plain, pretty) = spell(
            "create index i6 on ti ((a+1), (a*2+1), ((a+1)*2), (b || 'x' || b), \
             ((a+1)::bigint), (b::varchar), lower(b), a desc) where (a + 1) > 2 and \
             (c is null or e) and not e and (a > 0 or b = 'x') and (a*2+1 > 3 or a < 0)",
        );
        assert_eq!(
            plain.columns,
            [
                "((a + 1))",
                "(((a * 2) + 1))",
                "(((a + 1) * 2))",
                "(((b || 'x'::text) || b))",
                "(((a + 1))::bigint)",
                "((b)::character varying)",
                "lower(b)",
                "a"
            ]
        );
        assert_eq!(
            pretty.columns,
            [
                "(a + 1)",
                "(a * 2 + 1)",
                "((a + 1) * 2)",
                "((b || 'x'::text) || b)",
                "((a + 1)::bigint)",
                "(b::character varying)",
                "lower(b)",
                "a"
            ]
        );
        assert_eq!(plain.options[7], " DESC");
        assert_eq!(
            plain.predicate.as_deref(),
            Some(
                "(((a + 1) > 2) AND ((c IS NULL) OR e) AND (NOT e) AND ((a > 0) OR \
                 (b = 'x'::text)) AND ((((a * 2) + 1) > 3) OR (a < 0)))"
            )
        );
        assert_eq!(
            pretty.predicate.as_deref(),
            Some(
                "(a + 1) > 2 AND (c IS NULL OR e) AND NOT e AND (a > 0 OR b = 'x'::text) \
                 AND ((a * 2 + 1) > 3 OR a < 0)"
            )
        );
    }

    #[test]
    fn ordering_and_what_is_not_rendered() {
        let (plain, _) = spell(
            "create index i2 on ti (a nulls first, b desc, c asc nulls first, a desc nulls last, \
             lower(f), (b::text)) where e",
        );
        assert_eq!(
            plain.options,
            [
                " NULLS FIRST",
                " DESC",
                " NULLS FIRST",
                " DESC NULLS LAST",
                "",
                ""
            ]
        );
        // lower(varchar) gets the cast PostgreSQL inserts.
        assert_eq!(plain.columns[4], "lower((f)::text)");
        // A cast to the column's own type is no cast.
        assert_eq!(plain.columns[5], "b");
        assert_eq!(plain.predicate.as_deref(), Some("e"));
        let (plain, pretty) =
            spell("create index i3 on ti (lower(f), (a + 1::bigint)) where a = -1 and f = 'x'");
        assert_eq!(plain.columns, ["lower((f)::text)", "((a + (1)::bigint))"]);
        assert_eq!(pretty.columns, ["lower(f::text)", "(a + 1::bigint)"]);
        assert_eq!(
            plain.predicate.as_deref(),
            Some("((a = '-1'::integer) AND ((f)::text = 'x'::text))")
        );
        assert_eq!(
            pretty.predicate.as_deref(),
            Some("a = '-1'::integer AND f::text = 'x'::text")
        );
        let (plain, pretty) = spell("create index i4 on ti ((c + a))");
        assert_eq!(plain.columns, ["((c + (a)::numeric))"]);
        assert_eq!(pretty.columns, ["(c + a::numeric)"]);
        // Shown as written: a function outside the rendered set.
        let (plain, _) = spell("create index i5 on ti (abs(a))");
        assert_eq!(plain.columns, ["abs(a)"]);
    }
}
