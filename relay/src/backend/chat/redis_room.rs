//! Chat rooms kept in Redis, so that clients on different relays share them.
//!
//! Keys (prefix `chat.key_prefix`, default `opsdeck:chat:`):
//! - `<prefix><room>`: a stream of the room's entries, `XADD ... MAXLEN ~ <chat.history>`
//!   (and `XTRIM MINID ~` when `chat.max_age` is set). Fields: `kind` (`message`, `join` or
//!   `leave`), `uid`, `username`, `message`, `time` (Unix seconds). The entry id is the
//!   message's position: a client reconnecting with `?since=<id>` reads what followed from
//!   the stream (`XRANGE`), so nothing published while it was away is missed (no pub/sub gap).
//! - `<prefix><room>:sent:<uid>:<client_id>`: the id of the message the user `uid` sent
//!   with that client id, expiring after `chat.dedupe_ttl`. One Lua script checks it, adds
//!   the message and sets it (scripts run whole or not at all), so a message is stored at
//!   most once per user, room and client id whichever relay it is sent through and however
//!   often; a send whose reply was lost is simply sent again.
//! - `<prefix><room>:presence`: a sorted set of `[relay, uid, username]` (JSON) scored by
//!   when the entry expires (Unix ms). Each relay refreshes its own entries every third of
//!   `chat.presence_ttl`; entries of a relay that died expire on their own. The people in a
//!   room are the unexpired entries, whichever relay they are connected to.
//!
//! One reader per room per relay follows the stream with `XREAD BLOCK` on a connection of its
//! own and feeds the local [`Room`]; when Redis fails it tells the viewers, reconnects with
//! backoff and reads on from the last id it saw.

use std::sync::Arc;
use std::time::Duration;

use common::chat::{ChatMessage, ChatUser, ClientId};
use common::server::StatusKind;
use redis::streams::{StreamId as RedisEntry, StreamRangeReply};
use tokio_util::sync::CancellationToken;

use super::room::{Entry, Notice, Room, sort_users};
use crate::backend::redis_stream::{
    StreamState, connect_blocking, now_ms, protocol_error, query, read_after, stream_state,
};
use crate::backend::stream_id::StreamId;
use crate::config::ChatConfig;
use crate::redis_link::{Backoff, RedisLink, RedisUnavailable};

/// Entries read at a time.
pub const READ_COUNT: usize = 500;

/// Checks the sender's idempotency key, adds the message and remembers its id, at once.
/// KEYS: the stream, the idempotency key. ARGV: MAXLEN, uid, username, message, time,
/// client id, TTL in seconds. Returns `[id, 1]` when added now, `[id, 0]` when sent before.
const ADD_ONCE_SCRIPT: &str = r#"
local prior = redis.call('GET', KEYS[2])
if prior then return {prior, 0} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'kind', 'message', 'uid', ARGV[2], 'username', ARGV[3], 'message', ARGV[4],
  'time', ARGV[5], 'client_id', ARGV[6])
redis.call('SET', KEYS[2], id, 'EX', ARGV[7])
return {id, 1}
"#;

/// Why a message sent with a client id has no id.
#[derive(Debug)]
pub enum SendFailure {
    /// Certainly not stored by this send (Redis was not reached, or refused the script).
    NotSent(RedisUnavailable),
    /// The connection broke while the script ran, and Redis could not be asked again: it is
    /// stored once or not at all, and sending it again with the same id tells which.
    Unconfirmed(RedisUnavailable),
}

/// What one stream entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEntry {
    Message(ChatMessage),
    Join(ChatUser),
    Leave(ChatUser),
}

/// The Redis operations of chat rooms.
pub struct RedisRooms {
    link: Arc<RedisLink>,
    prefix: String,
    history: usize,
    max_age: Option<Duration>,
    pub presence_ttl: Duration,
    /// This relay's name in presence entries.
    relay_id: String,
}

impl RedisRooms {
    pub fn new(link: Arc<RedisLink>, config: &ChatConfig) -> Self {
        Self {
            link,
            prefix: config.key_prefix.clone(),
            history: config.history,
            max_age: config.max_age,
            presence_ttl: config.presence_ttl,
            relay_id: hex::encode(rand::random::<[u8; 8]>()),
        }
    }

    fn stream_key(&self, room: &str) -> String {
        format!("{}{room}", self.prefix)
    }

    fn presence_key(&self, room: &str) -> String {
        format!("{}{room}:presence", self.prefix)
    }

    fn sent_key(&self, room: &str, uid: &str, client_id: &ClientId) -> String {
        format!("{}{room}:sent:{uid}:{client_id}", self.prefix)
    }

