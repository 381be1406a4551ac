//! Statements with `WITH` and a data change: `WITH d AS (DELETE … RETURNING *) INSERT
//! INTO archive SELECT * FROM d`, and `WITH … INSERT/UPDATE/DELETE` in general.
//!
//! SQLite has neither data-modifying CTEs nor `WITH` in front of every statement kind, so
//! the session runs such a statement as steps inside one transaction: each CTE, in order,
//! into a temporary table of its own (a query as `CREATE TEMP TABLE … AS`, a data change
//! by running it and keeping its RETURNING rows), then the main statement with the CTE
//! names pointing at those tables. Every step is an ordinary statement, so capture,
//! replication, locks and constraints work as they do for any other.
//!
//! PostgreSQL runs all the parts against one snapshot: no part sees another's changes
//! except through RETURNING. Steps run one after another would see the earlier ones'
//! changes, so a part that reads a table another part changes reads a copy of it taken
//! before any change. What no copy can fix is refused with 0A000 rather than answered
//! differently: two parts changing one table, and an UPDATE, DELETE or INSERT … ON
//! CONFLICT of a table a WITH query changes (PostgreSQL leaves alone the rows the
//! statement already changed). A plain INSERT into such a table is allowed: it reads
//! nothing of its target.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    FromTable, Ident, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableAlias,
    TableFactor, VisitMut, VisitorMut,
};

use crate::ast::{object_name_to_table, quote_ident};
use crate::error::{Error, Result};
use crate::plan::{Command, ModifyingWith, WithStep};

/// Plans a top-level query whose WITH or body changes data.
pub(crate) fn plan(q: &Query) -> Result<Command> {
    let unsupported = |what: &str| Err(Error::Unsupported(what.into()));
    if (q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some())
        && dml_of(&q.body).is_some()
    {
        return unsupported("ORDER BY or LIMIT after INSERT, UPDATE or DELETE");
    }
    let Some(with) = &q.with else {
        return unsupported("INSERT, UPDATE or DELETE inside a query");
    };
    let cte_names: Vec<String> = with
        .cte_tables
        .iter()
        .map(|c| match c.alias.name.quote_style {
            Some(_) => c.alias.name.value.clone(),
            None => c.alias.name.value.to_lowercase(),
        })
        .collect();
    // The tables the data-changing CTEs change, each by one of them only.
    let mut changed: Vec<String> = Vec::new();
    for cte in &with.cte_tables {
        if let Some(dml) = dml_of(&cte.query.body) {
            let target = target_of(dml)?;
            if changed.contains(&target) {
                return unsupported(&format!(
                    "two data-modifying WITH queries changing table \"{target}\""
                ));
            }
            changed.push(target);
        }
    }
    let mut names = Renamer {
        ctes: HashMap::new(),
        changed: changed
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), format!("_mdbc_before_{}", i + 1)))
            .collect(),
        own_target: None,
        snapshots: Vec::new(),
        later: Vec::new(),
        forward: None,
    };
    let mut steps = Vec::new();
    for (i, cte) in with.cte_tables.iter().enumerate() {
        if cte.from.is_some() {
            return unsupported("WITH … FROM");
        }
        let temp = format!("_mdbc_with_{}", i + 1);
        names.later = if with.recursive {
            cte_names[i + 1..].to_vec()
        } else {
            Vec::new()
        };
        if let Some(dml) = dml_of(&cte.query.body) {
            if cte.query.with.is_some() || cte.query.order_by.is_some() {
                return unsupported("WITH or ORDER BY around a data-modifying WITH query");
            }
            let mut stmt = dml.clone();
            names.own_target = Some(target_of(&stmt)?);
            names.apply(&mut stmt)?;
            let returning = returning_of(&stmt);
            steps.push(WithStep {
                temp: temp.clone(),
                column_names: cte
                    .alias
                    .columns
                    .iter()
                    .map(|c| c.name.value.clone())
                    .collect(),
                sql: stmt.to_string(),
                modifies: true,
                returning,
            });
            if !returning {
                // Nothing to read from: a reference is to a table of that name, if any.
                continue;
            }
        } else {
            if has_data_modifying(&cte.query) {
                return unsupported("INSERT, UPDATE or DELETE nested inside a WITH query");
            }
            let mut body = cte.query.as_ref().clone();
            names.own_target = None;
            names.apply(&mut body)?;
            // Wrapped in a WITH of its own: the CTE's column names and, under RECURSIVE,
            // its reference to itself keep their meaning.
            let sql = format!(
                "WITH {}{} AS ({body}) SELECT * FROM {}",
                if with.recursive { "RECURSIVE " } else { "" },
                cte.alias,
                quote_ident(&cte.alias.name.value)
            );
            steps.push(WithStep {
                temp: temp.clone(),
                column_names: Vec::new(),
                sql,
                modifies: false,
                returning: true,
            });
        }
        names.ctes.insert(cte_names[i].clone(), temp);
    }
    names.later = Vec::new();
    names.own_target = None;
    let returns_rows = dml_of(&q.body).is_none_or(returning_of);
    let main = match dml_of(&q.body) {
        Some(dml) => {
            let mut stmt = dml.clone();
            let target = target_of(&stmt)?;
            // PostgreSQL leaves alone rows the statement already changed, where steps
            // would change them again; a plain INSERT touches no existing row.
            let plain_insert = matches!(&stmt, Statement::Insert(i) if i.on.is_none());
            if !plain_insert && changed.contains(&target) {
                return unsupported(&format!(
                    "an UPDATE, DELETE or INSERT … ON CONFLICT of table \"{target}\" that a \
                     data-modifying WITH query changes"
                ));
            }
            names.apply(&mut stmt)?;
            stmt.to_string()
        }
        None => {
            let mut main = Query {
                with: None,
                ..q.clone()
            };
            if has_data_modifying(&main) {
                return unsupported("INSERT, UPDATE or DELETE inside a query");
            }
            names.apply(&mut main)?;
            main.to_string()
        }
    };
    // The copies of changed tables that other parts read must be taken before any change.
    let mut all: Vec<WithStep> = names
        .snapshots
        .iter()
        .map(|(table, temp)| WithStep {
            temp: temp.clone(),
            column_names: Vec::new(),
            sql: format!("SELECT * FROM {}", quote_ident(table)),
            modifies: false,
            returning: true,
        })
        .collect();
    all.extend(steps);
    Ok(Command::ModifyingWith(Box::new(ModifyingWith {
        steps: all,
        main,
        returns_rows,
    })))
}

