//! Files on SSH hosts (SFTP) and in pods: the listing the relay answers, the query strings
//! of the `/api/files/...` endpoints and the path rules both ends apply.
//!
//! Paths travel as UTF-8 text in query strings (`path=/var/log/app.log`), percent-encoded.
//! A name that is not UTF-8 on the remote side is listed with its text form in `name`
//! (invalid bytes as U+FFFD) and its exact bytes in `raw` (standard base64); a path whose
//! last part is such a name is sent back as `raw_path` (base64 of the whole path's bytes)
//! instead of `path`, so it can be downloaded unmangled.
//!
//! | endpoint | query |
//! |---|---|
//! | `GET /api/files/{kind}/{target...}/list` | [`ListQuery`]: `path`, `offset`, `limit` |
//! | `GET`, `PUT`, `DELETE /api/files/{kind}/{target...}/file` | [`PathQuery`]: `path` (or `raw_path`), `overwrite` |
//! | `POST /api/files/{kind}/{target...}/mkdir` | [`PathQuery`] |
//! | `POST /api/files/{kind}/{target...}/rename` | [`RenameQuery`]: `from`, `to` |

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::resume::encode;

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name (one path component), in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Most entries one listing page holds.
pub const MAX_PAGE: usize = 1000;
/// Entries in a page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 200;

/// What a user may do with files on a host or in a pod (`file_access` in a grant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAccess {
    /// Nothing (the default): no files pane.
    #[default]
    None,
    /// List and download.
    Read,
    /// List, download, upload, mkdir, rename, delete.
    Write,
}

impl FileAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The name as text (bytes that are not UTF-8 shown as U+FFFD).
    pub name: String,
    /// The name's exact bytes in standard base64, present only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    pub kind: EntryKind,
    pub size: u64,
    /// Unix permission bits (`0o644` is 420), with the file type bits.
    pub mode: u32,
    /// The owner's name where the server says it, else its uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Last modification, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<u64>,
    /// Where a symlink points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// One page of a directory listing, in the server's order (not sorted: a sorted page
/// would need the whole directory in memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage {
    /// The directory listed, as the server resolved it.
    pub path: String,
    pub entries: Vec<DirEntry>,
    /// The `offset` of the next page, absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// What the asking user may do here (`read`: no upload, mkdir, rename or delete).
    #[serde(default)]
    pub access: FileAccess,
}

/// The answer to a finished upload (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadDone {
    pub path: String,
    pub bytes: u64,
}

/// Why a path was refused (HTTP 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a path is needed: send path=/some/where")]
    Empty,
    #[error("a path may not contain a NUL byte")]
    Nul,
    #[error("a path may not contain \"..\": name the place directly")]
    DotDot,
    #[error("the path is {0} bytes long; at most {MAX_PATH_BYTES} are accepted")]
    TooLong(usize),
    #[error("a name in the path is {0} bytes long; at most {MAX_NAME_BYTES} are accepted")]
    NameTooLong(usize),
    #[error("raw_path is not standard base64")]
    BadBase64,
}

/// Checks a path's bytes: not empty, no NUL, no `..` component, within the lengths.
pub fn check_path(path: &[u8]) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains(&0) {
        return Err(PathError::Nul);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(path.len()));
    }
    for part in path.split(|b| *b == b'/') {
        if part == b".." {
            return Err(PathError::DotDot);
        }
        if part.len() > MAX_NAME_BYTES {
            return Err(PathError::NameTooLong(part.len()));
        }
    }
    Ok(())
}

/// `?path=` or `?raw_path=` of one file or folder, and whether an upload may replace a
/// file that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathQuery {
    /// The path's bytes (from `path`, or decoded from `raw_path`).
    pub path: Vec<u8>,
    /// `overwrite=1`: an upload replaces an existing file (else 409).
    pub overwrite: bool,
}

#[derive(Deserialize)]
struct RawPathQuery {
    path: Option<String>,
    raw_path: Option<String>,
    overwrite: Option<String>,
}

fn path_of(path: Option<String>, raw_path: Option<String>) -> Result<Vec<u8>, QueryError> {
    let bytes = match (path, raw_path) {
        (_, Some(raw)) => base64_decode(&raw).ok_or_else(|| path_error(PathError::BadBase64))?,
        (Some(path), None) => path.into_bytes(),
        (None, None) => Vec::new(),
    };
    check_path(&bytes).map_err(path_error)?;
    Ok(bytes)
}

fn path_error(e: PathError) -> QueryError {
    QueryError::Malformed(e.to_string())
}

fn flag(value: Option<String>, name: &'static str) -> Result<bool, QueryError> {
    match value.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(QueryError::bad_value(name, other, "true or false")),
    }
}

fn raw<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, QueryError> {
    serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))
}

