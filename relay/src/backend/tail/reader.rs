//! One reader per tailed file, shared by all its viewers.
//!
//! The first viewer of a file starts a reader: it reads the file's last lines (backwards
//! from the end, bounded by `tail.max_lines` and `tail.ring_bytes`) into a ring, then
//! follows the file like `tail -F`, woken by inotify (through `notify`) on its folder.
//! New lines go into the ring (for viewers that join late or resume) and to a broadcast
//! channel that every viewer reads at its own pace; the reader never waits for a viewer, so
//! one stalled browser cannot slow the others, and a viewer that falls more than
//! `tail.viewer_queue` batches behind skips ahead. The last viewer to leave stops the reader
//! after `tail.linger`, unless someone comes back first.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::server::StatusKind;
use notify::Watcher;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::lines::{LineSplitter, start_of_last_lines};
use crate::config::{FileEntry, TailConfig};
use crate::metrics::Metrics;

/// Lines per broadcast batch, and bytes (whichever comes first).
pub const BATCH_LINES: usize = 1000;
const BATCH_BYTES: usize = 256 * 1024;
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Ring bookkeeping per line, besides its text.
const LINE_OVERHEAD: usize = 32;
/// How often a file is checked when its folder cannot be watched (no inotify).
const POLL_FALLBACK: Duration = Duration::from_secs(1);

/// What a reader hands its viewers.
#[derive(Debug, Clone)]
pub enum TailItem {
    /// Lines at positions `start..start + lines.len()`.
    Lines {
        start: u64,
        lines: Arc<Vec<String>>,
    },
    Status(StatusKind, String),
}

/// Where a new viewer starts.
pub struct Joined {
    /// Position of the first of `lines`.
    pub from: u64,
    pub lines: Vec<String>,
    /// Lines asked for that are no longer kept.
    pub lost: u64,
    /// The file does not exist right now.
    pub missing: bool,
    pub items: broadcast::Receiver<TailItem>,
}

/// Every reader of this relay, by file id.
pub struct TailHub {
    readers: Mutex<HashMap<String, Arc<TailReader>>>,
    metrics: Arc<Metrics>,
}

impl TailHub {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            readers: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    fn readers(&self) -> MutexGuard<'_, HashMap<String, Arc<TailReader>>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readers running now (with viewers or lingering).
    pub fn len(&self) -> usize {
        self.readers().len()
    }

    /// Joins the file's reader, starting it if needed; returns once it has read the file's
    /// last lines.
    pub async fn attach(self: &Arc<Self>, file: &FileEntry, config: &TailConfig) -> Viewer {
        let reader = {
            let mut readers = self.readers();
            match readers.get(&file.id) {
                Some(reader) if reader.path == file.path => reader.clone(),
                _ => {
                    let reader = TailReader::start(file, config);
                    self.metrics.sessions.with_label_values(&["tail"]).inc();
                    readers.insert(file.id.clone(), reader.clone());
                    reader
                }
            }
        };
        reader.viewers.fetch_add(1, Ordering::SeqCst);
        // The guard exists before the wait, so an open that is abandoned still detaches.
        let viewer = Viewer {
            hub: self.clone(),
            reader: reader.clone(),
            linger: config.linger,
        };
        let mut ready = reader.ready.subscribe();
        // The sender lives in the reader, which the viewer holds: this cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
        viewer
    }

    fn detach(self: &Arc<Self>, reader: &Arc<TailReader>, linger: Duration) {
        if reader.viewers.fetch_sub(1, Ordering::SeqCst) > 1 {
            return;
        }
        let hub = self.clone();
        let reader = reader.clone();
        let stop_if_unused = move || {
            let mut readers = hub.readers();
            if reader.viewers.load(Ordering::SeqCst) > 0 || reader.stop.is_cancelled() {
                return;
            }
            if readers
                .get(&reader.file_id)
                .is_some_and(|r| Arc::ptr_eq(r, &reader))
            {
                readers.remove(&reader.file_id);
            }
            reader.stop.cancel();
            hub.metrics.sessions.with_label_values(&["tail"]).dec();
            tracing::debug!(file = %reader.file_id, "tail reader stopped");
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(linger).await;
                    stop_if_unused();
                });
            }
            Err(_) => stop_if_unused(),
        }
    }
}

/// A viewer's hold on a reader; dropping it leaves.
pub struct Viewer {
    hub: Arc<TailHub>,
    pub reader: Arc<TailReader>,
    linger: Duration,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.hub.detach(&self.reader, self.linger);
    }
}

pub struct TailReader {
    /// The tail id of the resume contract: new for every reader.
    pub id: String,
    file_id: String,
    path: PathBuf,
    ring: Mutex<Ring>,
    items: broadcast::Sender<TailItem>,
    /// Changed only while holding the hub's lock, so attach and stop cannot race.
    viewers: AtomicUsize,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
}

