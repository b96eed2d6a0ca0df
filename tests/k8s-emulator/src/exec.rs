//! `GET /api/v1/namespaces/{ns}/pods/{pod}/exec`: the remote command
//! protocol over WebSocket, with a real process behind it.
//!
//! Protocol facts (from `k8s.io/apimachinery/pkg/util/httpstream/wsstream`
//! and `kubelet/cri/streaming/remotecommand`):
//! - Subprotocols `v5.channel.k8s.io` (preferred) and `v4.channel.k8s.io`;
//!   the client lists them in one `Sec-WebSocket-Protocol` header, the server
//!   echoes the chosen one.
//! - Every message is binary; byte 0 is the channel: 0 stdin, 1 stdout,
//!   2 stderr, 3 error/status, 4 resize. Right after the upgrade the server
//!   sends an empty message on the lowest writable channel (`[1]` when stdout
//!   is attached).
//! - Resize messages carry `{"Width":W,"Height":H}` (field names matched
//!   case-insensitively, as Go's JSON decoder does).
//! - v5 only: `[255, ch]` means the client closed stream `ch`; closing 0 is
//!   stdin EOF. A 255 message of any other length ends the connection.
//! - When the command ends the server sends channel 3 with a `metav1.Status`
//!   (no kind/apiVersion): Success, or `NonZeroExitCode` with cause
//!   `ExitCode`, then closes with code 1000 (client-go reports any other
//!   close code as an error). All output is sent before the status.
//! - Output bytes are relayed as read from the PTY/pipes, never decoded.
//!
//! Emulator choices: with a TTY, stderr is not attached (the kubelet drops
//! it) and stdin EOF is not forwarded (a terminal has no half-close). When
//! the command exits, the rest of its process group is killed so the output
//! streams reach EOF. When the WebSocket closes first, the group is killed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::config::PodPhase;
use crate::pods::ContainerView;
use crate::process::{self, ExecSpec, Input, ProcessRegistry};
use crate::query::Query;
use crate::server::{Body, empty_body};
use crate::status::Status;

/// The v5 subprotocol (supports stream close).
pub const V5: &str = "v5.channel.k8s.io";
/// The v4 subprotocol (JSON Status on channel 3).
pub const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long output may keep flowing after the command exits and its group
/// was killed (only a process that escaped the group can hold it open).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Messages queued towards the WebSocket before readers wait.
const OUTBOUND_BUFFER: usize = 64;

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Target container.
    pub target: ContainerView,
    /// Process spec.
    pub spec: ExecSpec,
}

impl ExecRequest {
    /// Decodes `PodExecOptions` and checks that the container can run it.
    pub fn new(target: ContainerView, query: &Query) -> Result<Self, Status> {
        let command = query.all("command");
        if command.is_empty() {
            return Err(Status::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        let tty = query.bool("tty");
        let stdin = query.bool("stdin");
        let stdout = query.bool("stdout");
        // The kubelet bypasses stderr when a TTY is requested.
        let stderr = query.bool("stderr") && !tty;
        if !stdin && !stdout && !query.bool("stderr") {
            return Err(Status::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        match target.phase {
            PodPhase::Running => {}
            PodPhase::Pending => {
                return Err(Status::bad_request(format!(
                    "container \"{}\" in pod \"{}\" is waiting to start: ContainerCreating",
                    target.container, target.pod
                )));
            }
            done => {
                return Err(Status::bad_request(format!(
                    "cannot exec into a container in a completed pod; current phase is {}",
                    done.as_str()
                )));
            }
        }
        let spec = ExecSpec {
            command,
            tty,
            stdin,
            stdout,
            stderr,
            working_dir: target.working_dir.clone(),
            path: target.path.clone(),
        };
        Ok(ExecRequest { target, spec })
    }
}

/// Picks the subprotocol: v5 if offered, else v4.
fn negotiate(headers: &HeaderMap) -> Result<&'static str, Status> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    [V5, V4]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
        .ok_or_else(|| {
            Status::bad_request(format!(
                "requested protocol(s) are not supported: [{}]; supports [{V5} {V4}]",
                offered.join(" ")
            ))
        })
}

fn is_websocket_request(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

/// Answers the upgrade and starts the session on the upgraded connection.
pub fn serve(
    mut request: Request<Incoming>,
    exec: ExecRequest,
    registry: Arc<ProcessRegistry>,
    shutdown: watch::Receiver<bool>,
) -> Result<Response<Body>, Status> {
    let headers = request.headers();
    if !is_websocket_request(headers) {
        return Err(Status::bad_request("Upgrade request required"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| Status::bad_request("missing Sec-WebSocket-Key"))?;
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Status::bad_request("unsupported Sec-WebSocket-Version"));
    }
    let protocol = negotiate(headers)?;
    let accept = derive_accept_key(key.as_bytes());

    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run_session(ws, exec, protocol == V5, registry, shutdown).await;
            }
            Err(error) => tracing::warn!(%error, "exec upgrade failed"),
        }
    });

    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| Status::internal_error("bad accept key"))?,
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    Ok(response)
}

