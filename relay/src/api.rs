//! The small HTTP API: login, logout, who am I, what may I open, which terminals do I have;
//! single sign-on in `sso`.

pub mod sso;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::api::{ApiError, LoginRequest, Me};
use common::audit::{AuditEvent, AuditKind, AuditQuery};
use common::recording::{FindQuery, RecordingQuery, valid_id};
use common::sso::LogoutAnswer;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::access;
use crate::auth::{self, AuthError, LoginRefused, Principal, TOKEN_COOKIE};
use crate::close::Close;
use crate::ldap::DirectoryError;
use crate::recording::Recorder;
use crate::recording::replay::{self, ReplayError};
use crate::state::AppState;

/// A refusal as an HTTP answer: the status that mirrors its close code, and its reason.
pub fn refusal(close: &Close) -> Response {
    error(close.http_status(), close.reason.clone())
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ApiError {
        error: message.into(),
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn me(principal: &Principal) -> Me {
    Me {
        username: principal.username.clone(),
        groups: principal.groups.clone(),
        expires_at: principal.expires_at,
    }
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let auth = &state.config().auth;
    let secure = if auth.cookie_secure { "; Secure" } else { "" };
    let text = format!(
        "{TOKEN_COOKIE}={value}; Path=/; HttpOnly; SameSite={}; Max-Age={max_age}{secure}",
        auth.cookie_same_site
    );
    // Tokens are base64url and dots; the rest is ours: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    let token =
        auth::token_from_headers(headers).ok_or_else(|| refusal(&AuthError::Missing.into()))?;
    state.auth.verify(&token).await.map_err(|e| {
        state.metrics.auth_failures.inc();
        refusal(&e.into())
    })
}

pub async fn login(
    source: Option<SocketAddr>,
    state: Arc<AppState>,
    request: LoginRequest,
) -> Response {
    let source = source.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |s| s.ip());
    // Escaped and cut: a user name is the caller's text and must not forge log lines.
    let shown: String = request.username.chars().take(64).collect();
    let result = state
        .auth
        .login(&request.username, &request.password, source)
        .await;
    match result {
        Ok((token, principal)) => {
            let mut event = AuditEvent::new(AuditKind::Login, 0);
            event.user = Some(principal.username.clone());
            // `password` for a built-in user, else the directory that checked it (`ldap`).
            event.provider = Some(principal.idp.clone().unwrap_or_else(|| "password".into()));
            event.source = Some(source.to_string());
            state.audit.record(event);
            let max_age = principal.expires_at.saturating_sub(auth::unix_now());
            let mut response = warp::reply::json(&me(&principal)).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie(&state, &token, max_age));
            tracing::info!(user = ?shown, %source, "login");
            response
        }
        Err(LoginRefused::Throttled { retry_after }) => {
            tracing::warn!(user = ?shown, %source, "login throttled");
            login_failed(&state, &shown, source, "throttled");
            let message = LoginRefused::Throttled { retry_after }.to_string();
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            response
        }
        Err(LoginRefused::Busy) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            LoginRefused::Busy.to_string(),
        ),
        Err(LoginRefused::BadRequest(message)) => error(StatusCode::BAD_REQUEST, message),
        Err(LoginRefused::Directory(e)) => {
            let status = match e {
                DirectoryError::NotAllowed(_) => StatusCode::FORBIDDEN,
                DirectoryError::BadCredentials => StatusCode::UNAUTHORIZED,
                DirectoryError::Unavailable(_) | DirectoryError::Busy => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            login_failed(&state, &shown, source, &e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(user = ?shown, %source, "login failed: {e}");
            } else {
                state.metrics.auth_failures.inc();
                tracing::info!(user = ?shown, %source, "login refused: {e}");
            }
            error(status, e.to_string())
        }
        Err(LoginRefused::Auth(e)) => {
            state.metrics.auth_failures.inc();
            tracing::info!(user = ?shown, %source, "login refused");
            login_failed(&state, &shown, source, &e.to_string());
            refusal(&e.into())
        }
    }
}

fn login_failed(state: &AppState, user: &str, source: IpAddr, reason: &str) {
    let mut event = AuditEvent::new(AuditKind::LoginFailed, 0);
    event.user = Some(user.to_owned());
    event.source = Some(source.to_string());
    event.reason = Some(reason.to_owned());
    state.audit.record(event);
}

