//! The query strings of the stream endpoints: one typed struct per endpoint, parsed by the
//! relay and built by the browser app, so both ends agree on every parameter's name and form.
//!
//! Every struct carries the [`ResumeQuery`] (`session`, `position`, and chat's `since`) flat
//! beside its own parameters. Parsing answers a bad value with a [`QueryError`] that says
//! what to send instead; unknown parameters are ignored, so newer clients can add hints.
//!
//! | endpoint | struct | own parameters |
//! |---|---|---|
//! | `/ws/ssh/{host}`, `/ws/k8s/exec/...` | [`TerminalQuery`] | `rows`, `cols` (default 24×80), `flow=1` |
//! | `/ws/tail/{file}` | [`TailQuery`] | `lines` |
//! | `/ws/k8s/logs/...` | [`PodLogQuery`] | `tail_lines`, `timestamps`, `previous` |
//! | `/ws/chat/{room}` | [`ChatQuery`] | (`since=` is its resume position) |
//! | `/ws/exec/{token}` | [`JobQuery`] | — |

use serde::Deserialize;

use crate::client::{ResizeOrder, TermSize};
use crate::error::QueryError;
use crate::resume::{Position, ResumeQuery, encode};

/// A query string of one endpoint.
pub trait EndpointQuery: Sized {
    /// Parses a raw query string (without the `?`); an empty one gives every default.
    fn parse(raw: &str) -> Result<Self, QueryError>;
    /// The query string (without the `?`); values are percent-encoded.
    fn to_query(&self) -> String;
}

/// Reads the raw (all-text) form of a query; values are checked by the caller.
fn raw<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, QueryError> {
    serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))
}

/// `name=value&...`, skipping absent values, then the resume token.
fn join(pairs: &[(&str, Option<String>)], resume: &ResumeQuery) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
        .collect();
    let resume = resume.to_query();
    if !resume.is_empty() {
        parts.push(resume);
    }
    parts.join("&")
}

fn number<T: std::str::FromStr>(
    value: Option<String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, QueryError> {
    value
        .map(|text| {
            text.parse::<T>()
                .map_err(|_| QueryError::bad_value(name, &text, expected))
        })
        .transpose()
}

/// `true`, `1` or a bare name mean yes; `false` or `0` no.
fn flag(value: Option<String>, name: &'static str) -> Result<bool, QueryError> {
    match value.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(QueryError::bad_value(name, other, "true or false")),
    }
}

/// A terminal (SSH host or pod exec): its first size, flow control and resume token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminalQuery {
    pub rows: Option<u16>,
    pub cols: Option<u16>,
    /// `flow=1`: the browser acknowledges what it displayed (see
    /// [`crate::ClientFrame::Ack`]).
    pub flow: bool,
    /// `resize_order=cols_rows`: `{"resize": [a, b]}` pairs are `[cols, rows]`, as the
    /// classic SSH front end sent them. Default `rows_cols`.
    pub resize_order: ResizeOrder,
    pub resume: ResumeQuery,
}

#[derive(Deserialize)]
struct RawTerminalQuery {
    rows: Option<String>,
    cols: Option<String>,
    flow: Option<String>,
    resize_order: Option<String>,
    #[serde(flatten)]
    resume: ResumeQuery,
}

impl TerminalQuery {
    /// A new terminal of `size`, with flow control as the browser app uses it.
    pub fn new(size: TermSize, flow: bool) -> Self {
        Self {
            rows: Some(size.rows),
            cols: Some(size.cols),
            flow,
            resize_order: ResizeOrder::RowsCols,
            resume: ResumeQuery::default(),
        }
    }

    /// The first size; 24×80 where not given.
    pub fn size(&self) -> Result<TermSize, QueryError> {
        let default = TermSize::default();
        TermSize::new(
            self.rows.unwrap_or(default.rows),
            self.cols.unwrap_or(default.cols),
        )
        .map_err(QueryError::BadSize)
    }

    /// The session to resume and the byte offset reached in it.
    pub fn resume_at(&self) -> Result<Option<(&str, u64)>, QueryError> {
        self.resume.counted("a byte offset")
    }
}

