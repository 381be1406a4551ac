//! # group-commit
//!
//! Group commit for a SQLite database in WAL mode: one fsync of the `-wal` file makes
//! every commit written before it durable, so concurrent committers share fsyncs instead
//! of paying one each, in series.
//!
//! Connections run with `synchronous = NORMAL` (the WAL is written, not synced, at
//! COMMIT). A writer takes a ticket ([`GroupCommit::begin_commit`]), commits, marks the
//! ticket written ([`GroupCommit::written`]) while still serialised with the other
//! writers, and acknowledges only once [`GroupCommit::wait`] says the ticket is durable;
//! one fsync of the WAL covers every ticket written before it starts, and only those.
//!
//! Two ways to run the fsync:
//! - [`GroupCommit::start`]: a syncer thread, for callers on a shared async runtime that
//!   must not block a worker (MUSIC's embedded store: critical writes and fences);
//! - [`GroupCommit::start_inline`]: the first waiter whose ticket is not yet durable
//!   becomes the leader and fsyncs for everyone written so far, on its own thread; the
//!   others wait for its result and the next of them leads if it did not cover them. This
//!   is for callers with a thread each (mdbc-server's connections): a lone committer
//!   pays the fsync and no thread hand-off (two wake-ups, about a tenth of a TPC-B commit
//!   at one client on our test machines).
//!
//! The `-wal` file must stay open by some connection for the handle to stay valid (SQLite
//! deletes it when the last connection closes).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::watch;

/// Something that makes written data durable (the `-wal` file; a counter in tests).
pub trait Syncer: Send + 'static {
    /// Flushes everything written so far to stable storage.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Syncer for File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

struct Shared {
    /// Inline mode: the syncer, held by whichever waiter is leading.
    inline: Option<Mutex<Box<dyn Syncer>>>,
    issued: AtomicU64,
    written: Mutex<u64>,
    /// Inline mode: wakes a would-be leader whose ticket was not written yet.
    written_notify: tokio::sync::Notify,
    wake: Condvar,
    durable: watch::Sender<u64>,
}

/// The `-wal` file of the database at `db`, opened for fsync.
fn open_wal(db: &Path) -> std::io::Result<File> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::OpenOptions::new().read(true).open(&wal)
}

enum Lead {
    Durable,
    Synced,
    NotWritten,
    Failed,
    Busy,
}

/// The durability barrier shared by all sessions of a store.
pub struct GroupCommit {
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
}

impl GroupCommit {
    /// Starts the syncer thread for the WAL file of the database at `db`.
    pub fn for_wal(db: &Path) -> std::io::Result<GroupCommit> {
        Ok(Self::start(open_wal(db)?))
    }

    /// Inline mode (see the module docs) for the WAL file of the database at `db`.
    pub fn for_wal_inline(db: &Path) -> std::io::Result<GroupCommit> {
        Ok(Self::start_inline(open_wal(db)?))
    }

