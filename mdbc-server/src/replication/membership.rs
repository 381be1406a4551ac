//! Sites joining a running cluster.
//!
//! A site that the others were not configured with joins by asking one of them (a site
//! call: anyone proving the cluster secret may make one). The site whose lock-service
//! replica leads consensus records the newcomer's name, address and serial stripe in the
//! key space (`members/<id>`), adds it to the consensus membership (one replica at a
//! time, decided like any entry) and answers. Every site watches the consensus membership
//! and takes in the members it does not know yet: its key-space replica pushes to them
//! and counts them in quorums, its node serves their calls, its replicator applies their
//! logs. The membership lives in the consensus log and the records in the key space, so
//! a restarted site finds the sites that joined without any change to its configuration.
//!
//! Serial stripes stay disjoint: configured sites take their place among the configured
//! names at their first start; a joining site takes the number of sites there have ever
//! been (members and removed sites; joins are decided one at a time). Either keeps it in
//! `<data_dir>/stripe_slot`.
//!
//! Removing a site (`mdbc-server remove-site`, for a site gone for good) is the reverse,
//! also at the consensus leader: the site goes on the removed list in the key space
//! (`members/removed`) and out of the consensus membership. Every site watches the list
//! and lets the removed one go — no more pushes to it, quorums counted without it, log
//! pruning no longer waiting for it — but still applies what it shipped before it left.
//! The list overrides the configured peers, so a restarted site does not take it back;
//! its name cannot join again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::calls::{self, Answer, Call};
use super::cluster::{Replication, Site};
use super::keys::{applied_pos, site_id, site_log};
use crate::config::Config;

/// What the cluster records about a site that joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    name: String,
    addr: String,
    slot: i64,
}

fn member_key(id: u64) -> String {
    format!("members/{id}")
}

/// The key of the removed sites' list.
const REMOVED: &str = "members/removed";

/// A site removed from the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Removed {
    id: u64,
    name: String,
}

fn slot_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("stripe_slot")
}

/// Keeps this site's serial stripe slot.
pub(super) fn save_stripe_slot(data_dir: &Path, slot: i64) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(slot_file(data_dir), format!("{slot}\n"))?;
    Ok(())
}

