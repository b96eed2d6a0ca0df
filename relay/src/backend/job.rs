//! Job output: `/ws/exec/{token}` streams what another system writes into Redis under a
//! token, until the job's end marker, then sends its exit status and closes (1000).
//!
//! The producer uses either form (key names in `[jobs]`, see `config::JobsConfig`):
//! - a list (`LPUSH opsdeck:job:<token> "text"`, then `LPUSH ... "__OPSDECK_EXIT__ 0"`), the
//!   classic form. Lists are consumed by popping, which only one reader could see, so the
//!   relay moves each entry, oldest first, into the job's stream with one atomic script (an
//!   entry is never lost between the pop and the add, nor moved twice);
//! - the stream itself (`XADD opsdeck:job:<token>:stream * data "text"`, then
//!   `XADD ... * exit 0`).
//!
//! Every viewer reads the stream from the start (or after its `?position=<id>`), so several
//! viewers and late joiners see everything; entries go out as `output` frames whose
//! `position` is the entry id.
//!
//! What it costs: the relay's [`hub::JobHub`] watches every job with one blocking Redis
//! connection and moves lists on the shared one, whatever the number of viewers (`hub.rs`).
//! A viewer reads its own entries on the shared connection, one batch at a time and only
//! when the browser has taken the previous one, each entry cut in Redis to
//! [`store::MAX_ENTRY_BYTES`] and each batch to [`store::BATCH_BYTES`]: a viewer holds at
//! most about 1 MiB of output (plus the frame being written to its socket), however large
//! the entries or slow the browser (`store.rs`).
//!
//! A token is a bearer capability, so it must be long ([`check_token`],
//! `jobs.min_token_length`) and is never logged in full ([`token_prefix`]).

pub mod hub;
pub mod store;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use common::server::{StatusKind, StreamEvent};
use common::{CloseCode, Position, StreamKind};
use tokio::sync::watch;
use tokio::time::Instant;

use self::hub::{JobHub, Watch};
use self::store::{Batch, JobEntry, JobError, JobKeys};
use super::stream_id::StreamId;
use super::{Attachment, Hello, Opened, Outbound};
use crate::close::{Close, CloseCause};
use crate::config::JobsConfig;
use crate::redis_link::Backoff;

/// Characters of a token that logs may show.
const LOGGED_PREFIX: usize = 4;

/// Why a job token was refused (4400). The reason never repeats the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the job token is too short: job tokens are at least {min} characters long")]
    TooShort { min: usize },
    #[error("the job token is too long: job tokens are at most {max} characters long")]
    TooLong { max: usize },
    #[error("the job token may only have letters, digits, '_' and '-'")]
    BadCharacter,
}

impl CloseCause for TokenError {
    fn close_code(&self) -> CloseCode {
        CloseCode::BadRequest
    }
}

/// Checks a job token: `min_length` (`jobs.min_token_length`) to 128 of
/// `A-Z a-z 0-9 _ -`.
pub fn check_token(token: &str, min_length: usize) -> Result<(), TokenError> {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(TokenError::BadCharacter);
    }
    if token.len() < min_length {
        return Err(TokenError::TooShort { min: min_length });
    }
    if token.len() > JobsConfig::MAX_TOKEN_LENGTH {
        return Err(TokenError::TooLong {
            max: JobsConfig::MAX_TOKEN_LENGTH,
        });
    }
    Ok(())
}

/// What logs may show of a token: its first few characters, then `…`.
pub fn token_prefix(token: &str) -> String {
    let mut prefix: String = token.chars().take(LOGGED_PREFIX).collect();
    prefix.push('…');
    prefix
}

