//! Classifying a parsed statement and planning how SQLite runs it.

use sqlparser::ast::{
    CopyOption, CopySource, CopyTarget, Expr, FromTable, Set, Statement, TableFactor, Value,
};

use crate::ast::{object_name_to_table, quote_ident};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::infer::{self, params::params_of_statement};
use crate::introspect::{empty::empty_result, reg::reg_in_select_list};
use crate::literals::{self, Literals};
use crate::naming::{apply_column_names, pg_column_names};
use crate::plan::{
    Command, CommandTag, CopyFormat, CopyPlan, CopyQuery, ResultColumn, SetValue, SqlPlan, StmtKind,
};
use crate::rewrite::{self, dml};
use crate::split::Parsed;
use crate::types::PgType;
use crate::{ddl, typed};

/// Plans one parsed statement against the current schema.
pub fn plan(parsed: &Parsed, catalog: &Catalog) -> Result<Command> {
    plan_with(parsed, catalog, None)
}

/// Plans a statement for reuse by shape (see [`crate::literals`]): where every literal
/// the client wrote can be a parameter, the plan's `literals` counts them; otherwise it is
/// 0 and the plan is an ordinary one for this text only.
pub fn plan_shape(parsed: &Parsed, catalog: &Catalog, literals: &Literals) -> Result<Command> {
    plan_with(parsed, catalog, Some(literals))
}

