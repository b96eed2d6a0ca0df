//! Text frames the relay sends to the browser.
//!
//! Terminal output is not here: it travels as binary WebSocket frames of raw bytes, exactly as
//! the backend produced them, so a character split across two frames is joined again by the
//! terminal (xterm.js decodes UTF-8 across writes). Everything else is a JSON text frame,
//! either a [`StreamEvent`] tagged by `"type"`, or a classic [`ChatEvent`] tagged by `"action"`.

use serde::{Deserialize, Serialize};

use crate::chat::{ChatEvent, ClientId};
use crate::resume::{Position, StreamKind};

/// Any text frame from the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerFrame {
    Event(StreamEvent),
    Chat(ChatEvent),
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl From<StreamEvent> for ServerFrame {
    fn from(event: StreamEvent) -> Self {
        Self::Event(event)
    }
}

impl From<ChatEvent> for ServerFrame {
    fn from(event: ChatEvent) -> Self {
        Self::Chat(event)
    }
}

/// A frame about a stream, or carrying a stream's lines or entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First frame of every stream: which session this is and where it stands.
    /// `resumed` says whether an earlier session was picked up (and its missed output
    /// replayed) or a new one was started.
    Connected {
        stream: StreamKind,
        session: String,
        position: Position,
        resumed: bool,
    },
    /// Something the client sent was refused; the stream goes on. An error about a chat
    /// message sent with a `client_id` names it: that message was NOT stored by this send
    /// (send it again with the same id; it is never stored twice).
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// The chat message sent with `client_id` is stored as the message `id` (the same `id`
    /// however often it was sent).
    Sent { client_id: ClientId, id: String },
    /// A change the user should see, in the stream's own words (file rotated, Redis
    /// reconnecting, container restarted, ...); the stream goes on.
    Status { kind: StatusKind, message: String },
    /// What the client asked to resume from is no longer kept; it continues from `position`.
    Gap { message: String, position: Position },
    /// The viewer fell behind and `count` lines were skipped to catch up.
    Dropped { count: u64 },
    /// Lines of a file tail or pod log; `position` is the position after the last one.
    Lines {
        position: Position,
        lines: Vec<String>,
    },
    /// One entry of job output; `position` is its id.
    Output { position: Position, data: String },
    /// Sent to a terminal's owner: `user` started (`joined`) or stopped watching it
    /// read-only through `/ws/watch/{session}`; `watchers` is how many watch now.
    Watcher {
        user: String,
        joined: bool,
        watchers: u32,
    },
    /// The remote program ended. `status` is its exit status when it reported one.
    Exit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
}

/// Machine-readable kinds of [`StreamEvent::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be parsed or validated.
    BadFrame,
    /// The frame was larger than the configured limit.
    TooLarge,
    /// The frame kind does not apply to this stream.
    NotAccepted,
    /// Too many messages; slow down.
    RateLimited,
    /// The backend refused or failed the request; the stream goes on.
    Backend,
}

/// Kinds of [`StreamEvent::Status`]; unknown kinds from a newer relay read as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    FileRotated,
    FileTruncated,
    FileDeleted,
    FileCreated,
    BackendReconnecting,
    BackendRestored,
    ContainerRestarted,
    Refollowing,
    /// The session is to be recorded but the recorder cannot write (`on_failure =
    /// "continue"`): it runs unrecorded.
    NotRecorded,
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatBody, ChatUser};

    fn round_trip(frame: ServerFrame) {
        let text = frame.to_json();
        assert_eq!(ServerFrame::parse(&text).unwrap(), frame, "{text}");
    }

    #[test]
    fn every_event_round_trips() {
        let events = [
            StreamEvent::Connected {
                stream: StreamKind::Terminal,
                session: "5f2c".into(),
                position: Position::count(0),
                resumed: false,
            },
            StreamEvent::Error {
                code: ErrorCode::BadFrame,
                message: "malformed frame".into(),
                client_id: None,
            },
            StreamEvent::Error {
                code: ErrorCode::Backend,
                message: "your message \"m-1\" was NOT sent".into(),
                client_id: Some(ClientId::new("m-1").unwrap()),
            },
            StreamEvent::Sent {
                client_id: ClientId::new("m-1").unwrap(),
                id: "1700000000000-0".into(),
            },
            StreamEvent::Status {
                kind: StatusKind::FileRotated,
                message: "app.log was rotated".into(),
            },
            StreamEvent::Gap {
                message: "1024 bytes were no longer kept".into(),
                position: Position::count(4096),
            },
            StreamEvent::Dropped { count: 12 },
            StreamEvent::Lines {
                position: Position::count(3),
                lines: vec!["a".into(), "日本".into()],
            },
            StreamEvent::Output {
                position: "17-0".into(),
                data: "building\n".into(),
            },
            StreamEvent::Watcher {
                user: "bob".into(),
                joined: true,
                watchers: 1,
            },
            StreamEvent::Exit {
                status: Some(3),
                signal: None,
            },
        ];
        for event in events {
            round_trip(event.into());
        }
        round_trip(
            ChatEvent {
                id: None,
                time: 1,
                body: ChatBody::Join(ChatUser {
                    uid: "1".into(),
                    username: "a".into(),
                }),
            }
            .into(),
        );
    }

    #[test]
    fn documented_examples_parse() {
        let connected = r#"{"type":"connected","stream":"terminal","session":"9f86d081","position":"0","resumed":false}"#;
        assert!(matches!(
            ServerFrame::parse(connected).unwrap(),
            ServerFrame::Event(StreamEvent::Connected { .. })
        ));
        let exit = r#"{"type":"exit","status":3}"#;
        assert_eq!(
            ServerFrame::parse(exit).unwrap(),
            ServerFrame::Event(StreamEvent::Exit {
                status: Some(3),
                signal: None
            })
        );
        let sent = r#"{"type":"sent","client_id":"m-42","id":"1700000000000-0"}"#;
        assert_eq!(
            ServerFrame::parse(sent).unwrap(),
            ServerFrame::Event(StreamEvent::Sent {
                client_id: ClientId::new("m-42").unwrap(),
                id: "1700000000000-0".into()
            })
        );
        let not_sent =
            r#"{"type":"error","code":"backend","message":"NOT sent","client_id":"m-42"}"#;
        assert!(matches!(
            ServerFrame::parse(not_sent).unwrap(),
            ServerFrame::Event(StreamEvent::Error { client_id: Some(id), .. }) if id.as_str() == "m-42"
        ));
        let classic_error = r#"{"type":"error","code":"bad_frame","message":"no"}"#;
        assert!(matches!(
            ServerFrame::parse(classic_error).unwrap(),
            ServerFrame::Event(StreamEvent::Error {
                client_id: None,
                ..
            })
        ));
        let future_status = r#"{"type":"status","kind":"weather","message":"sunny"}"#;
        assert!(matches!(
            ServerFrame::parse(future_status).unwrap(),
            ServerFrame::Event(StreamEvent::Status {
                kind: StatusKind::Other,
                ..
            })
        ));
    }
}
