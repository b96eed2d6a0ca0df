//! Files on SSH hosts: `/api/files/ssh/{host}/...` (list, download, upload, mkdir, rename,
//! delete), through `backend::sftp`.
//!
//! Each request is checked against one config snapshot: the host must exist, and the
//! grants that open it must give `file_access = "read"` (list, download) or `"write"`
//! (the rest); otherwise 403 saying which. Transfers take a slot (`backend::files`) and
//! are audited (`file_transfer`) with their bytes and outcome, as are the other changes.

use std::sync::Arc;

use bytes::Buf;
use common::files::{DirPage, ListQuery, PathQuery, RenameQuery, UploadDone};
use futures_util::Stream;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::{Reply, Response};

use super::files::{Transfer, announced_size, download_response, failed, over_limit, require};

use crate::access::{self, TargetRef};
use crate::api;
use crate::auth::Principal;
use crate::backend::files::{FilesError, Pace};
use crate::backend::sftp::{self, Sftp};
use crate::config::{FileAccess, SshHost};
use crate::state::AppState;

/// Who asks, the host entry and what they may do there, when that is at least `need`.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    host_id: &str,
    need: FileAccess,
) -> Result<(Principal, SshHost, FileAccess), Response> {
    let who = api::principal(state, headers).await?;
    let config = state.config();
    let shown: String = host_id.chars().take(64).collect();
    let Some(host) = config.ssh_hosts.iter().find(|h| h.id == host_id).cloned() else {
        return Err(api::error(
            StatusCode::NOT_FOUND,
            format!("there is no SSH host {shown:?}"),
        ));
    };
    let target = TargetRef::Ssh(host.id.clone());
    let granted = access::file_access(&config, &who, &target);
    require(
        &who,
        granted,
        need,
        &format!("SSH host {shown}"),
        "the host",
    )
    .map_err(|e| failed(&e))?;
    Ok((who, host, granted))
}

fn text(path: &[u8]) -> Result<String, FilesError> {
    String::from_utf8(path.to_vec()).map_err(|_| {
        FilesError::BadRequest(
            "SFTP paths must be UTF-8 here: this relay's SFTP client cannot name other bytes"
                .into(),
        )
    })
}

/// Records one `file_transfer` event.
fn audit(
    state: &AppState,
    who: &str,
    host: &str,
    what: String,
    bytes: (Option<u64>, Option<u64>),
    failure: Option<String>,
) {
    Transfer {
        state,
        user: who,
        target: TargetRef::Ssh(host.to_owned()).id(),
        backend: "sftp",
    }
    .record(what, bytes, failure);
}

