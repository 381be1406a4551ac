//! What an operator sees of the cluster from SQL: the `mdbc_sites` and `mdbc_tables`
//! views (SQL functions registered on each session's connection), and the probe that
//! keeps their reachability and lag current.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use tokio::sync::watch;

use super::cluster::Replication;

/// Notes which other sites answer an authenticated call (for `mdbc_sites`), every second,
/// and, when some table is bounded, their log heads (more often under a tight bound).
pub(super) async fn probe(repl: Arc<Replication>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let answers = repl
            .music
            .store()
            .reachable(Duration::from_millis(500))
            .await;
        for (id, up) in answers {
            repl.health().entry(id).or_insert((false, None)).0 = up;
        }
        // Bounded reads rarely wait when what this site knows of the others is renewed
        // well within the tightest bound.
        let every = match repl.policy.min_bound_ms() {
            Some(b) => {
                let ids: Vec<u64> = repl.peers().iter().map(|p| p.id).collect();
                repl.ask_heads(&ids, Duration::from_millis(500)).await;
                Duration::from_millis((b / 2).clamp(20, 1000))
            }
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl Replication {
    /// After applying an entry from `site` written at `hlc`: how late it came.
    pub(crate) fn record_lag(&self, site: u64, hlc: u64) {
        let written_ms = hlc >> 16;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.health().entry(site).or_insert((true, None)).1 =
            Some(now_ms.saturating_sub(written_ms));
    }

    /// `mdbc_sites`: this site and each other one, as JSON rows.
    pub fn sites_json(&self) -> String {
        let health = self.health().clone();
        let mut rows = vec![serde_json::json!({
            "site": self.site, "address": self.bind, "is_self": true, "reachable": true,
            "applied": self.next_seq.load(Ordering::SeqCst).saturating_sub(1), "lag_ms": 0,
        })];
        for p in self.peers().iter() {
            let (reachable, lag) = health.get(&p.id).copied().unwrap_or((false, None));
            rows.push(serde_json::json!({
                "site": p.name, "address": p.addr, "is_self": false, "reachable": reachable,
                "applied": self.applied_of(p.id), "lag_ms": lag,
            }));
        }
        serde_json::Value::Array(rows).to_string()
    }

    /// `mdbc_tables`: one table's level, domain, owner (this site when it owns the
    /// domain; unknown here otherwise) and domain-log position known here.
    pub fn table_json(&self, table: &str) -> String {
        let p = self.policy.table(table);
        let owned = p.domain.as_ref().and_then(|d| {
            self.ownership
                .owned
                .try_lock()
                .ok()
                .and_then(|m| m.get(d).map(|o| o.head(d)))
        });
        serde_json::json!([{
            "level": p.level.name(),
            "domain": p.domain,
            "owner": owned.map(|_| self.site.clone()),
            "position": owned,
        }])
        .to_string()
    }
}

impl Replication {
    /// Registers `__mdbc_sites()` and `__mdbc_table_policy(name)`, behind the `mdbc_sites`
    /// and `mdbc_tables` views, on a session's connection (a single site's connections
    /// have the store's one-site versions).
    pub fn register_functions(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        let flags = FunctionFlags::SQLITE_UTF8;
        let me = self.clone();
        conn.create_scalar_function("__mdbc_sites", 0, flags, move |_| Ok(me.sites_json()))?;
        let me = self.clone();
        conn.create_scalar_function("__mdbc_table_policy", 1, flags, move |ctx| {
            let name: String = ctx.get(0)?;
            Ok(me.table_json(&name))
        })?;
        Ok(())
    }
}
