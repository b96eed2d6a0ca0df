//! Every chat room of this relay, and the operations on them that differ between the
//! in-memory store (one relay) and Redis (many relays).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::CloseCode;
use common::chat::{ChatMessage, ChatUser, ClientId};
use common::server::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::rate::RateLimiter;
use super::redis_room::{self, RedisRooms, RoomEntry, SendFailure};
use super::room::{Entry, Notice, Room};
use crate::backend::redis_stream::now_ms;
use crate::backend::stream_id::StreamId;
use crate::close::CloseCause;
use crate::config::ChatConfig;
use crate::metrics::Metrics;
use crate::redis_link::{RedisLink, RedisUnavailable};

/// Why a chat request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("you are sending messages too fast; wait {:.1} s and send it again", .0.as_secs_f64())]
    RateLimited(Duration),
    #[error("message of {size} bytes is larger than the limit of {limit} bytes; shorten it")]
    TooLarge { size: usize, limit: usize },
    #[error("an empty message was not sent")]
    Empty,
    #[error("your message was NOT sent: {0}; send it again when the room is back")]
    NotSent(RedisUnavailable),
    /// Only for messages with a client id: Redis failed while storing it and could not be
    /// asked again. It is stored at most once; sending it again with the same id says which.
    #[error(
        "your message is NOT confirmed: Redis failed while storing it ({0}); send it again with the same client_id: it is never stored twice, and you get its id"
    )]
    Unconfirmed(RedisUnavailable),
    #[error("the chat room cannot be opened: {0}; try again shortly")]
    Unavailable(RedisUnavailable),
}

impl CloseCause for ChatError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::NotSent(_) | Self::Unconfirmed(_) | Self::Unavailable(_) => {
                CloseCode::BackendUnavailable
            }
            Self::RateLimited(_) | Self::TooLarge { .. } | Self::Empty => CloseCode::BadRequest,
        }
    }
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Empty => ErrorCode::BadFrame,
            Self::NotSent(_) | Self::Unconfirmed(_) | Self::Unavailable(_) => ErrorCode::Backend,
        }
    }

    /// What the error frame about the message sent with `client_id` says: which message,
    /// and whether it was sent.
    pub fn for_client(&self, client_id: &ClientId) -> String {
        match self {
            Self::NotSent(e) | Self::Unavailable(e) => format!(
                "your message {:?} was NOT sent: {e}; send it again with the same client_id when the room is back",
                client_id.as_str()
            ),
            Self::Unconfirmed(e) => format!(
                "your message {:?} is NOT confirmed: Redis failed while storing it ({e}); send it again with the same client_id: it is never stored twice, and you get its id",
                client_id.as_str()
            ),
            other => format!(
                "your message {:?} was NOT sent: {other}",
                client_id.as_str()
            ),
        }
    }
}

/// Older messages a viewer is catching up on, read from Redis.
pub struct CatchUp {
    pub messages: Vec<Entry>,
    /// The cursor to continue from.
    pub cursor: StreamId,
    /// Set when messages after the viewer's cursor were trimmed: continue from here.
    pub gap: Option<StreamId>,
}

pub struct ChatHub {
    rooms: Mutex<HashMap<String, Arc<RoomSlot>>>,
    redis: Option<Arc<RedisRooms>>,
    limiter: RateLimiter,
    history: usize,
    max_message_bytes: usize,
    dedupe_ttl: Duration,
    metrics: Arc<Metrics>,
}

/// A room and its connections on this relay.
pub struct RoomSlot {
    pub room: Arc<Room>,
    /// Changed only while holding the hub's lock.
    members: AtomicUsize,
    /// Stops the room's Redis reader.
    stop: CancellationToken,
}