/// `GET /api/files/ssh/{host}/list?path=&offset=&limit=`: one page of a folder.
pub async fn list(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let (_, host, granted) = match admit(&state, &headers, &host_id, FileAccess::Read).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let query = match ListQuery::parse(&query) {
        Ok(query) => query,
        Err(e) => return api::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let path = match text(&query.path) {
        Ok(path) => path,
        Err(e) => return failed(&e),
    };
    match sftp::list(&host, &path, query.offset, query.limit).await {
        Ok(page) => warp::reply::json(&DirPage {
            access: granted,
            ..page
        })
        .into_response(),
        Err(e) => failed(&e),
    }
}

/// `GET /api/files/ssh/{host}/file?path=`: the file, streamed; `Range` answered with 206.
pub async fn download(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let (who, host, _) = match admit(&state, &headers, &host_id, FileAccess::Read).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let path = match PathQuery::parse(&query) {
        Ok(query) => match text(&query.path) {
            Ok(path) => path,
            Err(e) => return failed(&e),
        },
        Err(e) => return api::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let config = state.config();
    let limits = &config.file_transfers;
    let slot = match state
        .transfers
        .take(&who.username, limits.max_transfers_per_user)
    {
        Ok(slot) => slot,
        Err(e) => return failed(&e),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let sftp = match Sftp::open(&host).await {
        Ok(sftp) => sftp,
        Err(e) => return failed(&e),
    };
    let done = {
        let state = state.clone();
        let (user, host, what) = (
            who.username.clone(),
            host.id.clone(),
            format!("download {path}"),
        );
        move |bytes: u64, failure: Option<String>| {
            drop(slot);
            audit(&state, &user, &host, what, (Some(bytes), None), failure);
        }
    };
    let (range, body) = match sftp
        .download(&path, range, Pace::new(limits.bytes_per_second), done)
        .await
    {
        Ok(started) => started,
        Err(e) => {
            audit(
                &state,
                &who.username,
                &host.id,
                format!("download {path}"),
                (Some(0), None),
                Some(e.to_string()),
            );
            return failed(&e);
        }
    };
    let name = path.rsplit('/').next().unwrap_or("download");
    download_response(body, name, "application/octet-stream", Some(range))
}

/// `PUT /api/files/ssh/{host}/file?path=&overwrite=`: the body written to `path`.
pub async fn upload<S, B>(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin + Send + 'static,
    B: Buf + Send + 'static,
{
    let (who, host, _) = match admit(&state, &headers, &host_id, FileAccess::Write).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let query = match PathQuery::parse(&query) {
        Ok(query) => query,
        Err(e) => return api::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let path = match text(&query.path) {
        Ok(path) => path,
        Err(e) => return failed(&e),
    };
    let config = state.config();
    let limits = &config.file_transfers;
    if let Some(refused) = over_limit(announced_size(&headers), limits.max_upload_bytes) {
        return refused;
    }
    let slot = match state
        .transfers
        .take(&who.username, limits.max_transfers_per_user)
    {
        Ok(slot) => slot,
        Err(e) => return failed(&e),
    };
    // On a task of its own: when the browser goes away the body ends in an error, and the
    // task still removes the temporary file and records the event.
    let (limit, overwrite, rate) = (
        limits.max_upload_bytes,
        query.overwrite,
        limits.bytes_per_second,
    );
    let upload = {
        let (path, host, state) = (path.clone(), host.clone(), state.clone());
        tokio::spawn(async move {
            let result = match Sftp::open(&host).await {
                Ok(sftp) => {
                    sftp.upload(&path, body, limit, overwrite, Pace::new(rate))
                        .await
                }
                Err(e) => Err(e),
            };
            let (bytes, failure) = match &result {
                Ok(bytes) => (Some(*bytes), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let what = format!("upload {path}");
            audit(
                &state,
                &who.username,
                &host.id,
                what,
                (None, bytes),
                failure,
            );
            drop(slot);
            result
        })
    };
    let result = upload
        .await
        .unwrap_or_else(|e| Err(FilesError::Failed(format!("the upload stopped: {e}"))));
    match result {
        Ok(bytes) => {
            let done = UploadDone { path, bytes };
            warp::reply::with_status(warp::reply::json(&done), StatusCode::CREATED).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// What a change (mkdir, rename, delete) does.
enum Change {
    Mkdir(String),
    Rename(String, String),
    Delete(String),
}

async fn change(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    change: Result<Change, FilesError>,
) -> Response {
    let (who, host, _) = match admit(&state, &headers, &host_id, FileAccess::Write).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let change = match change {
        Ok(change) => change,
        Err(e) => return failed(&e),
    };
    let sftp = match Sftp::open(&host).await {
        Ok(sftp) => sftp,
        Err(e) => return failed(&e),
    };
    let (what, result) = match &change {
        Change::Mkdir(path) => (format!("mkdir {path}"), sftp.mkdir(path).await),
        Change::Rename(from, to) => (format!("rename {from} {to}"), sftp.rename(from, to).await),
        Change::Delete(path) => (format!("delete {path}"), sftp.delete(path).await),
    };
    let failure = result.as_ref().err().map(ToString::to_string);
    audit(&state, &who.username, &host.id, what, (None, None), failure);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(&e),
    }
}

fn one_path(query: &str) -> Result<String, FilesError> {
    let query = PathQuery::parse(query).map_err(FilesError::from)?;
    text(&query.path)
}

/// `POST /api/files/ssh/{host}/mkdir?path=`.
pub async fn mkdir(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = one_path(&query).map(Change::Mkdir);
    change(host_id, state, headers, parsed).await
}

/// `DELETE /api/files/ssh/{host}/file?path=`: a file, a symlink or an empty folder.
pub async fn delete(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = one_path(&query).map(Change::Delete);
    change(host_id, state, headers, parsed).await
}

/// `POST /api/files/ssh/{host}/rename?from=&to=`.
pub async fn rename(
    host_id: String,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = RenameQuery::parse(&query)
        .map_err(FilesError::from)
        .and_then(|q| Ok(Change::Rename(text(&q.from)?, text(&q.to)?)));
    change(host_id, state, headers, parsed).await
}
