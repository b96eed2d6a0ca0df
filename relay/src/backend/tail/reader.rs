//! One reader per tailed file, shared by all its viewers.
//!
//! The first viewer of a file starts a reader: it reads the file's last lines (backwards
//! from the end, bounded by `tail.max_lines` and `tail.ring_bytes`) into a ring, then
//! follows the file (`follow`), woken by inotify on its folders (`watch`) and by a slow
//! timer. New lines go into the ring (for viewers that join late or resume) and to a
//! broadcast channel that every viewer reads at its own pace; the reader never waits for a
//! viewer, so one stalled browser cannot slow the others, and a viewer that falls more than
//! `tail.viewer_queue` batches behind skips ahead. The last viewer to leave stops the reader
//! after `tail.linger`, unless someone comes back first.
//!
//! Attaching, leaving and stopping all happen under the hub's lock: the viewer count and
//! the "went idle" generation change only there, and the stop decision reads both there,
//! so a reader is never stopped while a viewer attaches to it, and the linger counts from
//! the last viewer's leave.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::server::StatusKind;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::follow::follow;
use super::ring::{Batch, Ring};
use crate::config::{FileEntry, TailConfig};
use crate::metrics::Metrics;

/// What a reader hands its viewers.
#[derive(Debug, Clone)]
pub enum TailItem {
    /// Lines at positions `start..start + lines.len()` (the batch the ring keeps too).
    Lines {
        start: u64,
        lines: Batch,
    },
    Status(StatusKind, String),
}

/// Where a new viewer starts. The lines `from..backlog_end` are in the reader's ring, to be
/// taken a batch at a time ([`TailReader::batch_at`]); later ones come through `items`.
pub struct Joined {
    /// Position of the first line to send.
    pub from: u64,
    /// Position of the first line that comes through `items`.
    pub backlog_end: u64,
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
            let reader = match readers.get(&file.id) {
                Some(reader) if reader.path == file.path => reader.clone(),
                _ => {
                    let reader = TailReader::new(file, config);
                    tokio::spawn(follow(reader.clone(), config.clone()));
                    self.metrics.sessions.with_label_values(&["tail"]).inc();
                    readers.insert(file.id.clone(), reader.clone());
                    reader
                }
            };
            // Under the lock that the stop decision takes: a reader found in the map is
            // not stopped, and now cannot be until this viewer leaves.
            reader.viewers.fetch_add(1, Ordering::SeqCst);
            reader
        };
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
        let idle = {
            let _readers = self.readers();
            if reader.viewers.fetch_sub(1, Ordering::SeqCst) > 1 {
                return;
            }
            reader.idle.fetch_add(1, Ordering::SeqCst) + 1
        };
        let hub = self.clone();
        let reader = reader.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(linger).await;
                    hub.stop_if_unused(&reader, idle);
                });
            }
            Err(_) => hub.stop_if_unused(&reader, idle),
        }
    }

    /// Stops `reader` if nobody joined it since it went idle for the `idle`-th time.
    fn stop_if_unused(&self, reader: &Arc<TailReader>, idle: u64) {
        let mut readers = self.readers();
        if reader.viewers.load(Ordering::SeqCst) > 0
            || reader.idle.load(Ordering::SeqCst) != idle
            || reader.stop.is_cancelled()
        {
            return;
        }
        if readers
            .get(&reader.file_id)
            .is_some_and(|r| Arc::ptr_eq(r, reader))
        {
            readers.remove(&reader.file_id);
        }
        reader.stop.cancel();
        self.metrics.sessions.with_label_values(&["tail"]).dec();
        tracing::debug!(file = %reader.file_id, "tail reader stopped");
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
    pub(super) file_id: String,
    pub(super) path: PathBuf,
    ring: Mutex<Ring>,
    items: broadcast::Sender<TailItem>,
    /// Changed only while holding the hub's lock, so attach and stop cannot race.
    viewers: AtomicUsize,
    /// How many times the viewer count fell to zero (under the hub's lock too): a linger
    /// timer stops the reader only if it is still the latest.
    idle: AtomicU64,
    pub(super) ready: watch::Sender<bool>,
    pub(super) stop: CancellationToken,
}

