//! A log that only the holder of its MUSIC lock writes: the schema log and each strong
//! domain's log. Entry `seq` lives at `domain/<name>/<seq>` and the head record at
//! `domain/<name>/head` says how far the log is committed; every read and write is a
//! quorum operation fenced by the lock (see music-core's `critical_put`).

use bytes::Bytes;
use music_core::service::MusicError;
use sql_capture::changes::Entry;

use super::chunks;
use super::error::ReplError;
use super::keys::{decode_head, domain_head, domain_key, DomainLock, SCHEMA_DOMAIN};

/// Why appending failed, and whether the head record (the commit point) had been sent.
pub(crate) struct AppendError {
    pub(crate) err: MusicError,
    pub(crate) head_sent: bool,
}

impl AppendError {
    /// The error a client gets. The head record reaching fewer than a quorum does not
    /// mean it reached none (see [`ReplError::OutcomeUnknown`]).
    pub(crate) fn into_repl(self, what: &str) -> ReplError {
        match self.err {
            MusicError::Store(music_core::store::StoreError::NoQuorum { got, need })
                if self.head_sent =>
            {
                ReplError::OutcomeUnknown {
                    what: what.into(),
                    got,
                    need,
                }
            }
            other => ReplError::music(what, other),
        }
    }
}

/// Appends a log entry at position `seq` of `domain`'s log under a lock: a quorum holds
/// it and the log's head record when this returns. The entry and the head go in one
/// round, stored together by each replica (a replica with the head has the entry); the
/// parts of a large entry (see chunks.rs) are written before them.
pub(crate) async fn append_locked(
    guard: &DomainLock,
    domain: &str,
    seq: u64,
    entry: &[u8],
) -> Result<(), AppendError> {
    let key = domain_key(domain, seq);
    let (parts, value) = chunks::split(entry);
    for (i, p) in parts.into_iter().enumerate() {
        guard
            .put(&chunks::part_key(&key, i as u32), p)
            .await
            .map_err(|err| AppendError {
                err,
                head_sent: false,
            })?;
    }
    guard
        .put_many(vec![
            (key, value),
            (
                domain_head(domain),
                Bytes::copy_from_slice(&seq.to_be_bytes()),
            ),
        ])
        .await
        .map_err(|err| AppendError {
            err,
            head_sent: true,
        })
}

/// On taking a domain: the head a quorum read finds, with its entry, written back to a
/// quorum before this owner builds on it. An owner that died while its last commit reached
/// only some replicas left a head that one quorum read sees and the next may not; once
/// later entries follow it, it must not be lost (nor its position given to other rows).
/// One more quorum round per acquisition, none per commit.
pub(crate) async fn settle_tail(
    guard: &DomainLock,
    domain: &str,
    what: &str,
) -> Result<u64, ReplError> {
    let head = decode_head(
        guard
            .get(&domain_head(domain))
            .await
            .map_err(|e| ReplError::music(what, e))?
            .map(|v| v.value),
    )?;
    if head == 0 {
        return Ok(0);
    }
    // Gone when every site had applied it (the log was truncated): nothing to keep.
    if let Some(entry) = get_locked(guard, &domain_key(domain, head)).await? {
        append_locked(guard, domain, head, &entry)
            .await
            .map_err(|e| ReplError::music(what, e.err))?;
    }
    Ok(head)
}

/// Reads the log entry at `key` under a lock (quorum reads); `None` when there is none.
pub(crate) async fn get_locked(
    guard: &DomainLock,
    key: &str,
) -> Result<Option<Vec<u8>>, ReplError> {
    let what = |e| ReplError::music("cannot read a log", e);
    let Some(v) = guard.get(key).await.map_err(what)? else {
        return Ok(None);
    };
    match chunks::parse(&v.value).map_err(|e| ReplError::Corrupt(format!("{key}: {e}")))? {
        chunks::Stored::Whole(b) => Ok(Some(b.to_vec())),
        chunks::Stored::Split(m) => {
            let mut parts = Vec::with_capacity(m.parts as usize);
            for i in 0..m.parts {
                let k = chunks::part_key(key, i);
                let p = guard.get(&k).await.map_err(what)?.ok_or_else(|| {
                    ReplError::Corrupt(format!("{k} is missing although its entry is written"))
                })?;
                parts.push(p.value);
            }
            chunks::join(&m, &parts)
                .map(Some)
                .map_err(|e| ReplError::Corrupt(format!("{key}: {e}")))
        }
    }
}

/// Entry `seq` of `domain`'s log, read under its lock; an error when it is missing
/// although the head is past it.
pub(crate) async fn read_entry(
    guard: &DomainLock,
    domain: &str,
    seq: u64,
) -> Result<Entry, ReplError> {
    let v = get_locked(guard, &domain_key(domain, seq))
        .await?
        .ok_or_else(|| {
            ReplError::Corrupt(if domain == SCHEMA_DOMAIN {
                format!("schema log entry {seq} is missing although the head is past it")
            } else {
                format!("entry {seq} of domain {domain} is missing although its head is past it")
            })
        })?;
    Entry::decode(&v).map_err(|e| ReplError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::errors::SqlError;
    use crate::replication::keys::domain_lock_key;
    use crate::replication::testing::music_nodes;
    use music_core::store::StoreError;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_owner_puts_a_head_it_found_on_a_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, _stop) = music_nodes(dir.path()).await;
        let lock = |i: usize| {
            let music = nodes[i].music.clone();
            async move {
                music
                    .lock(&[domain_lock_key("d")], "x", Duration::from_secs(20))
                    .await
                    .unwrap()
            }
        };
        let first = lock(0).await;
        append_locked(&first, "d", 1, b"one").await.ok().unwrap();
        // The owner's last commit reaches only its own replica, and it goes away.
        nodes[0].music.store().cut_off(&[2, 3]);
        let e = append_locked(&first, "d", 2, b"two").await.err().unwrap();
        assert!(e.head_sent);
        first.release().await.unwrap();
        nodes[0].music.store().cut_off(&[]);
        // The next owner's quorum read reaches the first replica (not the third).
        nodes[1].music.store().cut_off(&[3]);
        let next = lock(1).await;
        assert_eq!(settle_tail(&next, "d", "test").await.unwrap(), 2);
        // Entry 2 now stands on a quorum: the first replica alone no longer holds it.
        let local = nodes[1].music.store().local();
        let held = local.get(&domain_key("d", 2)).unwrap().map(|v| v.value);
        assert!(held.is_some(), "the head found was not written back");
        assert_eq!(
            local
                .get(&domain_head("d"))
                .unwrap()
                .map(|v| decode_head(Some(v.value)).unwrap()),
            Some(2)
        );
    }

    #[test]
    fn a_commit_point_short_of_a_quorum_has_an_unknown_outcome() {
        let no_quorum = || MusicError::Store(StoreError::NoQuorum { got: 1, need: 2 });
        let sent = SqlError::from(
            AppendError {
                err: no_quorum(),
                head_sent: true,
            }
            .into_repl("cannot write"),
        );
        let (code, msg) = sent.code_and_message();
        assert_eq!(code, "08007", "{msg}");
        assert!(msg.contains("outcome is unknown"), "{msg}");
        // Before the head record was sent nothing can take effect.
        let (code, msg) = SqlError::from(
            AppendError {
                err: no_quorum(),
                head_sent: false,
            }
            .into_repl("cannot write"),
        )
        .code_and_message();
        assert_eq!(code, "57P03", "{msg}");
        assert!(msg.contains("nothing was committed"), "{msg}");
    }
}
