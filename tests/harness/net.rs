//! Loopback ports for services that cannot report a port of their own choosing (sshd,
//! redis-server), and the wait until such a service listens.
//!
//! Such a service is given a port that is free now and binds it a little later, so another
//! process may take the port in between. [`spawn_listening`] makes that harmless: it waits
//! until the listening socket on the port belongs to the process it started (read from
//! `/proc`, so another service's listener on the port is never mistaken for ours), and when
//! the process exits instead (it could not bind), it starts it again on another port. Ports
//! come from below the kernel's ephemeral range, which `bind(…:0)` and outgoing connections
//! draw from, so only another such harness can pick the same one.
//! Services that can report their port bind port 0 instead (the relay, chromedriver).

use std::net::TcpListener;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Child;

/// How often a service is started on a new port after it could not listen.
const ATTEMPTS: usize = 5;

/// A loopback port nobody listens on right now, below the ephemeral port range.
fn free_port() -> anyhow::Result<u16> {
    let below = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    for _ in 0..100 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 10_000..below);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port in 10000..{below}")
}

/// Starts `spawn(port)` on a free port and waits until that process listens on it; when
/// the process exits first (the port was taken meanwhile), starts it again on another
/// port. Returns the port and the process.
pub async fn spawn_listening(
    what: &str,
    limit: Duration,
    mut spawn: impl FnMut(u16) -> anyhow::Result<Child>,
) -> anyhow::Result<(u16, Child)> {
    let mut exits = Vec::new();
    for _ in 0..ATTEMPTS {
        let port = free_port()?;
        let mut child = spawn(port)?;
        match wait_until_listening(port, &mut child, limit).await? {
            None => return Ok((port, child)),
            Some(status) => exits.push(format!("port {port}: {status}")),
        }
    }
    bail!("{what} exited before it listened, {ATTEMPTS} times: {exits:?}")
}

/// Waits until `child` listens on `127.0.0.1:port` (`None`), or exits (its status), or
/// `limit` passes (an error).
pub async fn wait_until_listening(
    port: u16,
    child: &mut Child,
    limit: Duration,
) -> anyhow::Result<Option<ExitStatus>> {
    let pid = child.id().context("the service has already been reaped")?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if listens_on(pid, port) {
            return Ok(None);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("process {pid} did not listen on 127.0.0.1:{port} within {limit:?}");
        }
        // Nothing announces that another process has bound a port; look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` holds the listening TCP socket of `127.0.0.1:port`.
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // `local_address` is the address in memory order (little- or big-endian), then the port.
    let local = [
        format!("0100007F:{port:04X}"),
        format!("7F000001:{port:04X}"),
    ];
    const LISTEN: &str = "0A";
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&LISTEN)
                && fields.get(1).is_some_and(|a| local.iter().any(|l| l == a));
            if !listening {
                return None;
            }
            Some(format!("socket:[{}]", fields.get(9)?))
        })
        .collect();
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
    })
}