impl TailReader {
    /// A reader with an empty ring; `follow` fills it.
    pub(super) fn new(file: &FileEntry, config: &TailConfig) -> Arc<Self> {
        let (items, _) = broadcast::channel(config.viewer_queue);
        Arc::new(Self {
            id: hex::encode(rand::random::<[u8; 8]>()),
            file_id: file.id.clone(),
            path: file.path.clone(),
            ring: Mutex::new(Ring::new(config.max_lines, config.ring_bytes)),
            items,
            viewers: AtomicUsize::new(0),
            idle: AtomicU64::new(0),
            ready: watch::Sender::new(false),
            stop: CancellationToken::new(),
        })
    }

    pub(super) fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins at the last `lines` lines.
    pub fn join_latest(&self, lines: usize) -> Joined {
        let ring = self.ring();
        let from = ring.end().saturating_sub(lines as u64).max(ring.start());
        self.joined(&ring, from, 0)
    }

    /// Joins at `position` (a reconnect); `Err(end)` when the position is beyond the end.
    pub fn join_at(&self, position: u64) -> Result<Joined, u64> {
        let ring = self.ring();
        if position > ring.end() {
            return Err(ring.end());
        }
        let from = position.max(ring.start());
        Ok(self.joined(&ring, from, from - position))
    }

    /// Called with the ring locked, so no batch is published between the backlog's end
    /// and the subscription: nothing is missed and nothing comes twice.
    fn joined(&self, ring: &Ring, from: u64, lost: u64) -> Joined {
        Joined {
            from,
            backlog_end: ring.end(),
            lost,
            missing: ring.missing,
            items: self.items.subscribe(),
        }
    }

    /// The kept batch holding the line at `position`, with the position of its first
    /// line; `Err(start)` with the oldest position kept when that line is forgotten.
    pub fn batch_at(&self, position: u64) -> Result<(u64, Batch), u64> {
        let ring = self.ring();
        ring.batch_at(position).ok_or(ring.start())
    }

    pub(super) fn publish(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let lines = Arc::new(lines);
        let mut ring = self.ring();
        let start = ring.push(lines.clone());
        let _ = self.items.send(TailItem::Lines { start, lines });
    }

    pub(super) fn status(&self, kind: StatusKind, message: String, missing: bool) {
        tracing::info!(file = %self.file_id, "{message}");
        self.ring().missing = missing;
        let _ = self.items.send(TailItem::Status(kind, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_file() -> (FileEntry, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "opsdeck-hub-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        std::fs::write(&path, "hello\n").unwrap();
        let file = FileEntry {
            id: "app".into(),
            label: None,
            path,
        };
        (file, dir)
    }

    fn config(linger: Duration) -> TailConfig {
        TailConfig {
            linger,
            ..TailConfig::default()
        }
    }

    /// Review finding 15: the stop decision, as a linger timer makes it. A timer armed by
    /// an earlier leave must not stop a reader that a viewer joined since (whether that
    /// viewer is still there or has left again: then the linger counts from its leave).
    /// Before, the decision looked only at the count, so the first leave's timer stopped
    /// the reader early, and a viewer that attached between the lookup and its count
    /// increment was left holding a stopped reader.
    #[tokio::test]
    async fn a_linger_timer_from_an_earlier_leave_does_not_stop_a_rejoined_reader() {
        let (file, dir) = log_file();
        let hub = TailHub::new(Arc::new(Metrics::new()));
        // The timers themselves never fire during the test; it plays them by hand.
        let config = config(Duration::from_secs(3600));
        let first = hub.attach(&file, &config).await;
        let reader = first.reader.clone();
        drop(first);
        let first_leave = reader.idle.load(Ordering::SeqCst);

        let second = hub.attach(&file, &config).await;
        assert!(Arc::ptr_eq(&second.reader, &reader), "the same reader");
        hub.stop_if_unused(&reader, first_leave);
        assert!(!reader.stop.is_cancelled(), "stopped under a viewer");
        drop(second);
        hub.stop_if_unused(&reader, first_leave);
        assert!(!reader.stop.is_cancelled(), "stopped by an outdated timer");
        assert_eq!(hub.len(), 1);

        let second_leave = reader.idle.load(Ordering::SeqCst);
        hub.stop_if_unused(&reader, second_leave);
        assert!(
            reader.stop.is_cancelled(),
            "stopped by the last leave's timer"
        );
        assert_eq!(hub.len(), 0);
        let third = hub.attach(&file, &config).await;
        assert!(
            !Arc::ptr_eq(&third.reader, &reader),
            "a stopped reader is not reused"
        );
        assert!(!third.reader.stop.is_cancelled());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
