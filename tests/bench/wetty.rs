//! The browser peer: WeTTY (npm `wetty`), the widely used web terminal: an Express +
//! socket.io server that runs OpenSSH's `ssh` client in a PTY (node-pty) and a page that
//! draws its output with xterm.js (its WebGL addon when the browser has WebGL2, else the
//! DOM renderer). Installed by the bench's own setup from the npm registry into
//! `<target>/bench-peers/wetty` on first use, then reused; started on a loopback port
//! against the same sshd the relay uses, logging in with the harness's client key and
//! trusting only the sshd's host key.
//!
//! node-pty is a native addon built at install time by node-gyp, against the headers of
//! the machine's own Node.js (`npm_config_nodedir`): node-gyp would otherwise download
//! them from nodejs.org, which the bench does not do. Without those headers (or a
//! compiler) WeTTY is skipped, with the reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use opsdeck_tests::net;
use tokio::process::{Child, Command};

use crate::openssh::SshLogin;
use crate::python_venv;

/// The pinned release (its dependencies resolve within their ranges at install time).
pub const VERSION: &str = "3.2.0";
/// The peer in the tables.
pub const NAME: &str =
    "WeTTY 3.2.0 (Node.js + socket.io + node-pty running OpenSSH's ssh; xterm.js 6 page)";
/// How long `npm install` may take (node-pty is compiled).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// A running WeTTY server (stopped on drop), logging in to one sshd.
pub struct Wetty {
    _child: Child,
    port: u16,
    /// Its known_hosts and log.
    _dir: tempfile::TempDir,
}

impl Wetty {
    /// Installs WeTTY when missing and starts it for `login`'s sshd.
    pub async fn start(login: &SshLogin) -> anyhow::Result<Self> {
        let main = install().await?;
        let dir = tempfile::tempdir()?;
        // Its own copy: the harness rewrites the sshd's known_hosts file on each call.
        let known_hosts = dir.path().join("known_hosts");
        std::fs::copy(&login.known_hosts, &known_hosts)?;
        let log = dir.path().join("wetty.log");
        let (port, child) = net::spawn_listening("wetty", Duration::from_secs(30), |port| {
            Command::new("node")
                .arg(&main)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--ssh-host", "127.0.0.1"])
                .args(["--ssh-port", &login.port.to_string()])
                .args(["--ssh-user", &login.user])
                .args(["--ssh-auth", "publickey"])
                .arg("--ssh-key")
                .arg(&login.key)
                .arg("--known-hosts")
                .arg(&known_hosts)
                // No user or system ssh_config (as the bench's own `ssh` runs).
                .args(["--ssh-config", "/dev/null"])
                // As root on 127.0.0.1 it would run `login` instead of ssh.
                .arg("--force-ssh")
                .args(["--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .kill_on_drop(true)
                .spawn()
                .context("starting WeTTY (node)")
        })
        .await?;
        Ok(Self {
            _child: child,
            port,
            _dir: dir,
        })
    }

    /// Its page: the terminal, which opens the SSH session when its socket connects.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// `npm install`s WeTTY into `<target>/bench-peers/wetty` unless that version is there
/// with its native addon built; returns the path of its server's entry point.
async fn install() -> anyhow::Result<PathBuf> {
    let prefix = python_venv::peers_folder()?.join("wetty");
    let package = prefix.join("node_modules/wetty");
    let main = package.join("build/main.js");
    let addon = prefix.join("node_modules/node-pty/build/Release/pty.node");
    if installed_version(&package).as_deref() == Some(VERSION) && addon.exists() {
        return Ok(main);
    }
    let nodedir = node_headers().await?;
    std::fs::create_dir_all(&prefix)?;
    eprintln!(
        "bench: npm install wetty@{VERSION} into {} (node-pty built against {})",
        prefix.display(),
        nodedir.display()
    );
    let mut command = Command::new("npm");
    command
        .arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .args(["--no-audit", "--no-fund", "--no-save"])
        .arg(format!("wetty@{VERSION}"))
        // node-gyp builds node-pty against these headers instead of downloading them.
        .env("npm_config_nodedir", &nodedir);
    tokio::time::timeout(INSTALL_TIMEOUT, python_venv::run(&mut command))
        .await
        .with_context(|| format!("npm install took over {INSTALL_TIMEOUT:?}"))?
        .with_context(|| format!("npm install wetty@{VERSION}"))?;
    if !addon.exists() {
        bail!(
            "npm installed WeTTY but node-pty's native addon was not built ({} is missing; \
             npm may have skipped its install script)",
            addon.display()
        );
    }
    Ok(main)
}

/// The version of the npm package in `package`, if one is installed there.
fn installed_version(package: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

/// The folder holding the running Node.js's headers (`include/node/node.h`), which
/// node-gyp takes as `nodedir`: the install prefix of `node` (`/usr` for Debian's nodejs).
async fn node_headers() -> anyhow::Result<PathBuf> {
    let output = Command::new("node")
        .args(["-p", "process.execPath"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running node (install Debian's nodejs)")?;
    if !output.status.success() {
        bail!("node -p process.execPath: {}", output.status);
    }
    let exec = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let exec = exec.canonicalize().unwrap_or(exec);
    let prefix = exec
        .parent()
        .and_then(Path::parent)
        .context("node's path has no install prefix")?;
    if !prefix.join("include/node/node.h").exists() {
        bail!(
            "no Node.js headers at {}/include/node (node-pty is built against them; without \
             them node-gyp would download them from nodejs.org)",
            prefix.display()
        );
    }
    Ok(prefix.to_owned())
}
