//! The terminal limit: the OpenSSH client (`ssh -tt`) to the same sshd the relay uses,
//! driven over its stdin/stdout pipes, so the very same [`Terminal`] measurements run
//! with and without the relay in the path.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail};
use bytes::Bytes;
use opsdeck_tests::load::Terminal;
use opsdeck_tests::sshd::TestSshd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// How the OpenSSH client logs in to the test sshd. Made once: the harness rewrites its
/// known_hosts file on each call, which clients starting at that moment would find empty.
#[derive(Debug, Clone)]
pub struct SshLogin {
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub port: u16,
    pub user: String,
}

impl SshLogin {
    /// The options `ssh` and `sftp` both take (each spells the port flag its own way).
    fn options(&self) -> Vec<std::ffi::OsString> {
        let mut options: Vec<std::ffi::OsString> = vec![
            // No user or system ssh_config: no multiplexing, no keepalives, nothing else.
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.key.clone().into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()).into(),
        ];
        for option in [
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "LogLevel=ERROR",
        ] {
            options.extend(["-o".into(), option.into()]);
        }
        options
    }

    fn destination(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    pub fn of(sshd: &TestSshd) -> anyhow::Result<Self> {
        Ok(Self {
            key: sshd.client_key(),
            known_hosts: sshd.known_hosts()?,
            port: sshd.port,
            user: sshd.user.clone(),
        })
    }
}

/// An interactive `ssh -tt` session (a PTY on the server, as the relay asks for), or an
/// `ssh -T` one (the shell reads commands from a pipe: no PTY at all).
pub struct OpenSshTerminal {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// What ssh says when it fails (LogLevel=ERROR: nothing otherwise).
    stderr: ChildStderr,
    /// Without a PTY nothing turns the Enter key (\r) into the \n a shell reads.
    pty: bool,
    buffer: Vec<u8>,
}

impl OpenSshTerminal {
    pub async fn open(login: &SshLogin) -> anyhow::Result<Self> {
        Self::start(login, true).await
    }

    /// Without a PTY: the SSH transport's own limit, which no terminal reaches.
    pub async fn open_without_pty(login: &SshLogin) -> anyhow::Result<Self> {
        Self::start(login, false).await
    }

    async fn start(login: &SshLogin, pty: bool) -> anyhow::Result<Self> {
        let mut child = Command::new("ssh")
            .arg(if pty { "-tt" } else { "-T" })
            .args(login.options())
            .args(["-p", &login.port.to_string()])
            .arg(login.destination())
            // The relay asks for this terminal type too.
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting ssh (install openssh-client)")?;
        let pid = child.id().context("ssh exited at once")?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        Ok(Self {
            child,
            pid,
            stdin,
            stdout,
            stderr,
            pty,
            buffer: vec![0; 64 * 1024],
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Terminal for OpenSshTerminal {
    async fn type_keys(&mut self, keys: &str) -> anyhow::Result<()> {
        if self.pty {
            self.stdin.write_all(keys.as_bytes()).await?;
        } else {
            self.stdin
                .write_all(keys.replace('\r', "\n").as_bytes())
                .await?;
        }
        self.stdin.flush().await?;
        Ok(())
    }

    async fn output(&mut self) -> anyhow::Result<Bytes> {
        let n = self.stdout.read(&mut self.buffer).await?;
        if n == 0 {
            let status = self.child.wait().await?;
            let mut said = String::new();
            let _ = self.stderr.read_to_string(&mut said).await;
            bail!("ssh ended ({status}): {}", said.trim());
        }
        Ok(Bytes::copy_from_slice(&self.buffer[..n]))
    }
}

/// One `sftp` batch (e.g. `put a b`) to the same sshd as the terminal limit: the file
/// transfer limit. Ends when the transfer has, failing with what sftp said otherwise.
pub async fn sftp(login: &SshLogin, batch: &str) -> anyhow::Result<()> {
    let mut child = Command::new("sftp")
        .args(["-q", "-b", "-"])
        .args(login.options())
        .args(["-P", &login.port.to_string()])
        .arg(login.destination())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting sftp (install openssh-client)")?;
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    stdin.write_all(batch.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "sftp {batch:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
