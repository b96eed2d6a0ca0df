//! A WebSocket client for tests that speaks the `common` wire.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use common::server::{ServerFrame, StreamEvent};
use common::{ClientFrame, Position};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take before the test fails (not a sleep: the
/// wait ends as soon as the event arrives).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Binary(Bytes),
    Frame(ServerFrame),
    Closed { code: u16, reason: String },
}

/// What the `connected` frame says about the stream just opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The session id, for resuming.
    pub session: String,
    /// Where the output starts (0 for a new stream, the asked position when resumed).
    pub position: Position,
    /// Whether an existing session was resumed.
    pub resumed: bool,
}

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Terminal bytes received so far (the resume position).
    pub received: u64,
    /// Every terminal byte received, in order.
    pub output: Vec<u8>,
    /// Sizes of the binary frames received.
    pub frame_sizes: Vec<usize>,
}

impl WsClient {
    /// Connects with the token as the `X-Token` cookie (as a browser would) and an
    /// optional Origin header.
    pub async fn connect(
        url: &str,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        if let Some(token) = token {
            request.headers_mut().insert(
                "cookie",
                HeaderValue::from_str(&format!("X-Token={token}"))?,
            );
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin)?);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(Self {
            ws,
            received: 0,
            output: Vec::new(),
            frame_sizes: Vec::new(),
        })
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        self.send_text(&frame.to_json()).await
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::text(text)).await?)
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::binary(bytes)).await?)
    }

    /// Whether some binary frame ended inside a multi-byte character, i.e. whether a test
    /// of text split across frames really split any.
    pub fn some_frame_split_a_character(&self) -> bool {
        let mut offset = 0;
        self.frame_sizes.iter().any(|size| {
            offset += size;
            self.output.get(offset).is_some_and(|b| b & 0xC0 == 0x80)
        })
    }

    /// Sends a text frame whose payload is not valid UTF-8 (a raw frame; clients that
    /// validate cannot).
    pub async fn send_invalid_utf8_text(&mut self) -> anyhow::Result<()> {
        let frame = Frame::message(vec![0xff, 0xfe, b'x'], OpCode::Data(Data::Text), true);
        Ok(self.ws.send(Message::Frame(frame)).await?)
    }

    /// Types a line into the terminal.
    pub async fn type_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.send(&ClientFrame::Input(format!("{line}\r"))).await
    }

    /// Sends a normal close (1000): "I am done with this stream".
    pub async fn close_normally(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await?;
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }

    /// Sends a close frame with `code` (e.g. 1000, which `close_normally` leaves out, as a
    /// browser's `close()` does) and reads until the relay's close arrives.
    pub async fn close_with_code(mut self, code: u16) -> anyhow::Result<()> {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        self.ws
            .close(Some(CloseFrame {
                code: code.into(),
                reason: "".into(),
            }))
            .await?;
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }

    /// The next event, or an error when none comes within [`EVENT_TIMEOUT`] (pings and
    /// pongs do not count as events, so they cannot keep a stuck test waiting).
    pub async fn next_event(&mut self) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("no event within the timeout")?;
            let event = match message {
                None => Event::Closed {
                    code: 1006,
                    reason: "connection ended without a close frame".into(),
                },
                Some(Err(e)) => Event::Closed {
                    code: 1006,
                    reason: format!("connection error: {e}"),
                },
                Some(Ok(Message::Binary(bytes))) => {
                    self.received += bytes.len() as u64;
                    self.output.extend_from_slice(&bytes);
                    self.frame_sizes.push(bytes.len());
                    Event::Binary(bytes)
                }
                Some(Ok(Message::Text(text))) => Event::Frame(
                    ServerFrame::parse(&text)
                        .with_context(|| format!("unparseable frame {text}"))?,
                ),
                Some(Ok(Message::Close(frame))) => Event::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                },
                Some(Ok(_)) => continue,
            };
            return Ok(event);
        }
    }

    /// The next stream event (text frame), skipping terminal bytes.
    pub async fn next_frame(&mut self) -> anyhow::Result<StreamEvent> {
        loop {
            match self.next_event().await? {
                Event::Frame(ServerFrame::Event(event)) => return Ok(event),
                Event::Binary(_) | Event::Frame(ServerFrame::Chat(_)) => {}
                Event::Closed { code, reason } => {
                    bail!("closed ({code}: {reason}) while waiting for a frame")
                }
            }
        }
    }

    /// Reads the `connected` frame.
    pub async fn connected(&mut self) -> anyhow::Result<Connected> {
        match self.next_frame().await? {
            StreamEvent::Connected {
                session,
                position,
                resumed,
                ..
            } => Ok(Connected {
                session,
                position,
                resumed,
            }),
            other => bail!("expected a connected frame, got {other:?}"),
        }
    }

    /// Reads until the terminal output received so far contains `needle`; returns the
    /// output since the call began.
    pub async fn read_until(&mut self, needle: &str) -> anyhow::Result<String> {
        let start = self.output.len();
        let mut searched = start;
        loop {
            // Only the new bytes (and a needle's length before them) can hold a new match.
            let from = searched.saturating_sub(needle.len()).max(start);
            if contains(&self.output[from..], needle.as_bytes()) {
                return Ok(String::from_utf8_lossy(&self.output[start..]).into_owned());
            }
            searched = self.output.len();
            match self.next_event().await? {
                Event::Closed { code, reason } => bail!(
                    "closed ({code}: {reason}) before {needle:?} arrived; got {:?}",
                    String::from_utf8_lossy(&self.output[start..])
                ),
                Event::Frame(ServerFrame::Event(StreamEvent::Error { message, .. })) => {
                    bail!("error frame while waiting for {needle:?}: {message}")
                }
                _ => {}
            }
        }
    }

    /// Reads until the socket closes; returns the close code and reason, and the frames seen.
    pub async fn read_until_closed(&mut self) -> anyhow::Result<(u16, String, Vec<StreamEvent>)> {
        let mut frames = Vec::new();
        loop {
            match self.next_event().await? {
                Event::Closed { code, reason } => return Ok((code, reason, frames)),
                Event::Frame(ServerFrame::Event(event)) => frames.push(event),
                _ => {}
            }
        }
    }

    /// Drops the connection without a close frame, as a network failure would.
    pub fn drop_connection(self) {
        drop(self.ws);
    }

    /// Types [`BULK_ZEROS_COMMAND`] at the shell's prompt.
    pub async fn type_bulk_zeros(&mut self) -> anyhow::Result<()> {
        self.type_line(BULK_ZEROS_COMMAND).await
    }

    /// Checks that the output of [`BULK_ZEROS_COMMAND`] arrived whole: every base64 digit
    /// of its zeros is an `A`.
    pub fn assert_bulk_zeros_arrived(&self) {
        let base64_bytes = self.output.iter().filter(|b| **b == b'A').count();
        assert!(
            base64_bytes >= BULK_ZERO_BYTES * 4 / 3 - 4,
            "lost output: {base64_bytes} base64 digits"
        );
    }
}