/// Points each part's references at the tables standing in for them: a CTE's at its
/// temporary table, a changed table's (outside the part that changes it) at its copy from
/// before the statement, as PostgreSQL's single snapshot would show it. The name a
/// reference had stays its alias, so `t.a` still resolves.
struct Renamer {
    ctes: HashMap<String, String>,
    changed: HashMap<String, String>,
    own_target: Option<String>,
    // (table, copy) of the changed tables some part reads.
    snapshots: Vec<(String, String)>,
    // Under RECURSIVE, the CTEs after the current one (not materialized yet).
    later: Vec<String>,
    forward: Option<String>,
}

impl Renamer {
    fn apply<V: VisitMut>(&mut self, node: &mut V) -> Result<()> {
        let _ = node.visit(self);
        match self.forward.take() {
            Some(name) => Err(Error::Unsupported(format!(
                "a WITH RECURSIVE query referring to the later WITH query \"{name}\" in a \
                 statement that changes data"
            ))),
            None => Ok(()),
        }
    }
}

impl VisitorMut for Renamer {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let single = single_name(name);
        let table = object_name_to_table(name);
        let stand_in = match single.as_ref().and_then(|n| self.ctes.get(n)) {
            Some(temp) => temp.clone(),
            None if single.as_ref().is_some_and(|n| self.later.contains(n)) => {
                self.forward = single;
                return ControlFlow::Continue(());
            }
            None => match self.changed.get(&table) {
                Some(copy) if self.own_target.as_ref() != Some(&table) => {
                    if !self.snapshots.iter().any(|(t, _)| t == &table) {
                        self.snapshots.push((table.clone(), copy.clone()));
                    }
                    copy.clone()
                }
                _ => return ControlFlow::Continue(()),
            },
        };
        if alias.is_none() {
            let last = match name.0.last() {
                Some(ObjectNamePart::Identifier(id)) => id.clone(),
                _ => Ident::new(table),
            };
            *alias = Some(TableAlias {
                explicit: true,
                name: last,
                columns: Vec::new(),
                at: None,
            });
        }
        *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
            '"', stand_in,
        ))]);
        ControlFlow::Continue(())
    }
}

/// The INSERT, UPDATE or DELETE a query body is.
fn dml_of(body: &SetExpr) -> Option<&Statement> {
    match body {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => Some(s),
        _ => None,
    }
}

fn returning_of(stmt: &Statement) -> bool {
    match stmt {
        Statement::Insert(i) => i.returning.is_some(),
        Statement::Update(u) => u.returning.is_some(),
        Statement::Delete(d) => d.returning.is_some(),
        _ => false,
    }
}

/// The table an INSERT, UPDATE or DELETE changes.
fn target_of(stmt: &Statement) -> Result<String> {
    let name = match stmt {
        Statement::Insert(i) => match &i.table {
            sqlparser::ast::TableObject::TableName(n) => Some(n),
            _ => None,
        },
        Statement::Update(u) => match &u.table.relation {
            TableFactor::Table { name, .. } => Some(name),
            _ => None,
        },
        Statement::Delete(d) => match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => {
                match t.first().map(|t| &t.relation) {
                    Some(TableFactor::Table { name, .. }) if t.len() == 1 => Some(name),
                    _ => None,
                }
            }
        },
        _ => None,
    };
    name.map(object_name_to_table)
        .ok_or_else(|| Error::Unsupported(format!("{stmt} inside WITH")))
}

/// A one-part relation name, as CTE names are matched (lower-cased unless quoted).
fn single_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => Some(match id.quote_style {
            Some(_) => id.value.clone(),
            None => id.value.to_lowercase(),
        }),
        _ => None,
    }
}

/// Whether a query changes data anywhere: its body or a WITH query an INSERT, UPDATE,
/// DELETE or MERGE.
pub(crate) fn has_data_modifying(q: &Query) -> bool {
    fn set_expr(s: &SetExpr) -> bool {
        match s {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                true
            }
            SetExpr::Query(q) => has_data_modifying(q),
            SetExpr::SetOperation { left, right, .. } => set_expr(left) || set_expr(right),
            _ => false,
        }
    }
    set_expr(&q.body)
        || q.with
            .as_ref()
            .is_some_and(|w| w.cte_tables.iter().any(|c| has_data_modifying(&c.query)))
}
