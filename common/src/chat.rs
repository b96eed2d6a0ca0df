//! Chat room frames, in the classic shapes of the channels_redis chat they replace.
//!
//! Browser → relay: `{"action": "message", "data": {"message": "..."}}` and
//! `{"action": "userinfo"}`. Relay → browser: a [`ChatEvent`] such as
//! `{"id": "1700000000000-0", "time": 1700000000, "action": "message", "data": {"uid": "7",
//! "username": "alice", "message": "hi", "time": 1700000000}}`. The `id` is the message's
//! position in the room (see [`crate::resume`]): a client that reconnects with
//! `?since=<id>` gets exactly the messages after it.
//!
//! A message may carry the client's own id for it, at the top level of the frame:
//! `{"action": "message", "data": {"message": "hi"}, "client_id": "m-42"}` (a [`ClientId`]:
//! 1 to 64 of `A-Z a-z 0-9 _ -`). The relay then answers that send, and only that send,
//! with `{"type": "sent", "client_id": "m-42", "id": "<message id>"}` (see
//! [`crate::server::StreamEvent::Sent`]) or with an error frame naming the client id, and
//! stores the message at most once per user, room and client id however often it is sent
//! again (after a reconnect, through another relay, after a relay restart).

use serde::{Deserialize, Serialize};

use crate::error::FrameError;

/// What a chat client asks of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRequest {
    /// Post a message; identity comes from the token, never from the client. With a
    /// `client_id`, the send is acknowledged and stored at most once (see the module docs).
    Message {
        message: String,
        client_id: Option<ClientId>,
    },
    /// Ask who the relay thinks this client is.
    UserInfo,
}

