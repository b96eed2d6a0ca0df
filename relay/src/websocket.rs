//! The WebSocket handshake, done here rather than by `warp::ws` so the relay sizes each
//! socket's buffers: warp's builder cannot set tungstenite's read buffer, and its 128 KiB
//! default (zero-filled on the first read) was nine tenths of an idle connection's memory.

use std::future::Future;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// One browser's socket after the handshake. Boxed: the socket moves down through the
/// endpoint into the pump, and each async fn on the way keeps a slot for its argument
/// beside its own copy, for the socket's whole life (a few hundred bytes each, per socket).
pub type WebSocket = Box<WebSocketStream<TokioIo<Upgraded>>>;

/// Bytes read from the socket at a time. Browsers send keystrokes and small JSON frames;
/// a larger frame is still read whole, in several reads, up to `max_frame_bytes`.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// A request that asked for a WebSocket, with what is needed to answer it.
pub struct UpgradeRequest {
    accept_key: String,
    on_upgrade: OnUpgrade,
    /// The request's headers, for the endpoint's own checks (token, subprotocol).
    headers: HeaderMap,
}

/// Why a request to a WebSocket endpoint was not a WebSocket handshake (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAWebSocket(&'static str);

impl warp::reject::Reject for NotAWebSocket {}

/// Accepts a `GET` that carries a valid WebSocket (version 13) handshake.
pub fn upgrade_request() -> impl Filter<Extract = (UpgradeRequest,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and_then(
            |headers: HeaderMap, on_upgrade: Option<OnUpgrade>| async move {
                let accept_key = accept_key(&headers).map_err(warp::reject::custom)?;
                let on_upgrade = on_upgrade.ok_or_else(|| {
                    warp::reject::custom(NotAWebSocket(
                        "this connection cannot be upgraded to a WebSocket (HTTP/1.1 is needed)",
                    ))
                })?;
                Ok::<_, Rejection>(UpgradeRequest {
                    accept_key,
                    on_upgrade,
                    headers,
                })
            },
        )
}

impl UpgradeRequest {
    /// Moves the request's headers out, for the endpoint (the handshake no longer needs them).
    pub fn take_headers(&mut self) -> HeaderMap {
        std::mem::take(&mut self.headers)
    }

    /// Answers `101 Switching Protocols` and runs `serve` on the socket once the upgrade
    /// completes. Frames larger than `max_frame_bytes` fail the read with a capacity error.
    pub fn accept<F, Fut>(self, max_frame_bytes: usize, serve: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(max_frame_bytes))
            .max_frame_size(Some(max_frame_bytes));
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    serve(Box::new(ws)).await;
                }
                Err(e) => tracing::debug!("websocket upgrade did not complete: {e}"),
            }
        });
        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&self.accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// The `Sec-WebSocket-Accept` answer to a valid handshake (RFC 6455 §4.2.1).
fn accept_key(headers: &HeaderMap) -> Result<String, NotAWebSocket> {
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(NotAWebSocket(
            "a WebSocket endpoint: the request needs `Connection: upgrade`",
        ));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(NotAWebSocket(
            "a WebSocket endpoint: the request needs `Upgrade: websocket`",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(NotAWebSocket(
            "only WebSocket version 13 is spoken here (Sec-WebSocket-Version: 13)",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(NotAWebSocket("the handshake has no Sec-WebSocket-Key"))?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// Whether a comma-separated header lists `token` (case-insensitive), in any of its lines.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers
    }

    #[test]
    fn a_valid_handshake_gets_the_rfc_accept_key() {
        // The example of RFC 6455 §1.3.
        assert_eq!(
            accept_key(&handshake()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn incomplete_handshakes_say_what_is_missing() {
        for (name, needle) in [
            (header::CONNECTION, "Connection"),
            (header::UPGRADE, "Upgrade"),
            (header::SEC_WEBSOCKET_VERSION, "version 13"),
            (header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key"),
        ] {
            let mut headers = handshake();
            headers.remove(name);
            let error = accept_key(&headers).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
