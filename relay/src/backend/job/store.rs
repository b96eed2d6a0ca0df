//! What a job looks like in Redis, and the scripts that read and move it.
//!
//! Every command here runs on the relay's shared connection ([`RedisLink`]) and none
//! blocks; what touches a job's keys is one Lua script, so it is atomic. Blocking reads live
//! in the hub's one reader (`hub.rs`).
//!
//! - [`move_lists`]: moves list entries (oldest first) into their streams, for many jobs at
//!   once, capping each stream (`MAXLEN ~ jobs.max_entries`) and giving it an idle expiry;
//! - [`observe`]: what the hub's reader runs when it sees new output: the newest id of each
//!   stream (without its data), trimming a stream the producer writes itself;
//! - [`pull`]: one viewer's next batch after its position, with every entry cut to
//!   [`MAX_ENTRY_BYTES`] *by Redis* and the batch to [`BATCH_BYTES`], so a viewer never holds
//!   more than that however large the producer's entries are.

use std::sync::LazyLock;

use common::CloseCode;
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::backend::redis_stream::{self, StreamState};
use crate::backend::stream_id::StreamId;
use crate::close::CloseCause;
use crate::config::JobsConfig;
use crate::redis_link::{RedisLink, RedisUnavailable};

/// Largest output entry sent; longer ones are cut (in Redis) with a marker.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Output bytes one [`pull`] returns at most (besides a single entry that is larger on its
/// own, up to [`MAX_ENTRY_BYTES`]). A viewer holds one batch at a time, so this bounds its
/// memory: about 1 MiB of text, plus the frame being written to its socket.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Entries one [`pull`] returns at most.
pub const READ_COUNT: usize = 100;
/// List entries moved per job per [`move_lists`] run.
pub const MOVE_BATCH: usize = 100;

/// A job's keys and the config values the scripts need, fixed when the job is first watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKeys {
    pub list: String,
    pub stream: String,
    pub end_marker: String,
    pub retention_secs: u64,
    pub idle_secs: u64,
    pub max_entries: u64,
}

impl JobKeys {
    pub fn new(config: &JobsConfig, token: &str) -> Self {
        Self {
            list: config.list_key.replace("{token}", token),
            stream: config.stream_key.replace("{token}", token),
            end_marker: config.end_marker.clone(),
            retention_secs: config.retention.as_secs().max(1),
            idle_secs: config.idle_ttl.as_secs().max(1),
            max_entries: config.max_entries.max(1),
        }
    }
}

/// Moves list entries into streams. KEYS: list, stream, list, stream, ...; ARGV[1]: entries
/// per job; then per job: end marker, retention, max entries, idle expiry. Returns, per job,
/// how many entries it moved, -1 once it moved the end marker, or -2 when its list is not a
/// list or its stream not a stream (it is then left alone).
static MOVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local batch = tonumber(ARGV[1])
local results = {}
for i = 1, #KEYS, 2 do
  local list, stream = KEYS[i], KEYS[i + 1]
  local a = 1 + (i - 1) * 2
  local marker, retention, maxlen, idle = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local moved, ended = 0, false
  local list_type = redis.call('TYPE', list).ok
  local stream_type = redis.call('TYPE', stream).ok
  if (list_type ~= 'list' and list_type ~= 'none')
      or (stream_type ~= 'stream' and stream_type ~= 'none') then
    -- Keys of another type are not this job's list and stream: leave them alone.
    moved = -2
  end
  while moved >= 0 and moved < batch do
    local entry = redis.call('RPOP', list)
    if not entry then break end
    -- Only an entry that is the marker and a status, nothing else, ends the job: output
    -- that merely starts with the marker is output.
    local rest = string.sub(entry, #marker + 1)
    if string.sub(entry, 1, #marker) == marker and string.match(rest, '^[%s:=]*%-?%d*%s*$') then
      local status = string.match(rest, '^[%s:=]*(%-?%d+)') or ''
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'exit', status)
      redis.call('EXPIRE', stream, retention)
      -- Whatever the producer pushed after its end is never read: let it go too.
      if redis.call('EXISTS', list) == 1 then redis.call('EXPIRE', list, retention) end
      ended = true
      break
    end
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', entry)
    moved = moved + 1
  end
  if ended then
    results[#results + 1] = -1
  elseif moved < 0 then
    results[#results + 1] = moved
  else
    if moved > 0 then redis.call('EXPIRE', stream, idle) end
    results[#results + 1] = moved
  end
end
return results
",
    )
});

/// The newest entry id of each stream (`0-0` for none), without its data. A stream whose
/// newest entry is an `exit` expires within its retention; any other is trimmed to its
/// cap and its idle expiry renewed (unless the producer set a longer one). KEYS: streams;
/// ARGV per stream: max entries, idle expiry, retention.
static OBSERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids = {}
for i, stream in ipairs(KEYS) do
  local a = (i - 1) * 3
  local maxlen, idle, retention = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local newest = {}
  if redis.call('TYPE', stream).ok == 'stream' then
    newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  end
  local id = '0-0'
  if #newest > 0 then
    id = newest[1][1]
    local ended = false
    local fields = newest[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'exit' then ended = true end
    end
    if ended then
      redis.call('EXPIRE', stream, retention, 'LT')
    else
      redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen)
      if redis.call('TTL', stream) < idle then redis.call('EXPIRE', stream, idle) end
    end
  end
  ids[i] = id
end
return ids
",
    )
});

