//! Pipelined request/response over one authenticated TCP connection.
//!
//! A [`Channel`] sends requests tagged with a number and matches the tagged answers,
//! which may come back in any order; a task owns the socket, writing every request that
//! is waiting in one write. [`serve`] is the other end: it answers each request with a
//! handler, concurrently, and writes the answers that are ready together. Both ends prove
//! the cluster secret first (see [`crate::net`]); `magic` names the protocol, so a
//! connection to the wrong port fails the handshake instead of misreading frames.
//!
//! The `consensus-node` client ([`crate::client::Client`]) and MUSIC's node-to-node calls
//! both run on this.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::acceptor::Acceptor;
use crate::net::{handshake_initiator, handshake_responder, read_frame, HANDSHAKE_TIMEOUT};
use crate::types::NodeId;
use crate::wire;

struct Outgoing {
    tag: u64,
    request: Bytes,
    reply: oneshot::Sender<Bytes>,
}

fn lost() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection lost")
}

/// One pipelined connection (see the module docs). Cheap to clone; the connection
/// closes when every clone is gone or it breaks.
#[derive(Clone)]
pub struct Channel {
    tx: mpsc::UnboundedSender<Outgoing>,
    next_tag: Arc<AtomicU64>,
}

impl Channel {
    /// Connects to `addr`, proves the secret as `me`, and starts the connection's task.
    /// Returns the other end's id too.
    pub async fn connect(
        addr: &str,
        secret: &[u8],
        magic: &[u8; 12],
        me: u64,
    ) -> std::io::Result<(Channel, u64)> {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut buf = BytesMut::new();
        let them = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            handshake_initiator(&mut s, &mut buf, secret, magic, me),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))??;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_connection(s, buf, rx));
        Ok((
            Channel {
                tx,
                next_tag: Arc::new(AtomicU64::new(1)),
            },
            them,
        ))
    }

    /// Sends `request` and waits for its answer. Errors when the connection is gone
    /// (the request may or may not have been handled).
    pub async fn call(&self, request: Bytes) -> std::io::Result<Bytes> {
        let (tx, rx) = oneshot::channel();
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Outgoing {
                tag,
                request,
                reply: tx,
            })
            .map_err(|_| lost())?;
        rx.await.map_err(|_| lost())
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Owns one connection: writes queued requests (all that are waiting, in one write) and
/// hands each answer to the request with its tag. Ends, failing whatever waits, when the
/// connection breaks or every sender is gone.
async fn run_connection(
    s: TcpStream,
    mut rbuf: BytesMut,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let (mut rd, mut wr) = s.into_split();
    let mut out = BytesMut::new();
    let mut payload = BytesMut::new();
    let mut pending: HashMap<u64, oneshot::Sender<Bytes>> = HashMap::new();
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(first) = next else { return };
                out.clear();
                let mut next = Some(first);
                while let Some(o) = next {
                    payload.clear();
                    payload.put_u64(o.tag);
                    payload.put_slice(&o.request);
                    wire::put_frame(&mut out, &payload);
                    pending.insert(o.tag, o.reply);
                    next = if out.len() < 1 << 20 { rx.try_recv().ok() } else { None };
                }
                if pending.len() > 4096 {
                    // Requests whose caller gave up waiting.
                    pending.retain(|_, r| !r.is_closed());
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            frame = read_frame(&mut rd, &mut rbuf) => {
                let Ok(Some(mut p)) = frame else { return };
                if p.len() < 8 {
                    return;
                }
                let tag = p.get_u64();
                if let Some(r) = pending.remove(&tag) {
                    let _ = r.send(p);
                }
            }
        }
    }
}

/// Writes tagged answers as they come, all that are ready in one write, each as a frame
/// `[tag][encoded answer]`; ends when the socket breaks or every sender is gone.
pub(crate) async fn write_tagged<T>(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(u64, T)>,
    encode: impl Fn(&T, &mut BytesMut),
) {
    let mut out = BytesMut::new();
    let mut payload = BytesMut::new();
    while let Some(first) = rx.recv().await {
        out.clear();
        let mut next = Some(first);
        while let Some((tag, answer)) = next {
            payload.clear();
            payload.put_u64(tag);
            encode(&answer, &mut payload);
            wire::put_frame(&mut out, &payload);
            next = if out.len() < 1 << 20 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Serves connections on `listener` until `shutdown` turns true: after the handshake
/// (as `me`, protocol `magic`), each request is answered by `handler(peer, request)`,
/// concurrently; `allow(peer)` decides which authenticated peers may stay.
pub async fn serve<H, F, A>(
    listener: impl Into<Acceptor>,
    me: NodeId,
    secret: Arc<[u8]>,
    magic: &'static [u8; 12],
    allow: A,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(u64, Bytes) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Bytes> + Send + 'static,
    A: Fn(u64) -> bool + Clone + Send + Sync + 'static,
{
    let mut listener = listener.into();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Some(accepted) = accepted else { return };
        let Ok((sock, addr)) = accepted else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let (secret, handler, allow) = (secret.clone(), handler.clone(), allow.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(sock, addr, me, secret, magic, allow, handler, stop).await;
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<H, F, A>(
    mut s: TcpStream,
    addr: SocketAddr,
    me: NodeId,
    secret: Arc<[u8]>,
    magic: &'static [u8; 12],
    allow: A,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(u64, Bytes) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Bytes> + Send + 'static,
    A: Fn(u64) -> bool,
{
    let mut buf = BytesMut::new();
    let who = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake_responder(&mut s, &mut buf, &secret, magic, me),
    )
    .await;
    let peer = match who {
        Ok(Ok(p)) if allow(p) => p,
        Ok(Ok(p)) => {
            tracing::warn!(node = me, %addr, "refused peer {p}: not a member");
            return;
        }
        _ => {
            tracing::warn!(node = me, %addr, "refused an unauthenticated connection");
            return;
        }
    };
    let (mut rd, wr) = s.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<(u64, Bytes)>();
    let writer = tokio::spawn(write_tagged(wr, out_rx, |b: &Bytes, out: &mut BytesMut| {
        out.put_slice(b)
    }));
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, &mut buf) => f,
            _ = shutdown.changed() => break,
        };
        let mut payload = match frame {
            Ok(Some(p)) if p.len() >= 8 => p,
            Ok(Some(_)) => {
                tracing::warn!(node = me, peer, "a frame without a tag; closing");
                break;
            }
            _ => break,
        };
        let tag = payload.get_u64();
        let (handler, out) = (handler.clone(), out_tx.clone());
        tokio::spawn(async move {
            let answer = handler(peer, payload).await;
            let _ = out.send((tag, answer));
        });
    }
    writer.abort();
}
