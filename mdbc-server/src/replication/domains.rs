//! Strong domains: taking a domain's lock for this site, keeping it while this site keeps
//! writing, settling an entry whose commit was in doubt, writing a transaction's entries
//! to the domain logs, and handing the lock over when another site queues for it. The
//! state (who owns what) is in [`super::ownership`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::Connection;
use sql_capture::capture::Shapes;
use sql_capture::changes::{Entry, TableChanges};
use tokio::sync::watch;

use super::cluster::Replication;
use super::error::ReplError;
use super::keys::{domain_lock_key, domain_log, set_applied};
use super::locked_log::{append_locked, settle_tail};
use super::ownership::{unused, Owned, Ownership};

/// A strong transaction's entry for one domain, ready to ship.
pub struct StrongEntry {
    pub(super) owned: Arc<Owned>,
    pub(super) domain: String,
    pub(super) table: String,
    pub(super) seq: u64,
    pub(super) bytes: Bytes,
}

/// Appends prepared strong entries to their domains' logs (entry and head in one round):
/// a quorum holds them when this returns; then the transaction may commit.
pub(crate) async fn put_strong(entries: &[StrongEntry]) -> Result<(), ReplError> {
    for e in entries {
        let what = format!("cannot write strong table \"{}\"", e.table);
        if e.owned.guard.is_lost() {
            return Err(ReplError::DomainLeaseLost {
                what,
                domain: e.domain.clone(),
            });
        }
        if let Err(err) = append_locked(&e.owned.guard, &e.domain, e.seq, &e.bytes).await {
            if err.head_sent {
                e.owned.set_unsettled(&e.domain, e.seq, e.bytes.clone());
            }
            return Err(err.into_repl(&what));
        }
        e.owned.set_head(&e.domain, e.seq);
    }
    Ok(())
}

/// Before the next commit to `domain` at its owner: writes again the entry whose outcome
/// an earlier commit left unknown (see [`Owned::set_unsettled`]). Until that succeeds the
/// domain takes no new entry here (57P03).
pub(crate) async fn settle(o: &Owned, domain: &str) -> Result<(), ReplError> {
    let Some((seq, entry)) = o.unsettled(domain) else {
        return Ok(());
    };
    match append_locked(&o.guard, domain, seq, &entry).await {
        Ok(()) => {
            tracing::info!(
                domain,
                seq,
                "an entry whose commit was in doubt now stands on a quorum"
            );
            o.settled(domain, seq);
            Ok(())
        }
        Err(e) => Err(ReplError::InDoubt {
            domain: domain.to_string(),
            seq,
            cause: e.err.to_string(),
        }),
    }
}

/// Releases a lock nobody else references any more (else its last user will).
async fn release_if_unused(ownership: &Ownership, o: Arc<Owned>) {
    if let Ok(o) = Arc::try_unwrap(o) {
        let r = o.guard.lock_ref();
        // An entry in doubt goes to a quorum before the lock does, if it can: the next
        // owner then finds it rather than giving its position to another entry.
        for d in &o.domains {
            if let Err(e) = settle(&o, d).await {
                tracing::warn!(
                    lock_ref = r,
                    "handing domain {d} over with an entry in doubt: {e:?}"
                );
            }
        }
        match o.guard.release().await {
            Ok(_) => tracing::debug!(lock_ref = r, "handed a domain over"),
            Err(e) => tracing::warn!(lock_ref = r, "releasing a domain lock: {e}"),
        }
        ownership.forget(r);
    }
}

/// Watches the lock table for refs queued behind a lock this site keeps, and hands those
/// over at once when no transaction uses them (else at the end of the one that does).
pub(super) async fn handover(repl: Arc<Replication>, mut shutdown: watch::Receiver<bool>) {
    let mut waiters = repl.music.waiters();
    loop {
        let (waiter, behind) = tokio::select! {
            w = waiters.recv() => match w { Some(w) => w, None => return },
            _ = shutdown.changed() => return,
        };
        let mut map = repl.ownership.owned.lock().await;
        let mut give: Vec<Arc<Owned>> = Vec::new();
        for o in map.values() {
            if behind.contains(&o.lock_ref()) && !give.iter().any(|x| Arc::ptr_eq(x, o)) {
                give.push(o.clone());
            }
        }
        for o in give {
            tracing::debug!(
                waiter,
                lock_ref = o.lock_ref(),
                "another site waits for a domain"
            );
            repl.ownership.want(o.lock_ref());
            if unused(&o) {
                for d in &o.domains {
                    map.remove(d);
                }
                release_if_unused(&repl.ownership, o).await;
            }
        }
    }
}

