//! A TCP proxy (in front of the relay, or of Redis) that can cut every open connection, as
//! a network blip would, while still accepting new ones; or cut one connection just after
//! a chosen request went through and before its reply comes back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
    /// Bytes that, once a client sends them, doom its connection at the next reply.
    reply_cut: Arc<Mutex<Option<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(0u64);
        let cuts = cut.clone();
        let reply_cut = Arc::new(Mutex::new(None::<Vec<u8>>));
        let armed = reply_cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut_rx = cuts.subscribe();
                let armed = armed.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = relay_until_doomed(client, server, armed) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            cut,
            reply_cut,
            task,
        })
    }

    /// The next connection whose client sends `needle` is cut as soon as the server
    /// answers: the request ran, and the client never learns it.
    pub fn cut_after_request(&self, needle: &[u8]) {
        *self.reply_cut.lock().unwrap_or_else(|e| e.into_inner()) = Some(needle.to_vec());
    }

    /// Drops every connection open now.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// Copies both ways; ends (dropping both sockets) when the server answers on a connection
/// whose client sent the armed needle.
async fn relay_until_doomed(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (doomed_tx, doomed_rx) = watch::channel(false);
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            {
                let mut needle = armed.lock().unwrap_or_else(|e| e.into_inner());
                if needle
                    .as_ref()
                    .is_some_and(|needle| buf[..n].windows(needle.len()).any(|w| w == needle))
                {
                    *needle = None;
                    let _ = doomed_tx.send(true);
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *doomed_rx.borrow() {
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
