//! The one loop between a WebSocket and a stream, used by every backend.
//!
//! It sends what the [`Attachment`] produces (waiting on the browser, which is what pushes
//! back on a fast backend), hands the browser's frames to it, pings the browser so proxies
//! keep the socket open and dead peers are noticed, and closes with a code and a reason when
//! the token expires or is revoked, the permission is withdrawn, the relay shuts down or the
//! stream ends.

use std::sync::Arc;
use std::time::Duration;

use common::server::StreamEvent;
use common::{ClientFrame, CloseCode, FrameError};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::access::{self, TargetRef};
use crate::auth::{AuthError, Principal, unix_now_ms};
use crate::backend::{Attachment, BackendKind, Inbound, InputRefused, Opened, Outbound};
use crate::close::Close;
use crate::config::Config;
use crate::state::AppState;
use crate::websocket::WebSocket;

/// Who is on the socket and what they opened, for the checks made while it lives.
pub struct PumpContext {
    pub state: Arc<AppState>,
    /// The configuration the stream was opened with (limits, keepalive); the permission
    /// is re-checked against the one in force.
    pub config: Arc<Config>,
    pub principal: Principal,
    pub target: TargetRef,
    pub backend: BackendKind,
}

/// How a pump run ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpEnd {
    /// The relay closed the socket.
    Closed(Close),
    /// The browser closed it or the connection broke.
    PeerGone,
}

/// Bytes a pump run moved each way (WebSocket message payloads), for the audit trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub to_browser: u64,
    pub from_browser: u64,
}

fn closed(code: CloseCode, reason: impl Into<String>) -> PumpEnd {
    PumpEnd::Closed(Close::new(code, reason))
}

/// Sends the stream's `connected` frame, then pumps until the stream or the socket ends.
///
/// `ctx` is boxed, as the socket is: an async fn keeps its arguments beside its own
/// copies, and a socket's task holds this loop's future for the socket's whole life.
pub async fn run(
    mut ws: WebSocket,
    opened: Opened,
    mut ctx: Box<PumpContext>,
) -> (PumpEnd, Traffic) {
    let mut traffic = Traffic::default();
    let Opened {
        hello,
        mut attachment,
        notices,
        ..
    } = opened;
    let state = ctx.state.clone();
    let config = ctx.config.clone();
    let limits = &config.limits;
    let keepalive = &config.keepalive;
    let backend = ctx.backend.as_str();
    let bytes_out = state
        .metrics
        .bytes
        .with_label_values(&[backend, "to_browser"]);
    let bytes_in = state
        .metrics
        .bytes
        .with_label_values(&[backend, "from_browser"]);
    let expiry = token_deadline(&ctx.principal);
    let mut revocations = state.auth.revocations();
    let mut ping = tokio::time::interval_at(
        Instant::now() + keepalive.ping_interval,
        keepalive.ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let send_timeout = keepalive.peer_timeout;
    let stopped_reading = || closed(CloseCode::IdleTimeout, "the browser stopped reading");

    // Made once, not at every turn of the loop: a chat socket turns it for each delivery,
    // and a new timer and shutdown waiter each time cost more than the write.
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    let expired = tokio::time::sleep_until(expiry);
    tokio::pin!(expired);

    let mut greeted = true;
    for frame in std::iter::once(hello.frame()).chain(notices) {
        if !send(&mut ws, Message::text(frame.to_json()), send_timeout).await {
            greeted = false;
            break;
        }
    }
    let end = if !greeted {
        stopped_reading()
    } else {
        loop {
            let reading = !attachment.input_blocked();
            tokio::select! {
                () = &mut shutdown => {
                    break closed(CloseCode::GoingAway, "the relay is shutting down");
                }
                () = &mut expired => {
                    break closed(CloseCode::TokenExpired, "your login expired; log in again");
                }
                revoked = revocations.recv() => {
                    let ours = match revoked {
                        Ok(token_id) => token_id == ctx.principal.token_id,
                        // Missed some: look the token up rather than guess.
                        Err(_) => matches!(
                            state.auth.check_not_revoked(&ctx.principal).await,
                            Err(AuthError::Revoked)
                        ),
                    };
                    if ours {
                        break closed(CloseCode::TokenRevoked, "you were logged out");
                    }
                }
                _ = ping.tick() => {
                    if !reading {
                        // Not reading the browser's frames: its unread pongs are no silence.
                        last_heard = Instant::now();
                    }
                    if last_heard.elapsed() >= keepalive.peer_timeout {
                        break closed(CloseCode::IdleTimeout, format!(
                            "no answer to pings for {} s", keepalive.peer_timeout.as_secs()));
                    }
                    if let Some(end) = Box::pin(recheck(&mut ctx)).await {
                        break end;
                    }
                    if !send(&mut ws, Message::Ping(Default::default()), send_timeout).await {
                        break stopped_reading();
                    }
                }
                incoming = ws.next(), if reading => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => break broken_frame(e),
                        None => break PumpEnd::PeerGone,
                    };
                    last_heard = Instant::now();
                    if message.is_close() {
                        // 1000, or a close without a code, is the user closing the stream on
                        // purpose; 1001 (tab closed) and the rest leave it for a reconnect.
                        let code = match &message {
                            Message::Close(Some(frame)) => Some(u16::from(frame.code)),
                            _ => None,
                        };
                        if code.is_none() || code == Some(CloseCode::Normal.code()) {
                            attachment.end();
                        }
                        break PumpEnd::PeerGone;
                    }
                    if message.is_ping() || message.is_pong() {
                        continue;
                    }
                    bytes_in.inc_by(message.len() as u64);
                    traffic.from_browser += message.len() as u64;
                    let handled = Box::pin(handle_incoming(message, limits.max_frame_bytes, attachment.as_mut()));
                    if let Err(refused) = handled.await {
                        let frame = StreamEvent::Error { code: refused.code, message: refused.message, client_id: refused.client_id };
                        if !send(&mut ws, Message::text(common::ServerFrame::from(frame).to_json()), send_timeout).await {
                            break stopped_reading();
                        }
                    }
                }
                outgoing = attachment.next() => {
                    let batch = Batch { bytes_out: &bytes_out, traffic: &mut traffic };
                    // Boxed: the batch's state is not carried in every idle socket's pump.
                    let sending = Box::pin(batch.send(&mut ws, outgoing, attachment.as_mut(), send_timeout));
                    match sending.await {
                        Sent::All => {}
                        Sent::ThenClose(close) => break PumpEnd::Closed(close),
                        Sent::Stalled => break stopped_reading(),
                    }
                }
            }
        }
    };
    // Dropping the attachment detaches it (or ends it, if the browser said so) before the
    // browser hears the close, so a reconnect finds the session already in its grace period.
    drop(attachment);
    match &end {
        PumpEnd::Closed(close_with) => Box::pin(close(&mut ws, close_with)).await,
        // Flushes tungstenite's reply to the browser's close frame.
        PumpEnd::PeerGone => {
            let _ = Box::pin(timeout(Duration::from_secs(5), (*ws).close(None))).await;
        }
    }
    (end, traffic)
}

