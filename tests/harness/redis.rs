//! A real `redis-server` for tests: on a free loopback port, in a temporary folder, with no
//! persistence (`--save "" --appendonly no`), killed when the guard drops. It can be stopped
//! and started again on the same port, for tests of Redis faults (see `crate::net` for how
//! the port is chosen; a restart fails, saying so, should another process have taken the
//! port while Redis was down).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::net::{spawn_listening, wait_until_listening};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// How long redis-server may take to answer PING after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

pub struct TestRedis {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl TestRedis {
    /// Starts redis-server and waits until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        crate::init_logs();
        let dir = tempfile::tempdir().context("making a folder for redis-server")?;
        let (port, child) =
            spawn_listening("redis-server", START_LIMIT, |port| spawn(port, &dir)).await?;
        let redis = Self {
            port,
            dir,
            child: Some(child),
        };
        redis.wait_for_pong().await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `[redis]` config section for a relay.
    pub fn config_toml(&self) -> String {
        format!("[redis]\nurl = \"{}\"\n", self.url())
    }

    /// A connection for the test itself (to write job output, inspect streams).
    pub async fn connection(&self) -> anyhow::Result<::redis::aio::MultiplexedConnection> {
        let client = ::redis::Client::open(self.url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// Kills redis-server (as a crash would) and waits until it is gone.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing redis-server")?;
        }
        Ok(())
    }

    /// Starts redis-server again on the same port (empty: nothing was persisted).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut child = spawn(self.port, &self.dir)?;
        if let Some(status) = wait_until_listening(self.port, &mut child, START_LIMIT).await? {
            bail!(
                "redis-server could not listen on port {} again ({status}): another process took it while Redis was down",
                self.port
            );
        }
        self.child = Some(child);
        self.wait_for_pong().await
    }

    /// Waits until the server (which listens) answers PING.
    async fn wait_for_pong(&self) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            if ping(addr).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("redis-server on {addr} did not answer PING within {START_LIMIT:?}");
            }
            // Between accepting connections and answering, Redis loads; ask again shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// redis-server on `port`, keeping its files in `dir`.
fn spawn(port: u16, dir: &TempDir) -> anyhow::Result<Child> {
    Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        // Stream trimming with `MAXLEN ~` works in nodes of this many entries (tests/chat.rs
        // counts on it); pinned, in case a distribution changes the default.
        .args(["--stream-node-max-entries", "100"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {REDIS_SERVER}; is redis-server installed?"))
}

/// Whether Redis at `addr` answers `PING` with `+PONG`.
async fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut reply)).await,
        Ok(Ok(_)) if &reply == b"+PONG\r\n"
    )
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}
