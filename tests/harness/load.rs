//! The load client: async workload functions that drive a relay (or anything else that
//! speaks its wire) and time what comes back. The benchmark (`tests/bench/`) runs them
//! beside their physical limits; `tests/bench_smoke.rs` runs tiny ones so they keep working.
//!
//! Each measurement is written once, generic over a small trait, so that the path through
//! the relay and the path without it are timed by the very same code:
//! - [`Terminal`]: keystrokes in, output bytes out — a relay terminal WebSocket
//!   ([`RelayTerminal`]) or, in the bench, an `ssh -tt` child;
//! - [`Publisher`] / [`Subscriber`]: one end sends numbered messages, many receive them — a
//!   chat room or a file tail through the relay ([`ChatPublisher`], [`ChatSubscriber`],
//!   [`FileAppender`], [`TailViewer`]), or, in the bench, Redis PUBLISH/SUBSCRIBE and
//!   `tail -F`.
//!
//! The WebSocket client here ([`LoadSocket`]) is leaner than [`crate::client::WsClient`]: it
//! keeps nothing it receives, sets `TCP_NODELAY` as browsers do, and uses small buffers so
//! that ten thousand of them fit in one process.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use common::chat::ChatRequest;
use common::server::{ServerFrame, StreamEvent};
use common::{ClientFrame, FLOW_WINDOW, Position};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Longest wait for any one expected event (a connection, a marker) before giving up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Read buffer of each client socket: enough for a terminal's output frames, small enough
/// for 10,000 idle connections in one process.
const READ_BUFFER: usize = 16 * 1024;

/// A WebSocket URL and the token to present there (as the `X-Token` cookie, as a browser
/// does after logging in).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<String>,
}

impl Endpoint {
    pub fn new(url: impl Into<String>, token: Option<String>) -> Self {
        Self {
            url: url.into(),
            token,
        }
    }

    /// The same server and token, another path (`/ws/chat/ops` → `/ws/chat/ops?since=1`).
    pub fn with_url(&self, url: impl Into<String>) -> Self {
        Self::new(url, self.token.clone())
    }
}

/// What arrived on a [`LoadSocket`].
#[derive(Debug)]
pub enum Incoming {
    Binary(Bytes),
    Text(Utf8Bytes),
    Closed { code: u16, reason: String },
}

type Ws = WebSocketStream<TcpStream>;

/// One client WebSocket, plain TCP (`ws://`) with `TCP_NODELAY`.
pub struct LoadSocket {
    ws: Ws,
}

/// Connections opened from one loopback source address before the next one is used: far
/// below the ~28,000 ephemeral ports an address has, so 100,000 sockets to one port fit.
pub const PER_SOURCE_ADDRESS: usize = 1_000;

/// The loopback source address of the `i`-th of many connections: 127.1.x.y, a new one
/// every [`PER_SOURCE_ADDRESS`] connections (127.0.0.0/8 is all loopback on Linux).
pub fn spread_source(i: usize) -> Ipv4Addr {
    let k = i / PER_SOURCE_ADDRESS + 1;
    Ipv4Addr::new(127, 1, (k >> 8) as u8, (k & 0xff) as u8)
}

impl LoadSocket {
    pub async fn connect(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Self::connect_from(endpoint, None).await
    }

    /// Connects from `source` (an IPv4 address of this machine) when given.
    pub async fn connect_from(
        endpoint: &Endpoint,
        source: Option<Ipv4Addr>,
    ) -> anyhow::Result<Self> {
        let mut request = endpoint.url.as_str().into_client_request()?;
        if request.uri().scheme_str() != Some("ws") {
            bail!(
                "{}: the load client speaks plain ws:// only; point it at the relay's own port",
                endpoint.url
            );
        }
        let host = request
            .uri()
            .host()
            .context("the URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        if let Some(token) = &endpoint.token {
            request.headers_mut().insert(
                "cookie",
                HeaderValue::from_str(&format!("X-Token={token}"))?,
            );
        }
        let tcp = match (host.parse::<IpAddr>(), source) {
            (Ok(ip @ IpAddr::V4(_)), Some(source)) => {
                let socket = TcpSocket::new_v4()?;
                socket
                    .bind(SocketAddr::from((source, 0)))
                    .with_context(|| format!("binding to {source}"))?;
                socket.connect(SocketAddr::from((ip, port))).await
            }
            (Ok(ip), _) => TcpStream::connect((ip, port)).await,
            (Err(_), _) => TcpStream::connect((host.as_str(), port)).await,
        }
        .with_context(|| format!("connecting to {}", endpoint.url))?;
        tcp.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .with_context(|| format!("WebSocket handshake with {}", endpoint.url))?;
        Ok(Self { ws })
    }