impl Replication {
    /// The strong domains `tables` belong to, sorted.
    pub fn strong_domains<'a>(&self, tables: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut d: Vec<String> = tables
            .into_iter()
            .filter_map(|t| self.policy.table(t).domain.clone())
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// Makes this site the owner of `domains` (unless it is already, and nobody waits for
    /// them): one multi-key lock ref over all of them, waiting up to the lock timeout. The
    /// returned guards are used for one transaction and handed back with
    /// [`Replication::end_use`]. `table` names the table in errors.
    pub async fn acquire_domains(
        &self,
        domains: &[String],
        table: &str,
    ) -> Result<Vec<Arc<Owned>>, ReplError> {
        // Domains this site holds already: no wait behind a session taking others.
        if let Some(out) = self.owned_now(domains).await {
            return Ok(out);
        }
        let what = format!("cannot write strong table \"{table}\"");
        let _one = self.ownership.acquiring.lock().await;
        // Another session here may have taken them while this one waited.
        if let Some(out) = self.owned_now(domains).await {
            return Ok(out);
        }
        let mut map = self.ownership.owned.lock().await;
        // Give up what we hold of these domains (released once no transaction uses it),
        // then take them all with one ref: queueing for several refs one by one could
        // deadlock with another site doing the same in another order.
        let mut give_up: Vec<Arc<Owned>> = Vec::new();
        for d in domains {
            if let Some(o) = map.get(d).cloned() {
                for other in &o.domains {
                    map.remove(other);
                }
                if !give_up.iter().any(|x| Arc::ptr_eq(x, &o)) {
                    give_up.push(o);
                }
            }
        }
        for o in give_up {
            self.ownership.want(o.lock_ref());
            release_if_unused(&self.ownership, o).await;
        }
        // Not held across the wait (see `Ownership::acquiring`).
        drop(map);
        let keys: Vec<String> = domains.iter().map(|d| domain_lock_key(d)).collect();
        let guard = self
            .lock(keys.clone())
            .await
            .map_err(|e| ReplError::music(&what, e))?;
        let mut heads = HashMap::new();
        for d in domains {
            heads.insert(d.clone(), settle_tail(&guard, d, &what).await?);
        }
        tracing::debug!(?domains, lock_ref = guard.lock_ref(), "now owns");
        let owned = Arc::new(Owned::new(guard, domains.to_vec(), heads));
        let mut map = self.ownership.owned.lock().await;
        for d in domains {
            map.insert(d.clone(), owned.clone());
        }
        drop(map);
        // A site that queued behind this ref before it was in the map was missed by the
        // hand-over task: asked now, it gets the domain when this transaction ends.
        for key in &keys {
            match self.music.queue(key).await {
                Ok(q) if q.iter().any(|i| i.lock_ref != owned.lock_ref()) => {
                    self.ownership.want(owned.lock_ref());
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    // Unknown: hand over after this transaction rather than risk keeping
                    // someone waiting.
                    tracing::debug!(%key, "reading the lock queue: {e}");
                    self.ownership.want(owned.lock_ref());
                    break;
                }
            }
        }
        Ok(vec![owned])
    }

    /// The held locks covering every one of `domains`, if this site holds them all and
    /// no other site waits for one.
    async fn owned_now(&self, domains: &[String]) -> Option<Vec<Arc<Owned>>> {
        let mut map = self.ownership.owned.lock().await;
        map.retain(|_, o| !o.guard.is_lost());
        let mut out: Vec<Arc<Owned>> = Vec::new();
        for d in domains {
            let o = map
                .get(d)
                .filter(|o| !self.ownership.is_wanted(o.lock_ref()))?;
            if !out.iter().any(|x| Arc::ptr_eq(x, o)) {
                out.push(o.clone());
            }
        }
        Some(out)
    }

    /// Applies entry `seq` of `domain`'s log inside the caller's transaction.
    pub fn apply_domain_entry(
        &self,
        conn: &Connection,
        shapes: &mut Shapes,
        version: u64,
        domain: &str,
        seq: u64,
        entry: &Entry,
    ) -> Result<(), ReplError> {
        self.apply_tables(conn, shapes, version, entry)
            .map_err(|e| ReplError::Apply(e.to_string()))?;
        set_applied(conn, &domain_log(domain), seq)?;
        Ok(())
    }