fn plan_with(parsed: &Parsed, catalog: &Catalog, literals: Option<&Literals>) -> Result<Command> {
    // Where the literals became parameters: how many.
    let bound = std::cell::Cell::new(0);
    let shape = |node: &mut dyn FnMut(&Literals) -> bool| {
        if let Some(l) = literals {
            if node(l) {
                bound.set(l.len());
            }
        }
    };
    let stmt = match parsed {
        Parsed::Noop(tag) => return Ok(Command::Noop(tag)),
        Parsed::Cursor(c) => return Ok(Command::Cursor(c.clone())),
        Parsed::CurrentOf(c) => return Ok(Command::CurrentOf(c.clone())),
        Parsed::Sequence(s) => return crate::sequence::plan(s, catalog),
        Parsed::Statement(s) => s.as_ref(),
        Parsed::Deferrable(s, deferrable) => {
            let on = if *deferrable { "on" } else { "off" };
            let mode = ("transaction_deferrable".to_string(), on.to_string());
            return match plan_with(&Parsed::Statement(s.clone()), catalog, None)? {
                Command::Begin => Ok(Command::TransactionModes {
                    begin: true,
                    session: false,
                    settings: vec![mode],
                }),
                Command::TransactionModes {
                    begin,
                    session,
                    mut settings,
                } => {
                    settings.push(mode);
                    Ok(Command::TransactionModes {
                        begin,
                        session,
                        settings,
                    })
                }
                other => Ok(other),
            };
        }
    };
    crate::folding::check(stmt)?;
    let mut cmd = match stmt {
        Statement::StartTransaction { modes, .. } if modes.is_empty() => Ok(Command::Begin),
        Statement::StartTransaction { modes, .. } => Ok(Command::TransactionModes {
            begin: true,
            session: false,
            settings: transaction_modes(modes),
        }),
        Statement::Commit { chain: true, .. } => Ok(Command::Chain { commit: true }),
        Statement::Rollback {
            chain: true,
            savepoint: None,
        } => Ok(Command::Chain { commit: false }),
        Statement::Commit { .. } => Ok(Command::Commit),
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => Ok(Command::RollbackTo(name.value.clone())),
        Statement::Rollback { .. } => Ok(Command::Rollback),
        Statement::Savepoint { name } => Ok(Command::Savepoint(name.value.clone())),
        Statement::ReleaseSavepoint { name } => Ok(Command::Release(name.value.clone())),
        Statement::Set(set) => plan_set(set),
        // RESET name is SET name TO DEFAULT; RESET ALL every setting.
        Statement::Reset(r) => Ok(match &r.reset {
            sqlparser::ast::Reset::ALL => Command::ResetAll,
            sqlparser::ast::Reset::ConfigurationParameter(name) => {
                Command::Reset(name.to_string().to_ascii_lowercase())
            }
            sqlparser::ast::Reset::SessionAuthorization => Command::Noop("RESET"),
        }),
        Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            // sqlparser drops the dot of a qualified name (`SHOW mdbc.site`); the only
            // names of several words are PostgreSQL's own.
            let sep = match words.first().map(String::as_str) {
                Some("transaction" | "time" | "session") => " ",
                _ => ".",
            };
            Ok(Command::Show(words.join(sep)))
        }
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => {
            // `COPY (query) TO STDOUT`: the query planned as any other.
            let query = match source {
                CopySource::Query(q) if *to => {
                    let parsed = Parsed::Statement(Box::new(Statement::Query(q.clone())));
                    match plan_with(&parsed, catalog, None)? {
                        Command::Sql(p) if p.param_types.is_empty() => {
                            let names = crate::naming::result_names(&q.body).unwrap_or_default();
                            let sql = p.sql.last().cloned().unwrap_or_default();
                            let columns = p
                                .columns
                                .iter()
                                .enumerate()
                                .map(|(i, c)| {
                                    let name =
                                        names.get(i).cloned().unwrap_or_else(|| "?column?".into());
                                    (name, *c)
                                })
                                .collect();
                            Some(CopyQuery { sql, columns })
                        }
                        _ => {
                            return Err(Error::Unsupported(
                                "COPY (query) with parameters or a query of this kind".into(),
                            ))
                        }
                    }
                }
                _ => None,
            };
            plan_copy(source, *to, target, options, legacy_options, catalog, query)
        }
        Statement::Query(q) => {
            // `WITH … INSERT/UPDATE/DELETE` (and data-modifying statements anywhere in a
            // query): planned as a query they would return nothing and change nothing.
            if crate::modifying_with::has_data_modifying(q) {
                return crate::modifying_with::plan(q);
            }
            if let Some(cmd) = crate::create_as::from_select_into(q, catalog)? {
                return Ok(cmd);
            }
            let mut q = q.clone();
            let for_update = !q.locks.is_empty();
            q.locks.clear();
            // Typed with its WITH queries' columns (what is read and written stays the
            // real tables': `catalog`).
            let with_view;
            let typing = match &q.with {
                Some(w) => {
                    with_view = infer::with_ctes(catalog, w);
                    &with_view
                }
                None => catalog,
            };
            let columns = infer::query_columns(&q, typing);
            let params = params_of_statement(stmt, typing);
            if let Some(sql) = empty_result(&q, catalog) {
                return Ok(sql_plan(
                    StmtKind::Read,
                    vec![sql],
                    CommandTag::Select,
                    true,
                    params,
                    columns,
                    Vec::new(),
                ));
            }
            crate::windows::check(&q)?;
            let names = pg_column_names(&q);
            crate::set_operations::unify(&mut q, typing);
            reg_in_select_list(&mut q);
            typed::order_nulls_like_postgres(&mut q, typing);
            typed::date_arithmetic(&mut q, typing);
            rewrite::rewrite_query(&mut q, typing)?;
            apply_column_names(&mut q, names);
            shape(&mut |l| literals::parameterize(&mut q, l));
            let reads = tables_read(&q, catalog);
            let mut plan = sql_plan(
                if for_update {
                    StmtKind::Write
                } else {
                    StmtKind::Read
                },
                vec![q.to_string()],
                CommandTag::Select,
                true,
                params,
                columns,
                Vec::new(),
            );
            if let Command::Sql(p) = &mut plan {
                p.reads = reads;
            }
            Ok(plan)
        }
        Statement::Insert(ins) => {
            let table = match &ins.table {
                sqlparser::ast::TableObject::TableName(n) => object_name_to_table(n),
                other => return Err(Error::Unsupported(format!("INSERT INTO {other}"))),
            };
            crate::view::refuse_write("INSERT", &table, catalog)?;
            let def = catalog.table(&table).cloned();
            let params = params_of_statement(stmt, catalog);
            let mut ins = ins.clone();
            dml::returning_without_alias(
                &mut ins.returning,
                ins.table_alias.as_ref().map(|a| &a.alias),
            );
            let columns = ins
                .returning
                .as_ref()
                .map(|r| infer::returning_columns(r, &table, catalog))
                .unwrap_or_default();
            dml::literals_in_range(&ins, def.as_deref())?;
            typed::date_arithmetic_in(&mut ins, stmt, catalog);
            typed::order_nulls_in(&mut ins);
            dml::rewrite_insert(&mut ins, def.as_deref(), catalog)?;
            shape(&mut |l| literals::parameterize(&mut ins, l));
            let returns = ins.returning.is_some();
            Ok(sql_plan(
                StmtKind::Write,
                vec![Statement::Insert(ins).to_string()],
                CommandTag::Insert,
                returns,
                params,
                columns,
                vec![table],
            ))
        }
        Statement::Update(up) => {
            let table = match &up.table.relation {
                TableFactor::Table { name, .. } => object_name_to_table(name),
                other => return Err(Error::Unsupported(format!("UPDATE {other}"))),
            };
            let params = params_of_statement(stmt, catalog);
            let mut up = up.clone();
            if let TableFactor::Table { alias, .. } = &up.table.relation {
                let alias = alias.as_ref().map(|a| a.name.clone());
                dml::returning_without_alias(&mut up.returning, alias.as_ref());
            }
            let columns = up
                .returning
                .as_ref()
                .map(|r| infer::returning_columns(r, &table, catalog))
                .unwrap_or_default();
            crate::view::refuse_write("UPDATE", &table, catalog)?;
            let def = catalog.table(&table).cloned();
            typed::date_arithmetic_in(&mut up, stmt, catalog);
            typed::order_nulls_in(&mut up);
            dml::rewrite_update(&mut up, def.as_deref(), catalog)?;
            shape(&mut |l| literals::parameterize(&mut up, l));
            let returns = up.returning.is_some();
            Ok(sql_plan(
                StmtKind::Write,
                vec![Statement::Update(up).to_string()],
                CommandTag::Update,
                returns,
                params,
                columns,
                vec![table],
            ))
        }
        Statement::Delete(del) => {
            let tables = match &del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let table = match tables.first().map(|t| &t.relation) {
                Some(TableFactor::Table { name, .. }) if tables.len() == 1 => {
                    object_name_to_table(name)
                }
                _ => return Err(Error::Unsupported("DELETE with several tables".into())),
            };
            crate::view::refuse_write("DELETE", &table, catalog)?;
            let params = params_of_statement(stmt, catalog);
            let alias = match tables.first().map(|t| &t.relation) {
                Some(TableFactor::Table { alias: Some(a), .. }) => Some(a.name.clone()),
                _ => None,
            };
            let mut del = del.clone();
            dml::returning_without_alias(&mut del.returning, alias.as_ref());
            let columns = del
                .returning
                .as_ref()
                .map(|r| infer::returning_columns(r, &table, catalog))
                .unwrap_or_default();
            typed::date_arithmetic_in(&mut del, stmt, catalog);
            typed::order_nulls_in(&mut del);
            dml::rewrite_delete(&mut del, catalog)?;
            // SQLite empties a table at once for a DELETE without WHERE, bypassing the
            // session extension's per-row record (sqlite3DeleteFrom's truncate
            // optimisation): a replicated site would then never ship the deletes. An
            // explicit WHERE keeps every row change visible.
            if del.selection.is_none() {
                del.selection = Some(Expr::value(sqlparser::ast::Value::Boolean(true)));
            }
            shape(&mut |l| literals::parameterize(&mut del, l));
            let returns = del.returning.is_some();
            Ok(sql_plan(
                StmtKind::Write,
                vec![Statement::Delete(del).to_string()],
                CommandTag::Delete,
                returns,
                params,
                columns,
                vec![table],
            ))
        }
        Statement::Truncate(t) => {
            let mut sql = Vec::new();
            let mut writes = Vec::new();
            for target in &t.table_names {
                let name = object_name_to_table(&target.name);
                if catalog.table(&name).is_none() {
                    return Err(Error::UndefinedTable(name));
                }
                // WHERE true: see the DELETE case (row changes must stay visible).
                sql.push(format!("DELETE FROM {} WHERE true", quote_ident(&name)));
                writes.push(name);
            }
            Ok(sql_plan(
                StmtKind::Write,
                sql,
                CommandTag::Fixed("TRUNCATE TABLE"),
                false,
                Vec::new(),
                Vec::new(),
                writes,
            ))
        }
        Statement::CreateTable(ct) => ddl::create_table(ct, catalog),
        Statement::CreateIndex(ci) => ddl::create_index(ci, catalog),
        Statement::Drop {
            object_type: sqlparser::ast::ObjectType::Sequence,
            if_exists,
            names,
            ..
        } => crate::sequence::drop(*if_exists, names, catalog),
        Statement::Drop {
            object_type: sqlparser::ast::ObjectType::View,
            if_exists,
            names,
            cascade,
            ..
        } => crate::view::drop(*if_exists, names, *cascade, catalog),
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => ddl::drop(*object_type, *if_exists, names, *cascade, catalog),
        Statement::AlterTable(at) => ddl::alter_table(at, catalog, plan),
        Statement::Comment {
            object_type,
            object_name,
            comment,
            if_exists,
        } => {
            if *if_exists {
                return Err(Error::Unsupported("COMMENT IF EXISTS".into()));
            }
            crate::comment::comment(object_type, object_name, comment.as_deref(), catalog)
        }
        Statement::CreateView(cv) => crate::view::create(
            cv,
            |query| plan(&Parsed::Statement(Box::new(query)), catalog),
            catalog,
        ),
        Statement::Analyze(_) => Ok(Command::Noop("ANALYZE")),
        Statement::Discard { .. } => Ok(Command::Noop("DISCARD ALL")),
        // The schemas mdbc has are PostgreSQL's own (public, pg_catalog,
        // information_schema): creating one of them is PostgreSQL's answer for an existing
        // schema; any other is refused.
        Statement::CreateSchema {
            schema_name: sqlparser::ast::SchemaName::Simple(name),
            if_not_exists,
            ..
        } if matches!(
            object_name_to_table(name).as_str(),
            "public" | "pg_catalog" | "information_schema"
        ) =>
        {
            if *if_not_exists {
                Ok(Command::Noop("CREATE SCHEMA"))
            } else {
                Err(Error::Coded(
                    "42P06",
                    format!("schema \"{}\" already exists", object_name_to_table(name)),
                ))
            }
        }
        Statement::CreateSchema { .. } => Err(Error::Unsupported(
            "CREATE SCHEMA (mdbc has the schema public only)".into(),
        )),
        // The functions of these extensions are built in (uuid_generate_v4,
        // gen_random_uuid); any other extension is not there.
        Statement::CreateExtension(ce) => match ce.name.value.to_ascii_lowercase().as_str() {
            "uuid-ossp" | "pgcrypto" | "plpgsql" => Ok(Command::Noop("CREATE EXTENSION")),
            other => Err(Error::Unsupported(format!("CREATE EXTENSION \"{other}\""))),
        },
        Statement::Explain {
            analyze,
            statement,
            format,
            options,
            ..
        } => explain(
            *analyze,
            statement,
            format.as_ref(),
            options.as_deref(),
            catalog,
        ),
        Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. } => {
            Err(Error::Unsupported(
                "SQL-level PREPARE/EXECUTE (use the extended protocol)".into(),
            ))
        }
        Statement::LISTEN { .. } | Statement::NOTIFY { .. } | Statement::UNLISTEN { .. } => {
            Err(Error::Unsupported("LISTEN/NOTIFY".into()))
        }
        other => Err(Error::Unsupported(statement_name(other))),
    }?;
    if let Command::Sql(p) = &mut cmd {
        // The session's temporary tables are its own: replication neither ships their
        // rows nor syncs before reading them.
        p.writes.retain(|t| !catalog.is_temporary(t));
        p.literals = bound.get();
        if p.kind == StmtKind::Write && p.reads.is_empty() {
            // What a write reads besides its targets (INSERT … SELECT, UPDATE … FROM,
            // subqueries): a strong write computed from another table's rows.
            let mut reads = tables_read(stmt, catalog);
            reads.retain(|t| !p.writes.contains(t));
            p.reads = reads;
        }
        p.reads.retain(|t| !catalog.is_temporary(t));
    }
    Ok(cmd)
}

