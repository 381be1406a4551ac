//! What introspection queries (psql's `\d`, ORMs' reflection, drivers' type lookups) need
//! beyond plain SQL: the `reg*` casts, the `pg_get_*def` deparsers, a few catalog functions,
//! and the rule that a query over a catalog mdbc keeps empty has no rows.
//!
//! The catalogs themselves are views the server creates (mdbc-server's `pg_catalog.rs`);
//! what they cannot express — looking an object up by name inside an expression, or
//! PostgreSQL syntax SQLite lacks in a query that cannot return anything — is translated
//! here, on the syntax tree.

pub(crate) mod empty;
pub(crate) mod functions;
pub(crate) mod lateral;
pub(crate) mod reg;

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Value, VisitorMut};

use crate::ast::parse_query;
use crate::error::Result;

/// Replaces the identifiers `__arg1`, `__arg2`, … in `q` by `args`.
pub(crate) fn fill_query(q: &mut Query, args: &[Expr]) {
    fill(q, args)
}

fn fill(q: &mut Query, args: &[Expr]) {
    struct Fill<'a>(&'a [Expr]);
    impl VisitorMut for Fill<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                if let Some(n) = id.value.strip_prefix("__arg") {
                    if let Some(a) = n.parse::<usize>().ok().and_then(|n| self.0.get(n - 1)) {
                        *e = a.clone();
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(q, &mut Fill(args));
}

/// `template` with `$1`, `$2`, … (written as identifiers `__arg1`, …) replaced by `args`,
/// as a scalar subquery. Templates read their catalog through a derived table whose
/// columns are named `__…`, so that a client's unqualified column in an argument (`oid`)
/// still means the client's table, not the catalog the subquery reads.
fn subquery(template: &str, args: &[Expr]) -> Result<Expr> {
    let mut q = parse_query(template)?;
    fill(&mut q, args);
    Ok(Expr::Subquery(Box::new(q)))
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// `want` of the `catalog` row whose `key` equals `arg`.
fn lookup(catalog: &str, want: &str, key: &str, arg: Expr) -> Result<Expr> {
    subquery(
        &format!(
            "SELECT __v FROM (SELECT {want} AS __v, {key} AS __k FROM {catalog}) \
             WHERE __k = __arg1"
        ),
        &[arg],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::catalog::{Catalog, ColumnInfo, SystemRelation, TableDef};
    use crate::plan::Command;
    use crate::split::parse;
    use crate::translate::plan;
    use crate::types::PgType;

    fn catalog() -> Catalog {
        let rel = |name: &str, empty: bool, cols: &[(&str, PgType)]| {
            (
                name.to_string(),
                SystemRelation {
                    def: Arc::new(TableDef {
                        name: name.into(),
                        columns: cols
                            .iter()
                            .map(|&(n, ty)| ColumnInfo::plain(n, ty))
                            .collect(),
                    }),
                    always_empty: empty,
                },
            )
        };
        let mut sys = HashMap::new();
        sys.extend([
            rel(
                "pg_class",
                false,
                &[("oid", PgType::Oid), ("relname", PgType::Name)],
            ),
            rel(
                "pg_trigger",
                true,
                &[("tgname", PgType::Name), ("tgrelid", PgType::Oid)],
            ),
            rel("pg_inherits", true, &[("inhrelid", PgType::Oid)]),
        ]);
        let mut c = Catalog::default();
        c.set_system(Arc::new(sys));
        c
    }

    fn sqlite(sql: &str) -> String {
        let p = parse(sql).unwrap();
        match plan(&p[0], &catalog()).unwrap() {
            Command::Sql(p) => p.sql.join("; "),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queries_over_empty_catalogs_are_answered_empty_with_their_names() {
        // Syntax SQLite lacks (WITH ORDINALITY, subscripts) never reaches it.
        let s = sqlite(
            "SELECT t.tgname, x[1] AS first FROM pg_catalog.pg_trigger t, \
             pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth) \
             WHERE t.tgrelid = '1' ORDER BY 1",
        );
        assert_eq!(s, "SELECT NULL AS \"tgname\", NULL AS \"first\" WHERE 0");
        // Both sides of a UNION must be empty; a LEFT JOIN to an empty catalog keeps rows;
        // an aggregate has its row.
        assert!(
            sqlite("SELECT tgname FROM pg_trigger UNION SELECT relname FROM pg_class")
                .contains("pg_class")
        );
        assert!(sqlite(
            "SELECT c.relname FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
        )
        .contains("LEFT JOIN"));
        assert!(sqlite("SELECT count(*) FROM pg_trigger").contains("count"));
        assert!(sqlite("SELECT stddev(tgrelid) FROM pg_trigger").contains("stddev"));
        assert!(sqlite(
            "SELECT c.relname FROM pg_class a JOIN pg_trigger t ON t.tgrelid = a.oid \
             RIGHT JOIN pg_class c ON c.oid = a.oid"
        )
        .contains("RIGHT JOIN"));
        assert!(sqlite(
            "SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
        )
        .ends_with("WHERE 0"));
    }

    #[test]
    fn reg_casts_look_objects_up() {
        // A literal oid is an oid; a name is looked up; an oid column prints as a name.
        let s = sqlite("select relname from pg_class where oid = '16385'::pg_catalog.regclass");
        assert!(s.ends_with("WHERE oid = (16385)"), "{s}");
        // In a select list it prints as the name.
        let s = sqlite("select '16385'::regclass");
        assert!(s.contains("WHERE __k = (16385)"), "{s}");
        // Names fold like identifiers; a quoted part keeps its case; other schemas are
        // empty.
        let s = sqlite("select 'Public.Books'::regclass");
        assert!(
            s.contains("relname AS __k") && s.contains("= 'books'"),
            "{s}"
        );
        assert!(sqlite("select '\"public\".\"Mixed\"'::regclass").contains("= 'Mixed'"));
        let s = sqlite("select 'other.books'::regclass");
        assert!(!s.contains("= 'books'"), "{s}");
        assert!(s.contains("relname AS __k"), "{s}");
        let s = sqlite("select oid::regclass from pg_class");
        assert!(
            s.contains("WHERE __k = oid"),
            "the argument must not be captured by the subquery: {s}"
        );
        assert!(sqlite("select to_regtype('int')").contains("23"));
        assert!(sqlite("select to_regtype('hstore')").contains("typname AS __k"));
    }

    #[test]
    fn array_subqueries_and_schema_positions() {
        let s = sqlite("select array(select relname from pg_class order by 1)");
        assert!(s.contains("json_group_array(__elem)"), "{s}");
        let s = sqlite("select array_position(current_schemas(true), 'public')");
        assert!(
            s.contains("CASE 'public' WHEN 'pg_catalog' THEN 1 WHEN 'public' THEN 2 END"),
            "{s}"
        );
    }

    #[test]
    fn set_returning_functions_in_the_select_list_become_json_each() {
        let s = sqlite(
            "select c.relname, unnest(i.indkey) as attnum, generate_subscripts(i.indkey, 1) as ord, \
             unnest(i.indclass) as opclass from pg_class c join pg_index i on i.indexrelid = c.oid",
        );
        assert!(s.contains("__u0.value AS attnum"), "{s}");
        assert!(s.contains("(__u0.key + 1) AS ord"), "{s}");
        assert!(s.contains("__u1.value AS opclass"), "{s}");
        assert!(s.contains("json_each(i.indkey) AS __u0"), "{s}");
        assert!(
            s.contains("LEFT JOIN json_each(i.indclass) AS __u1 ON __u1.key = __u0.key"),
            "{s}"
        );
        // An unnamed item keeps PostgreSQL's column name.
        assert!(sqlite("select unnest(array[1, 2])").contains("AS \"unnest\""));
    }

    #[test]
    fn arrays_are_json() {
        assert_eq!(
            sqlite("select array[1, 2], array_agg(relname order by oid) from pg_class"),
            "SELECT json_array(1, 2) AS \"array\", CASE WHEN count(*) = 0 THEN NULL ELSE \
             json_group_array(relname ORDER BY oid NULLS LAST) END AS \"array_agg\" FROM pg_class"
        );
        let s = sqlite("select 1 from pg_class c where c.oid = any(c.relname)");
        assert!(
            s.contains("c.oid IN (SELECT value FROM json_each(c.relname) AS __any)"),
            "{s}"
        );
        let s = sqlite("select (array[5, 6])[2]");
        assert_eq!(
            s,
            "SELECT json_extract((json_array(5, 6)), '$[' || (2 - 1) || ']') AS \"array\""
        );
    }

    #[test]
    fn distinct_on_keeps_the_first_row_of_each_group() {
        let s = sqlite(
            "select distinct on (relkind) relkind, relname from pg_class order by relkind, 2 desc",
        );
        assert!(
            s.contains("row_number() OVER (PARTITION BY relkind ORDER BY relkind NULLS LAST, relname DESC NULLS FIRST) AS __rn"),
            "{s}"
        );
        assert!(
            s.contains("WHERE __d.__rn = 1 ORDER BY __o1 NULLS LAST, __o2 DESC NULLS FIRST"),
            "{s}"
        );
        assert!(
            s.starts_with("SELECT __c1 AS \"relkind\", __c2 AS \"relname\""),
            "{s}"
        );
    }
}