    /// Connects and waits for the stream's `connected` frame.
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Self::open_from(endpoint, None).await
    }

    /// [`LoadSocket::open`] from `source`, as [`LoadSocket::connect_from`].
    pub async fn open_from(endpoint: &Endpoint, source: Option<Ipv4Addr>) -> anyhow::Result<Self> {
        let mut socket = Self::connect_from(endpoint, source).await?;
        socket.connected().await?;
        Ok(socket)
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::text(frame.to_json())).await?)
    }

    /// The next data frame or the close; pings are answered on the way.
    pub async fn recv(&mut self) -> anyhow::Result<Incoming> {
        recv(&mut self.ws).await
    }

    /// Waits for the `connected` frame that opens every stream.
    pub async fn connected(&mut self) -> anyhow::Result<Position> {
        loop {
            let incoming = tokio::time::timeout(STEP_TIMEOUT, self.recv())
                .await
                .context("no connected frame in time")??;
            match incoming {
                Incoming::Text(text) => {
                    if let Ok(ServerFrame::Event(StreamEvent::Connected { position, .. })) =
                        ServerFrame::parse(&text)
                    {
                        return Ok(position);
                    }
                }
                Incoming::Binary(_) => {}
                Incoming::Closed { code, reason } => {
                    bail!("closed ({code}: {reason}) before the stream opened")
                }
            }
        }
    }

    /// Sends a normal close ("done with this stream": a terminal session ends) and waits
    /// for the relay's close, briefly.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Ok(())
    }

    fn split(self) -> (SplitSink<Ws, Message>, SplitStream<Ws>) {
        self.ws.split()
    }
}

async fn recv<S>(ws: &mut S) -> anyhow::Result<Incoming>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        return Ok(match ws.next().await {
            None => Incoming::Closed {
                code: 1006,
                reason: "connection ended without a close frame".into(),
            },
            Some(Err(e)) => Incoming::Closed {
                code: 1006,
                reason: format!("connection error: {e}"),
            },
            Some(Ok(Message::Binary(bytes))) => Incoming::Binary(bytes),
            Some(Ok(Message::Text(text))) => Incoming::Text(text),
            Some(Ok(Message::Close(frame))) => Incoming::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
            },
            Some(Ok(_)) => continue,
        });
    }
}

// ---------------------------------------------------------------------------------------
// Terminals
// ---------------------------------------------------------------------------------------

/// A terminal: keystrokes in, output bytes out.
pub trait Terminal: Send {
    /// Types `keys` (sent at once, as a paste or one keystroke).
    fn type_keys(&mut self, keys: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The next output bytes; an error once the terminal has ended.
    fn output(&mut self) -> impl Future<Output = anyhow::Result<Bytes>> + Send;
}

/// A terminal session through the relay (`/ws/ssh/...`, `/ws/k8s/exec/...`).
pub struct RelayTerminal {
    socket: LoadSocket,
    /// With `flow=1`: what has been received and what acknowledged so far.
    flow: Option<FlowAcks>,
}

/// A flow-controlled terminal's acknowledgements, sent as the browser app sends them: once a
/// quarter of the window more has arrived (the app acknowledges what xterm.js has shown).
struct FlowAcks {
    received: u64,
    acked: u64,
}

impl RelayTerminal {
    /// Opens a terminal session and waits until the relay says it is connected.
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Ok(Self {
            socket: LoadSocket::open(endpoint).await?,
            flow: None,
        })
    }

