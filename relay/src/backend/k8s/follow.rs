//! The task behind one pod log viewer: reads the API server's log stream, turns it into
//! `lines` frames, and keeps following when the stream ends while the container still runs.
//!
//! Bytes are split into lines on `\n` and each whole line is decoded once (lossily, cut at
//! `k8s.max_line_bytes`), so no character is ever split. Frames go to the viewer through a
//! small bounded queue: a viewer that does not read stops this task, which stops reading the
//! API server's response. When a stream ends the pod decides what follows:
//!
//! | the pod | then |
//! |---|---|
//! | container running, same restart count | `status refollowing`, a new request from the position |
//! | container running, restart count changed | `status container_restarted`, the rest of the previous instance's log, then the new one |
//! | container not running (crash loop, ...) | `status other` once, then wait (watch) until it runs again |
//! | pod Succeeded / Failed | close 1000, "its log is complete" |
//! | pod deleted | close 1000, "was deleted" |
//! | API error | close with its code |

use std::pin::Pin;
use std::time::Duration;

use common::CloseCode;
use common::server::{StatusKind, StreamEvent};
use futures_util::io::{AsyncBufRead, AsyncBufReadExt};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ContainerPath;
use super::error::{K8sError, timed};
use super::pod::{self, ContainerState};
use super::position::{LineClock, split_stamp, whole_second};
use crate::backend::Outbound;
use crate::backend::tail::lines::LineSplitter;
use crate::close::{Close, CloseCause};
use crate::config::K8sConfig;

/// Most lines in one `lines` frame.
const BATCH_LINES: usize = 1000;
/// A frame is sent once its lines reach this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// Longest wait between refollows of an API server that ends every follow at once.
const MAX_REFOLLOW_DELAY: Duration = Duration::from_secs(30);
/// A stream that lasted this long was not ended "at once": refollow without waiting.
const HEALTHY_STREAM: Duration = Duration::from_secs(10);

pub type LogBody = Pin<Box<dyn AsyncBufRead + Send>>;
type PodChanges = Pin<Box<dyn Stream<Item = Result<Option<Pod>, watcher::Error>> + Send>>;

/// The viewer has gone; stop.
struct Gone;

enum Next {
    Refollow(StatusKind, String),
    Close(CloseCode, String),
}

pub struct Follow {
    pub api: Api<Pod>,
    pub path: ContainerPath,
    /// Keep the timestamps in the lines sent (`?timestamps=true`).
    pub timestamps: bool,
    /// Reading the previous instance's log (`?previous=true`): it ends, and so does this.
    pub previous: bool,
    pub restart_count: i32,
    pub clock: LineClock,
    pub limits: K8sConfig,
    splitter: LineSplitter,
    /// Refollows in a row that delivered nothing and ended at once.
    idle_refollows: u32,
    /// When the first request was made: where a refollow starts when no line came yet.
    started: Timestamp,
}

impl Follow {
    pub fn new(
        api: Api<Pod>,
        path: ContainerPath,
        clock: LineClock,
        state: &ContainerState,
        limits: K8sConfig,
    ) -> Self {
        Self {
            api,
            path,
            timestamps: false,
            previous: false,
            restart_count: state.restart_count,
            clock,
            splitter: LineSplitter::new(limits.max_line_bytes),
            limits,
            idle_refollows: 0,
            started: Timestamp::now(),
        }
    }

    /// Requests the log, with timestamps (for positions): from the position when there is
    /// one, else its last `tail_lines` lines, else (a refollow before any line came) from
    /// when this follow started.
    pub async fn request(
        &self,
        tail_lines: Option<i64>,
        previous: bool,
        follow: bool,
    ) -> Result<LogBody, K8sError> {
        let since_time = match (self.clock.since_time(), tail_lines) {
            (Some(since), _) => Some(since),
            (None, Some(_)) => None,
            (None, None) => Some(whole_second(self.started)),
        };
        let params = LogParams {
            container: Some(self.path.container.clone()),
            follow,
            previous,
            timestamps: true,
            tail_lines: tail_lines.filter(|_| since_time.is_none()),
            since_time,
            ..LogParams::default()
        };
        let body = timed(
            &self.path.cluster,
            self.limits.request_timeout,
            self.api.log_stream(&self.path.pod, &params),
        )
        .await?;
        Ok(Box::pin(body))
    }