/// One viewer's next batch: up to ARGV[2] entries after ARGV[1] (exclusive), each cut to
/// ARGV[3] bytes, all of them to ARGV[4] bytes (at least one entry). Returns the stream's
/// oldest kept id, whether entries were ever removed (0/1), whether more may follow (0/1),
/// the entries as [id, "data" | "exit", value (cut), the value's full length], and the key's
/// type (`stream`, or `none` when it does not exist: nothing else is read).
static PULL_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stream = KEYS[1]
local count, cut, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local kind = redis.call('TYPE', stream).ok
if kind ~= 'stream' then return {'0-0', 0, 0, {}, kind} end
local info = redis.call('XINFO', 'STREAM', stream)
local first, added, length = '0-0', 0, 0
for i = 1, #info, 2 do
  local name = info[i]
  if name == 'recorded-first-entry-id' then first = info[i + 1]
  elseif name == 'entries-added' then added = info[i + 1]
  elseif name == 'length' then length = info[i + 1] end
end
local entries = redis.call('XRANGE', stream, '(' .. ARGV[1], '+', 'COUNT', count)
local out, bytes = {}, 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local kind, value = 'data', ''
  for j = 1, #fields, 2 do
    if fields[j] == 'exit' then
      kind, value = 'exit', fields[j + 1]
      break
    elseif fields[j] == 'data' then
      value = fields[j + 1]
    end
  end
  local keep = math.min(#value, cut)
  if #out > 0 and bytes + keep > budget then break end
  bytes = bytes + keep
  out[#out + 1] = {entry[1], kind, string.sub(value, 1, keep), #value}
end
local more = 0
if #out < #entries or #entries == count then more = 1 end
local lost = 0
if added > length then lost = 1 end
return {first, lost, more, out, kind}
",
    )
});

/// What a job's stream looks like, without any entry's data (`XINFO STREAM` itself would
/// send the first and last entries whole). Returns the key's type, then for a stream its
/// last generated id, oldest kept id, newest deleted id, and whether entries were ever
/// removed (0/1).
static STATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'stream' then return {kind, '0-0', '0-0', '0-0', 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local field = {}
for i = 1, #info, 2 do field[info[i]] = info[i + 1] end
local lost = 0
if field['entries-added'] > field['length'] then lost = 1 end
return {kind, field['last-generated-id'], field['recorded-first-entry-id'],
        field['max-deleted-entry-id'], lost}
",
    )
});

/// Why a job cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Unavailable(#[from] RedisUnavailable),
    #[error(
        "this job's Redis key holds a {0}, not a stream; check jobs.stream_key and the job's producer"
    )]
    NotAStream(String),
}

impl CloseCause for JobError {
    fn close_code(&self) -> CloseCode {
        CloseCode::BackendUnavailable
    }
}

/// Runs a script on the shared connection; once more if the connection had dropped (Redis
/// restarted). Running a script twice is safe here: the move pops what it adds, and the
/// others only read (or set an expiry).
async fn run<T: FromRedisValue>(
    link: &RedisLink,
    invocation: &ScriptInvocation<'_>,
) -> Result<T, RedisUnavailable> {
    redis_stream::retried(link, |mut conn| async move {
        invocation.invoke_async(&mut conn).await
    })
    .await
}

/// How one job's list moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// This many entries (a full [`MOVE_BATCH`]: more may be waiting).
    Entries(usize),
    /// The end marker: the list is done.
    Ended,
    /// The list is not a list, or the stream not a stream: the list is left alone.
    WrongType,
}

/// Moves waiting list entries of `jobs` into their streams, in one script run.
pub async fn move_lists(
    link: &RedisLink,
    jobs: &[&JobKeys],
) -> Result<Vec<Moved>, RedisUnavailable> {
    let mut invocation = MOVE_SCRIPT.prepare_invoke();
    invocation.arg(MOVE_BATCH);
    for job in jobs {
        invocation.key(&job.list).key(&job.stream);
        invocation
            .arg(&job.end_marker)
            .arg(job.retention_secs)
            .arg(job.max_entries)
            .arg(job.idle_secs);
    }
    let results: Vec<i64> = run(link, &invocation).await?;
    Ok(results
        .into_iter()
        .map(|n| match n {
            -1 => Moved::Ended,
            n => usize::try_from(n).map_or(Moved::WrongType, Moved::Entries),
        })
        .collect())
}