    /// The id of the message `uid` sent earlier with `client_id`, if it is remembered.
    pub async fn sent_id(
        &self,
        room: &str,
        uid: &str,
        client_id: &ClientId,
    ) -> Result<Option<StreamId>, RedisUnavailable> {
        let mut command = redis::cmd("GET");
        command.arg(self.sent_key(room, uid, client_id));
        let id: Option<String> = query(&self.link, &command).await?;
        id.map(|id| self.parse_id(&id)).transpose()
    }

    fn parse_id(&self, id: &str) -> Result<StreamId, RedisUnavailable> {
        id.parse().map_err(|e| {
            self.link
                .unavailable(protocol_error(format!("Redis returned the id {id:?}: {e}")))
        })
    }

    /// Adds `message`, sent with `client_id`, unless its sender already sent one with that
    /// id within `ttl`: returns the message's id and whether it was added now.
    pub async fn add_message_once(
        &self,
        room: &str,
        client_id: &ClientId,
        message: &ChatMessage,
        ttl: Duration,
    ) -> Result<(StreamId, bool), SendFailure> {
        let key = self.stream_key(room);
        let mut command = redis::cmd("EVAL");
        command
            .arg(ADD_ONCE_SCRIPT)
            .arg(2)
            .arg(&key)
            .arg(self.sent_key(room, &message.uid, client_id))
            .arg(self.history)
            .arg(&message.uid)
            .arg(&message.username)
            .arg(&message.message)
            .arg(message.time)
            .arg(client_id.as_str())
            .arg(ttl.as_secs().max(1));
        let mut conn = self.link.connection().await.map_err(SendFailure::NotSent)?;
        let reply: (String, i64) = match command.query_async(&mut conn).await {
            Ok(reply) => reply,
            // The script may have run: it is idempotent, so run it again to learn its id.
            Err(e) if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() => {
                let mut conn = self
                    .link
                    .connection()
                    .await
                    .map_err(SendFailure::Unconfirmed)?;
                command
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| SendFailure::Unconfirmed(self.link.unavailable(e)))?
            }
            // Redis answered with an error: the script did not run.
            Err(e) => return Err(SendFailure::NotSent(self.link.unavailable(e))),
        };
        let id = self.parse_id(&reply.0).map_err(SendFailure::Unconfirmed)?;
        if reply.1 == 1 {
            self.trim_by_age(&key).await;
        }
        Ok((id, reply.1 == 1))
    }

    async fn trim_by_age(&self, key: &str) {
        if let Some(age) = self.max_age {
            let oldest = now_ms().saturating_sub(age.as_millis() as u64);
            let mut trim = redis::cmd("XTRIM");
            trim.arg(key).arg("MINID").arg("~").arg(oldest);
            // Trimming by age is housekeeping: a failure here loses nothing.
            let _ = query::<i64>(&self.link, &trim).await;
        }
    }

    /// Adds an entry to the room's stream; returns its id.
    pub async fn add(&self, room: &str, entry: &RoomEntry) -> Result<StreamId, RedisUnavailable> {
        let key = self.stream_key(room);
        let mut command = redis::cmd("XADD");
        command
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.history)
            .arg("*");
        let (kind, user, text, time) = match entry {
            RoomEntry::Message(m) => (
                "message",
                ChatUser {
                    uid: m.uid.clone(),
                    username: m.username.clone(),
                },
                m.message.as_str(),
                m.time,
            ),
            RoomEntry::Join(u) => ("join", u.clone(), "", crate::auth::unix_now()),
            RoomEntry::Leave(u) => ("leave", u.clone(), "", crate::auth::unix_now()),
        };
        command
            .arg("kind")
            .arg(kind)
            .arg("uid")
            .arg(&user.uid)
            .arg("username")
            .arg(&user.username)
            .arg("message")
            .arg(text)
            .arg("time")
            .arg(time);
        // XADD is not idempotent, and a connection that breaks after sending it leaves
        // open whether it ran: the entry carries a nonce, and a retry first looks for it.
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        command.arg("nonce").arg(&nonce);
        let id: String = add_once(&self.link, &key, &command, &nonce).await?;
        self.trim_by_age(&key).await;
        self.parse_id(&id)
    }

    /// The stream's newest and newest-deleted ids.
    pub async fn state(&self, room: &str) -> Result<StreamState, RedisUnavailable> {
        stream_state(&self.link, &self.stream_key(room)).await
    }

    /// Up to `max` entries after `after` and up to `until`, oldest first.
    pub async fn range(
        &self,
        room: &str,
        after: StreamId,
        until: StreamId,
        max: usize,
    ) -> Result<Vec<(StreamId, RoomEntry)>, RedisUnavailable> {
        let mut command = redis::cmd("XRANGE");
        command
            .arg(self.stream_key(room))
            .arg(format!("({after}"))
            .arg(until.to_string())
            .arg("COUNT")
            .arg(max);
        let reply: StreamRangeReply = query(&self.link, &command).await?;
        Ok(reply.ids.iter().filter_map(parse_entry).collect())
    }

    /// Marks `users` as present through this relay, and forgets expired entries.
    pub async fn mark_present(
        &self,
        room: &str,
        users: &[ChatUser],
    ) -> Result<(), RedisUnavailable> {
        let key = self.presence_key(room);
        let expires = now_ms() + self.presence_ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(expires)
                .arg(self.member(user))
                .ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(self.presence_ttl.as_millis() as u64 * 2)
            .ignore();
        let mut conn = self.link.connection().await?;
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.link.unavailable(e))
    }

    /// Removes the entries that were not refreshed in time (their relay died or lost
    /// Redis) and returns the people who are now gone from the room: each removed by
    /// exactly one relay (ZREM answers 1 once), so each `leave` is announced once.
    pub async fn sweep_expired(&self, room: &str) -> Result<Vec<ChatUser>, RedisUnavailable> {
        let script = redis::Script::new(SWEEP_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation.key(self.presence_key(room)).arg(now_ms());
        let mut conn = self.link.connection().await?;
        let removed: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.link.unavailable(e))?;
        let still_here = self.members(room).await?;
        let mut gone: Vec<ChatUser> = removed
            .iter()
            .filter_map(|m| serde_json::from_str::<(String, String, String)>(m).ok())
            .map(|(_, uid, username)| ChatUser { uid, username })
            .filter(|user| !still_here.iter().any(|(_, u)| u.uid == user.uid))
            .collect();
        gone.sort_by(|a, b| a.uid.cmp(&b.uid));
        gone.dedup_by(|a, b| a.uid == b.uid);
        Ok(gone)
    }

    /// Removes `user`'s entry of this relay.
    pub async fn mark_absent(&self, room: &str, user: &ChatUser) -> Result<(), RedisUnavailable> {
        let mut command = redis::cmd("ZREM");
        command.arg(self.presence_key(room)).arg(self.member(user));
        query::<i64>(&self.link, &command).await.map(|_| ())
    }

    /// Whether `user` is present through another relay.
    pub async fn present_elsewhere(
        &self,
        room: &str,
        user: &ChatUser,
    ) -> Result<bool, RedisUnavailable> {
        Ok(self
            .members(room)
            .await?
            .iter()
            .any(|(relay, u)| u.uid == user.uid && *relay != self.relay_id))
    }

    /// Everyone present in the room, through any relay.
    pub async fn presence(&self, room: &str) -> Result<Vec<ChatUser>, RedisUnavailable> {
        let mut users: Vec<ChatUser> = self
            .members(room)
            .await?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        sort_users(&mut users);
        Ok(users)
    }

    async fn members(&self, room: &str) -> Result<Vec<(String, ChatUser)>, RedisUnavailable> {
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(self.presence_key(room))
            .arg(now_ms())
            .arg("+inf");
        let members: Vec<String> = query(&self.link, &command).await?;
        Ok(members
            .iter()
            .filter_map(|m| serde_json::from_str::<(String, String, String)>(m).ok())
            .map(|(relay, uid, username)| (relay, ChatUser { uid, username }))
            .collect())
    }

    fn member(&self, user: &ChatUser) -> String {
        serde_json::json!([self.relay_id, user.uid, user.username]).to_string()
    }
}

