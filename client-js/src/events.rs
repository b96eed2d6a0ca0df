//! What `OpsdeckChat` listeners get: each [`Event`] of the client as plain JavaScript
//! objects (serde structs through serde-wasm-bindgen, JSON-compatible: `null` for what is
//! absent, numbers, arrays), and their TypeScript types.

use common::chat::ChatUser;
use common::server::StatusKind;
use opsdeck_client::{ChatError, ConnState, Event};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Options of `OpsdeckChat.connect`. */
export interface OpsdeckChatOptions {
  /**
   * A JWT the relay accepts (its own, or your app's under `auth.jwt_secret` /
   * `auth.jwt_public_key_file`). It travels as a `bearer.<jwt>` WebSocket subprotocol
   * beside `opsdeck`. Without it the browser's `X-Token` cookie of a same-site login is
   * used, which a page on another origin does not have.
   */
  token?: string;
  /** The id of the last message you already have: the first connection catches up from it. */
  since?: string;
}

/** Someone in the room. */
export interface ChatUser {
  uid: string;
  username: string;
}

/** A message, handed over once (never again after a reconnect). */
export interface ChatMessage {
  /** Its position in the room (`<ms>-<seq>`); null only from a relay older than ids. */
  id: string | null;
  uid: string;
  username: string;
  text: string;
  /** Unix seconds when the relay accepted it. */
  time: number;
}

/** The variant names of the client's typed errors (docs/CHAT-CLIENT.md, "Errors"). */
export type ChatErrorKind =
  | "Ended" | "GoingAway" | "MessageTooBig" | "Internal" | "BadRequest"
  | "Unauthenticated" | "Forbidden" | "NotFound" | "IdleTimeout" | "Replaced"
  | "SessionExpired" | "TokenExpired" | "PermissionRevoked" | "TokenRevoked"
  | "BackendUnavailable" | "BackendRefused" | "ConnectionLost" | "Refused" | "Invalid"
  | "Other" | "ClosedByClient"
  /** A refusal of a frame, not of the connection (the relay's error code). */
  | "bad_frame" | "too_large" | "not_accepted" | "rate_limited" | "backend";

/** Why a connection ended, or what the relay refused. */
export interface ChatError {
  kind: ChatErrorKind;
  /** The WebSocket close code (4419, 1006, ...), or HTTP status for `Refused`; else null. */
  code: number | null;
  message: string;
  /** The client stopped: it waits for `retryNow()` (or a new `connect`). */
  stopped: boolean;
  /** The token is the problem (4401, 4419, 4431): connect again with a fresh one. */
  needsLogin: boolean;
}

/** The connection's state. */
export type ChatState =
  | { state: "connecting"; attempt: number }
  | { state: "live" }
  | { state: "reconnecting"; attempt: number; delayMs: number; error: ChatError }
  | { state: "closed"; error: ChatError };

/** The relay's news about the room (e.g. Redis down and back). */
export interface ChatStatus {
  kind: "backend_reconnecting" | "backend_restored" | string;
  message: string;
}

/** Messages before `position` are no longer kept and were skipped. */
export interface ChatGap {
  message: string;
  position: string;
}

/** Each event name and what its listeners are called with. */
export interface OpsdeckChatEventMap {
  message: ChatMessage;
  /** Everyone in the room now (on connect and after each join or leave). */
  presence: ChatUser[];
  join: ChatUser;
  leave: ChatUser;
  /** Who the relay says this client is. */
  me: ChatUser;
  state: ChatState;
  /** A connection that ended with an error (also in the state), or a refused frame. */
  error: ChatError;
  status: ChatStatus;
  gap: ChatGap;
}

/** Why a `send` promise was rejected. */
export interface OpsdeckSendError extends Error {
  name: "OpsdeckSendError";
  /** The relay refused this message (too large, rate limited): it was not stored. */
  refused: boolean;
  /** With `refused`: the relay's error code, e.g. "rate_limited"; else null. */
  code: string | null;
  /** Without `refused`: why the client stopped first (it may or may not be stored). */
  error: ChatError | null;
}

export interface OpsdeckChat {
  /** Calls `listener` for each `event`, in order, from the next turn of the event loop. */
  on<K extends keyof OpsdeckChatEventMap>(
    event: K,
    listener: (detail: OpsdeckChatEventMap[K]) => void,
  ): void;
  /** Removes a listener added with `on`. */
  off<K extends keyof OpsdeckChatEventMap>(
    event: K,
    listener: (detail: OpsdeckChatEventMap[K]) => void,
  ): void;
}
"#;

