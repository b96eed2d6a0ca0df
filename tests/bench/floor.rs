//! The memory floor of an idle WebSocket: a bare tokio + tokio-tungstenite server
//! (multi-threaded runtime like the relay's) that accepts connections and reads them until
//! they close — with the library's default buffers (what warp's own upgrade gives), or with
//! the small read buffer the relay now uses (what an idle WebSocket needs at the least). It
//! runs as this same binary with `--floor-server`, in its own process, so its resident memory
//! is measured exactly as the relay's is.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procfs;

/// The hidden command-line flag that makes this binary the floor server.
pub const FLAG: &str = "--floor-server";

/// The flag that sets the floor server's read buffer (bytes) instead of the library's.
pub const READ_BUFFER_FLAG: &str = "--floor-read-buffer";

/// Serves until killed; prints the port it listens on as the first line of stdout.
/// `read_buffer`: tungstenite's `read_buffer_size`, when not its default (128 KiB).
pub async fn serve(read_buffer: Option<usize>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    let config = read_buffer.map(|n| WebSocketConfig::default().read_buffer_size(n));
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, config).await else {
                return;
            };
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

/// A running floor server; killed when dropped.
pub struct FloorServer {
    _child: Child,
    pid: u32,
    pub addr: SocketAddr,
}

impl FloorServer {
    pub async fn start(read_buffer: Option<usize>) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(FLAG);
        if let Some(bytes) = read_buffer {
            command.arg(READ_BUFFER_FLAG).arg(bytes.to_string());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the floor server")?;
        let pid = child.id().context("the floor server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let port: u16 = BufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .context("the floor server printed no port")?
            .parse()?;
        Ok(Self {
            _child: child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid)
    }
}
