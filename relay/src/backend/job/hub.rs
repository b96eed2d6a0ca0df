//! Every job this relay watches, served by two tasks whatever the number of viewers:
//!
//! - one **reader** holds the relay's only dedicated Redis connection for jobs and blocks on
//!   all watched streams at once (`XREAD COUNT 1 BLOCK ... STREAMS <wake> <s1> <s2> ...`).
//!   When a stream has new entries it asks for their newest id ([`store::observe`], which
//!   does not send the data) and tells that job's viewers through a `watch` channel; they
//!   then read the entries themselves, at their own pace. A new job wakes the reader through
//!   its wake stream (an `XADD` to a key only this relay reads), so it reads again with the
//!   new set and nothing is missed between two reads;
//! - one **mover** runs the list→stream script ([`store::move_lists`]) for every watched
//!   job on the shared connection, many jobs per run: soon after output arrived (every
//!   [`LIST_POLL_MIN`]), then less often while a list stays empty (up to
//!   [`LIST_POLL_MAX`]).
//!
//! A job is watched while it has viewers, so a viewer of a token that does not exist costs
//! one map entry and one key in the reader's `XREAD`, never a connection. The reader drops
//! its connection when nothing is watched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::store::{self, Batch, JobError, JobKeys, MOVE_BATCH, Moved};
use crate::backend::redis_stream::{BLOCK, StreamState, connect_blocking};
use crate::backend::stream_id::StreamId;
use crate::config::JobsConfig;
use crate::metrics::Metrics;
use crate::redis_link::{Backoff, RedisLink, RedisUnavailable};

/// How soon a job's list is checked again after output was moved from it.
pub const LIST_POLL_MIN: Duration = Duration::from_millis(50);
/// How long a job's list may wait between two checks while it stays empty: list output
/// reaches viewers at most this late.
pub const LIST_POLL_MAX: Duration = Duration::from_millis(500);
/// Jobs whose lists one mover script run handles.
const MOVE_JOBS_PER_RUN: usize = 50;

/// The jobs of this relay and their reader and mover.
pub struct JobHub {
    shared: Arc<Shared>,
    tasks: Once,
    /// Stops the reader and the mover with the hub.
    _stop: DropGuard,
}

/// What the hub, its tasks and its viewers share.
struct Shared {
    link: Arc<RedisLink>,
    /// Watched jobs by stream key.
    jobs: Mutex<HashMap<String, Arc<JobSlot>>>,
    /// A stream only this relay's reader reads, written to wake it (see [`store::wake`]).
    wake_key: String,
    /// Wakes the idle reader and the mover when a job is added.
    reader_idle: Notify,
    mover_idle: Notify,
    /// Whether the reader has Redis; viewers tell the browser when this changes.
    redis_up: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

/// One watched job.
struct JobSlot {
    keys: JobKeys,
    /// Changed only while holding the hub's lock.
    viewers: AtomicUsize,
    /// The newest entry id the reader knows of; its viewers wait for it to change.
    latest: watch::Sender<StreamId>,
    /// The stream key holds something else: the reader leaves it out (an `XREAD` that
    /// names it fails for every job), its viewers find out when they read.
    not_a_stream: AtomicBool,
    list: Mutex<ListPoll>,
}

/// When the mover next looks at a job's list.
#[derive(Debug)]
struct ListPoll {
    due: Instant,
    interval: Duration,
    /// The end marker was moved: the list is not read again.
    done: bool,
}

impl JobSlot {
    fn list(&self) -> MutexGuard<'_, ListPoll> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reader saw entries up to `id`.
    fn advance(&self, id: StreamId) {
        self.latest.send_if_modified(|latest| {
            let newer = id > *latest;
            if newer {
                *latest = id;
            }
            newer
        });
    }
}

impl ListPoll {
    fn moved(&mut self, moved: Moved, now: Instant) {
        match moved {
            Moved::Ended | Moved::WrongType => self.done = true,
            Moved::Entries(n) if n >= MOVE_BATCH => {
                self.interval = LIST_POLL_MIN;
                self.due = now;
            }
            Moved::Entries(0) => {
                self.interval = (self.interval * 2).clamp(LIST_POLL_MIN, LIST_POLL_MAX);
                self.due = now + self.interval;
            }
            Moved::Entries(_) => {
                self.interval = LIST_POLL_MIN;
                self.due = now + self.interval;
            }
        }
    }
}

impl JobHub {
    pub fn new(link: Arc<RedisLink>, config: &JobsConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        // Job tokens are letters, digits, '_' and '-': no job has this key.
        let wake_key = config.stream_key.replace(
            "{token}",
            &format!("relay.{:016x}.wake", rand::random::<u64>()),
        );
        let stop = CancellationToken::new();
        Arc::new(Self {
            shared: Arc::new(Shared {
                link,
                jobs: Mutex::new(HashMap::new()),
                wake_key,
                reader_idle: Notify::new(),
                mover_idle: Notify::new(),
                redis_up: watch::Sender::new(true),
                metrics,
                stop: stop.clone(),
            }),
            tasks: Once::new(),
            _stop: stop.drop_guard(),
        })
    }

