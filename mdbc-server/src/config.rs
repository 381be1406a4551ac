//! Server configuration: one plain struct, filled from the command line or a TOML file,
//! checked by [`Config::validate`] before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// How hard a commit waits for the disk (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged (PostgreSQL's `synchronous_commit
    /// = on` with `fsync = on`). The default.
    #[default]
    Full,
    /// Commits are durable at the next WAL checkpoint; a power loss may drop the last
    /// commits but never corrupts the database (PostgreSQL's `synchronous_commit = off`).
    Normal,
    /// No fsync at all: for tests and benchmarks only.
    Off,
}

impl Synchronous {
    /// The SQLite pragma value.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// A user allowed to log in with SCRAM-SHA-256.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password (the server keeps only a salted SCRAM verifier in memory).
    pub password: String,
}

/// TLS for client connections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How a table is replicated (see `docs/DESIGN.md`, "Consistency levels").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// This site only; never shipped.
    Local,
    /// Committed locally, shipped asynchronously; converges by last writer wins per row.
    #[default]
    Eventual,
    /// As eventual, applied elsewhere only after what its writer had applied.
    Causal,
    /// As causal; reads wait when this site lags any site by more than a bound.
    Bounded,
    /// Written only under the table's domain lock; linearizable.
    Strong,
}

impl Level {
    /// The name used in the config file and in `mdbc_tables`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Local => "local",
            Level::Eventual => "eventual",
            Level::Causal => "causal",
            Level::Bounded => "bounded",
            Level::Strong => "strong",
        }
    }
}

/// A table's level: a bare name, or a table with options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum LevelSpec {
    /// `accounts = "strong"`
    Name(Level),
    /// `sessions = { level = "bounded", max_staleness_ms = 500 }`
    Full {
        /// The level.
        level: Level,
        /// For `bounded`: how stale a read may be.
        #[serde(default)]
        max_staleness_ms: Option<u64>,
        /// Acknowledge a commit only once this many other sites hold it.
        #[serde(default)]
        sync_replicas: Option<u32>,
    },
}

impl LevelSpec {
    /// The level named.
    pub fn level(&self) -> Level {
        match self {
            LevelSpec::Name(l) | LevelSpec::Full { level: l, .. } => *l,
        }
    }
}

/// `[tables]`: each table's level, by exact name or glob (`*`, `?`), with a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tables {
    /// Level of tables no entry names.
    pub default: Level,
    /// Exact names and globs; an exact name wins over a glob, a longer glob over a shorter.
    pub levels: std::collections::BTreeMap<String, LevelSpec>,
}

/// One other site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSite {
    /// Its site id.
    pub site: String,
    /// Its cluster address (`bind` in its own config).
    pub addr: String,
}

/// `[cluster]`: how this site reaches the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Address for node RPC (consensus and the key space share it).
    pub bind: SocketAddr,
    /// Shared by every site; a node without it is refused.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret instead (first line), so it stays out of the config.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The other sites.
    #[serde(default)]
    pub peers: Vec<PeerSite>,
    /// How long a site keeps a domain lock without renewing it (ms).
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How long a strong write waits for the lock service before failing (ms).
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    /// The address other sites reach this one at, when it is not `bind` (a wildcard bind
    /// such as 0.0.0.0, or NAT); sent when this site joins a running cluster.
    #[serde(default)]
    pub advertise: Option<String>,
}

impl Cluster {
    /// Where other sites reach this one.
    pub fn advertised(&self) -> Result<String, ConfigError> {
        match &self.advertise {
            Some(a) => Ok(a.clone()),
            None if self.bind.ip().is_unspecified() => Err(ConfigError::Invalid {
                field: "cluster.advertise",
                message: format!(
                    "bind = \"{}\" is not an address other sites can reach; set advertise = \"host:port\"",
                    self.bind
                ),
            }),
            None => Ok(self.bind.to_string()),
        }
    }
}

fn default_lease_ms() -> u64 {
    3000
}

fn default_lock_timeout_ms() -> u64 {
    10_000
}

impl Cluster {
    /// The cluster secret, from `secret` or `secret_file`.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        let s = match (&self.secret, &self.secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|source| ConfigError::Read {
                    path: f.clone(),
                    source,
                })?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            _ => {
                return Err(ConfigError::Invalid {
                    field: "cluster.secret",
                    message: "give exactly one of secret and secret_file".into(),
                })
            }
        };
        if s.len() < 8 {
            return Err(ConfigError::Invalid {
                field: "cluster.secret",
                message: "must be at least 8 characters".into(),
            });
        }
        Ok(s.into_bytes())
    }
}

