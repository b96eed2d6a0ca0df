//! `kubectl exec -it` in the browser: a shell in a container on a TTY, through kube-rs.
//!
//! kube speaks the channel protocol; this file only adapts its `AttachedProcess` to the
//! terminal traits: stdout bytes are relayed as read (never decoded), keystrokes go to
//! stdin, resizes to `terminal_size()` (the initial size is sent first), and the exit status
//! comes from `take_status()`. kube's stdout pipe is bounded (`k8s.exec_output_buffer_bytes`),
//! so when the session stops reading, kube stops reading the API server's socket and TCP
//! slows the remote program down. Closing the session closes stdin (kube sends the v5 close
//! signal `[255, 0]`, or closes the socket on v4), gives kube a moment to send it, then aborts
//! the `AttachedProcess`, which closes the socket: the API server ends the exec and the TTY's
//! hang-up ends the shell.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use common::TermSize;
use futures_util::SinkExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::{K8sError, timed};
use super::{ContainerPath, pod};
use crate::backend::{
    BackendError, ExitInfo, TerminalEvent, TerminalInput, TerminalOutput, TerminalStreams,
};
use crate::config::K8sConfig;

/// Read at most this much terminal output at a time.
const READ_CHUNK: usize = 32 * 1024;
/// How long kube may take to tell the API server stdin is closed before the socket is.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// The shell, as the classic console started it: `script` gives bash a controlling
/// terminal of its own where it exists (util-linux's needs `-e` to pass the exit status
/// on), else bash, else sh; with a terminal type xterm.js understands.
///
/// The TTY is first set to the size the browser asked for (`$1` rows, `$2` columns): the
/// resize channel's first message races the shell's start, and `script` copies the outer
/// size once and only then starts listening for SIGWINCH, so a resize landing in between
/// was lost until the next one (seen as a 24x80 terminal in a 30x90 browser).
const SHELL_SCRIPT: &str = "export TERM=xterm-256color
stty rows \"$1\" cols \"$2\" 2>/dev/null
if command -v bash >/dev/null 2>&1; then
  if command -v script >/dev/null 2>&1; then
    case \"$(script --version 2>&1)\" in
      *util-linux*) exec script -q -e -c bash /dev/null ;;
    esac
    exec script -q -c bash /dev/null
  fi
  exec bash
fi
exec sh";

/// The command that starts [`SHELL_SCRIPT`] on a TTY of `size`.
pub fn shell_command(size: TermSize) -> Vec<String> {
    [
        "/bin/sh",
        "-c",
        SHELL_SCRIPT,
        "sh",
        &size.rows.to_string(),
        &size.cols.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Checks that the container exists and runs, so that each refusal has its own close code
/// (4404, 4403, 4400) before a shell is started.
pub async fn check(
    api: &Api<Pod>,
    path: &ContainerPath,
    limits: &K8sConfig,
) -> Result<(), K8sError> {
    let found = pod::get(api, path, limits.request_timeout).await?;
    let container = pod::container(&found, path)?;
    match container.not_running {
        None => Ok(()),
        Some(why) => Err(K8sError::Invalid(format!(
            "cannot open a shell in container {} of pod {}: it is not running ({why}; pod phase {})",
            path.container, path.pod, container.phase
        ))),
    }
}

/// Starts the shell in the container with a TTY of `size`.
pub async fn open(
    api: &Api<Pod>,
    path: &ContainerPath,
    limits: &K8sConfig,
    size: TermSize,
) -> Result<TerminalStreams, BackendError> {
    connect(api, path, limits, size)
        .await
        .map_err(backend_error)
}

async fn connect(
    api: &Api<Pod>,
    path: &ContainerPath,
    limits: &K8sConfig,
    size: TermSize,
) -> Result<TerminalStreams, K8sError> {
    let params = AttachParams::interactive_tty()
        .container(path.container.clone())
        .max_stdout_buf_size(limits.exec_output_buffer_bytes);
    let command = shell_command(size);
    let mut attached = timed(
        &path.cluster,
        limits.request_timeout,
        api.exec(&path.pod, command, &params),
    )
    .await?;
    let broken = |what: &str| K8sError::Failed {
        cluster: path.cluster.clone(),
        message: format!("the exec session of {path} has no {what}"),
    };
    let stdin = attached.stdin().ok_or_else(|| broken("stdin"))?;
    let stdout = attached.stdout().ok_or_else(|| broken("stdout"))?;
    let status = attached.take_status().ok_or_else(|| broken("status"))?;
    let mut resize = attached.terminal_size().ok_or_else(|| broken("TTY"))?;
    resize
        .send(terminal_size(size))
        .await
        .map_err(|_| broken("working TTY"))?;
    let ended = CancellationToken::new();
    Ok(TerminalStreams {
        output: Box::new(ExecOutput {
            stdout,
            status: Some(Box::pin(status)),
            buffer: BytesMut::new(),
            what: path.to_string(),
            _ended: ended.clone().drop_guard(),
        }),
        input: Box::new(ExecInput {
            stdin: Some(stdin),
            resize,
            attached: Some(attached),
            ended,
            what: path.to_string(),
        }),
    })
}

fn terminal_size(size: TermSize) -> TerminalSize {
    TerminalSize {
        width: size.cols,
        height: size.rows,
    }
}

pub(super) fn backend_error(e: K8sError) -> BackendError {
    match e {
        K8sError::NotFound(m) | K8sError::UnknownCluster(m) => BackendError::NotFound(m),
        K8sError::Forbidden(m) => BackendError::Forbidden(m),
        K8sError::CredentialsRefused { .. } | K8sError::Credentials { .. } => {
            BackendError::AuthFailed(e.to_string())
        }
        K8sError::Unreachable { .. } | K8sError::Timeout { .. } => {
            BackendError::Unreachable(e.to_string())
        }
        K8sError::Invalid(_) | K8sError::Failed { .. } => BackendError::Failed(e.to_string()),
    }
}

/// How the command ended, from the `metav1.Status` on the status channel.
fn exit_of(status: &Status) -> Result<ExitInfo, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(ExitInfo {
            status: Some(0),
            signal: None,
        });
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse().ok());
        return Ok(ExitInfo {
            status: code,
            signal: None,
        });
    }
    Err(status
        .message
        .clone()
        .unwrap_or_else(|| "the exec failed without a reason".to_owned()))
}

