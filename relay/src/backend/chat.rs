//! Chat rooms: `/ws/chat/{room}`, in the classic frames of `common::chat`.
//!
//! Rooms are listed in the config (`[[chat_rooms]]`) and opened by permission
//! (`[[grants]] chat = [...]`). Who speaks is the token's user, never something the client
//! says. Every message carries its id; a client that reconnects with `?since=<id>` (or
//! `?position=<id>`) gets exactly the messages it missed, in order and once, then live ones;
//! when some of those were trimmed it gets a `gap` frame first. New connections without
//! `since` start live. On connect, and after each join or leave, the client gets the list of
//! people present.
//!
//! `room` is the room as this relay holds it, `hub` the rooms and their store (in memory, or
//! Redis streams shared by every relay: `redis_room`), `rate` the per-user rate limit.

pub mod hub;
pub mod rate;
pub mod redis_room;
pub mod room;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use common::chat::{ChatBody, ChatEvent, ChatRequest, ChatUser};
use common::server::{StatusKind, StreamEvent};
use common::{ClientFrame, CloseCode, Position, StreamKind};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use self::hub::{ChatError, ChatHub, Membership};
use self::room::{Entry, Notice, Read, Room, message_json};
use super::stream_id::StreamId;
use super::{Attachment, Hello, Inbound, InputRefused, Opened, Outbound};
use crate::auth::unix_now;
use crate::close::Close;
use crate::redis_link::Backoff;

/// Messages queued for the browser at a time.
const BATCH: usize = 200;

/// Joins `room` (configured; the caller checked) as `user`: the messages after `since`,
/// exactly once, then live ones; without `since`, live ones only.
pub async fn join(
    hub: &Arc<ChatHub>,
    room: &str,
    user: ChatUser,
    since: Option<StreamId>,
) -> Result<Opened, ChatError> {
    let mut membership = hub.join(room).await?;
    let room = membership.room().clone();
    // Listen before announcing, so this connection sees its own arrival.
    let notices = room.subscribe_notices();
    let latest = room.watch_latest();
    // A `since` newer than anything the room holds comes from before a restart that
    // lost the room's history (a relay without Redis, or Redis without persistence):
    // say so plainly and go on live.
    let mut lost_history = None;
    let cursor = match since {
        Some(since) => {
            let last = hub.last_id(&room).await?;
            if since > last {
                lost_history = Some(last);
                last
            } else {
                since
            }
        }
        None => room.latest(),
    };
    hub.arrive(&mut membership, user.clone()).await;
    let people = hub.presence(&room).await;
    let hello = Hello {
        stream: StreamKind::Chat,
        session: room.id.clone(),
        position: Position(cursor.to_string()),
        resumed: since.is_some(),
    };
    let mut pending = VecDeque::new();
    if let Some(last) = lost_history {
        pending.push_back(Outbound::Text(
            StreamEvent::Gap {
                message: "the room's history no longer reaches your last message (the room was restarted); messages sent meanwhile are lost".into(),
                position: Position(last.to_string()),
            }
            .into(),
        ));
    }
    pending.push_back(chat_frame(None, ChatBody::Presence { users: people }));
    let attachment = ChatAttachment {
        hub: hub.clone(),
        room,
        _membership: membership,
        user,
        cursor,
        checked_trim: false,
        latest,
        notices,
        pending,
        backoff: Backoff::new(),
        redis_down: false,
    };
    Ok(Opened::new(hello, attachment))
}

fn chat_frame(id: Option<StreamId>, body: ChatBody) -> Outbound {
    Outbound::Text(
        ChatEvent {
            id: id.map(|id| id.to_string()),
            time: unix_now(),
            body,
        }
        .into(),
    )
}

fn message_frame((id, message): Entry) -> Outbound {
    Outbound::Json(message_json(id, message))
}

/// One connection to a room.
struct ChatAttachment {
    hub: Arc<ChatHub>,
    room: Arc<Room>,
    _membership: Membership,
    user: ChatUser,
    /// Id of the last message sent to this client.
    cursor: StreamId,
    /// Whether catching up has checked for trimmed messages yet.
    checked_trim: bool,
    latest: watch::Receiver<StreamId>,
    notices: broadcast::Receiver<Notice>,
    pending: VecDeque<Outbound>,
    backoff: Backoff,
    redis_down: bool,
}

impl ChatAttachment {
    /// Queues what there is to send after the cursor; false when there is nothing.
    async fn fill(&mut self) -> bool {
        match self.fill_from_ring() {
            Ok(filled) => filled,
            Err(floor) => {
                // Boxed: a Redis read, rare, is not carried in every idle viewer's wait.
                Box::pin(self.catch_up(floor)).await;
                true
            }
        }
    }

