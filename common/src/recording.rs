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

    /// `user=&target=&since=&until=`, absent filters left out.
    pub fn to_query(&self) -> String {
        let pairs: Vec<(&str, String)> = [
            ("user", self.user.clone()),
            ("target", self.target.clone()),
            ("since", self.since.map(|s| s.to_string())),
            ("until", self.until.map(|s| s.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    pub fn matches(&self, info: &RecordingInfo) -> bool {
        self.user.as_ref().is_none_or(|u| *u == info.user)
            && self.target.as_ref().is_none_or(|t| *t == info.target)
            && self.since.is_none_or(|s| info.started >= s)
            && self.until.is_none_or(|u| info.started < u)
    }
}

/// `GET /api/recordings/{id}/index`: where a player can start reading a recording without
/// reading all of it (uncompressed recordings only). Each [`SeekPoint`] is the byte offset of
/// an event line (`Range: bytes=OFFSET-` starts on a whole line); points are at least
/// [`SEEK_STEP_BYTES`] apart and at most [`MAX_SEEK_POINTS`], the first at the first event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingIndex {
    pub header: CastHeader,
    /// Bytes indexed: up to the end of the last whole line (a live recording grows).
    pub bytes: u64,
    /// Time of the last event, in seconds.
    pub duration: f64,
    /// Event lines indexed.
    pub events: u64,
    pub points: Vec<SeekPoint>,
}

/// An event line of a recording: its time and where it starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeekPoint {
    pub time: f64,
    pub offset: u64,
}

/// Least distance in bytes between two seek points (more, in long recordings, so there are
/// never more than [`MAX_SEEK_POINTS`]).
pub const SEEK_STEP_BYTES: u64 = 64 * 1024;
/// Most seek points of an index.
pub const MAX_SEEK_POINTS: usize = 4096;
/// Longest text `find` looks for, in characters.
pub const MAX_FIND_TEXT: usize = 200;

/// What `GET /api/recordings/{id}/find` looks for after `after` seconds: output holding
/// `text` (escape sequences left out, ASCII case ignored; a match may span events), or,
/// without `text`, the next keystroke (`input=1`).
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    /// Seconds; only events strictly after it count.
    pub after: f64,
    pub target: FindTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindTarget {
    /// Output holding this text.
    Text(String),
    /// The next `i` event.
    Input,
}

/// The answer of `find`: the event where the match ends (seek there and the match is on
/// screen), or 404 when nothing after `after` matches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FindHit {
    pub time: f64,
    pub offset: u64,
}

#[derive(Deserialize)]
struct RawFindQuery {
    after: Option<String>,
    text: Option<String>,
    input: Option<String>,
}

impl FindQuery {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let q: RawFindQuery =
            serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))?;
        let after = match q.after {
            None => -1.0,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| QueryError::bad_value("after", &text, "a time in seconds"))?,
        };
        let input = match q.input.as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(QueryError::bad_value("input", other, "1 or 0")),
        };
        let target = match (q.text, input) {
            (Some(_), true) => {
                return Err(QueryError::Malformed(
                    "ask for text= or input=1, not both".into(),
                ));
            }
            (Some(text), false) => {
                let chars = text.chars().count();
                if chars == 0 || chars > MAX_FIND_TEXT {
                    return Err(QueryError::bad_value("text", &text, "1 to 200 characters"));
                }
                FindTarget::Text(text)
            }
            (None, true) => FindTarget::Input,
            (None, false) => {
                return Err(QueryError::Malformed(
                    "say what to find: text=WORDS or input=1".into(),
                ));
            }
        };
        Ok(Self { after, target })
    }

    pub fn to_query(&self) -> String {
        let after = ("after", self.after.to_string());
        let pairs = match &self.target {
            FindTarget::Text(text) => vec![after, ("text", text.clone())],
            FindTarget::Input => vec![after, ("input", "1".to_owned())],
        };
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_queries_round_trip() {
        for q in [
            RecordingQuery::default(),
            RecordingQuery {
                user: Some("a b".into()),
                target: Some("ssh:web-1".into()),
                since: Some(1),
                until: Some(2),
            },
        ] {
            assert_eq!(RecordingQuery::parse(&q.to_query()), Ok(q));
        }
    }

    #[test]
    fn find_queries_round_trip_and_refuse_nonsense() {
        for q in [
            FindQuery {
                after: 1.5,
                target: FindTarget::Text("a b&c".into()),
            },
            FindQuery {
                after: 0.0,
                target: FindTarget::Input,
            },
        ] {
            assert_eq!(FindQuery::parse(&q.to_query()), Ok(q));
        }
        for bad in [
            "",
            "after=x&input=1",
            "after=NaN&input=1",
            "text=a&input=1",
            "input=maybe",
            "text=",
        ] {
            assert!(FindQuery::parse(bad).is_err(), "{bad}");
        }
        let long = format!("text={}", "x".repeat(MAX_FIND_TEXT + 1));
        assert!(FindQuery::parse(&long).is_err());
    }

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
