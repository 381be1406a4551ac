//! The types of `$n` parameters, from where each appears: compared with a column, inserted
//! into one, an argument of a function whose signature tells.

use std::borrow::Cow;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, OnConflictAction, OnInsert, Query,
    SelectItem, SetExpr, Statement, TableFactor, Value, Visit, Visitor,
};

use super::{infer_expr, is_reg_type, Scope};
use crate::ast::{function_args, function_name, ident_value, object_name_to_table};
use crate::catalog::Catalog;
use crate::types::PgType;

fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        Expr::Nested(inner) => placeholder_index(inner),
        _ => None,
    }
}

struct ParamTypes<'a> {
    scope: Scope<'a>,
    types: Vec<Option<PgType>>,
}

impl ParamTypes<'_> {
    fn set(&mut self, idx: usize, ty: Option<PgType>) {
        let Some(ty) = ty else { return };
        if self.types.len() <= idx {
            self.types.resize(idx + 1, None);
        }
        if self.types[idx].is_none() {
            self.types[idx] = Some(ty);
        }
    }
    fn ty_of(&self, e: &Expr) -> Option<PgType> {
        infer_expr(e, &self.scope).and_then(|c| c.ty)
    }
    fn note(&mut self, idx: usize) {
        if self.types.len() <= idx {
            self.types.resize(idx + 1, None);
        }
    }
}