impl TailReader {
    fn start(file: &FileEntry, config: &TailConfig) -> Arc<Self> {
        let (items, _) = broadcast::channel(config.viewer_queue);
        let reader = Arc::new(Self {
            id: hex::encode(rand::random::<[u8; 8]>()),
            file_id: file.id.clone(),
            path: file.path.clone(),
            ring: Mutex::new(Ring::new(config.max_lines, config.ring_bytes)),
            items,
            viewers: AtomicUsize::new(0),
            ready: watch::Sender::new(false),
            stop: CancellationToken::new(),
        });
        tokio::spawn(follow(reader.clone(), config.clone()));
        reader
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins at the last `lines` lines.
    pub fn join_latest(&self, lines: usize) -> Joined {
        let ring = self.ring();
        let from = ring.end().saturating_sub(lines as u64).max(ring.start);
        self.joined(&ring, from, 0)
    }

    /// Joins at `position` (a reconnect); `Err(end)` when the position is beyond the end.
    pub fn join_at(&self, position: u64) -> Result<Joined, u64> {
        let ring = self.ring();
        if position > ring.end() {
            return Err(ring.end());
        }
        let from = position.max(ring.start);
        Ok(self.joined(&ring, from, from - position))
    }

    /// Called with the ring locked, so no batch is published between the copy and the
    /// subscription: nothing is missed and nothing comes twice.
    fn joined(&self, ring: &Ring, from: u64, lost: u64) -> Joined {
        Joined {
            from,
            lines: ring.since(from),
            lost,
            missing: ring.missing,
            items: self.items.subscribe(),
        }
    }

    fn publish(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let mut ring = self.ring();
        let start = ring.end();
        ring.push(&lines);
        let _ = self.items.send(TailItem::Lines {
            start,
            lines: Arc::new(lines),
        });
    }

    fn status(&self, kind: StatusKind, message: String, missing: bool) {
        tracing::info!(file = %self.file_id, "{message}");
        self.ring().missing = missing;
        let _ = self.items.send(TailItem::Status(kind, message));
    }
}

/// Recent lines, bounded in count and bytes.
struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
    /// Position of `lines[0]`.
    start: u64,
    max_lines: usize,
    max_bytes: usize,
    missing: bool,
}

impl Ring {
    fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            bytes: 0,
            start: 0,
            max_lines,
            max_bytes,
            missing: false,
        }
    }

    fn end(&self) -> u64 {
        self.start + self.lines.len() as u64
    }

    fn push(&mut self, lines: &[String]) {
        for line in lines {
            self.bytes += line.len() + LINE_OVERHEAD;
            self.lines.push_back(line.clone());
        }
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len() + LINE_OVERHEAD;
            self.start += 1;
        }
    }

    fn since(&self, from: u64) -> Vec<String> {
        let skip = from.saturating_sub(self.start) as usize;
        self.lines.iter().skip(skip).cloned().collect()
    }
}

/// The reader task.
async fn follow(reader: Arc<TailReader>, config: TailConfig) {
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let watcher = watch_folder(&reader.path, wake);
    if watcher.is_none() {
        tracing::warn!(file = %reader.file_id, "cannot watch the folder of {}; checking it every {POLL_FALLBACK:?}", reader.path.display());
    }
    let mut poll = tokio::time::interval(POLL_FALLBACK);
    let mut file = FileFollower::new(&reader, &config);
    file.seed(&reader, &config).await;
    reader.ready.send_replace(true);
    loop {
        tokio::select! {
            () = reader.stop.cancelled() => break,
            Some(()) = woken.recv(), if watcher.is_some() => {}
            _ = poll.tick(), if watcher.is_none() => {}
        }
        file.check(&reader).await;
    }
}

