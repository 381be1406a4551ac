//! The TCP transport under [`crate::node`]: frames, authentication, outbound peer links.
//!
//! - **Frames** are `[len][crc32][payload]` ([`crate::wire`]); a damaged frame is dropped
//!   (Paxos tolerates loss), an impossible length closes the connection.
//! - **Authentication**: both ends of every connection prove they hold the cluster secret
//!   (HMAC-SHA256 over both sides' fresh nonces and ids); a peer that cannot is refused
//!   and logged.
//! - **Peer links**: each replica dials each peer and keeps that connection up, retrying
//!   with exponential back-off and jitter; messages for a peer that is down are dropped
//!   (a bounded queue), as the protocol expects of a network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ring::hmac;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::types::NodeId;
use crate::wire::{self, Frame};

/// Names the replica-to-replica protocol in its handshake.
pub const PEER_MAGIC: &[u8; 12] = b"MDBC-PAXOS/1";
/// Clients speak a pipelined protocol: every frame starts with the client's tag.
pub(crate) const CLIENT_MAGIC: &[u8; 12] = b"MDBC-CLIENT2";
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Logs to stderr through `tracing`, filtered by `MDBC_LOG` (any `tracing` filter;
/// `info` when unset) — the same for every mdbc binary.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MDBC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal; log files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Parses `ID=HOST:PORT` (a replica and one of its addresses), as the command lines take
/// them.
pub fn parse_node_addr(s: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
    let id: NodeId = id.parse().map_err(|_| format!("bad node id {id:?}"))?;
    if id == 0 {
        return Err("node id 0 is reserved".into());
    }
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    Ok((id, addr))
}

/// The cluster secret, from `file` or else the `MDBC_CLUSTER_SECRET` environment
/// variable, without surrounding whitespace; at least 16 bytes.
pub fn read_secret(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let secret = match file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => std::env::var("MDBC_CLUSTER_SECRET")
            .context("set MDBC_CLUSTER_SECRET or --secret-file: nodes authenticate each other")?
            .into_bytes(),
    };
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < 16 {
        anyhow::bail!("the cluster secret must be at least 16 bytes");
    }
    Ok(secret)
}

// ---- framing over a socket ----

pub(crate) async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Bytes>> {
    loop {
        match wire::take_frame(buf) {
            Ok(Frame::Good(b)) => return Ok(Some(b)),
            Ok(Frame::Damaged) => {
                tracing::warn!("dropped a frame with a bad checksum");
                continue;
            }
            Ok(Frame::Incomplete) => {}
            Err(e) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
        if s.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

pub(crate) async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    wire::put_frame(&mut out, payload);
    s.write_all(&out).await
}

// ---- authentication ----

/// What each side signs: its role, both nonces and both ids, so a proof cannot be replayed
/// on another connection or reflected back with the roles swapped.
fn mac_input(role: &[u8], a: &[u8], b: &[u8], x: u64, y: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + a.len() + b.len() + 16);
    m.extend_from_slice(role);
    m.extend_from_slice(a);
    m.extend_from_slice(b);
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&y.to_be_bytes());
    m
}

pub(crate) fn nonce() -> std::io::Result<[u8; 16]> {
    let mut n = [0u8; 16];
    // From the OS generator; without one there is no handshake.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
        .map_err(|_| std::io::Error::other("no randomness for a handshake nonce"))?;
    Ok(n)
}

pub(crate) fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg.into())
}

/// Proves the secret to the other end and checks its proof; returns the other end's id.
pub async fn handshake_initiator(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    secret: &[u8],
    magic: &[u8; 12],
    my_id: u64,
) -> std::io::Result<u64> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let ni = nonce()?;
    let mut hello = Vec::with_capacity(36);
    hello.extend_from_slice(magic);
    hello.extend_from_slice(&my_id.to_be_bytes());
    hello.extend_from_slice(&ni);
    write_frame(s, &hello).await?;
    let ch = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    if ch.len() != 8 + 16 + 32 {
        return Err(bad("malformed challenge"));
    }
    let their_id = u64::from_be_bytes(ch[0..8].try_into().map_err(|_| bad("id"))?);
    let nr = &ch[8..24];
    let expected = mac_input(b"resp", &ni, nr, their_id, my_id);
    hmac::verify(&key, &expected, &ch[24..56])
        .map_err(|_| bad("the other end does not hold the cluster secret"))?;
    let proof = hmac::sign(&key, &mac_input(b"init", &ni, nr, my_id, their_id));
    write_frame(s, proof.as_ref()).await?;
    Ok(their_id)
}

/// Checks the other end's proof of the secret (and proves it back); returns its id.
pub async fn handshake_responder(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    secret: &[u8],
    magic: &[u8; 12],
    my_id: u64,
) -> std::io::Result<u64> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let hello = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    if hello.len() != 12 + 8 + 16 || &hello[..12] != magic {
        return Err(bad("not a handshake of this protocol"));
    }
    let their_id = u64::from_be_bytes(hello[12..20].try_into().map_err(|_| bad("id"))?);
    let ni = &hello[20..36];
    let nr = nonce()?;
    let tag = hmac::sign(&key, &mac_input(b"resp", ni, &nr, my_id, their_id));
    let mut ch = Vec::with_capacity(56);
    ch.extend_from_slice(&my_id.to_be_bytes());
    ch.extend_from_slice(&nr);
    ch.extend_from_slice(tag.as_ref());
    write_frame(s, &ch).await?;
    let proof = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    let expected = mac_input(b"init", ni, &nr, their_id, my_id);
    hmac::verify(&key, &expected, &proof).map_err(|_| bad("wrong cluster secret"))?;
    Ok(their_id)
}

pub(crate) async fn dial_peer(
    me: NodeId,
    peer: NodeId,
    addr: String,
    secret: Arc<[u8]>,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let attempt = async {
            let mut s = TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            let mut buf = BytesMut::new();
            let their = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                handshake_initiator(&mut s, &mut buf, &secret, PEER_MAGIC, me),
            )
            .await
            .map_err(|_| bad("handshake timed out"))??;
            if their != peer {
                return Err(bad(format!("{addr} is node {their}, expected {peer}")));
            }
            Ok::<TcpStream, std::io::Error>(s)
        };
        match attempt.await {
            Ok(mut s) => {
                tracing::debug!(node = me, peer, "connected");
                backoff = Duration::from_millis(10);
                // Drop what queued while disconnected: it is stale, and Paxos resends.
                while rx.try_recv().is_ok() {}
                let mut out = BytesMut::new();
                loop {
                    let Some(first) = rx.recv().await else { return };
                    out.clear();
                    wire::put_frame(&mut out, &first);
                    while let Ok(more) = rx.try_recv() {
                        wire::put_frame(&mut out, &more);
                        if out.len() > 1 << 20 {
                            break;
                        }
                    }
                    if let Err(e) = s.write_all(&out).await {
                        tracing::debug!(node = me, peer, "connection lost: {e}");
                        break;
                    }
                }
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    tracing::warn!(node = me, peer, %addr, "peer refused: {e}");
                }
                let jitter =
                    Duration::from_micros(u64::from(nonce().map(|n| n[0]).unwrap_or(0)) * 40);
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// 64 random bits from the operating system (client and session identities; never the
/// Paxos core's, whose randomness is its seed).
pub(crate) fn random_u64() -> u64 {
    let mut n = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).is_ok() {
        return u64::from_be_bytes(n);
    }
    // No OS generator: the clock still keeps concurrent clients apart in practice.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}
