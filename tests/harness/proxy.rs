//! A TCP proxy in front of the relay that can cut every open connection, as a network
//! blip would, while still accepting new ones.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(0u64);
        let cuts = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut_rx = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Ok(Self { addr, cut, task })
    }

    /// Drops every connection open now.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
