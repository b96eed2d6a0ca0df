//! `GET /api/v1/namespaces/{ns}/pods/{pod}/log`: a container's log file as a
//! chunked `text/plain` response, with the kubelet's semantics
//! (`pkg/kubelet/kuberuntime/logs/logs.go`).
//!
//! **Log file format.** Each line of a container's log file is
//! `<RFC 3339 timestamp> <text>\n`, e.g.
//! `2024-05-01T10:00:00.123456789Z hello` — the CRI format without its
//! stream/tag fields. [`crate::Emulator::append_log`] writes lines in this
//! form with the current time. A line without a parseable timestamp is
//! served whole, timestamped with the file's modification time.
//!
//! **Options.** `tailLines` picks the start line first, then `sinceTime` /
//! `sinceSeconds` drop older lines (as the kubelet does: tail, then since);
//! `timestamps=true` prefixes each line with the timestamp in RFC3339Nano
//! *fixed* form (always nine fractional digits) and a space; `limitBytes`
//! cuts the output, mid-line if need be, and ends the stream;
//! `previous=true` reads the log of the instance before the last restart.
//!
//! **Follow.** With `follow=true` the response stays open while the pod is
//! Running; new complete lines are sent as the file grows (a trailing line
//! without `\n` waits for its newline). Growth is noticed through inotify on
//! the log file's directory and through the append hook, with a 1 s forced
//! re-check like the kubelet's `logForceCheckPeriod`. A stream ends when the
//! pod stops running (after the rest of the file is sent), when the
//! container restarts, when a test calls [`crate::Emulator::end_log_follows`]
//! (emulating an API server timeout or a rotation), or when the client goes.
//!
//! **Open follows.** Every `follow=true` response carries a `FollowGuard`
//! inside its body stream, counted in [`OpenFollows`]. hyper drops the body
//! when the stream ends or when the client goes (it notices the closed
//! connection even while it is writing), so tests can await a client
//! cancelling its request ([`crate::Emulator::wait_for_open_log_follows`]).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode, header};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};

use crate::config::PodPhase;
use crate::pods::{Cluster, ContainerView};
use crate::query::Query;
use crate::server::Body;
use crate::status::{FieldError, Status};

/// The kubelet's forced re-check period while following.
const FORCE_CHECK: Duration = Duration::from_secs(1);

/// Chunks buffered towards a slow client before the reader waits.
const STREAM_BUFFER: usize = 16;

/// How many `follow=true` responses are open: their body is still held by
/// hyper for a connected client. Test support; see the module docs.
#[derive(Debug, Clone)]
pub struct OpenFollows(watch::Sender<usize>);

impl Default for OpenFollows {
    fn default() -> Self {
        OpenFollows(watch::Sender::new(0))
    }
}

impl OpenFollows {
    /// The number open now.
    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Watches the number open.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }

    /// Counts one more open follow until the guard is dropped.
    fn open(&self) -> FollowGuard {
        self.0.send_modify(|n| *n += 1);
        FollowGuard(self.0.clone())
    }
}

/// Held by a follow response's body stream; dropping it (stream ended, or
/// hyper dropped the body because the client went) uncounts the follow.
struct FollowGuard(watch::Sender<usize>);

impl Drop for FollowGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Decoded `PodLogOptions`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// `container`
    pub container: Option<String>,
    /// `follow`
    pub follow: bool,
    /// `previous`
    pub previous: bool,
    /// `timestamps`
    pub timestamps: bool,
    /// `tailLines`
    pub tail_lines: Option<i64>,
    /// `limitBytes`
    pub limit_bytes: Option<i64>,
    /// `sinceSeconds`
    pub since_seconds: Option<i64>,
    /// `sinceTime`
    pub since_time: Option<OffsetDateTime>,
}

