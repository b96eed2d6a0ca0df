//! Chat room frames, in the classic shapes of the channels_redis chat they replace.
//!
//! Browser → relay: `{"action": "message", "data": {"message": "..."}}` and
//! `{"action": "userinfo"}`. Relay → browser: a [`ChatEvent`] such as
//! `{"id": "1700000000000-0", "time": 1700000000, "action": "message", "data": {"uid": "7",
//! "username": "alice", "message": "hi", "time": 1700000000}}`. The `id` is the message's
//! position in the room (see [`crate::resume`]): a client that reconnects with
//! `?since=<id>` gets exactly the messages after it.

use serde::{Deserialize, Serialize};

use crate::error::FrameError;

/// What a chat client asks of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRequest {
    /// Post a message; identity comes from the token, never from the client.
    Message { message: String },
    /// Ask who the relay thinks this client is.
    UserInfo,
}

#[derive(Deserialize)]
struct MessageData {
    message: String,
}

impl ChatRequest {
    pub(crate) fn from_parts(
        action: &str,
        data: Option<serde_json::Value>,
    ) -> Result<Self, FrameError> {
        match action {
            "message" => {
                let data = data.ok_or(FrameError::MissingMessage)?;
                let MessageData { message } =
                    serde_json::from_value(data).map_err(|_| FrameError::MissingMessage)?;
                Ok(Self::Message { message })
            }
            "userinfo" => Ok(Self::UserInfo),
            other => Err(FrameError::UnknownAction(other.chars().take(64).collect())),
        }
    }

    pub(crate) fn into_parts(self) -> (&'static str, Option<serde_json::Value>) {
        match self {
            Self::Message { message } => {
                ("message", Some(serde_json::json!({ "message": message })))
            }
            Self::UserInfo => ("userinfo", None),
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
                message: "hi".into()
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
}
