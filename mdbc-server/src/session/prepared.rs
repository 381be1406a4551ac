//! Statements as the session keeps them: prepared with the extended protocol, or parsed
//! from simple-protocol text and cached by text or by shape, each with its plan and result
//! columns for the catalog version they were made at.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::types::Value;
use sql_capture::{Catalog, Command, Parsed};

use super::outcome::Column;
use crate::errors::SqlError;

type Result<T> = std::result::Result<T, SqlError>;

/// A statement prepared with the extended protocol (or cached for the simple one).
#[derive(Debug)]
pub struct Prepared {
    /// Parsed statement (`None`: empty query).
    pub parsed: Option<Parsed>,
    /// Parameter types the client declared in Parse (OIDs; 0 = unspecified).
    pub client_types: Vec<u32>,
    // A simple query cached by shape: where its literals were (see sql_capture::literals).
    literals: Option<sql_capture::Literals>,
    plan: std::sync::Mutex<Option<(u64, Arc<Command>)>>,
    // Result columns for the catalog version they were computed at: Describe and every
    // Execute of the statement would otherwise recompute them from SQLite's metadata.
    columns: std::sync::Mutex<Option<(u64, Arc<Vec<Column>>)>>,
}

impl Prepared {
    /// Whether the statement is a COPY (its data or rows follow outside this query).
    pub fn is_copy(&self) -> bool {
        matches!(&self.parsed, Some(sql_capture::Parsed::Statement(s))
            if matches!(s.as_ref(), sqlparser::ast::Statement::Copy { .. }))
    }

    /// Parses one statement; several in one string are refused as PostgreSQL does.
    pub fn parse(sql: &str, client_types: Vec<u32>) -> Result<Prepared> {
        let mut stmts = sql_capture::parse(sql)?;
        if stmts.len() > 1 {
            return Err(SqlError::coded(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        Ok(Prepared::new(stmts.pop(), client_types))
    }

    pub(super) fn new(parsed: Option<Parsed>, client_types: Vec<u32>) -> Prepared {
        Prepared {
            parsed,
            client_types,
            literals: None,
            plan: std::sync::Mutex::new(None),
            columns: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn try_columns(
        &self,
        version: u64,
        compute: impl FnOnce() -> Result<Vec<Column>>,
    ) -> Result<Arc<Vec<Column>>> {
        let mut slot = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((v, cols)) if *v == version => Ok(cols.clone()),
            _ => {
                let cols = Arc::new(compute()?);
                *slot = Some((version, cols.clone()));
                Ok(cols)
            }
        }
    }

    pub(super) fn plan(&self, catalog: &Catalog) -> Result<Option<Arc<Command>>> {
        let Some(parsed) = &self.parsed else {
            return Ok(None);
        };
        let mut slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, cmd)) = slot.as_ref() {
            if *v == catalog.version {
                return Ok(Some(cmd.clone()));
            }
        }
        let cmd = Arc::new(match &self.literals {
            Some(l) => sql_capture::plan_shape(parsed, catalog, l)?,
            None => sql_capture::plan(parsed, catalog)?,
        });
        *slot = Some((catalog.version, cmd.clone()));
        Ok(Some(cmd))
    }
}

/// Parameter values as the client bound them.
pub struct Params<'a> {
    /// Raw values (None = NULL).
    pub values: &'a [Option<Bytes>],
    /// Per-parameter binary flag lookup.
    pub binary: &'a (dyn Fn(usize) -> bool + Sync),
    /// A simple query run by shape: its literals, bound as they are.
    pub literals: &'a [Value],
    /// The plan the literals were checked against (a concurrent schema change must not
    /// swap in one that inlines another execution's values).
    pub pinned: Option<Arc<Command>>,
}

impl<'a> Params<'a> {
    /// No parameters.
    pub fn none() -> Params<'static> {
        fn text(_: usize) -> bool {
            false
        }
        Params {
            values: &[],
            binary: &text,
            literals: &[],
            pinned: None,
        }
    }
}

/// A simple-protocol query ready to run.
pub struct SimpleQuery {
    /// Its statements.
    pub stmts: Arc<Vec<Arc<Prepared>>>,
    /// Run by shape: the literals to bind and the plan they fit.
    pub literals: Vec<Value>,
    /// The plan `literals` fit.
    pub pinned: Option<Arc<Command>>,
}

impl SimpleQuery {
    /// The parameters to run statement `p` with.
    pub fn params(&self) -> Params<'_> {
        Params {
            literals: &self.literals,
            pinned: self.pinned.clone(),
            ..Params::none()
        }
    }
}