/// The longest [`ClientId`], in characters.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// A client's own id for one chat message: 1 to [`MAX_CLIENT_ID_LEN`] characters of
/// `A-Z a-z 0-9 _ -`. The same id sent again (by the same user, to the same room) is the
/// same message: it is stored once and acknowledged with the same message id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// Checks `id`; the error says what is wrong with it.
    pub fn new(id: impl Into<String>) -> Result<Self, FrameError> {
        let id = id.into();
        let len = id.chars().count();
        if len == 0 {
            return Err(FrameError::BadClientId("is empty".into()));
        }
        if len > MAX_CLIENT_ID_LEN {
            return Err(FrameError::BadClientId(format!(
                "is {len} characters long; the limit is {MAX_CLIENT_ID_LEN}"
            )));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(FrameError::BadClientId(format!(
                "contains {bad:?}; use only A-Z, a-z, 0-9, _ and -"
            )));
        }
        Ok(Self(id))
    }

    /// Reads the `client_id` field of a raw frame, which may be any JSON value.
    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, FrameError> {
        match value {
            serde_json::Value::String(s) => Self::new(s),
            other => Err(FrameError::BadClientId(format!(
                "is {}, not a string",
                json_kind(&other)
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClientId {
    type Error = FrameError;

    fn try_from(id: String) -> Result<Self, FrameError> {
        Self::new(id)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

#[derive(Deserialize)]
struct MessageData {
    message: String,
}

impl ChatRequest {
    pub(crate) fn from_parts(
        action: &str,
        data: Option<serde_json::Value>,
        client_id: Option<serde_json::Value>,
    ) -> Result<Self, FrameError> {
        match action {
            "message" => {
                // The id first: a frame with a bad id is refused for that, whatever else.
                let client_id = client_id.map(ClientId::from_value).transpose()?;
                let data = data.ok_or(FrameError::MissingMessage)?;
                let MessageData { message } =
                    serde_json::from_value(data).map_err(|_| FrameError::MissingMessage)?;
                Ok(Self::Message { message, client_id })
            }
            _ if client_id.is_some() => Err(FrameError::ClientIdNotHere),
            "userinfo" => Ok(Self::UserInfo),
            other => Err(FrameError::UnknownAction(other.chars().take(64).collect())),
        }
    }

    /// The frame's `action`, `data` and `client_id`.
    pub(crate) fn into_parts(
        self,
    ) -> (
        &'static str,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    ) {
        match self {
            Self::Message { message, client_id } => (
                "message",
                Some(serde_json::json!({ "message": message })),
                client_id.map(|id| serde_json::Value::String(id.0)),
            ),
            Self::UserInfo => ("userinfo", None, None),
        }
    }
}

/// A person in a room, as the relay knows them from their token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatUser {
    pub uid: String,
    pub username: String,
}

/// A posted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub uid: String,
    pub username: String,
    pub message: String,
    /// Unix seconds when the relay accepted it.
    pub time: u64,
}

/// What happened in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "data", rename_all = "lowercase")]
pub enum ChatBody {
    Message(ChatMessage),
    /// The reply to `{"action": "userinfo"}`.
    UserInfo(ChatUser),
    /// Someone opened the room (their first connection).
    Join(ChatUser),
    /// Someone left the room (their last connection closed).
    Leave(ChatUser),
    /// Everyone in the room now; sent on connect and after each join or leave.
    Presence {
        users: Vec<ChatUser>,
    },
}

/// One chat frame from the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// The message's position in the room, for `?since=`; only messages have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unix seconds when the relay sent or accepted it.
    pub time: u64,
    #[serde(flatten)]
    pub body: ChatBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_message_event_shape() {
        let event = ChatEvent {
            id: Some("1700000000000-0".into()),
            time: 1_700_000_000,
            body: ChatBody::Message(ChatMessage {
                uid: "7".into(),
                username: "alice".into(),
                message: "你好".into(),
                time: 1_700_000_000,
            }),
        };
        let json: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "1700000000000-0",
                "time": 1_700_000_000,
                "action": "message",
                "data": {"uid": "7", "username": "alice", "message": "你好", "time": 1_700_000_000}
            })
        );
        let back: ChatEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn every_chat_body_round_trips() {
        let user = ChatUser {
            uid: "1".into(),
            username: "bob".into(),
        };
        for body in [
            ChatBody::UserInfo(user.clone()),
            ChatBody::Join(user.clone()),
            ChatBody::Leave(user.clone()),
            ChatBody::Presence { users: vec![user] },
        ] {
            let event = ChatEvent {
                id: None,
                time: 5,
                body,
            };
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<ChatEvent>(&text).unwrap(), event);
        }
    }

    #[test]
    fn chat_requests_parse_from_classic_frames() {
        use crate::ClientFrame;
        assert_eq!(
            ClientFrame::parse(r#"{"action":"message","data":{"message":"hi"}}"#),
            Ok(ClientFrame::Chat(ChatRequest::Message {
                message: "hi".into(),
                client_id: None,
            }))
        );
        assert_eq!(
            ClientFrame::parse(
                r#"{"action":"message","data":{"message":"hi"},"client_id":"m-42_x"}"#
            ),
            Ok(ClientFrame::Chat(ChatRequest::Message {
                message: "hi".into(),
                client_id: Some(ClientId::new("m-42_x").unwrap()),
            }))
        );
        assert_eq!(
            ClientFrame::parse(r#"{"action":"userinfo"}"#),
            Ok(ClientFrame::Chat(ChatRequest::UserInfo))
        );
        assert_eq!(
            ClientFrame::parse(r#"{"action":"message"}"#),
            Err(FrameError::MissingMessage)
        );
        assert_eq!(
            ClientFrame::parse(r#"{"action":"dance"}"#),
            Err(FrameError::UnknownAction("dance".into()))
        );
    }

    #[test]
    fn bad_client_ids_say_what_is_wrong() {
        use crate::ClientFrame;
        let parse = |id: &str| {
            ClientFrame::parse(&format!(
                r#"{{"action":"message","data":{{"message":"hi"}},"client_id":{id}}}"#
            ))
        };
        let refused = |id: &str| match parse(id) {
            Err(FrameError::BadClientId(why)) => why,
            other => panic!("{id}: {other:?}"),
        };
        assert!(refused(&format!("\"{}\"", "a".repeat(65))).contains("65 characters"));
        assert!(parse(&format!("\"{}\"", "a".repeat(64))).is_ok());
        assert!(refused("42").contains("a number, not a string"));
        assert!(refused("[\"a\"]").contains("an array"));
        assert!(refused(r#""a b""#).contains("' '"));
        assert!(refused(r#""é""#).contains("'é'"));
        assert!(refused(r#""""#).contains("empty"));
        let message = FrameError::BadClientId("is 65 characters long".into()).to_string();
        assert!(message.contains("client_id"), "{message}");
        assert_eq!(
            ClientFrame::parse(r#"{"action":"userinfo","client_id":"x"}"#),
            Err(FrameError::ClientIdNotHere)
        );
        assert_eq!(
            ClientFrame::parse(r#"{"data":"ls","client_id":"x"}"#),
            Err(FrameError::ClientIdNotHere)
        );
    }

    #[test]
    fn a_message_with_a_client_id_round_trips_with_the_id_at_the_top_level() {
        use crate::ClientFrame;
        let frame = ClientFrame::Chat(ChatRequest::Message {
            message: "hi".into(),
            client_id: Some(ClientId::new("abc").unwrap()),
        });
        let json: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action": "message", "data": {"message": "hi"}, "client_id": "abc"})
        );
        assert_eq!(ClientFrame::parse(&frame.to_json()), Ok(frame));
    }
}
