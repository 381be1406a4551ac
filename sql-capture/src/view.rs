//! Views: `CREATE [OR REPLACE] VIEW` and `DROP VIEW`, and what a view means to the
//! statements around it (DROP TABLE of a table a view reads, writes through a view).
//!
//! A view is its query planned once, at creation, against the catalog of that moment:
//! SQLite keeps the translation as a view of its own, and mdbc's catalog keeps the
//! columns' PostgreSQL types (which the translation of later queries needs, exactly as for
//! a table) and the relations the query names. That is what PostgreSQL does too — a
//! view's columns are typed when it is created and its query is bound to the relations,
//! not re-read by name — so later DDL sees the same dependencies PostgreSQL would:
//! dropping a table a view reads is 2BP01 without CASCADE.
//!
//! Other sites create the view from the same statement through the schema log, planned
//! against the same catalog (the schema log's order), so every site holds the same
//! translation.

use std::ops::ControlFlow;

use sqlparser::ast::{CreateView, ObjectName, Query, Statement, TableFactor, Visit, Visitor};

use crate::ast::{ident_value, object_name_to_table, quote_ident, table_names};
use crate::catalog::{Catalog, ColumnInfo, TableDef, ViewDef};
use crate::error::{Error, Result};
use crate::plan::{CatalogChange, Command, StmtKind};

/// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`, given the query's plan as a
/// SELECT (`planned`).
pub(crate) fn create(
    cv: &CreateView,
    planned: impl FnOnce(Statement) -> Result<Command>,
    catalog: &Catalog,
) -> Result<Command> {
    if cv.materialized {
        return Err(Error::Unsupported("CREATE MATERIALIZED VIEW".into()));
    }
    if cv.temporary {
        return Err(Error::Unsupported("CREATE TEMPORARY VIEW".into()));
    }
    if !matches!(cv.options, sqlparser::ast::CreateTableOptions::None) {
        return Err(Error::Unsupported(format!(
            "CREATE VIEW with options ({})",
            cv.options
        )));
    }
    let name = object_name_to_table(&cv.name);
    if catalog.table(&name).is_none()
        && catalog.view(&name).is_none()
        && catalog.relation(&name).is_some()
    {
        return Err(Error::Unsupported(format!(
            "a view named \"{name}\" like one of the system catalogs"
        )));
    }
    let existing = catalog.view(&name).cloned();
    if existing.is_none() && catalog.has_relation(&name) {
        if cv.or_replace && catalog.table(&name).is_some() {
            return Err(not_a("view", &name));
        }
        return Err(Error::DuplicateTable(name));
    }
    if existing.is_some() && !cv.or_replace {
        return Err(Error::DuplicateTable(name));
    }
    let depends = named_relations(&cv.query, catalog)?;
    let plan = match planned(Statement::Query(cv.query.clone()))? {
        Command::Sql(p)
            if p.kind == StmtKind::Read
                && p.sql.len() == 1
                && p.param_types.is_empty()
                && p.temporary.is_none() =>
        {
            p
        }
        _ => {
            return Err(Error::Unsupported(
                "a view over a query of this kind (data-modifying, locking, with parameters or in several steps)"
                    .into(),
            ))
        }
    };
    let columns = view_columns(cv, catalog, &plan.columns)?;
    if let Some(old) = &existing {
        replaceable(&old.def, &columns)?;
    }
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut sql = Vec::new();
    if existing.is_some() {
        sql.push(format!("DROP VIEW IF EXISTS {}", quote_ident(&name)));
    }
    sql.push(format!(
        "CREATE VIEW {}({}) AS {}",
        quote_ident(&name),
        quoted.join(", "),
        plan.sql[0]
    ));
    // SQLite resolves a view's names only when it is read: read it once, emptily, so
    // that whatever the translation names that is not there fails the CREATE.
    sql.push(format!("SELECT * FROM {} LIMIT 0", quote_ident(&name)));
    let view = ViewDef {
        def: std::sync::Arc::new(TableDef { name, columns }),
        query: cv.query.to_string(),
        depends,
    };
    Ok(Command::ddl(
        sql,
        "CREATE VIEW",
        vec![CatalogChange::CreateView(view)],
    ))
}