/// Sends a close frame with a reason and waits briefly for the browser to acknowledge.
pub async fn close(ws: &mut WebSocket, close: &Close) {
    let frame = Message::Close(Some(CloseFrame {
        code: close.code.code().into(),
        reason: close.frame_reason().to_owned().into(),
    }));
    let _ = timeout(Duration::from_secs(5), async {
        if ws.send(frame).await.is_ok() {
            // Drain until the browser's close arrives, so the close is orderly.
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        }
    })
    .await;
}

/// Frames written to the socket before one flush, at most.
const BATCH_FRAMES: usize = 256;
/// Bytes written to the socket before one flush, at most (a frame may overshoot it).
const BATCH_BYTES: usize = 64 * 1024;

/// How a batch of output went.
enum Sent {
    All,
    /// Sent what came before a close; the stream is over.
    ThenClose(Close),
    /// The browser did not take it within the send timeout.
    Stalled,
}

/// Output written as one batch: what [`Attachment::next`] returned, then whatever
/// [`Attachment::ready`] has without waiting, then one flush.
struct Batch<'a> {
    bytes_out: &'a prometheus::IntCounter,
    traffic: &'a mut Traffic,
}

impl Batch<'_> {
    async fn send(
        self,
        ws: &mut WebSocket,
        first: Outbound,
        attachment: &mut dyn Attachment,
        limit: Duration,
    ) -> Sent {
        let Self { bytes_out, traffic } = self;
        let write = async {
            let (mut frames, mut bytes) = (0, 0);
            let mut next = Some(first);
            let mut then_close = None;
            while let Some(out) = next.take() {
                let message = match out {
                    Outbound::Binary(data) => {
                        bytes_out.inc_by(data.len() as u64);
                        Some(Message::Binary(data))
                    }
                    Outbound::Text(frame) => Some(Message::text(frame.to_json())),
                    Outbound::Json(json) => Some(Message::Text(json)),
                    Outbound::Close(close) => {
                        then_close = Some(close);
                        break;
                    }
                    Outbound::InputReady => None,
                };
                if let Some(message) = message {
                    traffic.to_browser += message.len() as u64;
                    bytes += message.len();
                    frames += 1;
                    ws.feed(message).await?;
                }
                if frames < BATCH_FRAMES && bytes < BATCH_BYTES {
                    next = attachment.ready();
                }
            }
            if frames > 0 {
                ws.flush().await?;
            }
            Ok::<_, WsError>(then_close)
        };
        match timeout(limit, write).await {
            Ok(Ok(None)) => Sent::All,
            Ok(Ok(Some(close))) => Sent::ThenClose(close),
            _ => Sent::Stalled,
        }
    }
}