/// Zero bytes [`BULK_ZEROS_COMMAND`] prints as base64 (the number in its `head -c`).
pub const BULK_ZERO_BYTES: usize = 8_388_608;

/// 8 MiB of zeros as base64 (11 MB of output), then `DONE-2`: more than any relay buffer.
pub const BULK_ZEROS_COMMAND: &str =
    "head -c 8388608 /dev/zero | base64 -w 1000; echo DONE-$((1+1))";

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

impl WsClient {
    /// Plays dead: reads the raw socket without answering pings (no WebSocket library in
    /// the way) until the relay sends a close frame; returns its code and reason.
    pub async fn play_dead_until_closed(&mut self) -> anyhow::Result<(u16, String)> {
        use tokio::io::AsyncReadExt;
        let MaybeTlsStream::Plain(tcp) = self.ws.get_mut() else {
            bail!("play_dead_until_closed needs a plain TCP connection");
        };
        let mut buf = Vec::new();
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            while let Some((opcode, payload, used)) = parse_server_frame(&buf) {
                buf.drain(..used);
                if opcode == 0x8 {
                    let code = payload
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .unwrap_or(1005);
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    return Ok((code, reason));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
                .await
                .context("the relay never closed the silent connection")??;
            if n == 0 {
                bail!("the relay dropped the connection without a close frame");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One unmasked server frame from the front of `buf`: (opcode, payload, bytes used).
fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let opcode = buf.first()? & 0x0f;
    let short = (buf.get(1)? & 0x7f) as usize;
    let (len, header) = match short {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n, 2),
    };
    let payload = buf.get(header..header + len)?.to_vec();
    Some((opcode, payload, header + len))
}