impl ChatHub {
    pub fn new(
        config: &ChatConfig,
        redis: Option<Arc<RedisLink>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            redis: redis.map(|link| Arc::new(RedisRooms::new(link, config))),
            limiter: RateLimiter::new(config.rate_burst, config.rate_interval),
            history: config.history,
            max_message_bytes: config.max_message_bytes,
            dedupe_ttl: config.dedupe_ttl,
            metrics,
        })
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<RoomSlot>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the room for one more connection (its presence is announced by
    /// [`ChatHub::arrive`], once the connection listens).
    pub async fn join(self: &Arc<Self>, room_id: &str) -> Result<Membership, ChatError> {
        // Members are counted while holding the lock, so a room cannot be stopped between
        // being found and being joined.
        let existing = self.rooms().get(room_id).cloned().inspect(|slot| {
            slot.members.fetch_add(1, Ordering::SeqCst);
        });
        let slot = match existing {
            Some(slot) => slot,
            None => {
                // The room's newest id, so the new reader starts where history ends.
                let floor = match &self.redis {
                    Some(redis) => {
                        redis
                            .state(room_id)
                            .await
                            .map_err(ChatError::Unavailable)?
                            .last
                    }
                    None => StreamId::ZERO,
                };
                let mut rooms = self.rooms();
                let slot = match rooms.get(room_id) {
                    Some(slot) => slot.clone(),
                    None => {
                        let slot = self.start_room(room_id, floor);
                        rooms.insert(room_id.to_owned(), slot.clone());
                        slot
                    }
                };
                slot.members.fetch_add(1, Ordering::SeqCst);
                slot
            }
        };
        Ok(Membership {
            hub: self.clone(),
            slot,
            user: None,
        })
    }

    fn start_room(&self, room_id: &str, floor: StreamId) -> Arc<RoomSlot> {
        let slot = Arc::new(RoomSlot {
            room: Arc::new(Room::new(room_id, self.history, floor)),
            members: AtomicUsize::new(0),
            stop: CancellationToken::new(),
        });
        if let Some(redis) = &self.redis {
            let (room, stop) = (slot.room.clone(), slot.stop.clone());
            tokio::spawn(redis_room::follow(
                redis.clone(),
                room.clone(),
                stop.clone(),
            ));
            tokio::spawn(redis_room::refresh_presence(redis.clone(), room, stop));
        }
        self.metrics.sessions.with_label_values(&["chat"]).inc();
        slot
    }

    /// Counts `user` as present; announces them when this is their first connection.
    pub async fn arrive(&self, membership: &mut Membership, user: ChatUser) {
        let room = membership.slot.room.clone();
        membership.user = Some(user.clone());
        if !room.arrive(&user) {
            return;
        }
        match &self.redis {
            None => {
                room.notify(Notice::Join(user));
                room.notify(Notice::Presence(room.people_here()));
            }
            Some(redis) => {
                let announced = async {
                    redis
                        .mark_present(&room.id, std::slice::from_ref(&user))
                        .await?;
                    if !redis.present_elsewhere(&room.id, &user).await? {
                        redis.add(&room.id, &RoomEntry::Join(user)).await?;
                    }
                    Ok::<_, RedisUnavailable>(())
                };
                if let Err(e) = announced.await {
                    tracing::debug!(room = %room.id, "join not announced: {e}");
                }
            }
        }
    }

    fn leave(self: &Arc<Self>, slot: &Arc<RoomSlot>, user: Option<&ChatUser>) {
        let room = slot.room.clone();
        if let Some(user) = user.filter(|u| room.depart(u)) {
            match &self.redis {
                None => {
                    room.notify(Notice::Leave(user.clone()));
                    room.notify(Notice::Presence(room.people_here()));
                }
                Some(redis) => {
                    let (redis, user) = (redis.clone(), user.clone());
                    spawn(async move {
                        let announced = async {
                            redis.mark_absent(&room.id, &user).await?;
                            if !redis.present_elsewhere(&room.id, &user).await? {
                                redis.add(&room.id, &RoomEntry::Leave(user)).await?;
                            }
                            Ok::<_, RedisUnavailable>(())
                        };
                        if let Err(e) = announced.await {
                            tracing::debug!(room = %room.id, "leave not announced: {e}");
                        }
                    });
                }
            }
        }
        let mut rooms = self.rooms();
        if slot.members.fetch_sub(1, Ordering::SeqCst) > 1 || self.redis.is_none() {
            // In memory the room is its own history: it stays.
            return;
        }
        if rooms
            .get(&slot.room.id)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            rooms.remove(&slot.room.id);
            self.metrics.sessions.with_label_values(&["chat"]).dec();
        }
        slot.stop.cancel();
    }

    /// Posts a message as `user`; it reaches every viewer, the poster included, with its id.
    /// With a `client_id`, a message `user` already sent with it is not posted again: its
    /// id is returned (and no rate limit applies to that repeat).
    pub async fn post(
        &self,
        room: &Room,
        user: &ChatUser,
        text: String,
        client_id: Option<&ClientId>,
    ) -> Result<StreamId, ChatError> {
        if text.len() > self.max_message_bytes {
            return Err(ChatError::TooLarge {
                size: text.len(),
                limit: self.max_message_bytes,
            });
        }
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        if let Some(client_id) = client_id {
            let earlier = match &self.redis {
                None => room.sent_id(&(user.uid.clone(), client_id.clone()), self.dedupe_ttl),
                Some(redis) => redis
                    .sent_id(&room.id, &user.uid, client_id)
                    .await
                    .map_err(ChatError::NotSent)?,
            };
            if let Some(id) = earlier {
                return Ok(id);
            }
        }
        self.limiter
            .take(&user.uid, Instant::now())
            .map_err(ChatError::RateLimited)?;
        let message = ChatMessage {
            uid: user.uid.clone(),
            username: user.username.clone(),
            message: text,
            time: crate::auth::unix_now(),
        };
        match (&self.redis, client_id) {
            (None, None) => Ok(room.append_new(message, now_ms())),
            (None, Some(client_id)) => {
                let key = (user.uid.clone(), client_id.clone());
                Ok(room
                    .append_new_once(key, message, now_ms(), self.dedupe_ttl)
                    .0)
            }
            (Some(redis), None) => redis
                .add(&room.id, &RoomEntry::Message(message))
                .await
                .map_err(ChatError::NotSent),
            (Some(redis), Some(client_id)) => redis
                .add_message_once(&room.id, client_id, &message, self.dedupe_ttl)
                .await
                .map(|(id, _)| id)
                .map_err(|e| match e {
                    SendFailure::NotSent(e) => ChatError::NotSent(e),
                    SendFailure::Unconfirmed(e) => ChatError::Unconfirmed(e),
                }),
        }
    }

    /// Everyone in the room (through any relay, with Redis).
    pub async fn presence(&self, room: &Room) -> Vec<ChatUser> {
        match &self.redis {
            Some(redis) => match redis.presence(&room.id).await {
                Ok(users) => users,
                Err(_) => room.people_here(),
            },
            None => room.people_here(),
        }
    }

    /// The newest message id of the room, to check a client's `since`.
    pub async fn last_id(&self, room: &Room) -> Result<StreamId, ChatError> {
        match &self.redis {
            None => Ok(room.latest()),
            Some(redis) => Ok(redis
                .state(&room.id)
                .await
                .map_err(ChatError::Unavailable)?
                .last
                .max(room.latest())),
        }
    }

    /// Messages after `cursor` up to `until`, read from Redis, for a viewer whose cursor is
    /// older than this relay's copy of the room. `check_trimmed` asks whether some of them
    /// were trimmed away first.
    pub async fn catch_up(
        &self,
        room: &Room,
        cursor: StreamId,
        until: StreamId,
        check_trimmed: bool,
    ) -> Result<CatchUp, RedisUnavailable> {
        let Some(redis) = &self.redis else {
            // In memory there is nothing older than the ring: what is missing was trimmed.
            return Ok(CatchUp {
                messages: Vec::new(),
                cursor: until,
                gap: Some(until),
            });
        };
        let mut gap = None;
        let mut cursor = cursor;
        if check_trimmed && let Some(from) = redis.state(&room.id).await?.missed_after(cursor) {
            gap = Some(from);
            cursor = from;
        }
        let entries = redis
            .range(&room.id, cursor, until, redis_room::READ_COUNT)
            .await?;
        let next = if entries.len() < redis_room::READ_COUNT {
            until
        } else {
            entries.last().map_or(until, |(id, _)| *id)
        };
        Ok(CatchUp {
            messages: redis_room::messages(entries),
            cursor: next,
            gap,
        })
    }
}

fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// One connection's hold on a room; dropping it leaves (and announces the leave when it was
/// the user's last connection).
pub struct Membership {
    hub: Arc<ChatHub>,
    slot: Arc<RoomSlot>,
    user: Option<ChatUser>,
}

impl Membership {
    pub fn room(&self) -> &Arc<Room> {
        &self.slot.room
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.slot, self.user.as_ref());
    }
}
