//! Every way replication can fail a client's statement, and — in one exhaustive match —
//! the SQLSTATE each gets. Clients retry on 40001, wait or go elsewhere on 57P03, and must
//! check before retrying on 08007, so the choice matters and is made here only.

use music_core::service::MusicError;

use crate::errors::SqlError;

/// Why replication refused or failed a statement. `what` says what the client was doing
/// ("cannot write strong table \"t\"", "cannot change the schema").
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// Another site held the cluster lock for longer than the lock timeout.
    #[error("{what}: timed out waiting for the cluster lock held by another site; retry the transaction")]
    LockTimeout {
        /// What was being done.
        what: String,
    },
    /// The cluster could not be reached before anything took effect.
    #[error("{what}: the cluster cannot be reached ({cause}); nothing was committed")]
    Unreachable {
        /// What was being done.
        what: String,
        /// Why.
        cause: String,
    },
    /// A commit point (a log's head record) reached some replicas but not a quorum: a
    /// site that takes the log over reads the newest head a quorum holds and may find it,
    /// so the outcome is unknown — as PostgreSQL says when a connection is lost during
    /// COMMIT.
    #[error(
        "{what}: only {got} of the {need} replicas a quorum needs confirmed the commit; \
         its outcome is unknown (this site writes it again before its next commit to \
         the domain, and a site taking the domain over may find it), so check before \
         retrying"
    )]
    OutcomeUnknown {
        /// What was being done.
        what: String,
        /// Replicas that confirmed.
        got: usize,
        /// Replicas a quorum needs.
        need: usize,
    },
    /// This site's lease on the schema lock ran out before the commit.
    #[error("cannot change the schema: the schema lock's lease ran out; nothing was committed")]
    SchemaLeaseLost,
    /// This site's lease on a domain lock ran out before the commit.
    #[error("{what}: this site's lock on domain {domain} ran out; nothing was committed, retry the transaction")]
    DomainLeaseLost {
        /// What was being done.
        what: String,
        /// The domain.
        domain: String,
    },
    /// An entry whose commit was in doubt cannot reach a quorum yet; the domain takes no
    /// new entry until it does.
    #[error(
        "cannot write domain {domain}: entry {seq} of its log, from a commit whose outcome is still unknown, \
         cannot be written to a quorum yet ({cause}); nothing was committed, retry later"
    )]
    InDoubt {
        /// The domain.
        domain: String,
        /// The entry's position.
        seq: u64,
        /// Why it could not be written.
        cause: String,
    },
    /// No quorum answered the read of a strong domain's head.
    #[error("cannot read strong table \"{table}\": no quorum of sites answered ({cause}); SET mdbc.read_consistency = 'local' reads what this site has")]
    StrongReadUnavailable {
        /// The table read.
        table: String,
        /// Why.
        cause: String,
    },
    /// This site did not apply a strong domain's log up to the cluster's head in time.
    #[error("cannot read the strong tables of domain {domain}: this site applied its log up to {applied}, the cluster is at {head}, and it did not catch up in time; SET mdbc.read_consistency = 'local' reads what this site has")]
    StrongBehind {
        /// The domain.
        domain: String,
        /// Applied here.
        applied: u64,
        /// The head a quorum holds.
        head: u64,
    },
    /// A bounded table's staleness bound could not be met in time.
    #[error("cannot read bounded table \"{table}\" within its staleness bound of {bound_ms} ms: this site last knew it had everything of site {site} {age} (unreachable or behind); SET mdbc.read_consistency = 'local' reads what this site has")]
    BoundUnmet {
        /// The table read.
        table: String,
        /// Its bound.
        bound_ms: u128,
        /// A site this one is not fresh for.
        site: String,
        /// How long ago it last was ("… ms ago", or "never since this site started").
        age: String,
    },
    /// A bounded read later in a block would see the block's snapshot, older than the bound.
    #[error("could not serialize access: this transaction's snapshot is older than the {bound_ms} ms staleness bound of table \"{table}\"; retry the transaction (or read it in a transaction of its own)")]
    SnapshotTooOld {
        /// The table read.
        table: String,
        /// Its bound.
        bound_ms: u128,
    },
    /// A strong write after a read of a table that may be stale at this site.
    #[error("cannot write strong table \"{strong}\" after reading \"{stale}\" in the same transaction: \"{stale}\" is {level} and may be stale at this site, so the write could rest on an old value; read it in another transaction, make it strong, or SET mdbc.strong_after_stale_read = 'allow'")]
    StaleRead {
        /// The strong table written.
        strong: String,
        /// The table read.
        stale: String,
        /// The read table's level.
        level: &'static str,
    },
    /// A strong domain moved past the position a block read it at before owning it.
    #[error("could not serialize access: the strong tables of domain {domain} changed (log position {read} -> {head}) after this transaction read them; retry the transaction")]
    ChangedSinceRead {
        /// The domain.
        domain: String,
        /// Position read.
        read: u64,
        /// Position now.
        head: u64,
    },
    /// A strong table changed without its domain lock (by a trigger or a cascade).
    #[error("cannot write strong table \"{table}\": it was changed (by a trigger or cascade?) without its domain lock; write it directly")]
    WithoutDomainLock {
        /// The table.
        table: String,
    },
    /// An update or delete of a replicated table without a primary key.
    #[error("{0}; add a primary key, or configure the table local")]
    Keyless(String),
    /// A log holds something malformed, or lacks what its head promises.
    #[error("{0}")]
    Corrupt(String),
    /// Another site's entry could not be applied here.
    #[error("{0}")]
    Apply(String),
    /// SQLite refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A statement replication ran for the client failed (DDL from the schema log).
    #[error(transparent)]
    Statement(Box<SqlError>),
}

