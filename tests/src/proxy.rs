//! A fault-injecting TCP proxy: forwards connections to a target until told to cut them,
//! then drops every open connection and refuses new ones until healed. Sites of a test
//! cluster reach each other through one proxy per direction, so a test can partition any
//! set of links without root or kernel help.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One direction of one link.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding to `target` from a fresh loopback port.
    pub fn start(target: SocketAddr) -> Result<Proxy> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let (stop, stopped) = watch::channel(false);
        let cut2 = cut.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{addr}"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(serve(std_listener, target, cut2, stopped));
            })
            .context("starting a proxy thread")?;
        Ok(Proxy {
            addr,
            cut,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Drops every connection through this proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    l: std::net::TcpListener,
    target: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(listener) = TcpListener::from_std(l) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((inbound, _)) = accepted else { continue };
        if *cut.borrow() {
            drop(inbound);
            continue;
        }
        let mut cut_rx = cut.subscribe();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (mut ir, mut iw) = inbound.into_split();
            let (mut or, mut ow) = outbound.into_split();
            tokio::select! {
                _ = tokio::io::copy(&mut ir, &mut ow) => {}
                _ = tokio::io::copy(&mut or, &mut iw) => {}
                _ = cut_rx.wait_for(|c| *c) => {}
                _ = stop.changed() => {}
            }
        });
    }
}