    /// Relays `body`, then whatever follows it, until the log ends or the viewer goes.
    pub async fn run(mut self, mut body: LogBody, out: mpsc::Sender<Outbound>) {
        let _ = self.run_until_gone(&mut body, &out).await;
    }

    /// For a resume whose position lies in an earlier instance of the container: says
    /// so, names what is no longer kept (`lost`, as a `gap`), sends the previous
    /// instance's lines after the position, then goes on as [`Follow::run`] with `body`
    /// (the current instance's log from its start).
    pub async fn run_resumed_across_restart(
        mut self,
        mut body: LogBody,
        out: mpsc::Sender<Outbound>,
        lost: Option<String>,
    ) {
        let container = &self.path.container;
        let message = format!(
            "container {container} restarted while you were away (restart count {}); the rest of its earlier log comes first",
            self.restart_count
        );
        let _ = async {
            send(&out, status(StatusKind::ContainerRestarted, message)).await?;
            if let Some(message) = lost {
                let position = self.clock.position();
                send(
                    &out,
                    Outbound::Text(StreamEvent::Gap { message, position }.into()),
                )
                .await?;
            }
            self.catch_up_previous(&out).await?;
            self.run_until_gone(&mut body, &out).await
        }
        .await;
    }

    async fn run_until_gone(
        &mut self,
        body: &mut LogBody,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), Gone> {
        loop {
            let began = Instant::now();
            let delivered = self.relay(body, out).await?;
            let lasted = began.elapsed();
            match self.next_step(out).await? {
                Next::Close(code, reason) => {
                    // The log is over: a last line without a newline is complete now.
                    if let Some(line) = self.splitter.flush() {
                        self.send_lines(vec![line], out).await?;
                    }
                    return send(out, Outbound::Close(Close::new(code, reason))).await;
                }
                Next::Refollow(kind, message) => {
                    // A line cut by the end of the stream comes again whole.
                    self.splitter = LineSplitter::new(self.limits.max_line_bytes);
                    send(out, status(kind, message)).await?;
                    self.pace(delivered, lasted).await;
                    if kind == StatusKind::ContainerRestarted {
                        self.catch_up_previous(out).await?;
                    }
                    self.clock.rewind();
                    *body = match self.request(None, self.previous, true).await {
                        Ok(body) => body,
                        Err(e) => {
                            return send(out, Outbound::Close(e.into())).await;
                        }
                    };
                }
            }
        }
    }