impl EndpointQuery for TerminalQuery {
    fn parse(text: &str) -> Result<Self, QueryError> {
        let q: RawTerminalQuery = raw(text)?;
        let flow = match q.flow.as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(QueryError::BadFlow(other.chars().take(64).collect())),
        };
        let resize_order = match q.resize_order.as_deref() {
            None | Some("rows_cols") => ResizeOrder::RowsCols,
            Some("cols_rows") => ResizeOrder::ColsRows,
            Some(other) => {
                return Err(QueryError::BadResizeOrder(other.chars().take(64).collect()));
            }
        };
        Ok(Self {
            rows: number(q.rows, "rows", "a number of character cells")?,
            cols: number(q.cols, "cols", "a number of character cells")?,
            flow,
            resize_order,
            resume: q.resume,
        })
    }

    fn to_query(&self) -> String {
        let pairs = [
            ("rows", self.rows.map(|n| n.to_string())),
            ("cols", self.cols.map(|n| n.to_string())),
            ("flow", self.flow.then(|| "1".to_owned())),
            (
                "resize_order",
                (self.resize_order == ResizeOrder::ColsRows).then(|| "cols_rows".to_owned()),
            ),
        ];
        join(&pairs, &self.resume)
    }
}

/// A file tail: how many of the last lines to start with, and the resume token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailQuery {
    /// Default `tail.default_lines`; the relay caps it at `tail.max_lines`.
    pub lines: Option<usize>,
    pub resume: ResumeQuery,
}

#[derive(Deserialize)]
struct RawTailQuery {
    lines: Option<String>,
    #[serde(flatten)]
    resume: ResumeQuery,
}

impl TailQuery {
    /// The tail to resume and the lines received from it.
    pub fn resume_at(&self) -> Result<Option<(&str, u64)>, QueryError> {
        self.resume.counted("a line count")
    }
}

impl EndpointQuery for TailQuery {
    fn parse(text: &str) -> Result<Self, QueryError> {
        let q: RawTailQuery = raw(text)?;
        Ok(Self {
            lines: number(q.lines, "lines", "a number of lines")?,
            resume: q.resume,
        })
    }

    fn to_query(&self) -> String {
        join(
            &[("lines", self.lines.map(|n| n.to_string()))],
            &self.resume,
        )
    }
}

/// A pod's log: where to start and how to show it. With a `position`, `tail_lines` is
/// ignored: the stream goes on exactly after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLogQuery {
    /// Default `k8s.default_tail_lines`; the relay caps it at `k8s.max_tail_lines`.
    pub tail_lines: Option<i64>,
    /// Keep each line's RFC 3339 timestamp.
    pub timestamps: bool,
    /// The log of the container's previous instance.
    pub previous: bool,
    pub resume: ResumeQuery,
}

#[derive(Deserialize)]
struct RawPodLogQuery {
    tail_lines: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    #[serde(flatten)]
    resume: ResumeQuery,
}

impl PodLogQuery {
    /// The position to go on after, if any (`<timestamp>/<lines at it>`).
    pub fn position(&self) -> Option<&Position> {
        self.resume.position.as_ref().filter(|p| !p.is_empty())
    }
}

impl EndpointQuery for PodLogQuery {
    fn parse(text: &str) -> Result<Self, QueryError> {
        let q: RawPodLogQuery = raw(text)?;
        let tail_lines = number::<i64>(q.tail_lines.clone(), "tail_lines", "a number of lines")?;
        if let (Some(n), Some(text)) = (tail_lines, &q.tail_lines)
            && n < 0
        {
            return Err(QueryError::bad_value(
                "tail_lines",
                text,
                "a number of lines",
            ));
        }
        Ok(Self {
            tail_lines,
            timestamps: flag(q.timestamps, "timestamps")?,
            previous: flag(q.previous, "previous")?,
            resume: q.resume,
        })
    }

    fn to_query(&self) -> String {
        let pairs = [
            ("tail_lines", self.tail_lines.map(|n| n.to_string())),
            ("timestamps", Some(self.timestamps.to_string())),
            ("previous", Some(self.previous.to_string())),
        ];
        join(&pairs, &self.resume)
    }
}

/// A chat room: the id of the last message received (`since=`, or `position=`); the
/// `session` (the room) is not needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatQuery {
    pub resume: ResumeQuery,
}

impl ChatQuery {
    /// The last message id received, in either spelling (`since` first, as classic clients
    /// send it).
    pub fn since(&self) -> Option<&Position> {
        self.resume
            .since
            .as_ref()
            .or(self.resume.position.as_ref())
            .filter(|p| !p.is_empty())
    }
}

impl EndpointQuery for ChatQuery {
    fn parse(text: &str) -> Result<Self, QueryError> {
        Ok(Self { resume: raw(text)? })
    }

    fn to_query(&self) -> String {
        self.resume.to_query()
    }
}

/// Job output: the id of the last entry received (`position=`, or `since=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    pub resume: ResumeQuery,
}

impl JobQuery {
    /// The last entry id received, in either spelling.
    pub fn after(&self) -> Option<&Position> {
        self.resume.position().filter(|p| !p.is_empty())
    }
}

