//! Job output: `/ws/exec/{token}` streams what another system writes into Redis under a
//! token, until the job's end marker, then sends its exit status and closes (1000).
//!
//! The producer uses either form (key names in `[jobs]`, see `config::JobsConfig`):
//! - a list (`LPUSH opsdeck:job:<token> "text"`, then `LPUSH ... "__OPSDECK_EXIT__ 0"`), the
//!   classic form. Lists are consumed by popping, which only one reader could see, so the
//!   relay moves each entry, oldest first, into the job's stream with one atomic script (an
//!   entry is never lost between the pop and the add, nor moved twice by two viewers);
//! - the stream itself (`XADD opsdeck:job:<token>:stream * data "text"`, then
//!   `XADD ... * exit 0`).
//!
//! Every viewer reads the stream from the start (`XREAD` from `0`), so several viewers and
//! late joiners see everything; entries go out as `output` frames whose `position` is the
//! entry id, and a reconnect with `?position=<id>` reads on after it.

use std::sync::Arc;

use async_trait::async_trait;
use common::server::{StatusKind, StreamEvent};
use common::{CloseCode, Position, StreamKind};
use redis::streams::StreamId as RedisEntry;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::redis_stream::{self, connect_blocking, read_after};
use super::stream_id::StreamId;
use super::{Attachment, Hello, Opened, Outbound};
use crate::close::Close;
use crate::config::JobsConfig;
use crate::redis_link::{Backoff, RedisLink, RedisUnavailable};

/// Longest job token.
const MAX_TOKEN: usize = 128;
/// Entries read from Redis at a time.
const READ_COUNT: usize = 100;
/// Entries read ahead of the browser; the reader waits when this many are unsent.
const QUEUE: usize = 64;
/// Largest output entry sent; longer ones are cut with a marker.
const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// List entries moved into the stream per script run.
const MOVE_BATCH: usize = 100;