/// This site's serial stripe slot, once it has one.
pub(super) fn stripe_slot(data_dir: &Path) -> anyhow::Result<Option<i64>> {
    match std::fs::read_to_string(slot_file(data_dir)) {
        Ok(s) => {
            let slot = s.trim().parse::<i64>().map_err(|e| {
                anyhow::anyhow!("{}: not a stripe slot ({e})", slot_file(data_dir).display())
            })?;
            Ok(Some(slot))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Replication {
    fn record_of(&self, id: u64) -> Option<Record> {
        let v = self
            .music
            .store()
            .local()
            .get(&member_key(id))
            .ok()
            .flatten()?;
        calls::decode::<Record>(&v.value).ok()
    }

    /// The removed sites this site knows of (its replica of the list).
    fn removed(&self) -> Vec<Removed> {
        self.music
            .store()
            .local()
            .get(REMOVED)
            .ok()
            .flatten()
            .and_then(|v| calls::decode::<Vec<Removed>>(&v.value).ok())
            .unwrap_or_default()
    }

    /// The removed list as the other sites have it too (the newest replica's).
    async fn removed_newest(&self) -> Vec<Removed> {
        if let Err(e) = self.music.store().read_newest(REMOVED).await {
            tracing::debug!("reading the removed sites from the others: {e}");
        }
        self.removed()
    }

    /// Puts a membership record and waits (up to the quorum timeout) until `others` other
    /// sites hold it too: they act on it within a second of seeing it.
    async fn put_everywhere(
        &self,
        key: &str,
        value: bytes::Bytes,
        others: usize,
    ) -> Result<(), String> {
        self.music
            .put(key, value)
            .await
            .map_err(|e| e.to_string())?;
        let _ = self
            .music
            .store()
            .replicate_now(&[key.to_string()], others)
            .await;
        Ok(())
    }

    /// Answers an operator asking to remove site `site` (see the module docs).
    pub(super) async fn answer_remove(&self, site: String) -> Result<Answer, String> {
        let id = site_id(&site);
        let _one = self.join_lock.lock().await;
        let status = self.music.membership().await.map_err(|e| e.to_string())?;
        let mut removed = self.removed_newest().await;
        let member = self.peers().iter().any(|p| p.id == id) || status.contains(id);
        if !member && id != self.id {
            return if removed.iter().any(|r| r.id == id) {
                Ok(Answer::Removed)
            } else {
                Err(format!("there is no site named {site} in the cluster"))
            };
        }
        if status.leader != Some(self.id) {
            return Err(if id == self.id {
                format!("site {site} is the one asked to leave; ask another site")
            } else {
                format!(
                    "site {} does not lead the lock service; ask another site",
                    self.site
                )
            });
        }
        if id == self.id {
            return Err(format!(
                "site {site} leads the lock service: stop it first (another site takes over \
                 within a lease), then remove it"
            ));
        }
        if status.members.len() <= 2 {
            return Err(format!(
                "removing site {site} would leave one site; a cluster keeps at least two"
            ));
        }
        // Recorded first: a site that restarts with an old configuration must find it.
        if !removed.iter().any(|r| r.id == id) {
            removed.push(Removed {
                id,
                name: site.clone(),
            });
            // Every other site but the one going.
            let others = self.peers().len().saturating_sub(1);
            self.put_everywhere(REMOVED, calls::encode(&removed), others)
                .await?;
        }
        if status.contains(id) {
            self.music
                .remove_member(id)
                .await
                .map_err(|e| format!("removing site {site} from the lock service: {e}"))?;
        }
        self.remove_site(&Removed {
            id,
            name: site.clone(),
        });
        Ok(Answer::Removed)
    }

    /// Lets a removed site go (see the module docs). A site that never had it among its
    /// peers (it started, or joined, after the removal) still retires it: what the
    /// removed site shipped is applied here too, and causal entries that depend on it
    /// find its position.
    fn remove_site(&self, r: &Removed) {
        if r.id == self.id
            || self
                .retired
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|s| s.id == r.id)
        {
            return;
        }
        let gone = {
            let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
            let gone = peers.iter().find(|p| p.id == r.id).cloned();
            *peers = Arc::new(peers.iter().filter(|p| p.id != r.id).cloned().collect());
            gone
        };
        let gone = match gone {
            Some(site) => {
                self.node.remove_peer(r.id);
                self.health().remove(&r.id);
                tracing::info!(site = %site.name, "a site was removed from the cluster");
                site
            }
            None => Site {
                name: r.name.clone(),
                id: r.id,
                addr: String::new(),
            },
        };
        self.track_applied(&gone);
        self.retired
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(gone);
    }

    /// Answers a site asking to join (see the module docs).
    pub(super) async fn answer_join(
        &self,
        peer: u64,
        site: String,
        addr: String,
    ) -> Result<Answer, String> {
        if site_id(&site) != peer || peer == self.id {
            return Err(format!("the caller is not site {site}"));
        }
        if self.removed_newest().await.iter().any(|r| r.id == peer) {
            return Err(format!(
                "site {site} was removed from the cluster; a site joining again needs a new name"
            ));
        }
        let known = self.record_of(peer);
        if known.is_none() && self.peers().iter().any(|p| p.id == peer) {
            // Configured here from the start: a member already.
            return Ok(Answer::Joined { slot: None });
        }
        // One join at a time here, so two newcomers never count the same membership.
        let _one = self.join_lock.lock().await;
        let status = self.music.membership().await.map_err(|e| e.to_string())?;
        if let Some(r) = &known {
            if status.contains(peer) {
                return Ok(Answer::Joined { slot: Some(r.slot) });
            }
        }
        if status.leader != Some(self.id) {
            return Err(format!(
                "site {} does not lead the lock service; ask another site",
                self.site
            ));
        }
        let record = Record {
            name: site.clone(),
            addr: addr.clone(),
            // Every site ever in the cluster holds one slot (removed ones keep theirs).
            slot: (status.members.len() + self.removed().len()) as i64,
        };
        // Every site needs the name once it sees the new member.
        let others = self.peers().len();
        self.put_everywhere(&member_key(peer), calls::encode(&record), others)
            .await?;
        self.music
            .add_member(peer, addr.clone())
            .await
            .map_err(|e| format!("adding site {site} to the lock service: {e}"))?;
        self.add_site(Site {
            name: site,
            id: peer,
            addr,
        });
        Ok(Answer::Joined {
            slot: Some(record.slot),
        })
    }

    /// Starts following `site`'s applied position here from what the database holds.
    fn track_applied(&self, site: &Site) {
        let applied = rusqlite::Connection::open(self.store.path())
            .and_then(|c| applied_pos(&c, &site_log(&site.name)))
            .unwrap_or(0);
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(site.id)
            .or_insert(applied);
    }

    /// Takes in a site that joined.
    fn add_site(&self, site: Site) {
        {
            let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
            if peers.iter().any(|p| p.id == site.id) {
                return;
            }
            let mut next: Vec<Site> = peers.iter().cloned().collect();
            next.push(site.clone());
            *peers = Arc::new(next);
        }
        self.node.add_peer(site.id, site.addr.clone());
        self.track_applied(&site);
        tracing::info!(site = %site.name, addr = %site.addr, "a site joined the cluster");
    }
}

/// Every second: lets removed sites go, and takes in the members of the consensus
/// membership this site does not know yet (at start-up: every site removed or joined
/// since this one's configuration was written).
pub(super) async fn watch(repl: Arc<Replication>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let removed = repl.removed();
        for r in &removed {
            repl.remove_site(r);
        }
        if let Ok(status) = repl.music.membership().await {
            let known = repl.peers();
            for id in status.members.iter().copied() {
                if id == repl.id
                    || known.iter().any(|p| p.id == id)
                    || removed.iter().any(|r| r.id == id)
                {
                    continue;
                }
                let record = match repl.record_of(id) {
                    Some(r) => Some(r),
                    None => {
                        let _ = repl.music.store().read_newest(&member_key(id)).await;
                        repl.record_of(id)
                    }
                };
                match record {
                    Some(r) => repl.add_site(Site {
                        name: r.name,
                        id,
                        addr: r.addr,
                    }),
                    None => tracing::debug!(id, "a member without its record yet"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Before a site's first start: asks the configured sites to take it in. A site they were
/// configured with is a member already; one they were not is added to the cluster (and
/// given its serial stripe). Returns `false` without joining when no site answers at all
/// (a cluster starting up together); fails when sites answer but none takes it in.
pub(super) async fn join(cfg: &Config) -> anyhow::Result<bool> {
    let Some(cluster) = cfg.cluster.as_ref() else {
        return Ok(false);
    };
    let secret = cluster.secret_bytes()?;
    let me = site_id(&cfg.site);
    let call = calls::encode(&Call::Join {
        site: cfg.site.clone(),
        addr: cluster.advertised()?,
    });
    let mut last = String::new();
    // About a minute: a leader election and a membership change take well under that.
    for round in 0..60 {
        let mut answered = false;
        for p in &cluster.peers {
            let ch = match calls::connect(&p.addr, &secret, me, &p.site).await {
                Ok(ch) => ch,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            answered = true;
            let got = ch
                .call(call.clone(), Duration::from_secs(30))
                .await
                .and_then(|b| calls::decode::<Answer>(&b));
            match got {
                Ok(Answer::Joined { slot }) => {
                    if let Some(slot) = slot {
                        save_stripe_slot(&cfg.data_dir, slot)?;
                        tracing::info!(via = %p.site, slot, "joined the cluster");
                    }
                    return Ok(true);
                }
                Ok(other) => last = format!("unexpected answer {other:?}"),
                Err(e) if e.contains("was removed from the cluster") => {
                    anyhow::bail!("site {}: {e}", p.site)
                }
                Err(e) => last = format!("site {}: {e}", p.site),
            }
        }
        if !answered && round == 0 {
            tracing::info!("no other site is up yet; starting as configured, empty");
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("could not join the cluster: {last}")
}

/// `mdbc-server remove-site`: asks the sites `cfg` names (itself and its peers) to remove
/// site `site` from the cluster, until the one leading the lock service does it.
pub async fn remove(cfg: &Config, site: &str) -> anyhow::Result<()> {
    let Some(cluster) = cfg.cluster.as_ref() else {
        anyhow::bail!(
            "the configuration has no [cluster] section: a single site has no one to remove"
        );
    };
    let secret = cluster.secret_bytes()?;
    // Not a site: the sites take calls to remove one from anyone with the secret.
    let me = site_id(&format!("mdbc-remove-site/{}", std::process::id()));
    let call = calls::encode(&Call::Remove {
        site: site.to_string(),
    });
    let mut sites = vec![(cfg.site.clone(), cluster.advertised()?)];
    sites.extend(
        cluster
            .peers
            .iter()
            .map(|p| (p.site.clone(), p.addr.clone())),
    );
    let mut last = String::new();
    // About a minute: a leader election and a membership change take well under that.
    for _ in 0..60 {
        for (name, addr) in &sites {
            let ch = match calls::connect(addr, &secret, me, name).await {
                Ok(ch) => ch,
                Err(e) => {
                    last = format!("site {name}: {e}");
                    continue;
                }
            };
            let got = ch
                .call(call.clone(), Duration::from_secs(30))
                .await
                .and_then(|b| calls::decode::<Answer>(&b));
            match got {
                Ok(Answer::Removed) => return Ok(()),
                Ok(other) => last = format!("site {name}: unexpected answer {other:?}"),
                // Only the leader acts; any other refusal is final.
                Err(e) if e.contains("ask another site") => last = format!("site {name}: {e}"),
                Err(e) => anyhow::bail!("site {name}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("could not remove site {site}: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stripe_slot_file_is_read_back_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stripe_slot(dir.path()).unwrap(), None);
        save_stripe_slot(dir.path(), 3).unwrap();
        assert_eq!(stripe_slot(dir.path()).unwrap(), Some(3));
        std::fs::write(slot_file(dir.path()), "three").unwrap();
        let e = stripe_slot(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a stripe slot"), "{e}");
    }

    #[test]
    fn a_wildcard_bind_needs_an_advertised_address_to_join() {
        let cfg = |extra: &str| {
            Config::from_toml(&format!(
                "site = \"d\"\n[cluster]\nbind = \"0.0.0.0:7433\"\nsecret = \"12345678\"\n{extra}"
            ))
            .unwrap()
        };
        let plain = cfg("");
        let err = plain.cluster.as_ref().unwrap().advertised().unwrap_err();
        assert!(err.to_string().contains("advertise"), "{err}");
        let set = cfg("advertise = \"10.0.0.4:7433\"");
        assert_eq!(
            set.cluster.as_ref().unwrap().advertised().unwrap(),
            "10.0.0.4:7433"
        );
    }
}
