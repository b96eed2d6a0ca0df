//! What the file backends (`sftp.rs` for SSH hosts, `k8s/files.rs` for pods) share: the
//! [`FileStore`] and [`FileSession`] traits both implement (what the file endpoints ask of
//! a place's files), their error in words with its HTTP status, the transfer slots that
//! bound how many transfers run, the pace that bounds each one's rate, and the body stream
//! a download is sent as.
//!
//! A transfer's bytes move in chunks of at most [`CHUNK`] on a task that awaits between
//! chunks, so it never holds a runtime thread; [`TransferSlots`] caps how many run at once
//! (relay-wide and per user) and [`Pace`] how fast each goes: together they keep a few
//! large transfers from starving the terminals that share the relay.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use common::files::DirPage;
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use warp::http::StatusCode;

use super::BackendError;
use crate::close::Close;

/// Largest piece a transfer moves at once.
pub const CHUNK: usize = 32 * 1024;

/// Why a file operation failed: what the user reads, and its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A path or query the relay refuses (400).
    #[error("{0}")]
    BadRequest(String),
    /// The remote side refused: permission denied (403).
    #[error("{0}")]
    PermissionDenied(String),
    /// No such file or folder, or no such host or pod (404).
    #[error("{0}")]
    NotFound(String),
    /// Something is in the way (409).
    #[error("{0}")]
    Exists(String),
    /// An upload over `file_transfers.max_upload_bytes` (413).
    #[error("{0}")]
    TooLarge(String),
    /// A `Range` beyond the file (416).
    #[error("{message}")]
    RangeNotSatisfiable { message: String, size: u64 },
    /// The remote side cannot do this (no `tar` in the container, a folder where a file
    /// was expected) (422).
    #[error("{0}")]
    Unsupported(String),
    /// The user runs `max_transfers_per_user` transfers already (429).
    #[error("{0}")]
    UserBusy(String),
    /// The relay runs `max_transfers` transfers already (503).
    #[error("{0}")]
    Busy(String),
    /// The remote disk is full (507).
    #[error("{0}")]
    NoSpace(String),
    /// Reaching or logging in to the host or cluster failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The remote side failed otherwise (502).
    #[error("{0}")]
    Failed(String),
}