/// Moves list entries (oldest first) into the stream, atomically. Returns how many it
/// moved, or -1 once it moved the end marker.
const MOVE_SCRIPT: &str = r"
local moved = 0
while moved < tonumber(ARGV[3]) do
  local entry = redis.call('RPOP', KEYS[1])
  if not entry then return moved end
  -- Only an entry that is the marker and a status, nothing else, ends the job: output
  -- that merely starts with the marker is output.
  local rest = string.sub(entry, #ARGV[1] + 1)
  if string.sub(entry, 1, #ARGV[1]) == ARGV[1] and string.match(rest, '^[%s:=]*%-?%d*%s*$') then
    local status = string.match(rest, '^[%s:=]*(%-?%d+)') or ''
    redis.call('XADD', KEYS[2], '*', 'exit', status)
    redis.call('EXPIRE', KEYS[2], ARGV[2])
    return -1
  end
  redis.call('XADD', KEYS[2], '*', 'data', entry)
  moved = moved + 1
end
return moved
";

/// Whether `token` is a job token: 1 to 128 of `A-Z a-z 0-9 _ -`.
pub fn valid_token(token: &str) -> bool {
    (1..=MAX_TOKEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a refused job token looks like, for the user.
pub fn token_rule() -> String {
    format!("a job token is 1 to {MAX_TOKEN} letters, digits, '_' or '-'")
}

/// Follows the output of job `token` (a [`valid_token`]) after entry `after`
/// ([`StreamId::ZERO`]: from the start).
pub async fn follow_job(
    link: &Arc<RedisLink>,
    config: &JobsConfig,
    token: &str,
    after: StreamId,
) -> Result<Opened, RedisUnavailable> {
    let keys = JobKeys::new(config, token);
    let stream_state = redis_stream::stream_state(link, &keys.stream).await?;
    let (items, queue) = mpsc::channel(QUEUE);
    let stop = CancellationToken::new();
    let (mut after, resumed) = (after, after != StreamId::ZERO);
    if let Some(from) = stream_state.missed_after(after) {
        let _ = items.try_send(Outbound::Text(
            StreamEvent::Gap {
                message: "some output after your position is no longer kept".into(),
                position: Position(from.to_string()),
            }
            .into(),
        ));
        after = from;
    }
    tokio::spawn(drain_list(link.clone(), keys.clone(), stop.clone()));
    tokio::spawn(follow(link.clone(), keys, after, items, stop.clone()));
    let hello = Hello {
        stream: StreamKind::Job,
        session: token.to_owned(),
        position: Position(after.to_string()),
        resumed,
    };
    let attachment = JobAttachment {
        queue,
        _stop: stop.drop_guard(),
    };
    Ok(Opened::new(hello, attachment))
}

#[derive(Debug, Clone)]
struct JobKeys {
    list: String,
    stream: String,
    end_marker: String,
    retention_secs: u64,
}

impl JobKeys {
    fn new(config: &JobsConfig, token: &str) -> Self {
        Self {
            list: config.list_key.replace("{token}", token),
            stream: config.stream_key.replace("{token}", token),
            end_marker: config.end_marker.clone(),
            retention_secs: config.retention.as_secs().max(1),
        }
    }
}

/// One viewer of a job's output.
struct JobAttachment {
    queue: mpsc::Receiver<Outbound>,
    /// Stops this viewer's Redis tasks when it goes.
    _stop: DropGuard,
}

#[async_trait]
impl Attachment for JobAttachment {
    async fn next(&mut self) -> Outbound {
        // `recv` is cancel-safe.
        match self.queue.recv().await {
            Some(out) => out,
            None => Outbound::Close(Close::new(
                CloseCode::InternalError,
                "the job reader stopped",
            )),
        }
    }
}

/// Reads the stream after `after` into `items` until the exit entry or `stop`; reconnects
/// with backoff when Redis fails, reading on from the last id seen.
async fn follow(
    link: Arc<RedisLink>,
    keys: JobKeys,
    mut after: StreamId,
    items: mpsc::Sender<Outbound>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut down = false;
    let status = |kind, message: &str| {
        Outbound::Text(
            StreamEvent::Status {
                kind,
                message: message.into(),
            }
            .into(),
        )
    };
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = async {
                let mut conn = connect_blocking(&link).await.map_err(|e| e.to_string())?;
                if down {
                    down = false;
                    backoff.reset();
                    let _ = items.send(status(StatusKind::BackendRestored, "Redis is back")).await;
                }
                loop {
                    let entries = read_after(&mut conn, &keys.stream, after, READ_COUNT)
                        .await
                        .map_err(|e| e.to_string())?;
                    for entry in entries {
                        let Ok(id) = entry.id.parse::<StreamId>() else { continue };
                        after = id;
                        let ended = send_entry(&entry, id, &items).await;
                        if ended {
                            keep_for(&link, &keys).await;
                            return Ok::<(), String>(());
                        }
                    }
                }
            } => read,
        };
        match read {
            Ok(()) => return,
            Err(e) => {
                if !down {
                    down = true;
                    tracing::warn!("job output lost Redis: {e}");
                    let message = "lost the connection to Redis; reconnecting";
                    let _ = items
                        .send(status(StatusKind::BackendReconnecting, message))
                        .await;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// Sends one entry; true when it was the end of the output (the exit frame and the close
/// are queued).
async fn send_entry(entry: &RedisEntry, id: StreamId, items: &mpsc::Sender<Outbound>) -> bool {
    if entry.contains_key("exit") {
        let status = entry
            .get::<String>("exit")
            .and_then(|s| s.trim().parse::<i32>().ok());
        let reason = match status {
            Some(status) => format!("the job ended with exit status {status}"),
            None => "the job ended".to_owned(),
        };
        let exit = StreamEvent::Exit {
            status,
            signal: None,
        };
        let _ = items.send(Outbound::Text(exit.into())).await;
        let _ = items
            .send(Outbound::Close(Close::new(CloseCode::Normal, reason)))
            .await;
        return true;
    }
    let bytes = entry.get::<Vec<u8>>("data").unwrap_or_default();
    let data = cut_output(&bytes);
    let output = StreamEvent::Output {
        position: Position(id.to_string()),
        data,
    };
    let _ = items.send(Outbound::Text(output.into())).await;
    false
}

/// Decodes an entry, cutting one longer than [`MAX_ENTRY_BYTES`] on a character boundary.
fn cut_output(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_ENTRY_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut text = String::from_utf8_lossy(&bytes[..MAX_ENTRY_BYTES]).into_owned();
    if text.ends_with('\u{fffd}') {
        text.pop();
    }
    text.push_str(&format!(" … [output cut: {} bytes]", bytes.len()));
    text
}

/// The output ended: keep its stream for `jobs.retention`, unless something set a shorter
/// expiry already.
async fn keep_for(link: &RedisLink, keys: &JobKeys) {
    let mut command = redis::cmd("EXPIRE");
    command.arg(&keys.stream).arg(keys.retention_secs).arg("NX");
    if let Err(e) = redis_stream::query::<i64>(link, &command).await {
        tracing::debug!("job stream expiry not set: {e}");
    }
}

/// Moves the list's entries into the stream as they arrive, until the end marker or `stop`.
async fn drain_list(link: Arc<RedisLink>, keys: JobKeys, stop: CancellationToken) {
    let script = redis::Script::new(MOVE_SCRIPT);
    let mut backoff = Backoff::new();
    loop {
        let drained = tokio::select! {
            () = stop.cancelled() => return,
            drained = async {
                let mut conn = connect_blocking(&link).await.map_err(|e| e.to_string())?;
                loop {
                    // Move what is there, then wait for more without taking it (BLMOVE from
                    // the list's tail to its tail changes nothing).
                    let moved: i64 = script
                        .key(&keys.list)
                        .key(&keys.stream)
                        .arg(&keys.end_marker)
                        .arg(keys.retention_secs)
                        .arg(MOVE_BATCH)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    if moved < 0 {
                        return Ok::<(), String>(());
                    }
                    if moved as usize == MOVE_BATCH {
                        continue;
                    }
                    redis::cmd("BLMOVE")
                        .arg(&keys.list)
                        .arg(&keys.list)
                        .arg("RIGHT")
                        .arg("RIGHT")
                        .arg(redis_stream::BLOCK.as_secs())
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            } => drained,
        };
        match drained {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!("job list not drained: {e}; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_charset_and_length() {
        assert!(valid_token("job_42-abc"));
        assert!(valid_token(&"a".repeat(128)));
        for bad in ["", "a b", "../x", "a/b", "x:y", "é", &"a".repeat(129)] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn long_output_is_cut_on_a_character_boundary() {
        let long = "日".repeat(MAX_ENTRY_BYTES);
        let cut = cut_output(long.as_bytes());
        assert!(cut.contains("output cut"));
        assert!(!cut.contains('\u{fffd}'));
        assert_eq!(cut_output(b"ok\n"), "ok\n");
    }
}
