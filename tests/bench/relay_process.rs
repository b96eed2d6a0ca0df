//! The relay as a separate process — the release `opsdeck-relay` binary on a generated
//! config and a free port — so its CPU time and memory can be read from `/proc` apart from
//! the load client's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use common::api::LoginRequest;
use opsdeck_tests::load::Endpoint;
use opsdeck_tests::net;
use opsdeck_tests::relay::PASSWORD;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::procfs;

/// Builds the release relay binary (a no-op when it is up to date) and returns its path.
pub fn build_relay_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = crate::workspace_root().join("Cargo.toml");
    eprintln!("building the release relay (cargo build --release -p relay --bin opsdeck-relay)");
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "relay",
            "--bin",
            "opsdeck-relay",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("building opsdeck-relay failed ({status})");
    }
    // This binary lives in <target>/<profile>/; the relay in <target>/release/.
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot find the target folder from this executable's path")?;
    let relay = target.join("release").join("opsdeck-relay");
    if !relay.exists() {
        bail!("{} was not built", relay.display());
    }
    Ok(relay)
}

/// A running relay process; killed when dropped.
pub struct RelayProcess {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl RelayProcess {
    /// Starts `binary` on `config` (a TOML body without `listen` and `static_dir`, which are
    /// chosen here), serving no browser app.
    pub async fn start(binary: &Path, config: &str) -> anyhow::Result<Self> {
        Self::spawn(binary, config, None).await
    }

    /// Like [`RelayProcess::start`], serving the browser app built in `app` (a `dist/`).
    pub async fn start_serving(binary: &Path, config: &str, app: &Path) -> anyhow::Result<Self> {
        Self::spawn(binary, config, Some(app)).await
    }

    async fn spawn(binary: &Path, config: &str, app: Option<&Path>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let static_dir = match app {
            Some(app) => app.to_path_buf(),
            None => dir.path().join("no-app"),
        };
        let config_path = dir.path().join("relay.toml");
        let log_path = dir.path().join("relay.log");
        let spawned = net::spawn_listening("the relay", Duration::from_secs(30), |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config = format!(
                "listen = \"{addr}\"\nstatic_dir = \"{}\"\n{config}",
                static_dir.display()
            );
            std::fs::write(&config_path, config)?;
            let log = std::fs::File::create(&log_path)?;
            Command::new(binary)
                .arg("--config")
                .arg(&config_path)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))
        })
        .await;
        let (port, child) = match spawned {
            Ok(started) => started,
            Err(e) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("{e:#}; relay log:\n{log}");
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let pid = child.id().context("the relay exited at once")?;
        Ok(Self {
            child,
            pid,
            addr,
            dir,
        })
    }

    /// Logs in through the API as a harness test user; returns the token.
    pub async fn login(&self, user: &str) -> anyhow::Result<String> {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/login", self.addr))
            .json(&LoginRequest {
                username: user.to_owned(),
                password: PASSWORD.to_owned(),
            })
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("login as {user} failed: {}", response.status());
        }
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|cookie| {
                let value = cookie.strip_prefix("X-Token=")?;
                Some(value.split(';').next().unwrap_or(value).to_owned())
            })
            .context("the login answer set no X-Token cookie")
    }

    /// A WebSocket endpoint of this relay.
    pub fn endpoint(&self, path: &str, token: &str) -> Endpoint {
        Endpoint::new(format!("ws://{}{path}", self.addr), Some(token.to_owned()))
    }

    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        procfs::cpu_seconds(self.pid)
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid)
    }

    /// Fails with the relay's log when it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log =
                std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default();
            bail!("the relay exited ({status}); its log:\n{log}");
        }
        Ok(())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