/// A query string the relay refuses is the user's to fix (400).
impl From<common::QueryError> for FilesError {
    fn from(e: common::QueryError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl FilesError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Exists(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UserBusy(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Backend(e) => Close::from(e.clone()).http_status(),
            Self::Failed(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A place's files (an SSH host through SFTP, a pod's container through exec): what the
/// file endpoints (`endpoints/files.rs`) list, and the session a transfer or change runs on.
pub trait FileStore: Send + Sync + 'static {
    type Session: FileSession;

    /// One page of the folder `path`: `limit` entries after the first `offset`. The page's
    /// `access` is left to the endpoint.
    fn list(
        &self,
        path: &str,
        offset: u64,
        limit: usize,
    ) -> impl Future<Output = Result<DirPage, FilesError>> + Send;

    /// The session for one download, upload or change (an SFTP login on a host; nothing to
    /// open in a pod, whose exec calls are made per operation).
    fn open(&self) -> impl Future<Output = Result<Self::Session, FilesError>> + Send;
}

/// One request's download, upload or change on a place's files. `done` is called once
/// when a download's body ends, with the bytes sent and the error that ended it early.
pub trait FileSession: Send + Sync + 'static {
    /// Starts a download of the file `path`: its range (from the `Range` header) and body.
    fn download(
        &self,
        path: &str,
        range: Option<&str>,
        pace: Pace,
        done: impl FnOnce(u64, Option<String>) + Send + 'static,
    ) -> impl Future<Output = Result<(ByteRange, BodyStream), FilesError>> + Send;

    /// Starts a download of the folder `path` as a tar. Only pods have one (their `tar`);
    /// SFTP has no way to make one, and no route asks it to.
    fn archive(
        &self,
        path: &str,
        pace: Pace,
        done: impl FnOnce(u64, Option<String>) + Send + 'static,
    ) -> impl Future<Output = Result<BodyStream, FilesError>> + Send {
        let _ = (pace, done);
        let refused = FilesError::Unsupported(format!("{path} cannot be downloaded as a tar here"));
        async move { Err(refused) }
    }

    /// Writes `body` (`size` bytes when announced, at most `limit`) to `path` through a
    /// temporary name, refused when `path` exists unless `overwrite`; the bytes written.
    fn upload<S, B, E>(
        &self,
        path: &str,
        size: Option<u64>,
        body: S,
        limit: u64,
        overwrite: bool,
        pace: Pace,
    ) -> impl Future<Output = Result<u64, FilesError>> + Send
    where
        S: Stream<Item = Result<B, E>> + Unpin + Send + 'static,
        B: Buf + Send + 'static,
        E: std::fmt::Display + Send + 'static;

    /// Makes the folder `path`.
    fn mkdir(&self, path: &str) -> impl Future<Output = Result<(), FilesError>> + Send;

    /// Renames `from` to `to`.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<(), FilesError>> + Send;

    /// Deletes a file, a symlink or an empty folder.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), FilesError>> + Send;
}

/// What removes an upload's temporary file (an SFTP session, a container's exec handle);
/// a failure is logged, as there is no one left to tell.
pub trait RemoveTemporary: Send + Sync + 'static {
    fn remove_temporary(&self, path: &str) -> impl Future<Output = ()> + Send;
}

/// An upload's temporary file: removed by [`Temporary::remove`] on a failure, or on a task
/// of its own when dropped armed (the upload's future was dropped midway); disarmed by
/// [`Temporary::keep`] once the file has its real name.
pub struct Temporary<R: RemoveTemporary> {
    remover: Option<R>,
    path: String,
}

impl<R: RemoveTemporary> Temporary<R> {
    pub fn new(remover: R, path: String) -> Self {
        Self {
            remover: Some(remover),
            path,
        }
    }

    pub async fn remove(&mut self) {
        if let Some(remover) = self.remover.take() {
            remover.remove_temporary(&self.path).await;
        }
    }

    pub fn keep(&mut self) {
        self.remover = None;
    }
}

impl<R: RemoveTemporary> Drop for Temporary<R> {
    fn drop(&mut self) {
        if let Some(remover) = self.remover.take() {
            let path = std::mem::take(&mut self.path);
            tokio::spawn(async move { remover.remove_temporary(&path).await });
        }
    }
}

/// How many transfers run: at most `max` on the relay, and a per-user bound given at
/// each [`TransferSlots::take`] (from the config in force).
pub struct TransferSlots {
    max: u32,
    all: Arc<Semaphore>,
    users: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running transfer; its slot is free again when it is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    users: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl TransferSlots {
    pub fn new(max: usize) -> Arc<Self> {
        let max = u32::try_from(max.max(1)).unwrap_or(u32::MAX);
        Arc::new(Self {
            max,
            all: Arc::new(Semaphore::new(max as usize)),
            users: Arc::default(),
        })
    }

    /// Returns once no transfer runs (every slot is free).
    pub async fn idle(&self) {
        if let Ok(all) = self.all.acquire_many(self.max).await {
            drop(all);
        }
    }

    /// A slot for one of `user`'s transfers, or why not (429 for the user's own bound,
    /// 503 for the relay's).
    pub fn take(&self, user: &str, per_user: usize) -> Result<Slot, FilesError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let running = users.get(user).copied().unwrap_or(0);
        if running >= per_user {
            return Err(FilesError::UserBusy(format!(
                "{user} runs {running} transfers already (file_transfers.max_transfers_per_user); wait for one to finish"
            )));
        }
        let permit = self.all.clone().try_acquire_owned().map_err(|_| {
            FilesError::Busy(
                "the relay runs as many transfers as it allows (file_transfers.max_transfers); try again shortly".into(),
            )
        })?;
        users.insert(user.to_owned(), running + 1);
        Ok(Slot {
            _permit: permit,
            users: self.users.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = users.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                users.remove(&self.user);
            }
        }
    }
}

/// Holds a transfer to `bytes_per_second` (none when 0): after each chunk it sleeps until
/// the bytes moved so far are due.
pub struct Pace {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pace {
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            rate: bytes_per_second,
            start: Instant::now(),
            bytes: 0,
        }
    }

