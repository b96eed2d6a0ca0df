//! The chat fan-out peer: Django Channels with channels_redis, served by daphne — the
//! classic Python way to broadcast over WebSockets through Redis. The project is ours and
//! minimal (`tests/bench/peers/channels/`: one `AsyncJsonWebsocketConsumer` that joins its
//! room's group and sends every message it receives to the group); the pinned packages are
//! installed into the bench's venv and it is started on the bench's redis-server.
//!
//! [`ChannelsPublisher`] and [`ChannelsSubscriber`] speak its JSON frames (`{"text": …}`)
//! behind the same `Publisher`/`Subscriber` traits as the relay's chat client, so the same
//! fan-out measurement runs on it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use opsdeck_tests::load::{Publisher, Received, Subscriber};
use opsdeck_tests::net;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::python_venv::PythonVenv;

/// The pinned versions (Django 5.2 LTS: the last line that runs on Python 3.10 and 3.11).
pub const REQUIREMENTS: [&str; 4] = [
    "django==5.2.19",
    "channels==4.3.2",
    "channels-redis==4.3.0",
    "daphne==4.2.3",
];
/// The peer in the tables.
pub const NAME: &str = "Django Channels 4.3.2 + channels_redis 4.3.0 (Django 5.2.19, daphne 4.2.3)";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// daphne serving the bench's Channels project (stopped on drop).
pub struct ChannelsChat {
    _child: Child,
    port: u16,
    _log: tempfile::TempDir,
}

impl ChannelsChat {
    /// Installs the packages into the bench's venv when missing, and starts daphne with the
    /// Redis channel layer on `redis_url`.
    pub async fn start(redis_url: &str) -> anyhow::Result<Self> {
        let venv = PythonVenv::with(&REQUIREMENTS).await?;
        let project = crate::workspace_root().join("tests/bench/peers/channels");
        let log = tempfile::tempdir()?;
        let log_file = log.path().join("daphne.log");
        let daphne = venv.bin("daphne");
        let (port, child) = net::spawn_listening("daphne", Duration::from_secs(60), |port| {
            Command::new(&daphne)
                .args(["-b", "127.0.0.1", "-p", &port.to_string()])
                // No access log line per WebSocket.
                .args(["-v", "0"])
                .arg("benchchat.asgi:application")
                .current_dir(&project)
                .env("BENCH_REDIS_URL", redis_url)
                // No __pycache__ folders in the source tree.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_file)?)
                .kill_on_drop(true)
                .spawn()
                .context("starting daphne")
        })
        .await?;
        Ok(Self {
            _child: child,
            port,
            _log: log,
        })
    }

    /// The WebSocket of `room`.
    pub fn room_url(&self, room: &str) -> String {
        format!("ws://127.0.0.1:{}/ws/chat/{room}/", self.port)
    }
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// A member of a room that only reads.
pub struct ChannelsSubscriber {
    ws: Ws,
}

impl ChannelsSubscriber {
    /// Connects; the consumer has joined the room's group once the handshake is done.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            ws: connect(url).await?,
        })
    }
}

impl Subscriber for ChannelsSubscriber {
    async fn next_message(&mut self) -> anyhow::Result<Option<Received>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    let frame: serde_json::Value = serde_json::from_str(&text)?;
                    let text = frame["text"].as_str().unwrap_or_default().to_owned();
                    return Ok(Some(Received { text, at }));
                }
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

/// A member of a room that sends; its own copies are read and dropped in the background.
pub struct ChannelsPublisher {
    sink: SplitSink<Ws, Message>,
    reader: JoinHandle<()>,
}

impl ChannelsPublisher {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let (sink, mut stream) = connect(url).await?.split();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        Ok(Self { sink, reader })
    }
}

impl Drop for ChannelsPublisher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Publisher for ChannelsPublisher {
    async fn publish(&mut self, text: String) -> anyhow::Result<()> {
        let frame = serde_json::json!({ "text": text }).to_string();
        self.sink.send(Message::text(frame)).await?;
        Ok(())
    }
}