pub(super) fn literal_value(v: &sql_capture::LiteralValue) -> Value {
    match v {
        sql_capture::LiteralValue::Int(i) => Value::Integer(*i),
        sql_capture::LiteralValue::Decimal(d) => Value::Text(d.clone()),
        sql_capture::LiteralValue::Text(t) => Value::Text(t.clone()),
    }
}

/// A session's simple-query texts and shapes, parsed once (see
/// [`QueryCache::parse_simple`]).
#[derive(Default)]
pub struct QueryCache {
    cache: HashMap<String, Arc<Vec<Arc<Prepared>>>>,
    // Simple queries by shape; `None`: this shape cannot be reused (see parse_simple).
    shapes: HashMap<String, Option<Arc<Prepared>>>,
}

impl QueryCache {
    /// Parses a simple-protocol query string. A statement with inlined values is planned
    /// once per shape and run with its values bound (sql_capture::literals); anything else
    /// reuses earlier parses of the same text.
    pub fn parse_simple(&mut self, sql: &str, catalog: &Catalog) -> Result<SimpleQuery> {
        let Some(shape) = sql_capture::literals::scan(sql) else {
            return self.parse_text(sql, None);
        };
        let literals = || shape.values.iter().map(literal_value).collect::<Vec<_>>();
        match self.shapes.get(&shape.key) {
            Some(None) => return self.parse_text(sql, None),
            Some(Some(p)) => {
                let p = p.clone();
                if let Some(pinned) = shape_plan(&p, shape.values.len(), catalog) {
                    return Ok(SimpleQuery {
                        stmts: Arc::new(vec![p]),
                        literals: literals(),
                        pinned: Some(pinned),
                    });
                }
                // The schema changed under the shape; plan it afresh below.
                self.shapes.remove(&shape.key);
            }
            None => {}
        }
        let mut stmts = sql_capture::parse(sql)?;
        let located = sql_capture::Literals::find(sql, &shape);
        let (1, Some(located)) = (stmts.len(), located) else {
            self.remember_shape(shape.key, None);
            return self.parse_text(sql, Some(stmts));
        };
        let mut p = Prepared::new(stmts.pop(), Vec::new());
        p.literals = Some(located);
        let p = Arc::new(p);
        match shape_plan(&p, shape.values.len(), catalog) {
            Some(pinned) => {
                self.remember_shape(shape.key, Some(p.clone()));
                Ok(SimpleQuery {
                    stmts: Arc::new(vec![p]),
                    literals: literals(),
                    pinned: Some(pinned),
                })
            }
            None => {
                self.remember_shape(shape.key, None);
                // Some literal must stay inline. A statement without literal positions
                // keeps it so even if replanned after a schema change.
                let plain = Arc::new(vec![Arc::new(Prepared::new(p.parsed.clone(), Vec::new()))]);
                self.cache_text(sql, plain.clone());
                Ok(SimpleQuery {
                    stmts: plain,
                    literals: Vec::new(),
                    pinned: None,
                })
            }
        }
    }

    fn remember_shape(&mut self, key: String, p: Option<Arc<Prepared>>) {
        // Shapes repeat far more than texts, but clients can still make many; bound it.
        if self.shapes.len() >= 1024 {
            self.shapes.clear();
        }
        self.shapes.insert(key, p);
    }

    /// The ordinary path: cached by exact text (`parsed`: already parsed by the caller).
    fn parse_text(&mut self, sql: &str, parsed: Option<Vec<Parsed>>) -> Result<SimpleQuery> {
        let plain = |stmts| SimpleQuery {
            stmts,
            literals: Vec::new(),
            pinned: None,
        };
        if let Some(p) = self.cache.get(sql) {
            return Ok(plain(p.clone()));
        }
        let stmts = match parsed {
            Some(s) => s,
            None => sql_capture::parse(sql)?,
        };
        let prepared: Vec<Arc<Prepared>> = stmts
            .into_iter()
            .map(|p| Arc::new(Prepared::new(Some(p), Vec::new())))
            .collect();
        let prepared = Arc::new(prepared);
        self.cache_text(sql, prepared.clone());
        Ok(plain(prepared))
    }

    fn cache_text(&mut self, sql: &str, stmts: Arc<Vec<Arc<Prepared>>>) {
        // Texts with inlined values rarely repeat; keep the cache bounded.
        if self.cache.len() >= 256 {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), stmts);
    }
}

/// The plan of a shape-cached statement if every literal is a parameter in it.
fn shape_plan(p: &Prepared, literals: usize, catalog: &Catalog) -> Option<Arc<Command>> {
    let cmd = p.plan(catalog).ok()??;
    match cmd.as_ref() {
        Command::Sql(plan) if plan.literals == literals && plan.sql.len() == 1 => Some(cmd),
        _ => None,
    }
}
