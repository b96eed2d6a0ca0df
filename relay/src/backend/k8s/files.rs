//! Files in a pod's container, like `kubectl cp`: programs run through kube-rs exec (the
//! same channel protocol as a terminal, without a TTY), each path one argv element — no
//! shell, so nothing in a path is ever quoted or interpreted.
//!
//! | operation | program in the container |
//! |---|---|
//! | list | `find -H DIR -maxdepth 1 -printf ...`: one NUL-separated record per entry (GNU find) |
//! | download a file | `tar -c -h -f - -C DIR -- NAME`, its one entry unpacked on the fly |
//! | download a folder | `tar -c -f - -C DIR -- NAME`, streamed as is (a `.tar`) |
//! | upload | `tar -x -m -f - -C DIR` fed a one-entry tar built on the fly (a temporary name), then `mv -f -T` |
//! | mkdir, rename, delete | `mkdir`, `mv -T`, `rm -f` / `rmdir` |
//!
//! Nothing is buffered whole: a download moves [`CHUNK`]s through the bounded body
//! channel, an upload writes the request body to tar's stdin as it arrives (kube's stdin
//! pipe is bounded, so a slow container slows the browser). A program the container lacks
//! is a 422 naming it ("container app of pod web has no tar: ..."); a program's complaint
//! (`No such file or directory`, `Permission denied`, `No space left on device`) becomes
//! the matching [`FilesError`] with its words.
//!
//! An upload is extracted under `.opsdeck-upload-<random>` in the target folder and renamed
//! only once tar has exited successfully; on any failure (the browser went away, a body
//! shorter than its `Content-Length`, a full disk) stdin is closed, tar is waited for and
//! the temporary file removed, so no half-written file ever has the real name.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use common::files::{DirEntry, DirPage, EntryKind, FileAccess, name_fields};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};
use tokio::task::JoinHandle;

use super::ContainerPath;
use super::error::{K8sError, timed};
use super::exec::backend_error;
use crate::backend::files::{
    BodyStream, ByteRange, CHUNK, FileSession, FileStore, FilesError, Pace, RemoveTemporary,
    Temporary,
};

/// Bytes of a program's stderr kept for its error message.
const STDERR_KEPT: usize = 4096;
/// A tar block.
const BLOCK: usize = 512;
/// Longest pax or GNU long-name header data read (anything longer is refused).
const MAX_META: u64 = 64 * 1024;
/// What `find -printf` prints per entry: type, mode, size, owner, mtime, link target, name.
const FIND_FORMAT: &str = "%y\\0%m\\0%s\\0%u\\0%T@\\0%l\\0%f\\0";
const FIND_FIELDS: usize = 7;

/// One container's files, through exec in it.
pub struct PodFiles {
    api: Api<Pod>,
    path: ContainerPath,
    request_timeout: Duration,
}

/// A program running in the container: its stdin (when asked for), stdout, stderr read on
/// a task of its own (kube writes every channel from one loop, so an unread stderr would
/// stall stdout), and its status.
struct Run {
    program: String,
    stdin: Option<WriteHalf<SimplexStream>>,
    stdout: ReadHalf<SimplexStream>,
    stderr: JoinHandle<String>,
    status: Option<std::pin::Pin<Box<dyn Future<Output = Option<Status>> + Send>>>,
    attached: AttachedProcess,
}

impl Run {
    /// Waits for the program's end: its stderr and its status.
    async fn finish(mut self, limit: Duration) -> (Option<Status>, String) {
        drop(self.stdin.take());
        let status = self.status.take();
        // What is left on stdout must be read or kube cannot deliver the status.
        let stdout = &mut self.stdout;
        let drain = async move {
            let mut sink = [0u8; CHUNK];
            while let Ok(n) = stdout.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let ended = tokio::time::timeout(limit, async {
            drain.await;
            match status {
                Some(status) => status.await,
                None => None,
            }
        })
        .await
        .unwrap_or(None);
        self.attached.abort();
        let stderr = tokio::time::timeout(limit, &mut self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (ended, stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Closes the exec's socket: the API server ends the program.
        self.attached.abort();
        self.stderr.abort();
    }
}

/// `find`'s starting point: a relative path that could read as an option or an
/// expression (`-x`, `!`, `(`) gets `./` in front.
fn find_start(path: &str) -> String {
    if path.starts_with('/') || path.starts_with("./") {
        path.to_owned()
    } else {
        format!("./{path}")
    }
}

/// A path's folder and last name (`a/b` → `a`, `b`; `b` → `.`, `b`; `/` → `/`, `.`).
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return ("/".into(), ".".into());
    }
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((dir, name)) => (dir.into(), name.into()),
        None => (".".into(), trimmed.into()),
    }
}