/// Sends one frame within `limit`. Boxed: the send and its timer are allocated only while
/// they run (a ping every 25 s), not carried in every idle socket's pump.
async fn send(ws: &mut WebSocket, message: Message, limit: Duration) -> bool {
    matches!(Box::pin(timeout(limit, ws.send(message))).await, Ok(Ok(())))
}

/// When the token expires, to the millisecond (as `Authenticator::decode` counts it); a
/// deadline beyond what the clock can hold is a day away (the check repeats then).
fn token_deadline(principal: &Principal) -> Instant {
    let left_ms = principal
        .expires_at
        .saturating_mul(1000)
        .saturating_sub(unix_now_ms());
    let now = Instant::now();
    now.checked_add(Duration::from_millis(left_ms))
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}

/// Longest wait for the shared revocation list at a keepalive.
const REVOCATION_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The checks repeated at each keepalive: the token is still valid and the user may still
/// open the target.
async fn recheck(ctx: &mut PumpContext) -> Option<PumpEnd> {
    // Bounded: a slow Redis must not hold the pump (no output, no pings) for long.
    let check = ctx.state.auth.check_not_revoked(&ctx.principal);
    match tokio::time::timeout(REVOCATION_CHECK_TIMEOUT, check).await {
        Ok(Err(AuthError::Revoked)) => {
            return Some(closed(CloseCode::TokenRevoked, "you were logged out"));
        }
        // Closing every stream on a Redis blip would be worse than a revocation that
        // reaches this relay late; revocations made here are applied locally at once.
        Ok(Err(e)) => tracing::debug!("revocation check failed, keeping the session: {e}"),
        Err(_) => tracing::debug!("revocation check timed out, keeping the session"),
        Ok(Ok(())) => {}
    }
    // Users, passwords and groups may have been reloaded since the socket opened.
    match ctx.state.auth.current(&ctx.principal) {
        Some(groups) => ctx.principal.groups = groups,
        None => {
            return Some(closed(
                CloseCode::TokenRevoked,
                format!("the user {:?} no longer exists", ctx.principal.username),
            ));
        }
    }
    let now = ctx.state.config();
    if !access::permits(&now, &ctx.principal, &ctx.target) {
        return Some(closed(
            CloseCode::PermissionRevoked,
            format!("you may no longer open {}", ctx.target),
        ));
    }
    if access::repointed(&ctx.config, &now, &ctx.target) {
        return Some(closed(
            CloseCode::PermissionRevoked,
            format!(
                "the configuration of {} changed; open it again to reach it as now configured",
                ctx.target
            ),
        ));
    }
    None
}

fn broken_frame(error: WsError) -> PumpEnd {
    match error {
        WsError::Utf8 => closed(CloseCode::BadRequest, FrameError::NotUtf8.to_string()),
        WsError::Capacity(e @ CapacityError::MessageTooLong { .. }) => {
            closed(CloseCode::MessageTooBig, format!("frame refused: {e}"))
        }
        other => {
            tracing::debug!("websocket error: {other}");
            PumpEnd::PeerGone
        }
    }
}

async fn handle_incoming(
    message: Message,
    max_frame_bytes: usize,
    attachment: &mut dyn Attachment,
) -> Result<(), InputRefused> {
    let size = message.len();
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge {
            size,
            limit: max_frame_bytes,
        }
        .into());
    }
    let input = match message {
        // tungstenite has already refused text frames that are not UTF-8.
        Message::Text(text) => Inbound::Frame(ClientFrame::parse_with(
            text.as_str(),
            attachment.resize_order(),
        )?),
        other => Inbound::Binary(other.into_data()),
    };
    attachment.input(input).await
}
