//! Files in pods: `/api/files/k8s/{cluster}/{namespace}/{pod}/{container}/...` (list,
//! download a file or a folder as a tar, upload, mkdir, rename, delete), through
//! `backend::k8s::files` (programs run by exec in the container, like `kubectl cp`).
//!
//! Each request is checked against one config snapshot as a pod terminal is: the names
//! must be Kubernetes names and the cluster configured, and the grants that open the
//! namespace must give `file_access = "read"` (list, download) or `"write"` (the rest);
//! otherwise 403 saying which. The exec runs as the relay's cluster identity, or as the
//! user with `impersonate = true`. Transfers take a slot and are paced and audited
//! (`file_transfer`, backend `k8s`) exactly as on SSH hosts.

use std::sync::Arc;

use bytes::Buf;
use common::files::{DirPage, ListQuery, PathQuery, RenameQuery, UploadDone};
use futures_util::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::{Reply, Response};

use super::files::{Transfer, announced_size, download_response, failed, over_limit, require};
use super::k8s_exec::container_target;
use crate::access;
use crate::api;
use crate::auth::Principal;
use crate::backend::files::{FilesError, Pace};
use crate::backend::k8s::ContainerPath;
use crate::backend::k8s::files::PodFiles;
use crate::close::Close;
use crate::config::FileAccess;
use crate::state::AppState;

fn refused(close: Close) -> Response {
    api::error(close.http_status(), close.reason)
}

/// Who asks, and the container's files, when they may `need` on them.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    path: &ContainerPath,
    need: FileAccess,
) -> Result<(Principal, PodFiles, FileAccess), Response> {
    let who = api::principal(state, headers).await?;
    let config = state.config();
    let (target, cluster) = container_target(path, &config).map_err(refused)?;
    let granted = access::file_access(&config, &who, &target);
    require(&who, granted, need, &target.to_string(), "the namespace").map_err(|e| failed(&e))?;
    let client = state
        .k8s
        .client(&cluster, &who)
        .await
        .map_err(|e| refused(e.into()))?;
    let api: Api<Pod> = Api::namespaced(client, &path.namespace);
    let files = PodFiles::new(api, path.clone(), config.k8s.request_timeout);
    Ok((who, files, granted))
}

/// Paths reach the container as argv text: the exec API carries the command as strings.
fn text(path: &[u8]) -> Result<String, FilesError> {
    String::from_utf8(path.to_vec()).map_err(|_| {
        FilesError::BadRequest(
            "paths in pods must be UTF-8: the exec API carries a command's arguments as text"
                .into(),
        )
    })
}

fn one_path(query: &str) -> Result<PathQuery, FilesError> {
    PathQuery::parse(query).map_err(FilesError::from)
}

fn transfer<'a>(state: &'a AppState, user: &'a str, path: &ContainerPath) -> Transfer<'a> {
    Transfer {
        state,
        user,
        target: format!("k8s:{path}"),
        backend: "k8s",
    }
}

/// `GET /api/files/k8s/{cluster}/{ns}/{pod}/{container}/list?path=&offset=&limit=`.
pub async fn list(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let query = match ListQuery::parse(&query) {
        Ok(query) => query,
        Err(e) => return api::error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (_, files, granted) = match admit(&state, &headers, &path, FileAccess::Read).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let dir = match text(&query.path) {
        Ok(dir) => dir,
        Err(e) => return failed(&e),
    };
    match files.list(&dir, query.offset, query.limit).await {
        Ok(page) => warp::reply::json(&DirPage {
            access: granted,
            ..page
        })
        .into_response(),
        Err(e) => failed(&e),
    }
}

/// What a download sends: one file (with `Range`), or a folder as a tar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Download {
    File,
    Archive,
}

