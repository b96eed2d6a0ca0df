//! `?watch=true` on pod and namespace lists: a chunked stream of
//! `{"type":"ADDED|MODIFIED|BOOKMARK|ERROR","object":{...}}` lines, enough
//! for `kube::runtime::watcher`.
//!
//! - `resourceVersion` unset or `0`: ADDED for every current object, then
//!   changes; a number: the changes after it (the emulator keeps every
//!   change since start, so a resourceVersion is never too old).
//! - `sendInitialEvents=true` (streaming lists): the ADDED events end with a
//!   BOOKMARK annotated `k8s.io/initial-events-end: "true"`.
//! - `timeoutSeconds` ends the stream (default 30 minutes, the API server's
//!   minimum request timeout).
//! - A watcher that falls more than 1024 changes behind gets an ERROR event
//!   with a 410 `Expired` Status and the stream ends, so it re-lists — as
//!   for a real "too old resource version".
//!
//! Pods change through the test hooks (phase, restarts); namespaces never
//! change.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::pods::{Cluster, PodEvent, WatchStart};
use crate::query::Query;
use crate::selector::Selector;
use crate::server::Body;
use crate::status::Status;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Options {
    start: WatchStart,
    initial_events_end: bool,
    timeout: Duration,
}

fn options(query: &Query) -> Result<Options, Status> {
    let start = match query.first("resourceVersion") {
        None | Some("") | Some("0") => WatchStart::Now,
        Some(v) => WatchStart::After(
            v.parse()
                .map_err(|_| Status::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let timeout = query
        .int64("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s.unsigned_abs()));
    Ok(Options {
        start,
        initial_events_end: query.bool("sendInitialEvents"),
        timeout,
    })
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(kind: &str, resource_version: u64) -> Bytes {
    line(
        "BOOKMARK",
        &json!({
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {
                "resourceVersion": resource_version.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        }),
    )
}

fn streaming_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(Frame::data(chunk)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves a pod watch.
pub fn pods(
    cluster: &Arc<Cluster>,
    namespace: Option<String>,
    selector: Selector,
    query: &Query,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Response<Body>, Status> {
    let options = options(query)?;
    let (initial, mut changes, version) =
        cluster.watch_pods(namespace.as_deref(), &selector, options.start);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for event in &initial {
            if tx
                .send(line(event.event_type, &event.object))
                .await
                .is_err()
            {
                return;
            }
        }
        if options.initial_events_end && tx.send(bookmark("Pod", version)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(options.timeout);
        tokio::pin!(deadline);
        loop {
            let event: Arc<PodEvent> = tokio::select! {
                received = changes.recv() => match received {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let expired = Status::expired("the watcher fell too far behind");
                        let object = serde_json::to_value(&expired).unwrap_or_default();
                        let _ = tx.send(line("ERROR", &object)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            if event.visible(namespace.as_deref(), &selector)
                && tx
                    .send(line(event.event_type, &event.object))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    Ok(streaming_response(rx))
}

/// Serves a namespace watch: ADDED for each namespace, then nothing until
/// the timeout.
pub fn namespaces(
    cluster: &Arc<Cluster>,
    query: &Query,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Response<Body>, Status> {
    let options = options(query)?;
    let objects = match options.start {
        WatchStart::Now => cluster.namespace_objects(),
        WatchStart::After(_) => Vec::new(),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for object in &objects {
            if tx.send(line("ADDED", object)).await.is_err() {
                return;
            }
        }
        if options.initial_events_end && tx.send(bookmark("Namespace", 1)).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(options.timeout) => {}
            _ = tx.closed() => {}
            _ = shutdown.changed() => {}
        }
    });
    Ok(streaming_response(rx))
}
