//! The chat client as a state machine without I/O: it is told what the socket did (opened,
//! a text frame, closed) and answers with the frames to send and the events for the app.
//! The driver ([`crate::client`]) feeds it from a [`crate::Transport`]; the tests feed it
//! by hand, so every rule of the protocol here is tested without a network or a clock.
//!
//! The rules, from PROTOCOL.md:
//! - **Catch-up, exactly once.** The client remembers the id of the last message it
//!   handed to the app and reconnects with `?since=<id>`; a message whose id is not after
//!   it (a replay overlapping what was seen) is dropped. A `gap` moves the mark forward.
//! - **Acknowledged sends.** Each message goes with a `client_id` and stays pending until
//!   the relay's `sent` names it; after every reconnect the pending ones go again, in order,
//!   with the same ids (the relay stores each at most once). A refusal by the backend
//!   (Redis down) keeps the message pending, holds later sends behind it so the room keeps
//!   their order, and sends it again on `backend_restored` or the next connection; any
//!   other refusal (too large, rate limited, bad frame) ends that send with an error.
//! - **Reconnect or stop** per close code ([`ChatError::should_reconnect`]), waiting per
//!   [`Backoff`] (exponential with jitter, reset after a healthy connection).

use std::time::Duration;

use common::chat::{ChatBody, ChatEvent, ChatMessage, ChatRequest, ChatUser, ClientId};
use common::query::ChatQuery;
use common::server::{ErrorCode, StatusKind, StreamEvent};
use common::{ClientFrame, EndpointQuery, Position, ResumeQuery, ServerFrame};

use crate::backoff::Backoff;
use crate::close::ChatError;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// Nothing beyond what the platform adds itself: in a browser, the relay's `X-Token`
    /// cookie of a same-site login.
    #[default]
    Ambient,
    /// A JWT: natively an `Authorization: Bearer` header; in a browser (which cannot set
    /// headers on a WebSocket) a `bearer.<jwt>` entry in `Sec-WebSocket-Protocol`, beside
    /// `opsdeck`.
    Bearer(String),
    /// A JWT sent as the `X-Token` cookie (native clients; a browser sends its own cookies).
    Cookie(String),
}

impl std::fmt::Debug for Auth {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ambient => "Ambient",
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Cookie(_) => "Cookie(<redacted>)",
        })
    }
}

/// What the client connects to and as whom.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The room's WebSocket URL, e.g. `wss://ops.example.com/ws/chat/ops`.
    pub url: String,
    pub auth: Auth,
    /// The `Origin` header to send (native only; a browser sends its own). The relay
    /// refuses an Origin outside `allowed_origins`; sending none is allowed.
    pub origin: Option<String>,
    /// The id of the last message the app already has: the first connection catches up
    /// from there (none: the room's recent history, as the relay sends it).
    pub since: Option<String>,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Self {
            url: url.into(),
            auth,
            origin: None,
            since: None,
        }
    }
}

/// One connection attempt: the URL (with the catch-up position) and the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub url: String,
    pub auth: Auth,
    pub origin: Option<String>,
}

/// The connection's state, for the app to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Opening a socket; `attempt` counts retries since the last healthy connection.
    Connecting { attempt: u32 },
    /// The relay said `connected`: messages flow, sends go out at once.
    Live,
    /// The connection dropped; the next attempt starts after `delay`.
    Reconnecting {
        delay: Duration,
        attempt: u32,
        error: ChatError,
    },
    /// Stopped for good (until the app connects again).
    Closed(ChatError),
}

/// What happened, for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    State(ConnState),
    /// A message, new to this client (never one it was given before). `id` is its position
    /// in the room; only a relay older than ids omits it.
    Message {
        id: Option<String>,
        message: ChatMessage,
    },
    /// Someone opened the room.
    Join(ChatUser),
    /// Someone left the room.
    Leave(ChatUser),
    /// Everyone in the room now (on connect and after each join or leave).
    Presence(Vec<ChatUser>),
    /// Who the relay says this client is (asked on every connect).
    Me(ChatUser),
    /// The message sent with `client_id` is stored as `id`.
    Acked {
        client_id: ClientId,
        id: String,
    },
    /// The message sent with `client_id` was not stored by this send; with `retrying` the
    /// client sends it again by itself (the backend was down), else that send failed.
    Refused {
        client_id: ClientId,
        code: ErrorCode,
        message: String,
        retrying: bool,
    },
    /// The relay's news about the room (`backend_reconnecting`, `backend_restored`, ...).
    Status {
        kind: StatusKind,
        message: String,
    },
    /// The catch-up position was no longer kept: messages before `position` are missing.
    Gap {
        message: String,
        position: String,
    },
    /// A refusal not about one message (e.g. a `bad_frame`).
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// The answer to a text frame: frames to send (in order), then events for the app.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub frames: Vec<String>,
    pub events: Vec<Event>,
}