/// The relations (tables and views) `query` names, refusing what a shared view cannot
/// read: the session's temporary tables (PostgreSQL would make the view temporary) and
/// the system catalogs (their rows are each site's own); a name that is none of these
/// nor one of the query's WITH queries does not exist (42P01), as PostgreSQL says when the
/// view is created (SQLite would only say so when it is read).
fn named_relations(query: &Query, catalog: &Catalog) -> Result<Vec<String>> {
    struct Names<'a> {
        catalog: &'a Catalog,
        ctes: Vec<String>,
        found: Vec<String>,
        error: Option<Error>,
    }
    impl Visitor for Names<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(w) = &q.with {
                self.ctes
                    .extend(w.cte_tables.iter().map(|c| ident_value(&c.alias.name)));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            // A table function (generate_series(…)) has arguments; it is no relation.
            let TableFactor::Table {
                name, args: None, ..
            } = tf
            else {
                return ControlFlow::Continue(());
            };
            // Schema-qualified: only the schemas mdbc has (elsewhere the relation does not
            // exist, as PostgreSQL says of a schema it does not have).
            if let [schema, _] = name.0.as_slice() {
                let schema = schema
                    .as_ident()
                    .map(ident_value)
                    .unwrap_or_else(|| schema.to_string());
                if !matches!(
                    schema.as_str(),
                    "public" | "pg_catalog" | "information_schema"
                ) {
                    self.error = Some(Error::Coded(
                        "42P01",
                        format!("relation \"{name}\" does not exist"),
                    ));
                    return ControlFlow::Break(());
                }
            }
            let r = object_name_to_table(name);
            let c = self.catalog;
            if self.ctes.iter().any(|n| n.eq_ignore_ascii_case(&r)) {
                return ControlFlow::Continue(());
            }
            let refused = |what: String| Some(Error::Unsupported(what));
            self.error = if c.is_temporary(&r) {
                refused(format!("a view over the temporary table \"{r}\""))
            } else if let Some(t) = c.table(&r) {
                self.found.push(t.name.clone());
                None
            } else if let Some(v) = c.view(&r) {
                self.found.push(v.def.name.clone());
                None
            } else if c.relation(&r).is_some() {
                refused(format!("a view over the system relation \"{r}\""))
            } else {
                Some(Error::UndefinedTable(r))
            };
            if self.error.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    let mut names = Names {
        catalog,
        ctes: Vec::new(),
        found: Vec::new(),
        error: None,
    };
    let _ = query.visit(&mut names);
    if let Some(e) = names.error {
        return Err(e);
    }
    let mut out = names.found;
    out.sort();
    out.dedup();
    Ok(out)
}

/// The view's columns: the query's, named by the column list where it gives names, each
/// with the type the query's result has (a view whose column type mdbc cannot tell is
/// refused: its values could not be printed as PostgreSQL prints them).
fn view_columns(
    cv: &CreateView,
    catalog: &Catalog,
    types: &[crate::plan::ResultColumn],
) -> Result<Vec<ColumnInfo>> {
    let typing = match &cv.query.with {
        Some(w) => crate::infer::with_ctes(catalog, w),
        None => catalog.clone(),
    };
    let names = crate::infer::output_names(&cv.query, &typing)
        .filter(|n| n.len() == types.len())
        .ok_or_else(|| Error::Unsupported("a view whose column names mdbc cannot tell".into()))?;
    if cv.columns.len() > names.len() {
        return Err(Error::Syntax(
            "CREATE VIEW specifies more column names than columns".into(),
        ));
    }
    let mut columns: Vec<ColumnInfo> = Vec::with_capacity(names.len());
    for (i, (name, t)) in names.into_iter().zip(types).enumerate() {
        let name = cv
            .columns
            .get(i)
            .map(|c| ident_value(&c.name))
            .unwrap_or(name);
        let Some(ty) = t.ty else {
            return Err(Error::Unsupported(format!(
                "a view column (\"{name}\") whose type mdbc cannot infer"
            )));
        };
        if columns.iter().any(|c| c.name == name) {
            return Err(Error::DuplicateColumn(name));
        }
        columns.push(ColumnInfo {
            typmod: t.typmod,
            ..ColumnInfo::plain(&name, ty)
        });
    }
    Ok(columns)
}

/// CREATE OR REPLACE VIEW may only add columns at the end, as PostgreSQL allows (42P16).
fn replaceable(old: &TableDef, new: &[ColumnInfo]) -> Result<()> {
    if new.len() < old.columns.len() {
        return Err(Error::Coded(
            "42P16",
            "cannot drop columns from view".into(),
        ));
    }
    for (o, n) in old.columns.iter().zip(new) {
        if o.name != n.name {
            return Err(Error::Coded(
                "42P16",
                format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    o.name, n.name
                ),
            ));
        }
        if o.ty != n.ty || o.typmod != n.typmod {
            return Err(Error::Coded(
                "42P16",
                format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    o.name,
                    o.ty.format_with_typmod(o.typmod),
                    n.ty.format_with_typmod(n.typmod)
                ),
            ));
        }
    }
    Ok(())
}

