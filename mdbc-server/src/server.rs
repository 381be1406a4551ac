//! Accepting connections and shutting down cleanly.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Tls};
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

/// Serves clients on `listener` until `shutdown` completes, then rolls back every open
/// transaction and closes every session before returning.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    store: Arc<Store>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tls, cert_pem) = match &cfg.tls {
        Some(t) => {
            let (a, pem) = load_tls(t)?;
            (Some(a), Some(pem))
        }
        None => (None, None),
    };
    let handlers = Handlers::new(store.clone(), &cfg, cert_pem.as_deref())?;
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
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
                let handlers = handlers.clone();
                let tls = tls.clone();
                tasks.spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(permit);
                });
            }
        }
    }
    tracing::info!(
        open = tasks.len(),
        "shutting down: rolling back open transactions"
    );
    // Dropping a connection's task drops its session, which rolls back and closes SQLite.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Ok(conn) = rusqlite::Connection::open(store.path()) {
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    tracing::info!("stopped");
    Ok(())
}
