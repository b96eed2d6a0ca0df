//! Live file tails: `/ws/tail/{file_id}?lines=N`.
//!
//! Only files listed in the config (`[[files]]`) can be tailed, by id; a path never comes
//! from the client. A viewer gets the file's last `N` lines (default `tail.default_lines`,
//! at most `tail.max_lines`), then every new line as it is written, following the file
//! through rotation, truncation, deletion and re-creation (each announced with a `status`
//! frame), including the lines written to the old file after a rotation
//! (`tail.rotate_wait`). Lines travel as `lines` frames whose `position` counts lines since
//! the reader started; a reconnect with `?session=<tail id>&position=<n>` resumes after
//! line `n`.
//!
//! `reader` holds the one reader per file shared by every viewer (the hub); `feed` is what
//! a reader produces, with `ring` its recent lines; `follow` is the reader's task
//! (rotation, truncation, the old file's late lines) and `watch` wakes it; `lines` turns
//! bytes into lines. A viewer keeps no copy of the lines it has yet to send: it takes them
//! a frame at a time from the shared batches, so its memory stays one frame however long
//! the backlog it asked for.

mod feed;
mod follow;
pub mod lines;
pub mod reader;
mod ring;
mod watch;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use common::server::StreamEvent;
use common::{CloseCode, Position, StreamKind};
use tokio::sync::broadcast::{self, error::RecvError};

use self::feed::{BATCH_BYTES, BATCH_LINES, Joined, TailItem};
use self::reader::{TailHub, Viewer};
use self::ring::Batch;
use super::{Attachment, Hello, Opened, Outbound};
use crate::close::{Close, CloseCause};
use crate::config::{FileEntry, TailConfig};

/// Why a tail was not joined.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("position {asked} is beyond the {end} lines this tail has read")]
    BeyondEnd { asked: u64, end: u64 },
}

impl CloseCause for TailError {
    fn close_code(&self) -> CloseCode {
        CloseCode::BadRequest
    }
}

/// Joins the tail of `file`: its last `lines` lines then live ones, or, with `resume`
/// (the tail id and the lines received), exactly the lines after that position.
pub async fn attach(
    hub: &Arc<TailHub>,
    file: &FileEntry,
    config: &TailConfig,
    lines: usize,
    resume: Option<(&str, u64)>,
) -> Result<Opened, TailError> {
    let viewer = hub.attach(file, config).await;
    let (joined, resumed, restarted) = match resume {
        Some((session, position)) if session == viewer.reader.id => {
            let joined =
                viewer
                    .reader
                    .feed
                    .join_at(position)
                    .map_err(|end| TailError::BeyondEnd {
                        asked: position,
                        end,
                    })?;
            (joined, true, false)
        }
        Some(_) => (viewer.reader.feed.join_latest(lines), false, true),
        None => (viewer.reader.feed.join_latest(lines), false, false),
    };
    let hello = Hello {
        stream: StreamKind::Tail,
        session: viewer.reader.id.clone(),
        position: Position::count(joined.from),
        resumed,
    };
    Ok(Opened::new(
        hello,
        TailAttachment::new(viewer, joined, restarted),
    ))
}

/// One viewer of a tail.
///
/// It sends the backlog (`position..backlog_end`) from the reader's ring, one frame per
/// call, then the batches the reader broadcasts. Either way a batch is shared, not copied:
/// only the frame being sent is this viewer's own.
struct TailAttachment {
    viewer: Viewer,
    items: broadcast::Receiver<TailItem>,
    /// Lines sent so far (the position after the last one).
    position: u64,
    /// Lines before this come from the ring; from it on, through `items`.
    backlog_end: u64,
    /// The batch being sent, with the position of its first line.
    sending: Option<(u64, Batch)>,
    /// Frames to send before any line: the join's gap or status, a `dropped` count.
    pending: VecDeque<Outbound>,
}