impl PodFiles {
    pub fn new(api: Api<Pod>, path: ContainerPath, request_timeout: Duration) -> Self {
        Self {
            api,
            path,
            request_timeout,
        }
    }

    fn container(&self) -> String {
        format!(
            "container {} of pod {} (namespace {}, cluster {})",
            self.path.container, self.path.pod, self.path.namespace, self.path.cluster
        )
    }

    /// Starts `argv` in the container (stdin attached when `stdin`).
    async fn start(&self, argv: &[&str], stdin: bool) -> Result<Run, FilesError> {
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(FilesError::BadRequest(
                "a path may not contain a NUL byte".into(),
            ));
        }
        let params = AttachParams {
            container: Some(self.path.container.clone()),
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
            max_stdin_buf_size: Some(2 * CHUNK),
            max_stdout_buf_size: Some(2 * CHUNK),
            max_stderr_buf_size: Some(STDERR_KEPT),
        };
        let mut attached = timed(
            &self.path.cluster,
            self.request_timeout,
            self.api.exec(&self.path.pod, argv.to_vec(), &params),
        )
        .await
        .map_err(|e| self.k8s_error(e))?;
        let broken = |what: &str| {
            FilesError::Failed(format!(
                "the exec session in {} has no {what}",
                self.container()
            ))
        };
        let stdin = if stdin {
            Some(attached.stdin().ok_or_else(|| broken("stdin"))?)
        } else {
            None
        };
        let stdout = attached.stdout().ok_or_else(|| broken("stdout"))?;
        let mut stderr_pipe = attached.stderr().ok_or_else(|| broken("stderr"))?;
        let status = attached.take_status().ok_or_else(|| broken("status"))?;
        let stderr = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 1024];
            while let Ok(n) = stderr_pipe.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        Ok(Run {
            program: argv.first().copied().unwrap_or_default().to_owned(),
            stdin,
            stdout,
            stderr,
            status: Some(Box::pin(status)),
            attached,
        })
    }

    fn k8s_error(&self, e: K8sError) -> FilesError {
        match e {
            K8sError::NotFound(m) | K8sError::UnknownCluster(m) => FilesError::NotFound(m),
            K8sError::Forbidden(m) => FilesError::PermissionDenied(m),
            K8sError::Invalid(m) => {
                FilesError::BadRequest(format!("cannot run a program in {}: {m}", self.container()))
            }
            other => FilesError::Backend(backend_error(other)),
        }
    }

    /// How a program ended, as a result: success, or why not in words.
    fn judge(
        &self,
        what: &str,
        path: &str,
        program: &str,
        (status, stderr): (Option<Status>, String),
    ) -> Result<(), FilesError> {
        let Some(status) = status else {
            return Err(FilesError::Failed(format!(
                "cannot {what} {path} in {}: the exec session ended without a status (the connection to the API server was lost)",
                self.container()
            )));
        };
        if status.status.as_deref() == Some("Success") {
            return Ok(());
        }
        let said = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("Exiting with failure status"))
            .collect::<Vec<_>>()
            .join("; ");
        if status.reason.as_deref() != Some("NonZeroExitCode") {
            let message = status.message.unwrap_or_default();
            let lower = message.to_lowercase();
            if lower.contains("executable file not found")
                || lower.contains("no such file or directory")
            {
                return Err(FilesError::Unsupported(format!(
                    "{} has no {program}: {message}; files in this container cannot be reached through the relay (kubectl cp needs it too)",
                    self.container()
                )));
            }
            return Err(FilesError::Failed(format!(
                "cannot {what} {path} in {}: {message}",
                self.container()
            )));
        }
        let text = format!("cannot {what} {path} in {}: {said}", self.container());
        let lower = said.to_lowercase();
        Err(if lower.contains("no such file or directory") {
            FilesError::NotFound(text)
        } else if lower.contains("permission denied") || lower.contains("read-only file system") {
            FilesError::PermissionDenied(text)
        } else if lower.contains("no space left") || lower.contains("disk quota exceeded") {
            FilesError::NoSpace(text)
        } else if lower.contains("file exists") || lower.contains("directory not empty") {
            FilesError::Exists(text)
        } else if lower.contains("unrecognized") || lower.contains("unknown predicate") {
            FilesError::Unsupported(format!(
                "{text}: this container's {program} lacks what the relay needs (GNU {program})"
            ))
        } else if said.is_empty() {
            FilesError::Failed(format!("{text}{program} failed"))
        } else {
            FilesError::Failed(text)
        })
    }

    /// Runs `argv` to its end with no input; its stdout is ignored.
    async fn run(&self, what: &str, path: &str, argv: &[&str]) -> Result<(), FilesError> {
        let run = self.start(argv, false).await?;
        let program = run.program.clone();
        let ended = run.finish(self.request_timeout).await;
        self.judge(what, path, &program, ended)
    }

    /// What `path` is (`find`'s `%y` letter: `f`, `d`, `l`, ...), or None when nothing is
    /// there. A symlink is `l` (not followed).
    async fn kind(&self, path: &str) -> Result<Option<u8>, FilesError> {
        let start = find_start(path);
        let mut run = self
            .start(&["find", &start, "-maxdepth", "0", "-printf", "%y"], false)
            .await?;
        let mut out = Vec::new();
        let _ = (&mut run.stdout).take(16).read_to_end(&mut out).await;
        let program = run.program.clone();
        let ended = run.finish(self.request_timeout).await;
        match self.judge("look at", path, &program, ended) {
            Ok(()) => Ok(out.first().copied()),
            Err(FilesError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn clone_handle(&self) -> PodFiles {
        PodFiles {
            api: self.api.clone(),
            path: self.path.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

/// A container's files as the file endpoints use them; each operation is its own exec, so
/// the session is the handle itself.
impl FileStore for PodFiles {
    type Session = PodFiles;

    /// One page of the folder `path`: `limit` entries after the first `offset`, in the
    /// order the folder gives them. Only the page is kept; `find` is stopped once the
    /// page is full.
    async fn list(&self, path: &str, offset: u64, limit: usize) -> Result<DirPage, FilesError> {
        let start = find_start(path);
        let mut run = self
            .start(
                &[
                    "find",
                    "-H",
                    &start,
                    "-maxdepth",
                    "1",
                    "-printf",
                    FIND_FORMAT,
                ],
                false,
            )
            .await?;
        let mut records = Records::default();
        let mut buffer = BytesMut::with_capacity(CHUNK);
        let mut index = 0u64;
        let mut seen_self = false;
        let mut entries = Vec::new();
        let mut next = None;
        'read: loop {
            buffer.reserve(CHUNK);
            let n = run
                .stdout
                .read_buf(&mut buffer)
                .await
                .map_err(|e| FilesError::Failed(format!("reading the listing failed: {e}")))?;
            if n == 0 {
                break;
            }
            while let Some(record) = records.next(&mut buffer)? {
                if !seen_self {
                    // The starting point comes first.
                    seen_self = true;
                    if record[0] != b"d" {
                        return Err(FilesError::Unsupported(format!(
                            "{path} in {} is not a folder",
                            self.container()
                        )));
                    }
                    continue;
                }
                if index >= offset {
                    if entries.len() == limit {
                        next = Some(index);
                        break 'read;
                    }
                    entries.push(entry(&record));
                }
                index += 1;
            }
        }
        if next.is_none() {
            let program = run.program.clone();
            let ended = run.finish(self.request_timeout).await;
            self.judge("list", path, &program, ended)?;
            if !seen_self {
                return Err(FilesError::Failed(format!(
                    "find listed nothing for {path} in {}",
                    self.container()
                )));
            }
        }
        Ok(DirPage {
            path: path.to_owned(),
            entries,
            next,
            // The endpoint says what the user may do.
            access: FileAccess::None,
        })
    }

    async fn open(&self) -> Result<PodFiles, FilesError> {
        Ok(self.clone_handle())
    }
}

impl FileSession for PodFiles {
    /// Starts a download of the file `path` (symlinks followed): its range (from the
    /// `Range` header) and the body, unpacked from tar's stream on a task of its own. The
    /// last chunk is held back until tar says it read the whole file, so a file that
    /// changed size while it was read ends the body in an error rather than wrong bytes.
    /// `done` is called once with the bytes sent and the error that ended it early.
    async fn download(
        &self,
        path: &str,
        range: Option<&str>,
        mut pace: Pace,
        done: impl FnOnce(u64, Option<String>) + Send + 'static,
    ) -> Result<(ByteRange, BodyStream), FilesError> {
        let (dir, name) = split(path);
        let mut run = self
            .start(
                &["tar", "-c", "-h", "-f", "-", "-C", &dir, "--", &name],
                false,
            )
            .await?;
        let size = match read_entry_header(&mut run.stdout).await {
            Ok(Entry::File(size)) => size,
            Ok(Entry::Folder) => {
                return Err(FilesError::Unsupported(format!(
                    "{path} in {} is a folder; download it as a tar (GET .../archive?path=)",
                    self.container()
                )));
            }
            Ok(Entry::Other(kind)) => {
                return Err(FilesError::Unsupported(format!(
                    "{path} in {} is not a regular file (tar entry type {:?})",
                    self.container(),
                    kind as char
                )));
            }
            Err(header_error) => {
                let program = run.program.clone();
                let ended = run.finish(self.request_timeout).await;
                self.judge("read", path, &program, ended)?;
                return Err(header_error);
            }
        };
        let range = ByteRange::parse(range, size)?;
        let (tx, body) = BodyStream::channel();
        let timeout = self.request_timeout;
        let verify = range.start + range.len == size;
        let judge = Judge {
            container: self.container(),
            path: path.to_owned(),
        };
        tokio::spawn(async move {
            let mut skip = range.start;
            let mut left = range.len;
            let mut sent = 0u64;
            let mut held: Option<Bytes> = None;
            let mut buffer = vec![0u8; CHUNK];
            let failure = loop {
                if left == 0 && skip == 0 {
                    break None;
                }
                let want = if skip > 0 { skip } else { left };
                let want = buffer.len().min(usize::try_from(want).unwrap_or(CHUNK));
                let n = match run.stdout.read(&mut buffer[..want]).await {
                    Ok(0) => break Some("tar's stream ended before the file did".to_owned()),
                    Ok(n) => n,
                    Err(e) => break Some(format!("reading tar's stream failed: {e}")),
                };
                if skip > 0 {
                    skip -= n as u64;
                    continue;
                }
                left -= n as u64;
                if let Some(chunk) = held.replace(Bytes::copy_from_slice(&buffer[..n])) {
                    let len = chunk.len();
                    if tx.send(Ok(chunk)).await.is_err() {
                        break Some("the browser went away".to_owned());
                    }
                    sent += len as u64;
                    pace.moved(len).await;
                }
            };
            let failure = match (failure, held) {
                (None, Some(last)) => {
                    let verdict = if verify {
                        let program = run.program.clone();
                        let ended = run.finish(timeout).await;
                        judge.of(&program, ended)
                    } else {
                        drop(run);
                        Ok(())
                    };
                    match verdict {
                        Ok(()) => {
                            let len = last.len();
                            if tx.send(Ok(last)).await.is_err() {
                                Some("the browser went away".to_owned())
                            } else {
                                sent += len as u64;
                                None
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            Some(e.to_string())
                        }
                    }
                }
                (None, None) => None,
                (Some(failure), _) => {
                    let _ = tx.send(Err(std::io::Error::other(failure.clone()))).await;
                    Some(failure)
                }
            };
            done(sent, failure);
        });
        Ok((range, body))
    }

    /// Starts a download of the folder `path` as a tar (its entries under the folder's
    /// name), streamed as tar writes it. The first block is read before this returns, so
    /// a missing folder is an error status, not an empty archive; a failure after that
    /// (an unreadable file inside) ends the body in an error.
    async fn archive(
        &self,
        path: &str,
        mut pace: Pace,
        done: impl FnOnce(u64, Option<String>) + Send + 'static,
    ) -> Result<BodyStream, FilesError> {
        let (dir, name) = split(path);
        let mut run = self
            .start(&["tar", "-c", "-f", "-", "-C", &dir, "--", &name], false)
            .await?;
        let mut first = vec![0u8; BLOCK];
        let complete = run.stdout.read_exact(&mut first).await.is_ok();
        if !complete || first.iter().all(|b| *b == 0) {
            let program = run.program.clone();
            let ended = run.finish(self.request_timeout).await;
            self.judge("read", path, &program, ended)?;
            return Err(FilesError::Failed(format!(
                "tar sent no entry for {path} in {}",
                self.container()
            )));
        }
        let (tx, body) = BodyStream::channel();
        let timeout = self.request_timeout;
        let judge = Judge {
            container: self.container(),
            path: path.to_owned(),
        };
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut chunk = Bytes::from(first);
            let mut buffer = vec![0u8; CHUNK];
            let failure = loop {
                let len = chunk.len();
                if tx.send(Ok(chunk)).await.is_err() {
                    break Some("the browser went away".to_owned());
                }
                sent += len as u64;
                pace.moved(len).await;
                match run.stdout.read(&mut buffer).await {
                    Ok(0) => {
                        let program = run.program.clone();
                        let ended = run.finish(timeout).await;
                        let Err(e) = judge.of(&program, ended) else {
                            break None;
                        };
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        break Some(e.to_string());
                    }
                    Ok(n) => chunk = Bytes::copy_from_slice(&buffer[..n]),
                    Err(e) => {
                        let failure = format!("reading tar's stream failed: {e}");
                        let _ = tx.send(Err(std::io::Error::other(failure.clone()))).await;
                        break Some(failure);
                    }
                }
            };
            done(sent, failure);
        });
        Ok(body)
    }

    /// Writes the `size` bytes of `body` (announced, and within `limit` by then) to `path`
    /// through a temporary name in the same folder, renamed to `path` once tar has written
    /// it all; refuses when `path` exists unless `overwrite`, and a body that is not `size`
    /// bytes. Returns the bytes written.
    async fn upload<S, B, E>(
        &self,
        path: &str,
        size: Option<u64>,
        mut body: S,
        _limit: u64,
        overwrite: bool,
        mut pace: Pace,
    ) -> Result<u64, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Unpin + Send + 'static,
        B: Buf + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        // The endpoint refuses an upload without its size before this (411).
        let size = size.ok_or_else(|| {
            FilesError::BadRequest(format!(
                "an upload into {} needs its size: a tar entry's header holds it",
                self.container()
            ))
        })?;
        let (dir, name) = split(path);
        if name == "." || path.ends_with('/') {
            return Err(FilesError::BadRequest(format!(
                "{path} names no file: end the path with the file's name"
            )));
        }
        match self.kind(path).await? {
            Some(b'd') => {
                return Err(FilesError::Exists(format!(
                    "{path} in {} is a folder; choose a file name inside it",
                    self.container()
                )));
            }
            Some(_) if !overwrite => {
                return Err(FilesError::Exists(format!(
                    "{path} exists in {}; upload with overwrite=1 to replace it",
                    self.container()
                )));
            }
            _ => {}
        }
        let temp_name = format!(".opsdeck-upload-{:016x}", rand::random::<u64>());
        let temp = if dir == "/" {
            format!("/{temp_name}")
        } else {
            format!("{dir}/{temp_name}")
        };
        let mut run = self
            .start(&["tar", "-x", "-m", "-f", "-", "-C", &dir], true)
            .await?;
        let mut stdin = run.stdin.take().ok_or_else(|| {
            FilesError::Failed(format!(
                "the exec session in {} has no stdin",
                self.container()
            ))
        })?;
        // From here on the temporary file goes unless it is renamed, whatever ends this
        // future (an error, or the browser leaving, which drops it).
        let mut cleanup = Temporary::new(self.clone_handle(), temp.clone());
        let fed = feed(&mut stdin, &temp_name, size, &mut body, &mut pace).await;
        // Closing stdin ends tar's archive: whole when fed, cut short otherwise (tar then
        // fails and the partial file is removed below).
        let _ = stdin.shutdown().await;
        drop(stdin);
        let program = run.program.clone();
        let ended = run.finish(self.request_timeout).await;
        let extracted = self.judge("write", path, &program, ended);
        let result = match (fed, extracted) {
            (Err(FeedError::Body(e)), _) => Err(e),
            (Err(FeedError::Pipe(_)), Err(e)) | (Ok(()), Err(e)) => Err(e),
            (Err(FeedError::Pipe(e)), Ok(())) => Err(FilesError::Failed(format!(
                "writing to tar in {} failed: {e}",
                self.container()
            ))),
            (Ok(()), Ok(())) => Ok(()),
        };
        if let Err(e) = result {
            cleanup.remove().await;
            return Err(e);
        }
        if !overwrite && self.kind(path).await?.is_some() {
            cleanup.remove().await;
            return Err(FilesError::Exists(format!(
                "{path} appeared in {} during the upload; upload with overwrite=1 to replace it",
                self.container()
            )));
        }
        if let Err(e) = self
            .run(
                "rename the upload to",
                path,
                &["mv", "-f", "-T", "--", &temp, path],
            )
            .await
        {
            cleanup.remove().await;
            return Err(e);
        }
        cleanup.keep();
        Ok(size)
    }

    /// Makes the folder `path` (its parent must exist).
    async fn mkdir(&self, path: &str) -> Result<(), FilesError> {
        self.run("make the folder", path, &["mkdir", "--", path])
            .await
    }

    /// Renames `from` to `to`, refused when `to` exists.
    async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError> {
        if self.kind(to).await?.is_some() {
            return Err(FilesError::Exists(format!(
                "{to} exists in {}; delete it first or choose another name",
                self.container()
            )));
        }
        self.run("rename", from, &["mv", "-T", "--", from, to])
            .await
    }

    /// Deletes a file, a symlink or an empty folder.
    async fn delete(&self, path: &str) -> Result<(), FilesError> {
        match self.kind(path).await? {
            None => Err(FilesError::NotFound(format!(
                "cannot delete {path} in {}: no such file or folder",
                self.container()
            ))),
            Some(b'd') => self.run("delete", path, &["rmdir", "--", path]).await,
            Some(_) => self.run("delete", path, &["rm", "-f", "--", path]).await,
        }
    }
}

/// What a download task needs to put tar's end in words.
struct Judge {
    container: String,
    path: String,
}

impl Judge {
    fn of(
        &self,
        program: &str,
        (status, stderr): (Option<Status>, String),
    ) -> Result<(), FilesError> {
        match status {
            Some(status) if status.status.as_deref() == Some("Success") => Ok(()),
            Some(status) => Err(FilesError::Failed(format!(
                "{program} could not read all of {} in {}: {}",
                self.path,
                self.container,
                if stderr.trim().is_empty() {
                    status.message.unwrap_or_default()
                } else {
                    stderr.trim().replace('\n', "; ")
                }
            ))),
            None => Err(FilesError::Failed(format!(
                "the exec session reading {} in {} ended without a status",
                self.path, self.container
            ))),
        }
    }
}

/// Why feeding an upload to tar stopped.
enum FeedError {
    /// The request body failed or was not its announced size (already in words).
    Body(FilesError),
    /// tar's stdin closed (tar failed: its status says why).
    Pipe(std::io::Error),
}

/// Writes a one-entry tar of `size` bytes from `body` named `name` to `stdin`.
async fn feed<S, B, E>(
    stdin: &mut WriteHalf<SimplexStream>,
    name: &str,
    size: u64,
    body: &mut S,
    pace: &mut Pace,
) -> Result<(), FeedError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    stdin
        .write_all(&file_header(name, size, mtime))
        .await
        .map_err(FeedError::Pipe)?;
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            FeedError::Body(FilesError::BadRequest(format!(
                "the upload ended early after {written} of {size} bytes: {e}; nothing was kept"
            )))
        })?;
        if written + chunk.remaining() as u64 > size {
            return Err(FeedError::Body(FilesError::BadRequest(format!(
                "the upload is longer than its Content-Length of {size} bytes; nothing was kept"
            ))));
        }
        written += chunk.remaining() as u64;
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len().min(CHUNK);
            stdin
                .write_all(&piece[..n])
                .await
                .map_err(FeedError::Pipe)?;
            chunk.advance(n);
            pace.moved(n).await;
        }
    }
    if written < size {
        return Err(FeedError::Body(FilesError::BadRequest(format!(
            "the upload ended after {written} of its {size} bytes; nothing was kept"
        ))));
    }
    // The entry's padding to a whole block, then the two zero blocks that end an archive.
    let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
    stdin
        .write_all(&vec![0u8; padding + 2 * BLOCK])
        .await
        .map_err(FeedError::Pipe)?;
    stdin.flush().await.map_err(FeedError::Pipe)
}