#[allow(clippy::too_many_arguments)]
fn sql_plan(
    kind: StmtKind,
    sql: Vec<String>,
    tag: CommandTag,
    returns_rows: bool,
    param_types: Vec<Option<PgType>>,
    columns: Vec<ResultColumn>,
    writes: Vec<String>,
) -> Command {
    Command::Sql(Box::new(SqlPlan {
        kind,
        sql,
        tag,
        returns_rows,
        param_types,
        columns,
        writes,
        reads: Vec::new(),
        catalog: Vec::new(),
        rebuild: None,
        literals: 0,
        temporary: None,
    }))
}

/// The tables (of the catalog) a query names, sorted and without repeats.
fn tables_read<V: sqlparser::ast::Visit>(q: &V, catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(q, |name| {
        // A view reads its tables (a strong table read through a view syncs as well).
        out.extend(catalog.base_tables(&object_name_to_table(name)));
        std::ops::ControlFlow::<()>::Continue(())
    });
    out.sort();
    out.dedup();
    out
}

/// The statement's leading keywords, for "… is not supported" messages.
fn statement_name(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(3)
        .collect();
    if words.is_empty() {
        "this statement".into()
    } else {
        words.join(" ").to_ascii_uppercase()
    }
}

fn plan_set(set: &Set) -> Result<Command> {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = variable.to_string().to_ascii_lowercase();
            let value = values
                .iter()
                .map(set_value_text)
                .collect::<Vec<_>>()
                .join(", ");
            let value = if value.eq_ignore_ascii_case("default") {
                SetValue::Default
            } else {
                SetValue::Value(value)
            };
            Ok(Command::Set { name, value })
        }
        Set::SetTimeZone { value, .. } => Ok(Command::Set {
            name: "timezone".into(),
            value: SetValue::Value(set_value_text(value)),
        }),
        Set::SetNames { charset_name, .. } => Ok(Command::Set {
            name: "client_encoding".into(),
            value: SetValue::Value(charset_name.to_string()),
        }),
        Set::SetTransaction {
            modes,
            snapshot: None,
            session,
        } => Ok(Command::TransactionModes {
            begin: false,
            session: *session,
            settings: transaction_modes(modes),
        }),
        Set::SetTransaction { .. } => Err(Error::Unsupported("SET TRANSACTION SNAPSHOT".into())),
        Set::SetSessionParam(_) => Ok(Command::Noop("SET")),
        other => Err(Error::Unsupported(format!("{other}"))),
    }
}