    /// Sends the lines of `body` until it ends; returns how many were new.
    async fn relay(
        &mut self,
        body: &mut LogBody,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<u64, Gone> {
        let mut delivered = 0;
        let mut lines = Vec::new();
        loop {
            let read = match body.fill_buf().await {
                Ok([]) => return Ok(delivered),
                Ok(chunk) => {
                    self.splitter.push(chunk, &mut lines);
                    chunk.len()
                }
                Err(e) => {
                    tracing::debug!(container = %self.path, "log stream failed: {e}");
                    return Ok(delivered);
                }
            };
            body.consume_unpin(read);
            delivered += self.send_lines(std::mem::take(&mut lines), out).await?;
        }
    }

    /// Sends the new ones of `lines` in frames of bounded size; returns how many.
    async fn send_lines(
        &mut self,
        lines: Vec<String>,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<u64, Gone> {
        let mut sent = 0;
        let mut batch = Vec::new();
        let mut bytes = 0;
        for line in &lines {
            let Some(line) = self.clock.take(line) else {
                continue;
            };
            let text = match split_stamp(line) {
                Some((_, _, text)) if !self.timestamps => text,
                _ => line,
            };
            bytes += text.len();
            batch.push(text.to_owned());
            if batch.len() >= BATCH_LINES || bytes >= BATCH_BYTES {
                sent += batch.len() as u64;
                send(out, self.frame(std::mem::take(&mut batch))).await?;
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            sent += batch.len() as u64;
            send(out, self.frame(batch)).await?;
        }
        Ok(sent)
    }

    fn frame(&self, lines: Vec<String>) -> Outbound {
        Outbound::Text(
            StreamEvent::Lines {
                position: self.clock.position(),
                lines,
            }
            .into(),
        )
    }

    /// After a restart: the previous instance's lines that came after the position.
    async fn catch_up_previous(&mut self, out: &mpsc::Sender<Outbound>) -> Result<(), Gone> {
        self.clock.rewind();
        let Ok(mut body) = self.request(None, true, false).await else {
            return Ok(()); // no previous log is kept
        };
        self.relay(&mut body, out).await?;
        match self.splitter.flush() {
            Some(line) => self.send_lines(vec![line], out).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Waits before following again when the last follow delivered nothing and ended at
    /// once, longer each time: an API server that ends every follow at once must not make
    /// this spin.
    async fn pace(&mut self, delivered: u64, lasted: Duration) {
        if delivered > 0 || lasted >= HEALTHY_STREAM {
            self.idle_refollows = 0;
            return;
        }
        let delay = Duration::from_secs(1 << self.idle_refollows.min(5)).min(MAX_REFOLLOW_DELAY);
        self.idle_refollows += 1;
        tokio::time::sleep(delay).await;
    }

    /// The stream ended: what the pod says should happen next.
    async fn next_step(&mut self, out: &mpsc::Sender<Outbound>) -> Result<Next, Gone> {
        let container = &self.path.container;
        if self.previous {
            return Ok(Next::Close(
                CloseCode::Normal,
                format!("that is the whole log of the previous instance of container {container}"),
            ));
        }
        let limit = self.limits.request_timeout;
        let mut state = match pod::get(&self.api, &self.path, limit).await {
            Ok(found) => pod::container(&found, &self.path),
            Err(e) => Err(e),
        };
        let mut changes: Option<PodChanges> = None;
        let mut told_waiting = false;
        loop {
            let current = match state {
                Ok(current) => current,
                Err(K8sError::NotFound(_)) => {
                    return Ok(Next::Close(
                        CloseCode::Normal,
                        format!("pod {} was deleted; its log ends here", self.path.pod),
                    ));
                }
                Err(e) => return Ok(Next::Close(e.close_code(), e.to_string())),
            };
            if current.pod_finished() {
                return Ok(Next::Close(
                    CloseCode::Normal,
                    format!(
                        "pod {} has terminated (phase {}); its log is complete",
                        self.path.pod, current.phase
                    ),
                ));
            }
            if current.not_running.is_none() {
                if current.restart_count != self.restart_count {
                    self.restart_count = current.restart_count;
                    return Ok(Next::Refollow(
                        StatusKind::ContainerRestarted,
                        format!(
                            "container {container} restarted (restart count {}); following its new instance",
                            current.restart_count
                        ),
                    ));
                }
                let from = self.clock.position();
                let from = if from.is_empty() {
                    "the start"
                } else {
                    from.as_str()
                };
                return Ok(Next::Refollow(
                    StatusKind::Refollowing,
                    format!("the API server ended the log stream; following again from {from}"),
                ));
            }
            if !told_waiting {
                told_waiting = true;
                let why = current.not_running.unwrap_or_default();
                let message = format!(
                    "container {container} is not running ({why}); its log continues when it runs again"
                );
                send(out, status(StatusKind::Other, message)).await?;
            }
            let changes = changes.get_or_insert_with(|| {
                let api = self.api.clone();
                Box::pin(watcher::watch_object(api, &self.path.pod).default_backoff())
            });
            state = loop {
                match changes.next().await {
                    Some(Ok(Some(found))) => break pod::container(&found, &self.path),
                    Some(Ok(None)) => break Err(K8sError::NotFound(String::new())),
                    Some(Err(e)) => tracing::debug!(container = %self.path, "pod watch: {e}"),
                    None => {
                        return Ok(Next::Close(
                            CloseCode::BackendUnavailable,
                            format!(
                                "watching pod {} stopped; reconnect to resume",
                                self.path.pod
                            ),
                        ));
                    }
                }
            };
        }
    }
}

fn status(kind: StatusKind, message: String) -> Outbound {
    Outbound::Text(StreamEvent::Status { kind, message }.into())
}

async fn send(out: &mpsc::Sender<Outbound>, frame: Outbound) -> Result<(), Gone> {
    out.send(frame).await.map_err(|_| Gone)
}