/// Follows the output of job `token` (checked by [`check_token`]) after entry `after`
/// ([`StreamId::ZERO`]: from the start).
pub async fn follow_job(
    hub: &Arc<JobHub>,
    config: &JobsConfig,
    token: &str,
    after: StreamId,
) -> Result<Opened, JobError> {
    let keys = JobKeys::new(config, token);
    let stream_state = hub.stream_state(&keys.stream).await?;
    // Watched from the stream's newest id on: the viewer reads what is there already.
    let watch = hub.watch(keys, stream_state.last).await?;
    let mut pending = VecDeque::new();
    let (mut after, resumed) = (after, after != StreamId::ZERO);
    if let Some(from) = stream_state.missed_after(after) {
        pending.push_back(gap(from));
        after = from;
    }
    let hello = Hello {
        stream: StreamKind::Job,
        session: token.to_owned(),
        position: Position(after.to_string()),
        resumed,
    };
    Ok(Opened::new(hello, JobViewer::new(watch, after, pending)))
}

fn gap(from: StreamId) -> Outbound {
    Outbound::Text(
        StreamEvent::Gap {
            message: "some output after your position is no longer kept".into(),
            position: Position(from.to_string()),
        }
        .into(),
    )
}

fn status(kind: StatusKind, message: &str) -> Outbound {
    Outbound::Text(
        StreamEvent::Status {
            kind,
            message: message.into(),
        }
        .into(),
    )
}

/// One viewer of a job's output: reads the job's stream after its position, a batch at a
/// time when the browser has taken the last one, and waits for the hub to say there is
/// more.
struct JobViewer {
    watch: Watch,
    changes: watch::Receiver<StreamId>,
    redis_up: watch::Receiver<bool>,
    /// The last entry read.
    cursor: StreamId,
    /// Frames of the last batch not sent yet.
    pending: VecDeque<Outbound>,
    /// Entries may follow `cursor`: read before waiting.
    unread: bool,
    /// The browser was told Redis is lost; it is told it is back once a read works.
    said_down: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// The exit and the close are queued: nothing more is read.
    ended: bool,
}

impl JobViewer {
    fn new(watch: Watch, cursor: StreamId, pending: VecDeque<Outbound>) -> Self {
        let mut redis_up = watch.redis_up();
        redis_up.borrow_and_update();
        Self {
            changes: watch.changes(),
            redis_up,
            watch,
            cursor,
            pending,
            unread: true,
            said_down: false,
            retry_at: None,
            backoff: Backoff::new(),
            ended: false,
        }
    }

    fn lost_redis(&mut self) {
        if !self.said_down {
            self.said_down = true;
            let message = "lost the connection to Redis; reconnecting";
            self.pending
                .push_back(status(StatusKind::BackendReconnecting, message));
        }
    }

    /// Queues the frames of a batch read after `cursor`.
    fn take(&mut self, batch: Batch) {
        if self.said_down {
            self.said_down = false;
            self.backoff.reset();
            self.pending
                .push_back(status(StatusKind::BackendRestored, "Redis is back"));
        }
        // Trimmed (`jobs.max_entries`) while this viewer was behind.
        if let Some(from) = batch
            .state
            .missed_after(self.cursor)
            .filter(|from| *from > self.cursor)
        {
            self.pending.push_back(gap(from));
            self.cursor = from;
        }
        self.unread = batch.more;
        for (id, entry) in batch.entries {
            self.cursor = id;
            match entry {
                JobEntry::Output { data, full_len } => {
                    let output = StreamEvent::Output {
                        position: Position(id.to_string()),
                        data: cut_output(&data, full_len),
                    };
                    self.pending.push_back(Outbound::Text(output.into()));
                }
                JobEntry::Exit(status) => {
                    self.end(status.trim().parse::<i32>().ok());
                    return;
                }
            }
        }
    }

    fn end(&mut self, status: Option<i32>) {
        let reason = match status {
            Some(status) => format!("the job ended with exit status {status}"),
            None => "the job ended".to_owned(),
        };
        let exit = StreamEvent::Exit {
            status,
            signal: None,
        };
        self.pending.push_back(Outbound::Text(exit.into()));
        self.pending
            .push_back(Outbound::Close(Close::new(CloseCode::Normal, reason)));
        self.ended = true;
        self.watch.keep_for_retention();
    }
}

