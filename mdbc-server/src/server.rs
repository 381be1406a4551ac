//! Accepting connections and shutting down cleanly.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Tls};
use crate::replication::Replication;
use crate::store::Store;
use crate::wire::Handlers;

fn load_tls(tls: &Tls) -> anyhow::Result<(TlsAcceptor, Vec<u8>)> {
    let cert_pem = std::fs::read(&tls.cert)
        .with_context(|| format!("reading TLS certificate {}", tls.cert.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", tls.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", tls.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading TLS key {}", tls.key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}

/// A FATAL ErrorResponse written straight to a socket we will not serve.
fn too_many_clients() -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, val) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "53300"),
        (b'M', "sorry, too many clients already"),
    ] {
        body.push(tag);
        body.extend_from_slice(val.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// Serves clients on `listener` (sessions of `repl`'s cluster when the site is in one)
/// until `shutdown` completes, then rolls back every open
/// transaction and closes every session before returning.
///
/// Each connection gets its own OS thread with a single-threaded runtime, as PostgreSQL gives
/// each its own process: SQLite calls run inline on that thread, so a long statement delays
/// only its own client, never the others nor the CancelRequest that interrupts it, and
/// there is no hand-off between threads on the per-query path.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    store: Arc<Store>,
    repl: Option<Arc<Replication>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tls, cert_pem) = match &cfg.tls {
        Some(t) => {
            let (a, pem) = load_tls(t)?;
            (Some(a), Some(pem))
        }
        None => (None, None),
    };
    let handlers = Handlers::new(store.clone(), repl, &cfg, cert_pem.as_deref())?;
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (mut socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "refusing connection: max_connections reached");
                    let _ = socket.write_all(&too_many_clients()).await;
                    continue;
                };
                let socket = match socket.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, "cannot hand over connection: {e}");
                        continue;
                    }
                };
                let handlers = handlers.clone();
                let tls = tls.clone();
                let mut stop = stop_rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("conn-{peer}"))
                    .spawn(move || {
                        let rt = match tokio::runtime::Builder::new_current_thread()
                            .enable_io()
                            .enable_time()
                            .build() {
                            Ok(rt) => rt,
                            Err(e) => {
                                tracing::error!(%peer, "cannot start connection runtime: {e}");
                                return;
                            }
                        };
                        rt.block_on(async move {
                            let socket = match tokio::net::TcpStream::from_std(socket) {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!(%peer, "{e}");
                                    return;
                                }
                            };
                            tokio::select! {
                                r = pgwire::tokio::process_socket(socket, tls, handlers) => {
                                    if let Err(e) = r {
                                        tracing::debug!(%peer, "connection ended: {e}");
                                    }
                                }
                                // Dropping the connection drops its session: rollback, close.
                                _ = stop.wait_for(|s| *s) => {}
                            }
                        });
                        drop(permit);
                    });
                if let Err(e) = spawned {
                    tracing::error!(%peer, "cannot start connection thread: {e}");
                }
            }
        }
    }
    let open = cfg.max_connections - slots.available_permits();
    tracing::info!(open, "shutting down: rolling back open transactions");
    let _ = stop_tx.send(true);
    // A statement in progress ends at its next interrupt check.
    store.interrupt_all();
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(std::time::Duration::from_secs(30), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 30 s");
    }
    if let Ok(conn) = rusqlite::Connection::open(store.path()) {
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    tracing::info!("stopped");
    Ok(())
}
