//! Real local processes behind exec, and the registry that kills them.
//!
//! With `tty=true` the command runs as a session leader on a fresh PTY
//! (`pty-process`), so `stty size` sees the sizes sent on the resize channel
//! and output arrives exactly as a terminal produces it (CRLF, echo). With
//! `tty=false` it runs in its own process group with pipes. Either way the
//! process group id is registered; dropping its [`GroupGuard`] (WebSocket
//! closed, command finished, emulator dropped) sends `SIGKILL` to the whole
//! group.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncRead;
use tokio::sync::watch;

/// Live process groups started by exec.
#[derive(Debug)]
pub struct ProcessRegistry {
    groups: Mutex<HashSet<i32>>,
    live: watch::Sender<usize>,
}

impl ProcessRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(ProcessRegistry {
            groups: Mutex::new(HashSet::new()),
            live: watch::Sender::new(0),
        })
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks a process group until the guard is dropped.
    pub fn register(self: &Arc<Self>, pgid: i32) -> GroupGuard {
        let mut groups = self.groups();
        groups.insert(pgid);
        self.live.send_replace(groups.len());
        GroupGuard {
            pgid,
            registry: self.clone(),
        }
    }

    /// Kills every tracked group (emulator shutdown).
    pub fn kill_all(&self) {
        let mut groups = self.groups();
        for pgid in groups.drain() {
            kill_group(pgid);
        }
        self.live.send_replace(0);
    }

    /// Number of live exec sessions' process groups.
    pub fn live(&self) -> usize {
        *self.live.borrow()
    }

    /// Watches the number of live process groups.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.live.subscribe()
    }
}

fn kill_group(pgid: i32) {
    // ESRCH (already gone) is fine.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// Kills its process group when dropped.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: i32,
    registry: Arc<ProcessRegistry>,
}

impl GroupGuard {
    /// Kills the group now (the guard still unregisters on drop).
    pub fn kill(&self) {
        kill_group(self.pgid);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.pgid);
        let mut groups = self.registry.groups();
        groups.remove(&self.pgid);
        self.registry.live.send_replace(groups.len());
    }
}

/// What to run and how it is attached.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv; `command[0]` is looked up in `PATH`.
    pub command: Vec<String>,
    /// Run on a PTY.
    pub tty: bool,
    /// Attach stdin.
    pub stdin: bool,
    /// Attach stdout.
    pub stdout: bool,
    /// Attach stderr (ignored with a TTY, as the kubelet does).
    pub stderr: bool,
    /// Working directory.
    pub working_dir: Option<PathBuf>,
    /// `PATH`, where `command[0]` is looked up (None: the emulator's own).
    pub path: Option<String>,
}

/// Where stdin data and resize requests go.
pub enum Input {
    /// The PTY master: data is typed into the terminal; resizes apply.
    Pty(pty_process::OwnedWritePty),
    /// The child's stdin pipe.
    Pipe(tokio::process::ChildStdin),
    /// Nothing attached.
    None,
}

/// A started process.
pub struct Spawned {
    /// The child (its pid is the process group id).
    pub child: tokio::process::Child,
    /// Kills the group on drop.
    pub guard: GroupGuard,
    /// Input side.
    pub input: Input,
    /// Output streams with the channel each is sent on (1 stdout, 2 stderr).
    pub outputs: Vec<(u8, Box<dyn AsyncRead + Send + Unpin>)>,
}

/// Starts the command.
pub fn spawn(spec: &ExecSpec, registry: &Arc<ProcessRegistry>) -> std::io::Result<Spawned> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    };
    if spec.tty {
        let (pty, pts) = pty_process::open().map_err(pty_error)?;
        let mut command = pty_process::Command::new(program)
            .args(args)
            .env("TERM", "xterm");
        if let Some(dir) = &spec.working_dir {
            command = command.current_dir(dir);
        }
        if let Some(path) = &spec.path {
            command = command.env("PATH", path);
        }
        let child = command.spawn(pts).map_err(pty_error)?;
        let guard = registry.register(pid_of(&child)?);
        let (read, write) = pty.into_split();
        let outputs: Vec<(u8, Box<dyn AsyncRead + Send + Unpin>)> = if spec.stdout {
            vec![(1, Box::new(read))]
        } else {
            Vec::new()
        };
        Ok(Spawned {
            child,
            guard,
            input: Input::Pty(write),
            outputs,
        })
    } else {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .process_group(0)
            .stdin(piped_if(spec.stdin))
            .stdout(piped_if(spec.stdout))
            .stderr(piped_if(spec.stderr));
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        if let Some(path) = &spec.path {
            // std looks the program up in the child's PATH once it is set.
            command.env("PATH", path);
        }
        let mut child = command.spawn()?;
        let guard = registry.register(pid_of(&child)?);
        let mut outputs: Vec<(u8, Box<dyn AsyncRead + Send + Unpin>)> = Vec::new();
        if let Some(out) = child.stdout.take() {
            outputs.push((1, Box::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            outputs.push((2, Box::new(err)));
        }
        let input = child.stdin.take().map_or(Input::None, Input::Pipe);
        Ok(Spawned {
            child,
            guard,
            input,
            outputs,
        })
    }
}

fn piped_if(attached: bool) -> Stdio {
    if attached {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

fn pid_of(child: &tokio::process::Child) -> std::io::Result<i32> {
    child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| std::io::Error::other("child exited before its pid was read"))
}

fn pty_error(error: pty_process::Error) -> std::io::Error {
    match error {
        pty_process::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// The exit code as a container runtime reports it: the code, or 128 plus
/// the signal number for a killed process.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Writes stdin data into the PTY or the stdin pipe (a no-op when nothing
/// is attached).
pub async fn write_input(input: &mut Input, data: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    match input {
        Input::Pty(w) => w.write_all(data).await,
        Input::Pipe(w) => w.write_all(data).await,
        Input::None => Ok(()),
    }
}
