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
