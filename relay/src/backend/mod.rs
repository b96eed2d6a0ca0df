//! Backends: where a WebSocket's stream comes from and goes to.
//!
//! The pump (`crate::pump`) drives every WebSocket the same way; what differs per backend
//! is an [`Attachment`]: the next thing to send, and what to do with the browser's input.
//! Terminal backends (ssh, k8s exec) only adapt a remote shell to [`TerminalStreams`]; the
//! session registry (`crate::session`) turns those into attachments that survive
//! reconnects.

pub mod chat;
pub mod job;
pub mod k8s;
pub mod redis_stream;
pub mod ssh;
pub mod stream_id;
pub mod tail;

use async_trait::async_trait;
use bytes::Bytes;
use common::server::{ErrorCode, ServerFrame};
use common::{ClientFrame, CloseCode, TermSize};

/// What the pump sends the browser next.
#[derive(Debug)]
pub enum Outbound {
    /// Raw terminal bytes, as a binary frame.
    Binary(Bytes),
    /// A JSON text frame.
    Text(ServerFrame),
    /// Close the WebSocket with this code and reason; the stream is over for this socket.
    Close(CloseCode, String),
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
}

impl InputRefused {
    pub fn not_accepted(what: &str) -> Self {
        Self {
            code: ErrorCode::NotAccepted,
            message: format!("this stream does not accept {what} frames"),
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

    /// Handles one frame from the browser.
    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused>;

    /// The browser closed the stream normally (close code 1000): end it now rather than
    /// keeping it for a reconnect.
    fn end(&mut self) {}
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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

impl BackendError {
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::NotFound(_) => CloseCode::NotFound,
            Self::Forbidden(_) => CloseCode::Forbidden,
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