    /// Jobs watched now.
    pub fn len(&self) -> usize {
        self.shared.jobs().len()
    }

    /// What `stream` looks like now (for the `gap` of a resuming viewer).
    pub async fn stream_state(&self, stream: &str) -> Result<StreamState, JobError> {
        store::state(&self.shared.link, stream).await
    }

    /// Watches the job `keys` for one more viewer. `floor` is the newest id of its stream
    /// now (the viewer reads what is there itself): the reader reports what comes after it.
    pub async fn watch(&self, keys: JobKeys, floor: StreamId) -> Result<Watch, RedisUnavailable> {
        self.tasks.call_once(|| {
            tokio::spawn(read_all(self.shared.clone()));
            tokio::spawn(move_all(self.shared.clone()));
        });
        let shared = &self.shared;
        let (slot, created, added) = {
            let mut jobs = shared.jobs();
            match jobs.get(&keys.stream) {
                // The caller found a stream (or nothing) there: read it again.
                Some(slot) => (
                    slot.clone(),
                    false,
                    slot.not_a_stream.swap(false, Ordering::SeqCst),
                ),
                None => {
                    let slot = Arc::new(JobSlot {
                        keys: keys.clone(),
                        viewers: AtomicUsize::new(0),
                        latest: watch::Sender::new(floor),
                        not_a_stream: AtomicBool::new(false),
                        list: Mutex::new(ListPoll {
                            due: Instant::now(),
                            interval: LIST_POLL_MIN,
                            done: false,
                        }),
                    });
                    jobs.insert(keys.stream.clone(), slot.clone());
                    (slot, true, true)
                }
            }
        };
        slot.viewers.fetch_add(1, Ordering::SeqCst);
        // The guard exists before the wait, so an abandoned open still leaves.
        let watch = Watch {
            shared: shared.clone(),
            slot,
        };
        if added {
            if created {
                shared.metrics.sessions.with_label_values(&["job"]).inc();
            }
            shared.reader_idle.notify_one();
            shared.mover_idle.notify_one();
            store::wake(&shared.link, &shared.wake_key).await?;
        }
        Ok(watch)
    }
}

impl Shared {
    fn jobs(&self) -> MutexGuard<'_, HashMap<String, Arc<JobSlot>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watched jobs the reader reads.
    fn readable(&self) -> Vec<Arc<JobSlot>> {
        self.jobs()
            .values()
            .filter(|slot| !slot.not_a_stream.load(Ordering::SeqCst))
            .cloned()
            .collect()
    }

    fn leave(&self, slot: &Arc<JobSlot>) {
        let mut jobs = self.jobs();
        if slot.viewers.fetch_sub(1, Ordering::SeqCst) > 1 {
            return;
        }
        if jobs
            .get(&slot.keys.stream)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            jobs.remove(&slot.keys.stream);
            self.metrics.sessions.with_label_values(&["job"]).dec();
        }
    }

    fn set_redis_up(&self, up: bool) {
        self.redis_up.send_if_modified(|was| {
            let changed = *was != up;
            *was = up;
            changed
        });
    }

    /// Waits `delay`; true when the hub stopped meanwhile.
    async fn sleep_or_stop(&self, delay: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(delay) => false,
        }
    }
}

/// One viewer's hold on a job; dropping it stops watching the job once no one else does.
pub struct Watch {
    shared: Arc<Shared>,
    slot: Arc<JobSlot>,
}

