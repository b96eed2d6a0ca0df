//! The file endpoints, written once for every place that has files: an SSH host
//! (`ssh_files.rs`, through `backend::sftp`) and a pod's container (`pod_files.rs`, through
//! `backend::k8s::files`). Each step is here — list, download (a file, or a folder as a
//! tar), upload, mkdir, rename, delete — with a refusal as HTTP, the `file_transfer` audit
//! event, the announced size of an upload checked against the limit, and a download's
//! response headers. A [`Place`] brings what differs: its admission (the target lookup
//! and the grant check, in one config snapshot), its words, and its audit target.
//!
//! Transfers take a slot (`backend::files`), are paced, and are audited with their bytes
//! and outcome, as are the changes.

use std::sync::Arc;

use bytes::Buf;
use common::audit::{AuditEvent, AuditKind};
use common::files::{DirPage, ListQuery, PathQuery, RenameQuery, UploadDone};
use futures_util::Stream;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::api;
use crate::auth::Principal;
use crate::backend::files::{BodyStream, ByteRange, FileSession, FileStore, FilesError, Pace};
use crate::config::FileAccess;
use crate::state::AppState;

/// Where a file request goes, and what differs there: who may enter, the words of its
/// refusals, the audit's target and backend.
pub trait Place: Send + Sync + 'static {
    type Store: FileStore;

    /// The audit's backend (`sftp`, `k8s`).
    const BACKEND: &'static str;
    /// Why a path that is not UTF-8 is refused here (400).
    const NOT_UTF8: &'static str;
    /// Whether the query is read before admission (pods) or after it (SSH hosts): which
    /// refusal a request that is wrong both ways gets.
    const QUERY_FIRST: bool;
    /// Why an upload without `Content-Length` is refused here (411), if it is.
    const LENGTH_REQUIRED: Option<&'static str> = None;

    /// Who asks, this place's files, and what they may do there, when that is at least
    /// `need`; otherwise the refusal.
    fn admit(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        need: FileAccess,
    ) -> impl Future<Output = Result<Admitted<Self::Store>, Response>> + Send;

    /// The audit's target (`ssh:<host>`, `k8s:<container path>`).
    fn audit_target(&self) -> String;
}

/// An admitted request: who asks, the place's files, and what their grants give there.
pub struct Admitted<S> {
    pub who: Principal,
    pub files: S,
    pub granted: FileAccess,
}

/// What a request's handler returns early with is a response too.
type Answer = Result<Response, Response>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(|refused| refused)
}

/// A path from a query as text, or this place's refusal.
fn text<P: Place>(path: &[u8]) -> Result<String, FilesError> {
    String::from_utf8(path.to_vec()).map_err(|_| FilesError::BadRequest(P::NOT_UTF8.into()))
}

fn one_path<P: Place>(query: &str) -> Result<String, FilesError> {
    text::<P>(&PathQuery::parse(query)?.path)
}

/// Reads the query (`read`) and admits the request, in the place's order.
async fn enter<P: Place, Q>(
    place: &P,
    state: &AppState,
    headers: &HeaderMap,
    need: FileAccess,
    read: impl FnOnce() -> Result<Q, FilesError> + Send,
) -> Result<(Admitted<P::Store>, Q), Response> {
    if P::QUERY_FIRST {
        let query = read().map_err(|e| failed(&e))?;
        Ok((place.admit(state, headers, need).await?, query))
    } else {
        let admitted = place.admit(state, headers, need).await?;
        Ok((admitted, read().map_err(|e| failed(&e))?))
    }
}

/// `GET .../list?path=&offset=&limit=`: one page of a folder.
pub async fn list<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    answer(
        async {
            let read = || Ok(ListQuery::parse(&query)?);
            let (admitted, query) = enter(&place, &state, &headers, FileAccess::Read, read).await?;
            let path = text::<P>(&query.path).map_err(|e| failed(&e))?;
            let page = admitted
                .files
                .list(&path, query.offset, query.limit)
                .await
                .map_err(|e| failed(&e))?;
            let page = DirPage {
                access: admitted.granted,
                ..page
            };
            Ok(warp::reply::json(&page).into_response())
        }
        .await,
    )
}

/// What a download sends: one file (with `Range`), or a folder as a tar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Download {
    File,
    Archive,
}