/// The events a listener can subscribe to (`on(name, fn)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Message,
    Presence,
    Join,
    Leave,
    Me,
    State,
    Error,
    Status,
    Gap,
}

impl EventName {
    pub const ALL: [Self; 9] = [
        Self::Message,
        Self::Presence,
        Self::Join,
        Self::Leave,
        Self::Me,
        Self::State,
        Self::Error,
        Self::Status,
        Self::Gap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Presence => "presence",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Me => "me",
            Self::State => "state",
            Self::Error => "error",
            Self::Status => "status",
            Self::Gap => "gap",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

#[derive(Serialize)]
struct MessageDetail {
    id: Option<String>,
    uid: String,
    username: String,
    text: String,
    time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    kind: String,
    code: Option<u16>,
    message: String,
    stopped: bool,
    needs_login: bool,
}

impl ErrorDetail {
    /// A connection's end; `stopped` when the client waits for `retryNow()`.
    pub fn of(error: &ChatError, stopped: bool) -> Self {
        Self {
            kind: error_kind(error).to_owned(),
            code: match error {
                ChatError::Refused { status, .. } => Some(*status),
                other => other.close_code(),
            },
            message: error.to_string(),
            stopped,
            needs_login: error.needs_login(),
        }
    }
}

#[derive(Serialize)]
#[serde(
    tag = "state",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
enum StateDetail {
    Connecting {
        attempt: u32,
    },
    Live,
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        error: ErrorDetail,
    },
    Closed {
        error: ErrorDetail,
    },
}

#[derive(Serialize)]
struct StatusDetail {
    kind: StatusKind,
    message: String,
}

#[derive(Serialize)]
struct GapDetail {
    message: String,
    position: String,
}

/// `value` as a plain object (maps as objects, absent as `null`).
pub fn to_js(value: &impl Serialize) -> JsValue {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    // These structs hold only strings, numbers, booleans and lists: nothing fails.
    value.serialize(&serializer).unwrap_or(JsValue::NULL)
}

/// The listener calls `event` makes, in order (none for acknowledgements and refusals of
/// one message: those settle `send`'s promise).
pub fn details(event: Event) -> Vec<(EventName, JsValue)> {
    match event {
        Event::Message { id, message } => vec![(
            EventName::Message,
            to_js(&MessageDetail {
                id,
                uid: message.uid,
                username: message.username,
                text: message.message,
                time: message.time,
            }),
        )],
        Event::Presence(users) => vec![(EventName::Presence, to_js(&users))],
        Event::Join(user) => vec![(EventName::Join, user_js(&user))],
        Event::Leave(user) => vec![(EventName::Leave, user_js(&user))],
        Event::Me(user) => vec![(EventName::Me, user_js(&user))],
        Event::State(state) => state_details(state),
        Event::Status { kind, message } => {
            vec![(EventName::Status, to_js(&StatusDetail { kind, message }))]
        }
        Event::Gap { message, position } => {
            vec![(EventName::Gap, to_js(&GapDetail { message, position }))]
        }
        Event::Error { code, message } => {
            let kind = to_js(&code).as_string().unwrap_or_default();
            let detail = ErrorDetail {
                kind,
                code: None,
                message,
                stopped: false,
                needs_login: false,
            };
            vec![(EventName::Error, to_js(&detail))]
        }
        Event::Acked { .. } | Event::Refused { .. } => Vec::new(),
    }
}

fn user_js(user: &ChatUser) -> JsValue {
    to_js(user)
}

fn state_details(state: ConnState) -> Vec<(EventName, JsValue)> {
    match state {
        ConnState::Connecting { attempt } => {
            vec![(
                EventName::State,
                to_js(&StateDetail::Connecting { attempt }),
            )]
        }
        ConnState::Live => vec![(EventName::State, to_js(&StateDetail::Live))],
        ConnState::Reconnecting {
            delay,
            attempt,
            error,
        } => {
            let state = StateDetail::Reconnecting {
                attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error: ErrorDetail::of(&error, false),
            };
            vec![
                (EventName::State, to_js(&state)),
                (EventName::Error, to_js(&ErrorDetail::of(&error, false))),
            ]
        }
        ConnState::Closed(error) => {
            let state = to_js(&StateDetail::Closed {
                error: ErrorDetail::of(&error, true),
            });
            if error == ChatError::ClosedByClient {
                vec![(EventName::State, state)]
            } else {
                vec![
                    (EventName::State, state),
                    (EventName::Error, to_js(&ErrorDetail::of(&error, true))),
                ]
            }
        }
    }
}

/// The variant's name, as `ChatErrorKind` in TypeScript lists them.
fn error_kind(error: &ChatError) -> &'static str {
    match error {
        ChatError::Ended { .. } => "Ended",
        ChatError::GoingAway { .. } => "GoingAway",
        ChatError::MessageTooBig { .. } => "MessageTooBig",
        ChatError::Internal { .. } => "Internal",
        ChatError::BadRequest { .. } => "BadRequest",
        ChatError::Unauthenticated { .. } => "Unauthenticated",
        ChatError::Forbidden { .. } => "Forbidden",
        ChatError::NotFound { .. } => "NotFound",
        ChatError::IdleTimeout { .. } => "IdleTimeout",
        ChatError::Replaced { .. } => "Replaced",
        ChatError::SessionExpired { .. } => "SessionExpired",
        ChatError::TokenExpired { .. } => "TokenExpired",
        ChatError::PermissionRevoked { .. } => "PermissionRevoked",
        ChatError::TokenRevoked { .. } => "TokenRevoked",
        ChatError::BackendUnavailable { .. } => "BackendUnavailable",
        ChatError::BackendRefused { .. } => "BackendRefused",
        ChatError::ConnectionLost { .. } => "ConnectionLost",
        ChatError::Refused { .. } => "Refused",
        ChatError::Invalid { .. } => "Invalid",
        ChatError::Other { .. } => "Other",
        ChatError::ClosedByClient => "ClosedByClient",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::chat::ChatMessage;
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn get(value: &JsValue, path: &str) -> JsValue {
        path.split('.').fold(value.clone(), |at, key| {
            js_sys::Reflect::get(&at, &JsValue::from_str(key)).expect("an object")
        })
    }

    fn names(details: &[(EventName, JsValue)]) -> Vec<EventName> {
        details.iter().map(|(name, _)| *name).collect()
    }

    #[wasm_bindgen_test]
    fn a_reconnect_is_a_state_and_an_error_with_its_close_code() {
        let error = ChatError::from_close(1001, "restarting");
        let out = details(Event::State(ConnState::Reconnecting {
            delay: Duration::from_millis(750),
            attempt: 2,
            error,
        }));
        assert_eq!(names(&out), [EventName::State, EventName::Error]);
        let state = &out[0].1;
        assert_eq!(get(state, "state"), "reconnecting");
        assert_eq!(get(state, "delayMs"), 750);
        assert_eq!(get(state, "attempt"), 2);
        assert_eq!(get(state, "error.kind"), "GoingAway");
        let error = &out[1].1;
        assert_eq!(get(error, "code"), 1001);
        assert_eq!(get(error, "stopped").as_bool(), Some(false));
        assert_eq!(get(error, "needsLogin").as_bool(), Some(false));
    }

    #[wasm_bindgen_test]
    fn an_expired_token_stops_the_client_and_asks_for_a_login() {
        let out = details(Event::State(ConnState::Closed(ChatError::from_close(
            4419, "expired",
        ))));
        assert_eq!(names(&out), [EventName::State, EventName::Error]);
        assert_eq!(get(&out[0].1, "state"), "closed");
        assert_eq!(get(&out[1].1, "kind"), "TokenExpired");
        assert_eq!(get(&out[1].1, "stopped").as_bool(), Some(true));
        assert_eq!(get(&out[1].1, "needsLogin").as_bool(), Some(true));
    }

    #[wasm_bindgen_test]
    fn closing_by_hand_is_a_state_and_no_error() {
        let out = details(Event::State(ConnState::Closed(ChatError::ClosedByClient)));
        assert_eq!(names(&out), [EventName::State]);
        assert_eq!(get(&out[0].1, "error.kind"), "ClosedByClient");
    }

    #[wasm_bindgen_test]
    fn a_message_carries_its_id_and_text_and_a_missing_id_is_null() {
        let message = ChatMessage {
            uid: "7".into(),
            username: "bob".into(),
            message: "hi".into(),
            time: 1_700_000_000,
        };
        let out = details(Event::Message {
            id: Some("5-0".into()),
            message: message.clone(),
        });
        assert_eq!(names(&out), [EventName::Message]);
        assert_eq!(get(&out[0].1, "id"), "5-0");
        assert_eq!(get(&out[0].1, "text"), "hi");
        assert_eq!(get(&out[0].1, "username"), "bob");
        assert_eq!(get(&out[0].1, "time"), 1_700_000_000u32);
        let out = details(Event::Message { id: None, message });
        assert!(get(&out[0].1, "id").is_null());
    }

    #[wasm_bindgen_test]
    fn event_names_read_back_and_unknown_ones_do_not() {
        for name in EventName::ALL {
            assert_eq!(EventName::parse(name.as_str()), Some(name));
        }
        assert_eq!(EventName::parse("mesage"), None);
    }
}
