//! Accepted connections: a peer replica (authenticated, then its frames fed to the loop)
//! or a client.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::input::{Input, Reply};
use crate::net::{
    bad, handshake_responder, read_frame, CLIENT_MAGIC, HANDSHAKE_TIMEOUT, PEER_MAGIC,
};
use crate::types::NodeId;
use crate::wire::{self, ClientResponse};

pub(super) async fn serve_peer(
    mut s: TcpStream,
    addr: SocketAddr,
    me: NodeId,
    allowed: Arc<RwLock<HashSet<NodeId>>>,
    secret: Arc<[u8]>,
    tx: mpsc::Sender<Input>,
) {
    let mut buf = BytesMut::new();
    let who = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake_responder(&mut s, &mut buf, &secret, PEER_MAGIC, me),
    )
    .await
    .map_err(|_| bad("handshake timed out"))
    .and_then(|r| r);
    let known = |p: NodeId| allowed.read().map(|a| a.contains(&p)).unwrap_or(false);
    let peer = match who {
        Ok(p) if known(p) => p,
        Ok(p) => {
            tracing::warn!(node = me, %addr, "refused peer claiming id {p}: not a member");
            return;
        }
        Err(e) => {
            tracing::warn!(node = me, %addr, "refused unauthenticated peer: {e}");
            return;
        }
    };
    loop {
        match read_frame(&mut s, &mut buf).await {
            Ok(Some(payload)) => match wire::decode_message(payload) {
                Ok(m) => {
                    if tx.send(Input::Peer(peer, m)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(node = me, peer, "dropped a malformed message: {e}"),
            },
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(node = me, peer, "closing connection: {e}");
                return;
            }
        }
    }
}

pub(super) async fn serve_client(
    mut s: TcpStream,
    addr: SocketAddr,
    me: NodeId,
    secret: Arc<[u8]>,
    tx: mpsc::Sender<Input>,
) {
    let mut buf = BytesMut::new();
    let auth = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake_responder(&mut s, &mut buf, &secret, CLIENT_MAGIC, me),
    )
    .await;
    if !matches!(auth, Ok(Ok(_))) {
        tracing::warn!(node = me, %addr, "refused unauthenticated client");
        return;
    }
    // Requests are pipelined and answered as they complete (each tagged by the client),
    // answers that are ready together leaving in one write.
    let (mut rd, wr) = s.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<(u64, ClientResponse)>();
    let writer = tokio::spawn(crate::rpc::write_tagged(wr, out_rx, wire::encode_response));
    loop {
        let mut payload = match read_frame(&mut rd, &mut buf).await {
            Ok(Some(p)) if p.len() >= 8 => p,
            Ok(Some(_)) => {
                tracing::warn!(node = me, %addr, "client frame without a tag; closing");
                break;
            }
            _ => break,
        };
        let tag = payload.get_u64();
        let reply = Reply::Remote {
            tag,
            tx: out_tx.clone(),
        };
        match wire::decode_request(payload) {
            Ok(req) => {
                if tx.send(Input::Client(req, reply)).await.is_err() {
                    break;
                }
            }
            Err(e) => reply.send(ClientResponse::Error(format!("malformed request: {e}"))),
        }
    }
    writer.abort();
}