impl TailAttachment {
    fn new(viewer: Viewer, joined: Joined, restarted: bool) -> Self {
        let Joined {
            from,
            backlog_end,
            lost,
            missing,
            items,
        } = joined;
        let mut pending = VecDeque::new();
        let mut send = |event: StreamEvent| pending.push_back(Outbound::Text(event.into()));
        if restarted {
            send(StreamEvent::Gap {
                message: "this tail was restarted since you last saw it; showing its latest lines"
                    .into(),
                position: Position::count(from),
            });
        } else if lost > 0 {
            send(StreamEvent::Gap {
                message: format!("{lost} lines were no longer kept and cannot be replayed"),
                position: Position::count(from),
            });
        }
        if missing {
            send(StreamEvent::Status {
                kind: common::server::StatusKind::FileDeleted,
                message: "the file does not exist right now; waiting for it to be created".into(),
            });
        }
        Self {
            viewer,
            items,
            position: from,
            backlog_end,
            sending: None,
            pending,
        }
    }

    /// Takes a batch at `start` to send from the current position: a `dropped` frame
    /// first when lines before it were skipped (this viewer fell behind).
    fn take_batch(&mut self, start: u64, lines: Batch) {
        let end = start + lines.len() as u64;
        if end <= self.position {
            return;
        }
        if start > self.position {
            let count = start - self.position;
            self.pending
                .push_back(Outbound::Text(StreamEvent::Dropped { count }.into()));
            self.position = start;
        }
        self.sending = Some((start, lines));
    }

    /// The next backlog batch from the ring, or a `dropped` count for the lines the ring
    /// forgot while this viewer was sending the earlier ones.
    fn take_backlog(&mut self) {
        match self.viewer.reader.feed.batch_at(self.position) {
            Ok((start, lines)) => self.take_batch(start, lines),
            Err(kept_from) if kept_from > self.position => {
                // Past the backlog's end, the broadcast batches say what else was skipped.
                let skip_to = kept_from.min(self.backlog_end);
                let count = skip_to - self.position;
                self.pending
                    .push_back(Outbound::Text(StreamEvent::Dropped { count }.into()));
                self.position = skip_to;
            }
            // Kept lines always reach the ring's end, which is past the backlog's: this
            // cannot happen, but going live is better than asking again forever.
            Err(_) => self.backlog_end = self.position,
        }
    }

    /// One frame from the batch being sent: at most [`BATCH_LINES`] lines and
    /// [`BATCH_BYTES`] of text (a longer single line goes alone).
    fn next_frame(&mut self) -> Option<Outbound> {
        let (start, lines) = self.sending.as_ref()?;
        let skip = (self.position - start) as usize;
        let rest = lines.get(skip..).unwrap_or_default();
        let mut count = 0;
        let mut bytes = 0;
        for line in rest.iter().take(BATCH_LINES) {
            if count > 0 && bytes + line.len() > BATCH_BYTES {
                break;
            }
            bytes += line.len();
            count += 1;
        }
        if count == rest.len() {
            // The last frame of this batch: no need to keep it.
            let (_, lines) = self.sending.take()?;
            return self.frame(lines[skip..].to_vec());
        }
        let frame = rest[..count].to_vec();
        self.frame(frame)
    }

    fn frame(&mut self, lines: Vec<String>) -> Option<Outbound> {
        if lines.is_empty() {
            return None;
        }
        self.position += lines.len() as u64;
        Some(Outbound::Text(
            StreamEvent::Lines {
                position: Position::count(self.position),
                lines,
            }
            .into(),
        ))
    }
}

#[async_trait]
impl Attachment for TailAttachment {
    async fn next(&mut self) -> Outbound {
        loop {
            if let Some(out) = self.pending.pop_front() {
                return out;
            }
            if self.sending.is_some() {
                if let Some(out) = self.next_frame() {
                    return out;
                }
                continue;
            }
            if self.position < self.backlog_end {
                self.take_backlog();
                continue;
            }
            // `recv` is cancel-safe: a dropped call loses nothing; all the rest of this
            // loop runs without awaiting.
            match self.items.recv().await {
                Ok(TailItem::Lines { start, lines }) => self.take_batch(start, lines),
                Ok(TailItem::Status(kind, message)) => {
                    return Outbound::Text(StreamEvent::Status { kind, message }.into());
                }
                // The next batch's start says how many lines were skipped.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    return Outbound::Close(Close::new(
                        CloseCode::GoingAway,
                        "the tail stopped; reconnect to resume",
                    ));
                }
            }
        }
    }
}