/// Reads one stream entry; entries this relay cannot read are skipped.
fn parse_entry(entry: &RedisEntry) -> Option<(StreamId, RoomEntry)> {
    let id = entry.id.parse().ok()?;
    let text = |field: &str| entry.get::<String>(field).unwrap_or_default();
    let user = ChatUser {
        uid: text("uid"),
        username: text("username"),
    };
    let parsed = match text("kind").as_str() {
        "message" => RoomEntry::Message(ChatMessage {
            uid: user.uid,
            username: user.username,
            message: text("message"),
            time: entry.get::<u64>("time").unwrap_or(0),
        }),
        "join" => RoomEntry::Join(user),
        "leave" => RoomEntry::Leave(user),
        _ => return None,
    };
    Some((id, parsed))
}

/// Keeps only the messages of a range, for a viewer catching up.
pub fn messages(entries: Vec<(StreamId, RoomEntry)>) -> Vec<Entry> {
    entries
        .into_iter()
        .filter_map(|(id, entry)| match entry {
            RoomEntry::Message(m) => Some((id, m)),
            _ => None,
        })
        .collect()
}

/// Follows the room's stream into `room` until `stop`.
pub async fn follow(rooms: Arc<RedisRooms>, room: Arc<Room>, stop: CancellationToken) {
    let key = rooms.stream_key(&room.id);
    let mut last = room.latest();
    let mut backoff = Backoff::new();
    let mut down = false;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            conn = connect_blocking(&rooms.link) => conn,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                fail(&room, &mut down, &e.to_string());
                if sleep_or_stop(backoff.next_delay(), &stop).await {
                    return;
                }
                continue;
            }
        };
        if down {
            down = false;
            room.notify(Notice::Status(
                StatusKind::BackendRestored,
                "Redis is back; the room is live again".into(),
            ));
            tokio::spawn(refresh_once(rooms.clone(), room.clone()));
        }
        backoff.reset();
        loop {
            let read = tokio::select! {
                () = stop.cancelled() => return,
                read = read_after(&mut conn, &key, last, READ_COUNT) => read,
            };
            match read {
                Ok(entries) => {
                    let mut presence_changed = false;
                    // Messages go into the room together (one wake-up of its viewers), those
                    // before a join or leave ahead of its notice.
                    let mut messages = Vec::new();
                    for (id, entry) in entries.iter().filter_map(parse_entry) {
                        last = id;
                        let notice = match entry {
                            RoomEntry::Message(message) => {
                                messages.push((id, message));
                                continue;
                            }
                            RoomEntry::Join(user) => Notice::Join(user),
                            RoomEntry::Leave(user) => Notice::Leave(user),
                        };
                        room.append_all(messages.drain(..));
                        presence_changed = true;
                        room.notify(notice);
                    }
                    room.append_all(messages);
                    if presence_changed && let Ok(users) = rooms.presence(&room.id).await {
                        room.notify(Notice::Presence(users));
                    }
                }
                Err(e) => {
                    fail(&room, &mut down, &e.to_string());
                    if sleep_or_stop(backoff.next_delay(), &stop).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

fn fail(room: &Room, down: &mut bool, error: &str) {
    if *down {
        return;
    }
    *down = true;
    tracing::warn!(room = %room.id, "chat room lost Redis: {error}");
    room.notify(Notice::Status(
        StatusKind::BackendReconnecting,
        "lost the connection to Redis; reconnecting (messages cannot be sent meanwhile)".into(),
    ));
}

/// Sleeps; true when stopped meanwhile.
async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

async fn refresh_once(rooms: Arc<RedisRooms>, room: Arc<Room>) {
    if let Err(e) = rooms.mark_present(&room.id, &room.people_here()).await {
        tracing::debug!(room = %room.id, "presence not refreshed: {e}");
        return;
    }
    // People whose relay stopped refreshing them (a crash, a partition) leave the room
    // for everyone, through the stream every relay follows.
    match rooms.sweep_expired(&room.id).await {
        Ok(gone) => {
            for user in gone {
                if let Err(e) = rooms.add(&room.id, &RoomEntry::Leave(user)).await {
                    tracing::debug!(room = %room.id, "leave not announced: {e}");
                }
            }
        }
        Err(e) => tracing::debug!(room = %room.id, "presence not swept: {e}"),
    }
}

/// Removes presence entries whose expiry has passed; returns those it removed.
const SWEEP_SCRIPT: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local removed = {}
for _, member in ipairs(expired) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    table.insert(removed, member)
  end
end
return removed
";

/// Refreshes this relay's presence entries (and sweeps expired ones) until `stop`.
pub async fn refresh_presence(rooms: Arc<RedisRooms>, room: Arc<Room>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(rooms.presence_ttl / 3);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => refresh_once(rooms.clone(), room.clone()).await,
        }
    }
}

/// Entries a retried XADD looks back through for its nonce (other writers may have added
/// some since).
const NONCE_LOOKBACK: usize = 100;

/// Runs `xadd` once; if the connection broke, adds again only when the stream does not
/// already hold the entry with `nonce` (so a message is never stored twice).
async fn add_once(
    link: &RedisLink,
    key: &str,
    xadd: &redis::Cmd,
    nonce: &str,
) -> Result<String, RedisUnavailable> {
    let mut conn = link.connection().await?;
    match xadd.query_async::<String>(&mut conn).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => {
            let mut conn = link.connection().await?;
            let recent: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(NONCE_LOOKBACK)
                .query_async(&mut conn)
                .await
                .map_err(|e| link.unavailable(e))?;
            let landed = recent
                .ids
                .into_iter()
                .find(|entry| entry.get::<String>("nonce").as_deref() == Some(nonce));
            match landed {
                Some(entry) => Ok(entry.id),
                None => xadd
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| link.unavailable(e)),
            }
        }
        other => other.map_err(|e| link.unavailable(e)),
    }
}
