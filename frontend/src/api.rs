//! The relay's small HTTP API (`/api/...`), with the JSON bodies from `common::api`.
//!
//! Every call sends the `X-Token` cookie (`credentials: include`, so it also works when the
//! relay lives on another origin, see `config`). Failures come back as [`ApiFailure`], whose
//! `Display` is what the user reads.

use std::fmt;

use common::api::{ApiError, LoginRequest, Me, PodInfo, Targets, TerminalSessionInfo};
use common::files::{DirPage, ListQuery, PathQuery, RenameQuery};
use common::recording::{FindHit, FindQuery, RecordingIndex, RecordingInfo, RecordingQuery};
use common::sso::{AuthProviders, LogoutAnswer};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use web_sys::{RequestCache, RequestCredentials};

use crate::config::{self, Config};
use crate::locale::{Msg, lang_now};
use crate::route::{FilesPlace, encode};

/// Why an API call did not give its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// 401: not logged in, or wrong password. Carries the relay's message.
    Unauthorized(String),
    /// Any other non-success status.
    Status { status: u16, message: String },
    /// The relay could not be reached.
    Network(String),
    /// The relay answered something that is not the expected JSON.
    BadBody(String),
}

/// In the language in force; the relay's own message stays as it sent it.
impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Unauthorized(message) if message.is_empty() => Msg::PleaseLogIn,
            Self::Unauthorized(message) => return f.write_str(message),
            Self::Status { status, message } => Msg::RelaySaid {
                status: *status,
                message,
            },
            Self::Network(e) => Msg::RelayUnreachable(e),
            Self::BadBody(e) => Msg::RelayBadAnswer(e),
        };
        f.write_str(&text.text(lang_now()))
    }
}

fn with_cookie(builder: RequestBuilder) -> RequestBuilder {
    builder
        .credentials(RequestCredentials::Include)
        .cache(RequestCache::NoStore)
}

async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, ApiFailure> {
    let request = request.map_err(|e| ApiFailure::Network(e.to_string()))?;
    let response = request
        .send()
        .await
        .map_err(|e| ApiFailure::Network(e.to_string()))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(match failure(status, &body) {
        // Not the relay's JSON (a proxy in between): the status's own words.
        ApiFailure::Status { status, message } if message.is_empty() => ApiFailure::Status {
            status,
            message: response.status_text(),
        },
        other => other,
    })
}

