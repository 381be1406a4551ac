//! Reads that must see more than this site has applied: a linearizable read of strong
//! tables (sync to the head a quorum holds), and a bounded read (this site must know it
//! had everything every other site committed up to the bound; see [`super::freshness`]).

use std::time::Duration;

use super::calls;
use super::cluster::{Replication, Site};
use super::error::ReplError;
use super::keys::{decode_head, domain_head, domain_key, log_key};
use crate::config::Level;

impl Replication {
    /// Asks `sites` for their log heads at once and notes the answers (see freshness.rs);
    /// returns the sites whose log has entries this site has not applied, with their head.
    pub(super) async fn ask_heads(&self, sites: &[u64], timeout: Duration) -> Vec<(u64, u64)> {
        let asked = std::time::Instant::now();
        let mut behind = Vec::new();
        for (id, r) in self.ask_each(sites, &calls::Call::Head, timeout).await {
            match r {
                Ok(calls::Answer::Head(head)) => {
                    let applied = self.applied_of(id);
                    self.lock_freshness().answered(id, asked, head, applied);
                    if head > applied {
                        behind.push((id, head));
                    }
                }
                Ok(other) => tracing::debug!(site = id, "asked for the log head, got {other:?}"),
                Err(e) => tracing::debug!(site = id, "asking for the log head: {e}"),
            }
        }
        behind
    }

    /// The instant as of which this site had everything every other site had committed
    /// (the oldest of what it knows per site), if it knows one for each.
    pub fn fresh_as_of_all(&self) -> Option<std::time::Instant> {
        let f = self.lock_freshness();
        self.peers()
            .iter()
            .map(|p| f.fresh_as_of(p.id))
            .try_fold(std::time::Instant::now(), |m, t| t.map(|t| m.min(t)))
    }

    /// The bounded table among `tables` with the tightest staleness bound, and that
    /// bound, if any.
    pub fn bound_of<'a>(&self, tables: &'a [String]) -> Option<(&'a str, Duration)> {
        if !self.policy.any_bounded() {
            return None;
        }
        tables
            .iter()
            .filter_map(|t| {
                let p = self.policy.table(t);
                let ms = (p.level == Level::Bounded).then_some(p.max_staleness_ms)??;
                Some((t.as_str(), Duration::from_millis(ms)))
            })
            .min_by_key(|(_, b)| *b)
    }

    /// Before a read of bounded tables (`table` among them) with staleness bound `bound`:
    /// returns once this site has applied everything every other site had committed
    /// `bound` ago, asking them for their log heads when what it knows is too old;
    /// 57P03 if some site does not answer or is not caught up within the lock timeout.
    pub async fn ensure_fresh(&self, table: &str, bound: Duration) -> Result<(), ReplError> {
        let start = std::time::Instant::now();
        let deadline = start + self.lock_timeout;
        let mut tick = self.applied_tick.subscribe();
        let mut last_ask: Option<std::time::Instant> = None;
        loop {
            let now = std::time::Instant::now();
            let peers = self.peers();
            let stale: Vec<&Site> = {
                let f = self.lock_freshness();
                peers
                    .iter()
                    .filter(|p| {
                        f.fresh_as_of(p.id)
                            .is_none_or(|t| now.saturating_duration_since(t) > bound)
                    })
                    .collect()
            };
            let Some(first) = stale.first() else {
                return Ok(());
            };
            if now >= deadline {
                let age = self
                    .lock_freshness()
                    .fresh_as_of(first.id)
                    .map(|t| format!("{} ms ago", now.saturating_duration_since(t).as_millis()))
                    .unwrap_or_else(|| "never since this site started".into());
                return Err(ReplError::BoundUnmet {
                    table: table.to_string(),
                    bound_ms: bound.as_millis(),
                    site: first.name.clone(),
                    age,
                });
            }
            // Ask again when the last answers did not do (a site did not answer), but
            // not in a tight loop.
            if last_ask
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(100))
            {
                last_ask = Some(now);
                let ids: Vec<u64> = stale.iter().map(|p| p.id).collect();
                let wait = deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_secs(1));
                // What a site has but this one lacks is fetched from any replica that
                // holds it (the writer may be unreachable from here while others are not).
                for (id, head) in self.ask_heads(&ids, wait).await {
                    let Some(site) = peers.iter().find(|p| p.id == id) else {
                        continue;
                    };
                    let from = self.applied_of(id) + 1;
                    let keys = (from..=head.min(from + 63)).map(|seq| log_key(&site.name, seq));
                    self.pull_keys(keys).await;
                }
                continue;
            }
            tokio::select! {
                _ = tick.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// For a linearizable read of `tables`: the head of each strong domain among them
    /// that this site does not own, read from a quorum (a commit acknowledged anywhere
    /// before now has its head there). A domain this site owns needs nothing: no other
    /// site can commit to it while the lease holds.
    pub async fn heads_to_read(&self, tables: &[String]) -> Result<Vec<(String, u64)>, ReplError> {
        if !self.policy.any_strong() {
            return Ok(Vec::new());
        }
        let domains = self.strong_domains(tables);
        if domains.is_empty() {
            return Ok(Vec::new());
        }
        let owned: Vec<String> = {
            let map = self.ownership.owned.lock().await;
            domains
                .iter()
                .filter(|d| map.get(*d).is_some_and(|o| !o.guard.is_lost()))
                .cloned()
                .collect()
        };
        let mut out = Vec::new();
        for d in domains.into_iter().filter(|d| !owned.contains(d)) {
            let head = self
                .music
                .store()
                .read_newest_quorum(&domain_head(&d))
                .await
                .map_err(|e| {
                    let table = tables
                        .iter()
                        .find(|t| self.policy.table(t).domain.as_deref() == Some(d.as_str()))
                        .map(String::as_str)
                        .unwrap_or(d.as_str());
                    ReplError::StrongReadUnavailable {
                        table: table.to_string(),
                        cause: e.to_string(),
                    }
                })?;
            out.push((d, decode_head(head.map(|v| v.value))?));
        }
        Ok(out)
    }

    /// Asks the other sites for entries `from..=to` of `domain`'s log that this site
    /// lacks; the replicator applies them when they arrive.
    pub async fn pull_domain(&self, domain: &str, from: u64, to: u64) {
        self.pull_keys((from..=to).map(|seq| domain_key(domain, seq)))
            .await;
    }
}