impl ReplError {
    /// A MUSIC operation for `what` failed.
    pub fn music(what: &str, e: MusicError) -> ReplError {
        match e {
            MusicError::Timeout(_) => ReplError::LockTimeout { what: what.into() },
            other => ReplError::Unreachable {
                what: what.into(),
                cause: other.to_string(),
            },
        }
    }
}

impl From<SqlError> for ReplError {
    fn from(e: SqlError) -> ReplError {
        ReplError::Statement(Box::new(e))
    }
}

impl From<ReplError> for SqlError {
    fn from(e: ReplError) -> SqlError {
        use ReplError as R;
        let (code, message) = match e {
            R::Sqlite(s) => return SqlError::Sqlite(s),
            R::Statement(s) => return *s,
            e @ (R::LockTimeout { .. }
            | R::SchemaLeaseLost
            | R::DomainLeaseLost { .. }
            | R::SnapshotTooOld { .. }
            | R::ChangedSinceRead { .. }
            | R::WithoutDomainLock { .. }) => ("40001", e.to_string()),
            e @ (R::Unreachable { .. }
            | R::InDoubt { .. }
            | R::StrongReadUnavailable { .. }
            | R::StrongBehind { .. }
            | R::BoundUnmet { .. }) => ("57P03", e.to_string()),
            e @ R::OutcomeUnknown { .. } => ("08007", e.to_string()),
            e @ (R::StaleRead { .. } | R::Keyless(_)) => ("55000", e.to_string()),
            e @ R::Corrupt(_) => ("XX001", e.to_string()),
            e @ R::Apply(_) => ("XX000", e.to_string()),
        };
        SqlError::coded(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: ReplError) -> String {
        SqlError::from(e).code_and_message().0
    }

    #[test]
    fn each_failure_has_its_sqlstate() {
        assert_eq!(code(ReplError::music("x", MusicError::Timeout(7))), "40001");
        assert_eq!(
            code(ReplError::music("x", MusicError::Unavailable("u".into()))),
            "57P03"
        );
        let unknown = ReplError::OutcomeUnknown {
            what: "cannot write".into(),
            got: 1,
            need: 2,
        };
        assert!(unknown.to_string().contains("outcome is unknown"));
        assert_eq!(code(unknown), "08007");
        assert_eq!(code(ReplError::Keyless("k".into())), "55000");
        assert_eq!(code(ReplError::Corrupt("c".into())), "XX001");
        let inner = SqlError::coded("42P01", "relation \"t\" does not exist");
        assert_eq!(code(ReplError::from(inner)), "42P01");
    }
}