/// A ustar header of a regular file `name` (at most 100 bytes) of `size` bytes, mode 0644.
fn file_header(name: &str, size: u64, mtime: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = name.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let octal = |field: &mut [u8], value: u64| {
        let width = field.len() - 1;
        let text = format!("{value:0width$o}");
        field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    };
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 0o777_7777_7777 {
        octal(&mut h[124..136], size);
    } else {
        // GNU base-256 for sizes of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

/// What the first real entry of a tar stream is.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(u64),
    Folder,
    Other(u8),
}

/// A numeric header field: octal text, or GNU base-256 (high bit set).
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The `size` of a pax extended header's records (`<len> size=<n>\n`), if it has one.
fn pax_size(data: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|line| {
        let (_, record) = line.split_once(' ')?;
        record.strip_prefix("size=")?.trim().parse().ok()
    })
}

/// Reads tar headers up to the first entry that is not metadata (pax, GNU long names),
/// leaving the reader at that entry's data.
async fn read_entry_header(reader: &mut (impl AsyncRead + Unpin)) -> Result<Entry, FilesError> {
    let mut block = [0u8; BLOCK];
    let mut size_override = None;
    loop {
        reader
            .read_exact(&mut block)
            .await
            .map_err(|_| FilesError::Failed("tar's stream ended before an entry".into()))?;
        if block.iter().all(|b| *b == 0) {
            return Err(FilesError::Failed("tar's archive holds no entry".into()));
        }
        let size = number(&block[124..136])
            .ok_or_else(|| FilesError::Failed("tar sent a header with a bad size".into()))?;
        match block[156] {
            b'x' | b'g' | b'L' | b'K' => {
                if size > MAX_META {
                    return Err(FilesError::Failed(
                        "tar sent an oversized extended header".into(),
                    ));
                }
                let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
                let mut data = vec![0u8; padded as usize];
                reader.read_exact(&mut data).await.map_err(|_| {
                    FilesError::Failed("tar's stream ended in an extended header".into())
                })?;
                if block[156] == b'x'
                    && let Some(size) = pax_size(&data[..size as usize])
                {
                    size_override = Some(size);
                }
            }
            b'0' | b'\0' | b'7' => return Ok(Entry::File(size_override.unwrap_or(size))),
            b'5' => return Ok(Entry::Folder),
            other => return Ok(Entry::Other(other)),
        }
    }
}

