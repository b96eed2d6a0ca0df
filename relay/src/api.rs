//! The small HTTP API: login, logout, who am I, what may I open, which terminals do I have;
//! single sign-on in `sso`.

pub mod sso;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::api::{ApiError, LoginRequest, Me};
use common::sso::LogoutAnswer;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::access;
use crate::auth::{self, AuthError, LoginRefused, Principal, TOKEN_COOKIE};
use crate::close::Close;
use crate::ldap::DirectoryError;
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
            refusal(&e.into())
        }
    }
}

pub async fn logout(state: Arc<AppState>, headers: HeaderMap) -> Response {
    // The cookie goes whatever happens next: this browser is logged out either way.
    let mut response = match principal(&state, &headers).await {
        Ok(principal) => match state.auth.revoke(&principal).await {
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
