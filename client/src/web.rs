//! The browser transport: gloo-net's WebSocket (feature `web`, wasm32).
//!
//! A browser cannot set headers on a WebSocket: a bearer token goes as a `bearer.<jwt>`
//! entry in `Sec-WebSocket-Protocol` beside `opsdeck` (the relay answers `opsdeck` and
//! never echoes the token); otherwise the browser sends its own `X-Token` cookie.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, WebSocketError};

use crate::client::{ChatClient, Events};
use crate::close::{ChatError, standard};
use crate::machine::{Auth, ClientConfig, ConnectRequest};
use crate::transport::{Socket, SocketEvent, Transport};

/// Starts a chat client on the page's event loop.
pub fn connect(config: ClientConfig) -> (ChatClient, Events) {
    let (client, events, driver) = ChatClient::new(Web, config);
    wasm_bindgen_futures::spawn_local(driver);
    (client, events)
}

/// The browser's WebSocket and timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Web;

/// One socket to the relay.
pub struct WebSocketConn {
    ws: Option<WebSocket>,
}

impl Transport for Web {
    type Socket = WebSocketConn;

    async fn open(&self, request: &ConnectRequest) -> Result<WebSocketConn, ChatError> {
        let ws = match &request.auth {
            Auth::Bearer(token) => WebSocket::open_with_protocols(
                &request.url,
                &["opsdeck", &format!("bearer.{token}")],
            ),
            Auth::Ambient | Auth::Cookie(_) => WebSocket::open(&request.url),
        };
        let ws = ws.map_err(|e| ChatError::Invalid {
            reason: e.to_string(),
        })?;
        Ok(WebSocketConn { ws: Some(ws) })
    }

    async fn sleep(&self, delay: Duration) {
        gloo_timers::future::sleep(delay).await;
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }
}

impl Socket for WebSocketConn {
    async fn send(&mut self, text: String) -> Result<(), ChatError> {
        let Some(ws) = self.ws.as_mut() else {
            return Err(ChatError::ClosedByClient);
        };
        ws.send(Message::Text(text))
            .await
            .map_err(|e| ChatError::ConnectionLost {
                code: standard::ABNORMAL,
                reason: e.to_string(),
            })
    }

    async fn next(&mut self) -> SocketEvent {
        let Some(ws) = self.ws.as_mut() else {
            return SocketEvent::Closed {
                code: 1000,
                reason: String::new(),
            };
        };
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return SocketEvent::Text(text),
                Some(Ok(Message::Bytes(_))) => continue,
                // The `error` event comes before the `close` event that says why.
                Some(Err(WebSocketError::ConnectionError)) => continue,
                Some(Err(WebSocketError::ConnectionClose(close))) => {
                    return SocketEvent::Closed {
                        code: close.code,
                        reason: close.reason,
                    };
                }
                Some(Err(e)) => {
                    return SocketEvent::dropped(e.to_string());
                }
                None => {
                    return SocketEvent::dropped("the connection dropped");
                }
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        if let Some(ws) = self.ws.take() {
            let _ = ws.close(Some(code), Some(reason));
        }
    }
}