    /// Opens a flow-controlled terminal session (`flow=1` added to `endpoint`'s URL), which
    /// acknowledges its output as it reads it.
    pub async fn open_with_flow(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let separator = if endpoint.url.contains('?') { '&' } else { '?' };
        let endpoint = endpoint.with_url(format!("{}{separator}flow=1", endpoint.url));
        let mut socket = LoadSocket::connect(&endpoint).await?;
        let position = socket
            .connected()
            .await?
            .as_count()
            .context("a terminal's position is a byte count")?;
        Ok(Self {
            socket,
            flow: Some(FlowAcks {
                received: position,
                acked: position,
            }),
        })
    }

    /// Ends the session (a normal close).
    pub async fn close(self) -> anyhow::Result<()> {
        self.socket.close().await
    }

    /// The WebSocket, e.g. to hold it idle ([`IdleConnections::hold`]).
    pub fn into_socket(self) -> LoadSocket {
        self.socket
    }
}

impl Terminal for RelayTerminal {
    async fn type_keys(&mut self, keys: &str) -> anyhow::Result<()> {
        self.socket.send(&ClientFrame::Input(keys.to_owned())).await
    }

    async fn output(&mut self) -> anyhow::Result<Bytes> {
        loop {
            match self.socket.recv().await? {
                Incoming::Binary(bytes) => {
                    if let Some(flow) = &mut self.flow {
                        flow.received += bytes.len() as u64;
                        if flow.received >= flow.acked + FLOW_WINDOW / 4 {
                            flow.acked = flow.received;
                            self.socket.send(&ClientFrame::Ack(flow.acked)).await?;
                        }
                    }
                    return Ok(bytes);
                }
                Incoming::Text(text) => {
                    if let Ok(ServerFrame::Event(StreamEvent::Error { message, .. })) =
                        ServerFrame::parse(&text)
                    {
                        bail!("the relay refused a frame: {message}");
                    }
                }
                Incoming::Closed { code, reason } => {
                    bail!("the terminal closed ({code}: {reason})")
                }
            }
        }
    }
}