impl EndpointQuery for JobQuery {
    fn parse(text: &str) -> Result<Self, QueryError> {
        Ok(Self { resume: raw(text)? })
    }

    fn to_query(&self) -> String {
        self.resume.to_query()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_queries_parse_with_defaults_and_say_what_is_wrong() {
        let q = TerminalQuery::parse("").unwrap();
        assert_eq!(q.size().unwrap(), TermSize { rows: 24, cols: 80 });
        assert!(!q.flow);
        assert_eq!(q.resume_at().unwrap(), None);

        let q = TerminalQuery::parse("rows=40&cols=120&flow=1&session=ab&position=7").unwrap();
        assert_eq!(
            q.size().unwrap(),
            TermSize {
                rows: 40,
                cols: 120
            }
        );
        assert!(q.flow);
        assert_eq!(q.resume_at().unwrap(), Some(("ab", 7)));
        assert_eq!(
            TerminalQuery::parse("session=ab")
                .unwrap()
                .resume_at()
                .unwrap(),
            Some(("ab", 0))
        );

        let err = |raw: &str| TerminalQuery::parse(raw).unwrap_err().to_string();
        assert_eq!(
            err("rows=abc"),
            "rows=\"abc\" is not a number of character cells"
        );
        assert_eq!(
            err("flow=yes"),
            "flow=\"yes\": use flow=1 to acknowledge output with {\"ack\": position} frames"
        );
        assert_eq!(
            TerminalQuery::parse("rows=0")
                .unwrap()
                .size()
                .unwrap_err()
                .to_string(),
            "resize to 0x80 refused: rows and cols must be between 1 and 1000"
        );
        assert_eq!(
            TerminalQuery::parse("position=3")
                .unwrap()
                .resume_at()
                .unwrap_err(),
            QueryError::PositionWithoutSession
        );
        assert_eq!(
            TerminalQuery::parse("session=a&position=x")
                .unwrap()
                .resume_at()
                .unwrap_err()
                .to_string(),
            "position=\"x\" is not a byte offset"
        );
    }

    #[test]
    fn queries_are_built_as_the_relay_reads_them() {
        let q = TerminalQuery::new(
            TermSize {
                rows: 30,
                cols: 100,
            },
            true,
        );
        assert_eq!(q.to_query(), "rows=30&cols=100&flow=1");
        assert_eq!(TerminalQuery::parse(&q.to_query()).unwrap(), q);

        let logs = PodLogQuery {
            tail_lines: Some(200),
            timestamps: true,
            previous: false,
            resume: ResumeQuery::default(),
        };
        assert_eq!(
            logs.to_query(),
            "tail_lines=200&timestamps=true&previous=false"
        );
        assert_eq!(PodLogQuery::parse(&logs.to_query()).unwrap(), logs);

        let tail = TailQuery {
            lines: Some(5),
            resume: ResumeQuery::new("t1", Position::count(9)),
        };
        assert_eq!(tail.to_query(), "lines=5&session=t1&position=9");
        assert_eq!(TailQuery::parse(&tail.to_query()).unwrap(), tail);
    }

    #[test]
    fn stream_positions_are_read_in_either_spelling() {
        let chat = ChatQuery::parse("since=5-1").unwrap();
        assert_eq!(chat.since(), Some(&Position::from("5-1")));
        let chat = ChatQuery::parse("session=ops&position=7-0").unwrap();
        assert_eq!(chat.since(), Some(&Position::from("7-0")));
        assert_eq!(ChatQuery::parse("since=").unwrap().since(), None);
        let job = JobQuery::parse("since=3-0").unwrap();
        assert_eq!(job.after(), Some(&Position::from("3-0")));
        let logs = PodLogQuery::parse("position=2026-01-02T03:04:05Z%2F2").unwrap();
        assert_eq!(
            logs.position(),
            Some(&Position::from("2026-01-02T03:04:05Z/2"))
        );
    }

    #[test]
    fn pod_log_flags_and_counts_are_checked() {
        let err = |raw: &str| PodLogQuery::parse(raw).unwrap_err().to_string();
        assert_eq!(
            err("tail_lines=-1"),
            "tail_lines=\"-1\" is not a number of lines"
        );
        assert_eq!(
            err("timestamps=maybe"),
            "timestamps=\"maybe\" is not true or false"
        );
        let q = PodLogQuery::parse("timestamps&previous=1").unwrap();
        assert!(q.timestamps && q.previous);
        assert_eq!(
            TailQuery::parse("lines=-1").unwrap_err().to_string(),
            "lines=\"-1\" is not a number of lines"
        );
    }
}