pub async fn logout(state: Arc<AppState>, headers: HeaderMap) -> Response {
    // The cookie goes whatever happens next: this browser is logged out either way.
    let mut response = match principal(&state, &headers).await {
        Ok(principal) => match state.auth.revoke(&principal).await.inspect(|()| {
            for kind in [AuditKind::Logout, AuditKind::TokenRevoked] {
                let mut event = AuditEvent::new(kind, 0);
                event.user = Some(principal.username.clone());
                if kind == AuditKind::TokenRevoked {
                    event.reason = Some("logged out".into());
                }
                state.audit.record(event);
            }
        }) {
            // A provider login ends at the provider too, when it says where.
            Ok(()) => match state.oidc.end_session_url(&principal).await {
                Some(end_session_url) => {
                    warp::reply::json(&LogoutAnswer { end_session_url }).into_response()
                }
                None => StatusCode::NO_CONTENT.into_response(),
            },
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "logged out on this relay, but the shared revocation list is unavailable ({}); other relays may accept the token until it expires: log out again once Redis is back",
                    Close::from(e).reason
                ),
            ),
        },
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    response
}

pub async fn whoami(state: Arc<AppState>, headers: HeaderMap) -> Response {
    match principal(&state, &headers).await {
        Ok(principal) => warp::reply::json(&me(&principal)).into_response(),
        Err(response) => response,
    }
}

pub async fn targets(state: Arc<AppState>, headers: HeaderMap) -> Response {
    match principal(&state, &headers).await {
        Ok(principal) => {
            warp::reply::json(&access::targets_for(&state.config(), &principal)).into_response()
        }
        Err(response) => response,
    }
}

/// `GET /api/sessions`: the user's live terminal sessions, oldest first.
pub async fn sessions(state: Arc<AppState>, headers: HeaderMap) -> Response {
    match principal(&state, &headers).await {
        Ok(principal) => warp::reply::json(&state.terminals.list(&principal.uid)).into_response(),
        Err(response) => response,
    }
}

/// `DELETE /api/sessions/{id}`: ends one of the user's terminal sessions now (its program
/// is hung up; an attached browser gets 1000). 204; 404 for an id that is not one of the
/// user's live sessions (another user's sessions are not revealed). Audited.
pub async fn end_session(id: String, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let principal = match principal(&state, &headers).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Some(label) = state
        .terminals
        .label(&id)
        .filter(|label| label.owner_uid == principal.uid)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "you have no live terminal session with this id",
        );
    };
    state.terminals.end(&id);
    let mut event = AuditEvent::new(AuditKind::StreamClosed, 0);
    event.user = Some(principal.username.clone());
    event.target = Some(label.target);
    event.backend = Some(label.backend.as_str().to_owned());
    event.session = Some(id);
    event.reason = Some("ended by its owner".into());
    state.audit.record(event);
    StatusCode::NO_CONTENT.into_response()
}

/// The caller, when they hold the `audit` grant; else the answer (401, 403).
async fn auditor(state: &AppState, headers: &HeaderMap, what: &str) -> Result<Principal, Response> {
    let principal = principal(state, headers).await?;
    if access::audits(&state.config(), &principal) {
        Ok(principal)
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not read {what}: it needs the audit grant",
                principal.username
            ),
        ))
    }
}

/// `GET /api/audit`: a page of the audit trail, for users granted `audit` (403 for others).
pub async fn audit(state: Arc<AppState>, headers: HeaderMap, raw_query: String) -> Response {
    if let Err(response) = auditor(&state, &headers, "the audit trail").await {
        return response;
    }
    let query = match AuditQuery::parse(&raw_query) {
        Ok(query) => query,
        Err(e) => return refusal(&e.into()),
    };
    match state.audit.query(&query).await {
        Ok(page) => warp::reply::json(&page).into_response(),
        Err(e) => refusal(&e.into()),
    }
}

/// The recordings folder, when recording is configured.
fn recordings_dir(state: &AppState) -> Option<std::path::PathBuf> {
    state
        .config()
        .recording
        .as_ref()
        .map(|r| r.directory.clone())
}

fn not_recorded() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "sessions are not recorded on this relay: there is no [recording] in its config",
    )
}

/// Whose recordings a caller may read.
enum Readable {
    /// Every one (the `audit` grant).
    All,
    /// Those of their own sessions (`recording.owners_read`).
    Own(String),
}

impl Readable {
    fn permits(&self, owner: &str) -> bool {
        match self {
            Self::All => true,
            Self::Own(user) => user == owner,
        }
    }
}

async fn reader(state: &AppState, headers: &HeaderMap) -> Result<Readable, Response> {
    let owners_read = state
        .config()
        .recording
        .as_ref()
        .is_some_and(|r| r.owners_read);
    if !owners_read {
        return auditor(state, headers, "recordings")
            .await
            .map(|_| Readable::All);
    }
    let principal = principal(state, headers).await?;
    Ok(if access::audits(&state.config(), &principal) {
        Readable::All
    } else {
        Readable::Own(principal.username)
    })
}

