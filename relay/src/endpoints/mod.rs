//! The stream endpoints, one file each, above the backends: each resolves its request
//! against the configuration in force and hands its backend only what it needs.
//!
//! What every WebSocket endpoint does before the pump takes over is here, once:
//! authenticate, resolve the target against one config snapshot, check permission, parse
//! the query (`common::query`), open or resume the stream. Each refusal closes the socket
//! with its own code and reason (the upgrade is accepted first, so the browser can read
//! them).
//!
//! | file | endpoint | backend |
//! |---|---|---|
//! | `ssh.rs` | `/ws/ssh/{host}` | `backend::ssh` via `terminal.rs` |
//! | `local.rs` | `/ws/local/{shell}` | `backend::local` via `terminal.rs` |
//! | `k8s_exec.rs` | `/ws/k8s/exec/{cluster}/{ns}/{pod}/{container}` | `backend::k8s::exec` via `terminal.rs` |
//! | `k8s_logs.rs` | `/ws/k8s/logs/{cluster}/{ns}/{pod}/{container}` | `backend::k8s::logs` |
//! | `ssh_files.rs` | `/api/files/ssh/{host}/{list,file,mkdir,rename}` (its `Place`) | `backend::sftp` |
//! | `pod_files.rs` | `/api/files/k8s/{cluster}/{ns}/{pod}/{container}/{list,file,archive,mkdir,rename}` (its `Place`) | `backend::k8s::files` |
//! | `files.rs` | every file endpoint's steps, once for both places | `backend::files` traits |
//! | `k8s_browse.rs` | `GET /api/k8s/{cluster}/namespaces[/{ns}/pods]` | `backend::k8s::browse` |
//! | `tail.rs` | `/ws/tail/{file}` | `backend::tail` |
//! | `chat.rs` | `/ws/chat/{room}` | `backend::chat` |
//! | `job.rs` | `/ws/exec/{token}` | `backend::job` |
//! | `watch.rs` | `/ws/watch/{session}` | a read-only view of a session in `session.rs` |

mod chat;
pub mod files;
mod job;
mod k8s_browse;
mod k8s_exec;
mod k8s_logs;
mod local;
mod opener;
pub mod pod_files;
mod ssh;
pub mod ssh_files;
mod tail;
mod terminal;
mod watch;

use std::sync::Arc;

use common::audit::{AuditEvent, AuditKind};
use common::{CloseCode, StreamKind};
use tokio::time::Instant;
use warp::http::HeaderMap;

pub use self::chat::ChatEndpoint;
pub use self::job::JobEndpoint;
pub use self::k8s_browse::{namespaces as k8s_namespaces, pods as k8s_pods};
pub use self::k8s_exec::PodExecEndpoint;
pub use self::k8s_logs::PodLogsEndpoint;
pub use self::local::LocalShellEndpoint;
pub use self::opener::{Prelude, StreamOpener};
pub use self::ssh::SshEndpoint;
pub use self::tail::TailEndpoint;
pub use self::watch::WatchEndpoint;
use crate::access::{self, TargetRef};
use crate::auth::{self, AuthError, Principal};
use crate::backend::{BackendKind, Opened};
use crate::close::Close;
use crate::config::Config;
use crate::pump::{self, PumpContext, PumpEnd};
use crate::state::AppState;
use crate::websocket::WebSocket;

/// Serves one upgraded WebSocket from start to end.
///
/// A socket's task holds this future for the socket's whole life, and a future is as large
/// as its largest state: what runs once (the token check, the open, a refusal) is boxed in
/// [`open`], allocated only while it runs, so an idle socket carries just the pump and the
/// audit event it will finish.
pub async fn serve<O: StreamOpener>(
    mut ws: WebSocket,
    state: Arc<AppState>,
    headers: HeaderMap,
    opener: O,
) {
    let backend = O::BACKEND;
    let gauge = state
        .metrics
        .websockets
        .with_label_values(&[backend.as_str()]);
    gauge.inc();
    let opened = Box::pin(open(&mut ws, &state, headers, &opener)).await;
    if let Some((opened, ctx, mut event)) = opened {
        let started = Instant::now();
        let (end, traffic) = pump::run(ws, opened, ctx).await;
        tracing::debug!(%backend, ?end, "websocket ended");
        event.kind = if backend == BackendKind::Watch {
            AuditKind::WatchEnded
        } else {
            AuditKind::StreamClosed
        };
        event.time = 0;
        (event.code, event.reason) = match end {
            PumpEnd::Closed(close) => (Some(close.code.code()), Some(close.reason)),
            PumpEnd::PeerGone => (None, Some("the browser closed the connection".into())),
        };
        event.duration_ms = Some(started.elapsed().as_millis() as u64);
        event.bytes_to_browser = Some(traffic.to_browser);
        event.bytes_from_browser = Some(traffic.from_browser);
        state.audit.record(*event);
    }
    gauge.dec();
}

