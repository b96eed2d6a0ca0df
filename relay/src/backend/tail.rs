//! Live file tails: `/ws/tail/{file_id}?lines=N`.
//!
//! Only files listed in the config (`[[files]]`) can be tailed, by id; a path never comes
//! from the client. A viewer gets the file's last `N` lines (default `tail.default_lines`,
//! at most `tail.max_lines`), then every new line as it is written, following the file
//! through rotation, truncation, deletion and re-creation (each announced with a `status`
//! frame). Lines travel as `lines` frames whose `position` counts lines since the reader
//! started; a reconnect with `?session=<tail id>&position=<n>` resumes after line `n`.
//!
//! `reader` holds the one reader per file shared by every viewer; `lines` turns bytes into
//! lines.

pub mod lines;
pub mod reader;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use common::server::StreamEvent;
use common::{CloseCode, Position, StreamKind};
use tokio::sync::broadcast::{self, error::RecvError};

use self::reader::{BATCH_LINES, Joined, TailHub, TailItem, Viewer};
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
            let joined = viewer
                .reader
                .join_at(position)
                .map_err(|end| TailError::BeyondEnd {
                    asked: position,
                    end,
                })?;
            (joined, true, false)
        }
        Some(_) => (viewer.reader.join_latest(lines), false, true),
        None => (viewer.reader.join_latest(lines), false, false),
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
struct TailAttachment {
    _viewer: Viewer,
    items: broadcast::Receiver<TailItem>,
    /// Lines sent so far (the position after the last one).
    position: u64,
    pending: VecDeque<Outbound>,
}

impl TailAttachment {
    fn new(viewer: Viewer, joined: Joined, restarted: bool) -> Self {
        let Joined {
            from,
            lines,
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
        let mut position = from;
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            let batch: Vec<String> = lines.by_ref().take(BATCH_LINES).collect();
            position += batch.len() as u64;
            send(StreamEvent::Lines {
                position: Position::count(position),
                lines: batch,
            });
        }
        Self {
            _viewer: viewer,
            items,
            position,
            pending,
        }
    }

    /// The frames for one batch from the reader: a `dropped` frame first when this viewer
    /// fell behind and batches were skipped.
    fn take_lines(&mut self, start: u64, lines: &[String]) -> Option<Outbound> {
        let end = start + lines.len() as u64;
        if end <= self.position {
            return None;
        }
        if start > self.position {
            let count = start - self.position;
            self.pending
                .push_back(Outbound::Text(StreamEvent::Dropped { count }.into()));
        }
        let skip = self.position.saturating_sub(start) as usize;
        self.position = end;
        self.pending.push_back(Outbound::Text(
            StreamEvent::Lines {
                position: Position::count(end),
                lines: lines[skip..].to_vec(),
            }
            .into(),
        ));
        self.pending.pop_front()
    }
}

#[async_trait]
impl Attachment for TailAttachment {
    async fn next(&mut self) -> Outbound {
        if let Some(out) = self.pending.pop_front() {
            return out;
        }
        loop {
            // `recv` is cancel-safe: a dropped call loses nothing.
            match self.items.recv().await {
                Ok(TailItem::Lines { start, lines }) => {
                    if let Some(out) = self.take_lines(start, &lines) {
                        return out;
                    }
                }
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
