//! `CREATE SEQUENCE` and `DROP SEQUENCE`: a sequence's definition is schema (replicated
//! through the schema log, kept in `__mdbc_sequences`); the values it hands out are each
//! site's own (the server's `Sequences`, striped so that two sites never give the same
//! value). The definition's rules and error messages are PostgreSQL's (sequence.c's
//! `init_params`), so a definition PostgreSQL refuses is refused here with its SQLSTATE.

use sqlparser::ast::ObjectName;

use crate::ast::table_names;
use crate::catalog::{Catalog, SequenceDef};
use crate::error::{Error, Result};
use crate::plan::{CatalogChange, Command};
use crate::sequence_syntax::{SequenceOption, SequenceStatement};
use crate::types::PgType;

fn invalid(message: String) -> Error {
    Error::Coded("22023", message)
}

fn type_bounds(ty: PgType) -> (i64, i64) {
    match ty {
        PgType::Int2 => (i16::MIN.into(), i16::MAX.into()),
        PgType::Int4 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// `CREATE SEQUENCE` or `ALTER SEQUENCE`.
pub(crate) fn plan(st: &SequenceStatement, catalog: &Catalog) -> Result<Command> {
    if st.alter {
        alter(st, catalog)
    } else {
        create(st, catalog)
    }
}

fn create(st: &SequenceStatement, catalog: &Catalog) -> Result<Command> {
    if st.temporary {
        return Err(Error::Unsupported("CREATE TEMPORARY SEQUENCE".into()));
    }
    if catalog.has_relation(&st.name) {
        if st.if_exists {
            return Ok(Command::Noop("CREATE SEQUENCE"));
        }
        return Err(Error::DuplicateTable(st.name.clone()));
    }
    let def = define(None, st, catalog)?;
    Ok(Command::ddl(
        Vec::new(),
        "CREATE SEQUENCE",
        vec![CatalogChange::CreateSequence(def)],
    ))
}

fn alter(st: &SequenceStatement, catalog: &Catalog) -> Result<Command> {
    let Some(old) = catalog.sequence(&st.name) else {
        if catalog.is_serial_sequence(&st.name) {
            return Err(Error::Unsupported(
                "ALTER SEQUENCE of a serial column's sequence (use setval)".into(),
            ));
        }
        if st.if_exists {
            return Ok(Command::Noop("ALTER SEQUENCE"));
        }
        if catalog.has_relation(&st.name) {
            return Err(Error::Coded(
                "42809",
                format!("\"{}\" is not a sequence", st.name),
            ));
        }
        return Err(Error::Coded(
            "42P01",
            format!("relation \"{}\" does not exist", st.name),
        ));
    };
    let def = define(Some(old), st, catalog)?;
    let mut changes = vec![CatalogChange::CreateSequence(def.clone())];
    for o in &st.options {
        if let SequenceOption::Restart(v) = o {
            let value = v.unwrap_or(def.start);
            if value < def.min {
                return Err(invalid(format!(
                    "RESTART value ({value}) cannot be less than MINVALUE ({})",
                    def.min
                )));
            }
            if value > def.max {
                return Err(invalid(format!(
                    "RESTART value ({value}) cannot be greater than MAXVALUE ({})",
                    def.max
                )));
            }
            changes.push(CatalogChange::RestartSequence {
                name: def.name.clone(),
                value,
            });
        }
    }
    Ok(Command::ddl(Vec::new(), "ALTER SEQUENCE", changes))
}

/// The definition `st` gives (over `old`'s for ALTER), checked as PostgreSQL checks it.
fn define(
    old: Option<&SequenceDef>,
    st: &SequenceStatement,
    catalog: &Catalog,
) -> Result<SequenceDef> {
    let mut def = old.cloned().unwrap_or(SequenceDef {
        name: st.name.clone(),
        ty: PgType::Int8,
        start: 0,
        increment: 1,
        min: 0,
        max: 0,
        cache: 1,
        cycle: false,
        owned_by: None,
    });
    let old_bounds = type_bounds(def.ty);
    let (mut min, mut max, mut start) = match old {
        Some(o) => (Some(o.min), Some(o.max), Some(o.start)),
        None => (None, None, None),
    };
    let mut retyped = false;
    for o in &st.options {
        match o {
            SequenceOption::As(t) => {
                def.ty = match PgType::parse_sql_name(t).map(|s| s.ty) {
                    Some(t @ (PgType::Int2 | PgType::Int4 | PgType::Int8)) => t,
                    _ => {
                        return Err(invalid(
                            "sequence type must be smallint, integer, or bigint".into(),
                        ))
                    }
                };
                retyped = true;
            }
            SequenceOption::Increment(n) => def.increment = *n,
            SequenceOption::Min(n) => min = *n,
            SequenceOption::Max(n) => max = *n,
            SequenceOption::Start(n) => start = Some(*n),
            SequenceOption::Restart(_) => {}
            SequenceOption::Cache(n) => def.cache = *n,
            SequenceOption::Cycle(c) => def.cycle = *c,
            SequenceOption::OwnedBy(o) => {
                def.owned_by = match o {
                    None => None,
                    Some((t, c)) => Some(owner(t, c, catalog)?),
                }
            }
        }
    }
    if def.increment == 0 {
        return Err(invalid("INCREMENT must not be zero".into()));
    }
    let (lo, hi) = type_bounds(def.ty);
    // A new type moves the bounds that were the old type's own to the new type's, as
    // PostgreSQL does (whatever the direction).
    let reset_max = retyped && max == Some(old_bounds.1);
    let reset_min = retyped && min == Some(old_bounds.0);
    let up = def.increment > 0;
    def.max = match max {
        Some(m) if !reset_max => m,
        _ if up || reset_max => hi,
        _ => -1,
    };
    def.min = match min {
        Some(m) if !reset_min => m,
        _ if !up || reset_min => lo,
        _ => 1,
    };
    let type_name = def.ty.name();
    if def.max < lo || def.max > hi {
        return Err(invalid(format!(
            "MAXVALUE ({}) is out of range for sequence data type {type_name}",
            def.max
        )));
    }
    if def.min < lo || def.min > hi {
        return Err(invalid(format!(
            "MINVALUE ({}) is out of range for sequence data type {type_name}",
            def.min
        )));
    }
    if def.min >= def.max {
        return Err(invalid(format!(
            "MINVALUE ({}) must be less than MAXVALUE ({})",
            def.min, def.max
        )));
    }
    def.start = start.unwrap_or(if up { def.min } else { def.max });
    if def.start < def.min {
        return Err(invalid(format!(
            "START value ({}) cannot be less than MINVALUE ({})",
            def.start, def.min
        )));
    }
    if def.start > def.max {
        return Err(invalid(format!(
            "START value ({}) cannot be greater than MAXVALUE ({})",
            def.start, def.max
        )));
    }
    if def.cache <= 0 {
        return Err(invalid(format!(
            "CACHE ({}) must be greater than zero",
            def.cache
        )));
    }
    Ok(def)
}

/// `OWNED BY table.column`: the column must exist (the sequence goes with its table).
fn owner(table: &str, column: &str, catalog: &Catalog) -> Result<(String, String)> {
    let def = catalog
        .table(table)
        .ok_or_else(|| Error::UndefinedTable(table.to_string()))?;
    let col = def
        .column(column)
        .ok_or_else(|| crate::catalog::no_such_column(table, column))?;
    Ok((def.name.clone(), col.name.clone()))
}

/// `DROP SEQUENCE [IF EXISTS] names`. A serial column's sequence goes with its column
/// (PostgreSQL's 2BP01: the column's default depends on it).
pub(crate) fn drop(if_exists: bool, names: &[ObjectName], catalog: &Catalog) -> Result<Command> {
    let mut dropped = Vec::new();
    for n in table_names(names) {
        match catalog.sequence(&n) {
            Some(s) => dropped.push(s.name.clone()),
            None if catalog.is_serial_sequence(&n) => {
                return Err(Error::Coded(
                    "2BP01",
                    format!("cannot drop sequence {n} because other objects depend on it (the default of its serial column)"),
                ))
            }
            None if catalog.has_relation(&n) => {
                return Err(Error::Coded("42809", format!("\"{n}\" is not a sequence")))
            }
            None if if_exists => {}
            None => {
                return Err(Error::Coded(
                    "42P01",
                    format!("sequence \"{n}\" does not exist"),
                ))
            }
        }
    }
    if dropped.is_empty() {
        return Ok(Command::Noop("DROP SEQUENCE"));
    }
    Ok(Command::ddl(
        Vec::new(),
        "DROP SEQUENCE",
        vec![CatalogChange::DropSequences(dropped)],
    ))
}

/// The sequences owned by columns of `table` (dropped with it).
pub(crate) fn owned_by_table(table: &str, catalog: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = catalog
        .sequences()
        .filter(|s| {
            s.owned_by
                .as_ref()
                .is_some_and(|(t, _)| t.eq_ignore_ascii_case(table))
        })
        .map(|s| s.name.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnInfo, TableDef};

    fn plan(sql: &str, c: &Catalog) -> Result<Command> {
        let parsed = crate::parse(sql)?;
        crate::plan(&parsed[0], c)
    }

    fn created(sql: &str) -> SequenceDef {
        match plan(sql, &Catalog::new(1)).unwrap() {
            Command::Sql(p) => match &p.catalog[0] {
                CatalogChange::CreateSequence(s) => s.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_direction_and_the_type() {
        let s = created("CREATE SEQUENCE s");
        assert_eq!(
            (s.ty, s.start, s.min, s.max, s.increment),
            (PgType::Int8, 1, 1, i64::MAX, 1)
        );
        let s = created("CREATE SEQUENCE s AS integer INCREMENT BY -2");
        assert_eq!((s.start, s.min, s.max), (-1, i32::MIN as i64, -1));
        let s = created("CREATE SEQUENCE s START WITH 10 MINVALUE 5 MAXVALUE 20 CACHE 4 CYCLE");
        assert_eq!(
            (s.start, s.min, s.max, s.cache, s.cycle),
            (10, 5, 20, 4, true)
        );
        // ALTER keeps what it does not name; a new type moves the type's own bounds.
        let mut c = Catalog::new(1);
        c.insert_sequence(s);
        let Command::Sql(p) = plan("ALTER SEQUENCE s AS smallint INCREMENT 3 RESTART", &c).unwrap()
        else {
            panic!()
        };
        let CatalogChange::CreateSequence(a) = &p.catalog[0] else {
            panic!()
        };
        assert_eq!(
            (a.start, a.min, a.max, a.increment, a.ty),
            (10, 5, 20, 3, PgType::Int2)
        );
        assert_eq!(
            p.catalog[1],
            CatalogChange::RestartSequence {
                name: "s".into(),
                value: 10
            }
        );
        let code = |sql: &str| plan(sql, &c).map(|_| ()).unwrap_err().sqlstate();
        assert_eq!(code("ALTER SEQUENCE s RESTART 100"), "22023");
        assert_eq!(code("ALTER SEQUENCE nope RESTART"), "42P01");
        // The corpus's case: a smallint sequence's own bounds become integer's.
        let mut c = Catalog::new(1);
        c.insert_sequence(created("CREATE SEQUENCE s AS smallint MINVALUE -32768"));
        let Command::Sql(p) = plan("ALTER SEQUENCE s AS int", &c).unwrap() else {
            panic!()
        };
        let CatalogChange::CreateSequence(a) = &p.catalog[0] else {
            panic!()
        };
        assert_eq!((a.min, a.max), (i32::MIN as i64, i32::MAX as i64));
        let s = created("CREATE SEQUENCE s AS integer MAXVALUE 100");
        c.insert_sequence(s.clone());
        let Command::Sql(p) = plan("ALTER SEQUENCE s AS bigint", &c).unwrap() else {
            panic!()
        };
        let CatalogChange::CreateSequence(a) = &p.catalog[0] else {
            panic!()
        };
        assert_eq!(a.max, 100);
    }

    #[test]
    fn definitions_postgresql_refuses_are_refused_with_its_code() {
        let mut c = Catalog::new(1);
        c.insert(TableDef {
            name: "t".into(),
            columns: vec![ColumnInfo {
                serial: true,
                ..ColumnInfo::plain("id", PgType::Int4)
            }],
        });
        let code = |sql: &str| plan(sql, &c).map(|_| ()).unwrap_err().sqlstate();
        assert_eq!(code("CREATE SEQUENCE s INCREMENT 0"), "22023");
        assert_eq!(code("CREATE SEQUENCE s MINVALUE 5 MAXVALUE 5"), "22023");
        assert_eq!(code("CREATE SEQUENCE s START 0"), "22023");
        assert_eq!(
            code("CREATE SEQUENCE s AS smallint MAXVALUE 40000"),
            "22023"
        );
        assert_eq!(code("CREATE SEQUENCE s AS text"), "22023");
        assert_eq!(code("CREATE SEQUENCE s CACHE 0"), "22023");
        assert_eq!(code("CREATE SEQUENCE t"), "42P07");
        assert_eq!(code("CREATE SEQUENCE t_id_seq"), "42P07");
        assert_eq!(code("CREATE SEQUENCE s OWNED BY t.nope"), "42703");
        assert_eq!(code("DROP SEQUENCE t_id_seq"), "2BP01");
        assert_eq!(code("DROP SEQUENCE nope"), "42P01");
        assert_eq!(code("DROP SEQUENCE t"), "42809");
        assert!(matches!(
            plan("CREATE SEQUENCE IF NOT EXISTS t_id_seq", &c).unwrap(),
            Command::Noop(_)
        ));
    }
}
