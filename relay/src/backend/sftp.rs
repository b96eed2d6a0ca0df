//! Files on SSH hosts through SFTP (`russh-sftp`) over the relay's own SSH login to the
//! host (`ssh::login`: the same credentials and host-key check as a terminal).
//!
//! Each request opens its own connection and SFTP session and closes it when done.
//! Listings read the directory batch by batch and keep only the page asked for; downloads
//! are read in [`CHUNK`]s by a task feeding the response body through a bounded channel;
//! uploads are written to a temporary name beside the target (`.<name>.opsdeck-<random>`)
//! and renamed once complete, and the temporary file is removed when the upload fails or
//! its browser goes away.
//!
//! Paths are UTF-8: `russh-sftp` (3.0) reads every name the server sends as text, so a
//! name that is not UTF-8 arrives with U+FFFD in place of its odd bytes and cannot be
//! opened through it.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use common::files::{DirEntry, DirPage, EntryKind, FileAccess, name_fields};
use futures_util::{Stream, StreamExt};
use russh::client::Handle;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode as SftpStatus};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::BackendError;
use super::files::{
    BodyStream, ByteRange, CHUNK, FileSession, FileStore, FilesError, Pace, RemoveTemporary,
    Temporary,
};
use super::ssh::{self, HostKeyCheck};
use crate::config::SshHost;

/// Seconds an SFTP request may take before it counts as lost.
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// An SFTP session on one host; the SSH connection lives as long as it does.
#[derive(Clone)]
pub struct Sftp {
    inner: Arc<Inner>,
}

struct Inner {
    session: SftpSession,
    host: String,
    _handle: Handle<HostKeyCheck>,
}

async fn channel(
    host: &SshHost,
) -> Result<
    (
        russh::ChannelStream<russh::client::Msg>,
        Handle<HostKeyCheck>,
    ),
    FilesError,
> {
    let handle = ssh::login(host).await?;
    let failed = |e: russh::Error| {
        FilesError::Backend(BackendError::Failed(format!(
            "SSH host {} refused the SFTP subsystem: {e}",
            host.id
        )))
    };
    let channel = handle.channel_open_session().await.map_err(failed)?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(failed)?;
    Ok((channel.into_stream(), handle))
}

impl Sftp {
    /// Logs in to `host` and starts its SFTP subsystem.
    pub async fn open(host: &SshHost) -> Result<Self, FilesError> {
        let (stream, handle) = channel(host).await?;
        let config = russh_sftp::client::Config {
            request_timeout_secs: REQUEST_TIMEOUT_SECS,
            ..Default::default()
        };
        let session = tokio::time::timeout(
            host.connect_timeout,
            SftpSession::new_with_config(stream, config),
        )
        .await
        .map_err(|_| FilesError::Failed(format!("SFTP on SSH host {} did not start", host.id)))?
        .map_err(|e| {
            FilesError::Failed(format!("SFTP on SSH host {} did not start: {e}", host.id))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                session,
                host: host.id.clone(),
                _handle: handle,
            }),
        })
    }

    fn error(&self, what: &str, path: &str, e: SftpError) -> FilesError {
        sftp_error(&self.inner.host, what, path, e)
    }

    async fn exists(&self, path: &str) -> Result<bool, FilesError> {
        match self.inner.session.symlink_metadata(path).await {
            Ok(_) => Ok(true),
            Err(SftpError::Status(s)) if s.status_code == SftpStatus::NoSuchFile => Ok(false),
            Err(e) => Err(self.error("look at", path, e)),
        }
    }

    async fn write_all<S, B, E>(
        &self,
        file: &mut russh_sftp::client::fs::File,
        path: &str,
        dir: &str,
        body: &mut S,
        limit: u64,
        pace: &mut Pace,
    ) -> Result<u64, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: Buf,
        E: std::fmt::Display,
    {
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk
                .map_err(|e| FilesError::BadRequest(format!("the upload ended early: {e}")))?;
            written += chunk.remaining() as u64;
            if written > limit {
                return Err(FilesError::TooLarge(format!(
                    "the upload is larger than the relay's limit of {limit} bytes (file_transfers.max_upload_bytes); nothing was kept"
                )));
            }
            while chunk.has_remaining() {
                let piece = chunk.chunk();
                let n = piece.len().min(CHUNK);
                if let Err(e) = file.write_all(&piece[..n]).await {
                    return Err(self.write_failed(path, dir, e).await);
                }
                chunk.advance(n);
                pace.moved(n).await;
            }
        }
        if let Err(e) = file.shutdown().await {
            return Err(self.write_failed(path, dir, e).await);
        }
        Ok(written)
    }

    /// Why a write failed: a full disk when the folder's file system says it has no room
    /// left (SFTP v3 reports ENOSPC as a bare "Failure"), else the error.
    async fn write_failed(&self, path: &str, dir: &str, e: std::io::Error) -> FilesError {
        let dir = if dir.is_empty() { "/" } else { dir };
        if let Ok(Some(fs)) = self.inner.session.fs_info(dir).await
            && fs.blocks_avail.saturating_mul(fs.fragment_size.max(1)) < CHUNK as u64
        {
            return FilesError::NoSpace(format!(
                "no space left on the disk of {dir} on SSH host {}; nothing was kept",
                self.inner.host
            ));
        }
        FilesError::Failed(format!(
            "writing {path} on SSH host {} failed: {e}; nothing was kept",
            self.inner.host
        ))
    }
}