    /// Queues the frames this relay's copy of the room holds after the cursor, without
    /// waiting: whether there were any, or the copy's floor when the cursor is older.
    fn fill_from_ring(&mut self) -> Result<bool, StreamId> {
        self.latest.borrow_and_update();
        match self.room.read_after(self.cursor, BATCH) {
            Read::Entries(frames) => {
                let Some((last, _)) = frames.last() else {
                    return Ok(false);
                };
                self.cursor = *last;
                self.pending
                    .extend(frames.into_iter().map(|(_, json)| Outbound::Json(json)));
                Ok(true)
            }
            Read::Older { floor } => Err(floor),
        }
    }

    /// Reads messages older than this relay's copy of the room (Redis), or reports that they
    /// are gone (memory). On a Redis failure, waits and lets the next call try again.
    async fn catch_up(&mut self, floor: StreamId) {
        let check = !self.checked_trim;
        match self
            .hub
            .catch_up(&self.room, self.cursor, floor, check)
            .await
        {
            Ok(found) => {
                self.checked_trim = true;
                if self.redis_down {
                    self.redis_down = false;
                    self.backoff.reset();
                }
                if let Some(gap) = found.gap {
                    self.pending.push_back(Outbound::Text(
                        StreamEvent::Gap {
                            message: "some messages you missed are no longer kept; the ones still kept follow"
                                .into(),
                            position: Position(gap.to_string()),
                        }
                        .into(),
                    ));
                }
                self.cursor = found.cursor;
                self.pending
                    .extend(found.messages.into_iter().map(message_frame));
            }
            Err(e) => {
                if !self.redis_down {
                    self.redis_down = true;
                    self.pending.push_back(Outbound::Text(
                        StreamEvent::Status {
                            kind: StatusKind::BackendReconnecting,
                            message: format!(
                                "cannot read the messages you missed yet ({e}); retrying"
                            ),
                        }
                        .into(),
                    ));
                }
                tokio::time::sleep(self.backoff.next_delay()).await;
            }
        }
    }
}

fn notice_frame(notice: Notice) -> Outbound {
    match notice {
        Notice::Join(user) => chat_frame(None, ChatBody::Join(user)),
        Notice::Leave(user) => chat_frame(None, ChatBody::Leave(user)),
        Notice::Presence(users) => chat_frame(None, ChatBody::Presence { users }),
        Notice::Status(kind, message) => {
            Outbound::Text(StreamEvent::Status { kind, message }.into())
        }
    }
}

#[async_trait]
impl Attachment for ChatAttachment {
    async fn next(&mut self) -> Outbound {
        loop {
            if let Some(out) = self.pending.pop_front() {
                return out;
            }
            // Cancel-safe: the cursor moves only when messages are queued, and a dropped
            // wait loses nothing (the ring and the watch still hold what it waited for).
            if self.fill().await {
                continue;
            }
            tokio::select! {
                _ = self.latest.changed() => {}
                notice = self.notices.recv() => match notice {
                    Ok(notice) => return notice_frame(notice),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        return Outbound::Close(Close::new(CloseCode::GoingAway, "the room closed; reconnect"));
                    }
                },
            }
        }
    }

    fn ready(&mut self) -> Option<Outbound> {
        if self.pending.is_empty() && self.fill_from_ring() != Ok(true) {
            return None;
        }
        self.pending.pop_front()
    }

    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused> {
        match input {
            Inbound::Frame(ClientFrame::Chat(ChatRequest::Message { message, client_id })) => {
                let posted = self
                    .hub
                    .post(&self.room, &self.user, message, client_id.as_ref())
                    .await;
                match (posted, client_id) {
                    (Ok(_), None) => Ok(()),
                    (Ok(id), Some(client_id)) => {
                        self.pending.push_back(Outbound::Text(
                            StreamEvent::Sent {
                                client_id,
                                id: id.to_string(),
                            }
                            .into(),
                        ));
                        Ok(())
                    }
                    (Err(e), client_id) => Err(InputRefused {
                        code: e.code(),
                        message: client_id
                            .as_ref()
                            .map_or_else(|| e.to_string(), |id| e.for_client(id)),
                        client_id,
                    }),
                }
            }
            Inbound::Frame(ClientFrame::Chat(ChatRequest::UserInfo)) => {
                self.pending
                    .push_back(chat_frame(None, ChatBody::UserInfo(self.user.clone())));
                Ok(())
            }
            Inbound::Frame(ClientFrame::Input(_)) => {
                Err(InputRefused::not_accepted("terminal input"))
            }
            Inbound::Frame(ClientFrame::Resize(_)) => Err(InputRefused::not_accepted("resize")),
            Inbound::Frame(ClientFrame::Ack(_)) => Err(InputRefused::not_accepted("ack")),
            Inbound::Binary(_) => Err(InputRefused::not_accepted("binary")),
        }
    }
}
