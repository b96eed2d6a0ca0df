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

use async_trait::async_trait;
use common::{CloseCode, StreamKind};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::K8sError;
use super::follow::Follow;
use super::position::{LineClock, LogPosition, whole_second};
use super::{ContainerPath, pod};
use crate::backend::{Attachment, Hello, Opened, Outbound};
use crate::close::Close;
use crate::config::K8sConfig;

/// Frames queued towards the browser before the log reader waits.
const LOG_QUEUE: usize = 16;

/// What the viewer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    pub tail_lines: i64,
    pub timestamps: bool,
    pub previous: bool,
    /// Go on exactly after this position (then `tail_lines` is not used).
    pub from: Option<LogPosition>,
}

/// Follows the log of the container at `path`: checks the pod and container first (each
/// refusal with its own close code), then relays the log from a task of its own.
pub async fn follow(
    api: Api<Pod>,
    path: &ContainerPath,
    limits: &K8sConfig,
    options: LogOptions,
) -> Result<Opened, K8sError> {
    let found = pod::get(&api, path, limits.request_timeout).await?;
    let container = pod::container(&found, path)?;
    // Away during a restart: the position lies in an earlier instance than the current.
    let across_restart = match (&options.from, container.started_at) {
        (Some(from), Some(started)) if !options.previous && container.restart_count > 0 => {
            // `startedAt` counts whole seconds: a start in the position's second counts
            // as after it (at worst a needless notice; the clock drops repeated lines).
            (started >= whole_second(from.at)).then(|| {
                // The instance before the current one started after the position too: the
                // ones in between are gone (the API keeps one previous log).
                match container.previous_started_at {
                    Some(previous) if previous <= whole_second(from.at) => None,
                    _ => Some(format!(
                        "container {} restarted more than once since {}; the log of the instances in between is no longer kept",
                        path.container, from.stamp
                    )),
                }
            })
        }
        _ => None,
    };
    let resumed = options.from.is_some();
    let clock = LineClock::new(options.from);
    let mut follow = Follow::new(api, path.clone(), clock, &container, limits.clone());
    follow.timestamps = options.timestamps;
    follow.previous = options.previous;
    let body = follow
        .request(Some(options.tail_lines), options.previous, true)
        .await?;
    let hello = Hello {
        stream: StreamKind::PodLogs,
        session: String::new(),
        position: follow.clock.position(),
        resumed,
    };
    let (out, frames) = mpsc::channel(LOG_QUEUE);
    let task = match across_restart {
        Some(lost) => tokio::spawn(follow.run_resumed_across_restart(body, out, lost)),
        None => tokio::spawn(follow.run(body, out)),
    };
    Ok(Opened::new(hello, LogAttachment { frames, task }))
}

/// One viewer of a pod log; its task reads the log for it alone.
struct LogAttachment {
    frames: mpsc::Receiver<Outbound>,
    task: JoinHandle<()>,
}

#[async_trait]
impl Attachment for LogAttachment {
    async fn next(&mut self) -> Outbound {
        // `recv` is cancel-safe.
        self.frames.recv().await.unwrap_or_else(|| {
            Outbound::Close(Close::new(
                CloseCode::GoingAway,
                "the log stream stopped; reconnect to resume",
            ))
        })
    }
}

impl Drop for LogAttachment {
    fn drop(&mut self) {
        // Drops the response body mid-stream, which ends the API request.
        self.task.abort();
    }
}
