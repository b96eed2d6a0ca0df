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
//! | `k8s_browse.rs` | `GET /api/k8s/{cluster}/namespaces[/{ns}/pods]` | `backend::k8s::browse` |
//! | `tail.rs` | `/ws/tail/{file}` | `backend::tail` |
//! | `chat.rs` | `/ws/chat/{room}` | `backend::chat` |
//! | `job.rs` | `/ws/exec/{token}` | `backend::job` |

mod chat;
mod job;
mod k8s_browse;
mod k8s_exec;
mod k8s_logs;
mod local;
mod opener;
mod ssh;
mod tail;
mod terminal;

use std::sync::Arc;

use common::CloseCode;
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
use crate::access::{self, TargetRef};
use crate::auth::{self, AuthError, Principal};
use crate::backend::Opened;
use crate::close::Close;
use crate::config::Config;
use crate::pump::{self, PumpContext};
use crate::state::AppState;
use crate::websocket::WebSocket;

/// Serves one upgraded WebSocket from start to end.
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
    let prepared = prepare(&state, &headers, &opener).await;
    // Header values share hyper's 8 KiB read buffer: holding them for the socket's life
    // would keep that buffer too, the largest part of an idle connection.
    drop(headers);
    match prepared {
        Ok((principal, target, config, opened)) => {
            tracing::info!(user = %principal.username, %backend, %target, "stream opened");
            let ctx = PumpContext {
                state: state.clone(),
                config,
                principal,
                target,
                backend,
            };
            let end = pump::run(ws, opened, ctx).await;
            tracing::debug!(%backend, ?end, "websocket ended");
        }
        Err(refusal) => {
            if matches!(
                refusal.code,
                CloseCode::Unauthenticated | CloseCode::TokenExpired | CloseCode::TokenRevoked
            ) {
                state.metrics.auth_failures.inc();
            }
            tracing::info!(%backend, code = refusal.code.code(), reason = %refusal.reason, "stream refused");
            pump::close(&mut ws, &refusal).await;
        }
    }
    gauge.dec();
}

async fn prepare<O: StreamOpener>(
    state: &AppState,
    headers: &HeaderMap,
    opener: &O,
) -> Result<(Principal, TargetRef, Arc<Config>, Opened), Close> {
    let token = auth::token_from_headers(headers).ok_or(AuthError::Missing)?;
    let principal = state.auth.verify(&token).await?;
    // One snapshot for the lookup, the permission and the open: a reload meanwhile
    // cannot make them disagree.
    let config = state.config();
    let (target, resolved) = opener.target(&config)?;
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
