//! A chat room as this relay holds it: its recent messages in order of id, the people
//! connected to it here, and the channels that wake its viewers.
//!
//! In memory mode the ring *is* the room's history. In Redis mode the ring is a local copy
//! of the room's stream, filled by one reader per room per relay; a viewer that needs
//! messages older than the copy reads them from Redis (see `redis_room`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::ServerFrame;
use common::chat::{ChatBody, ChatEvent, ChatMessage, ChatUser, ClientId};
use common::server::StatusKind;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::backend::stream_id::StreamId;

/// Presence and status frames queued per viewer; a viewer further behind misses some
/// (a later presence list corrects what it shows).
const NOTICE_QUEUE: usize = 256;

/// A message and its id.
pub type Entry = (StreamId, ChatMessage);

/// A message's id and its frame as every viewer gets it: serialised once when the message
/// arrives, then shared (a reference count, no copy) by every socket that sends it.
pub type Frame = (StreamId, Utf8Bytes);

/// The JSON text of the chat frame that carries `message` as `id`.
pub fn message_json(id: StreamId, message: ChatMessage) -> Utf8Bytes {
    ServerFrame::from(ChatEvent {
        id: Some(id.to_string()),
        time: message.time,
        body: ChatBody::Message(message),
    })
    .to_json()
    .into()
}

/// Things about the room that are not messages; sent live, never replayed.
#[derive(Debug, Clone)]
pub enum Notice {
    Join(ChatUser),
    Leave(ChatUser),
    Presence(Vec<ChatUser>),
    Status(StatusKind, String),
}

/// What a viewer at `cursor` can read here.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Frames of the messages after the cursor, oldest first (empty when the viewer is up
    /// to date).
    Entries(Vec<Frame>),
    /// The cursor is older than what is kept here: everything up to `floor` is not.
    Older { floor: StreamId },
}

pub struct Room {
    pub id: String,
    ring: Mutex<Ring>,
    /// The id of the newest message in the ring; viewers wait for it to change.
    latest: watch::Sender<StreamId>,
    notices: broadcast::Sender<Notice>,
    /// User id → (user, connections to this room on this relay).
    here: Mutex<HashMap<String, (ChatUser, usize)>>,
    /// Memory mode: the ids of messages recently sent with a client id.
    sent: Mutex<SentIds>,
}

/// Who sent a message with which client id: one user's ids never block another's.
pub type SentKey = (String, ClientId);

/// The messages recently sent with a client id, oldest first, at most `capacity` of them
/// and none older than the dedupe TTL.
struct SentIds {
    ids: HashMap<SentKey, StreamId>,
    order: VecDeque<(Instant, SentKey)>,
    capacity: usize,
}

impl SentIds {
    fn forget_old(&mut self, ttl: Duration, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if self.order.len() <= self.capacity && now.duration_since(*at) < ttl {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.ids.remove(&key);
            }
        }
    }
}

struct Ring {
    entries: VecDeque<Frame>,
    /// Every message with an id up to this one is not in `entries`.
    floor: StreamId,
    capacity: usize,
}

impl Room {
    pub fn new(id: &str, capacity: usize, floor: StreamId) -> Self {
        let (notices, _) = broadcast::channel(NOTICE_QUEUE);
        Self {
            id: id.to_owned(),
            ring: Mutex::new(Ring {
                entries: VecDeque::new(),
                floor,
                capacity: capacity.max(1),
            }),
            latest: watch::Sender::new(floor),
            notices,
            here: Mutex::new(HashMap::new()),
            sent: Mutex::new(SentIds {
                ids: HashMap::new(),
                order: VecDeque::new(),
                capacity: crate::config::MEMORY_DEDUPE_IDS,
            }),
        }
    }

    fn sent(&self) -> MutexGuard<'_, SentIds> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the message sent earlier with `key`, if it is still remembered.
    pub fn sent_id(&self, key: &SentKey, ttl: Duration) -> Option<StreamId> {
        let mut sent = self.sent();
        sent.forget_old(ttl, Instant::now());
        sent.ids.get(key).copied()
    }

