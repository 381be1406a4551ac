//! `UPDATE … / DELETE … WHERE CURRENT OF cursor`: the row a cursor stands on, changed.
//!
//! A cursor's rows are computed at DECLARE (the session keeps them). When its query is a
//! simple scan of one table — no join, grouping, aggregate, DISTINCT or set operation, and
//! no ORDER BY or LIMIT unless it locks its rows (FOR UPDATE/SHARE): PostgreSQL's "simply
//! updatable" — the session runs it with one more column, the row's
//! SQLite `rowid` ([`with_row_ids`]), and keeps that beside each row. `WHERE CURRENT OF c`
//! is read here as a placeholder ([`mark`]); the session replaces it with `rowid = n` for
//! the row `c` stands on ([`CurrentOf::at_row`]) and plans the statement as any other.
//! A rowid stays with its row through UPDATEs and is not reused within the transaction
//! for another row of the cursor's snapshot, so the second UPDATE of a row through the
//! same cursor position changes it again and a DELETE of an already deleted row changes
//! nothing, as in PostgreSQL.

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor, Value,
};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::ast::{ident_value, object_name_to_table};
use crate::error::{Error, Result};

/// The identifier `WHERE CURRENT OF c` becomes until the session knows the row.
const PLACEHOLDER: &str = "__mdbc_current_of";

/// The name of the extra column a cursor's query gets.
pub const ROW_ID_COLUMN: &str = "__mdbc_rowid";

/// An UPDATE or DELETE by a cursor's position.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentOf {
    /// The cursor.
    pub cursor: String,
    /// The table changed.
    pub table: String,
    /// The statement, with [`PLACEHOLDER`] where its WHERE clause was.
    pub statement: Statement,
}

impl CurrentOf {
    /// The statement changing the row whose rowid is `rowid`.
    pub fn at_row(&self, rowid: i64) -> Statement {
        let mut stmt = self.statement.clone();
        let qualifier = match &stmt {
            Statement::Update(u) => target_qualifier(&u.table.relation),
            Statement::Delete(d) => match &d.from {
                sqlparser::ast::FromTable::WithFromKeyword(t)
                | sqlparser::ast::FromTable::WithoutKeyword(t) => {
                    t.first().and_then(|t| target_qualifier(&t.relation))
                }
            },
            _ => None,
        }
        .unwrap_or_else(|| self.table.clone());
        let _ = sqlparser::ast::visit_expressions_mut(&mut stmt, |e| {
            if matches!(e, Expr::Identifier(id) if id.value == PLACEHOLDER) {
                *e = Expr::BinaryOp {
                    left: Box::new(Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', qualifier.clone()),
                        Ident::new("rowid"),
                    ])),
                    op: BinaryOperator::Eq,
                    right: Box::new(Expr::value(Value::Number(rowid.to_string(), false))),
                };
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        stmt
    }
}

fn target_qualifier(f: &TableFactor) -> Option<String> {
    match f {
        TableFactor::Table { alias: Some(a), .. } => Some(a.name.value.clone()),
        TableFactor::Table { name, .. } => Some(object_name_to_table(name)),
        _ => None,
    }
}

/// In the tokens of an UPDATE or DELETE, `WHERE CURRENT OF name` becomes `WHERE
/// <placeholder>` (sqlparser does not read it); returns the cursor's name.
pub(crate) fn mark(tokens: &mut Vec<TokenWithSpan>) -> Option<String> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let word = |i: usize, w: &str| {
        matches!(&tokens[i].token, Token::Word(x) if x.quote_style.is_none()
            && x.value.eq_ignore_ascii_case(w))
    };
    let at = significant.windows(4).find(|s| {
        word(s[0], "where")
            && word(s[1], "current")
            && word(s[2], "of")
            && matches!(tokens[s[3]].token, Token::Word(_))
    })?;
    let (current, name_at) = (at[1], at[3]);
    let Token::Word(w) = &tokens[name_at].token else {
        return None;
    };
    let name = ident_value(&Ident {
        value: w.value.clone(),
        quote_style: w.quote_style,
        span: sqlparser::tokenizer::Span::empty(),
    });
    let span = tokens[current].span;
    tokens.splice(
        current..=name_at,
        [TokenWithSpan {
            token: Token::make_word(PLACEHOLDER, None),
            span,
        }],
    );
    Some(name)
}

