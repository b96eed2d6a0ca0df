//! The reader task: following one file like `tail -F`, and past it.
//!
//! The file is read to its end whenever it may have changed (an inotify wake-up, see
//! `watch`, or the `tail.poll_interval` timer). The path is checked each time: the same
//! file, shorter than what was read, was truncated (`copytruncate`) and is read again from
//! the top; a different file at the path (logrotate's `create`, a re-pointed symlink) or no
//! file at all (moved away, deleted) is a rotation. After a rotation the old file stays open
//! and is still read, first at every check, until nothing was written to it for
//! `tail.rotate_wait`: an application keeps writing to its old descriptor until it reopens
//! its log, and those lines must not be lost. Each file has its own line splitter, so a
//! line the application finishes in the old file after the rotation stays whole.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::server::StatusKind;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::feed::{BATCH_BYTES, BATCH_LINES, Feed};
use super::lines::{LineSplitter, start_of_last_lines};
use super::watch::Wakeups;
use crate::config::TailConfig;

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How often a file is checked at most when no folder can be watched (no inotify).
const POLL_WITHOUT_INOTIFY: Duration = Duration::from_secs(1);

/// Follows the file at `path` into `feed` until `stop`.
pub async fn follow(feed: Arc<Feed>, path: PathBuf, config: TailConfig, stop: CancellationToken) {
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let mut wakeups = Wakeups::new(&path, wake);
    let mut files = Follower::new(path, feed.label(), &config);
    let period = if wakeups.watching() {
        config.poll_interval
    } else {
        let period = config.poll_interval.min(POLL_WITHOUT_INOTIFY);
        tracing::warn!(file = %files.label, "cannot watch the folder of {}; checking it every {period:?}",
            files.path.display());
        period
    };
    let mut poll = tokio::time::interval_at(Instant::now() + period, period);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    files.seed(&feed, &config).await;
    feed.set_ready();
    loop {
        let rotated_due = files.next_rotated_deadline();
        tokio::select! {
            () = stop.cancelled() => break,
            Some(()) = woken.recv() => {}
            _ = poll.tick() => {}
            () = sleep_until(rotated_due), if rotated_due.is_some() => {}
        }
        wakeups.refresh(&files.path);
        files.check(&feed, &wakeups, Instant::now()).await;
        wakeups.wake_on_any_change(files.reading_rotated());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// An open file and how far it has been read.
struct OpenFile {
    file: tokio::fs::File,
    /// (device, inode), to notice a different file at the path.
    identity: (u64, u64),
    offset: u64,
    splitter: LineSplitter,
}

/// A file that was at the path, still read until it has been quiet for a while.
struct Rotated {
    open: OpenFile,
    /// Closed at the first check from then on that finds nothing new.
    quiet_until: Instant,
}

/// The file at the path, the rotated ones still read, and the state the viewers were told.
pub struct Follower {
    path: PathBuf,
    /// The file's id, as the viewers know it (never its path).
    label: String,
    current: Option<OpenFile>,
    /// Oldest first.
    rotated: Vec<Rotated>,
    /// Nothing is at the path and the viewers were told.
    missing: bool,
    max_line_bytes: usize,
    rotate_wait: Duration,
    buf: Vec<u8>,
}

impl Follower {
    pub fn new(path: PathBuf, label: &str, config: &TailConfig) -> Self {
        Self {
            path,
            label: label.to_owned(),
            current: None,
            rotated: Vec::new(),
            missing: false,
            max_line_bytes: config.max_line_bytes,
            rotate_wait: config.rotate_wait,
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Whether a rotated file is still open (so every change in the folders counts).
    pub fn reading_rotated(&self) -> bool {
        !self.rotated.is_empty()
    }

    /// When the oldest quiet period of a rotated file ends.
    pub fn next_rotated_deadline(&self) -> Option<Instant> {
        self.rotated.iter().map(|r| r.quiet_until).min()
    }

    /// Opens the file and reads its last lines into the ring.
    pub async fn seed(&mut self, feed: &Feed, config: &TailConfig) {
        let opened = async {
            let mut file = tokio::fs::File::open(&self.path).await?;
            let meta = file.metadata().await?;
            let start = start_of_last_lines(
                &mut file,
                meta.len(),
                config.max_lines,
                config.ring_bytes as u64,
            )
            .await?;
            file.seek(std::io::SeekFrom::Start(start)).await?;
            Ok::<_, std::io::Error>((file, meta, start))
        };
        match opened.await {
            Ok((file, meta, start)) => {
                let mut open = self.open_file(file, (meta.dev(), meta.ino()));
                open.offset = start;
                self.current = Some(open);
                self.read_current(feed).await;
            }
            Err(e) => {
                self.missing = true;
                feed.ring().missing = true;
                tracing::info!(file = %self.label, "cannot open {}: {e}; waiting for it", self.path.display());
            }
        }
    }

    fn open_file(&self, file: tokio::fs::File, identity: (u64, u64)) -> OpenFile {
        OpenFile {
            file,
            identity,
            offset: 0,
            splitter: LineSplitter::new(self.max_line_bytes),
        }
    }

    /// Looks at the rotated files, then at the path: new bytes, truncation, rotation,
    /// deletion. `now` decides which rotated files have been quiet long enough.
    pub async fn check(&mut self, feed: &Feed, wakeups: &Wakeups, now: Instant) {
        self.read_rotated(feed, now).await;
        match tokio::fs::metadata(&self.path).await {
            Ok(meta) if self.current_identity() == Some((meta.dev(), meta.ino())) => {
                if meta.len() < self.current.as_ref().map_or(0, |c| c.offset) {
                    self.restart_truncated(feed).await;
                }
                self.read_current(feed).await;
            }
            Ok(meta) => {
                self.switch_to_new_file(feed, wakeups, (meta.dev(), meta.ino()), now)
                    .await
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.file_gone(feed, wakeups, now).await
            }
            Err(e) => {
                tracing::warn!(file = %self.label, "cannot check {}: {e}", self.path.display())
            }
        }
    }

    fn current_identity(&self) -> Option<(u64, u64)> {
        self.current.as_ref().map(|c| c.identity)
    }

    /// Reads what was written to the rotated files; closes those quiet since their grace
    /// period began.
    async fn read_rotated(&mut self, feed: &Feed, now: Instant) {
        let mut index = 0;
        while index < self.rotated.len() {
            let rotated = &mut self.rotated[index];
            let read = read_available(&mut rotated.open, &mut self.buf, feed, &self.label).await;
            if read > 0 {
                rotated.quiet_until = now + self.rotate_wait;
            }
            if read == 0 && now >= rotated.quiet_until {
                let mut done = self.rotated.remove(index);
                end_partial_line(&mut done.open, feed);
                tracing::debug!(file = %self.label, "closed a rotated file after {:?} without writes", self.rotate_wait);
            } else {
                index += 1;
            }
        }
    }

    /// Moves the current file to the rotated ones (or finishes it when `rotate_wait` is 0).
    async fn retire_current(&mut self, feed: &Feed, wakeups: &Wakeups, now: Instant) {
        let Some(mut open) = self.current.take() else {
            return;
        };
        // Before the last read, so a write to it after that read wakes the reader.
        wakeups.wake_on_any_change(true);
        read_available(&mut open, &mut self.buf, feed, &self.label).await;
        if self.rotate_wait.is_zero() {
            end_partial_line(&mut open, feed);
        } else {
            self.rotated.push(Rotated {
                open,
                quiet_until: now + self.rotate_wait,
            });
        }
    }

    async fn restart_truncated(&mut self, feed: &Feed) {
        let Some(current) = &mut self.current else {
            return;
        };
        end_partial_line(current, feed);
        if current.file.seek(std::io::SeekFrom::Start(0)).await.is_ok() {
            current.offset = 0;
        }
        let message = format!("{} was truncated; reading it from the start", self.label);
        feed.status(StatusKind::FileTruncated, message, false);
    }

    /// A different file is at the path: keep the old one for its late lines, follow the new
    /// one from its start.
    async fn switch_to_new_file(
        &mut self,
        feed: &Feed,
        wakeups: &Wakeups,
        identity: (u64, u64),
        now: Instant,
    ) {
        // Back to a file that was rotated away (a symlink pointed back, a file moved
        // back): it goes on from where it was read to.
        if let Some(index) = self
            .rotated
            .iter()
            .position(|r| r.open.identity == identity)
        {
            self.retire_current(feed, wakeups, now).await;
            let back = self.rotated.remove(index);
            self.current = Some(back.open);
            self.missing = false;
            let message = format!("{} is the earlier file again; following it", self.label);
            feed.status(StatusKind::FileRotated, message, false);
            self.read_current(feed).await;
            return;
        }
        let opened = async {
            let file = tokio::fs::File::open(&self.path).await?;
            // The file opened, which may be newer than the one just looked at.
            let meta = file.metadata().await?;
            Ok::<_, std::io::Error>((file, (meta.dev(), meta.ino())))
        };
        let (file, identity) = match opened.await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(file = %self.label, "cannot open {}: {e}", self.path.display());
                return;
            }
        };
        if self.current_identity() == Some(identity) {
            // The path changed back meanwhile; the next check sees what it is now.
            self.read_current(feed).await;
            return;
        }
        let was_open = self.current.is_some();
        self.retire_current(feed, wakeups, now).await;
        let (kind, message) = if was_open && !self.missing {
            (
                StatusKind::FileRotated,
                format!(
                    "{} was rotated; following the new file{}",
                    self.label,
                    self.still_reading()
                ),
            )
        } else {
            (
                StatusKind::FileCreated,
                format!("{} was created; following it", self.label),
            )
        };
        self.current = Some(self.open_file(file, identity));
        self.missing = false;
        feed.status(kind, message, false);
        self.read_current(feed).await;
    }

    fn still_reading(&self) -> String {
        if self.rotated.is_empty() {
            String::new()
        } else {
            format!(
                "; reading the old one until it has been idle for {:?}",
                self.rotate_wait
            )
        }
    }

    /// Nothing is at the path: keep the old file for its late lines and wait for a new one.
    async fn file_gone(&mut self, feed: &Feed, wakeups: &Wakeups, now: Instant) {
        if self.missing {
            return;
        }
        let links = match &self.current {
            Some(open) => open.file.metadata().await.map(|m| m.nlink()).unwrap_or(0),
            None => 0,
        };
        self.retire_current(feed, wakeups, now).await;
        self.missing = true;
        let (kind, message) = if links == 0 {
            (
                StatusKind::FileDeleted,
                format!(
                    "{} was deleted; waiting for it to be created again",
                    self.label
                ),
            )
        } else {
            (
                StatusKind::FileRotated,
                format!(
                    "{} was moved away (rotated); waiting for the new file{}",
                    self.label,
                    self.still_reading()
                ),
            )
        };
        feed.status(kind, message, true);
    }

    async fn read_current(&mut self, feed: &Feed) {
        if let Some(current) = &mut self.current {
            read_available(current, &mut self.buf, feed, &self.label).await;
        }
    }
}

/// Reads to the end of `open`, publishing complete lines in batches; returns the bytes read.
async fn read_available(open: &mut OpenFile, buf: &mut [u8], feed: &Feed, label: &str) -> u64 {
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut total = 0;
    loop {
        let n = match open.file.read(buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(file = %label, "cannot read: {e}");
                break;
            }
        };
        open.offset += n as u64;
        total += n as u64;
        let before = batch.len();
        open.splitter.push(&buf[..n], &mut batch);
        batch_bytes += batch[before..].iter().map(String::len).sum::<usize>();
        if batch.len() >= BATCH_LINES || batch_bytes >= BATCH_BYTES {
            feed.publish(std::mem::take(&mut batch));
            batch_bytes = 0;
            // A huge append is read in one go; let other tasks run between batches.
            tokio::task::yield_now().await;
        }
    }
    feed.publish(batch);
    total
}

/// Ends the file's unfinished line, if any (no newline will come for it).
fn end_partial_line(open: &mut OpenFile, feed: &Feed) {
    if let Some(line) = open.splitter.flush() {
        feed.publish(vec![line]);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A rotated file is read until it has been quiet for `rotate_wait`, then closed, with
    /// its unfinished last line ended.
    #[tokio::test]
    async fn a_rotated_file_is_read_until_quiet_for_the_grace_period_then_closed() {
        let dir = std::env::temp_dir().join(format!(
            "opsdeck-follow-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        std::fs::write(&path, "one\n").unwrap();
        let config = TailConfig {
            rotate_wait: Duration::from_secs(5),
            ..TailConfig::default()
        };
        let feed = Feed::new("app", &config);
        let (wake, _woken) = mpsc::channel(1);
        let wakeups = Wakeups::new(&path, wake);
        let mut follower = Follower::new(path.clone(), "app", &config);
        follower.seed(&feed, &config).await;
        let mut app = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();

        // logrotate `create`: rename, new file; the application writes on to the old one.
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        let t0 = Instant::now();
        follower.check(&feed, &wakeups, t0).await;
        assert!(follower.reading_rotated());
        app.write_all(b"late\nunfinished").unwrap();
        follower
            .check(&feed, &wakeups, t0 + Duration::from_secs(4))
            .await;
        assert!(follower.reading_rotated(), "written to 4 s in: kept");
        // Quiet since 4 s: still kept at 8 s, closed at 9 s.
        follower
            .check(&feed, &wakeups, t0 + Duration::from_secs(8))
            .await;
        assert!(follower.reading_rotated());
        follower
            .check(&feed, &wakeups, t0 + Duration::from_secs(9))
            .await;
        assert!(!follower.reading_rotated(), "closed after 5 s of quiet");

        let ring = feed.ring();
        let lines: Vec<String> = (ring.start()..ring.end())
            .map(|p| {
                let (first, batch) = ring.batch_at(p).unwrap();
                batch[(p - first) as usize].clone()
            })
            .collect();
        assert_eq!(lines, ["one", "new", "late", "unfinished"]);
        drop(ring);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