impl RemoveTemporary for Sftp {
    async fn remove_temporary(&self, path: &str) {
        if let Err(e) = self.inner.session.remove_file(path).await {
            tracing::warn!(host = %self.inner.host, "cannot remove the temporary upload {path}: {e}");
        }
    }
}

/// An SSH host's files as the file endpoints use them: listed on an SFTP session of its
/// own, downloaded, uploaded and changed on an [`Sftp`] session opened per request.
pub struct SftpHost(pub SshHost);

impl FileStore for SftpHost {
    type Session = Sftp;

    async fn list(&self, path: &str, offset: u64, limit: usize) -> Result<DirPage, FilesError> {
        list(&self.0, path, offset, limit).await
    }

    async fn open(&self) -> Result<Sftp, FilesError> {
        Sftp::open(&self.0).await
    }
}

impl FileSession for Sftp {
    /// Starts a download of `path` (a file; symlinks followed): its range (from the
    /// `Range` header) and the body, read on a task of its own. `done` is called once
    /// with the bytes sent and the error that ended it early, if one did.
    async fn download(
        &self,
        path: &str,
        range: Option<&str>,
        mut pace: Pace,
        done: impl FnOnce(u64, Option<String>) + Send + 'static,
    ) -> Result<(ByteRange, BodyStream), FilesError> {
        let meta = self
            .inner
            .session
            .metadata(path)
            .await
            .map_err(|e| self.error("read", path, e))?;
        if meta.is_dir() {
            return Err(FilesError::Unsupported(format!(
                "{path} is a folder; download its files one by one"
            )));
        }
        let range = ByteRange::parse(range, meta.len())?;
        let mut file = self
            .inner
            .session
            .open(path)
            .await
            .map_err(|e| self.error("read", path, e))?;
        if range.start > 0 {
            file.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| FilesError::Failed(format!("cannot seek in {path}: {e}")))?;
        }
        let (tx, body) = BodyStream::channel();
        let keep = self.clone();
        tokio::spawn(async move {
            let _session = keep;
            let mut left = range.len;
            let mut sent = 0u64;
            let mut buffer = vec![0u8; CHUNK];
            let failure = loop {
                if left == 0 {
                    break None;
                }
                let want = buffer.len().min(usize::try_from(left).unwrap_or(CHUNK));
                let n = match file.read(&mut buffer[..want]).await {
                    Ok(0) => break Some("the file ended before its size".to_owned()),
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        break Some(format!("read failed: {e}"));
                    }
                };
                if tx
                    .send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                    .await
                    .is_err()
                {
                    break Some("the browser went away".to_owned());
                }
                sent += n as u64;
                left -= n as u64;
                pace.moved(n).await;
            };
            let _ = file.shutdown().await;
            done(sent, failure);
        });
        Ok((range, body))
    }

    /// Writes `body` (its announced size not needed: it is written as it comes) to `path`
    /// through a temporary file beside it, renamed to `path` once the whole body is
    /// written; refuses at `limit` bytes and when `path` exists unless `overwrite`. Returns
    /// the bytes written.
    async fn upload<S, B, E>(
        &self,
        path: &str,
        _size: Option<u64>,
        mut body: S,
        limit: u64,
        overwrite: bool,
        mut pace: Pace,
    ) -> Result<u64, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Unpin + Send + 'static,
        B: Buf + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        if !overwrite && self.exists(path).await? {
            return Err(FilesError::Exists(format!(
                "{path} exists on SSH host {}; upload with overwrite=1 to replace it",
                self.inner.host
            )));
        }
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", path),
        };
        if name.is_empty() || name == "." {
            return Err(FilesError::BadRequest(format!(
                "{path} names no file: end the path with the file's name"
            )));
        }
        let temp = format!(
            "{}{}.{}.opsdeck-{:016x}",
            dir,
            if dir.is_empty() && !path.starts_with('/') {
                ""
            } else {
                "/"
            },
            name.chars().take(200).collect::<String>(),
            rand::random::<u64>()
        );
        let mut file = self
            .inner
            .session
            .open_with_flags(
                temp.as_str(),
                OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| self.error("write", path, e))?;
        // From here on the temporary file goes unless it is renamed, whatever ends this
        // future (an error, or the browser leaving, which drops it).
        let mut cleanup = Temporary::new(self.clone(), temp.clone());
        let written = match self
            .write_all(&mut file, path, dir, &mut body, limit, &mut pace)
            .await
        {
            Ok(written) => written,
            Err(e) => {
                drop(file);
                cleanup.remove().await;
                return Err(e);
            }
        };
        let renamed = async {
            if overwrite && self.exists(path).await? {
                self.inner
                    .session
                    .remove_file(path)
                    .await
                    .map_err(|e| self.error("replace", path, e))?;
            }
            self.inner
                .session
                .rename(temp.as_str(), path)
                .await
                .map_err(|e| self.error("rename the upload to", path, e))
        };
        if let Err(e) = renamed.await {
            cleanup.remove().await;
            return Err(e);
        }
        cleanup.keep();
        Ok(written)
    }

    /// Creates a folder.
    async fn mkdir(&self, path: &str) -> Result<(), FilesError> {
        self.inner
            .session
            .create_dir(path)
            .await
            .map_err(|e| self.error("create the folder", path, e))
    }

    /// Renames (moves) a file or folder; refuses when `to` exists.
    async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError> {
        if self.exists(to).await? {
            return Err(FilesError::Exists(format!(
                "{to} exists on SSH host {}; delete it first or choose another name",
                self.inner.host
            )));
        }
        self.inner
            .session
            .rename(from, to)
            .await
            .map_err(|e| self.error("rename", from, e))
    }

    /// Deletes a file, a symlink or an empty folder.
    async fn delete(&self, path: &str) -> Result<(), FilesError> {
        let meta = self
            .inner
            .session
            .symlink_metadata(path)
            .await
            .map_err(|e| self.error("delete", path, e))?;
        let result = if meta.is_dir() {
            self.inner.session.remove_dir(path).await
        } else {
            self.inner.session.remove_file(path).await
        };
        result.map_err(|e| match e {
            SftpError::Status(s) if meta.is_dir() && s.status_code == SftpStatus::Failure => {
                FilesError::Exists(format!(
                    "the folder {path} is not empty; delete what it holds first"
                ))
            }
            e => self.error("delete", path, e),
        })
    }
}

