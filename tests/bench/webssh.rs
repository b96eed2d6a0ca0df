//! The terminal peer: webssh (PyPI `webssh`, tornado + paramiko), the classic web SSH
//! console Opsdeck replaces, installed into the bench's venv and started on a loopback
//! port against the same sshd the relay uses, with the sshd's host key as the only one it
//! trusts (`--policy=reject`).
//!
//! Its protocol, as its own page speaks it (`webssh/handler.py`, `static/js/main.js`): a
//! POST of the login form answers `{"id": …, "encoding": …}` once the SSH session is open;
//! then the WebSocket `/ws?id=…` carries keystrokes as JSON text (`{"data": "…"}`,
//! `{"resize": [cols, rows]}`) and output as binary frames. [`WebSshTerminal`] speaks it
//! behind the same [`Terminal`] trait as the relay client and `ssh -tt`, so the very same
//! measurements run on it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use opsdeck_tests::load::Terminal;
use opsdeck_tests::net;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::openssh::SshLogin;
use crate::python_venv::PythonVenv;

/// The pinned versions: webssh's last release and the tornado and paramiko it runs on.
pub const REQUIREMENTS: [&str; 3] = ["webssh==1.6.3", "tornado==6.6.1", "paramiko==5.1.0"];
/// The peer in the tables.
pub const NAME: &str = "webssh 1.6.3 (tornado 6.6.1 + paramiko 5.1.0)";

/// A running webssh server (stopped on drop), logging in to one sshd.
pub struct WebSsh {
    _child: Child,
    port: u16,
    login: SshLogin,
    /// The client key as the login form sends it (the text of the key file).
    private_key: String,
    /// Its known_hosts and log.
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl WebSsh {
    /// Installs webssh into the bench's venv when missing, and starts it for `login`'s sshd.
    pub async fn start(login: &SshLogin) -> anyhow::Result<Self> {
        let venv = PythonVenv::with(&REQUIREMENTS).await?;
        let dir = tempfile::tempdir()?;
        // Its own copy: the harness rewrites the sshd's known_hosts file on each call.
        let known_hosts = dir.path().join("known_hosts");
        std::fs::copy(&login.known_hosts, &known_hosts)?;
        let log = dir.path().join("wssh.log");
        let wssh = venv.bin("wssh");
        let (port, child) = net::spawn_listening("webssh", Duration::from_secs(30), |port| {
            Command::new(&wssh)
                .args(["--address=127.0.0.1", &format!("--port={port}")])
                // The form is posted by this client, not by webssh's page (no XSRF cookie).
                .arg("--xsrf=False")
                // Only the sshd's key is trusted: no system known_hosts, unknown keys refused.
                .arg("--policy=reject")
                .arg(format!("--hostfile={}", known_hosts.display()))
                .arg(format!(
                    "--syshostfile={}",
                    dir.path().join("no_system_known_hosts").display()
                ))
                // Without it, each login runs `$SHELL -ilc "locale charmap"` first (up to
                // 1 s); a deployment that knows its servers sets it.
                .arg("--encoding=utf-8")
                // The bench opens many sessions from one address, one after another.
                .arg("--maxconn=1000")
                .arg("--logging=warning")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .kill_on_drop(true)
                .spawn()
                .context("starting wssh")
        })
        .await?;
        Ok(Self {
            _child: child,
            port,
            login: login.clone(),
            private_key: std::fs::read_to_string(&login.key)?,
            dir,
            http: reqwest::Client::new(),
        })
    }

    /// Logs in (the POST of the form) and opens the session's WebSocket.
    pub async fn open(&self) -> anyhow::Result<WebSshTerminal> {
        let port = self.login.port.to_string();
        let form = [
            ("hostname", "127.0.0.1"),
            ("port", port.as_str()),
            ("username", self.login.user.as_str()),
            ("privatekey", self.private_key.as_str()),
            // The relay asks for this terminal type too.
            ("term", "xterm-256color"),
        ];
        let answer: serde_json::Value = self
            .http
            .post(format!("http://127.0.0.1:{}/", self.port))
            .form(&form)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(id) = answer.get("id").and_then(|id| id.as_str()) else {
            bail!(
                "webssh refused the login: {} (its log: {})",
                answer["status"],
                self.log_tail()
            );
        };
        let url = format!("ws://127.0.0.1:{}/ws?id={id}", self.port);
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("webssh's WebSocket")?;
        // What its page sends first: the terminal's size.
        ws.send(Message::text(
            serde_json::json!({ "resize": [80, 24] }).to_string(),
        ))
        .await?;
        Ok(WebSshTerminal { ws })
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.trim().lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("wssh.log")
    }
}

/// One webssh session, spoken as its page speaks it.
pub struct WebSshTerminal {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WebSshTerminal {
    /// Ends the session (webssh closes the SSH channel when its WebSocket closes).
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await?;
        Ok(())
    }
}

impl Terminal for WebSshTerminal {
    async fn type_keys(&mut self, keys: &str) -> anyhow::Result<()> {
        let frame = serde_json::json!({ "data": keys }).to_string();
        self.ws.send(Message::text(frame)).await?;
        Ok(())
    }

    async fn output(&mut self) -> anyhow::Result<Bytes> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Close(frame))) => bail!("webssh closed the session: {frame:?}"),
                // Pings are answered by the WebSocket library; webssh sends no text.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("webssh's WebSocket ended"),
            }
        }
    }
}
