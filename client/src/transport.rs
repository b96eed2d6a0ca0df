//! What the chat client needs from its platform: open a WebSocket, wait, a random number.
//!
//! The client's logic ([`crate::machine`], [`crate::client`]) is written once against these
//! two traits; [`crate::native`] implements them on tokio + tokio-tungstenite and
//! [`crate::web`] in the browser through gloo-net. A test can implement them too.

use std::future::Future;
use std::time::Duration;

use crate::close::ChatError;
use crate::machine::ConnectRequest;

/// What a socket hands the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    /// A text frame (binary frames are not part of the chat protocol and are skipped).
    Text(String),
    /// The socket ended: the relay's close code and reason, or 1006 when it just dropped.
    Closed { code: u16, reason: String },
}

impl SocketEvent {
    /// The socket dropped without a close frame (1006), for `reason`.
    pub fn dropped(reason: impl Into<String>) -> Self {
        Self::Closed {
            code: crate::close::standard::ABNORMAL,
            reason: reason.into(),
        }
    }
}

/// One open WebSocket.
pub trait Socket {
    /// Sends a text frame; an error means the socket is gone (its close comes from
    /// [`Socket::next`]).
    fn send(&mut self, text: String) -> impl Future<Output = Result<(), ChatError>>;
    /// The next frame or the close. Must be cancel-safe: the client drops it when the app
    /// sends something meanwhile.
    fn next(&mut self) -> impl Future<Output = SocketEvent>;
    /// Closes the socket with `code` and `reason`.
    fn close(&mut self, code: u16, reason: &str) -> impl Future<Output = ()>;
}

/// The platform the client runs on.
pub trait Transport {
    type Socket: Socket;
    /// Opens a socket as `request` says (URL, credentials, Origin). A refusal is the error
    /// the client acts on: [`ChatError::should_reconnect`] decides whether it tries again.
    fn open(
        &self,
        request: &ConnectRequest,
    ) -> impl Future<Output = Result<Self::Socket, ChatError>>;
    /// Waits `delay`.
    fn sleep(&self, delay: Duration) -> impl Future<Output = ()>;
    /// A random number in `[0, 1)`, for jitter and client ids.
    fn random(&self) -> f64;
    /// Milliseconds on a monotonic (or wall) clock, to tell how long a connection lasted.
    fn now_ms(&self) -> f64;
}