    /// Memory mode: adds the message unless one was sent with `key` within `ttl`; returns
    /// the message's id and whether it was added now.
    pub fn append_new_once(
        &self,
        key: SentKey,
        message: ChatMessage,
        now_ms: u64,
        ttl: Duration,
    ) -> (StreamId, bool) {
        let mut sent = self.sent();
        let now = Instant::now();
        sent.forget_old(ttl, now);
        if let Some(id) = sent.ids.get(&key) {
            return (*id, false);
        }
        let id = self.append_new(message, now_ms);
        sent.ids.insert(key.clone(), id);
        sent.order.push_back((now, key));
        sent.forget_old(ttl, now);
        (id, true)
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn here(&self) -> MutexGuard<'_, HashMap<String, (ChatUser, usize)>> {
        self.here.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message with a new id made here (memory mode): returns the id.
    pub fn append_new(&self, message: ChatMessage, now_ms: u64) -> StreamId {
        let mut ring = self.ring();
        let last = ring.entries.back().map_or(ring.floor, |(id, _)| *id);
        let id = last.next_after(now_ms);
        ring.push(id, message_json(id, message));
        drop(ring);
        self.latest.send_replace(id);
        id
    }

    /// Adds messages read from Redis, oldest first, under one lock and with one wake-up
    /// of the viewers (a burst read at once reaches each socket as one write); ids not after
    /// the newest are ignored.
    pub fn append_all(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut ring = self.ring();
        let mut last = ring.entries.back().map_or(ring.floor, |(id, _)| *id);
        let mut added = false;
        for (id, message) in entries {
            if id <= last {
                continue;
            }
            ring.push(id, message_json(id, message));
            last = id;
            added = true;
        }
        drop(ring);
        if added {
            self.latest.send_replace(last);
        }
    }

    /// The newest id known here (the floor when no message is kept).
    pub fn latest(&self) -> StreamId {
        *self.latest.borrow()
    }

    /// The frames of up to `max` messages after `cursor`.
    pub fn read_after(&self, cursor: StreamId, max: usize) -> Read {
        let ring = self.ring();
        if cursor < ring.floor {
            return Read::Older { floor: ring.floor };
        }
        let start = ring.entries.partition_point(|(id, _)| *id <= cursor);
        Read::Entries(ring.entries.range(start..).take(max).cloned().collect())
    }

    pub fn watch_latest(&self) -> watch::Receiver<StreamId> {
        self.latest.subscribe()
    }

    pub fn subscribe_notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    pub fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    /// Counts a connection of `user`; true when it is their first here.
    pub fn arrive(&self, user: &ChatUser) -> bool {
        let mut here = self.here();
        let entry = here
            .entry(user.uid.clone())
            .or_insert_with(|| (user.clone(), 0));
        entry.1 += 1;
        entry.1 == 1
    }

    /// Uncounts a connection of `user`; true when it was their last here.
    pub fn depart(&self, user: &ChatUser) -> bool {
        let mut here = self.here();
        match here.get_mut(&user.uid) {
            Some(entry) if entry.1 > 1 => {
                entry.1 -= 1;
                false
            }
            Some(_) => {
                here.remove(&user.uid);
                true
            }
            None => false,
        }
    }

    /// The people connected here, by name.
    pub fn people_here(&self) -> Vec<ChatUser> {
        let mut users: Vec<ChatUser> = self.here().values().map(|(u, _)| u.clone()).collect();
        sort_users(&mut users);
        users
    }
}

impl Ring {
    fn push(&mut self, id: StreamId, frame: Utf8Bytes) {
        self.entries.push_back((id, frame));
        while self.entries.len() > self.capacity {
            if let Some((old, _)) = self.entries.pop_front() {
                self.floor = old;
            }
        }
    }
}

/// Presence lists are sorted by name, then id, so every relay shows the same order.
pub fn sort_users(users: &mut Vec<ChatUser>) {
    users.sort_by(|a, b| (&a.username, &a.uid).cmp(&(&b.username, &b.uid)));
    users.dedup_by(|a, b| a.uid == b.uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of the messages in `frames`, read back from their JSON.
    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|(id, frame)| {
                let Ok(ServerFrame::Chat(event)) = ServerFrame::parse(frame.as_str()) else {
                    panic!("not a chat frame: {frame}");
                };
                assert_eq!(event.id, Some(id.to_string()));
                match event.body {
                    ChatBody::Message(m) => m.message,
                    other => panic!("not a message: {other:?}"),
                }
            })
            .collect()
    }