/// One page of the folder `path`: `limit` entries after the first `offset`, in the
/// server's order, without `.` and `..`. Only the page is kept, however large the folder.
pub async fn list(
    host: &SshHost,
    path: &str,
    offset: u64,
    limit: usize,
) -> Result<DirPage, FilesError> {
    let (stream, _handle) = channel(host).await?;
    let config = russh_sftp::client::Config {
        request_timeout_secs: REQUEST_TIMEOUT_SECS,
        ..Default::default()
    };
    let session = RawSftpSession::new_with_config(stream, config);
    let error = |e: SftpError| sftp_error(&host.id, "list", path, e);
    session.init().await.map_err(error)?;
    let resolved = session
        .realpath(path)
        .await
        .map_err(error)?
        .files
        .into_iter()
        .next()
        .map_or_else(|| path.to_owned(), |f| f.filename);
    let handle = session.opendir(path).await.map_err(error)?.handle;
    let mut index = 0u64;
    let mut entries = Vec::new();
    let mut next = None;
    'read: loop {
        let batch = match session.readdir(handle.as_str()).await {
            Ok(batch) => batch,
            Err(SftpError::Status(s)) if s.status_code == SftpStatus::Eof => break,
            Err(e) => return Err(error(e)),
        };
        for file in batch.files {
            if file.filename == "." || file.filename == ".." {
                continue;
            }
            if index >= offset {
                if entries.len() == limit {
                    next = Some(index);
                    break 'read;
                }
                entries.push((file.filename, file.longname, file.attrs));
            }
            index += 1;
        }
    }
    let _ = session.close(handle.as_str()).await;
    let base = resolved.trim_end_matches('/').to_owned();
    let mut page = Vec::with_capacity(entries.len());
    for (name, longname, attrs) in entries {
        let kind = kind_of(&attrs);
        let link_target = if kind == EntryKind::Symlink {
            session
                .readlink(format!("{base}/{name}"))
                .await
                .ok()
                .and_then(|n| n.files.into_iter().next())
                .map(|f| f.filename)
        } else {
            None
        };
        let (name, raw) = name_fields(name.as_bytes());
        page.push(DirEntry {
            name,
            raw,
            kind,
            size: attrs.size.unwrap_or(0),
            mode: attrs.permissions.unwrap_or(0),
            // OpenSSH's long name is `ls -l`'s line: its third word is the owner.
            owner: longname
                .split_whitespace()
                .nth(2)
                .map(str::to_owned)
                .or_else(|| attrs.uid.map(|u| u.to_string())),
            modified: attrs.mtime.map(u64::from),
            link_target,
        });
    }
    let _ = session.close_session();
    Ok(DirPage {
        path: resolved,
        entries: page,
        next,
        // The endpoint says what the user may do.
        access: FileAccess::None,
    })
}