/// Events for the input task, in arrival order.
enum InputEvent {
    Data(Vec<u8>),
    Resize { width: u16, height: u16 },
    Close,
}

enum Outcome {
    Exited(std::process::ExitStatus),
    ClientGone,
    Shutdown,
}

type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

async fn run_session(
    ws: WebSocketStream<Upgraded>,
    exec: ExecRequest,
    supports_close: bool,
    registry: Arc<ProcessRegistry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let spec = exec.spec;
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUTBOUND_BUFFER);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        // x/net/websocket closes with 1000; client-go treats any other code
        // (even "no status") as an error on the error stream.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });

    let first = if spec.stdout {
        1
    } else if spec.stderr {
        2
    } else {
        STATUS
    };
    let _ = out_tx.send(Message::binary(vec![first])).await;

    let spawned = match process::spawn(&spec, &registry) {
        Ok(spawned) => spawned,
        Err(error) => {
            let why = if error.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "exec: \"{}\": executable file not found in $PATH",
                    spec.command.first().map_or("", String::as_str)
                )
            } else {
                error.to_string()
            };
            let status = Status::exec_internal_error(format!(
                "error executing command in container: failed to exec in container: OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
            ));
            let _ = out_tx.send(status_message(&status)).await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    };
    let process::Spawned {
        mut child,
        guard,
        input,
        outputs,
    } = spawned;
    tracing::debug!(command = ?spec.command, tty = spec.tty, "exec started");

    let mut pumps = JoinSet::new();
    for (channel, reader) in outputs {
        pumps.spawn(pump_output(channel, reader, out_tx.clone()));
    }
    let (input_tx, input_rx) = mpsc::channel::<InputEvent>(OUTBOUND_BUFFER);
    let input_task = tokio::spawn(feed_input(input, input_rx, spec.stdin));

    let outcome = loop {
        tokio::select! {
            status = child.wait() => match status {
                Ok(status) => break Outcome::Exited(status),
                Err(error) => {
                    tracing::warn!(%error, "waiting for exec child failed");
                    break Outcome::ClientGone;
                }
            },
            frame = source.next() => match frame {
                Some(Ok(Message::Binary(data))) => {
                    if !dispatch(&data, supports_close, &input_tx).await {
                        break Outcome::ClientGone;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if !dispatch(text.as_bytes(), supports_close, &input_tx).await {
                        break Outcome::ClientGone;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Outcome::ClientGone,
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => break Outcome::Shutdown,
        }
    };

    match outcome {
        Outcome::Exited(status) => {
            // Whatever else runs in the group would keep the PTY or pipes
            // open; the command is done, so end them and drain the output.
            guard.kill();
            let drained = tokio::time::timeout(DRAIN_LIMIT, async {
                while pumps.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                pumps.abort_all();
            }
            let code = process::exit_code(status);
            let result = if code == 0 {
                Status::exec_success()
            } else {
                Status::exec_exit_code(&spec.command, code)
            };
            tracing::debug!(command = ?spec.command, code, "exec finished");
            let _ = out_tx.send(status_message(&result)).await;
        }
        Outcome::ClientGone | Outcome::Shutdown => {
            guard.kill();
            pumps.abort_all();
            let _ = child.wait().await;
            tracing::debug!(command = ?spec.command, "exec connection closed; process group killed");
        }
    }
    input_task.abort();
    drop(input_tx);
    drop(out_tx);
    drop(guard);
    let _ = writer.await;
}

fn status_message(status: &Status) -> Message {
    let mut frame = vec![STATUS];
    frame.extend_from_slice(&status.to_json());
    Message::binary(frame)
}

/// Routes one client message; false ends the connection (protocol error or
/// the session is shutting down).
async fn dispatch(data: &[u8], supports_close: bool, input: &mpsc::Sender<InputEvent>) -> bool {
    let Some((&channel, payload)) = data.split_first() else {
        return true;
    };
    tracing::trace!(channel, len = payload.len(), head = ?&payload[..payload.len().min(16)], "exec frame from client");
    let event = match channel {
        CLOSE if supports_close => {
            let [closed] = payload else {
                tracing::warn!("stream close signal must carry exactly one channel byte");
                return false;
            };
            if *closed != STDIN {
                return true;
            }
            InputEvent::Close
        }
        STDIN => InputEvent::Data(payload.to_vec()),
        RESIZE => {
            // The kubelet decodes a stream of JSON objects on this channel.
            let mut last = None;
            for value in
                serde_json::Deserializer::from_slice(payload).into_iter::<serde_json::Value>()
            {
                match value.ok().and_then(|v| terminal_size(&v)) {
                    Some(size) => last = Some(size),
                    None => tracing::warn!("ignoring an invalid resize message"),
                }
            }
            match last {
                Some((width, height)) => InputEvent::Resize { width, height },
                None => return true,
            }
        }
        _ => return true,
    };
    input.send(event).await.is_ok()
}

/// `{"Width":W,"Height":H}` with Go's case-insensitive field matching.
fn terminal_size(value: &serde_json::Value) -> Option<(u16, u16)> {
    let object = value.as_object()?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_u64())
            .and_then(|v| u16::try_from(v).ok())
    };
    Some((field("width").unwrap_or(0), field("height").unwrap_or(0)))
}

async fn feed_input(
    mut input: Input,
    mut events: mpsc::Receiver<InputEvent>,
    stdin_attached: bool,
) {
    let mut open = stdin_attached;
    while let Some(event) = events.recv().await {
        match event {
            InputEvent::Data(data) if open => {
                if process::write_input(&mut input, &data).await.is_err() {
                    // The process stopped reading; keep draining events.
                    open = false;
                }
            }
            InputEvent::Data(_) => {}
            InputEvent::Resize { width, height } => {
                if let Input::Pty(pty) = &input
                    && let Err(error) = pty.resize(pty_process::Size::new(height, width))
                {
                    tracing::warn!(%error, "resizing the PTY failed");
                }
            }
            InputEvent::Close => {
                open = false;
                if let Input::Pipe(_) = input {
                    // Dropping the pipe is the EOF the process reads.
                    input = Input::None;
                }
            }
        }
    }
}

async fn pump_output(
    channel: u8,
    mut reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    out: mpsc::Sender<Message>,
) {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        // A PTY master reports EIO once every slave side is closed: that is
        // its end of file.
        let n = match reader.read(&mut buffer[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut frame = Vec::with_capacity(n + 1);
        frame.push(channel);
        frame.extend_from_slice(&buffer[1..=n]);
        if out.send(Message::binary(frame)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_v5_and_rejects_unknown_protocols() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io, v5.channel.k8s.io"),
        );
        assert_eq!(negotiate(&headers).unwrap(), V5);
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        assert_eq!(negotiate(&headers).unwrap(), V4);
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("channel.k8s.io"),
        );
        assert_eq!(negotiate(&headers).unwrap_err().code, 400);
    }

    #[test]
    fn resize_fields_match_case_insensitively() {
        let v = serde_json::json!({"width": 120, "HEIGHT": 40});
        assert_eq!(terminal_size(&v), Some((120, 40)));
    }
}
