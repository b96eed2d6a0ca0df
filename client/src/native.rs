//! The native transport: tokio + tokio-tungstenite (feature `native`).
//!
//! Credentials go as headers: `Authorization: Bearer <jwt>` or the `X-Token` cookie; the
//! `Origin` header only when the config names one. `ws://` only (no TLS feature is built
//! in): put a TLS-terminating proxy's `ws://` side or a loopback relay behind it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{ChatClient, Events};
use crate::close::{ChatError, standard};
use crate::machine::{Auth, ClientConfig, ConnectRequest};
use crate::transport::{Socket, SocketEvent, Transport};

/// Starts a chat client on the current tokio runtime.
pub fn connect(config: ClientConfig) -> (ChatClient, Events) {
    let (client, events, driver) = ChatClient::new(Native::default(), config);
    tokio::spawn(driver);
    (client, events)
}

/// tokio + tokio-tungstenite.
#[derive(Debug, Clone, Copy)]
pub struct Native {
    started: tokio::time::Instant,
}

impl Default for Native {
    fn default() -> Self {
        Self {
            started: tokio::time::Instant::now(),
        }
    }
}

/// One socket to the relay.
pub struct NativeSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

fn header(value: &str, what: &str) -> Result<HeaderValue, ChatError> {
    HeaderValue::from_str(value).map_err(|_| ChatError::Invalid {
        reason: format!("the {what} cannot be sent as an HTTP header"),
    })
}

impl Transport for Native {
    type Socket = NativeSocket;

    async fn open(&self, request: &ConnectRequest) -> Result<NativeSocket, ChatError> {
        let mut http =
            request
                .url
                .as_str()
                .into_client_request()
                .map_err(|e| ChatError::Invalid {
                    reason: format!("{}: {e}", request.url),
                })?;
        let headers = http.headers_mut();
        match &request.auth {
            Auth::Ambient => {}
            Auth::Bearer(token) => {
                headers.insert(
                    "authorization",
                    header(&format!("Bearer {token}"), "token")?,
                );
            }
            Auth::Cookie(token) => {
                headers.insert("cookie", header(&format!("X-Token={token}"), "token")?);
            }
        }
        if let Some(origin) = &request.origin {
            headers.insert("origin", header(origin, "Origin")?);
        }
        match tokio_tungstenite::connect_async(http).await {
            Ok((ws, _)) => Ok(NativeSocket { ws }),
            Err(WsError::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                Err(ChatError::Refused {
                    status: response.status().as_u16(),
                    reason: body.chars().take(200).collect(),
                })
            }
            Err(e @ (WsError::Url(_) | WsError::HttpFormat(_))) => Err(ChatError::Invalid {
                reason: e.to_string(),
            }),
            Err(e) => Err(ChatError::ConnectionLost {
                code: standard::ABNORMAL,
                reason: e.to_string(),
            }),
        }
    }

    async fn sleep(&self, delay: Duration) {
        tokio::time::sleep(delay).await;
    }

    fn random(&self) -> f64 {
        rand::random()
    }

    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
}

impl Socket for NativeSocket {
    async fn send(&mut self, text: String) -> Result<(), ChatError> {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| ChatError::ConnectionLost {
                code: standard::ABNORMAL,
                reason: e.to_string(),
            })
    }

    async fn next(&mut self) -> SocketEvent {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return SocketEvent::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => SocketEvent::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.to_string(),
                        },
                        None => SocketEvent::Closed {
                            code: standard::NO_STATUS,
                            reason: String::new(),
                        },
                    };
                }
                // Pings are answered by tungstenite itself; binary frames are not chat.
                Some(Ok(_)) => continue,
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
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}