/// `GET .../file?path=`: the file, streamed; `Range` answered with 206. `GET
/// .../archive?path=` (pods): the folder (or file) as a tar, streamed as tar writes it.
pub async fn download<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
    kind: Download,
) -> Response {
    answer(
        async {
            let read = || one_path::<P>(&query);
            let (admitted, file) = enter(&place, &state, &headers, FileAccess::Read, read).await?;
            let config = state.config();
            let limits = &config.file_transfers;
            // A slot for one of the user's transfers, or why not (429, 503).
            let slot = state
                .transfers
                .take(&admitted.who.username, limits.max_transfers_per_user)
                .map_err(|e| failed(&e))?;
            let session = admitted.files.open().await.map_err(|e| failed(&e))?;
            let audit = Transfer::of(&state, &admitted.who.username, &place);
            let what = match kind {
                Download::File => format!("download {file}"),
                Download::Archive => format!("download {file} as tar"),
            };
            let done = {
                let (audit, what) = (audit.clone(), what.clone());
                move |bytes: u64, failure: Option<String>| {
                    drop(slot);
                    audit.record(what, (Some(bytes), None), failure);
                }
            };
            let pace = Pace::new(limits.bytes_per_second);
            let name = download_name(&file);
            let started = match kind {
                Download::File => {
                    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
                    session
                        .download(&file, range, pace, done)
                        .await
                        .map(|(range, body)| {
                            download_response(body, name, "application/octet-stream", Some(range))
                        })
                }
                Download::Archive => session.archive(&file, pace, done).await.map(|body| {
                    download_response(body, &format!("{name}.tar"), "application/x-tar", None)
                }),
            };
            started.map_err(|e| {
                audit.record(what, (Some(0), None), Some(e.to_string()));
                failed(&e)
            })
        }
        .await,
    )
}

/// The name a download is saved as: the path's last name (`root` for `/`).
fn download_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != ".")
        .unwrap_or("root")
}