/// The query value for a path: `path=` when it is UTF-8, else `raw_path=` (base64).
fn path_param(name: &str, raw_name: &str, path: &[u8]) -> String {
    match std::str::from_utf8(path) {
        Ok(text) => format!("{name}={}", encode(text)),
        Err(_) => format!("{raw_name}={}", encode(&base64_encode(path))),
    }
}

impl PathQuery {
    pub fn new(path: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            overwrite: false,
        }
    }

    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let q: RawPathQuery = raw(query)?;
        Ok(Self {
            path: path_of(q.path, q.raw_path)?,
            overwrite: flag(q.overwrite, "overwrite")?,
        })
    }

    pub fn to_query(&self) -> String {
        let mut query = path_param("path", "raw_path", &self.path);
        if self.overwrite {
            query.push_str("&overwrite=1");
        }
        query
    }
}

/// `?path=&offset=&limit=` of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub path: Vec<u8>,
    /// Entries to skip (the previous page's `next`).
    pub offset: u64,
    /// Entries in the page, 1 to [`MAX_PAGE`].
    pub limit: usize,
}

#[derive(Deserialize)]
struct RawListQuery {
    path: Option<String>,
    raw_path: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
}

impl ListQuery {
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let q: RawListQuery = raw(query)?;
        let offset = match q.offset {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| QueryError::bad_value("offset", &text, "a count of entries"))?,
        };
        let limit = match q.limit {
            None => DEFAULT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(QueryError::bad_value(
                        "limit",
                        &text,
                        "a number of entries from 1 to 1000",
                    ));
                }
            },
        };
        Ok(Self {
            path: path_of(q.path.or(Some(".".into())), q.raw_path)?,
            offset,
            limit,
        })
    }

    pub fn to_query(&self) -> String {
        format!(
            "{}&offset={}&limit={}",
            path_param("path", "raw_path", &self.path),
            self.offset,
            self.limit
        )
    }
}

/// `?from=&to=` of a rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameQuery {
    pub from: Vec<u8>,
    pub to: Vec<u8>,
}

#[derive(Deserialize)]
struct RawRenameQuery {
    from: Option<String>,
    raw_from: Option<String>,
    to: Option<String>,
}

impl RenameQuery {
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let q: RawRenameQuery = raw(query)?;
        Ok(Self {
            from: path_of(q.from, q.raw_from)?,
            to: path_of(q.to, None)?,
        })
    }

    pub fn to_query(&self) -> String {
        format!(
            "{}&{}",
            path_param("from", "raw_from", &self.from),
            path_param("to", "to", &self.to)
        )
    }
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The bytes of standard base64 (padding required), or `None`.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// An entry's `name` and `raw` from the name's bytes.
pub fn name_fields(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64_encode(bytes)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        assert_eq!(check_path(b""), Err(PathError::Empty));
        assert_eq!(check_path(b"/a/../etc"), Err(PathError::DotDot));
        assert_eq!(check_path(b".."), Err(PathError::DotDot));
        assert_eq!(check_path(b"/a\0b"), Err(PathError::Nul));
        assert_eq!(
            check_path(&[b'a'; 256]),
            Err(PathError::NameTooLong(256)),
            "one name over NAME_MAX"
        );
        let long = "/abc".repeat(1100);
        assert_eq!(
            check_path(long.as_bytes()),
            Err(PathError::TooLong(long.len()))
        );
        assert_eq!(check_path(b"/a/..b/c..d/./x"), Ok(()));
    }

    #[test]
    fn queries_round_trip_and_non_utf8_paths_travel_as_base64() {
        let q = PathQuery::parse("path=%2Ftmp%2F%C3%A9t%C3%A9&overwrite=1").unwrap();
        assert_eq!(q.path, "/tmp/été".as_bytes());
        assert!(q.overwrite);
        assert_eq!(PathQuery::parse(&q.to_query()).unwrap(), q);
        let odd = PathQuery::new(b"/tmp/\xff\xfe.bin".to_vec());
        assert!(odd.to_query().starts_with("raw_path="));
        assert_eq!(PathQuery::parse(&odd.to_query()).unwrap(), odd);
        assert!(PathQuery::parse("path=%2Fa%00b").is_err());
        let list = ListQuery::parse("path=%2Fvar&offset=200&limit=50").unwrap();
        assert_eq!((list.offset, list.limit), (200, 50));
        assert_eq!(ListQuery::parse(&list.to_query()).unwrap(), list);
        assert!(ListQuery::parse("limit=100000").is_err());
        let rename = RenameQuery::parse("from=%2Fa&to=%2Fb").unwrap();
        assert_eq!(RenameQuery::parse(&rename.to_query()).unwrap(), rename);
    }

    #[test]
    fn base64_round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"\xff\x00\x80hello"] {
            assert_eq!(base64_decode(&base64_encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_decode("Zm9vYg"), None);
        let (name, raw) = name_fields(b"caf\xe9");
        assert_eq!(name, "caf\u{fffd}");
        assert_eq!(base64_decode(&raw.unwrap()).unwrap(), b"caf\xe9");
    }
}
