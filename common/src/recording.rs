//! Session recordings: the asciicast v2 header the relay writes (the format of asciinema,
//! <https://docs.asciinema.org/manual/asciicast/v2/>), recording ids, and the bodies of
//! `GET /api/recordings`.
//!
//! A recording is newline-delimited JSON: the [`CastHeader`], then one event per line,
//! `[seconds since the start, code, data]` with codes `o` (output), `i` (input), `r`
//! (resize, `"COLSxROWS"`) and `m` (marker: `recording lost N bytes`, and the last line,
//! `end: <reason>`).

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastHeader {
    /// Always 2.
    pub version: u8,
    pub width: u16,
    pub height: u16,
    /// Unix seconds when the session started.
    pub timestamp: u64,
    /// The target, e.g. `ssh:web-1`.
    pub title: String,
    pub env: CastEnv,
    /// Opsdeck's own fields (players ignore them).
    pub opsdeck: CastMeta,
}

/// `env` of the header: the terminal type and the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastEnv {
    #[serde(rename = "TERM")]
    pub term: String,
    #[serde(rename = "USER")]
    pub user: String,
}

/// Who recorded what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastMeta {
    pub id: String,
    pub user: String,
    pub target: String,
    pub backend: String,
}

/// Event codes.
pub const OUTPUT: &str = "o";
pub const INPUT: &str = "i";
pub const RESIZE: &str = "r";
pub const MARKER: &str = "m";

/// Longest recording id.
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` can be a recording id: 1 to 64 letters, digits, `-` or `_` (so never a
/// path).
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One entry of `GET /api/recordings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub id: String,
    pub user: String,
    pub target: String,
    pub backend: String,
    /// Unix seconds of the start.
    pub started: u64,
    /// Unix seconds of the last write (the end, once it has ended).
    pub modified: u64,
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// Whether the file is gzip-compressed (`.cast.gz`).
    pub compressed: bool,
    /// Whether the session is still being recorded.
    pub live: bool,
}

/// `GET /api/recordings?user=&target=&since=&until=`: filters, each optional
/// (`since`/`until` in unix seconds, on the start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingQuery {
    pub user: Option<String>,
    pub target: Option<String>,
    pub since: Option<u64>,
    pub until: Option<u64>,
}

#[derive(Deserialize)]
struct RawRecordingQuery {
    user: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl RecordingQuery {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let q: RawRecordingQuery =
            serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))?;
        let seconds = |value: Option<String>, name: &'static str| {
            value
                .map(|text| {
                    text.parse::<u64>()
                        .map_err(|_| QueryError::bad_value(name, &text, "a time in unix seconds"))
                })
                .transpose()
        };
        Ok(Self {
            user: q.user,
            target: q.target,
            since: seconds(q.since, "since")?,
            until: seconds(q.until, "until")?,
        })
    }

    pub fn matches(&self, info: &RecordingInfo) -> bool {
        self.user.as_ref().is_none_or(|u| *u == info.user)
            && self.target.as_ref().is_none_or(|t| *t == info.target)
            && self.since.is_none_or(|s| info.started >= s)
            && self.until.is_none_or(|u| info.started < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_ids_are_never_paths() {
        assert!(valid_id("1765000000-9f86d081884c7d65"));
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            "..",
            "a.cast",
            "a\\b",
            &"x".repeat(65),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_header_is_asciicast_v2() {
        let header = CastHeader {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 1,
            title: "ssh:box".into(),
            env: CastEnv {
                term: "xterm-256color".into(),
                user: "alice".into(),
            },
            opsdeck: CastMeta {
                id: "1-ab".into(),
                user: "alice".into(),
                target: "ssh:box".into(),
                backend: "ssh".into(),
            },
        };
        let text = serde_json::to_string(&header).unwrap();
        assert!(
            text.starts_with(r#"{"version":2,"width":80,"height":24,"timestamp":1,"title":"ssh:box","env":{"TERM":"xterm-256color","USER":"alice"}"#),
            "{text}"
        );
    }
}
