//! What translation needs to know about the schema: each table's columns with their
//! declared PostgreSQL types. The server loads it from `__mdbc_columns` and hands a
//! snapshot to every translation, so translation itself stays free of I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::types::{numeric_scale, PgType};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name, as stored (lower-case unless quoted).
    pub name: String,
    /// Declared PostgreSQL type.
    pub ty: PgType,
    /// `atttypmod` (-1 when none).
    pub typmod: i32,
    /// Filled from a sequence when omitted (serial or identity).
    pub serial: bool,
    /// Declared NOT NULL (or part of the primary key).
    pub not_null: bool,
    /// The column's default as PostgreSQL would print it (`pg_attrdef`), when it has one
    /// other than its sequence.
    pub default: Option<String>,
}

impl ColumnInfo {
    /// A nullable column of type `ty` with no modifier, default or sequence.
    pub fn plain(name: &str, ty: PgType) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            ty,
            typmod: -1,
            serial: false,
            not_null: false,
            default: None,
        }
    }

    /// Scale of a `numeric(p,s)` column.
    pub fn scale(&self) -> Option<u32> {
        numeric_scale(self.ty, self.typmod)
    }
}

/// A table's columns in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
}

impl TableDef {
    /// Finds a column by name (case-insensitive, as unquoted PostgreSQL identifiers are).
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }
}

/// A view: its columns (typed when it was created) and what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDef {
    /// The view's name and columns.
    pub def: Arc<TableDef>,
    /// The query as it was given (PostgreSQL's text, re-planned nowhere: SQLite holds the
    /// translation).
    pub query: String,
    /// The relations (tables and views) the query names directly.
    pub depends: Vec<String>,
}

/// A sequence made by CREATE SEQUENCE (a serial column's sequence is its column's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDef {
    /// Its name.
    pub name: String,
    /// smallint, integer or bigint.
    pub ty: PgType,
    /// START.
    pub start: i64,
    /// INCREMENT (never 0).
    pub increment: i64,
    /// MINVALUE.
    pub min: i64,
    /// MAXVALUE.
    pub max: i64,
    /// CACHE (kept for the catalogs; values are handed out one by one).
    pub cache: i64,
    /// CYCLE.
    pub cycle: bool,
    /// OWNED BY table.column.
    pub owned_by: Option<(String, String)>,
}

/// PostgreSQL's 42703 for a column `table` does not have.
pub(crate) fn no_such_column(table: &str, column: &str) -> crate::error::Error {
    crate::error::Error::Coded(
        "42703",
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
    )
}

/// A relation the server provides itself (a `pg_catalog` view).
#[derive(Debug, Clone)]
pub struct SystemRelation {
    /// Its columns and their types.
    pub def: Arc<TableDef>,
    /// Never has a row (catalogs of features mdbc does not have, such as triggers): a
    /// query that inner-joins it is answered empty without running.
    pub always_empty: bool,
}

/// The system relations by name. They are read like tables but are not the user's: DDL
/// never sees them.
pub type SystemRelations = Arc<HashMap<String, SystemRelation>>;

/// A snapshot of every table's definition.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<String, Arc<TableDef>>,
    /// The session's temporary tables and their indexes (lower-case names), which shadow
    /// the shared tables of the same name.
    temporary_tables: HashSet<String>,
    temporary_indexes: HashSet<String>,
    /// Names of the shared indexes, as pg_class lists them (lower case): a CREATE INDEX
    /// without a name picks one none of them has, as PostgreSQL does.
    indexes: HashSet<String>,
    /// Views by lower-case name.
    views: HashMap<String, Arc<ViewDef>>,
    /// Sequences of CREATE SEQUENCE by lower-case name.
    sequences: HashMap<String, Arc<SequenceDef>>,
    system: SystemRelations,
    /// Bumped on every schema change, so caches keyed on it know when to drop entries.
    pub version: u64,
}

impl Catalog {
    /// An empty catalog at `version`.
    pub fn new(version: u64) -> Self {
        Catalog {
            tables: HashMap::new(),
            temporary_tables: HashSet::new(),
            temporary_indexes: HashSet::new(),
            indexes: HashSet::new(),
            views: HashMap::new(),
            sequences: HashMap::new(),
            system: SystemRelations::default(),
            version,
        }
    }

