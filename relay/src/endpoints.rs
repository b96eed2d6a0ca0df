//! What every WebSocket endpoint does before the pump takes over: authenticate, find the
//! target, check permission, open or resume the stream. Each refusal closes the socket with
//! its own code and a reason (the upgrade is accepted first, so the browser can read them).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use common::{CloseCode, TermSize};
use serde::Deserialize;
use warp::http::HeaderMap;

use crate::access::{self, TargetRef};
use crate::auth::{self, AuthError, Principal};
use crate::backend::{Attachment, BackendError, TerminalStreams};
use crate::config::Config;
use crate::pump::{self, PumpContext};
use crate::server::AppState;
use crate::session::SessionLabel;
use crate::websocket::WebSocket;

/// Why a stream was not opened.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: CloseCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(CloseCode::BadRequest, reason)
    }
}

impl From<BackendError> for Refusal {
    fn from(e: BackendError) -> Self {
        Self::new(e.close_code(), e.to_string())
    }
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Expired => CloseCode::TokenExpired,
            AuthError::Revoked => CloseCode::TokenRevoked,
            AuthError::RevocationUnavailable(_) => CloseCode::BackendUnavailable,
            _ => CloseCode::Unauthenticated,
        };
        Self::new(code, e.to_string())
    }
}

/// One kind of stream endpoint.
#[async_trait]
pub trait StreamOpener: Send + Sync + 'static {
    /// Metrics label: `ssh`, `k8s`, `tail`, `chat`, `job`.
    fn backend(&self) -> &'static str;
    /// The target asked for; `NotFound` when the config has no such id.
    fn target(&self, config: &Config) -> Result<TargetRef, Refusal>;
    /// Opens (or resumes) the stream for a user already permitted to.
    async fn open(
        &self,
        state: &Arc<AppState>,
        who: &Principal,
    ) -> Result<Box<dyn Attachment>, Refusal>;
}

/// Serves one upgraded WebSocket from start to end.
pub async fn serve(
    mut ws: WebSocket,
    state: Arc<AppState>,
    headers: HeaderMap,
    opener: impl StreamOpener,
) {
    let backend = opener.backend();
    let gauge = state.metrics.websockets.with_label_values(&[backend]);
    gauge.inc();
    let prepared = prepare(&state, &headers, &opener).await;
    // Header values share hyper's 8 KiB read buffer: holding them for the socket's life
    // would keep that buffer too, the largest part of an idle connection.
    drop(headers);
    match prepared {
        Ok((principal, target, attachment)) => {
            tracing::info!(user = %principal.username, backend, %target, "stream opened");
            let ctx = PumpContext {
                state: state.clone(),
                principal,
                target,
                backend,
            };
            let end = pump::run(ws, attachment, ctx).await;
            tracing::debug!(backend, ?end, "websocket ended");
        }
        Err(refusal) => {
            if matches!(
                refusal.code,
                CloseCode::Unauthenticated | CloseCode::TokenExpired | CloseCode::TokenRevoked
            ) {
                state.metrics.auth_failures.inc();
            }
            tracing::info!(backend, code = refusal.code.code(), reason = %refusal.reason, "stream refused");
            pump::close(&mut ws, refusal.code, &refusal.reason).await;
        }
    }
    gauge.dec();
}

async fn prepare(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    opener: &impl StreamOpener,
) -> Result<(Principal, TargetRef, Box<dyn Attachment>), Refusal> {
    let token = auth::token_from_headers(headers).ok_or(AuthError::Missing)?;
    let principal = state.auth.verify(&token).await?;
    let target = opener.target(&state.config())?;
    if !access::permits(&state.config(), &principal, &target) {
        return Err(Refusal::new(
            CloseCode::Forbidden,
            format!("{} may not open {target}", principal.username),
        ));
    }
    let attachment = opener.open(state, &principal).await?;
    Ok((principal, target, attachment))
}

/// Query parameters of terminal endpoints: the initial size, the resume token and flow
/// control.
#[derive(Debug, Default, Deserialize)]
pub struct TerminalQuery {
    rows: Option<String>,
    cols: Option<String>,
    session: Option<String>,
    position: Option<String>,
    flow: Option<String>,
}

impl TerminalQuery {
    pub fn parse(raw: &str) -> Result<Self, Refusal> {
        serde_urlencoded::from_str(raw)
            .map_err(|e| Refusal::bad_request(format!("bad query string: {e}")))
    }

    /// The initial size; 24x80 when not given.
    pub fn size(&self) -> Result<TermSize, Refusal> {
        let dimension = |value: &Option<String>, name: &str, default: u16| match value {
            None => Ok(default),
            Some(text) => text.parse::<u16>().map_err(|_| {
                Refusal::bad_request(format!(
                    "{name}={text:?} is not a number of character cells"
                ))
            }),
        };
        let rows = dimension(&self.rows, "rows", 24)?;
        let cols = dimension(&self.cols, "cols", 80)?;
        TermSize::new(rows, cols).map_err(|e| Refusal::bad_request(e.to_string()))
    }

    /// Whether the browser acknowledges what it displayed (`flow=1`; see `ClientFrame::Ack`).
    fn flow_control(&self) -> Result<bool, Refusal> {
        match self.flow.as_deref() {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(other) => Err(Refusal::bad_request(format!(
                "flow={other:?}: use flow=1 to acknowledge output with {{\"ack\": position}} frames"
            ))),
        }
    }

    fn resume(&self) -> Result<Option<(&str, u64)>, Refusal> {
        match (&self.session, &self.position) {
            (None, None) => Ok(None),
            (Some(session), Some(position)) => {
                let position = position.parse().map_err(|_| {
                    Refusal::bad_request(format!("position={position:?} is not a byte offset"))
                })?;
                Ok(Some((session.as_str(), position)))
            }
            (Some(session), None) => Ok(Some((session.as_str(), 0))),
            (None, Some(_)) => Err(Refusal::bad_request("position needs a session")),
        }
    }
}

/// Opens a terminal stream: resumes the session named in the query, or connects a new
/// one with `connect`.
pub async fn open_terminal<F>(
    state: &Arc<AppState>,
    label: SessionLabel,
    query: &TerminalQuery,
    connect: impl FnOnce(TermSize) -> F,
) -> Result<Box<dyn Attachment>, Refusal>
where
    F: Future<Output = Result<TerminalStreams, BackendError>>,
{
    let size = query.size()?;
    let flow_control = query.flow_control()?;
    let attachment = if let Some((session, position)) = query.resume()? {
        state
            .terminals
            .resume(session, position, &label)
            .map_err(|e| Refusal::new(e.close_code(), e.to_string()))?
    } else {
        state
            .terminals
            .check_room_for(&label.owner_uid)
            .map_err(|e| Refusal::new(e.close_code(), e.to_string()))?;
        let streams = connect(size).await?;
        state.terminals.start(label, streams)
    };
    Ok(Box::new(if flow_control {
        attachment.with_flow_control()
    } else {
        attachment
    }))
}
