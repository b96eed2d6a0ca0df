//! Single sign-on endpoints (`oidc.rs` does the work):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/auth/providers` | `common::sso::AuthProviders` |
//! | `GET /api/auth/oidc/{id}/login` | 303 to the provider, with the flow cookie |
//! | `GET /api/auth/oidc/{id}/callback` | 303 into the app with the `X-Token` cookie, or to its `#/login?sso_error=<code>` |
//! | `POST /api/auth/oidc/{id}/backchannel-logout` | 200, or 400 with an OAuth error body |

use std::sync::Arc;

use common::sso::{
    AuthProviders, BackchannelLogoutError, BackchannelLogoutForm, CallbackQuery, ProviderButton,
    SsoRefusal,
};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::auth;
use crate::oidc::{FLOW_COOKIE, FLOW_COOKIE_PATH, FLOW_TTL_SECS, SsoError};
use crate::state::AppState;

/// A provider id as logs show it: cut, escaped by `?`.
fn shown(id: &str) -> String {
    id.chars().take(40).collect()
}

/// `GET /api/auth/providers`.
pub async fn providers(state: Arc<AppState>) -> Response {
    let config = state.config();
    let body = AuthProviders {
        local_login: config.auth.local_users || config.auth.ldap.is_some(),
        providers: config
            .auth
            .oidc
            .iter()
            .map(|p| ProviderButton {
                id: p.id.clone(),
                label: p.label(),
                login_path: ProviderButton::login_path_of(&p.id),
            })
            .collect(),
    };
    warp::reply::json(&body).into_response()
}

fn flow_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config().auth.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    // Lax, not Strict: it must come back with the provider's (cross-site) redirect.
    let text = format!(
        "{FLOW_COOKIE}={value}; Path={FLOW_COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The app's login page, saying why.
fn refused(state: &AppState, refusal: SsoRefusal) -> Response {
    let app = state.config().auth.app_url.clone();
    see_other(&format!("{app}#/login?sso_error={}", refusal.code()))
}

/// `GET /api/auth/oidc/{id}/login`.
pub async fn login(id: String, host: Option<String>, state: Arc<AppState>) -> Response {
    let config = state.config();
    match state
        .oidc
        .begin(&state.auth, &id, &config.public_origins, host.as_deref())
        .await
    {
        Ok(start) => {
            let mut response = see_other(&start.authorize_url);
            response.headers_mut().insert(
                header::SET_COOKIE,
                flow_cookie(&state, &start.flow_cookie, FLOW_TTL_SECS),
            );
            response
        }
        Err(e) => {
            tracing::warn!(provider = ?shown(&id), "single sign-on not started: {e}");
            refused(&state, e.refusal())
        }
    }
}

fn flow_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == FLOW_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `GET /api/auth/oidc/{id}/callback`.
pub async fn callback(
    id: String,
    raw_query: String,
    headers: HeaderMap,
    state: Arc<AppState>,
) -> Response {
    let result = match CallbackQuery::parse(&raw_query) {
        Ok(query) => {
            state
                .oidc
                .finish(&state.auth, &id, &query, flow_from(&headers).as_deref())
                .await
        }
        Err(e) => Err(SsoError::BadCallback(e.to_string())),
    };
    let mut response = match result {
        Ok((token, principal)) => {
            tracing::info!(provider = ?shown(&id), user = ?principal.username, groups = ?principal.groups, "single sign-on");
            let max_age = principal.expires_at.saturating_sub(auth::unix_now());
            let mut response = see_other(&state.config().auth.app_url);
            response
                .headers_mut()
                .append(header::SET_COOKIE, super::cookie(&state, &token, max_age));
            response
        }
        Err(e) => {
            state.metrics.auth_failures.inc();
            tracing::warn!(provider = ?shown(&id), "single sign-on refused: {e}");
            refused(&state, e.refusal())
        }
    };
    // The sign-in is over either way: its state is not to be used again.
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(&state, "", 0));
    response
}

/// `POST /api/auth/oidc/{id}/backchannel-logout` (`application/x-www-form-urlencoded`).
pub async fn backchannel_logout(id: String, body: bytes::Bytes, state: Arc<AppState>) -> Response {
    let form: BackchannelLogoutForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            return logout_refused(
                StatusCode::BAD_REQUEST,
                format!("the body must be a form with a logout_token: {e}"),
            );
        }
    };
    match state
        .oidc
        .backchannel_logout(&state.auth, &id, &form.logout_token)
        .await
    {
        Ok(revoked) => {
            tracing::info!(provider = ?shown(&id), revoked, "back-channel logout");
            StatusCode::OK.into_response()
        }
        Err(SsoError::Unreachable(e)) => {
            tracing::warn!(provider = ?shown(&id), "back-channel logout not applied: {e}");
            logout_refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the revocation list is unavailable; try again".into(),
            )
        }
        Err(e) => {
            tracing::warn!(provider = ?shown(&id), "back-channel logout refused: {e}");
            logout_refused(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

fn logout_refused(status: StatusCode, description: String) -> Response {
    let body = BackchannelLogoutError {
        error: "invalid_request".into(),
        error_description: description,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
