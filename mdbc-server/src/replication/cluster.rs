//! This site's part in the cluster: the state every replication job shares, and the
//! accessors they all use.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use music_core::node::MusicNode;
use music_core::service::Music;
use music_core::store::embedded::EmbeddedStore;
use music_core::version::Hlc;
use tokio::sync::watch;

use super::freshness::Freshness;
use super::keys::DomainLock;
use super::ownership::Ownership;
use super::policy::Policy;
use crate::config::Level;
use crate::store::Store;

/// Another site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Its name.
    pub name: String,
    /// Its numeric id.
    pub id: u64,
    /// Its cluster address.
    pub addr: String,
}

/// This site's part in the cluster, shared by every session. The state lives here; what
/// is done with it lives in one module per log or job (see the module list in `mod.rs`).
pub struct Replication {
    pub(super) site: String,
    pub(super) id: u64,
    pub(super) policy: Policy,
    pub(super) hlc: Hlc,
    pub(super) music: Music<EmbeddedStore>,
    pub(super) node: MusicNode,
    // The other sites: those configured, then those that joined (see membership.rs).
    pub(super) peers: std::sync::RwLock<Arc<Vec<Site>>>,
    // Sites removed from the cluster: what they shipped before is still applied here.
    pub(super) retired: std::sync::RwLock<Vec<Site>>,
    // This site's slot in serial stripes (see `sequence_stripe`).
    pub(super) stripe_slot: i64,
    // The next position of this site's log; moves only under the store's write lock.
    pub(super) next_seq: AtomicU64,
    // Position of the schema log applied here.
    pub(super) schema_pos: AtomicU64,
    // Applied position of each other site's log, by site id: what readers here see.
    pub(super) applied: Mutex<HashMap<u64, u64>>,
    pub(super) unshipped: Mutex<BTreeSet<u64>>,
    pub(super) lock_timeout: Duration,
    // The server's long-lived runtime, where lock renewers run.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) ownership: Ownership,
    pub(super) bind: String,
    // This site's own row in `__mdbc_applied` ("site:<site>").
    pub(super) own_log: String,
    // Per other site: whether its cluster port answered lately, and the delay (ms) between
    // writing and applying here of the last entry applied from it.
    pub(super) health: Mutex<HashMap<u64, (bool, Option<u64>)>>,
    // Bounded reads: how recently this site knew it had everything of each other site.
    pub(super) freshness: Mutex<Freshness>,
    // Ticks each time an applied position of another site's log moves.
    pub(super) applied_tick: watch::Sender<u64>,
    pub(super) data_dir: std::path::PathBuf,
    // The site's database.
    pub(super) store: Arc<Store>,
    // Snapshots made for new sites (see snapshot.rs).
    pub(super) snapshots: Mutex<SnapshotsMade>,
    pub(super) join_lock: tokio::sync::Mutex<()>,
}

/// Serial values are striped over this many slots, one per site.
pub const SEQUENCE_STRIDE: i64 = 64;

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("site", &self.site)
            .finish()
    }
}

impl Replication {
    /// Serial sequences' stripe at this site: (stride, slot). The slot is the site's place
    /// among the configured site names, sorted — or, for a site that joined a running
    /// cluster, the one it was given then; the stride leaves room for 64 sites.
    pub fn sequence_stripe(&self) -> (i64, i64) {
        (SEQUENCE_STRIDE, self.stripe_slot % SEQUENCE_STRIDE)
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The other sites.
    pub fn peers(&self) -> Arc<Vec<Site>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sites removed from the cluster (their logs are still applied, to the end).
    pub fn retired(&self) -> Vec<Site> {
        self.retired
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The table policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether writes to `table` are captured and shipped.
    pub fn replicated(&self, table: &str) -> bool {
        self.policy.level(table) != Level::Local
    }

    /// Takes a MUSIC lock on `keys` from the server's own runtime: the guard's lease
    /// renewer must outlive the client connection that asked (a domain stays this site's
    /// after that connection closes), and each connection has a runtime of its own.
    pub(super) async fn lock(
        &self,
        keys: Vec<String>,
    ) -> Result<DomainLock, music_core::service::MusicError> {
        let (music, site, timeout) = (self.music.clone(), self.site.clone(), self.lock_timeout);
        self.runtime
            .spawn(async move { music.lock(&keys, &site, timeout).await })
            .await
            .unwrap_or_else(|e| {
                Err(music_core::service::MusicError::Unavailable(format!(
                    "the lock task stopped: {e}"
                )))
            })
    }
}

impl Replication {
    /// How long a statement may wait for the cluster.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }
}

/// Snapshots a donor keeps for new sites, by id: the file and when it was made (see
/// snapshot.rs).
#[derive(Debug, Default)]
pub(super) struct SnapshotsMade {
    pub(super) files: HashMap<u64, (PathBuf, Instant)>,
}

impl Replication {
    /// How far this site has applied site `site`'s log (what readers here see).
    pub(super) fn applied_of(&self, site: u64) -> u64 {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&site)
            .copied()
            .unwrap_or(0)
    }

    /// After the replicator committed site `site`'s log up to `pos`.
    pub(super) fn set_applied_of(&self, site: u64, pos: u64) {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site, pos);
        self.lock_freshness().applied(site, pos);
        self.applied_tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(super) fn lock_freshness(&self) -> std::sync::MutexGuard<'_, Freshness> {
        self.freshness.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_unshipped(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.unshipped.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn health(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (bool, Option<u64>)>> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}