/// Reads output until `needle` has appeared; returns how many bytes were read, the chunk
/// holding the needle included.
pub async fn read_until<T: Terminal>(term: &mut T, needle: &[u8]) -> anyhow::Result<u64> {
    let mut total = 0u64;
    // The end of the previous chunk, so a needle split between chunks is still found.
    let mut carry: Vec<u8> = Vec::with_capacity(needle.len() * 2);
    loop {
        let chunk = tokio::time::timeout(STEP_TIMEOUT, term.output())
            .await
            .with_context(|| {
                format!(
                    "{:?} did not appear in time",
                    String::from_utf8_lossy(needle)
                )
            })??;
        total += chunk.len() as u64;
        let head = &chunk[..chunk.len().min(needle.len())];
        carry.extend_from_slice(head);
        if contains(&carry, needle) || contains(&chunk, needle) {
            return Ok(total);
        }
        carry.clear();
        carry.extend_from_slice(&chunk[chunk.len().saturating_sub(needle.len())..]);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sets the terminal to 24×80 and waits until the shell has run a command, so what
/// follows is timed from a ready prompt. (The marker is computed by the shell, so the
/// echo of the command line itself never matches.)
pub async fn prepare<T: Terminal>(term: &mut T) -> anyhow::Result<()> {
    term.type_keys("stty rows 24 cols 80; echo READY-$((6*7))\r")
        .await?;
    read_until(term, b"READY-42").await?;
    Ok(())
}

/// Bulk output: how many bytes, in how long.
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Bulk {
    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The command [`terminal_bulk`] types: `zero_bytes` of zeros as base64 (printable lines,
/// about 1.35 bytes of output per byte of zeros), then a marker the shell computes.
pub fn bulk_command(zero_bytes: u64) -> String {
    format!("head -c {zero_bytes} /dev/zero | base64; echo BULK-$((6*7))-DONE\r")
}

/// Times a shell printing `zero_bytes` of zeros as base64, from the keystroke that starts
/// it to the marker after its last line. The terminal must be at a prompt
/// ([`prepare`]).
pub async fn terminal_bulk<T: Terminal>(term: &mut T, zero_bytes: u64) -> anyhow::Result<Bulk> {
    let start = Instant::now();
    term.type_keys(&bulk_command(zero_bytes)).await?;
    let bytes = read_until(term, b"BULK-42-DONE").await?;
    Ok(Bulk {
        bytes,
        elapsed: start.elapsed(),
    })
}

/// Keystroke echo round trips: puts the terminal in non-canonical mode under `cat` (the
/// PTY echoes each key as it arrives, as it does at a shell prompt), then `samples` times
/// types one key and waits for its echo. The terminal must be at a prompt ([`prepare`]);
/// it is left running `cat`.
pub async fn terminal_echo<T: Terminal>(
    term: &mut T,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    term.type_keys("stty -icanon; echo ECHO-$((6*7)); cat >/dev/null\r")
        .await?;
    read_until(term, b"ECHO-42").await?;
    // A few unrecorded keys first: the first ones after a command pay for waking things up.
    const WARM_UP: usize = 5;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + WARM_UP {
        let key = b'a' + (i % 26) as u8;
        let start = Instant::now();
        term.type_keys(std::str::from_utf8(&[key])?).await?;
        read_until(term, &[key]).await?;
        if i >= WARM_UP {
            times.push(start.elapsed());
        }
    }
    Ok(times)
}

// ---------------------------------------------------------------------------------------
// Many idle connections
// ---------------------------------------------------------------------------------------

/// Connections held open and idle; each has a task that reads (so pings get their pongs)
/// and drops what arrives. Dropping this drops every connection.
pub struct IdleConnections {
    tasks: Vec<JoinHandle<()>>,
}

impl IdleConnections {
    /// Holds `sockets` open and idle.
    pub fn hold(sockets: Vec<LoadSocket>) -> Self {
        let tasks = sockets
            .into_iter()
            .map(|mut socket| {
                tokio::spawn(async move {
                    while let Ok(incoming) = socket.recv().await {
                        if let Incoming::Closed { .. } = incoming {
                            return;
                        }
                    }
                })
            })
            .collect();
        Self { tasks }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many have been closed by the other end (or failed) so far.
    pub fn closed(&self) -> usize {
        self.tasks.iter().filter(|t| t.is_finished()).count()
    }
}

impl Drop for IdleConnections {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Opens `n` WebSockets at `endpoint`, `concurrency` handshakes at a time, and leaves them
/// idle. With `until_connected` each is waited on until its stream's `connected` frame
/// (a relay endpoint); without, the handshake is enough (any WebSocket server).
pub async fn open_idle(
    endpoint: &Endpoint,
    n: usize,
    concurrency: usize,
    until_connected: bool,
) -> anyhow::Result<IdleConnections> {
    // Each from its spread source address, so ports never run out.
    let sockets = open_many(n, concurrency, |i| async move {
        let source = Some(spread_source(i));
        if until_connected {
            LoadSocket::open_from(endpoint, source).await
        } else {
            LoadSocket::connect_from(endpoint, source).await
        }
    })
    .await?;
    Ok(IdleConnections::hold(sockets))
}

/// Runs `open(i)` for `i` in `0..n`, `concurrency` at a time; fails on the first failure.
pub async fn open_many<T, F, Fut>(n: usize, concurrency: usize, open: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let results: Vec<anyhow::Result<T>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let opening = open(i);
            async move {
                tokio::time::timeout(STEP_TIMEOUT, opening)
                    .await
                    .context("opening timed out")?
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let opened = results.iter().filter(|r| r.is_ok()).count();
    results
        .into_iter()
        .map(|r| r.with_context(|| format!("opened {opened} of {n}")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Fan-out: one publisher, many subscribers
// ---------------------------------------------------------------------------------------

/// [`MESSAGE_PREFIX`] as a literal, for `concat!`.
macro_rules! message_prefix {
    () => {
        "opsdeck-bench-"
    };
}

/// Every message a fan-out measurement sends is this prefix and a sequence number.
pub const MESSAGE_PREFIX: &str = message_prefix!();

/// One end that sends messages.
pub trait Publisher: Send {
    fn publish(&mut self, text: String) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A message as a subscriber got it, with the time its frame arrived (before decoding).
#[derive(Debug, Clone)]
pub struct Received {
    pub text: String,
    pub at: Instant,
}

/// One of the many ends that receive.
pub trait Subscriber: Send + 'static {
    /// The next message; `None` when the stream ended.
    fn next_message(&mut self) -> impl Future<Output = anyhow::Result<Option<Received>>> + Send;
}

/// What a fan-out measurement sends.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    /// Messages sent one per `interval`, for latency.
    pub paced: u32,
    pub interval: Duration,
    /// Messages sent as fast as the publisher can, for throughput.
    pub burst: u32,
    /// How long after the last message the subscribers may take to get everything.
    pub drain: Duration,
}

/// What a fan-out measurement saw.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub subscribers: usize,
    /// Publish-to-receive time of each delivery of a paced message.
    pub latencies: Vec<Duration>,
    /// Deliveries of burst messages, and the time from sending the first of them to the
    /// last delivery.
    pub burst_delivered: u64,
    pub burst_elapsed: Duration,
    /// Deliveries expected (messages × subscribers) and made.
    pub expected: u64,
    pub delivered: u64,
    /// The first subscriber failure, if any.
    pub failure: Option<String>,
}

impl Fanout {
    /// Burst deliveries per second across all subscribers.
    pub fn delivered_per_s(&self) -> f64 {
        self.burst_delivered as f64 / self.burst_elapsed.as_secs_f64().max(1e-9)
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Sends [`FanoutPlan::paced`] messages at a steady pace, waits for them to arrive, then
/// [`FanoutPlan::burst`] messages back to back, and times every delivery.
pub async fn fanout<P: Publisher, S: Subscriber>(
    publisher: &mut P,
    subscribers: Vec<S>,
    plan: &FanoutPlan,
) -> anyhow::Result<Fanout> {
    let total = plan.paced + plan.burst;
    let n = subscribers.len();
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<JoinHandle<Collected>> = subscribers
        .into_iter()
        .map(|mut subscriber| {
            let delivered = delivered.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(total as usize);
                let mut failure = None;
                // Registered once: a stop future made anew for each message would be queued
                // and unqueued on the watch at every delivery (500,000 times a second).
                let stopped = stop.changed();
                tokio::pin!(stopped);
                while got.len() < total as usize {
                    tokio::select! {
                        biased;
                        next = subscriber.next_message() => match next {
                            Ok(Some(message)) => {
                                let Some(seq) = message_seq(&message.text) else {
                                    continue;
                                };
                                // Only in order and once: a repeat or a step back is no
                                // delivery (and cannot hide a lost one); a gap is lost.
                                if got.last().is_some_and(|&(last, _)| seq <= last) {
                                    failure.get_or_insert_with(|| {
                                        format!("message {seq} arrived out of order")
                                    });
                                    continue;
                                }
                                got.push((seq, message.at));
                                delivered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(None) => {
                                failure = Some("the subscriber's stream ended".to_owned());
                                break;
                            }
                            Err(e) => {
                                failure = Some(format!("{e:#}"));
                                break;
                            }
                        },
                        _ = &mut stopped => break,
                    }
                }
                Collected { got, failure }
            })
        })
        .collect();

    let mut sent = Vec::with_capacity(total as usize);
    let start = tokio::time::Instant::now();
    for seq in 0..plan.paced {
        sent.push(Instant::now());
        publisher.publish(format!("{MESSAGE_PREFIX}{seq}")).await?;
        tokio::time::sleep_until(start + plan.interval * (seq + 1)).await;
    }
    // Let the paced messages arrive before the burst competes with them.
    let paced_expected = u64::from(plan.paced) * n as u64;
    let settle = tokio::time::Instant::now() + plan.drain;
    while delivered.load(Ordering::Relaxed) < paced_expected && tokio::time::Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let burst_start = Instant::now();
    for seq in plan.paced..total {
        sent.push(Instant::now());
        publisher.publish(format!("{MESSAGE_PREFIX}{seq}")).await?;
    }
    let expected = u64::from(total) * n as u64;
    let deadline = tokio::time::Instant::now() + plan.drain;
    while delivered.load(Ordering::Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);

    let mut result = Fanout {
        subscribers: n,
        latencies: Vec::with_capacity(paced_expected as usize),
        burst_delivered: 0,
        burst_elapsed: Duration::ZERO,
        expected,
        delivered: 0,
        failure: None,
    };
    let mut last_burst = burst_start;
    for task in tasks {
        let Collected { got, failure } = task.await.context("a subscriber task panicked")?;
        if result.failure.is_none() {
            result.failure = failure;
        }
        for (seq, at) in got {
            let Some(&sent_at) = sent.get(seq as usize) else {
                continue;
            };
            result.delivered += 1;
            if seq < plan.paced {
                result.latencies.push(at.saturating_duration_since(sent_at));
            } else {
                result.burst_delivered += 1;
                last_burst = last_burst.max(at);
            }
        }
    }
    result.burst_elapsed = last_burst.saturating_duration_since(burst_start);
    Ok(result)
}

/// What one subscriber got: (sequence number, arrival) of each message, and how it failed.
struct Collected {
    got: Vec<(u32, Instant)>,
    failure: Option<String>,
}

fn message_seq(text: &str) -> Option<u32> {
    text.strip_prefix(MESSAGE_PREFIX)?.trim_end().parse().ok()
}

/// Posts chat messages into a room through the relay. Its own copy of each message, and
/// anything else the room sends it, is read and dropped by a background task (a client
/// that stops reading would be pushed back on); refusals are counted.
pub struct ChatPublisher {
    sink: SplitSink<Ws, Message>,
    refusals: Arc<std::sync::Mutex<(u64, Option<String>)>>,
    reader: JoinHandle<()>,
}

impl ChatPublisher {
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let (sink, mut stream) = LoadSocket::open(endpoint).await?.split();
        let refusals = Arc::new(std::sync::Mutex::new((0, None)));
        let counted = refusals.clone();
        let reader = tokio::spawn(async move {
            while let Ok(incoming) = recv(&mut stream).await {
                match incoming {
                    Incoming::Text(text) => {
                        if let Ok(ServerFrame::Event(StreamEvent::Error { message, .. })) =
                            ServerFrame::parse(&text)
                        {
                            let mut counted = counted.lock().unwrap_or_else(|e| e.into_inner());
                            counted.0 += 1;
                            counted.1.get_or_insert(message);
                        }
                    }
                    Incoming::Binary(_) => {}
                    Incoming::Closed { .. } => return,
                }
            }
        });
        Ok(Self {
            sink,
            refusals,
            reader,
        })
    }

    /// Messages the relay refused so far, and the first refusal's reason.
    pub fn refusals(&self) -> (u64, Option<String>) {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ChatPublisher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Publisher for ChatPublisher {
    async fn publish(&mut self, text: String) -> anyhow::Result<()> {
        let frame = ClientFrame::Chat(ChatRequest::Message {
            message: text,
            client_id: None,
        });
        Ok(self.sink.send(Message::text(frame.to_json())).await?)
    }
}

/// A chat room member through the relay; yields the text of each message.
pub struct ChatSubscriber {
    socket: LoadSocket,
}

impl ChatSubscriber {
    /// Joins the room (live: no `since`).
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Ok(Self {
            socket: LoadSocket::open(endpoint).await?,
        })
    }
}

impl Subscriber for ChatSubscriber {
    async fn next_message(&mut self) -> anyhow::Result<Option<Received>> {
        loop {
            match self.socket.recv().await? {
                Incoming::Text(text) => {
                    let at = Instant::now();
                    // Presence lists and stream events are not bench messages; skip them.
                    if let Some(message) = bench_message(&text) {
                        return Ok(Some(Received {
                            text: message.to_owned(),
                            at,
                        }));
                    }
                }
                Incoming::Binary(_) => {}
                Incoming::Closed { code, reason } => bail!("the room closed ({code}: {reason})"),
            }
        }
    }
}

/// The text of a chat `message` frame that carries a bench message
/// (`{…"action":"message","data":{…"message":"opsdeck-bench-17"…}}`), found without decoding
/// the JSON: at 1,000 subscribers the load client reads half a million frames a second on the
/// cores the relay uses, and a full decode of each was a large part of its work. Exact for
/// the frames the relay writes (`common`'s serialisation, checked by this module's tests):
/// the frame is a message, and its text is the prefix and a number, which need no escaping.
pub fn bench_message(frame: &str) -> Option<&str> {
    const ACTION: &str = r#""action":"message""#;
    const TEXT: &str = r#""message":""#;
    if !frame.contains(ACTION) {
        return None;
    }
    let start = frame.find(concat!(r#""message":""#, message_prefix!()))? + TEXT.len();
    let rest = &frame[start..];
    let digits = rest[MESSAGE_PREFIX.len()..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let end = MESSAGE_PREFIX.len() + digits;
    (digits > 0 && rest[end..].starts_with('"')).then(|| &rest[..end])
}

/// Appends lines to a file, as a program writing its log does.
pub struct FileAppender {
    file: std::fs::File,
}

impl FileAppender {
    pub fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {} to append", path.display()))?;
        Ok(Self { file })
    }
}

impl Publisher for FileAppender {
    async fn publish(&mut self, text: String) -> anyhow::Result<()> {
        use std::io::Write;
        // One write per line, as a line-buffered logger does.
        self.file.write_all(format!("{text}\n").as_bytes())?;
        Ok(())
    }
}

/// A viewer of a file tail through the relay; yields each line.
pub struct TailViewer {
    socket: LoadSocket,
    pending: VecDeque<Received>,
}

impl TailViewer {
    /// Opens the tail with no backlog (`?lines=0` is added to `endpoint`'s URL).
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let separator = if endpoint.url.contains('?') { '&' } else { '?' };
        let live = endpoint.with_url(format!("{}{separator}lines=0", endpoint.url));
        Ok(Self {
            socket: LoadSocket::open(&live).await?,
            pending: VecDeque::new(),
        })
    }
}

impl Subscriber for TailViewer {
    async fn next_message(&mut self) -> anyhow::Result<Option<Received>> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Ok(Some(line));
            }
            match self.socket.recv().await? {
                Incoming::Text(text) => {
                    let at = Instant::now();
                    if let Ok(ServerFrame::Event(StreamEvent::Lines { lines, .. })) =
                        ServerFrame::parse(&text)
                    {
                        self.pending
                            .extend(lines.into_iter().map(|text| Received { text, at }));
                    }
                }
                Incoming::Binary(_) => {}
                Incoming::Closed { code, reason } => bail!("the tail closed ({code}: {reason})"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/// The `q` quantile (0..=1) of `samples` by nearest rank; `None` when there are none.
pub fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&samples, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn bench_messages_are_found_in_the_frames_the_relay_writes() {
        use common::chat::{ChatBody, ChatEvent, ChatMessage, ChatUser};
        let frame = |body: ChatBody| {
            ServerFrame::from(ChatEvent {
                id: Some("1700000000000-0".into()),
                time: 1_700_000_000,
                body,
            })
            .to_json()
        };
        let message = |text: &str| {
            frame(ChatBody::Message(ChatMessage {
                uid: "7".into(),
                username: "alice".into(),
                message: text.into(),
                time: 1_700_000_000,
            }))
        };
        assert_eq!(
            bench_message(&message("opsdeck-bench-17")),
            Some("opsdeck-bench-17")
        );
        assert_eq!(bench_message(&message("opsdeck-bench-17x")), None);
        assert_eq!(bench_message(&message("opsdeck-bench-")), None);
        assert_eq!(bench_message(&message("hello")), None);
        let alice = ChatUser {
            uid: "7".into(),
            username: "opsdeck-bench-1".into(),
        };
        assert_eq!(bench_message(&frame(ChatBody::Join(alice.clone()))), None);
        assert_eq!(
            bench_message(&frame(ChatBody::Presence { users: vec![alice] })),
            None
        );
    }

    #[test]
    fn message_numbers_are_read_back() {
        assert_eq!(message_seq("opsdeck-bench-17"), Some(17));
        assert_eq!(message_seq("opsdeck-bench-17\r"), Some(17));
        assert_eq!(message_seq("hello"), None);
    }
}
