//! The audit trail: one [`AuditEvent`] per security-relevant event, as JSON lines in a
//! file and, with Redis, in a shared stream; `GET /api/audit` answers with an
//! [`AuditPage`] of them, filtered by an [`AuditQuery`].

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Login,
    LoginFailed,
    Logout,
    TokenRevoked,
    StreamOpened,
    StreamRefused,
    StreamClosed,
    WatchStarted,
    WatchEnded,
    ConfigReloaded,
    /// A file operation: an upload, download, mkdir, rename or delete on an SSH host
    /// or in a pod (`path`, bytes, `reason` when it failed).
    FileTransfer,
}

impl AuditKind {
    pub const ALL: [Self; 11] = [
        Self::Login,
        Self::LoginFailed,
        Self::Logout,
        Self::TokenRevoked,
        Self::StreamOpened,
        Self::StreamRefused,
        Self::StreamClosed,
        Self::WatchStarted,
        Self::WatchEnded,
        Self::ConfigReloaded,
        Self::FileTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::TokenRevoked => "token_revoked",
            Self::StreamOpened => "stream_opened",
            Self::StreamRefused => "stream_refused",
            Self::StreamClosed => "stream_closed",
            Self::WatchStarted => "watch_started",
            Self::WatchEnded => "watch_ended",
            Self::ConfigReloaded => "config_reloaded",
            Self::FileTransfer => "file_transfer",
        }
    }
}

/// One event of the trail. Fields that do not apply to its kind are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique within the trail, ordered by time: `<unix ms>-<sequence>` (a Redis stream
    /// id when the trail is in Redis).
    pub id: String,
    /// Unix milliseconds.
    pub time: u64,
    pub kind: AuditKind,
    /// The user name (for a refused login, the name that was tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How the user signed in (`password`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What was opened, e.g. `ssh:web-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ssh`, `k8s`, `tail`, `chat`, `job`, `watch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The terminal session (a watch names the session watched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The recording of the session, when it is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// The close code of a refused or closed stream (absent when the browser left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long a stream was open, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Bytes sent to the browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_to_browser: Option<u64>,
    /// Bytes received from the browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_from_browser: Option<u64>,
    /// The file or folder of a file transfer, and what was done (`upload`, `download`,
    /// `mkdir`, `rename`, `delete`) as `<operation> <path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` at `time` with every other field absent.
    pub fn new(kind: AuditKind, time: u64) -> Self {
        Self {
            id: String::new(),
            time,
            kind,
            user: None,
            provider: None,
            source: None,
            target: None,
            backend: None,
            session: None,
            recording: None,
            code: None,
            reason: None,
            duration_ms: None,
            bytes_to_browser: None,
            bytes_from_browser: None,
            path: None,
        }
    }
}

/// Most events one page of `GET /api/audit` holds.
pub const MAX_AUDIT_PAGE: usize = 500;
/// Events in a page when `limit` is not given.
pub const DEFAULT_AUDIT_PAGE: usize = 100;

/// `GET /api/audit?user=&target=&kind=&since=&until=&after=&limit=`: every filter is
/// optional; `since`/`until` are unix seconds (inclusive, exclusive); `after` is the `next`
/// of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub target: Option<String>,
    pub kind: Option<AuditKind>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Deserialize)]
struct RawAuditQuery {
    user: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

fn seconds(value: Option<String>, name: &'static str) -> Result<Option<u64>, QueryError> {
    value
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| QueryError::bad_value(name, &text, "a time in unix seconds"))
        })
        .transpose()
}

impl AuditQuery {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let q: RawAuditQuery =
            serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))?;
        let kind = match q.kind {
            None => None,
            Some(text) => Some(
                AuditKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == text)
                    .ok_or_else(|| {
                        QueryError::bad_value(
                            "kind",
                            &text,
                            "an event kind such as login, stream_closed or watch_started",
                        )
                    })?,
            ),
        };
        let limit = match q.limit {
            None => DEFAULT_AUDIT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_AUDIT_PAGE).contains(&n) => n,
                _ => {
                    return Err(QueryError::bad_value(
                        "limit",
                        &text,
                        "a page size from 1 to 500",
                    ));
                }
            },
        };
        if let Some(after) = &q.after {
            let numbers = after.split_once('-').is_some_and(|(ms, seq)| {
                [ms, seq].iter().all(|n| {
                    !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
                })
            });
            if !numbers {
                return Err(QueryError::bad_value(
                    "after",
                    after,
                    "the next of the previous page, such as 1765000000000-0",
                ));
            }
        }
        Ok(Self {
            user: q.user,
            target: q.target,
            kind,
            since: seconds(q.since, "since")?,
            until: seconds(q.until, "until")?,
            after: q.after,
            limit,
        })
    }

    /// Whether `event` passes the filters (not `after`, which is the reader's to apply).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let text = |filter: &Option<String>, value: &Option<String>| {
            filter.as_ref().is_none_or(|f| value.as_ref() == Some(f))
        };
        text(&self.user, &event.user)
            && text(&self.target, &event.target)
            && self.kind.is_none_or(|k| k == event.kind)
            && self
                .since
                .is_none_or(|s| event.time >= s.saturating_mul(1000))
            && self
                .until
                .is_none_or(|u| event.time < u.saturating_mul(1000))
    }
}

/// One page of `GET /api/audit`, oldest first; `next` is the `after` of the next page,
/// absent on the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_queries_bound_the_page_and_say_what_is_wrong() {
        let q = AuditQuery::parse("user=alice&kind=stream_closed&since=10&limit=2").unwrap();
        assert_eq!(q.kind, Some(AuditKind::StreamClosed));
        assert_eq!(q.limit, 2);
        assert_eq!(AuditQuery::parse("").unwrap().limit, DEFAULT_AUDIT_PAGE);
        let huge = AuditQuery::parse("limit=100000").unwrap_err().to_string();
        assert!(huge.contains("1 to 500"), "{huge}");
        let time = AuditQuery::parse("since=yesterday")
            .unwrap_err()
            .to_string();
        assert!(time.contains("unix seconds"), "{time}");
        assert!(AuditQuery::parse("kind=nope").is_err());
        assert!(AuditQuery::parse("after=17-0").is_ok());
        for bad in ["after=x", "after=1-", "after=-1", "after=1-2-3"] {
            assert!(AuditQuery::parse(bad).is_err(), "{bad}");
        }
        let mut event = AuditEvent::new(AuditKind::StreamClosed, 10_500);
        event.user = Some("alice".into());
        assert!(q.matches(&event));
        event.user = Some("bob".into());
        assert!(!q.matches(&event));
    }

    #[test]
    fn events_round_trip_without_absent_fields() {
        let mut event = AuditEvent::new(AuditKind::Login, 1);
        event.user = Some("alice".into());
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(text, r#"{"id":"","time":1,"kind":"login","user":"alice"}"#);
        assert_eq!(serde_json::from_str::<AuditEvent>(&text).unwrap(), event);
    }
}
