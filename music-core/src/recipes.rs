//! Recipes on the MUSIC operations: a mutex guard that keeps its lease alive, leader
//! election for active-passive services with a failover callback, and a barrier.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::locks::{LockError, LockRef};
use crate::service::{Music, MusicError};
use crate::store::{DataStore, Versioned};
use crate::version::Version;

/// A lock held by this process, its lease renewed in the background (every third of the
/// lease) until it is released or dropped.
///
/// The guard counts itself *lost* — [`MutexGuard::is_lost`], [`MutexGuard::lost`] — as
/// soon as a renewal is refused, or a tenth of a lease before the lease would end,
/// counted from when the last successful renewal was *sent* (so, while clocks agree
/// within that tenth, before the lock service may give the lock to someone else). Work done under the lock should stop when it is lost; critical
/// writes made after that are refused anyway, by the fences.
pub struct MutexGuard<D: DataStore> {
    music: Music<D>,
    lock_ref: LockRef,
    keys: Vec<String>,
    renewer: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl<D: DataStore> Music<D> {
    /// Takes the lock on `keys` (waiting up to `timeout`) and keeps it until the guard is
    /// released or dropped.
    pub async fn lock(
        &self,
        keys: &[String],
        owner: &str,
        timeout: Duration,
    ) -> Result<MutexGuard<D>, MusicError> {
        let (r, first) = self.create_and_acquire(keys, owner).await?;
        let acquired = if first.held {
            Ok(first)
        } else {
            self.acquire_lock_wait(r, timeout).await.and_then(|a| {
                if a.held {
                    Ok(a)
                } else {
                    Err(MusicError::Timeout(r))
                }
            })
        };
        let acquired = match acquired {
            Ok(a) => a,
            Err(e) => {
                // Leave the queue rather than block the ones behind.
                let _ = self.release_lock(r).await;
                return Err(e);
            }
        };
        let (tx, rx) = watch::channel(false);
        let m = self.clone();
        let lease = self.lease();
        // Counted lost a margin before the lease would end by this process's clock: the
        // lock service measures the lease from the request's time on another node's
        // clock, so the margin must cover the clock skew between nodes.
        let valid_for = lease - lease / 10;
        let renewer = tokio::spawn(async move {
            let mut valid_until = acquired.requested_at + valid_for;
            loop {
                let next = (tokio::time::Instant::now() + lease / 3).min(valid_until);
                tokio::time::sleep_until(next).await;
                if tokio::time::Instant::now() >= valid_until {
                    let _ = tx.send(true);
                    return;
                }
                let sent = tokio::time::Instant::now();
                match m.renew(r).await {
                    Ok(_) => valid_until = sent + valid_for,
                    Err(MusicError::Lock(LockError::UnknownRef(_)))
                    | Err(MusicError::Lock(LockError::NotHolder(_))) => {
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(lock_ref = r, "lease renewal failed: {e}"),
                }
            }
        });
        Ok(MutexGuard {
            music: self.clone(),
            lock_ref: r,
            keys: keys.to_vec(),
            renewer,
            lost: rx,
        })
    }
}

impl<D: DataStore> MutexGuard<D> {
    /// The lock ref (also the fencing token of writes made under it).
    pub fn lock_ref(&self) -> LockRef {
        self.lock_ref
    }

    /// The keys it guards.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Whether the lock was lost (see the type docs).
    pub fn is_lost(&self) -> bool {
        // A renewer that is gone without saying so (its runtime shut down) renews no more.
        *self.lost.borrow() || self.renewer.is_finished()
    }

    /// Resolves when the lock is lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }

    /// A critical write under this lock.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<Version, MusicError> {
        self.music.critical_put(key, value, self.lock_ref).await
    }

    /// Critical writes of several keys under this lock, in one round (see
    /// `Music::critical_put_many`).
    pub async fn put_many(&self, items: Vec<(String, Bytes)>) -> Result<(), MusicError> {
        self.music.critical_put_many(items, self.lock_ref).await
    }

    /// A critical read under this lock.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, MusicError> {
        self.music.critical_get(key, self.lock_ref).await
    }

    /// Releases the lock.
    pub async fn release(self) -> Result<bool, MusicError> {
        self.renewer.abort();
        self.music.release_lock(self.lock_ref).await
    }
}

impl<D: DataStore> Drop for MutexGuard<D> {
    fn drop(&mut self) {
        if self.renewer.is_finished() {
            return;
        }
        self.renewer.abort();
        // Released in the background; should that fail, the lease runs out.
        let (m, r) = (self.music.clone(), self.lock_ref);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = m.release_lock(r).await;
            });
        }
    }
}

/// Active-passive: every candidate queues for the lock on `group`; the one that holds it
/// is active and `on_active` runs with its guard. When the active candidate dies or is
/// cut off, its lease runs out and the next candidate's `on_active` runs — the failover
/// callback. `on_active` should return when the guard is lost (or its work is done);
/// the candidate then releases and queues again, until `stop` turns true.
pub async fn run_for_leader<D, F, Fut>(
    music: Music<D>,
    group: String,
    candidate: String,
    mut on_active: F,
    mut stop: watch::Receiver<bool>,
) -> Result<(), MusicError>
where
    D: DataStore,
    F: FnMut(MutexGuard<D>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let keys = [format!("election/{group}")];
    while !*stop.borrow() {
        let attempt = tokio::select! {
            g = music.lock(&keys, &candidate, Duration::from_secs(3600)) => g,
            _ = stop.changed() => return Ok(()),
        };
        match attempt {
            Ok(guard) => {
                tracing::info!(group, candidate, lock_ref = guard.lock_ref(), "active");
                on_active(guard).await;
            }
            Err(MusicError::Timeout(_)) => {}
            Err(e) => {
                tracing::warn!(group, candidate, "campaign failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// Waits until `parties` participants have arrived at barrier `name`. Arrival is counted
/// under the barrier's lock; waiting reads the count with a growing back-off (there is
/// no watch on keys), so it returns shortly after the last arrival.
pub async fn barrier<D: DataStore>(
    music: &Music<D>,
    name: &str,
    parties: u64,
    timeout: Duration,
) -> Result<(), MusicError> {
    let key = format!("barrier/{name}");
    let deadline = tokio::time::Instant::now() + timeout;
    let count = {
        let guard = music
            .lock(std::slice::from_ref(&key), "barrier", timeout)
            .await?;
        let seen = parse_count(guard.get(&key).await?);
        let now = seen + 1;
        guard.put(&key, Bytes::from(now.to_string())).await?;
        guard.release().await?;
        now
    };
    if count >= parties {
        // Spread the news to every replica at once, not only a quorum.
        music.put(&key, Bytes::from(count.to_string())).await?;
        return Ok(());
    }
    let mut wait = Duration::from_millis(5);
    loop {
        if parse_count(music.get(&key).await?) >= parties {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MusicError::Invalid(format!(
                "barrier {name}: fewer than {parties} arrived in time"
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}

fn parse_count(v: Option<Versioned>) -> u64 {
    v.and_then(|v| std::str::from_utf8(&v.value).ok()?.parse().ok())
        .unwrap_or(0)
}
