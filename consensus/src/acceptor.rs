//! Where inbound connections come from: a listener of their own, or a share of one port
//! that several protocols use ([`demux`]).
//!
//! A site exposes one cluster address; consensus peers and MUSIC node calls both arrive
//! there. Every protocol here opens with a handshake frame whose payload starts with the
//! protocol's 12-byte magic, so the port can route a connection by peeking at its first
//! bytes, before anything is consumed, and hand it to the right server untouched.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::net::HANDSHAKE_TIMEOUT;

/// Where [`demux`] hands the connections of one protocol.
pub type Route = mpsc::Sender<(TcpStream, SocketAddr)>;

/// A source of inbound connections.
pub enum Acceptor {
    /// A listener of its own.
    Listener(TcpListener),
    /// Connections routed here by [`demux`].
    Routed(mpsc::Receiver<(TcpStream, SocketAddr)>),
}

impl From<TcpListener> for Acceptor {
    fn from(l: TcpListener) -> Self {
        Acceptor::Listener(l)
    }
}

impl Acceptor {
    /// The next connection; `None` once a routed source has closed.
    pub async fn accept(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Acceptor::Listener(l) => Some(l.accept().await),
            Acceptor::Routed(rx) => rx.recv().await.map(Ok),
        }
    }
}

// Frame header (length, checksum) before the handshake payload's magic.
const MAGIC_AT: usize = 8;
const PEEK: usize = MAGIC_AT + 12;

/// Accepts on `listener` until `shutdown` turns true and hands each connection to the
/// route whose magic its first frame carries; a connection that names none (or says
/// nothing within the handshake timeout) is closed and logged.
pub async fn demux(
    listener: TcpListener,
    routes: Vec<([u8; 12], Route)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let routes = std::sync::Arc::new(routes);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((sock, addr)) = accepted else {
            continue;
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, peek_magic(&sock)).await {
                Ok(Ok(magic)) => match routes.iter().find(|(m, _)| *m == magic) {
                    Some((_, tx)) => {
                        let _ = tx.send((sock, addr)).await;
                    }
                    None => tracing::warn!(%addr, "refused a connection of an unknown protocol"),
                },
                Ok(Err(e)) => tracing::debug!(%addr, "connection closed before its handshake: {e}"),
                Err(_) => tracing::warn!(%addr, "refused a connection that sent no handshake"),
            }
        });
    }
}

async fn peek_magic(sock: &TcpStream) -> std::io::Result<[u8; 12]> {
    let mut buf = [0u8; PEEK];
    let mut wait = Duration::from_micros(200);
    loop {
        sock.readable().await?;
        let n = sock.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if n >= PEEK {
            let mut magic = [0u8; 12];
            magic.copy_from_slice(&buf[MAGIC_AT..PEEK]);
            return Ok(magic);
        }
        // Part of the hello arrived; peeking again at once would spin on the same bytes.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(50));
    }
}
