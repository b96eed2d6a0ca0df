//! One reader per tailed file, shared by all its viewers.
//!
//! The first viewer of a file starts a reader: its task (`follow`) reads the file's last
//! lines (backwards from the end, bounded by `tail.max_lines` and `tail.ring_bytes`) into
//! a ring, then follows the file, woken by inotify on its folders (`watch`) and by a slow
//! timer. New lines go into the ring (for viewers that join late or resume) and to a
//! broadcast channel that every viewer reads at its own pace (both in the `feed`); the reader never waits for a
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

use tokio_util::sync::CancellationToken;

use super::feed::Feed;
use super::follow::follow;
use crate::config::{FileEntry, TailConfig};
use crate::metrics::Metrics;

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
                    tokio::spawn(follow(
                        reader.feed.clone(),
                        reader.path.clone(),
                        config.clone(),
                        reader.stop.clone(),
                    ));
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
        reader.feed.wait_ready().await;
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

/// A running reader: its feed, and who holds it.
pub struct TailReader {
    /// The tail id of the resume contract: new for every reader.
    pub id: String,
    file_id: String,
    path: PathBuf,
    /// The lines and statuses the reader's task produces.
    pub feed: Arc<Feed>,
    /// Changed only while holding the hub's lock, so attach and stop cannot race.
    viewers: AtomicUsize,
    /// How many times the viewer count fell to zero (under the hub's lock too): a linger
    /// timer stops the reader only if it is still the latest.
    idle: AtomicU64,
    /// Ends the reader's task.
    stop: CancellationToken,
}

impl TailReader {
    fn new(file: &FileEntry, config: &TailConfig) -> Arc<Self> {
        Arc::new(Self {
            id: hex::encode(rand::random::<[u8; 8]>()),
            file_id: file.id.clone(),
            path: file.path.clone(),
            feed: Feed::new(&file.id, config),
            viewers: AtomicUsize::new(0),
            idle: AtomicU64::new(0),
            stop: CancellationToken::new(),
        })
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
