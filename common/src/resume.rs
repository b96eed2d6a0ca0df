//! The one resume contract shared by every stream kind.
//!
//! Every stream the relay serves has a *position*: how far a client has got. On reconnect a
//! client presents the session it was attached to and the position it reached, as query
//! parameters `?session=<id>&position=<pos>`, and the relay sends exactly what comes after
//! that position, then continues live. The relay announces both in the `connected` frame so a
//! client never has to guess them.
//!
//! | stream | session | position |
//! |---|---|---|
//! | terminal (ssh, k8s exec) | terminal session id | bytes received so far (decimal) |
//! | file tail | tail id (changes when the relay restarts the reader) | lines received so far (decimal) |
//! | pod logs | unused | `<RFC 3339 timestamp of last line>/<lines received at that timestamp>` |
//! | chat room | the room | id of the last message received (`since=` is accepted too) |
//! | job output | the job token | id of the last output entry received |

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// The kinds of stream the relay serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Terminal,
    Tail,
    PodLogs,
    Chat,
    Job,
}

/// How far a client has got in a stream; its meaning depends on the [`StreamKind`].
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub String);

impl Position {
    /// A position counted in bytes or lines.
    pub fn count(n: u64) -> Self {
        Self(n.to_string())
    }

    /// The count, for streams whose positions are counts.
    pub fn as_count(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The position as a Redis-stream style id `<millis>-<seq>` (or a bare number), for
    /// ordering chat and job positions.
    pub fn entry_id(&self) -> Option<(u64, u64)> {
        match self.0.split_once('-') {
            Some((ms, seq)) => Some((ms.parse().ok()?, seq.parse().ok()?)),
            None => Some((self.0.parse().ok()?, 0)),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Position {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The resume token, as query parameters of any stream endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeQuery {
    /// The session to re-attach to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The position reached in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The classic chat spelling of `position`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Position>,
}

impl ResumeQuery {
    /// A token to resume `session` after `position`.
    pub fn new(session: impl Into<String>, position: Position) -> Self {
        Self {
            session: Some(session.into()),
            position: Some(position),
            since: None,
        }
    }

    /// The position asked for, whichever spelling was used.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref().or(self.since.as_ref())
    }

    /// For streams positioned by a count (terminal bytes, tail lines): the session and the
    /// count reached in it, 0 when only the session is given.
    pub fn counted(&self, unit: &'static str) -> Result<Option<(&str, u64)>, QueryError> {
        match (&self.session, &self.position) {
            (None, None) => Ok(None),
            (Some(session), None) => Ok(Some((session.as_str(), 0))),
            (Some(session), Some(position)) => position
                .as_count()
                .map(|n| Some((session.as_str(), n)))
                .ok_or_else(|| QueryError::bad_value("position", position.as_str(), unit)),
            (None, Some(_)) => Err(QueryError::PositionWithoutSession),
        }
    }

    /// The query-string form, `session=..&position=..&since=..`, each value percent-encoded.
    /// Each spelling is kept as it is: streams positioned by a count read only `position`
    /// ([`ResumeQuery::counted`]), so writing `since` as `position` would change what the
    /// query means (found by the `resume_query` fuzz target).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(session) = &self.session {
            parts.push(format!("session={}", encode(session)));
        }
        if let Some(position) = &self.position {
            parts.push(format!("position={}", encode(position.as_str())));
        }
        if let Some(since) = &self.since {
            parts.push(format!("since={}", encode(since.as_str())));
        }
        parts.join("&")
    }
}

/// Percent-encodes the few characters a position can hold that a query string cannot.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_stream_positions() {
        assert_eq!(Position::from("17-3").entry_id(), Some((17, 3)));
        assert_eq!(Position::from("42").entry_id(), Some((42, 0)));
        assert!(Position::from("9-10").entry_id() > Position::from("9-9").entry_id());
        assert_eq!(Position::from("17-x").entry_id(), None);
        assert_eq!(Position::from("").entry_id(), None);
    }

    #[test]
    fn resume_query_spells_both_forms() {
        let q = ResumeQuery::new("ab12", Position::count(42));
        assert_eq!(q.to_query(), "session=ab12&position=42");
        let chat: ResumeQuery = serde_json::from_str(r#"{"since":"17-0"}"#).unwrap();
        assert_eq!(chat.position(), Some(&Position::from("17-0")));
        assert_eq!(chat.to_query(), "since=17-0");
    }

    #[test]
    fn positions_with_timestamps_are_encoded() {
        let q = ResumeQuery {
            session: None,
            position: Some(Position::from("2026-01-02T03:04:05.123456789Z/2")),
            since: None,
        };
        assert_eq!(q.to_query(), "position=2026-01-02T03:04:05.123456789Z%2F2");
    }

    #[test]
    fn counts_round_trip() {
        assert_eq!(Position::count(7).as_count(), Some(7));
        assert_eq!(Position::from("x").as_count(), None);
    }
}
