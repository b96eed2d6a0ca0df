//! Local shells: a program in a PTY on the relay's own machine, through pty-process.
//!
//! The program leads a new session with the PTY as its controlling terminal, in a clean
//! environment (never the relay's, which may hold secrets), as the configured Unix user.
//! Output is read only when the session asks for more, so a browser that falls behind
//! fills the PTY's buffer and the program blocks on its writes: that is the backpressure.
//! The program's end (exit status or signal) ends the stream once its last output is read;
//! a session ended from our side hangs the program up (SIGHUP, and the PTY closed), as a
//! closed terminal window would.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use common::TermSize;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pty_process::{OwnedReadPty, OwnedWritePty, Size};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::{
    BackendError, ExitInfo, TerminalEvent, TerminalInput, TerminalOutput, TerminalStreams,
};
use crate::config::{LocalShell, RunAs};

/// Most output read from the PTY at once.
const READ_CHUNK: usize = 32 * 1024;
/// After the program exited, how long output is still read while something else (a
/// background job) keeps the PTY open, before the exit is reported.
const AFTER_EXIT: Duration = Duration::from_secs(1);
/// `PATH` of a program run as another user (the relay's own may name its folders).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the shell's program in a new PTY of `size`.
pub async fn open(shell: &LocalShell, size: TermSize) -> Result<TerminalStreams, BackendError> {
    let entry = shell.clone();
    // The passwd lookups may block (NSS can be a network service).
    let launch = tokio::task::spawn_blocking(move || Launch::new(&entry))
        .await
        .map_err(|e| BackendError::Failed(format!("local shell {}: {e}", shell.id)))??;
    launch.spawn(size)
}

/// What to start, and how, for one local shell.
struct Launch {
    id: String,
    program: String,
    args: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    run_as: Option<RunAs>,
}

impl Launch {
    fn new(shell: &LocalShell) -> Result<Self, BackendError> {
        let run_as = shell
            .run_as()
            .map_err(|e| BackendError::Refused(e.to_string()))?;
        let relay_env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let (user, home, login_shell, path) = match &run_as {
            Some(user) => (
                user.name.clone(),
                user.home.clone(),
                Some(user.shell.display().to_string()).filter(|s| !s.is_empty()),
                DEFAULT_PATH.to_owned(),
            ),
            None => {
                let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten();
                (
                    me.as_ref()
                        .map(|u| u.name.clone())
                        .or_else(|| relay_env("USER"))
                        .unwrap_or_default(),
                    relay_env("HOME")
                        .map(PathBuf::from)
                        .or_else(|| me.map(|u| u.dir))
                        .unwrap_or_else(|| PathBuf::from("/")),
                    relay_env("SHELL"),
                    relay_env("PATH").unwrap_or_else(|| DEFAULT_PATH.to_owned()),
                )
            }
        };
        let program = shell
            .command
            .clone()
            .or(login_shell)
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let dir = match &shell.working_dir {
            Some(dir) => dir.clone(),
            None if home.is_dir() => home.clone(),
            None => PathBuf::from("/"),
        };
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.display().to_string()),
            ("USER".into(), user.clone()),
            ("LOGNAME".into(), user),
            ("SHELL".into(), program.clone()),
            (
                "LANG".into(),
                relay_env("LANG").unwrap_or_else(|| "C.UTF-8".to_owned()),
            ),
            ("TERM".into(), "xterm-256color".into()),
        ];
        for (key, value) in &shell.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        Ok(Self {
            id: shell.id.clone(),
            program,
            args: shell.args.clone(),
            dir,
            env,
            run_as,
        })
    }

    fn spawn(self, size: TermSize) -> Result<TerminalStreams, BackendError> {
        let id = &self.id;
        let failed =
            |e: pty_process::Error| BackendError::Failed(format!("local shell {id}: no PTY: {e}"));
        if !Path::new(&self.dir).is_dir() {
            return Err(BackendError::Refused(format!(
                "local shell {id}: the working folder {} does not exist",
                self.dir.display()
            )));
        }
        let (pty, pts) = pty_process::open().map_err(failed)?;
        pty.resize(Size::new(size.rows, size.cols))
            .map_err(failed)?;
        let mut command = pty_process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env)
            .current_dir(&self.dir);
        if let Some(user) = &self.run_as {
            command = command.gid(user.gid).uid(user.uid);
        }
        let child = command.spawn(pts).map_err(|e| {
            let why = format!(
                "local shell {id}: cannot start {:?} in {}: {e}",
                self.program,
                self.dir.display()
            );
            // No such program, or not allowed to run it: a retry would not change that.
            // Anything else (out of processes, of memory) may pass.
            match &e {
                pty_process::Error::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    BackendError::Refused(why)
                }
                _ => BackendError::Failed(why),
            }
        })?;
        tracing::info!(shell = %id, program = %self.program, user = ?self.run_as.as_ref().map(|u| &u.name), pid = ?child.id(), "local shell started");
        let (read, write) = pty.into_split();
        Ok(TerminalStreams {
            output: Box::new(LocalOutput {
                read,
                child,
                closed: false,
                exit: None,
                after_exit: None,
            }),
            input: Box::new(LocalInput {
                write: Some(write),
                id: self.id,
            }),
        })
    }
}