    /// This catalog as one session sees it: with its temporary tables (shadowing shared
    /// tables of the same name) and their indexes, at `version`.
    pub fn with_temporary<'a>(
        &self,
        tables: impl IntoIterator<Item = &'a Arc<TableDef>>,
        indexes: impl IntoIterator<Item = &'a String>,
        version: u64,
    ) -> Catalog {
        let mut c = self.clone();
        for t in tables {
            let key = t.name.to_ascii_lowercase();
            c.temporary_tables.insert(key.clone());
            c.tables.insert(key, t.clone());
        }
        c.temporary_indexes
            .extend(indexes.into_iter().map(|i| i.to_ascii_lowercase()));
        c.version = version;
        c
    }

    /// Whether `name` is one of the session's temporary tables.
    pub fn is_temporary(&self, name: &str) -> bool {
        self.temporary_tables.contains(&name.to_ascii_lowercase())
    }

    /// Whether `name` is an index on one of the session's temporary tables.
    pub fn is_temporary_index(&self, name: &str) -> bool {
        self.temporary_indexes.contains(&name.to_ascii_lowercase())
    }

    /// Records the shared indexes' names.
    pub fn set_indexes(&mut self, names: impl IntoIterator<Item = String>) {
        self.indexes = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
    }

    /// Whether a table or an index is called `name`.
    pub fn has_relation(&self, name: &str) -> bool {
        let key = name.to_ascii_lowercase();
        self.table(&key).is_some()
            || self.views.contains_key(&key)
            || self.sequences.contains_key(&key)
            || self.is_serial_sequence(&key)
            || self.indexes.contains(&key)
            || self.temporary_indexes.contains(&key)
    }

    /// Adds the relations the server provides (see [`SystemRelations`]).
    pub fn set_system(&mut self, system: SystemRelations) {
        self.system = system;
    }

    /// A user table, else a view, else a system relation: what a query's FROM can name.
    pub fn relation(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.table(name)
            .or_else(|| self.view(name).map(|v| &v.def))
            .or_else(|| self.system_relation(name).map(|r| &r.def))
    }

    /// Adds or replaces a sequence.
    pub fn insert_sequence(&mut self, seq: SequenceDef) {
        self.sequences
            .insert(seq.name.to_ascii_lowercase(), Arc::new(seq));
    }

    /// A sequence of CREATE SEQUENCE by name.
    pub fn sequence(&self, name: &str) -> Option<&Arc<SequenceDef>> {
        self.sequences
            .get(name)
            .or_else(|| self.sequences.get(&name.to_ascii_lowercase()))
    }

    /// All sequences of CREATE SEQUENCE.
    pub fn sequences(&self) -> impl Iterator<Item = &Arc<SequenceDef>> {
        self.sequences.values()
    }

    /// Whether `name` is the sequence of a serial (or identity) column (`t_c_seq`).
    pub fn is_serial_sequence(&self, name: &str) -> bool {
        self.tables.values().any(|t| {
            t.columns.iter().any(|c| {
                c.serial && format!("{}_{}_seq", t.name, c.name).eq_ignore_ascii_case(name)
            })
        })
    }

    /// Adds or replaces a view.
    pub fn insert_view(&mut self, view: ViewDef) {
        self.views
            .insert(view.def.name.to_ascii_lowercase(), Arc::new(view));
    }

    /// A view by name (a temporary table of the same name hides it).
    pub fn view(&self, name: &str) -> Option<&Arc<ViewDef>> {
        let key = name.to_ascii_lowercase();
        if self.temporary_tables.contains(&key) {
            return None;
        }
        self.views.get(name).or_else(|| self.views.get(&key))
    }

    /// All views.
    pub fn views(&self) -> impl Iterator<Item = &Arc<ViewDef>> {
        self.views.values()
    }

    /// The views that name `relation` directly.
    pub fn dependent_views(&self, relation: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .views
            .values()
            .filter(|v| v.depends.iter().any(|d| d.eq_ignore_ascii_case(relation)))
            .map(|v| v.def.name.clone())
            .collect();
        out.sort();
        out
    }

    /// The tables a relation reads in the end: itself if a table, a view's tables through
    /// the views it names.
    pub fn base_tables(&self, relation: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![relation.to_string()];
        let mut seen = HashSet::new();
        while let Some(r) = todo.pop() {
            if !seen.insert(r.to_ascii_lowercase()) {
                continue;
            }
            if let Some(t) = self.table(&r) {
                out.push(t.name.clone());
            } else if let Some(v) = self.view(&r) {
                todo.extend(v.depends.iter().cloned());
            }
        }
        out
    }

    fn system_relation(&self, name: &str) -> Option<&SystemRelation> {
        self.system
            .get(name)
            .or_else(|| self.system.get(&name.to_ascii_lowercase()))
    }

    /// Whether `name` is a system relation that never has rows (and no user table hides
    /// it).
    pub fn always_empty(&self, name: &str) -> bool {
        self.table(name).is_none()
            && self.view(name).is_none()
            && self.system_relation(name).is_some_and(|r| r.always_empty)
    }

    /// Adds or replaces a table.
    pub fn insert(&mut self, def: TableDef) {
        self.tables
            .insert(def.name.to_ascii_lowercase(), Arc::new(def));
    }

    /// Takes a table out (the server's loader, when the columns it read are a view's).
    pub fn remove_table(&mut self, name: &str) -> Option<Arc<TableDef>> {
        self.tables.remove(name)
    }

    /// Finds a table by name, case-insensitively.
    pub fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        if let Some(t) = self.tables.get(name) {
            return Some(t);
        }
        self.tables.get(&name.to_ascii_lowercase())
    }

    /// All tables.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.tables.values()
    }
}