    pub async fn moved(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.rate == 0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// A download's body: the chunks a transfer task sends through a bounded channel (so a
/// slow browser holds the task back). When the browser goes away the channel closes and
/// the task stops.
pub struct BodyStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl BodyStream {
    /// The stream and the sender its task writes to (two chunks in flight).
    pub fn channel() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Self) {
        let (tx, rx) = mpsc::channel(2);
        (tx, Self(rx))
    }
}

impl futures_util::Stream for BodyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The byte range a download sends: `start..start + len` of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
    pub size: u64,
    /// Whether a `Range` asked for it (206) or it is the whole file (200).
    pub partial: bool,
}

impl ByteRange {
    /// The range a `Range` header asks for (`bytes=a-b`, `bytes=a-`, `bytes=-n`; one
    /// range only) of a file of `size` bytes; without one, the whole file.
    pub fn parse(header: Option<&str>, size: u64) -> Result<Self, FilesError> {
        let whole = Self {
            start: 0,
            len: size,
            size,
            partial: false,
        };
        let Some(header) = header else {
            return Ok(whole);
        };
        let unsatisfiable = || FilesError::RangeNotSatisfiable {
            message: format!(
                "Range {header:?} is not one range within the file's {size} bytes (bytes=a-b, bytes=a- or bytes=-n)"
            ),
            size,
        };
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or_else(unsatisfiable)?;
        if spec.contains(',') {
            return Err(unsatisfiable());
        }
        let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
        let number = |text: &str| text.trim().parse::<u64>().map_err(|_| unsatisfiable());
        let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => {
                let n = number(last)?.min(size);
                (size - n, size)
            }
            (false, true) => (number(first)?, size),
            (false, false) => (number(first)?, number(last)?.saturating_add(1).min(size)),
            (true, true) => return Err(unsatisfiable()),
        };
        if start >= size || end <= start {
            return Err(unsatisfiable());
        }
        Ok(Self {
            start,
            len: end - start,
            size,
            partial: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_like_rfc_9110_says() {
        let r = |h: &str| ByteRange::parse(Some(h), 100);
        let ok = |start, len| ByteRange {
            start,
            len,
            size: 100,
            partial: true,
        };
        assert_eq!(r("bytes=0-9").unwrap(), ok(0, 10));
        assert_eq!(r("bytes=90-").unwrap(), ok(90, 10));
        assert_eq!(r("bytes=-5").unwrap(), ok(95, 5));
        assert_eq!(r("bytes=50-500").unwrap(), ok(50, 50));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "items=1-2",
            "bytes=1-2,4-5",
            "bytes=-",
        ] {
            assert!(
                matches!(
                    r(bad),
                    Err(FilesError::RangeNotSatisfiable { size: 100, .. })
                ),
                "{bad}"
            );
        }
        assert!(!ByteRange::parse(None, 7).unwrap().partial);
    }

    #[test]
    fn slots_bound_the_relay_and_each_user() {
        let slots = TransferSlots::new(2);
        let a1 = slots.take("a", 1).unwrap();
        assert!(matches!(slots.take("a", 1), Err(FilesError::UserBusy(_))));
        let _b = slots.take("b", 5).unwrap();
        assert!(matches!(slots.take("c", 5), Err(FilesError::Busy(_))));
        drop(a1);
        assert!(slots.take("a", 1).is_ok());
    }
}