/// `GET /api/recordings`: the recordings, newest first: all of them for users granted
/// `audit`, their own for others when `recording.owners_read` is set (403 otherwise).
pub async fn recordings(state: Arc<AppState>, headers: HeaderMap, raw_query: String) -> Response {
    let readable = match reader(&state, &headers).await {
        Ok(readable) => readable,
        Err(response) => return response,
    };
    let query = match RecordingQuery::parse(&raw_query) {
        Ok(query) => query,
        Err(e) => return refusal(&e.into()),
    };
    let Some(dir) = recordings_dir(&state) else {
        return not_recorded();
    };
    let list: Vec<_> = state
        .recorder
        .list(&dir)
        .await
        .into_iter()
        .filter(|info| query.matches(info) && readable.permits(&info.user))
        .collect();
    warp::reply::json(&list).into_response()
}

/// The file of recording `id`, when the caller may read it; else the answer (400, 401,
/// 403, 404).
async fn readable_file(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<std::path::PathBuf, Response> {
    let readable = reader(state, headers).await?;
    if !valid_id(id) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "a recording id is 1 to 64 letters, digits, '-' or '_' (as GET /api/recordings lists them)",
        ));
    }
    let Some(dir) = recordings_dir(state) else {
        return Err(not_recorded());
    };
    let Some(path) = Recorder::file(&dir, id) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("there is no recording {id}"),
        ));
    };
    if let Readable::Own(user) = &readable
        && Recorder::owner(&path).await.as_deref() != Some(user.as_str())
    {
        // 404 as for no recording: nobody learns which ids are others'.
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("there is no recording {id} of yours"),
        ));
    }
    Ok(path)
}

/// The answer to a failed index or find.
fn replay_refusal(e: &ReplayError) -> Response {
    let status = match e {
        ReplayError::Compressed => StatusCode::CONFLICT,
        ReplayError::Malformed(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ReplayError::Unreadable(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// `GET /api/recordings/{id}/index`: the seek index of an uncompressed recording (read by
/// streaming the file once), for the player's `Range` requests.
pub async fn recording_index(id: String, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let path = match readable_file(&state, &headers, &id).await {
        Ok(path) => path,
        Err(response) => return response,
    };
    match tokio::task::spawn_blocking(move || replay::index(&path)).await {
        Ok(Ok(index)) => warp::reply::json(&index).into_response(),
        Ok(Err(e)) => replay_refusal(&e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the recording could not be read",
        ),
    }
}

/// `GET /api/recordings/{id}/find?after=&text=` (or `&input=1`): the first event after
/// `after` that holds the text (or is a keystroke); 404 when none does.
pub async fn recording_find(
    id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    raw_query: String,
) -> Response {
    let path = match readable_file(&state, &headers, &id).await {
        Ok(path) => path,
        Err(response) => return response,
    };
    let query = match FindQuery::parse(&raw_query) {
        Ok(query) => query,
        Err(e) => return refusal(&e.into()),
    };
    match tokio::task::spawn_blocking(move || replay::find(&path, &query)).await {
        Ok(Ok(Some(hit))) => warp::reply::json(&hit).into_response(),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "nothing after that time matches: search from an earlier time",
        ),
        Ok(Err(e)) => replay_refusal(&e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the recording could not be read",
        ),
    }
}

/// `GET /api/recordings/{id}`: the `.cast` (or `.cast.gz`) file, with `Range` requests
/// answered, for users who may read it (see [`recordings`]).
pub async fn recording(id: String, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let path = match readable_file(&state, &headers, &id).await {
        Ok(path) => path,
        Err(response) => return response,
    };
    let compressed = path.extension().is_some_and(|e| e == "gz");
    let mut response = serve_file(path, &headers).await;
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        let range = response.headers().get(header::CONTENT_RANGE).cloned();
        response = error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "the range asked for is beyond the recording; Content-Range says its size",
        );
        if let Some(range) = range {
            response.headers_mut().insert(header::CONTENT_RANGE, range);
        }
        return response;
    }
    let kind = if compressed {
        "application/gzip"
    } else {
        "application/x-asciicast"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{id}.cast{}\"",
        if compressed { ".gz" } else { "" }
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

/// The file as warp's file server answers it (streamed from disk; `Range`,
/// `If-Modified-Since`), run as a request of its own on a task of its own (warp's routes
/// do not nest).
async fn serve_file(path: std::path::PathBuf, headers: &HeaderMap) -> Response {
    use tower_service::Service;
    let mut request = warp::http::Request::new(String::new());
    for name in [header::RANGE, header::IF_RANGE, header::IF_MODIFIED_SINCE] {
        if let Some(value) = headers.get(&name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    let served = tokio::spawn(async move {
        let mut service = warp::service(warp::fs::file(path));
        service.call(request).await
    })
    .await;
    match served {
        Ok(Ok(response)) => response,
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the recording could not be read",
        ),
    }
}