/// Watches the file's folder (so renames, deletions and re-creations are seen, not only
/// writes) and wakes the reader for events about the file.
fn watch_folder(path: &Path, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let name = path.file_name()?.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => event.paths.iter().any(|p| p.file_name() == Some(&name)),
            Err(_) => true,
        };
        if relevant {
            // A full channel already holds a wake-up: the reader reads everything new.
            let _ = wake.try_send(());
        }
    })
    .ok()?;
    watcher
        .watch(folder, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

/// The open file and how far it has been read.
struct FileFollower {
    path: PathBuf,
    label: String,
    file: Option<tokio::fs::File>,
    /// (device, inode) of the open file, to notice a new file at the path.
    identity: Option<(u64, u64)>,
    offset: u64,
    /// The file is gone and the viewers were told.
    missing: bool,
    splitter: LineSplitter,
    buf: Vec<u8>,
}

impl FileFollower {
    fn new(reader: &TailReader, config: &TailConfig) -> Self {
        Self {
            path: reader.path.clone(),
            label: reader.file_id.clone(),
            file: None,
            identity: None,
            offset: 0,
            missing: false,
            splitter: LineSplitter::new(config.max_line_bytes),
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Opens the file and reads its last lines into the ring.
    async fn seed(&mut self, reader: &TailReader, config: &TailConfig) {
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
                self.file = Some(file);
                self.identity = Some((meta.dev(), meta.ino()));
                self.offset = start;
                self.read_available(reader).await;
            }
            Err(e) => {
                self.missing = true;
                reader.ring().missing = true;
                tracing::info!(file = %self.label, "cannot open {}: {e}; waiting for it", self.path.display());
            }
        }
    }

    /// Looks at the path after an event: new bytes, truncation, rotation, deletion.
    async fn check(&mut self, reader: &TailReader) {
        match tokio::fs::metadata(&self.path).await {
            Ok(meta) if self.identity == Some((meta.dev(), meta.ino())) => {
                if meta.len() < self.offset {
                    self.end_partial_line(reader);
                    if let Some(file) = &mut self.file
                        && file.seek(std::io::SeekFrom::Start(0)).await.is_ok()
                    {
                        self.offset = 0;
                    }
                    let message =
                        format!("{} was truncated; reading it from the start", self.label);
                    reader.status(StatusKind::FileTruncated, message, false);
                }
                self.read_available(reader).await;
            }
            Ok(meta) => {
                self.switch_to_new_file(reader, (meta.dev(), meta.ino()))
                    .await
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.file_gone(reader).await,
            Err(e) => {
                tracing::warn!(file = %self.label, "cannot check {}: {e}", self.path.display())
            }
        }
    }

    /// A different file is at the path: finish the old one, then follow the new one from
    /// its start.
    async fn switch_to_new_file(&mut self, reader: &TailReader, identity: (u64, u64)) {
        let was_open = self.file.is_some();
        if was_open {
            self.read_available(reader).await;
            self.end_partial_line(reader);
        }
        let file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(file = %self.label, "cannot open {}: {e}", self.path.display());
                return;
            }
        };
        let (kind, message) = if was_open && !self.missing {
            (
                StatusKind::FileRotated,
                format!("{} was rotated; following the new file", self.label),
            )
        } else {
            (
                StatusKind::FileCreated,
                format!("{} was created; following it", self.label),
            )
        };
        self.file = Some(file);
        self.identity = Some(identity);
        self.offset = 0;
        self.missing = false;
        reader.status(kind, message, false);
        self.read_available(reader).await;
    }

    /// Nothing is at the path: finish the old file and wait for a new one.
    async fn file_gone(&mut self, reader: &TailReader) {
        if self.missing {
            return;
        }
        self.read_available(reader).await;
        self.end_partial_line(reader);
        let links = match self.file.take() {
            Some(file) => file.metadata().await.map(|m| m.nlink()).unwrap_or(0),
            None => 0,
        };
        self.identity = None;
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
                    "{} was moved away (rotated); waiting for the new file",
                    self.label
                ),
            )
        };
        reader.status(kind, message, true);
    }

    /// Reads to the end of the open file, publishing complete lines in batches.
    async fn read_available(&mut self, reader: &TailReader) {
        let Some(file) = &mut self.file else {
            return;
        };
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        loop {
            let n = match file.read(&mut self.buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(file = %self.label, "cannot read {}: {e}", self.path.display());
                    break;
                }
            };
            self.offset += n as u64;
            let before = batch.len();
            self.splitter.push(&self.buf[..n], &mut batch);
            batch_bytes += batch[before..].iter().map(String::len).sum::<usize>();
            if batch.len() >= BATCH_LINES || batch_bytes >= BATCH_BYTES {
                reader.publish(std::mem::take(&mut batch));
                batch_bytes = 0;
                // A huge append is read in one go; let other tasks run between batches.
                tokio::task::yield_now().await;
            }
        }
        reader.publish(batch);
    }

    fn end_partial_line(&mut self, reader: &TailReader) {
        if let Some(line) = self.splitter.flush() {
            reader.publish(vec![line]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_by_lines_and_by_bytes_and_counts_positions() {
        let mut ring = Ring::new(3, 1 << 20);
        let lines: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        ring.push(&lines);
        assert_eq!((ring.start, ring.end()), (2, 5));
        assert_eq!(ring.since(0), ["2", "3", "4"]);
        assert_eq!(ring.since(4), ["4"]);
        assert!(ring.since(5).is_empty());

        let mut ring = Ring::new(1000, 2 * (10 + LINE_OVERHEAD));
        ring.push(&["x".repeat(10), "y".repeat(10), "z".repeat(10)]);
        assert_eq!(ring.lines.len(), 2);
        assert_eq!(ring.start, 1);
    }
}