/// Splits `find -printf` output into records of [`FIND_FIELDS`] NUL-ended fields.
#[derive(Default)]
struct Records {
    fields: Vec<Vec<u8>>,
}

impl Records {
    /// The next whole record from the front of `buffer`, or None until more arrives.
    fn next(&mut self, buffer: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, FilesError> {
        while let Some(end) = buffer.iter().position(|b| *b == 0) {
            let field = buffer.split_to(end + 1);
            self.fields.push(field[..end].to_vec());
            if self.fields.len() == FIND_FIELDS {
                return Ok(Some(std::mem::take(&mut self.fields)));
            }
        }
        if buffer.len() > 2 * common::files::MAX_PATH_BYTES + CHUNK {
            return Err(FilesError::Failed(
                "find sent a field longer than any path".into(),
            ));
        }
        Ok(None)
    }
}

/// A directory entry from a `find` record (type, mode, size, owner, mtime, link, name).
fn entry(record: &[Vec<u8>]) -> DirEntry {
    let text = |i: usize| String::from_utf8_lossy(&record[i]).into_owned();
    let kind = match record[0].as_slice() {
        b"d" => EntryKind::Dir,
        b"f" => EntryKind::File,
        b"l" => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    let type_bits = match record[0].as_slice() {
        b"d" => 0o040_000,
        b"f" => 0o100_000,
        b"l" => 0o120_000,
        b"p" => 0o010_000,
        b"c" => 0o020_000,
        b"b" => 0o060_000,
        b"s" => 0o140_000,
        _ => 0,
    };
    let mode = u32::from_str_radix(&text(1), 8).unwrap_or(0) | type_bits;
    let (name, raw) = name_fields(&record[6]);
    let link = &record[5];
    DirEntry {
        name,
        raw,
        kind,
        size: text(2).parse().unwrap_or(0),
        mode,
        owner: Some(text(3)).filter(|o| !o.is_empty()),
        modified: text(4).split('.').next().and_then(|s| s.parse().ok()),
        link_target: (kind == EntryKind::Symlink && !link.is_empty())
            .then(|| String::from_utf8_lossy(link).into_owned()),
    }
}

impl RemoveTemporary for PodFiles {
    async fn remove_temporary(&self, path: &str) {
        if let Err(e) = self
            .run(
                "remove the temporary upload",
                path,
                &["rm", "-f", "--", path],
            )
            .await
        {
            tracing::warn!(container = %self.path, "cannot remove the temporary upload {path}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_folder_and_name() {
        assert_eq!(split("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split("/b"), ("/".into(), "b".into()));
        assert_eq!(split("b"), (".".into(), "b".into()));
        assert_eq!(split("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split("/"), ("/".into(), ".".into()));
        assert_eq!(find_start("-name"), "./-name");
        assert_eq!(find_start("/x"), "/x");
    }

    #[tokio::test]
    async fn a_built_header_is_read_back_and_its_checksum_is_tars() {
        let header = file_header(".opsdeck-upload-0123456789abcdef", 1234, 1_700_000_000);
        let sum: u32 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        assert_eq!(number(&header[148..156]), Some(u64::from(sum)));
        let mut stream = &header[..];
        assert_eq!(
            read_entry_header(&mut stream).await.unwrap(),
            Entry::File(1234)
        );
        let big = file_header("x", 10 << 30, 0);
        assert_eq!(number(&big[124..136]), Some(10 << 30));
    }

    #[test]
    fn find_records_survive_odd_names_split_across_reads() {
        let mut records = Records::default();
        let mut buffer =
            BytesMut::from(&b"f\x00644\x0012\x00root\x001700000000.5\x00\x00a\nb\xff"[..]);
        assert!(records.next(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(b"\x00");
        let record = records.next(&mut buffer).unwrap().unwrap();
        let e = entry(&record);
        assert_eq!(e.name, "a\nb\u{fffd}");
        assert!(e.raw.is_some());
        assert_eq!(
            (e.size, e.mode, e.modified),
            (12, 0o100_644, Some(1_700_000_000))
        );
        assert_eq!(e.kind, EntryKind::File);
    }
}
