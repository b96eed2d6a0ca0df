//! What chat rooms and job output share about Redis streams: commands that survive a Redis
//! restart, what a stream looks like (for `gap` detection), and following a stream with
//! `XREAD BLOCK` on a connection of its own.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamId as RedisEntry, StreamReadReply};

use super::stream_id::StreamId;
use crate::redis_link::{RedisLink, RedisUnavailable};

/// How long one `XREAD` blocks before it is issued again.
pub const BLOCK: Duration = Duration::from_secs(10);

/// Runs `command` on the shared connection; once more if the connection had dropped
/// (Redis restarted). Only for commands that may run twice (reads, SET, EXPIRE): after a
/// broken connection one cannot know whether the first try ran. See `chat::redis_room`
/// for XADD.
pub async fn query<T: redis::FromRedisValue>(
    link: &RedisLink,
    command: &redis::Cmd,
) -> Result<T, RedisUnavailable> {
    retried(link, |mut conn| async move {
        command.query_async(&mut conn).await
    })
    .await
}

/// Makes `attempt` on the shared connection; once more, on a fresh one, if the connection
/// had dropped. For work that may run twice (see [`query`]).
pub async fn retried<T, F, Fut>(link: &RedisLink, mut attempt: F) -> Result<T, RedisUnavailable>
where
    F: FnMut(ConnectionManager) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match attempt(link.connection().await?).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => attempt(link.connection().await?)
            .await
            .map_err(|e| link.unavailable(e)),
        other => other.map_err(|e| link.unavailable(e)),
    }
}

/// What a stream looks like now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// The newest id ever added (`0-0` when the stream does not exist).
    pub last: StreamId,
    /// The oldest id still kept (`0-0` when the stream is empty).
    pub first: StreamId,
    /// The newest id deleted with `XDEL`.
    pub max_deleted: StreamId,
    /// Whether entries were ever removed (trimmed or deleted).
    pub lost_some: bool,
}

impl StreamState {
    /// Where a reader that got up to `cursor` must continue when some of what followed was
    /// removed; `None` when everything after `cursor` is still there.
    ///
    /// A reader whose cursor is exactly the last entry trimmed is told of a gap too: Redis
    /// keeps no trace of which ids it trimmed, so that case cannot be told apart.
    pub fn missed_after(&self, cursor: StreamId) -> Option<StreamId> {
        let trimmed = (self.lost_some && self.first > cursor).then(|| self.first.before());
        let deleted = (self.max_deleted > cursor).then_some(self.max_deleted);
        trimmed.max(deleted)
    }
}

/// `XINFO STREAM`; a stream that does not exist is empty.
pub async fn stream_state(link: &RedisLink, key: &str) -> Result<StreamState, RedisUnavailable> {
    let exists: bool = query(link, redis::cmd("EXISTS").arg(key)).await?;
    if !exists {
        return Ok(StreamState::default());
    }
    let info: HashMap<String, redis::Value> =
        query(link, redis::cmd("XINFO").arg("STREAM").arg(key)).await?;
    let id = |field: &str| {
        info.get(field)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    };
    let number = |field: &str| {
        info.get(field)
            .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
            .unwrap_or(0)
    };
    Ok(StreamState {
        last: id("last-generated-id"),
        first: id("recorded-first-entry-id"),
        max_deleted: id("max-deleted-entry-id"),
        lost_some: number("entries-added") > number("length"),
    })
}

/// A connection for blocking reads, checked with a PING so that "restored" is said only
/// when Redis answers.
pub async fn connect_blocking(link: &RedisLink) -> Result<MultiplexedConnection, RedisUnavailable> {
    let mut conn = link.blocking_connection(BLOCK).await?;
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| link.unavailable(e))?;
    Ok(conn)
}

/// Up to `count` entries after `last`, waiting up to [`BLOCK`] for the first.
pub async fn read_after(
    conn: &mut MultiplexedConnection,
    key: &str,
    last: StreamId,
    count: usize,
) -> Result<Vec<RedisEntry>, redis::RedisError> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(key)
        .arg(last.to_string())
        .query_async(conn)
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn protocol_error(message: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, "unexpected reply", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    #[test]
    fn a_gap_is_found_only_when_entries_after_the_cursor_were_removed() {
        let intact = StreamState {
            last: id(9, 0),
            first: id(1, 0),
            max_deleted: StreamId::ZERO,
            lost_some: false,
        };
        assert_eq!(intact.missed_after(StreamId::ZERO), None);
        let trimmed = StreamState {
            first: id(5, 0),
            lost_some: true,
            ..intact
        };
        assert_eq!(trimmed.missed_after(id(2, 0)), Some(id(4, u64::MAX)));
        assert_eq!(trimmed.missed_after(id(5, 0)), None);
        assert_eq!(trimmed.missed_after(id(7, 0)), None);
        let deleted = StreamState {
            max_deleted: id(6, 0),
            ..trimmed
        };
        assert_eq!(deleted.missed_after(id(2, 0)), Some(id(6, 0)));
        assert_eq!(deleted.missed_after(id(6, 0)), None);
    }
}