fn kind_of(attrs: &FileAttributes) -> EntryKind {
    match attrs.permissions.unwrap_or(0) & 0o170_000 {
        0o120_000 => EntryKind::Symlink,
        0o040_000 => EntryKind::Dir,
        0o100_000 => EntryKind::File,
        _ => EntryKind::Other,
    }
}

/// An SFTP status in words: what could not be done to which path on which host, why.
fn sftp_error(host: &str, what: &str, path: &str, e: SftpError) -> FilesError {
    match e {
        SftpError::Status(s) => match s.status_code {
            SftpStatus::NoSuchFile => FilesError::NotFound(format!(
                "cannot {what} {path} on SSH host {host}: no such file or folder"
            )),
            SftpStatus::PermissionDenied => FilesError::PermissionDenied(format!(
                "cannot {what} {path} on SSH host {host}: permission denied"
            )),
            SftpStatus::OpUnsupported => FilesError::Unsupported(format!(
                "cannot {what} {path} on SSH host {host}: its SFTP server does not support that"
            )),
            _ => FilesError::Failed(format!(
                "cannot {what} {path} on SSH host {host}: the SFTP server said {:?} ({}): a symlink loop, a full disk or something in the way",
                s.error_message, s.status_code
            )),
        },
        SftpError::Timeout => FilesError::Failed(format!(
            "cannot {what} {path} on SSH host {host}: the SFTP server did not answer within {REQUEST_TIMEOUT_SECS} s"
        )),
        e => FilesError::Failed(format!("cannot {what} {path} on SSH host {host}: {e}")),
    }
}