impl Visitor for ParamTypes<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Some(i) = placeholder_index(e) {
            self.note(i);
        }
        match e {
            Expr::BinaryOp { left, op, right } => {
                let other_for = |this: &Self, other: &Expr| match op {
                    BinaryOperator::StringConcat => Some(PgType::Text),
                    _ => this.ty_of(other),
                };
                if let Some(i) = placeholder_index(left) {
                    let t = other_for(self, right);
                    self.set(i, t);
                }
                if let Some(i) = placeholder_index(right) {
                    let t = other_for(self, left);
                    self.set(i, t);
                }
            }
            Expr::InList { expr, list, .. } => {
                let t = self.ty_of(expr);
                for item in list {
                    if let Some(i) = placeholder_index(item) {
                        self.set(i, t);
                    }
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let t = self.ty_of(expr);
                for b in [low, high] {
                    if let Some(i) = placeholder_index(b) {
                        self.set(i, t);
                    }
                }
            }
            Expr::Like { pattern, .. } | Expr::ILike { pattern, .. } => {
                if let Some(i) = placeholder_index(pattern) {
                    self.set(i, Some(PgType::Text));
                }
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                if let Some(i) = placeholder_index(expr) {
                    let name = data_type.to_string();
                    // `$1::regclass` takes a relation's name.
                    let t = if is_reg_type(&name) {
                        Some(PgType::Text)
                    } else {
                        PgType::parse_sql_name(&name).map(|s| s.ty)
                    };
                    self.set(i, t);
                }
            }
            Expr::Function(f) => {
                let name = function_name(f);
                let args = function_args(f);
                let text_fn = matches!(
                    name.as_str(),
                    "lower" | "upper" | "trim" | "length" | "concat" | "replace" | "md5"
                );
                let same_fn = matches!(name.as_str(), "coalesce" | "nullif" | "greatest" | "least");
                let known = if same_fn {
                    args.iter().find_map(|a| self.ty_of(a))
                } else {
                    None
                };
                for a in args {
                    if let Some(i) = placeholder_index(a) {
                        if text_fn {
                            self.set(i, Some(PgType::Text));
                        } else if same_fn {
                            self.set(i, known);
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(limit) = &q.limit_clause {
            match limit {
                sqlparser::ast::LimitClause::LimitOffset { limit, offset, .. } => {
                    if let Some(i) = limit.as_ref().and_then(placeholder_index) {
                        self.set(i, Some(PgType::Int8));
                    }
                    if let Some(i) = offset.as_ref().and_then(|o| placeholder_index(&o.value)) {
                        self.set(i, Some(PgType::Int8));
                    }
                }
                sqlparser::ast::LimitClause::OffsetCommaLimit { offset, limit } => {
                    for e in [offset, limit] {
                        if let Some(i) = placeholder_index(e) {
                            self.set(i, Some(PgType::Int8));
                        }
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Every table a statement mentions, for resolving unqualified columns.
pub(crate) fn statement_scope<'a>(stmt: &Statement, catalog: &'a Catalog) -> Scope<'a> {
    struct Rels(Vec<String>);
    impl Visitor for Rels {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
            self.0.push(object_name_to_table(r));
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias: Some(a),
                ..
            } = tf
            {
                // Aliases resolve to their table too.
                self.0.push(format!(
                    "{}\u{0}{}",
                    ident_value(&a.name),
                    object_name_to_table(name)
                ));
            }
            ControlFlow::Continue(())
        }
    }
    let mut rels = Rels(Vec::new());
    let _ = stmt.visit(&mut rels);
    let mut tables = Vec::new();
    for r in rels.0 {
        let (alias, table) = match r.split_once('\u{0}') {
            Some((a, t)) => (a.to_string(), t.to_string()),
            None => (r.clone(), r),
        };
        tables.push((
            alias,
            catalog.relation(&table).map(|d| Cow::Borrowed(d.as_ref())),
        ));
    }
    Scope {
        tables,
        catalog: Some(catalog),
    }
}

/// Inferred types of a statement's `$n` parameters (index n-1).
pub fn params_of_statement(stmt: &Statement, catalog: &Catalog) -> Vec<Option<PgType>> {
    let mut v = ParamTypes {
        scope: statement_scope(stmt, catalog),
        types: Vec::new(),
    };
    // Positional context first: INSERT values and SET targets give exact column types.
    match stmt {
        Statement::Insert(ins) => {
            let table = match &ins.table {
                sqlparser::ast::TableObject::TableName(n) => object_name_to_table(n),
                _ => String::new(),
            };
            if let Some(def) = catalog.table(&table) {
                let cols: Vec<Option<PgType>> = if ins.columns.is_empty() {
                    def.columns.iter().map(|c| Some(c.ty)).collect()
                } else {
                    ins.columns
                        .iter()
                        .map(|c| def.column(&object_name_to_table(c)).map(|c| c.ty))
                        .collect()
                };
                if let Some(src) = &ins.source {
                    let rows: Vec<&Vec<Expr>> = match src.body.as_ref() {
                        SetExpr::Values(v) => v.rows.iter().map(|r| &r.content).collect(),
                        _ => Vec::new(),
                    };
                    for row in rows {
                        for (e, t) in row.iter().zip(&cols) {
                            if let Some(i) = placeholder_index(e) {
                                v.set(i, *t);
                            }
                        }
                    }
                    if let SetExpr::Select(s) = src.body.as_ref() {
                        for (item, t) in s.projection.iter().zip(&cols) {
                            if let SelectItem::UnnamedExpr(e) = item {
                                if let Some(i) = placeholder_index(e) {
                                    v.set(i, *t);
                                }
                            }
                        }
                    }
                }
                if let Some(OnInsert::OnConflict(oc)) = &ins.on {
                    if let OnConflictAction::DoUpdate(du) = &oc.action {
                        for a in &du.assignments {
                            if let AssignmentTarget::ColumnName(c) = &a.target {
                                if let Some(i) = placeholder_index(&a.value) {
                                    v.set(i, def.column(&object_name_to_table(c)).map(|c| c.ty));
                                }
                            }
                        }
                    }
                }
            }
        }
        Statement::Update(up) => {
            if let TableFactor::Table { name, .. } = &up.table.relation {
                if let Some(def) = catalog.table(&object_name_to_table(name)) {
                    for a in &up.assignments {
                        if let AssignmentTarget::ColumnName(c) = &a.target {
                            if let Some(i) = placeholder_index(&a.value) {
                                v.set(i, def.column(&object_name_to_table(c)).map(|c| c.ty));
                            }
                        }
                    }
                }
            }
        }
        Statement::Delete(d) => {
            let _ = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
        }
        _ => {}
    }
    let _ = stmt.visit(&mut v);
    v.types
}
