//! `/ws/k8s/logs/{cluster}/{namespace}/{pod}/{container}`: a container's live log.
//!
//! Query: `tail_lines` (default `k8s.default_tail_lines`, at most `k8s.max_tail_lines`),
//! `timestamps` (keep each line's RFC 3339 timestamp; default false), `previous` (the log of
//! the instance before the last restart), and the resume token `position` (`session` is
//! not used). With a position, `tail_lines` is ignored: the stream goes on exactly after it.
//!
//! The pod and container are checked first (4404 when missing, 4403 when the cluster's RBAC
//! says no, 4400 when the API server refuses the request, e.g. for a container still
//! waiting to start). Then a [`Follow`] task relays the log; closing the WebSocket drops
//! the task, and with it the API request.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use common::server::StreamEvent;
use common::{CloseCode, StreamKind};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::follow::Follow;
use super::position::{LineClock, LogPosition};
use super::{ContainerPath, pod};
use crate::access::TargetRef;
use crate::auth::Principal;
use crate::backend::{Attachment, Inbound, InputRefused, Outbound};
use crate::config::{Config, K8sConfig};
use crate::endpoints::{Refusal, StreamOpener};
use crate::server::AppState;

/// Frames queued towards the browser before the log reader waits.
const LOG_QUEUE: usize = 16;

/// The `/ws/k8s/logs/...` endpoint.
pub struct LogsStream {
    pub path: ContainerPath,
    pub query: String,
}

#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    tail_lines: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    position: Option<String>,
}

/// What the viewer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogOptions {
    tail_lines: i64,
    timestamps: bool,
    previous: bool,
    from: Option<LogPosition>,
}

impl LogQuery {
    fn options(raw: &str, limits: &K8sConfig) -> Result<LogOptions, Refusal> {
        let query: Self = serde_urlencoded::from_str(raw)
            .map_err(|e| Refusal::bad_request(format!("bad query string: {e}")))?;
        let tail_lines = match &query.tail_lines {
            None => limits.default_tail_lines,
            Some(text) => match text.parse::<i64>() {
                Ok(n) if n >= 0 => n.min(limits.max_tail_lines),
                _ => {
                    return Err(Refusal::bad_request(format!(
                        "tail_lines={text:?} is not a number of lines"
                    )));
                }
            },
        };
        let from = match query.position.as_deref() {
            None | Some("") => None,
            Some(text) => Some(LogPosition::parse(text).map_err(Refusal::bad_request)?),
        };
        Ok(LogOptions {
            tail_lines,
            timestamps: flag(&query.timestamps, "timestamps")?,
            previous: flag(&query.previous, "previous")?,
            from,
        })
    }
}

fn flag(value: &Option<String>, name: &str) -> Result<bool, Refusal> {
    match value.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(Refusal::bad_request(format!(
            "{name}={other:?} is not true or false"
        ))),
    }
}

#[async_trait]
impl StreamOpener for LogsStream {
    fn backend(&self) -> &'static str {
        "k8s"
    }

    fn target(&self, config: &Config) -> Result<TargetRef, Refusal> {
        Ok(self.path.target(config)?)
    }

    async fn open(
        &self,
        state: &Arc<AppState>,
        who: &Principal,
    ) -> Result<Box<dyn Attachment>, Refusal> {
        let config = state.config();
        let options = LogQuery::options(&self.query, &config.k8s)?;
        let client = state.k8s.client(&config, &self.path.cluster, who).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.path.namespace);
        let found = pod::get(&api, &self.path, config.k8s.request_timeout).await?;
        let container = pod::container(&found, &self.path)?;
        let resumed = options.from.is_some();
        let clock = LineClock::new(options.from);
        let mut follow = Follow::new(
            api,
            self.path.clone(),
            clock,
            &container,
            config.k8s.clone(),
        );
        follow.timestamps = options.timestamps;
        follow.previous = options.previous;
        let body = follow
            .request(Some(options.tail_lines), options.previous, true)
            .await?;
        let connected = StreamEvent::Connected {
            stream: StreamKind::PodLogs,
            session: String::new(),
            position: follow.clock.position(),
            resumed,
        };
        let (out, frames) = mpsc::channel(LOG_QUEUE);
        let task = tokio::spawn(follow.run(body, out));
        Ok(Box::new(LogAttachment {
            frames,
            task,
            pending: VecDeque::from([Outbound::Text(connected.into())]),
        }))
    }
}

/// One viewer of a pod log; its task reads the log for it alone.
struct LogAttachment {
    frames: mpsc::Receiver<Outbound>,
    task: JoinHandle<()>,
    pending: VecDeque<Outbound>,
}

#[async_trait]
impl Attachment for LogAttachment {
    async fn next(&mut self) -> Outbound {
        if let Some(out) = self.pending.pop_front() {
            return out;
        }
        // `recv` is cancel-safe.
        self.frames.recv().await.unwrap_or_else(|| {
            Outbound::Close(
                CloseCode::GoingAway,
                "the log stream stopped; reconnect to resume".into(),
            )
        })
    }

    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused> {
        let what = match input {
            Inbound::Binary(_) => "binary",
            Inbound::Frame(_) => "input",
        };
        Err(InputRefused::not_accepted(what))
    }
}

impl Drop for LogAttachment {
    fn drop(&mut self) {
        // Drops the response body mid-stream, which ends the API request.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_are_parsed_capped_and_checked() {
        let limits = K8sConfig::default();
        let o = LogQuery::options("", &limits).unwrap();
        assert_eq!(o.tail_lines, 500);
        assert!(!o.timestamps && !o.previous && o.from.is_none());
        let o =
            LogQuery::options("tail_lines=99999999&timestamps=true&previous=1", &limits).unwrap();
        assert_eq!(o.tail_lines, 50_000);
        assert!(o.timestamps && o.previous);
        let o =
            LogQuery::options("position=2024-01-01T00%3A00%3A01.000000000Z%2F3", &limits).unwrap();
        assert_eq!(o.from.unwrap().count, 3);
        for bad in ["tail_lines=-1", "timestamps=maybe", "position=3"] {
            let refusal = LogQuery::options(bad, &limits).unwrap_err();
            assert_eq!(refusal.code, CloseCode::BadRequest, "{bad}");
        }
    }
}
