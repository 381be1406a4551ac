//! Site-to-site calls: requests one site makes of another over the cluster port (MUSIC's
//! application requests, so they carry the cluster secret's authentication). Postcard
//! encoded; a call this version does not know is answered with an error, never a panic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cluster::Replication;

/// A question to another site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// The last position of the site's own log that it committed (bounded reads).
    Head,
    /// Make a consistent copy of the site's database for a new site to start from.
    SnapshotStart,
    /// Up to [`CHUNK`] bytes of snapshot `id` from `offset`.
    SnapshotChunk {
        /// The snapshot.
        id: u64,
        /// Where to read.
        offset: u64,
    },
    /// Snapshot `id` is no longer needed.
    SnapshotDone {
        /// The snapshot.
        id: u64,
    },
    /// How far the site has applied each log (other sites' and strong domains'),
    /// counting only what is on its disk: entries every site holds are dropped.
    Applied,
    /// Remove site `site` from the cluster for good (an operator's `mdbc-server
    /// remove-site`; like `Join`, anyone proving the cluster secret may ask).
    Remove {
        /// Its name.
        site: String,
    },
    /// A site not yet in the cluster asks to join it.
    Join {
        /// Its name.
        site: String,
        /// Its cluster address (consensus and node RPC).
        addr: String,
    },
}

/// The most bytes of a snapshot one call carries.
pub const CHUNK: usize = 1 << 20;

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// See [`Call::Head`].
    Head(u64),
    /// A snapshot made: its id, its size in bytes, and the schema-log position it is at
    /// (0: the site has no tables yet, nothing to start from).
    Snapshot {
        /// The snapshot.
        id: u64,
        /// Its size.
        size: u64,
        /// Schema-log position.
        schema_pos: u64,
    },
    /// Bytes of a snapshot.
    Chunk(Vec<u8>),
    /// Done.
    Done,
    /// See [`Call::Applied`]: (log, position) pairs; a log is `site:<name>` or
    /// `domain:<name>`, and one missing has nothing applied.
    Applied(Vec<(String, u64)>),
    /// See [`Call::Remove`]: the site is no longer a member.
    Removed,
    /// See [`Call::Join`]: the site is a member; `slot` is its serial stripe when it
    /// joined a running cluster (`None`: it was configured from the start).
    Joined {
        /// Serial stripe slot.
        slot: Option<i64>,
    },
}

/// Connects to site `site` at `addr` for calls, as site id `me`, before this process runs
/// a node of its own (a new site joining or fetching its snapshot); gives up after 5 s.
pub async fn connect(
    addr: &str,
    secret: &[u8],
    me: u64,
    site: &str,
) -> Result<music_core::node::AppChannel, String> {
    let expect = super::keys::site_id(site);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        music_core::node::AppChannel::connect(addr, secret, me, expect),
    )
    .await
    .map_err(|_| format!("{addr} did not answer within 5 s"))?
}

/// Encodes a call or an answer.
pub fn encode<T: Serialize>(v: &T) -> bytes::Bytes {
    music_core::codec::encode(v)
}

/// Decodes a call or an answer; garbage is an error naming what is wrong.
pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    music_core::codec::decode(b).map_err(|e| format!("malformed site call: {e}"))
}

impl Replication {
    /// Makes `call` of each of `sites` at once; their answers (or why not), by site.
    pub(super) async fn ask_each(
        &self,
        sites: &[u64],
        call: &Call,
        timeout: Duration,
    ) -> Vec<(u64, Result<Answer, String>)> {
        let payload = encode(call);
        let asks = sites.iter().map(|&id| {
            let payload = payload.clone();
            async move {
                let r = self
                    .music
                    .store()
                    .call_app(id, payload, timeout)
                    .await
                    .and_then(|b| decode::<Answer>(&b));
                (id, r)
            }
        });
        futures::future::join_all(asks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_and_garbage_is_an_error() {
        let b = encode(&Call::Head);
        assert_eq!(decode::<Call>(&b).unwrap(), Call::Head);
        let a = encode(&Answer::Head(42));
        assert_eq!(decode::<Answer>(&a).unwrap(), Answer::Head(42));
        let c = Call::SnapshotChunk {
            id: 9,
            offset: 1 << 40,
        };
        assert_eq!(decode::<Call>(&encode(&c)).unwrap(), c);
        let a = Answer::Chunk(vec![1, 2, 3]);
        assert_eq!(decode::<Answer>(&encode(&a)).unwrap(), a);
        assert!(decode::<Call>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Answer>(&[]).is_err());
    }
}