impl LogOptions {
    /// Decodes and validates the query (`ValidatePodLogOptions`; violations
    /// are a 422 `PodLogOptions "<pod>" is invalid`).
    pub fn from_query(query: &Query, pod: &str) -> Result<Self, Status> {
        let since_time = match query.first("sinceTime") {
            None | Some("") => None,
            Some(v) => Some(OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                Status::bad_request(format!(
                    "parsing time \"{v}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{v}\" as \"2006\""
                ))
            })?),
        };
        let options = LogOptions {
            container: query.first("container").map(str::to_owned),
            follow: query.bool("follow"),
            previous: query.bool("previous"),
            timestamps: query.bool("timestamps"),
            tail_lines: query.int64("tailLines")?,
            limit_bytes: query.int64("limitBytes")?,
            since_seconds: query.int64("sinceSeconds")?,
            since_time,
        };
        let mut errors = Vec::new();
        if let Some(t) = options.tail_lines.filter(|t| *t < 0) {
            errors.push(invalid(
                "tailLines",
                t,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(b) = options.limit_bytes.filter(|b| *b < 1) {
            errors.push(invalid("limitBytes", b, "must be greater than 0"));
        }
        if options.since_seconds.is_some() && options.since_time.is_some() {
            errors.push(FieldError {
                field: String::new(),
                cause_type: "FieldValueForbidden",
                body: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .into(),
            });
        } else if let Some(s) = options.since_seconds.filter(|s| *s < 1) {
            errors.push(invalid("sinceSeconds", s, "must be greater than 0"));
        }
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(Status::invalid("PodLogOptions", pod, &errors))
        }
    }

    fn since(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let from_seconds = self.since_seconds.map(|s| now - time::Duration::seconds(s));
        match (from_seconds, self.since_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

fn invalid(field: &str, value: i64, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        cause_type: "FieldValueInvalid",
        body: format!("Invalid value: {value}: {detail}"),
    }
}

/// Formats a timestamp as RFC3339NanoFixed (`2006-01-02T15:04:05.000000000Z07:00`).
pub fn format_fixed_nanos(t: OffsetDateTime) -> String {
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    );
    let offset = t.offset();
    if offset == UtcOffset::UTC {
        format!("{date}Z")
    } else {
        let (h, m, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        format!(
            "{date}{sign}{:02}:{:02}",
            h.unsigned_abs(),
            m.unsigned_abs()
        )
    }
}

/// One log line: the timestamp it was stored with and its text (with the
/// trailing newline, if it had one).
struct Line<'a> {
    timestamp: OffsetDateTime,
    text: &'a [u8],
}

fn parse_line(raw: &[u8], fallback: OffsetDateTime) -> Line<'_> {
    if let Some(space) = raw.iter().position(|b| *b == b' ')
        && let Ok(prefix) = std::str::from_utf8(&raw[..space])
        && let Ok(timestamp) = OffsetDateTime::parse(prefix, &Rfc3339)
    {
        return Line {
            timestamp,
            text: &raw[space + 1..],
        };
    }
    Line {
        timestamp: fallback,
        text: raw,
    }
}

/// Splits after each `\n`; the last piece may lack one.
fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|b| *b == b'\n').collect()
}

/// Renders lines with the options, honouring the byte budget.
struct Writer {
    timestamps: bool,
    since: Option<OffsetDateTime>,
    remaining: Option<u64>,
}

impl Writer {
    /// Appends the rendered lines to `out`; false once the budget is spent.
    fn write(&mut self, lines: &[&[u8]], fallback: OffsetDateTime, out: &mut Vec<u8>) -> bool {
        for raw in lines {
            let line = parse_line(raw, fallback);
            if self.since.is_some_and(|since| line.timestamp < since) {
                continue;
            }
            let start = out.len();
            if self.timestamps {
                out.extend_from_slice(format_fixed_nanos(line.timestamp).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.text);
            if let Some(remaining) = self.remaining.as_mut() {
                let written = (out.len() - start) as u64;
                if written >= *remaining {
                    out.truncate(start + *remaining as usize);
                    *remaining = 0;
                    return false;
                }
                *remaining -= written;
            }
        }
        true
    }
}

/// Starts serving a log request; errors before the first byte are Status
/// responses (`previous terminated container ... not found`, container
/// waiting to start).
pub fn serve(
    cluster: Arc<Cluster>,
    target: ContainerView,
    options: LogOptions,
    open_follows: &OpenFollows,
    shutdown: watch::Receiver<bool>,
) -> Result<Response<Body>, Status> {
    if target.phase == PodPhase::Pending {
        return Err(Status::bad_request(format!(
            "container \"{}\" in pod \"{}\" is waiting to start: ContainerCreating",
            target.container, target.pod
        )));
    }
    let path = if options.previous {
        target.previous_log.clone().ok_or_else(|| {
            Status::bad_request(format!(
                "previous terminated container \"{}\" in pod \"{}\" not found",
                target.container, target.pod
            ))
        })?
    } else {
        target.log_file.clone()
    };
    // The previous instance is not running: never follow it.
    let follow = options.follow && !options.previous;
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    let reader = Reader {
        cluster,
        target,
        path,
        follow,
        tail_lines: options.tail_lines,
        writer: Writer {
            timestamps: options.timestamps,
            since: options.since(OffsetDateTime::now_utc()),
            remaining: options.limit_bytes.map(|b| b.max(0) as u64),
        },
        tx,
        shutdown,
    };
    tokio::spawn(async move {
        if let Err(error) = reader.run().await {
            tracing::warn!(%error, "log stream ended with an error");
        }
    });
    // The guard lives in the stream's state: it goes when the stream ends or
    // when hyper drops the body.
    let guard = follow.then(|| open_follows.open());
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, io::Error>(Frame::data(chunk)), (rx, guard)))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

struct Reader {
    cluster: Arc<Cluster>,
    target: ContainerView,
    path: PathBuf,
    follow: bool,
    tail_lines: Option<i64>,
    writer: Writer,
    tx: mpsc::Sender<Bytes>,
    shutdown: watch::Receiver<bool>,
}

enum Wake {
    Read,
    Stop,
}