impl Watch {
    /// Changes whenever the job's stream has new entries.
    pub fn changes(&self) -> watch::Receiver<StreamId> {
        self.slot.latest.subscribe()
    }

    /// Whether the hub's reader has Redis.
    pub fn redis_up(&self) -> watch::Receiver<bool> {
        self.shared.redis_up.subscribe()
    }

    /// The entries after `after` (one bounded batch).
    pub async fn pull(&self, after: StreamId) -> Result<Batch, JobError> {
        store::pull(&self.shared.link, &self.slot.keys.stream, after).await
    }

    /// The job ended: keep its stream for `jobs.retention` (at most).
    pub fn keep_for_retention(&self) {
        let (link, keys) = (self.shared.link.clone(), self.slot.keys.clone());
        tokio::spawn(async move { store::keep_for(&link, &keys).await });
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.leave(&self.slot);
    }
}

/// The reader: waits for new entries in every watched stream at once, on one connection.
async fn read_all(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    let mut wake_cursor = StreamId::ZERO;
    loop {
        // Nothing to read: no connection.
        while shared.readable().is_empty() {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = shared.reader_idle.notified() => {}
            }
        }
        let connected = tokio::select! {
            () = shared.stop.cancelled() => return,
            conn = connect_blocking(&shared.link) => conn,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                lost_redis(&shared, &e.to_string());
                if shared.sleep_or_stop(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        shared.set_redis_up(true);
        backoff.reset();
        loop {
            let watched = shared.readable();
            if watched.is_empty() {
                break;
            }
            let read = tokio::select! {
                () = shared.stop.cancelled() => return,
                read = read_new(&mut conn, &shared.wake_key, wake_cursor, &watched) => read,
            };
            let reply = match read {
                Ok(reply) => reply,
                Err(e) if redis_answered(&e) && leave_out_other_types(&shared, &watched).await => {
                    continue;
                }
                Err(e) => {
                    lost_redis(&shared, &e.to_string());
                    if shared.sleep_or_stop(backoff.next_delay()).await {
                        return;
                    }
                    break;
                }
            };
            let by_key: HashMap<&str, &Arc<JobSlot>> = watched
                .iter()
                .map(|slot| (slot.keys.stream.as_str(), slot))
                .collect();
            let mut seen = Vec::new();
            for (key, id) in newest_ids(reply) {
                if key == shared.wake_key {
                    wake_cursor = id;
                } else if let Some(slot) = by_key.get(key.as_str()) {
                    seen.push((*slot, id));
                }
            }
            if seen.is_empty() {
                continue;
            }
            let keys: Vec<&JobKeys> = seen.iter().map(|(slot, _)| &slot.keys).collect();
            match store::observe(&shared.link, &keys).await {
                Ok(newest) => {
                    for ((slot, id), newest) in seen.iter().zip(newest) {
                        slot.advance((*id).max(newest));
                    }
                }
                Err(e) => {
                    // Read on one entry at a time meanwhile.
                    tracing::debug!("job streams not observed: {e}");
                    for (slot, id) in &seen {
                        slot.advance(*id);
                    }
                }
            }
        }
    }
}

/// Whether Redis itself refused a command (rather than the connection failing).
fn redis_answered(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// After a refused `XREAD`: marks the watched jobs whose stream key holds another type
/// (`WRONGTYPE`), so the reader reads on without them, and wakes their viewers (who close).
/// False when there was none: the refusal has another cause.
async fn leave_out_other_types(shared: &Shared, watched: &[Arc<JobSlot>]) -> bool {
    let keys: Vec<&str> = watched.iter().map(|s| s.keys.stream.as_str()).collect();
    let Ok(types) = store::key_types(&shared.link, &keys).await else {
        return false;
    };
    let mut found = false;
    for (slot, kind) in watched.iter().zip(types) {
        if kind != "stream" && kind != "none" {
            found = true;
            tracing::warn!(
                "a job's stream key holds a {kind}, not a stream; its viewers are closed"
            );
            slot.not_a_stream.store(true, Ordering::SeqCst);
            slot.latest.send_modify(|_| {});
        }
    }
    found
}

fn lost_redis(shared: &Shared, error: &str) {
    if *shared.redis_up.borrow() {
        tracing::warn!("job output lost Redis: {error}");
    }
    shared.set_redis_up(false);
}

/// `XREAD COUNT 1 BLOCK` on the wake stream and every watched stream, each after the
/// newest id known. One entry per stream is enough: it says there is something new.
async fn read_new(
    conn: &mut MultiplexedConnection,
    wake_key: &str,
    wake_cursor: StreamId,
    watched: &[Arc<JobSlot>],
) -> Result<Value, redis::RedisError> {
    let mut command = redis::cmd("XREAD");
    command
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(wake_key);
    for slot in watched {
        command.arg(&slot.keys.stream);
    }
    command.arg(wake_cursor.to_string());
    for slot in watched {
        command.arg(slot.latest.borrow().to_string());
    }
    command.query_async(conn).await
}

/// The key and newest entry id of each stream in an `XREAD` reply (RESP2 arrays or a
/// RESP3 map; nil when the block timed out). The entries' fields are not decoded: whatever
/// a producer wrote there cannot fail the read of every job.
fn newest_ids(reply: Value) -> Vec<(String, StreamId)> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Map(pairs) => pairs,
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop()?;
                    Some((pair.pop()?, entries))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|(key, entries)| {
            let key: String = redis::from_redis_value(key).ok()?;
            let Value::Array(entries) = entries else {
                return None;
            };
            let Some(Value::Array(mut newest)) = entries.into_iter().last() else {
                return None;
            };
            if newest.is_empty() {
                return None;
            }
            let id: String = redis::from_redis_value(newest.swap_remove(0)).ok()?;
            Some((key, id.parse().ok()?))
        })
        .collect()
}