type StatusFuture = Pin<Box<dyn Future<Output = Option<Status>> + Send>>;

struct ExecOutput {
    stdout: ReadHalf<SimplexStream>,
    status: Option<StatusFuture>,
    buffer: BytesMut,
    what: String,
    /// Tells the input half that nobody reads the output any more (so a write that waits
    /// on a stalled kube gives up).
    _ended: DropGuard,
}

#[async_trait]
impl TerminalOutput for ExecOutput {
    async fn next(&mut self) -> TerminalEvent {
        self.buffer.reserve(READ_CHUNK);
        // `read_buf` is cancel-safe: a dropped call has read nothing.
        match self.stdout.read_buf(&mut self.buffer).await {
            Ok(0) => {}
            Ok(_) => return TerminalEvent::Output(self.buffer.split().freeze()),
            Err(e) => {
                return TerminalEvent::Failed(format!(
                    "reading the exec session of {} failed: {e}",
                    self.what
                ));
            }
        }
        // kube sends the status before it ends stdout, so it is there (or never comes).
        let status = match self.status.take() {
            Some(status) => status.await,
            None => None,
        };
        match status.as_ref().map(exit_of) {
            Some(Ok(exit)) => TerminalEvent::Exited(exit),
            Some(Err(message)) => {
                TerminalEvent::Failed(format!("the shell in {} failed: {message}", self.what))
            }
            None => TerminalEvent::Failed(format!(
                "the connection to the API server for {} was lost",
                self.what
            )),
        }
    }
}

struct ExecInput {
    stdin: Option<WriteHalf<SimplexStream>>,
    resize: futures_channel::mpsc::Sender<TerminalSize>,
    attached: Option<AttachedProcess>,
    ended: CancellationToken,
    what: String,
}

#[async_trait]
impl TerminalInput for ExecInput {
    async fn write(&mut self, data: Bytes) -> Result<(), BackendError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BackendError::Failed("stdin is closed".into()))?;
        tokio::select! {
            written = stdin.write_all(&data) => written.map_err(|e| {
                BackendError::Failed(format!("cannot write to the shell in {}: {e}", self.what))
            }),
            () = self.ended.cancelled() => Err(BackendError::Failed("the shell has ended".into())),
        }
    }

    async fn resize(&mut self, size: TermSize) -> Result<(), BackendError> {
        tokio::select! {
            sent = self.resize.send(terminal_size(size)) => sent.map_err(|e| {
                BackendError::Failed(format!("cannot resize the terminal of {}: {e}", self.what))
            }),
            () = self.ended.cancelled() => Err(BackendError::Failed("the shell has ended".into())),
        }
    }

    async fn close(&mut self) {
        tracing::debug!(container = %self.what, "closing the exec session");
        if let Some(mut stdin) = self.stdin.take() {
            // Marks the pipe closed without waiting; kube then sends the close signal.
            let _ = stdin.shutdown().await;
        }
        if let Some(attached) = self.attached.take() {
            // kube has no "flush, then stop" (`join` waits for the program, and dropping
            // the join future leaves kube's task running): give it a moment to send the
            // close signal, then abort it, which closes the socket.
            tokio::time::sleep(CLOSE_GRACE).await;
            attached.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_statuses_are_read_from_the_status_object() {
        let success = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_of(&success).unwrap().status, Some(0));
        let three = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_of(&three).unwrap().status, Some(3));
        let broken = Status {
            status: Some("Failure".into()),
            reason: Some("InternalError".into()),
            message: Some("exec: \"sh\": not found".into()),
            ..Status::default()
        };
        assert!(exit_of(&broken).unwrap_err().contains("not found"));
    }
}
