//! Loopback ports and readiness.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, bail};

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections at `addr` (a service we just started),
/// or `child` exits, or `limit` passes.
pub async fn wait_for_listener(
    addr: SocketAddr,
    child: &mut tokio::process::Child,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the service exited with {status} before listening on {addr}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nothing listened on {addr} within {limit:?}");
        }
        // Connection attempts to a port not yet bound fail at once; space them out.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