/// The mover: moves list output into the streams of every watched job.
async fn move_all(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for slot in shared.jobs().values() {
            let list = slot.list();
            if list.done {
                continue;
            }
            if list.due <= now {
                due.push(slot.clone());
            } else {
                next = Some(next.map_or(list.due, |n| n.min(list.due)));
            }
        }
        if due.is_empty() {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = shared.mover_idle.notified() => {}
                () = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {}
            }
            continue;
        }
        for chunk in due.chunks(MOVE_JOBS_PER_RUN) {
            let keys: Vec<&JobKeys> = chunk.iter().map(|slot| &slot.keys).collect();
            let moved = tokio::select! {
                () = shared.stop.cancelled() => return,
                moved = store::move_lists(&shared.link, &keys) => moved,
            };
            let now = Instant::now();
            match moved {
                Ok(moved) => {
                    backoff.reset();
                    for (slot, moved) in chunk.iter().zip(moved) {
                        slot.list().moved(moved, now);
                    }
                }
                Err(e) => {
                    tracing::debug!("job lists not moved: {e}; retrying");
                    let retry = now + backoff.next_delay();
                    for slot in chunk {
                        slot.list().due = retry;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &[u8]) -> Value {
        Value::BulkString(text.to_vec())
    }

    fn entry(id: &str, fields: &[&[u8]]) -> Value {
        Value::Array(vec![
            bulk(id.as_bytes()),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn the_newest_id_of_each_stream_is_read_whatever_its_fields() {
        let id = |text: &str| text.parse::<StreamId>().unwrap();
        // Field names that are not UTF-8 do not matter.
        let stream = |key: &str, entries: Vec<Value>| {
            Value::Array(vec![bulk(key.as_bytes()), Value::Array(entries)])
        };
        let resp2 = Value::Array(vec![
            stream(
                "a",
                vec![
                    entry("1-0", &[b"data", b"x"]),
                    entry("2-5", &[b"\xff", b"y"]),
                ],
            ),
            stream("b", vec![entry("3-0", &[b"exit", b"0"])]),
            stream("empty", vec![]),
        ]);
        assert_eq!(
            newest_ids(resp2),
            [("a".to_owned(), id("2-5")), ("b".to_owned(), id("3-0"))]
        );
        let resp3 = Value::Map(vec![(bulk(b"a"), Value::Array(vec![entry("7-1", &[])]))]);
        assert_eq!(newest_ids(resp3), [("a".to_owned(), id("7-1"))]);
        assert!(newest_ids(Value::Nil).is_empty());
    }
}
