//! Backends: where a WebSocket's stream comes from and goes to.
//!
//! The pump (`crate::pump`) drives every WebSocket the same way; what differs per backend
//! is an [`Attachment`]: the next thing to send, and what to do with the browser's input.
//! Terminal backends (ssh, k8s exec, local shells) only adapt a remote shell to [`TerminalStreams`]; the
//! session registry (`crate::session`) turns those into attachments that survive
//! reconnects.
//!
//! A backend knows its hub, its config entry and the resume position, nothing of the
//! server: the endpoints (`crate::endpoints`) resolve a request to those and call it.

pub mod chat;
pub mod files;
pub mod job;
pub mod k8s;
pub mod local;
pub mod redis_stream;
pub mod sftp;
pub mod ssh;
pub mod stream_id;
pub mod tail;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use common::server::{ErrorCode, ServerFrame, StreamEvent};
use common::{ClientFrame, CloseCode, Position, ResizeOrder, StreamKind, TermSize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::close::{Close, CloseCause};

/// Which backend serves a stream (the metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Ssh,
    K8s,
    Local,
    Tail,
    Chat,
    Job,
    /// A read-only watch of a running terminal session.
    Watch,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::K8s => "k8s",
            Self::Local => "local",
            Self::Tail => "tail",
            Self::Chat => "chat",
            Self::Job => "job",
            Self::Watch => "watch",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the `connected` frame tells the browser: which session it is attached to and the
/// position the stream starts from (see `common::resume`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub stream: StreamKind,
    pub session: String,
    pub position: Position,
    pub resumed: bool,
}

impl Hello {
    pub fn frame(&self) -> ServerFrame {
        StreamEvent::Connected {
            stream: self.stream,
            session: self.session.clone(),
            position: self.position.clone(),
            resumed: self.resumed,
        }
        .into()
    }
}

/// A stream a backend has just opened (or resumed): the pump sends the hello first, then
/// what the attachment produces.
pub struct Opened {
    pub hello: Hello,
    pub attachment: Box<dyn Attachment>,
    /// The id of the session's recording, for the audit trail.
    pub recording: Option<String>,
    /// Frames sent right after `connected` (e.g. that the session is not recorded).
    pub notices: Vec<ServerFrame>,
}

impl Opened {
    pub fn new(hello: Hello, attachment: impl Attachment + 'static) -> Self {
        Self {
            hello,
            attachment: Box::new(attachment),
            recording: None,
            notices: Vec::new(),
        }
    }
}

/// What the pump sends the browser next.
#[derive(Debug)]
pub enum Outbound {
    /// Raw terminal bytes, as a binary frame.
    Binary(Bytes),
    /// A JSON text frame.
    Text(ServerFrame),
    /// A JSON text frame serialised already, shared by every socket that sends it (a chat
    /// message reaches every viewer of its room as the same bytes).
    Json(Utf8Bytes),
    /// Close the WebSocket; the stream is over for this socket.
    Close(Close),
    /// Nothing to send: input that was waiting went through, so the pump may read the
    /// browser's frames again (see [`Attachment::input_blocked`]).
    InputReady,
}

/// What the browser sent.
#[derive(Debug)]
pub enum Inbound {
    Frame(ClientFrame),
    /// A binary frame: raw keystrokes (e.g. a binary paste).
    Binary(Bytes),
}

/// Input the stream refused; the pump sends it back as an error frame and goes on.
#[derive(Debug, Clone)]
pub struct InputRefused {
    pub code: ErrorCode,
    pub message: String,
    /// The client's id of the chat message refused, when it gave one.
    pub client_id: Option<common::chat::ClientId>,
}

impl InputRefused {
    pub fn not_accepted(what: &'static str) -> Self {
        Self::from(common::FrameError::NotAccepted(what))
    }

    /// A well-formed frame that makes no sense here (e.g. an ack beyond what was sent).
    pub fn bad_frame(message: String) -> Self {
        Self {
            code: ErrorCode::BadFrame,
            message,
            client_id: None,
        }
    }
}

impl From<common::FrameError> for InputRefused {
    fn from(e: common::FrameError) -> Self {
        let code = match e {
            common::FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            common::FrameError::NotAccepted(_) => ErrorCode::NotAccepted,
            _ => ErrorCode::BadFrame,
        };
        Self {
            code,
            message: e.to_string(),
            client_id: None,
        }
    }
}

/// One WebSocket's view of a stream.
///
/// Dropping an attachment detaches it: a terminal enters its grace period, a viewer leaves
/// its fan-out. [`Attachment::end`] says the user closed the stream on purpose.
#[async_trait]
pub trait Attachment: Send {
    /// Waits for the next thing to send. Must be cancel-safe: the pump may drop the future
    /// and call again, and nothing may be lost.
    async fn next(&mut self) -> Outbound;

    /// What there is to send right now without waiting, if anything: the pump writes it in
    /// the same batch as what [`Attachment::next`] returned (one flush, one write to the
    /// socket, for a burst of small frames). Nothing is lost by not calling it.
    fn ready(&mut self) -> Option<Outbound> {
        None
    }

    /// Handles one frame from the browser; read-only streams keep this refusal.
    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused> {
        Err(InputRefused::not_accepted(match input {
            Inbound::Binary(_) => "binary",
            Inbound::Frame(_) => "input",
        }))
    }

    /// Whether input waits for the backend to take it: the pump then stops reading the
    /// browser's frames (TCP pushes back on the browser) but goes on sending output,
    /// pinging and closing; [`Attachment::next`] returns [`Outbound::InputReady`] once the
    /// input went through. `input` itself must never wait on a slow backend.
    fn input_blocked(&self) -> bool {
        false
    }

    /// The browser closed the stream normally (close code 1000): end it now rather than
    /// keeping it for a reconnect.
    fn end(&mut self) {}

    /// How the browser orders a `{"resize": [a, b]}` pair (the endpoint's query says).
    fn resize_order(&self) -> ResizeOrder {
        ResizeOrder::RowsCols
    }
}

/// Why a backend could not be opened, in words for the user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    HostKey(String),
    /// Refused for a reason a retry cannot fix by itself (nothing listens on the host's
    /// port, the credentials were refused, the command does not exist).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

impl CloseCause for BackendError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::NotFound(_) => CloseCode::NotFound,
            Self::Forbidden(_) => CloseCode::Forbidden,
            Self::HostKey(_) | Self::Refused(_) => CloseCode::BackendRefused,
            _ => CloseCode::BackendUnavailable,
        }
    }
}

/// How a remote program ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub status: Option<i32>,
    pub signal: Option<String>,
}

/// Output of a remote terminal.
#[derive(Debug)]
pub enum TerminalEvent {
    Output(Bytes),
    /// The program ended; nothing follows.
    Exited(ExitInfo),
    /// The connection failed; nothing follows.
    Failed(String),
}

/// The reading half of a remote terminal.
#[async_trait]
pub trait TerminalOutput: Send {
    /// The next output. The caller stops calling while the browser is behind, which is
    /// what slows the remote program down (SSH window, TCP), so implementations must not
    /// read ahead without bound.
    async fn next(&mut self) -> TerminalEvent;
}

/// The writing half of a remote terminal.
#[async_trait]
pub trait TerminalInput: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), BackendError>;
    async fn resize(&mut self, size: TermSize) -> Result<(), BackendError>;
    /// End the remote program (hang up), then release the connection.
    async fn close(&mut self);
}

/// A connected remote terminal, as a backend hands it to the session registry.
pub struct TerminalStreams {
    pub output: Box<dyn TerminalOutput>,
    pub input: Box<dyn TerminalInput>,
}