/// What to do after a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Wait `delay`, then connect again.
    Reconnect { delay: Duration, error: ChatError },
    /// Stop; every pending send fails with `error`.
    Stop(ChatError),
}

/// A message sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    client_id: ClientId,
    text: String,
    /// The backend refused it: it goes again on `backend_restored` or the next connection,
    /// and later sends wait behind it.
    held: bool,
}

impl Pending {
    fn frame(&self) -> String {
        ClientFrame::Chat(ChatRequest::Message {
            message: self.text.clone(),
            client_id: Some(self.client_id.clone()),
        })
        .to_json()
    }
}

/// The chat client's state.
#[derive(Debug, Clone)]
pub struct Machine {
    config: ClientConfig,
    /// The id of the last message handed to the app.
    since: Option<Position>,
    pending: Vec<Pending>,
    backoff: Backoff,
    live: bool,
}

impl Machine {
    pub fn new(config: ClientConfig) -> Self {
        let since = config
            .since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Position::from);
        Self {
            config,
            since,
            pending: Vec::new(),
            backoff: Backoff::new(),
            live: false,
        }
    }

    /// The next connection: the room URL with `since=<last id>` (through
    /// `common::query::ChatQuery`), and the credentials.
    pub fn connect_request(&self) -> ConnectRequest {
        let query = ChatQuery {
            resume: ResumeQuery {
                since: self.since.clone(),
                ..ResumeQuery::default()
            },
        }
        .to_query();
        let mut url = self.config.url.clone();
        if !query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query);
        }
        ConnectRequest {
            url,
            auth: self.config.auth.clone(),
            origin: self.config.origin.clone(),
        }
    }

    /// The state to show while connecting.
    pub fn connecting(&self) -> ConnState {
        ConnState::Connecting {
            attempt: self.backoff.attempt(),
        }
    }

    /// Whether the relay said `connected` on the current socket.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The id of the last message handed to the app.
    pub fn since(&self) -> Option<&str> {
        self.since.as_ref().map(Position::as_str)
    }

    /// The client ids of the messages not yet acknowledged, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &ClientId> {
        self.pending.iter().map(|p| &p.client_id)
    }

    /// Queues a message; returns the frame to send now when the room is live and nothing
    /// refused is waiting before it (else it goes when that is resolved or on reconnect).
    pub fn send(&mut self, client_id: ClientId, text: String) -> Option<String> {
        // The same id again ("send again" after a refusal): one pending entry, sent now.
        if let Some(at) = self.pending.iter().position(|p| p.client_id == client_id) {
            let earlier_held = self.pending[..at].iter().any(|p| p.held);
            let message = &mut self.pending[at];
            message.held = false;
            return (self.live && !earlier_held).then(|| message.frame());
        }
        let message = Pending {
            client_id,
            text,
            held: false,
        };
        let now = self.live && !self.pending.iter().any(|p| p.held);
        let frame = now.then(|| message.frame());
        self.pending.push(message);
        frame
    }

    /// Every pending message again, in order (after `connected` or `backend_restored`).
    fn resend_all(&mut self) -> Vec<String> {
        self.pending
            .iter_mut()
            .map(|p| {
                p.held = false;
                p.frame()
            })
            .collect()
    }

    /// Takes in a text frame from the relay.
    pub fn on_text(&mut self, text: &str) -> Step {
        let mut step = Step::default();
        let Ok(frame) = ServerFrame::parse(text) else {
            // A frame from a newer relay that this client does not know: ignore it.
            return step;
        };
        match frame {
            ServerFrame::Event(StreamEvent::Connected { .. }) => {
                self.live = true;
                step.frames
                    .push(ClientFrame::Chat(ChatRequest::UserInfo).to_json());
                step.frames.extend(self.resend_all());
                step.events.push(Event::State(ConnState::Live));
            }
            ServerFrame::Event(StreamEvent::Sent { client_id, id }) => {
                self.pending.retain(|p| p.client_id != client_id);
                step.events.push(Event::Acked { client_id, id });
            }
            ServerFrame::Event(StreamEvent::Error {
                code,
                message,
                client_id: Some(client_id),
            }) => {
                let retrying = code == ErrorCode::Backend;
                match self
                    .pending
                    .iter_mut()
                    .position(|p| p.client_id == client_id)
                {
                    Some(at) if retrying => self.pending[at].held = true,
                    Some(at) => {
                        self.pending.remove(at);
                    }
                    None => return step,
                }
                step.events.push(Event::Refused {
                    client_id,
                    code,
                    message,
                    retrying,
                });
            }
            ServerFrame::Event(StreamEvent::Error { code, message, .. }) => {
                step.events.push(Event::Error { code, message });
            }
            ServerFrame::Event(StreamEvent::Status { kind, message }) => {
                if kind == StatusKind::BackendRestored && self.live {
                    step.frames.extend(self.resend_all());
                }
                step.events.push(Event::Status { kind, message });
            }
            ServerFrame::Event(StreamEvent::Gap { message, position }) => {
                self.since = Some(position.clone());
                step.events.push(Event::Gap {
                    message,
                    position: position.0,
                });
            }
            ServerFrame::Event(_) => {}
            ServerFrame::Chat(event) => step.events.extend(self.on_chat(event)),
        }
        step
    }

    fn on_chat(&mut self, event: ChatEvent) -> Option<Event> {
        Some(match event.body {
            ChatBody::Message(message) => {
                if let Some(id) = &event.id {
                    let id = Position::from(id.as_str());
                    if !is_after(&id, self.since.as_ref()) {
                        return None;
                    }
                    self.since = Some(id);
                }
                Event::Message {
                    id: event.id,
                    message,
                }
            }
            ChatBody::UserInfo(user) => Event::Me(user),
            ChatBody::Join(user) => Event::Join(user),
            ChatBody::Leave(user) => Event::Leave(user),
            ChatBody::Presence { users } => Event::Presence(users),
        })
    }

    /// The connection ended with `error` after being open for `open_for` (`None`: it never
    /// opened). `random` in `[0, 1)` sets the jitter.
    pub fn on_closed(&mut self, error: ChatError, open_for: Option<Duration>, random: f64) -> Next {
        self.live = false;
        self.backoff.connection_ended(open_for);
        if error.should_reconnect() {
            Next::Reconnect {
                delay: self.backoff.next_delay(random),
                error,
            }
        } else {
            Next::Stop(error)
        }
    }

    /// Starts the reconnect schedule over (the user asked to connect now).
    pub fn reset_backoff(&mut self) {
        self.backoff.reset();
    }

    /// The client stops: forgets the pending messages and returns their ids (their sends
    /// fail).
    pub fn stop(&mut self) -> Vec<ClientId> {
        self.live = false;
        self.pending.drain(..).map(|p| p.client_id).collect()
    }
}