/// ISOLATION LEVEL and READ ONLY/WRITE as the settings PostgreSQL shows them under.
fn transaction_modes(modes: &[sqlparser::ast::TransactionMode]) -> Vec<(String, String)> {
    use sqlparser::ast::{TransactionAccessMode, TransactionIsolationLevel, TransactionMode};
    modes
        .iter()
        .map(|m| match m {
            TransactionMode::IsolationLevel(l) => (
                "transaction_isolation".to_string(),
                match l {
                    TransactionIsolationLevel::ReadUncommitted => "read uncommitted",
                    TransactionIsolationLevel::ReadCommitted => "read committed",
                    TransactionIsolationLevel::RepeatableRead => "repeatable read",
                    _ => "serializable",
                }
                .to_string(),
            ),
            TransactionMode::AccessMode(a) => (
                "transaction_read_only".to_string(),
                if matches!(a, TransactionAccessMode::ReadOnly) {
                    "on"
                } else {
                    "off"
                }
                .to_string(),
            ),
        })
        .collect()
}

fn set_value_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn plan_copy(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[sqlparser::ast::CopyLegacyOption],
    catalog: &Catalog,
    query: Option<CopyQuery>,
) -> Result<Command> {
    let (table, columns) = match source {
        CopySource::Table {
            table_name,
            columns,
        } => (
            object_name_to_table(table_name),
            columns.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
        ),
        CopySource::Query(_) if query.is_some() => (String::new(), Vec::new()),
        CopySource::Query(_) => return Err(Error::Unsupported("COPY (query) FROM".into())),
    };
    match (to, target) {
        (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
        _ => {
            return Err(Error::Unsupported(
                "COPY to or from a server file or program (use STDIN/STDOUT)".into(),
            ))
        }
    }
    if query.is_none() {
        let Some(def) = catalog.table(&table) else {
            return Err(Error::UndefinedTable(table));
        };
        for c in &columns {
            if def.column(c).is_none() {
                return Err(Error::UndefinedColumn(c.clone()));
            }
        }
    }
    let mut plan = CopyPlan {
        table,
        columns,
        from_stdin: !to,
        format: CopyFormat::Text,
        delimiter: '\t',
        null: "\\N".into(),
        header: false,
        quote: '"',
        escape: '"',
        force_quote: None,
        force_not_null: Vec::new(),
        force_null: Vec::new(),
        query,
    };
    let mut escape = None;
    let mut csv_only = false;
    let names = |cols: &[sqlparser::ast::Ident]| -> Vec<String> {
        cols.iter().map(crate::ast::ident_value).collect()
    };
    let all_columns = |cols: &[sqlparser::ast::Ident]| cols.len() == 1 && cols[0].value == "*";
    let mut delimiter = None;
    let mut null = None;
    for o in options {
        match o {
            CopyOption::Format(f) => {
                plan.format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    other => return Err(Error::Unsupported(format!("COPY format {other}"))),
                }
            }
            CopyOption::Freeze(_) => {}
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(h) => plan.header = *h,
            CopyOption::Quote(c) => {
                plan.quote = *c;
                csv_only = true;
            }
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::ForceQuote(cols) => {
                plan.force_quote = Some(if all_columns(cols) {
                    Vec::new()
                } else {
                    names(cols)
                })
            }
            CopyOption::ForceNotNull(cols) => plan.force_not_null = names(cols),
            CopyOption::ForceNull(cols) => plan.force_null = names(cols),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            CopyOption::Encoding(e) => {
                return Err(Error::Unsupported(format!(
                    "COPY ENCODING '{e}' (only UTF8)"
                )))
            }
        }
    }
    for o in legacy {
        use sqlparser::ast::CopyLegacyOption as L;
        match o {
            L::Csv(csv) => {
                use sqlparser::ast::CopyLegacyCsvOption as C;
                plan.format = CopyFormat::Csv;
                for c in csv {
                    match c {
                        C::Header => plan.header = true,
                        C::Quote(q) => plan.quote = *q,
                        C::Escape(e) => escape = Some(*e),
                        C::ForceQuote(cols) => {
                            plan.force_quote = Some(if all_columns(cols) {
                                Vec::new()
                            } else {
                                names(cols)
                            })
                        }
                        C::ForceNotNull(cols) => plan.force_not_null = names(cols),
                    }
                }
            }
            L::Delimiter(c) => delimiter = Some(*c),
            L::Null(s) => null = Some(s.clone()),
            L::Header => plan.header = true,
            other => return Err(Error::Unsupported(format!("COPY option {other}"))),
        }
    }
    if plan.format == CopyFormat::Csv {
        plan.delimiter = ',';
        plan.null = String::new();
        plan.escape = escape.unwrap_or(plan.quote);
    } else if escape.is_some()
        || plan.force_quote.is_some()
        || !plan.force_not_null.is_empty()
        || !plan.force_null.is_empty()
        || csv_only
    {
        return Err(Error::Unsupported(
            "COPY QUOTE, ESCAPE and FORCE options outside CSV mode (as in PostgreSQL)".into(),
        ));
    }
    if let Some(d) = delimiter {
        plan.delimiter = d;
    }
    if let Some(n) = null {
        plan.null = n;
    }
    Ok(Command::Copy(plan))
}