/// What `stream` looks like now (for a resuming viewer's `gap`, and where to watch from).
pub async fn state(link: &RedisLink, stream: &str) -> Result<StreamState, JobError> {
    let mut invocation = STATE_SCRIPT.prepare_invoke();
    invocation.key(stream);
    type Reply = (String, String, String, String, i64);
    let (kind, last, first, max_deleted, lost): Reply = run(link, &invocation).await?;
    if kind != "stream" && kind != "none" {
        return Err(JobError::NotAStream(kind));
    }
    let id = |text: String| text.parse().unwrap_or_default();
    Ok(StreamState {
        last: id(last),
        first: id(first),
        max_deleted: id(max_deleted),
        lost_some: lost != 0,
    })
}

/// The newest id of each of `jobs`' streams (see [`OBSERVE_SCRIPT`]).
pub async fn observe(
    link: &RedisLink,
    jobs: &[&JobKeys],
) -> Result<Vec<StreamId>, RedisUnavailable> {
    let mut invocation = OBSERVE_SCRIPT.prepare_invoke();
    for job in jobs {
        invocation.key(&job.stream);
        invocation
            .arg(job.max_entries)
            .arg(job.idle_secs)
            .arg(job.retention_secs);
    }
    let ids: Vec<String> = run(link, &invocation).await?;
    Ok(ids
        .iter()
        .map(|id| id.parse().unwrap_or_default())
        .collect())
}

/// One entry of a job's stream, as a viewer gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEntry {
    /// Output; `full_len` is the length in Redis, `data` at most [`MAX_ENTRY_BYTES`] of it.
    Output { data: Vec<u8>, full_len: usize },
    /// The end, with the status as the producer wrote it.
    Exit(String),
}

/// What one [`pull`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub entries: Vec<(StreamId, JobEntry)>,
    /// Whether more entries may follow right away (pull again before waiting).
    pub more: bool,
    /// The stream's oldest entry and whether some were removed, for `gap` frames.
    pub state: StreamState,
}

/// The entries of `stream` after `after`: see [`PULL_SCRIPT`].
pub async fn pull(link: &RedisLink, stream: &str, after: StreamId) -> Result<Batch, JobError> {
    let mut invocation = PULL_SCRIPT.prepare_invoke();
    invocation
        .key(stream)
        .arg(after.to_string())
        .arg(READ_COUNT)
        .arg(MAX_ENTRY_BYTES)
        .arg(BATCH_BYTES);
    type Reply = (
        String,
        i64,
        i64,
        Vec<(String, String, Vec<u8>, usize)>,
        String,
    );
    let (first, lost, more, raw, kind): Reply = run(link, &invocation).await?;
    if kind != "stream" && kind != "none" {
        return Err(JobError::NotAStream(kind));
    }
    let mut entries = Vec::with_capacity(raw.len());
    for (id, kind, value, full_len) in raw {
        let Ok(id) = id.parse::<StreamId>() else {
            continue;
        };
        let entry = if kind == "exit" {
            JobEntry::Exit(String::from_utf8_lossy(&value).into_owned())
        } else {
            JobEntry::Output {
                data: value,
                full_len,
            }
        };
        entries.push((id, entry));
    }
    Ok(Batch {
        entries,
        more: more != 0,
        state: StreamState {
            first: first.parse().unwrap_or_default(),
            lost_some: lost != 0,
            ..StreamState::default()
        },
    })
}

/// The type of each key (`stream`, `none`, `string`...).
pub async fn key_types(link: &RedisLink, keys: &[&str]) -> Result<Vec<String>, RedisUnavailable> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(*key);
    }
    let mut conn = link.connection().await?;
    pipe.query_async(&mut conn)
        .await
        .map_err(|e| link.unavailable(e))
}

/// The output ended: keep its stream for `retention` at most (a shorter expiry stays).
pub async fn keep_for(link: &RedisLink, keys: &JobKeys) {
    let mut command = redis::cmd("EXPIRE");
    command.arg(&keys.stream).arg(keys.retention_secs).arg("LT");
    if let Err(e) = redis_stream::query::<i64>(link, &command).await {
        tracing::debug!("job stream expiry not set: {e}");
    }
}

/// Adds an entry to the hub reader's wake stream `key` (its only entry), so a reader
/// blocked on an older set of jobs reads again; the key goes away an hour after its last
/// use.
pub async fn wake(link: &RedisLink, key: &str) -> Result<(), RedisUnavailable> {
    let mut pipe = redis::pipe();
    pipe.cmd("XADD")
        .arg(key)
        .arg("MAXLEN")
        .arg(1)
        .arg("*")
        .arg("wake")
        .arg(1)
        .ignore()
        .cmd("EXPIRE")
        .arg(key)
        .arg(3600)
        .ignore();
    let mut conn = link.connection().await?;
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| link.unavailable(e))
}