/// Whether message id `id` comes after `since` (Redis-stream ids `<ms>-<seq>`, or bare
/// numbers, compared as numbers; an id of another shape is always taken).
fn is_after(id: &Position, since: Option<&Position>) -> bool {
    match (since.and_then(Position::entry_id), id.entry_id()) {
        (Some(since), Some(id)) => id > since,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::StreamKind;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn machine() -> Machine {
        Machine::new(ClientConfig::new(
            "ws://relay/ws/chat/ops",
            Auth::Bearer("jwt".into()),
        ))
    }

    fn connected() -> String {
        ServerFrame::Event(StreamEvent::Connected {
            stream: StreamKind::Chat,
            session: "ops".into(),
            position: Position::default(),
            resumed: false,
        })
        .to_json()
    }

    fn message(id: &str, text: &str) -> String {
        ServerFrame::Chat(ChatEvent {
            id: Some(id.into()),
            time: 1,
            body: ChatBody::Message(ChatMessage {
                uid: "7".into(),
                username: "alice".into(),
                message: text.into(),
                time: 1,
            }),
        })
        .to_json()
    }

    fn texts(step: &Step) -> Vec<String> {
        step.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { message, .. } => Some(message.message.clone()),
                _ => None,
            })
            .collect()
    }

    fn sent(client_id: &str, id: &str) -> String {
        ServerFrame::Event(StreamEvent::Sent {
            client_id: cid(client_id),
            id: id.into(),
        })
        .to_json()
    }

    fn cid(id: &str) -> ClientId {
        ClientId::new(id).unwrap()
    }

    fn message_frame(text: &str, id: &str) -> String {
        ClientFrame::Chat(ChatRequest::Message {
            message: text.into(),
            client_id: Some(cid(id)),
        })
        .to_json()
    }

    fn close(m: &mut Machine) -> Next {
        m.on_closed(ChatError::from_close(1006, ""), Some(Duration::ZERO), 0.0)
    }

    #[test]
    fn the_url_carries_the_last_id_seen_and_keeps_its_own_query() {
        let mut m = machine();
        assert_eq!(m.connect_request().url, "ws://relay/ws/chat/ops");
        m.on_text(&connected());
        m.on_text(&message("1700000000000-3", "hi"));
        assert_eq!(
            m.connect_request().url,
            "ws://relay/ws/chat/ops?since=1700000000000-3"
        );
        let mut config = ClientConfig::new("ws://relay/ws/chat/ops?x=1", Auth::Ambient);
        config.since = Some("5-0".into());
        assert_eq!(
            Machine::new(config).connect_request().url,
            "ws://relay/ws/chat/ops?x=1&since=5-0"
        );
    }

    #[test]
    fn catch_up_hands_each_message_over_exactly_once() {
        let mut m = machine();
        m.on_text(&connected());
        let mut seen = Vec::new();
        for (id, text) in [("10-0", "a"), ("10-1", "b")] {
            seen.extend(texts(&m.on_text(&message(id, text))));
        }
        close(&mut m);
        assert!(m.connect_request().url.ends_with("?since=10-1"));
        m.on_text(&connected());
        // The relay replays from before what we have (an overlap), then goes on.
        for (id, text) in [("10-0", "a"), ("10-1", "b"), ("11-0", "c"), ("11-0", "c")] {
            seen.extend(texts(&m.on_text(&message(id, text))));
        }
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!(m.since(), Some("11-0"));
    }

    #[test]
    fn a_gap_moves_the_catch_up_position_forward() {
        let mut m = machine();
        m.on_text(&connected());
        let gap = ServerFrame::Event(StreamEvent::Gap {
            message: "trimmed".into(),
            position: Position::from("20-0"),
        })
        .to_json();
        let step = m.on_text(&gap);
        assert!(matches!(&step.events[..], [Event::Gap { position, .. }] if position == "20-0"));
        assert_eq!(m.since(), Some("20-0"));
    }

    #[test]
    fn sends_wait_for_the_room_and_pending_ones_go_again_after_a_reconnect() {
        let mut m = machine();
        // Before `connected`: queued, not sent.
        assert_eq!(m.send(cid("a"), "one".into()), None);
        let step = m.on_text(&connected());
        assert_eq!(
            step.frames,
            [
                ClientFrame::Chat(ChatRequest::UserInfo).to_json(),
                message_frame("one", "a")
            ]
        );
        assert_eq!(step.events, [Event::State(ConnState::Live)]);
        assert_eq!(
            m.send(cid("b"), "two".into()),
            Some(message_frame("two", "b"))
        );
        let step = m.on_text(&sent("a", "30-0"));
        assert_eq!(
            step.events,
            [Event::Acked {
                client_id: cid("a"),
                id: "30-0".into()
            }]
        );
        // The connection drops before "b" is acknowledged: it goes again, same id.
        assert!(matches!(close(&mut m), Next::Reconnect { .. }));
        assert_eq!(m.send(cid("c"), "three".into()), None);
        let step = m.on_text(&connected());
        assert_eq!(
            step.frames[1..],
            [message_frame("two", "b"), message_frame("three", "c")]
        );
        m.on_text(&sent("b", "31-0"));
        m.on_text(&sent("c", "32-0"));
        assert_eq!(m.pending().count(), 0);
    }

    #[test]
    fn a_backend_refusal_holds_the_message_and_later_ones_until_redis_is_back() {
        let mut m = machine();
        m.on_text(&connected());
        m.send(cid("a"), "one".into());
        let refusal = ServerFrame::Event(StreamEvent::Error {
            code: ErrorCode::Backend,
            message: "NOT sent".into(),
            client_id: Some(cid("a")),
        })
        .to_json();
        let step = m.on_text(&refusal);
        assert!(matches!(
            &step.events[..],
            [Event::Refused { retrying: true, .. }]
        ));
        // Held behind "a", to keep the room's order.
        assert_eq!(m.send(cid("b"), "two".into()), None);
        let restored = ServerFrame::Event(StreamEvent::Status {
            kind: StatusKind::BackendRestored,
            message: "back".into(),
        })
        .to_json();
        let step = m.on_text(&restored);
        assert_eq!(
            step.frames,
            [message_frame("one", "a"), message_frame("two", "b")]
        );
    }

    #[test]
    fn sending_a_pending_id_again_keeps_one_entry() {
        let mut m = machine();
        m.on_text(&connected());
        m.send(cid("a"), "one".into());
        assert_eq!(
            m.send(cid("a"), "one".into()),
            Some(message_frame("one", "a"))
        );
        assert_eq!(m.pending().count(), 1);
    }

    #[test]
    fn other_refusals_end_that_send() {
        let mut m = machine();
        m.on_text(&connected());
        m.send(cid("a"), "x".repeat(10));
        let refusal = ServerFrame::Event(StreamEvent::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            client_id: Some(cid("a")),
        })
        .to_json();
        let step = m.on_text(&refusal);
        assert!(matches!(
            &step.events[..],
            [Event::Refused {
                retrying: false,
                code: ErrorCode::RateLimited,
                ..
            }]
        ));
        assert_eq!(m.pending().count(), 0);
        // An error about nothing pending (an old socket's) is ignored.
        assert_eq!(m.on_text(&refusal), Step::default());
    }

    #[test]
    fn presence_joins_leaves_and_who_am_i_become_events() {
        let mut m = machine();
        let alice = ChatUser {
            uid: "7".into(),
            username: "alice".into(),
        };
        let frame = |body| {
            ServerFrame::Chat(ChatEvent {
                id: None,
                time: 1,
                body,
            })
            .to_json()
        };
        assert_eq!(
            m.on_text(&frame(ChatBody::Join(alice.clone()))).events,
            [Event::Join(alice.clone())]
        );
        assert_eq!(
            m.on_text(&frame(ChatBody::Leave(alice.clone()))).events,
            [Event::Leave(alice.clone())]
        );
        assert_eq!(
            m.on_text(&frame(ChatBody::Presence {
                users: vec![alice.clone()]
            }))
            .events,
            [Event::Presence(vec![alice.clone()])]
        );
        assert_eq!(
            m.on_text(&frame(ChatBody::UserInfo(alice.clone()))).events,
            [Event::Me(alice)]
        );
        assert_eq!(m.on_text("not json"), Step::default());
    }

    #[test]
    fn reconnect_waits_grow_to_the_cap_and_a_healthy_connection_resets_them() {
        let mut m = machine();
        let mut waits = Vec::new();
        for _ in 0..9 {
            match m.on_closed(ChatError::from_close(1006, ""), None, 0.999_999) {
                Next::Reconnect { delay, .. } => waits.push(delay.as_millis().div_ceil(500)),
                other => panic!("{other:?}"),
            }
        }
        // Whole steps (random ~1): 0.5 s doubling, capped at 30 s.
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let Next::Reconnect { delay, .. } = m.on_closed(
            ChatError::from_close(1001, ""),
            Some(crate::backoff::STABLE_AFTER),
            0.0,
        ) else {
            panic!("1001 reconnects")
        };
        assert_eq!(delay, Duration::from_millis(250));
    }

    #[test]
    fn final_closes_stop_and_fail_the_pending_sends() {
        let mut m = machine();
        m.on_text(&connected());
        m.send(cid("a"), "one".into());
        assert_eq!(
            m.on_closed(ChatError::from_close(4403, "no"), None, 0.0),
            Next::Stop(ChatError::Forbidden {
                reason: "no".into()
            })
        );
        assert_eq!(m.stop(), [cid("a")]);
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let config = ClientConfig::new("ws://x", Auth::Bearer("secret-jwt".into()));
        assert!(!format!("{config:?}").contains("secret-jwt"));
        assert!(!format!("{:?}", Auth::Cookie("secret-jwt".into())).contains("secret-jwt"));
    }
}