/// `"name" is not a view` (or table), PostgreSQL's 42809 for DDL on the wrong kind of
/// relation.
pub(crate) fn not_a(kind: &str, name: &str) -> Error {
    Error::Coded("42809", format!("\"{name}\" is not a {kind}"))
}

/// The views that read `relations` directly or through other views, not counting
/// `relations` themselves (in no particular order: SQLite drops a view whatever reads it).
pub(crate) fn dependents(relations: &[String], catalog: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = relations.to_vec();
    while let Some(r) = todo.pop() {
        for v in catalog.dependent_views(&r) {
            let dropped = relations.iter().any(|x| x.eq_ignore_ascii_case(&v));
            if !dropped && !out.iter().any(|x| x.eq_ignore_ascii_case(&v)) {
                out.push(v.clone());
                todo.push(v);
            }
        }
    }
    out
}

/// 2BP01 for dropping `what` ("table t") that `dependents` still read.
pub(crate) fn still_read(what: &str, dependents: &[String]) -> Error {
    let detail = dependents
        .iter()
        .map(|v| format!("view {v} depends on it"))
        .collect::<Vec<_>>()
        .join("; ");
    Error::Coded(
        "2BP01",
        format!("cannot drop {what} because other objects depend on it ({detail}); use DROP … CASCADE to drop the dependent objects too"),
    )
}

/// `DROP VIEW [IF EXISTS] names [CASCADE]`.
pub(crate) fn drop(
    if_exists: bool,
    names: &[ObjectName],
    cascade: bool,
    catalog: &Catalog,
) -> Result<Command> {
    let mut views = Vec::new();
    for n in table_names(names) {
        match catalog.view(&n) {
            Some(v) => views.push(v.def.name.clone()),
            None if catalog.table(&n).is_some() => return Err(not_a("view", &n)),
            None if if_exists => {}
            None => {
                return Err(Error::Coded(
                    "42P01",
                    format!("view \"{n}\" does not exist"),
                ))
            }
        }
    }
    let readers = dependents(&views, catalog);
    if !readers.is_empty() && !cascade {
        return Err(still_read(&format!("view {}", views[0]), &readers));
    }
    let all: Vec<String> = readers.into_iter().chain(views).collect();
    if all.is_empty() {
        return Ok(Command::Noop("DROP VIEW"));
    }
    let sql = all
        .iter()
        .map(|v| format!("DROP VIEW IF EXISTS {}", quote_ident(v)))
        .collect();
    Ok(Command::ddl(
        sql,
        "DROP VIEW",
        vec![CatalogChange::DropViews(all)],
    ))
}