async fn download(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
    kind: Download,
) -> Response {
    let file = match one_path(&query).and_then(|q| text(&q.path)) {
        Ok(file) => file,
        Err(e) => return failed(&e),
    };
    let (who, files, _) = match admit(&state, &headers, &path, FileAccess::Read).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
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
    let what = match kind {
        Download::File => format!("download {file}"),
        Download::Archive => format!("download {file} as tar"),
    };
    let done = {
        let (state, user, path, what) = (
            state.clone(),
            who.username.clone(),
            path.clone(),
            what.clone(),
        );
        move |bytes: u64, failure: Option<String>| {
            drop(slot);
            transfer(&state, &user, &path).record(what, (Some(bytes), None), failure);
        }
    };
    let pace = Pace::new(limits.bytes_per_second);
    let name = file
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != ".")
        .unwrap_or("root")
        .to_owned();
    let started = match kind {
        Download::File => {
            let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
            files
                .download(&file, range, pace, done)
                .await
                .map(|(range, body)| {
                    download_response(body, &name, "application/octet-stream", Some(range))
                })
        }
        Download::Archive => files
            .archive(&file, pace, done)
            .await
            .map(|body| download_response(body, &format!("{name}.tar"), "application/x-tar", None)),
    };
    started.unwrap_or_else(|e| {
        transfer(&state, &who.username, &path).record(what, (Some(0), None), Some(e.to_string()));
        failed(&e)
    })
}

/// `GET .../file?path=`: the file, streamed; `Range` answered with 206.
pub async fn download_file(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    download(path, state, headers, query, Download::File).await
}

/// `GET .../archive?path=`: the folder (or file) as a tar, streamed as tar writes it.
pub async fn download_archive(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    download(path, state, headers, query, Download::Archive).await
}

/// `PUT .../file?path=&overwrite=`: the body written to `path`. The body is sent as a tar
/// entry whose header carries its size, so `Content-Length` is required (411 without).
pub async fn upload<S, B>(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin + Send + 'static,
    B: Buf + Send + 'static,
{
    let query = match one_path(&query) {
        Ok(query) => query,
        Err(e) => return failed(&e),
    };
    let file = match text(&query.path) {
        Ok(file) => file,
        Err(e) => return failed(&e),
    };
    let (who, files, _) = match admit(&state, &headers, &path, FileAccess::Write).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let config = state.config();
    let limits = &config.file_transfers;
    let Some(size) = announced_size(&headers) else {
        return api::error(
            StatusCode::LENGTH_REQUIRED,
            "an upload into a pod needs Content-Length: the file goes into the container as a tar entry, whose header holds its size",
        );
    };
    if let Some(refused) = over_limit(Some(size), limits.max_upload_bytes) {
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
    let (overwrite, rate) = (query.overwrite, limits.bytes_per_second);
    let upload = {
        let (file, state) = (file.clone(), state.clone());
        tokio::spawn(async move {
            let result = files
                .upload(&file, size, body, overwrite, Pace::new(rate))
                .await;
            let (bytes, failure) = match &result {
                Ok(bytes) => (Some(*bytes), None),
                Err(e) => (None, Some(e.to_string())),
            };
            transfer(&state, &who.username, &path).record(
                format!("upload {file}"),
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
            let done = UploadDone { path: file, bytes };
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
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    change: Result<Change, FilesError>,
) -> Response {
    let change = match change {
        Ok(change) => change,
        Err(e) => return failed(&e),
    };
    let (who, files, _) = match admit(&state, &headers, &path, FileAccess::Write).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let (what, result) = match &change {
        Change::Mkdir(dir) => (format!("mkdir {dir}"), files.mkdir(dir).await),
        Change::Rename(from, to) => (format!("rename {from} {to}"), files.rename(from, to).await),
        Change::Delete(file) => (format!("delete {file}"), files.delete(file).await),
    };
    let failure = result.as_ref().err().map(ToString::to_string);
    transfer(&state, &who.username, &path).record(what, (None, None), failure);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(&e),
    }
}

/// `POST .../mkdir?path=`.
pub async fn mkdir(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = one_path(&query).and_then(|q| text(&q.path).map(Change::Mkdir));
    change(path, state, headers, parsed).await
}

/// `DELETE .../file?path=`: a file, a symlink or an empty folder.
pub async fn delete(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = one_path(&query).and_then(|q| text(&q.path).map(Change::Delete));
    change(path, state, headers, parsed).await
}

/// `POST .../rename?from=&to=`.
pub async fn rename(
    path: ContainerPath,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let parsed = RenameQuery::parse(&query)
        .map_err(FilesError::from)
        .and_then(|q| Ok(Change::Rename(text(&q.from)?, text(&q.to)?)));
    change(path, state, headers, parsed).await
}