    fn message(text: &str) -> ChatMessage {
        ChatMessage {
            uid: "1".into(),
            username: "a".into(),
            message: text.into(),
            time: 0,
        }
    }

    #[test]
    fn reads_after_a_cursor_are_in_order_and_trimmed_history_is_reported() {
        let room = Room::new("r", 3, StreamId::ZERO);
        let ids: Vec<StreamId> = (0..5)
            .map(|i| room.append_new(message(&i.to_string()), 1000))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(room.latest(), ids[4]);
        // Two were trimmed: a cursor before them learns where history starts.
        assert_eq!(
            room.read_after(StreamId::ZERO, 10),
            Read::Older { floor: ids[1] }
        );
        let Read::Entries(entries) = room.read_after(ids[1], 10) else {
            panic!("kept");
        };
        assert_eq!(texts(&entries), ["2", "3", "4"]);
        assert_eq!(room.read_after(ids[4], 10), Read::Entries(vec![]));
        let Read::Entries(two) = room.read_after(ids[1], 2) else {
            panic!("kept");
        };
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn ids_from_redis_are_taken_once_in_order() {
        let room = Room::new("r", 10, StreamId { ms: 5, seq: 0 });
        let mut latest = room.watch_latest();
        room.append_all([
            (StreamId { ms: 4, seq: 0 }, message("old")),
            (StreamId { ms: 6, seq: 0 }, message("new")),
            (StreamId { ms: 6, seq: 0 }, message("again")),
        ]);
        room.append_all([(StreamId { ms: 6, seq: 0 }, message("again"))]);
        room.append_all([(StreamId { ms: 7, seq: 0 }, message("newer"))]);
        let Read::Entries(entries) = room.read_after(StreamId { ms: 5, seq: 0 }, 10) else {
            panic!("kept");
        };
        assert_eq!(texts(&entries), ["new", "newer"]);
        assert!(latest.has_changed().unwrap());
        assert_eq!(*latest.borrow_and_update(), StreamId { ms: 7, seq: 0 });
    }

    #[test]
    fn a_client_id_is_stored_once_per_user_and_forgotten_beyond_the_bound() {
        let room = Room::new("r", 10, StreamId::ZERO);
        let ttl = Duration::from_secs(3600);
        let key = |uid: &str, id: &str| (uid.to_owned(), ClientId::new(id).unwrap());
        let (first, added) = room.append_new_once(key("1", "a"), message("x"), 1000, ttl);
        assert!(added);
        let (again, added) = room.append_new_once(key("1", "a"), message("x"), 1000, ttl);
        assert_eq!((again, added), (first, false));
        assert_eq!(room.sent_id(&key("1", "a"), ttl), Some(first));
        // Another user's message with the same client id is theirs.
        let (other, added) = room.append_new_once(key("2", "a"), message("y"), 1000, ttl);
        assert!(added && other != first);
        // Beyond the bound, the oldest ids are forgotten.
        for i in 0..crate::config::MEMORY_DEDUPE_IDS {
            room.append_new_once(key("3", &i.to_string()), message("z"), 1000, ttl);
        }
        assert_eq!(room.sent_id(&key("1", "a"), ttl), None);
        assert_eq!(room.sent_id(&key("2", "a"), Duration::ZERO), None);
    }

    #[test]
    fn presence_counts_connections_per_user() {
        let room = Room::new("r", 10, StreamId::ZERO);
        let alice = ChatUser {
            uid: "1".into(),
            username: "alice".into(),
        };
        assert!(room.arrive(&alice));
        assert!(!room.arrive(&alice));
        assert_eq!(room.people_here(), vec![alice.clone()]);
        assert!(!room.depart(&alice));
        assert!(room.depart(&alice));
        assert!(room.people_here().is_empty());
    }
}