/// The failure a refused call's status and body mean: the relay's error body is
/// `{"error": "..."}`; any other body is no message. Shared by every call, the fetches here
/// and the files pane's upload requests alike.
pub fn failure(status: u16, body: &str) -> ApiFailure {
    let message = serde_json::from_str::<ApiError>(body)
        .map(|body| body.error)
        .unwrap_or_default();
    if status == 401 {
        ApiFailure::Unauthorized(message)
    } else {
        ApiFailure::Status { status, message }
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T, ApiFailure> {
    response
        .json()
        .await
        .map_err(|e| ApiFailure::BadBody(e.to_string()))
}

async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiFailure> {
    let response = send(with_cookie(Request::get(&config::http_url(path))).build()).await?;
    json(response).await
}

/// `POST /api/login`: on success the relay sets the `X-Token` cookie.
pub async fn login(username: String, password: String) -> Result<Me, ApiFailure> {
    let body = LoginRequest { username, password };
    let request = with_cookie(Request::post(&config::http_url("/api/login"))).json(&body);
    json(send(request).await?).await
}

/// `POST /api/logout`; for a login through a provider with an end-session endpoint, the
/// URL the browser goes to next (the provider logs the user out too).
pub async fn logout() -> Result<Option<String>, ApiFailure> {
    let response =
        send(with_cookie(Request::post(&config::http_url("/api/logout"))).build()).await?;
    if response.status() == 200 {
        let answer: LogoutAnswer = json(response).await?;
        return Ok(Some(answer.end_session_url));
    }
    Ok(None)
}

/// `GET /api/auth/providers`: the login page's sign-in buttons.
pub async fn providers() -> Result<AuthProviders, ApiFailure> {
    get("/api/auth/providers").await
}

/// The absolute URL of a relay path, for links that leave the app (a sign-in button).
pub fn relay_url(path: &str) -> String {
    config::http_url(path)
}

/// `GET /api/me`: who is logged in (401 when nobody).
pub async fn me() -> Result<Me, ApiFailure> {
    get("/api/me").await
}

/// `GET /api/targets`.
pub async fn targets() -> Result<Targets, ApiFailure> {
    get("/api/targets").await
}

/// `GET /api/sessions`: the user's live terminal sessions.
pub async fn sessions() -> Result<Vec<TerminalSessionInfo>, ApiFailure> {
    get("/api/sessions").await
}

/// `DELETE /api/sessions/{id}`: ends one of them now.
pub async fn end_session(id: &str) -> Result<(), ApiFailure> {
    let url = config::http_url(&format!("/api/sessions/{}", encode(id)));
    send(with_cookie(Request::delete(&url)).build()).await?;
    Ok(())
}

/// `GET /api/k8s/{cluster}/namespaces/{ns}/pods`.
pub async fn pods(cluster: &str, namespace: &str) -> Result<Vec<PodInfo>, ApiFailure> {
    get(&format!(
        "/api/k8s/{}/namespaces/{}/pods",
        encode(cluster),
        encode(namespace)
    ))
    .await
}

/// `GET /api/recordings?…`: the recordings the user may replay, newest first.
pub async fn recordings(filter: &RecordingQuery) -> Result<Vec<RecordingInfo>, ApiFailure> {
    let query = filter.to_query();
    if query.is_empty() {
        get("/api/recordings").await
    } else {
        get(&format!("/api/recordings?{query}")).await
    }
}

/// The path of a recording's file (`GET /api/recordings/{id}`: the download).
pub fn recording_path(id: &str) -> String {
    format!("/api/recordings/{}", encode(id))
}

/// `GET /api/recordings/{id}/index`: the player's seek index.
pub async fn recording_index(id: &str) -> Result<RecordingIndex, ApiFailure> {
    get(&format!("{}/index", recording_path(id))).await
}

/// `GET /api/recordings/{id}/find?…`: the next event after `query.after` that matches;
/// `None` when nothing does (404).
pub async fn recording_find(id: &str, query: &FindQuery) -> Result<Option<FindHit>, ApiFailure> {
    let path = format!("{}/find?{}", recording_path(id), query.to_query());
    match get(&path).await {
        Ok(hit) => Ok(Some(hit)),
        Err(ApiFailure::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Bytes `start..end` of a recording (a `Range` request), as text: whole event lines when
/// the bounds come from its index.
pub async fn recording_slice(id: &str, start: u64, end: u64) -> Result<String, ApiFailure> {
    let range = format!("bytes={start}-{}", end.saturating_sub(1));
    let request = with_cookie(Request::get(&config::http_url(&recording_path(id))))
        .header("Range", &range)
        .build();
    send(request)
        .await?
        .text()
        .await
        .map_err(|e| ApiFailure::BadBody(e.to_string()))
}

/// The URL of a files endpoint of an SSH host or a pod's container:
/// `{FilesPlace::api_base}/{what}?{query}` (`what` is `list`, `file`, `archive`, `mkdir`
/// or `rename`; the query is one of `common::files`'s).
pub fn files_url(place: &FilesPlace, what: &str, query: &str) -> String {
    config::http_url(&format!("{}/{what}?{query}", place.api_base()))
}

/// `GET …/list?…`: one page of a folder.
pub async fn files_list(place: &FilesPlace, query: &ListQuery) -> Result<DirPage, ApiFailure> {
    let url = files_url(place, "list", &query.to_query());
    json(send(with_cookie(Request::get(&url)).build()).await?).await
}

/// `POST …/mkdir?path=`.
pub async fn files_mkdir(place: &FilesPlace, path: &PathQuery) -> Result<(), ApiFailure> {
    let url = files_url(place, "mkdir", &path.to_query());
    send(with_cookie(Request::post(&url)).build()).await?;
    Ok(())
}

/// `POST …/rename?from=&to=`.
pub async fn files_rename(place: &FilesPlace, query: &RenameQuery) -> Result<(), ApiFailure> {
    let url = files_url(place, "rename", &query.to_query());
    send(with_cookie(Request::post(&url)).build()).await?;
    Ok(())
}

/// `DELETE …/file?path=`: a file, a symlink or an empty folder.
pub async fn files_delete(place: &FilesPlace, path: &PathQuery) -> Result<(), ApiFailure> {
    let url = files_url(place, "file", &path.to_query());
    send(with_cookie(Request::delete(&url)).build()).await?;
    Ok(())
}

/// `config.json` next to `index.html`; missing or malformed means "same origin". The
/// boot script asks for it before the app has loaded (`window.__opsdeckConfig`, a promise
/// of its text or null); without that (the wasm tests) it is asked here.
pub async fn deploy_config() -> Config {
    let early = web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w, &"__opsdeckConfig".into()).ok())
        .and_then(|p| wasm_bindgen::JsCast::dyn_into::<js_sys::Promise>(p).ok());
    if let Some(promise) = early {
        return match wasm_bindgen_futures::JsFuture::from(promise).await {
            Ok(text) => text
                .as_string()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
            Err(_) => Config::default(),
        };
    }
    let request = Request::get("config.json")
        .cache(RequestCache::NoStore)
        .build();
    let Ok(request) = request else {
        return Config::default();
    };
    match request.send().await {
        Ok(response) if response.ok() => response.json().await.unwrap_or_default(),
        _ => Config::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn refusals_carry_the_relays_own_words() {
        assert_eq!(
            failure(
                403,
                r#"{"error":"bob may not write files on SSH host box"}"#
            ),
            ApiFailure::Status {
                status: 403,
                message: "bob may not write files on SSH host box".into()
            }
        );
        assert_eq!(
            failure(401, r#"{"error":"your login expired"}"#),
            ApiFailure::Unauthorized("your login expired".into())
        );
        assert_eq!(
            failure(502, "<html>Bad Gateway</html>"),
            ApiFailure::Status {
                status: 502,
                message: String::new()
            }
        );
    }
}
