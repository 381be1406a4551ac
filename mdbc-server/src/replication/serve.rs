//! Answering the calls other sites make of this one (see [`super::calls`]): only members
//! may ask, except to join or to remove a site, which the cluster secret alone admits.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::calls;
use super::cluster::Replication;

impl Replication {
    /// Answers another site's call (see [`calls`]).
    pub(super) async fn answer(&self, peer: u64, payload: &[u8]) -> Result<Bytes, String> {
        let call: calls::Call = calls::decode(payload)?;
        tracing::trace!(peer, ?call, "site call");
        // Anyone proving the cluster secret may ask to join or remove a site (the secret
        // is what admits a site); everything else (a snapshot is the whole database) is
        // for members only.
        if !matches!(call, calls::Call::Join { .. } | calls::Call::Remove { .. })
            && !self.is_member(peer).await
        {
            return Err(format!("node {peer} is not a member of the cluster"));
        }
        let answer = match call {
            calls::Call::Head => {
                calls::Answer::Head(self.next_seq.load(Ordering::SeqCst).saturating_sub(1))
            }
            calls::Call::Applied => calls::Answer::Applied(self.durable_positions().await?),
            calls::Call::Join { site, addr } => self.answer_join(peer, site, addr).await?,
            calls::Call::Remove { site } => self.answer_remove(site).await?,
            other => self.answer_snapshot(other).await?,
        };
        Ok(calls::encode(&answer))
    }

    /// Whether `id` is another site of the cluster: one this site knows, or one the
    /// consensus membership has taken in and this site not yet.
    async fn is_member(&self, id: u64) -> bool {
        self.peers().iter().any(|p| p.id == id)
            || self.music.membership().await.is_ok_and(|m| m.contains(id))
    }
}
