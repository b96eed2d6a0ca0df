//! What a reader produces: its lines (kept in the ring and broadcast), its status changes,
//! and whether it has read the file's last lines yet.
//!
//! The reader's task (`follow`) writes to the feed; viewers join it (a start position, the
//! backlog's end, a broadcast receiver) and take their backlog from it a batch at a time.
//! Joining and publishing both take the ring's lock, so no batch falls between a viewer's
//! backlog and its subscription.

use std::sync::{Arc, Mutex, MutexGuard};

use common::server::StatusKind;
use tokio::sync::{broadcast, watch};

use super::ring::{Batch, Ring};
use crate::config::TailConfig;

/// Lines per published batch and per frame, and bytes of text (whichever comes first).
pub const BATCH_LINES: usize = 1000;
pub const BATCH_BYTES: usize = 256 * 1024;

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

/// Where a new viewer starts. The lines `from..backlog_end` are in the ring, to be taken a
/// batch at a time ([`Feed::batch_at`]); later ones come through `items`.
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

/// One reader's output, shared by its task and its viewers.
pub struct Feed {
    /// The file's label in logs (its id).
    label: String,
    ring: Mutex<Ring>,
    items: broadcast::Sender<TailItem>,
    ready: watch::Sender<bool>,
}

impl Feed {
    pub fn new(label: &str, config: &TailConfig) -> Arc<Self> {
        let (items, _) = broadcast::channel(config.viewer_queue);
        Arc::new(Self {
            label: label.to_owned(),
            ring: Mutex::new(Ring::new(config.max_lines, config.ring_bytes)),
            items,
            ready: watch::Sender::new(false),
        })
    }

    /// The file's id.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file's last lines are in the ring: viewers may join.
    pub fn set_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Waits until the file's last lines are in the ring.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`: this cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
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

    /// Keeps and broadcasts complete lines.
    pub fn publish(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let lines = Arc::new(lines);
        let mut ring = self.ring();
        let start = ring.push(lines.clone());
        let _ = self.items.send(TailItem::Lines { start, lines });
    }

    /// Tells the viewers that something happened to the file; `missing` is whether nothing
    /// is at the path now (told to viewers that join later).
    pub fn status(&self, kind: StatusKind, message: String, missing: bool) {
        tracing::info!(file = %self.label, "{message}");
        self.ring().missing = missing;
        let _ = self.items.send(TailItem::Status(kind, message));
    }
}
