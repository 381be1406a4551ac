//! Which consistency level and domain each table has, from `[tables]` and `[domains]`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::{Config, Level, LevelSpec};

/// A table's replication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    /// Its level.
    pub level: Level,
    /// For strong tables: the domain (its lock and log); the table's own name by default.
    pub domain: Option<String>,
    /// For bounded tables: the staleness bound.
    pub max_staleness_ms: Option<u64>,
    /// Acknowledge only once this many other sites hold the entry.
    pub sync_replicas: u32,
}

/// Resolves table names to [`TablePolicy`]s.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Level,
    exact: HashMap<String, LevelSpec>,
    // Longest pattern first, so the most specific glob wins.
    globs: Vec<(String, LevelSpec)>,
    domains: HashMap<String, String>,
    // Whether any table can be strong: per-query checks (strong reads) stop here when not.
    any_strong: bool,
    // The tightest `max_staleness_ms` of any bounded table.
    min_bound_ms: Option<u64>,
    // Resolved names: lookups run per commit and per statement, and glob matching
    // allocates.
    cache: Arc<RwLock<HashMap<String, Arc<TablePolicy>>>>,
}

/// Resolved names kept at most; past it the cache starts over (names come from the
/// catalog, so this is never reached in practice).
const CACHE_MAX: usize = 10_000;

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

impl Policy {
    /// From a configuration.
    pub fn new(cfg: &Config) -> Policy {
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (pattern, spec) in &cfg.tables.levels {
            if pattern.contains(['*', '?']) {
                globs.push((pattern.clone(), spec.clone()));
            } else {
                exact.insert(pattern.clone(), spec.clone());
            }
        }
        globs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut domains = HashMap::new();
        for (d, tables) in &cfg.domains {
            for t in tables {
                domains.insert(t.clone(), d.clone());
            }
        }
        let level_of = |s: &LevelSpec| match s {
            LevelSpec::Name(l) => *l,
            LevelSpec::Full { level, .. } => *level,
        };
        let any_strong = cfg.tables.default == Level::Strong
            || cfg
                .tables
                .levels
                .values()
                .any(|s| level_of(s) == Level::Strong);
        let min_bound_ms = cfg
            .tables
            .levels
            .values()
            .filter_map(|s| match s {
                LevelSpec::Full {
                    level: Level::Bounded,
                    max_staleness_ms,
                    ..
                } => *max_staleness_ms,
                _ => None,
            })
            .min();
        Policy {
            min_bound_ms,
            cache: Arc::default(),
            default: cfg.tables.default,
            exact,
            globs,
            domains,
            any_strong,
        }
    }

    /// The settings of `table`. mdbc's own tables are local.
    pub fn table(&self, table: &str) -> Arc<TablePolicy> {
        if let Some(p) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
        {
            return p.clone();
        }
        let p = Arc::new(self.resolve(table));
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(table.to_string(), p.clone());
        p
    }

    fn resolve(&self, table: &str) -> TablePolicy {
        if table.starts_with("__mdbc") || table.starts_with("sqlite_") {
            return TablePolicy {
                level: Level::Local,
                domain: None,
                max_staleness_ms: None,
                sync_replicas: 0,
            };
        }
        let spec = self.exact.get(table).or_else(|| {
            self.globs
                .iter()
                .find(|(p, _)| glob_match(p, table))
                .map(|(_, s)| s)
        });
        let (level, max_staleness_ms, sync_replicas) = match spec {
            None => (self.default, None, 0),
            Some(LevelSpec::Name(l)) => (*l, None, 0),
            Some(LevelSpec::Full {
                level,
                max_staleness_ms,
                sync_replicas,
            }) => (*level, *max_staleness_ms, sync_replicas.unwrap_or(0)),
        };
        let domain = (level == Level::Strong).then(|| {
            self.domains
                .get(table)
                .cloned()
                .unwrap_or_else(|| table.to_string())
        });
        TablePolicy {
            level,
            domain,
            max_staleness_ms,
            sync_replicas,
        }
    }

    /// Whether any table is configured strong.
    pub fn any_strong(&self) -> bool {
        self.any_strong
    }

    /// Whether any table is configured bounded.
    pub fn any_bounded(&self) -> bool {
        self.min_bound_ms.is_some()
    }

    /// The tightest staleness bound of any bounded table.
    pub fn min_bound_ms(&self) -> Option<u64> {
        self.min_bound_ms
    }

    /// The largest `sync_replicas` any table asks for.
    pub fn max_sync_replicas(&self) -> u32 {
        self.exact
            .values()
            .chain(self.globs.iter().map(|(_, s)| s))
            .filter_map(|s| match s {
                LevelSpec::Full { sync_replicas, .. } => *sync_replicas,
                LevelSpec::Name(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The level of `table`.
    pub fn level(&self, table: &str) -> Level {
        self.table(table).level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_beat_globs_and_longer_globs_beat_shorter() {
        let cfg = Config::from_toml(
            r#"
            [tables]
            default = "eventual"
            [tables.levels]
            accounts = "strong"
            "audit_*" = "local"
            "audit_keep_*" = "causal"
            audit_main = "eventual"
            sessions = { level = "bounded", max_staleness_ms = 500 }
            [domains]
            payments = ["accounts", "transfers"]
            "#,
        )
        .unwrap();
        let p = Policy::new(&cfg);
        assert_eq!(p.level("accounts"), Level::Strong);
        assert_eq!(p.table("accounts").domain.as_deref(), Some("payments"));
        assert_eq!(p.level("audit_x"), Level::Local);
        assert_eq!(p.level("audit_keep_1"), Level::Causal);
        assert_eq!(p.level("audit_main"), Level::Eventual);
        assert_eq!(p.level("other"), Level::Eventual);
        assert_eq!(p.table("sessions").max_staleness_ms, Some(500));
        assert_eq!(p.level("__mdbc_row_clock"), Level::Local);
        assert!(glob_match("a?c*", "abcdef") && !glob_match("a?c", "ac"));
    }

    #[test]
    fn bad_level_settings_are_refused() {
        assert!(Config::from_toml("[tables]\ndefault = \"sometimes\"").is_err());
        assert!(Config::from_toml("[tables.levels]\nx = \"bounded\"").is_err());
        assert!(Config::from_toml("[domains]\nd = [\"a\"]\ne = [\"a\"]").is_err());
    }
}
