//! A real OpenSSH server for tests: its own host key, client key, config and port, and a
//! clean environment for its sessions (`HOME` an empty folder of its own: no user's shell
//! start-up files run).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::net;

pub struct TestSshd {
    pub port: u16,
    /// The user the tests log in as (the one running them).
    pub user: String,
    dir: TempDir,
    child: Child,
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .context("running ssh-keygen (install openssh-client)")?;
    if !status.success() {
        bail!("ssh-keygen failed for {}", path.display());
    }
    Ok(())
}

fn current_user() -> anyhow::Result<String> {
    let out = std::process::Command::new("id").arg("-un").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

impl TestSshd {
    /// One sshd for a whole test binary, started on first use. It runs under a thread of
    /// its own that lives as long as the process, and is told to die with that thread
    /// (`PR_SET_PDEATHSIG`), so it never outlives the tests.
    pub fn shared() -> &'static TestSshd {
        static SHARED: std::sync::OnceLock<TestSshd> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the shared sshd");
                runtime.block_on(async move {
                    let _ = tx.send(Self::launch(true).await);
                    std::future::pending::<()>().await
                })
            });
            rx.recv()
                .expect("the shared sshd's thread answers")
                .expect("the shared sshd starts")
        })
    }

    pub async fn start() -> anyhow::Result<Self> {
        Self::launch(false).await
    }

    async fn launch(die_with_thread: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let user = current_user()?;
        let host_key = dir.path().join("host_key");
        let client_key = dir.path().join("client_key");
        keygen(&host_key)?;
        keygen(&client_key)?;
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )?;
        // The sessions' home: an empty folder, so a login shell finds no start-up files of
        // the user's (root's ~/.bashrc may run pyenv and more: slow, flaky shells). sshd
        // still starts each session in the user's passwd home; SFTP does not use HOME.
        let home = dir.path().join("home");
        std::fs::create_dir(&home)?;
        // sshd refuses to start without its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let config_path = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");
        let (port, child) = net::spawn_listening("sshd", Duration::from_secs(20), |port| {
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin yes\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel ERROR\nPrintMotd no\nPrintLastLog no\n\
                 Subsystem sftp internal-sftp\nSetEnv HOME={home}\nPermitUserRC no\n",
                host = host_key.display(),
                dir = dir.path().display(),
                home = home.display(),
            );
            std::fs::write(&config_path, config)?;
            let mut command = Command::new("/usr/sbin/sshd");
            if die_with_thread {
                // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
            }
            command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .kill_on_drop(true)
                .spawn()
                .context("starting /usr/sbin/sshd (install openssh-server)")
        })
        .await?;
        Ok(Self {
            port,
            user,
            dir,
            child,
        })
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A known_hosts file that trusts this server's host key.
    pub fn known_hosts(&self) -> anyhow::Result<PathBuf> {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub"))?;
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {}", self.port, key))?;
        Ok(path)
    }

    /// A known_hosts file that records a different key for this server.
    pub fn wrong_known_hosts(&self) -> anyhow::Result<PathBuf> {
        let other = self.dir.path().join("other_host_key");
        if !other.exists() {
            keygen(&other)?;
        }
        let key = std::fs::read_to_string(self.dir.path().join("other_host_key.pub"))?;
        let path = self.dir.path().join("wrong_known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {}", self.port, key))?;
        Ok(path)
    }

    /// A file in the server's temp folder (for password files and such).
    pub fn write_file(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    /// An `[[ssh_hosts]]` entry for this server, logging in with the client key.
    pub fn host_toml(&self, id: &str) -> anyhow::Result<String> {
        Ok(format!(
            "[[ssh_hosts]]\nid = \"{id}\"\naddress = \"127.0.0.1\"\nport = {port}\nusername = \"{user}\"\n\
             private_key_file = \"{key}\"\nknown_hosts_file = \"{kh}\"\nconnect_timeout = \"10s\"\n",
            port = self.port,
            user = self.user,
            key = self.client_key().display(),
            kh = self.known_hosts()?.display(),
        ))
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