#[async_trait]
impl Attachment for JobViewer {
    async fn next(&mut self) -> Outbound {
        // Cancel-safe: state changes only after an await has completed; a read that is
        // dropped half-way is read again.
        loop {
            if let Some(out) = self.pending.pop_front() {
                return out;
            }
            if self.ended {
                // Only after the close was sent, which ends the pump: not reached.
                return Outbound::Close(Close::new(CloseCode::Normal, "the job ended"));
            }
            if self.unread && self.retry_at.is_none() {
                // Whatever the hub reports from now on is read again.
                self.changes.borrow_and_update();
                match self.watch.pull(self.cursor).await {
                    Ok(batch) => self.take(batch),
                    Err(e @ JobError::NotAStream(_)) => {
                        self.ended = true;
                        return Outbound::Close(Close::from(e));
                    }
                    Err(JobError::Unavailable(e)) => {
                        tracing::debug!("job output not read: {e}");
                        self.lost_redis();
                        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                    }
                }
                continue;
            }
            let retry_at = self.retry_at;
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return Outbound::Close(Close::new(CloseCode::InternalError, "the job reader stopped"));
                    }
                    self.unread = true;
                }
                changed = self.redis_up.changed() => {
                    if changed.is_err() {
                        return Outbound::Close(Close::new(CloseCode::InternalError, "the job reader stopped"));
                    }
                    let up = *self.redis_up.borrow_and_update();
                    if !up {
                        self.lost_redis();
                    } else if self.said_down {
                        // Read at once; success says "restored".
                        self.unread = true;
                        self.retry_at = None;
                    }
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                    self.unread = true;
                }
            }
        }
    }
}

/// Decodes an entry that Redis cut to its first `data.len()` of `full_len` bytes, on a
/// character boundary, saying how long it was.
fn cut_output(data: &[u8], full_len: usize) -> String {
    let mut text = String::from_utf8_lossy(data).into_owned();
    if full_len <= data.len() {
        return text;
    }
    if text.ends_with('\u{fffd}') {
        text.pop();
    }
    text.push_str(&format!(" … [output cut: {full_len} bytes]"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_charset_and_length() {
        assert_eq!(check_token("job_42-abcdefghijk", 16), Ok(()));
        assert_eq!(check_token(&"a".repeat(128), 16), Ok(()));
        assert_eq!(
            check_token("build-42", 16),
            Err(TokenError::TooShort { min: 16 })
        );
        assert_eq!(check_token("build-42", 8), Ok(()));
        assert_eq!(
            check_token(&"a".repeat(129), 16),
            Err(TokenError::TooLong { max: 128 })
        );
        for bad in ["a b", "../x", "a/b", "x:y", "é"] {
            let padded = format!("{bad}{}", "a".repeat(20));
            assert_eq!(check_token(&padded, 16), Err(TokenError::BadCharacter));
        }
        let reason = TokenError::TooShort { min: 16 }.to_string();
        assert!(
            reason.contains("too short") && reason.contains("16"),
            "{reason}"
        );
    }

    #[test]
    fn logs_see_only_a_token_prefix() {
        assert_eq!(token_prefix("0123456789abcdef"), "0123…");
        assert_eq!(token_prefix("ab"), "ab…");
    }

    #[test]
    fn long_output_is_cut_on_a_character_boundary() {
        let long = "日".repeat(store::MAX_ENTRY_BYTES);
        let prefix = &long.as_bytes()[..store::MAX_ENTRY_BYTES];
        let cut = cut_output(prefix, long.len());
        assert!(cut.contains(&format!("output cut: {} bytes", long.len())));
        assert!(!cut.contains('\u{fffd}'));
        assert_eq!(cut_output(b"ok\n", 3), "ok\n");
    }
}
