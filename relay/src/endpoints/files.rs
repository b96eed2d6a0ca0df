//! What the two file endpoints (`ssh_files.rs` for SSH hosts, `pod_files.rs` for pods)
//! share: a refusal as HTTP, the `file_transfer` audit event, the announced size of an
//! upload checked against the limit, and a download's response headers.

use common::audit::{AuditEvent, AuditKind};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::api;
use crate::auth::Principal;
use crate::backend::files::{BodyStream, ByteRange, FilesError};
use crate::config::FileAccess;
use crate::state::AppState;

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

/// One `file_transfer` event: who, which target (`ssh:<host>`, `k8s:<container path>`),
/// through which backend, what (`download /path`), the bytes each way, and why it failed.
pub(super) struct Transfer<'a> {
    pub state: &'a AppState,
    pub user: &'a str,
    pub target: String,
    pub backend: &'static str,
}

impl Transfer<'_> {
    pub fn record(&self, what: String, bytes: (Option<u64>, Option<u64>), failure: Option<String>) {
        let mut event = AuditEvent::new(AuditKind::FileTransfer, 0);
        event.user = Some(self.user.to_owned());
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
pub(super) fn announced_size(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 413 when the announced size is over `limit`, before a byte of the body is read.
pub(super) fn over_limit(size: Option<u64>, limit: u64) -> Option<Response> {
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
pub(super) fn download_response(
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