    /// Before COMMIT, inside the transaction: stamps the transaction's changes to strong
    /// tables and builds one entry per domain (not yet shipped: [`put_strong`]).
    /// Returns those, and the other changes, for the site log.
    pub fn prepare_strong(
        &self,
        conn: &Connection,
        owned: &[Arc<Owned>],
        changes: Vec<TableChanges>,
        schema: Option<u64>,
    ) -> Result<(Vec<StrongEntry>, Vec<TableChanges>), ReplError> {
        let mut rest = Vec::new();
        let mut by_domain: std::collections::BTreeMap<String, Vec<TableChanges>> =
            Default::default();
        for t in changes {
            match self.policy.table(&t.table).domain.clone() {
                Some(d) if !t.rows.is_empty() => by_domain.entry(d).or_default().push(t),
                Some(_) => {}
                None => rest.push(t),
            }
        }
        let mut out = Vec::new();
        for (domain, tables) in by_domain {
            let table = tables.first().map(|t| t.table.clone()).unwrap_or_default();
            let Some(o) = owned.iter().find(|o| o.domains.contains(&domain)) else {
                return Err(ReplError::WithoutDomainLock { table });
            };
            let seq = o.head(&domain) + 1;
            let entry = self.stamped_entry(conn, seq, tables, schema, Vec::new())?;
            set_applied(conn, &domain_log(&domain), seq)?;
            out.push(StrongEntry {
                owned: o.clone(),
                domain,
                table,
                seq,
                bytes: Bytes::from(entry.encode()),
            });
        }
        Ok((out, rest))
    }

    /// A transaction that used `owned` ended: hands over, on the server's runtime (the
    /// client's connection may be closing), the locks another site waits for.
    pub fn end_use_later(self: &Arc<Self>, owned: Vec<Arc<Owned>>) {
        let me = self.clone();
        self.runtime.spawn(async move { me.end_use(owned).await });
    }

    async fn end_use(&self, owned: Vec<Arc<Owned>>) {
        let wanted: Vec<Arc<Owned>> = owned
            .into_iter()
            .filter(|o| self.ownership.is_wanted(o.lock_ref()))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut map = self.ownership.owned.lock().await;
        for o in wanted {
            for d in &o.domains {
                if map.get(d).is_some_and(|x| Arc::ptr_eq(x, &o)) {
                    map.remove(d);
                }
            }
            release_if_unused(&self.ownership, o).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::errors::SqlError;
    use crate::replication::chunks;
    use crate::replication::keys::domain_key;
    use crate::replication::testing::music_nodes;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_in_doubt_keeps_its_position_and_is_written_again_first() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, _stop) = music_nodes(dir.path()).await;
        let music = nodes[0].music.clone();
        let guard = music
            .lock(&[domain_lock_key("d")], "a", Duration::from_secs(20))
            .await
            .unwrap();
        let owned = Arc::new(Owned::new(
            guard,
            vec!["d".into()],
            HashMap::from([("d".to_string(), 0)]),
        ));
        let entry = |v: &'static [u8]| StrongEntry {
            owned: owned.clone(),
            domain: "d".into(),
            table: "t".into(),
            seq: owned.head("d") + 1,
            bytes: Bytes::from_static(v),
        };
        put_strong(&[entry(b"first")]).await.unwrap();
        assert_eq!(owned.head("d"), 1);
        owned.mark_caught_up("d");
        // The key space of this node cannot reach the others: the head goes out and
        // falls short of a quorum, holding only here.
        music.store().cut_off(&[2, 3]);
        let e = put_strong(&[entry(b"in doubt")]).await.unwrap_err();
        assert_eq!(SqlError::from(e).code_and_message().0, "08007");
        // The next commit may not take position 2 while the cut lasts...
        let e = settle(&owned, "d").await.unwrap_err();
        assert_eq!(SqlError::from(e).code_and_message().0, "57P03");
        assert_eq!(owned.head("d"), 1);
        // ...and once healed, the entry in doubt is written again first, whole, and
        // this site applies it from the log.
        music.store().cut_off(&[]);
        settle(&owned, "d").await.unwrap();
        assert_eq!(owned.head("d"), 2);
        assert!(!owned.is_caught_up("d"));
        let next = entry(b"after");
        assert_eq!(next.seq, 3);
        put_strong(&[next]).await.unwrap();
        // Every replica ends with the same entries (a quorum confirmed each write; the
        // third replica's copy may arrive a moment later).
        for node in &nodes[1..] {
            let local = node.music.store().local();
            let at = |seq| {
                let v = local.get(&domain_key("d", seq)).unwrap()?.value;
                match chunks::parse(&v).unwrap() {
                    chunks::Stored::Whole(b) => Some(b.to_vec()),
                    chunks::Stored::Split(_) => panic!("a small entry was split"),
                }
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while at(3).is_none() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(at(2).as_deref(), Some(&b"in doubt"[..]));
            assert_eq!(at(3).as_deref(), Some(&b"after"[..]));
        }
    }
}