impl Reader {
    async fn run(mut self) -> io::Result<()> {
        // Subscribe before the first read so no growth is missed.
        let mut changed = self.target.signals.changed.subscribe();
        let mut cut = self.target.signals.cut.subscribe();
        changed.borrow_and_update();
        cut.borrow_and_update();

        let (data, mtime, mut inode) = read_from(&self.path, 0).await?;
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut lines = split_lines(&data[..complete]);
        let partial = &data[complete..];
        if !self.follow && !partial.is_empty() {
            lines.push(partial);
        }
        if let Some(tail) = self.tail_lines {
            let keep = usize::try_from(tail).unwrap_or(usize::MAX).min(lines.len());
            lines.drain(..lines.len() - keep);
        }
        if !self.emit(&lines, mtime).await || !self.follow {
            return Ok(());
        }

        let mut position = complete as u64;
        loop {
            let running = self.cluster.phase(&self.target.namespace, &self.target.pod)
                == Some(PodPhase::Running);
            if !running {
                // The container stopped: send what is left, then end.
                let (data, mtime, _) = read_from(&self.path, position).await?;
                self.emit(&split_lines(&data), mtime).await;
                return Ok(());
            }
            let wake = tokio::select! {
                r = changed.changed() => if r.is_ok() { Wake::Read } else { Wake::Stop },
                _ = cut.changed() => Wake::Stop,
                _ = tokio::time::sleep(FORCE_CHECK) => Wake::Read,
                _ = self.tx.closed() => Wake::Stop,
                _ = self.shutdown.changed() => Wake::Stop,
            };
            if matches!(wake, Wake::Stop) {
                return Ok(());
            }
            let metadata = tokio::fs::metadata(&self.path).await.ok();
            let current_inode = metadata.as_ref().map(|m| m.ino());
            let length = metadata.as_ref().map_or(0, |m| m.len());
            if current_inode != Some(inode) || length < position {
                // Recreated or truncated: start over on the new file.
                position = 0;
                inode = current_inode.unwrap_or(inode);
            }
            let (data, mtime, _) = read_from(&self.path, position).await?;
            let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete == 0 {
                continue;
            }
            position += complete as u64;
            if !self.emit(&split_lines(&data[..complete]), mtime).await {
                return Ok(());
            }
        }
    }

    /// Sends rendered lines; false when the stream should end (byte limit
    /// reached or client gone).
    async fn emit(&mut self, lines: &[&[u8]], mtime: OffsetDateTime) -> bool {
        let mut out = Vec::new();
        let more = self.writer.write(lines, mtime, &mut out);
        if !out.is_empty() && self.tx.send(Bytes::from(out)).await.is_err() {
            return false;
        }
        more
    }
}

/// Reads a file from `offset`; returns the bytes, the modification time and
/// the inode.
async fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<u8>, OffsetDateTime, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let metadata = file.metadata().await?;
    let mtime = metadata
        .modified()
        .map(OffsetDateTime::from)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    file.seek(io::SeekFrom::Start(offset)).await?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).await?;
    Ok((data, mtime, metadata.ino()))
}

/// Appends `text` to a log file, one stored line per line of text, each
/// with the current time in the stored format.
pub fn append_line(path: &Path, text: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let stamp = format_fixed_nanos(OffsetDateTime::now_utc());
    let mut record = Vec::with_capacity(text.len() + 40);
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    for line in text.split(|b| *b == b'\n') {
        record.extend_from_slice(stamp.as_bytes());
        record.push(b' ');
        record.extend_from_slice(line);
        record.push(b'\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    file.write_all(&record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn fixed_nanos_keeps_nine_digits() {
        assert_eq!(
            format_fixed_nanos(ts("2024-05-01T10:00:00.5Z")),
            "2024-05-01T10:00:00.500000000Z"
        );
        assert_eq!(
            format_fixed_nanos(ts("2024-05-01T10:00:00+02:00")),
            "2024-05-01T10:00:00.000000000+02:00"
        );
    }

    #[test]
    fn writer_filters_since_prefixes_and_cuts_at_limit() {
        let data = b"2024-05-01T10:00:00Z old\n2024-05-01T10:00:02Z new\nplain line\n";
        let lines = split_lines(data);
        let mut writer = Writer {
            timestamps: true,
            since: Some(ts("2024-05-01T10:00:01Z")),
            remaining: None,
        };
        let mut out = Vec::new();
        assert!(writer.write(&lines, ts("2024-05-01T10:00:03Z"), &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-05-01T10:00:02.000000000Z new\n2024-05-01T10:00:03.000000000Z plain line\n"
        );
        let mut writer = Writer {
            timestamps: false,
            since: None,
            remaining: Some(6),
        };
        let mut out = Vec::new();
        assert!(!writer.write(&lines, ts("2024-05-01T10:00:03Z"), &mut out));
        assert_eq!(out, b"old\nne");
    }

    #[test]
    fn invalid_options_are_a_422_with_the_validation_message() {
        let q = Query::parse(Some("tailLines=-1"));
        let status = LogOptions::from_query(&q, "web-1").unwrap_err();
        assert_eq!(status.code, 422);
        assert_eq!(
            status.message,
            "PodLogOptions \"web-1\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