/// `PUT .../file?path=&overwrite=`: the body written to `path`, on a task of its own: when
/// the browser goes away the body ends in an error, and the task still removes the
/// temporary file and records the event.
pub async fn upload<P, S, B>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
    body: S,
) -> Response
where
    P: Place,
    S: Stream<Item = Result<B, warp::Error>> + Unpin + Send + 'static,
    B: Buf + Send + 'static,
{
    answer(
        async {
            let read = || {
                let query = PathQuery::parse(&query)?;
                Ok((text::<P>(&query.path)?, query.overwrite))
            };
            let (admitted, (file, overwrite)) =
                enter(&place, &state, &headers, FileAccess::Write, read).await?;
            let config = state.config();
            let limits = &config.file_transfers;
            let size = announced_size(&headers);
            if let (Some(why), None) = (P::LENGTH_REQUIRED, size) {
                return Err(api::error(StatusCode::LENGTH_REQUIRED, why));
            }
            if let Some(refused) = over_limit(size, limits.max_upload_bytes) {
                return Err(refused);
            }
            // A slot for one of the user's transfers, or why not (429, 503).
            let slot = state
                .transfers
                .take(&admitted.who.username, limits.max_transfers_per_user)
                .map_err(|e| failed(&e))?;
            let audit = Transfer::of(&state, &admitted.who.username, &place);
            let (limit, pace) = (limits.max_upload_bytes, Pace::new(limits.bytes_per_second));
            let files = admitted.files;
            let upload = {
                let file = file.clone();
                tokio::spawn(async move {
                    let result = match files.open().await {
                        Ok(session) => {
                            session
                                .upload(&file, size, body, limit, overwrite, pace)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    let (bytes, failure) = match &result {
                        Ok(bytes) => (Some(*bytes), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    audit.record(format!("upload {file}"), (None, bytes), failure);
                    drop(slot);
                    result
                })
            };
            let bytes = upload
                .await
                .unwrap_or_else(|e| Err(FilesError::Failed(format!("the upload stopped: {e}"))))
                .map_err(|e| failed(&e))?;
            let done = UploadDone { path: file, bytes };
            Ok(
                warp::reply::with_status(warp::reply::json(&done), StatusCode::CREATED)
                    .into_response(),
            )
        }
        .await,
    )
}

/// What a change (mkdir, rename, delete) does.
enum Change {
    Mkdir(String),
    Rename(String, String),
    Delete(String),
}

async fn change<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    read: impl FnOnce() -> Result<Change, FilesError> + Send,
) -> Response {
    answer(
        async {
            let (admitted, change) =
                enter(&place, &state, &headers, FileAccess::Write, read).await?;
            let session = admitted.files.open().await.map_err(|e| failed(&e))?;
            let (what, result) = match &change {
                Change::Mkdir(path) => (format!("mkdir {path}"), session.mkdir(path).await),
                Change::Rename(from, to) => (
                    format!("rename {from} {to}"),
                    session.rename(from, to).await,
                ),
                Change::Delete(path) => (format!("delete {path}"), session.delete(path).await),
            };
            let failure = result.as_ref().err().map(ToString::to_string);
            Transfer::of(&state, &admitted.who.username, &place).record(
                what,
                (None, None),
                failure,
            );
            result.map_err(|e| failed(&e))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `POST .../mkdir?path=`.
pub async fn mkdir<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let read = || one_path::<P>(&query).map(Change::Mkdir);
    change(place, state, headers, read).await
}

/// `DELETE .../file?path=`: a file, a symlink or an empty folder.
pub async fn delete<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let read = || one_path::<P>(&query).map(Change::Delete);
    change(place, state, headers, read).await
}

/// `POST .../rename?from=&to=`.
pub async fn rename<P: Place>(
    place: P,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let read = || {
        let query = RenameQuery::parse(&query)?;
        Ok(Change::Rename(
            text::<P>(&query.from)?,
            text::<P>(&query.to)?,
        ))
    };
    change(place, state, headers, read).await
}

/// A file error as an API refusal (with `Content-Range: bytes */size` on a 416).
pub(super) fn failed(e: &FilesError) -> Response {
    let mut response = api::error(e.http_status(), e.to_string());
    if let FilesError::RangeNotSatisfiable { size, .. } = e
        && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// A refusal (403) in words when `who`'s grants give less than `need` on `place` (e.g. "SSH host
/// web-1"), whose grants are those of `granted_by` (e.g. "the host").
pub(super) fn require(
    who: &Principal,
    granted: FileAccess,
    need: FileAccess,
    place: &str,
    granted_by: &str,
) -> Result<(), FilesError> {
    if granted >= need {
        return Ok(());
    }
    let verb = if need == FileAccess::Write {
        "change"
    } else {
        "read"
    };
    Err(FilesError::PermissionDenied(format!(
        "{} may not {verb} files on {place}: that needs file_access = \"{}\" in a grant of {granted_by} (granted: \"{}\")",
        who.username,
        need.as_str(),
        granted.as_str()
    )))
}

/// One place's `file_transfer` events for one user: who, which target (`ssh:<host>`,
/// `k8s:<container path>`), through which backend; each with what (`download /path`), the
/// bytes each way, and why it failed.
#[derive(Clone)]
struct Transfer {
    state: Arc<AppState>,
    user: String,
    target: String,
    backend: &'static str,
}

impl Transfer {
    fn of<P: Place>(state: &Arc<AppState>, user: &str, place: &P) -> Self {
        Self {
            state: state.clone(),
            user: user.to_owned(),
            target: place.audit_target(),
            backend: P::BACKEND,
        }
    }

    fn record(&self, what: String, bytes: (Option<u64>, Option<u64>), failure: Option<String>) {
        let mut event = AuditEvent::new(AuditKind::FileTransfer, 0);
        event.user = Some(self.user.clone());
        event.target = Some(self.target.clone());
        event.backend = Some(self.backend.into());
        event.path = Some(what);
        event.bytes_to_browser = bytes.0;
        event.bytes_from_browser = bytes.1;
        event.reason = failure;
        self.state.audit.record(event);
    }
}

/// The upload's `Content-Length`, if the request has a valid one.
fn announced_size(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 413 when the announced size is over `limit`, before a byte of the body is read.
fn over_limit(size: Option<u64>, limit: u64) -> Option<Response> {
    let size = size?;
    (size > limit).then(|| {
        api::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is {size} bytes; the relay takes at most {limit} (file_transfers.max_upload_bytes)"
            ),
        )
    })
}

/// A download's response: 200 (or 206 for a part), `Content-Length` when known,
/// `Accept-Ranges` when ranges are served, and `Content-Disposition` with `name`.
fn download_response(
    body: BodyStream,
    name: &str,
    content_type: &'static str,
    range: Option<ByteRange>,
) -> Response {
    let mut response = warp::reply::stream(body).into_response();
    if range.is_some_and(|r| r.partial) {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(range) = range {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.len));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if range.partial
            && let Ok(value) = HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                range.start,
                range.start + range.len - 1,
                range.size
            ))
        {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// `attachment` with an ASCII fallback name and the exact one (RFC 6266 `filename*`).
fn disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut exact = String::new();
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                exact.push(byte as char)
            }
            _ => exact.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}