/// INSERT, UPDATE or DELETE naming a view as its target: refused (PostgreSQL writes
/// through simple views; mdbc does not yet).
pub(crate) fn refuse_write(verb: &str, target: &str, catalog: &Catalog) -> Result<()> {
    if catalog.table(target).is_none() && catalog.view(target).is_some() {
        return Err(Error::Unsupported(format!(
            "{verb} on the view \"{target}\" (writes through views)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnInfo;
    use crate::types::PgType;

    fn catalog() -> Catalog {
        let mut c = Catalog::new(1);
        c.insert(TableDef {
            name: "t".into(),
            columns: vec![
                ColumnInfo::plain("a", PgType::Int4),
                ColumnInfo::plain("b", PgType::Text),
            ],
        });
        let pg_class = crate::catalog::SystemRelation {
            def: std::sync::Arc::new(TableDef {
                name: "pg_class".into(),
                columns: vec![ColumnInfo::plain("relname", PgType::Name)],
            }),
            always_empty: false,
        };
        c.set_system(std::sync::Arc::new(
            [("pg_class".to_string(), pg_class)].into_iter().collect(),
        ));
        c
    }

    fn plan(sql: &str, c: &Catalog) -> Result<Command> {
        let parsed = crate::parse(sql)?;
        crate::plan(&parsed[0], c)
    }

    fn created(sql: &str, c: &mut Catalog) -> ViewDef {
        match plan(sql, c).unwrap() {
            Command::Sql(p) => match &p.catalog[0] {
                CatalogChange::CreateView(v) => {
                    c.insert_view(v.clone());
                    v.clone()
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_view_takes_its_columns_names_and_types_from_its_query() {
        let mut c = catalog();
        let v = created(
            "CREATE VIEW v AS SELECT a, b AS x, a + 1, count(*) OVER () FROM t",
            &mut c,
        );
        let cols: Vec<(&str, PgType)> = v
            .def
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty))
            .collect();
        assert_eq!(
            cols,
            [
                ("a", PgType::Int4),
                ("x", PgType::Text),
                ("?column?", PgType::Int4),
                ("count", PgType::Int8)
            ]
        );
        assert_eq!(v.depends, ["t"]);
        let w = created("CREATE VIEW w(p) AS SELECT * FROM v", &mut c);
        assert_eq!(w.def.columns[0].name, "p");
        assert_eq!(w.def.columns[1].name, "x");
        assert_eq!(c.base_tables("w"), ["t"]);
    }

    #[test]
    fn what_postgresql_refuses_is_refused_with_its_code() {
        let mut c = catalog();
        created("CREATE VIEW v AS SELECT a, b FROM t", &mut c);
        let code = |sql: &str| plan(sql, &c).map(|_| ()).unwrap_err().sqlstate();
        assert_eq!(code("CREATE VIEW v AS SELECT 1"), "42P07");
        assert_eq!(code("CREATE OR REPLACE VIEW t AS SELECT 1"), "42809");
        assert_eq!(code("CREATE OR REPLACE VIEW v AS SELECT a FROM t"), "42P16");
        assert_eq!(
            code("CREATE OR REPLACE VIEW v AS SELECT b, a FROM t"),
            "42P16"
        );
        assert_eq!(
            code("CREATE OR REPLACE VIEW v AS SELECT a, a AS b FROM t"),
            "42P16"
        );
        assert_eq!(
            code("CREATE VIEW w(x, y, z) AS SELECT a, b FROM t"),
            "42601"
        );
        assert_eq!(code("CREATE VIEW w AS SELECT a, b AS a FROM t"), "42701");
        assert_eq!(code("DROP VIEW t"), "42809");
        assert_eq!(code("DROP VIEW nope"), "42P01");
        assert_eq!(code("DROP TABLE v"), "42809");
        assert_eq!(code("DROP TABLE t"), "2BP01");
        assert_eq!(code("INSERT INTO v VALUES (1, 'x')"), "0A000");
        assert_eq!(code("UPDATE v SET a = 1"), "0A000");
        assert_eq!(code("DELETE FROM v"), "0A000");
        assert_eq!(code("CREATE VIEW w AS SELECT * FROM pg_class"), "0A000");
        assert_eq!(code("CREATE VIEW w AS SELECT true FROM nope"), "42P01");
        assert_eq!(code("CREATE VIEW w AS SELECT a FROM elsewhere.t"), "42P01");
        assert!(plan("CREATE VIEW w AS SELECT a FROM public.t", &c).is_ok());
        assert_eq!(
            code("CREATE VIEW w AS SELECT 1 FROM t WHERE EXISTS (SELECT 1 FROM nope)"),
            "42P01"
        );
        // WITH queries and table functions are not relations to look up.
        assert!(plan(
            "CREATE VIEW w AS WITH q AS (SELECT 1 AS x) SELECT * FROM q, generate_series(1, 2) g",
            &c
        )
        .is_ok());
        // Adding columns at the end is allowed.
        assert!(plan("CREATE OR REPLACE VIEW v AS SELECT a, b, 1 AS c FROM t", &c).is_ok());
    }

    #[test]
    fn cascade_drops_the_readers_first() {
        let mut c = catalog();
        created("CREATE VIEW v AS SELECT a FROM t", &mut c);
        created("CREATE VIEW w AS SELECT a FROM v", &mut c);
        let Command::Sql(p) = plan("DROP TABLE t CASCADE", &c).unwrap() else {
            panic!()
        };
        assert_eq!(
            p.sql,
            [
                "DROP VIEW IF EXISTS \"v\"",
                "DROP VIEW IF EXISTS \"w\"",
                "DROP TABLE IF EXISTS \"t\""
            ]
        );
        let Command::Sql(p) = plan("DROP VIEW v CASCADE", &c).unwrap() else {
            panic!()
        };
        assert_eq!(
            p.sql,
            ["DROP VIEW IF EXISTS \"w\"", "DROP VIEW IF EXISTS \"v\""]
        );
        let Command::Sql(p) = plan("SELECT * FROM w", &c).unwrap() else {
            panic!()
        };
        assert_eq!(p.reads, ["t"]);
    }
}