    /// Inline mode around `syncer`: waiters fsync themselves, one at a time.
    pub fn start_inline(syncer: impl Syncer) -> GroupCommit {
        let (tx, rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            inline: Some(Mutex::new(Box::new(syncer))),
            issued: AtomicU64::new(0),
            written: Mutex::new(0),
            written_notify: tokio::sync::Notify::new(),
            wake: Condvar::new(),
            durable: tx,
        });
        GroupCommit {
            shared,
            durable: rx,
        }
    }

    /// Starts a syncer thread around `syncer`.
    pub fn start(mut syncer: impl Syncer) -> GroupCommit {
        let (tx, rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            inline: None,
            issued: AtomicU64::new(0),
            written: Mutex::new(0),
            written_notify: tokio::sync::Notify::new(),
            wake: Condvar::new(),
            durable: tx,
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                let mut durable = 0u64;
                loop {
                    let target = {
                        let mut w = s.written.lock().unwrap_or_else(|e| e.into_inner());
                        while *w <= durable {
                            if s.durable.is_closed() && Arc::strong_count(&s) == 1 {
                                return;
                            }
                            let (g, _) = s
                                .wake
                                .wait_timeout(w, std::time::Duration::from_millis(200))
                                .unwrap_or_else(|e| e.into_inner());
                            w = g;
                        }
                        *w
                    };
                    match syncer.sync() {
                        Ok(()) => {
                            durable = target;
                            s.durable.send_replace(durable);
                        }
                        Err(e) => {
                            // Without a durable WAL nothing more can be acknowledged; waiting
                            // writers keep waiting rather than be told a lie.
                            tracing::error!(
                                "fsync of the WAL failed: {e}; commits are not acknowledged"
                            );
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    }
                }
            })
            .expect("spawning the group-commit thread");
        GroupCommit {
            shared,
            durable: rx,
        }
    }

    /// A ticket for a commit about to run (call while holding the write lock).
    pub fn begin_commit(&self) -> u64 {
        self.shared.issued.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Marks `ticket`'s commit as written to the WAL (call before releasing the write lock;
    /// writers are serialised, so tickets are marked in order).
    pub fn written(&self, ticket: u64) {
        let mut w = self
            .shared
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ticket > *w {
            *w = ticket;
        }
        drop(w);
        if self.shared.inline.is_some() {
            self.shared.written_notify.notify_waiters();
        } else {
            self.shared.wake.notify_one();
        }
    }

    /// Waits until `ticket` is durable. In inline mode this may fsync on the calling
    /// thread.
    pub async fn wait(&self, ticket: u64) {
        if *self.durable.borrow() >= ticket {
            return;
        }
        let mut rx = self.durable.clone();
        let Some(inline) = &self.shared.inline else {
            let _ = rx.wait_for(|d| *d >= ticket).await;
            return;
        };
        loop {
            // Marked seen before trying to lead, so a leader that finishes after a failed
            // try_lock still wakes this waiter.
            if *rx.borrow_and_update() >= ticket {
                return;
            }
            // Enabled before `written` is read, so a write marked meanwhile still wakes us.
            let notified = self.shared.written_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_lead(inline, ticket) {
                Lead::Durable => return,
                Lead::Synced => {}
                Lead::NotWritten => notified.await,
                Lead::Failed => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Lead::Busy => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One attempt to fsync for everyone as the inline leader.
    fn try_lead(&self, inline: &Mutex<Box<dyn Syncer>>, ticket: u64) -> Lead {
        let Ok(mut syncer) = inline.try_lock() else {
            return Lead::Busy;
        };
        let (lead, synced_to) = self.lead(syncer.as_mut(), ticket);
        drop(syncer);
        // Published only once the syncer is free again, and whatever happened: a waiter
        // that found it taken is woken by this and tries to lead in turn (had it been
        // published under the lock, that waiter could miss the last wake-up for good).
        self.shared.durable.send_modify(|d| {
            if let Some(t) = synced_to {
                *d = (*d).max(t);
            }
        });
        lead
    }

    fn lead(&self, syncer: &mut dyn Syncer, ticket: u64) -> (Lead, Option<u64>) {
        let durable = *self.shared.durable.borrow();
        if durable >= ticket {
            return (Lead::Durable, None);
        }
        // Only what was completely written before the fsync starts is covered.
        let target = *self
            .shared
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if target <= durable {
            // A reader waiting for a commit still being written: nothing to sync yet.
            return (Lead::NotWritten, None);
        }
        match syncer.sync() {
            Ok(()) => (Lead::Synced, Some(target)),
            Err(e) => {
                // As in thread mode: nothing more is acknowledged; the others are woken
                // to try in turn.
                tracing::error!("fsync of the WAL failed: {e}; commits are not acknowledged");
                (Lead::Failed, None)
            }
        }
    }

    /// The newest ticket issued: a reader that waits for it sees only durable data.
    pub fn latest(&self) -> u64 {
        self.shared.issued.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(Arc<AtomicU64>);

    impl Syncer for Counting {
        fn sync(&mut self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        }
    }

    #[tokio::test]
    async fn tickets_become_durable_only_after_a_sync_that_follows_their_write() {
        let syncs = Arc::new(AtomicU64::new(0));
        let g = GroupCommit::start(Counting(syncs.clone()));
        let t1 = g.begin_commit();
        let t2 = g.begin_commit();
        assert_eq!(g.latest(), 2);
        // Nothing written yet: no sync may claim t1.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), g.wait(t1))
                .await
                .is_err()
        );
        g.written(t1);
        g.wait(t1).await;
        assert!(syncs.load(Ordering::SeqCst) >= 1);
        assert!(*g.durable.borrow() < t2, "t2 was never written");
        g.written(t2);
        g.wait(t2).await;
    }

    #[tokio::test]
    async fn many_writers_share_syncs() {
        let syncs = Arc::new(AtomicU64::new(0));
        let g = Arc::new(GroupCommit::start(Counting(syncs.clone())));
        let tickets: Vec<u64> = (0..100)
            .map(|_| {
                let t = g.begin_commit();
                g.written(t);
                t
            })
            .collect();
        for t in tickets {
            g.wait(t).await;
        }
        assert!(
            syncs.load(Ordering::SeqCst) < 100,
            "one sync covers many commits"
        );
    }

    /// `n` writers on their own threads, as mdbc-server's connections are, each making
    /// `commits` commits and waiting for each to be durable (with `readers`, also waiting
    /// as a reader every third commit, for a ticket perhaps not written yet). Fails if one
    /// is still waiting after a minute: a lost wake-up.
    fn writers(g: &Arc<GroupCommit>, n: usize, commits: usize, readers: bool) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for _ in 0..n {
            let (g, done) = (g.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                for i in 0..commits {
                    let t = g.begin_commit();
                    g.written(t);
                    if readers && i % 3 == 0 {
                        rt.block_on(g.wait(g.latest()));
                    }
                    rt.block_on(g.wait(t));
                    assert!(*g.durable.borrow() >= t);
                }
                let _ = done.send(());
            });
        }
        for _ in 0..n {
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("every writer finishes (none left waiting for a wake-up)");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_waiters_lead_in_turn_and_cover_each_other() {
        let syncs = Arc::new(AtomicU64::new(0));
        let g = Arc::new(GroupCommit::start_inline(Counting(syncs.clone())));
        let t1 = g.begin_commit();
        g.written(t1);
        g.wait(t1).await;
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "a lone waiter syncs once");
        writers(&g, 8, 20, false);
        let n = syncs.load(Ordering::SeqCst);
        assert!(n < 161, "waiters share syncs ({n} for 160 commits)");
    }

    #[tokio::test]
    async fn inline_reader_waits_for_a_commit_still_being_written() {
        let syncs = Arc::new(AtomicU64::new(0));
        let g = Arc::new(GroupCommit::start_inline(Counting(syncs.clone())));
        let t = g.begin_commit();
        let reader = tokio::spawn({
            let g = g.clone();
            async move { g.wait(g.latest()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(!reader.is_finished(), "nothing written: nothing is durable");
        assert_eq!(syncs.load(Ordering::SeqCst), 0, "no sync without a write");
        g.written(t);
        reader.await.expect("reader");
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
    }

    /// Lost wake-ups show up as a hang under many fast commits (a waiter that found the
    /// syncer taken just as its last leader finished once waited forever).
    #[test]
    fn inline_mode_never_strands_a_waiter() {
        struct Quick(Arc<AtomicU64>);
        impl Syncer for Quick {
            fn sync(&mut self) -> std::io::Result<()> {
                self.0.fetch_add(1, Ordering::SeqCst);
                std::thread::yield_now();
                Ok(())
            }
        }
        let g = Arc::new(GroupCommit::start_inline(Quick(Arc::new(AtomicU64::new(
            0,
        )))));
        writers(&g, 4, 3000, true);
    }

    /// A failed fsync acknowledges nothing; the waiter tries again and gets through once
    /// the disk recovers.
    #[tokio::test]
    async fn inline_fsync_failure_acknowledges_nothing_until_a_sync_succeeds() {
        struct Flaky(Arc<AtomicU64>);
        impl Syncer for Flaky {
            fn sync(&mut self) -> std::io::Result<()> {
                if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(std::io::Error::other("disk said no"));
                }
                Ok(())
            }
        }
        let attempts = Arc::new(AtomicU64::new(0));
        let g = Arc::new(GroupCommit::start_inline(Flaky(attempts.clone())));
        let t = g.begin_commit();
        g.written(t);
        let waiter = tokio::spawn({
            let g = g.clone();
            async move { g.wait(t).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "acknowledged after a failed fsync");
        assert_eq!(*g.durable.borrow(), 0);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("acknowledged once an fsync succeeds")
            .expect("waiter");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(*g.durable.borrow(), t);
    }
}