/// Authenticates, checks and opens the stream, recording it as opened: what the pump
/// needs, with the audit event to finish when it ends. A refusal is recorded and sent as
/// the socket's close, and gives `None`.
#[allow(clippy::type_complexity)]
async fn open<O: StreamOpener>(
    ws: &mut WebSocket,
    state: &Arc<AppState>,
    headers: HeaderMap,
    opener: &O,
) -> Option<(Opened, Box<PumpContext>, Box<AuditEvent>)> {
    let backend = O::BACKEND;
    // Who asked for what, as far as it was found out (for a refusal's audit event).
    let mut known = (None, None);
    let prepared = prepare(state, &headers, opener, &mut known).await;
    // Header values share hyper's 8 KiB read buffer: holding them for the socket's life
    // would keep that buffer too, the largest part of an idle connection.
    drop(headers);
    let watching = backend == BackendKind::Watch;
    match prepared {
        Ok((principal, target, config, opened)) => {
            tracing::info!(user = %principal.username, %backend, %target, "stream opened");
            let mut event = Box::new(AuditEvent::new(
                if watching {
                    AuditKind::WatchStarted
                } else {
                    AuditKind::StreamOpened
                },
                0,
            ));
            event.user = Some(principal.username.clone());
            event.target = Some(target.id());
            event.backend = Some(backend.as_str().to_owned());
            event.session =
                (opened.hello.stream == StreamKind::Terminal).then(|| opened.hello.session.clone());
            event.recording = opened.recording.clone();
            state.audit.record((*event).clone());
            let ctx = Box::new(PumpContext {
                state: state.clone(),
                config,
                principal,
                target,
                backend,
            });
            Some((opened, ctx, event))
        }
        Err(refusal) => {
            if matches!(
                refusal.code,
                CloseCode::Unauthenticated | CloseCode::TokenExpired | CloseCode::TokenRevoked
            ) {
                state.metrics.auth_failures.inc();
            }
            tracing::info!(%backend, code = refusal.code.code(), reason = %refusal.reason, "stream refused");
            let mut event = AuditEvent::new(AuditKind::StreamRefused, 0);
            event.backend = Some(backend.as_str().to_owned());
            event.code = Some(refusal.code.code());
            event.reason = Some(refusal.reason.clone());
            (event.user, event.target) = known;
            state.audit.record(event);
            pump::close(ws, &refusal).await;
            None
        }
    }
}

async fn prepare<O: StreamOpener>(
    state: &AppState,
    headers: &HeaderMap,
    opener: &O,
    known: &mut (Option<String>, Option<String>),
) -> Result<(Principal, TargetRef, Arc<Config>, Opened), Close> {
    let token = auth::token_from_headers(headers).ok_or(AuthError::Missing)?;
    let principal = state.auth.verify(&token).await?;
    known.0 = Some(principal.username.clone());
    // One snapshot for the lookup, the permission and the open: a reload meanwhile
    // cannot make them disagree.
    let config = state.config();
    let (target, resolved) = opener.target(&config)?;
    known.1 = Some(target.id());
    if !access::permits(&config, &principal, &target) {
        return Err(Close::new(
            CloseCode::Forbidden,
            format!("{} may not open {target}", principal.username),
        ));
    }
    let prelude = Prelude {
        state,
        config: &config,
        who: &principal,
    };
    let opened = opener.open(&prelude, resolved).await?;
    Ok((principal, target, config, opened))
}
