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
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use self::reader::{BATCH_LINES, Joined, TailItem, Viewer};
use super::{Attachment, Inbound, InputRefused, Outbound};
use crate::access::TargetRef;
use crate::auth::Principal;
use crate::config::Config;
use crate::endpoints::{Refusal, StreamOpener};
use crate::server::AppState;

/// The `/ws/tail/{file_id}` endpoint.
pub struct TailStream {
    pub file_id: String,
    pub query: String,
}

/// Query parameters: `lines`, and the resume token `session` + `position`.
#[derive(Debug, Default, Deserialize)]
struct TailQuery {
    lines: Option<String>,
    session: Option<String>,
    position: Option<String>,
}

impl TailQuery {
    fn parse(raw: &str) -> Result<Self, Refusal> {
        serde_urlencoded::from_str(raw)
            .map_err(|e| Refusal::bad_request(format!("bad query string: {e}")))
    }

    /// Lines to start with, cut to `max`.
    fn lines(&self, default: usize, max: usize) -> Result<usize, Refusal> {
        match &self.lines {
            None => Ok(default),
            Some(text) => text.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
                Refusal::bad_request(format!("lines={text:?} is not a number of lines"))
            }),
        }
    }

    fn resume(&self) -> Result<Option<(&str, u64)>, Refusal> {
        match (&self.session, &self.position) {
            (None, None) => Ok(None),
            (Some(session), position) => {
                let position = match position {
                    None => 0,
                    Some(text) => text.parse().map_err(|_| {
                        Refusal::bad_request(format!("position={text:?} is not a line count"))
                    })?,
                };
                Ok(Some((session.as_str(), position)))
            }
            (None, Some(_)) => Err(Refusal::bad_request("position needs a session")),
        }
    }
}

#[async_trait]
impl StreamOpener for TailStream {
    fn backend(&self) -> &'static str {
        "tail"
    }

    fn target(&self, config: &Config) -> Result<TargetRef, Refusal> {
        match config.file(&self.file_id) {
            Some(_) => Ok(TargetRef::File(self.file_id.clone())),
            None => Err(Refusal::new(
                CloseCode::NotFound,
                format!(
                    "no file {:?} is configured for tailing",
                    self.file_id.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    async fn open(
        &self,
        state: &Arc<AppState>,
        _who: &Principal,
    ) -> Result<Box<dyn Attachment>, Refusal> {
        let config = state.config();
        let query = TailQuery::parse(&self.query)?;
        let lines = query.lines(config.tail.default_lines, config.tail.max_lines)?;
        let resume = query.resume()?;
        let file = config
            .file(&self.file_id)
            .cloned()
            .ok_or_else(|| Refusal::new(CloseCode::NotFound, "the file left the config"))?;
        let viewer = state.tails.attach(&file, &config.tail).await;
        let (joined, resumed, restarted) = match resume {
            Some((session, position)) if session == viewer.reader.id => {
                let joined = viewer.reader.join_at(position).map_err(|end| {
                    Refusal::bad_request(format!(
                        "position {position} is beyond the {end} lines this tail has read"
                    ))
                })?;
                (joined, true, false)
            }
            Some(_) => (viewer.reader.join_latest(lines), false, true),
            None => (viewer.reader.join_latest(lines), false, false),
        };
        Ok(Box::new(TailAttachment::new(
            viewer, joined, resumed, restarted,
        )))
    }
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
    fn new(viewer: Viewer, joined: Joined, resumed: bool, restarted: bool) -> Self {
        let Joined {
            from,
            lines,
            lost,
            missing,
            items,
        } = joined;
        let mut pending = VecDeque::new();
        let mut send = |event: StreamEvent| pending.push_back(Outbound::Text(event.into()));
        send(StreamEvent::Connected {
            stream: StreamKind::Tail,
            session: viewer.reader.id.clone(),
            position: Position::count(from),
            resumed,
        });
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
                    return Outbound::Close(
                        CloseCode::GoingAway,
                        "the tail stopped; reconnect to resume".into(),
                    );
                }
            }
        }
    }

    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused> {
        let what = match input {
            Inbound::Binary(_) => "binary",
            Inbound::Frame(_) => "input",
        };
        Err(InputRefused::not_accepted(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_capped_and_bad_values_refused() {
        let q = TailQuery::parse("lines=50").unwrap();
        assert_eq!(q.lines(100, 10_000).unwrap(), 50);
        let q = TailQuery::parse("lines=999999999").unwrap();
        assert_eq!(q.lines(100, 10_000).unwrap(), 10_000);
        let q = TailQuery::parse("").unwrap();
        assert_eq!(q.lines(100, 10_000).unwrap(), 100);
        let q = TailQuery::parse("lines=-1").unwrap();
        assert_eq!(
            q.lines(100, 10_000).unwrap_err().code,
            CloseCode::BadRequest
        );
        let q = TailQuery::parse("position=3").unwrap();
        assert!(q.resume().is_err());
        let q = TailQuery::parse("session=ab&position=3").unwrap();
        assert_eq!(q.resume().unwrap(), Some(("ab", 3)));
    }
}