/// The CurrentOf of a statement [`mark`] rewrote.
pub(crate) fn current_of(stmt: &Statement, cursor: &str) -> Result<CurrentOf> {
    let table = match stmt {
        Statement::Update(u) if u.from.is_none() => match &u.table.relation {
            TableFactor::Table { name, .. } if u.table.joins.is_empty() => {
                Some(object_name_to_table(name))
            }
            _ => None,
        },
        Statement::Delete(d) if d.using.is_none() => match &d.from {
            sqlparser::ast::FromTable::WithFromKeyword(t)
            | sqlparser::ast::FromTable::WithoutKeyword(t)
                if t.len() == 1 && t[0].joins.is_empty() =>
            {
                match &t[0].relation {
                    TableFactor::Table { name, .. } => Some(object_name_to_table(name)),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    };
    let table = table.ok_or_else(|| {
        Error::Unsupported("WHERE CURRENT OF with FROM or USING, or on a join".into())
    })?;
    Ok(CurrentOf {
        cursor: cursor.to_string(),
        table,
        statement: stmt.clone(),
    })
}

/// A cursor query that is a simple scan of one table, with its rows' rowids as one more
/// last column: the table and the query to run. `None`: not a simple scan (a cursor over
/// it cannot be used with WHERE CURRENT OF).
pub fn with_row_ids(q: &Query) -> Option<(String, Query)> {
    let mut q = q.clone();
    // Without FOR UPDATE/SHARE, PostgreSQL finds the row through the plan's scan, which a
    // sort or a limit on top hides; with it, through the row lock, whatever the order.
    let ordered = q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some();
    if q.with.is_some() || (ordered && q.locks.is_empty()) {
        return None;
    }
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    if select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.distinct.is_some()
        || select.having.is_some()
        || !matches!(
            &select.group_by,
            sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty()
        )
        || crate::introspect::empty::has_aggregate(select)
    {
        return None;
    }
    let (table, qualifier) = match &select.from[0].relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let table = object_name_to_table(name);
            let qualifier = alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .unwrap_or_else(|| table.clone());
            (table, qualifier)
        }
        _ => return None,
    };
    select.projection.push(SelectItem::ExprWithAlias {
        expr: Expr::CompoundIdentifier(vec![
            Ident::with_quote('"', qualifier),
            Ident::new("rowid"),
        ]),
        alias: Ident::with_quote('"', ROW_ID_COLUMN),
    });
    Some((table, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rowids(sql: &str) -> Option<(String, String)> {
        let stmt =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
        let Statement::Query(q) = stmt else {
            panic!("not a query: {sql}")
        };
        with_row_ids(&q).map(|(t, q)| (t, q.to_string()))
    }

    #[test]
    fn simple_scans_get_a_row_id_column_and_others_none() {
        let (t, q) =
            rowids("SELECT * FROM uctest AS u WHERE f1 > 1 ORDER BY f1 FOR UPDATE").unwrap();
        assert_eq!(t, "uctest");
        assert!(q.contains("\"u\".rowid AS \"__mdbc_rowid\""), "{q}");
        for q in [
            "SELECT count(*) FROM uctest",
            "SELECT DISTINCT f1 FROM uctest",
            "SELECT * FROM uctest a, uctest b",
            "SELECT * FROM uctest JOIN t USING (x)",
            "SELECT f1 FROM uctest GROUP BY f1",
            "SELECT 1 UNION SELECT 2",
            "WITH w AS (SELECT 1) SELECT * FROM w",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM uctest ORDER BY f1",
            "SELECT * FROM uctest LIMIT 2",
        ] {
            assert!(rowids(q).is_none(), "{q}");
        }
    }
}