/// EXPLAIN [ANALYZE] [(option …)] statement.
fn explain(
    analyze: bool,
    statement: &Statement,
    format: Option<&sqlparser::ast::AnalyzeFormatKind>,
    options: Option<&[sqlparser::ast::UtilityOption]>,
    catalog: &Catalog,
) -> Result<Command> {
    use sqlparser::ast::{AnalyzeFormat, AnalyzeFormatKind};
    let mut analyze = analyze;
    let mut json = matches!(
        format,
        Some(
            AnalyzeFormatKind::Keyword(AnalyzeFormat::JSON)
                | AnalyzeFormatKind::Assignment(AnalyzeFormat::JSON)
        )
    );
    for o in options.unwrap_or_default() {
        let name = o.name.value.to_ascii_lowercase();
        let arg = o
            .arg
            .as_ref()
            .map(|a| a.to_string().trim_matches('\'').to_ascii_lowercase());
        let on = || match arg.as_deref() {
            None | Some("true" | "on" | "1") => Ok(true),
            Some("false" | "off" | "0") => Ok(false),
            Some(other) => Err(Error::InvalidParameter(format!(
                "{name} requires a Boolean value, not \"{other}\""
            ))),
        };
        match name.as_str() {
            "analyze" => analyze = on()?,
            "format" => match arg.as_deref() {
                Some("text") => json = false,
                Some("json") => json = true,
                Some(f @ ("yaml" | "xml")) => {
                    return Err(Error::Unsupported(format!("EXPLAIN (FORMAT {f})")))
                }
                other => {
                    return Err(Error::InvalidParameter(format!(
                        "unrecognized value for EXPLAIN option \"format\": \"{}\"",
                        other.unwrap_or_default()
                    )))
                }
            },
            // Accepted: mdbc has no costs, buffers or WAL figures to show or hide.
            "costs" | "verbose" | "buffers" | "timing" | "summary" | "settings" | "wal" => {
                on()?;
            }
            other => {
                return Err(Error::Syntax(format!(
                    "unrecognized EXPLAIN option \"{other}\""
                )))
            }
        }
    }
    let inner = plan_with(
        &Parsed::Statement(Box::new(statement.clone())),
        catalog,
        None,
    )?;
    let Command::Sql(plan) = inner else {
        return Err(Error::Unsupported(format!(
            "EXPLAIN of {}",
            statement_name(statement)
        )));
    };
    if analyze && plan.kind != StmtKind::Read {
        return Err(Error::Unsupported(
            "EXPLAIN ANALYZE of a statement that writes".into(),
        ));
    }
    let (aggregate, limit) = match statement {
        Statement::Query(q) => (
            query_aggregates(q),
            q.limit_clause.is_some() || q.fetch.is_some(),
        ),
        _ => (false, false),
    };
    Ok(Command::Explain(Box::new(crate::plan::ExplainPlan {
        plan: *plan,
        analyze,
        json,
        aggregate,
        limit,
    })))
}

/// Whether a query's top SELECT aggregates (GROUP BY, or an aggregate in its select list).
fn query_aggregates(q: &sqlparser::ast::Query) -> bool {
    let sqlparser::ast::SetExpr::Select(sel) = q.body.as_ref() else {
        return false;
    };
    let grouped =
        !matches!(&sel.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(&sel.projection, |e| {
        if let Expr::Function(f) = e {
            let name = crate::ast::function_name(f);
            if f.over.is_none()
                && matches!(
                    name.as_str(),
                    "count"
                        | "sum"
                        | "avg"
                        | "min"
                        | "max"
                        | "bool_and"
                        | "bool_or"
                        | "every"
                        | "string_agg"
                        | "array_agg"
                        | "json_agg"
                        | "jsonb_agg"
                        | "json_object_agg"
                        | "jsonb_object_agg"
                )
            {
                found = true;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    grouped || found
}