/// Everything `mdbc-server start` needs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address for PostgreSQL clients.
    pub listen: SocketAddr,
    /// Directory holding the SQLite database (`mdbc.db`).
    pub data_dir: PathBuf,
    /// Commit durability.
    pub synchronous: Synchronous,
    /// Most simultaneous client connections; more are refused with 53300.
    pub max_connections: usize,
    /// Users for SCRAM-SHA-256; when empty, loopback clients are trusted and others refused.
    pub users: Vec<User>,
    /// TLS; when absent, SSLRequest is answered 'N'.
    pub tls: Option<Tls>,
    /// This site's id, unique in the cluster.
    pub site: String,
    /// The other sites; without it the server is a single site.
    pub cluster: Option<Cluster>,
    /// Consistency level of each table.
    pub tables: Tables,
    /// Strong tables sharing one lock and one log, by domain name.
    pub domains: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5433)),
            data_dir: PathBuf::from("mdbc-data"),
            synchronous: Synchronous::Full,
            max_connections: 500,
            users: Vec::new(),
            tls: None,
            site: "main".into(),
            cluster: None,
            tables: Tables::default(),
            domains: Default::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {field}: {message}")]
    Invalid {
        /// Setting.
        field: &'static str,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks settings that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                field: "max_connections",
                message: "must be at least 1".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if u.name.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "users.name",
                    message: "must not be empty".into(),
                });
            }
            if u.password.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "users.password",
                    message: format!("user {} has an empty password", u.name),
                });
            }
            if !seen.insert(&u.name) {
                return Err(ConfigError::Invalid {
                    field: "users.name",
                    message: format!("user {} is listed twice", u.name),
                });
            }
        }
        let site_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !site_ok(&self.site) {
            return Err(ConfigError::Invalid {
                field: "site",
                message: format!("{:?}: use 1-63 letters, digits, '_' or '-'", self.site),
            });
        }
        if let Some(c) = &self.cluster {
            c.secret_bytes()?;
            let mut sites = std::collections::HashSet::new();
            sites.insert(self.site.as_str());
            for p in &c.peers {
                if !site_ok(&p.site) {
                    return Err(ConfigError::Invalid {
                        field: "cluster.peers.site",
                        message: format!("{:?}: use 1-63 letters, digits, '_' or '-'", p.site),
                    });
                }
                if !sites.insert(p.site.as_str()) {
                    return Err(ConfigError::Invalid {
                        field: "cluster.peers.site",
                        message: format!("site {} appears twice", p.site),
                    });
                }
            }
            if c.lease_ms < 100 {
                return Err(ConfigError::Invalid {
                    field: "cluster.lease_ms",
                    message: "must be at least 100".into(),
                });
            }
        }
        let mut owner: std::collections::HashMap<&str, &str> = Default::default();
        for (domain, tables) in &self.domains {
            if domain.starts_with("__") {
                return Err(ConfigError::Invalid {
                    field: "domains",
                    message: format!("domain {domain}: names starting with __ are mdbc's own"),
                });
            }
            for t in tables {
                if let Some(other) = owner.insert(t.as_str(), domain.as_str()) {
                    return Err(ConfigError::Invalid {
                        field: "domains",
                        message: format!("table {t} is in domains {other} and {domain}"),
                    });
                }
            }
        }
        for (pattern, spec) in &self.tables.levels {
            if let LevelSpec::Full {
                level,
                max_staleness_ms,
                ..
            } = spec
            {
                if *level == Level::Bounded && max_staleness_ms.is_none() {
                    return Err(ConfigError::Invalid {
                        field: "tables.levels",
                        message: format!("{pattern}: bounded needs max_staleness_ms"),
                    });
                }
            } else if spec.level() == Level::Bounded {
                return Err(ConfigError::Invalid {
                    field: "tables.levels",
                    message: format!(
                        "{pattern}: bounded needs max_staleness_ms ({{ level = \"bounded\", max_staleness_ms = 500 }})"
                    ),
                });
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                field: "data_dir",
                message: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_file() {
        let c = Config::from_toml(
            r#"
            listen = "127.0.0.1:6543"
            data_dir = "/tmp/x"
            synchronous = "normal"
            [[users]]
            name = "app"
            password = "secret"
            [tls]
            cert = "c.pem"
            key = "k.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 6543);
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.users.len(), 1);
        assert!(c.tls.is_some());
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            Config::from_toml("listen = 5"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("no_such_key = 1"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("[[users]]\nname = \"a\"\npassword = \"\""),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