struct LocalOutput {
    read: OwnedReadPty,
    child: Child,
    /// The PTY reported its end: no program has it open any more.
    closed: bool,
    /// How the program ended, once it was reaped.
    exit: Option<ExitInfo>,
    /// Until when output is still read after the exit.
    after_exit: Option<tokio::time::Instant>,
}

fn exit_info(status: std::io::Result<std::process::ExitStatus>) -> ExitInfo {
    match status {
        Ok(status) => ExitInfo {
            status: status.code(),
            signal: status.signal().map(|n| {
                Signal::try_from(n).map_or_else(
                    |_| n.to_string(),
                    |s| s.as_str().trim_start_matches("SIG").to_owned(),
                )
            }),
        },
        Err(e) => {
            tracing::warn!("cannot wait for a local shell's program: {e}");
            ExitInfo::default()
        }
    }
}

#[async_trait]
impl TerminalOutput for LocalOutput {
    async fn next(&mut self) -> TerminalEvent {
        loop {
            if self.closed {
                let exit = match self.exit.take() {
                    Some(exit) => exit,
                    None => exit_info(self.child.wait().await),
                };
                self.exit = Some(exit.clone());
                return TerminalEvent::Exited(exit);
            }
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let deadline = self.after_exit;
            let read = async {
                match deadline {
                    Some(deadline) => {
                        tokio::time::timeout_at(deadline, self.read.read_buf(&mut buf))
                            .await
                            .unwrap_or(Ok(0))
                    }
                    None => self.read.read_buf(&mut buf).await,
                }
            };
            tokio::select! {
                read = read => match read {
                    Ok(n) if n > 0 => return TerminalEvent::Output(buf.freeze()),
                    // EIO (or end of file): the last program holding the PTY closed it.
                    _ => self.closed = true,
                },
                status = self.child.wait(), if self.exit.is_none() => {
                    self.exit = Some(exit_info(status));
                    self.after_exit = Some(tokio::time::Instant::now() + AFTER_EXIT);
                }
            }
        }
    }
}

impl Drop for LocalOutput {
    fn drop(&mut self) {
        // Not reaped yet, so the pid is still the program's: hang it up as a closed
        // terminal would (the PTY closes with the halves, which hangs up its jobs too).
        if self.exit.is_none()
            && let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
        }
    }
}

struct LocalInput {
    write: Option<OwnedWritePty>,
    id: String,
}

impl LocalInput {
    fn pty(&mut self) -> Result<&mut OwnedWritePty, BackendError> {
        self.write.as_mut().ok_or_else(|| {
            BackendError::Failed(format!("the terminal of local shell {} is closed", self.id))
        })
    }
}

#[async_trait]
impl TerminalInput for LocalInput {
    async fn write(&mut self, data: Bytes) -> Result<(), BackendError> {
        let id = self.id.clone();
        self.pty()?
            .write_all(&data)
            .await
            .map_err(|e| BackendError::Failed(format!("cannot write to local shell {id}: {e}")))
    }

    async fn resize(&mut self, size: TermSize) -> Result<(), BackendError> {
        let id = self.id.clone();
        self.pty()?
            .resize(Size::new(size.rows, size.cols))
            .map_err(|e| BackendError::Failed(format!("cannot resize local shell {id}: {e}")))
    }

    async fn close(&mut self) {
        self.write = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(command: &str) -> LocalShell {
        LocalShell {
            id: "t".into(),
            label: None,
            command: Some(command.into()),
            args: vec![
                "-c".into(),
                "printf 'out-%s-' \"$CARGO_MANIFEST_DIR\"; kill -TERM $$".into(),
            ],
            working_dir: Some(PathBuf::from("/")),
            env: Default::default(),
            user: None,
        }
    }

    async fn all_output(streams: &mut TerminalStreams) -> (String, ExitInfo) {
        let mut text = Vec::new();
        loop {
            match streams.output.next().await {
                TerminalEvent::Output(bytes) => text.extend_from_slice(&bytes),
                TerminalEvent::Exited(exit) => {
                    return (String::from_utf8_lossy(&text).into(), exit);
                }
                TerminalEvent::Failed(why) => panic!("failed: {why}"),
            }
        }
    }

    // The relay's environment stays out of the shell; a signal is reported by name.
    #[tokio::test]
    async fn the_program_gets_a_clean_environment_and_its_signal_is_named() {
        // Cargo runs tests with this set: it stands for the relay's secrets.
        let relay_only = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
        let size = TermSize { rows: 24, cols: 80 };
        let mut streams = open(&shell("/bin/sh"), size).await.unwrap();
        let (text, exit) = all_output(&mut streams).await;
        assert!(text.contains("out--"), "{text:?}");
        assert!(!text.contains(&relay_only), "{text:?}");
        assert_eq!(exit.signal.as_deref(), Some("TERM"));
        assert_eq!(exit.status, None);
    }

    #[tokio::test]
    async fn a_command_that_does_not_exist_is_refused_with_its_name() {
        let size = TermSize { rows: 24, cols: 80 };
        let Err(refused) = open(&shell("/no/such/program"), size).await else {
            panic!("a missing program was started");
        };
        assert!(matches!(refused, BackendError::Refused(_)), "{refused:?}");
        assert!(
            refused.to_string().contains("/no/such/program"),
            "{refused}"
        );
    }
}
