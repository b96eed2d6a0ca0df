//! The audit trail: who signed in, opened what, watched whom, and how it ended.
//!
//! Callers hand an [`AuditEvent`] to [`AuditLog::record`], which never waits: the event
//! goes to the relay's log (target `opsdeck::audit`) and into a bounded queue; one writer
//! task appends it as a JSON line to `audit.file` and, with `[redis]`, adds it to the capped
//! stream `audit.redis_stream` that every relay on that Redis shares. A full queue or a
//! failed write is counted in `opsdeck_audit_failures_total`. `GET /api/audit` reads the
//! shared stream when there is one, else the file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::CloseCode;
use common::audit::{AuditEvent, AuditPage, AuditQuery};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::close::CloseCause;
use crate::config::AuditConfig;
use crate::metrics::Metrics;
use crate::redis_link::RedisLink;

/// Events queued for the writer; beyond this they are dropped (and counted).
const QUEUE: usize = 4096;
/// Entries one `XRANGE` of a query reads.
const SCAN_BATCH: usize = 1000;
/// Longest audit line read back from the file.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no audit trail is kept: set [audit] file (or [redis]) in the relay's config")]
    NotKept,
    #[error("the audit trail cannot be read: {0}")]
    Unreadable(String),
}

impl CloseCause for AuditError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::NotKept => CloseCode::NotFound,
            Self::Unreadable(_) => CloseCode::BackendUnavailable,
        }
    }
}

enum Message {
    Event(Box<AuditEvent>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Where the trail is kept.
#[derive(Clone)]
struct Sinks {
    file: Option<PathBuf>,
    redis: Option<(Arc<RedisLink>, String, u64)>,
}

pub struct AuditLog {
    queue: mpsc::Sender<Message>,
    sinks: Sinks,
    /// The last id given: (unix ms, sequence).
    last: Mutex<(u64, u64)>,
    metrics: Arc<Metrics>,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl AuditLog {
    /// Starts the writer (on the current runtime).
    pub fn new(
        config: &AuditConfig,
        redis: Option<Arc<RedisLink>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let sinks = Sinks {
            file: config.file.clone(),
            redis: redis
                .filter(|_| !config.redis_stream.is_empty())
                .map(|link| (link, config.redis_stream.clone(), config.redis_max_len)),
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(rx, sinks.clone(), metrics.clone()));
        Arc::new(Self {
            queue,
            sinks,
            last: Mutex::new((0, 0)),
            metrics,
        })
    }

    /// Records `event` (its `id` and, when unset, `time` are given here). Never waits.
    pub fn record(&self, mut event: AuditEvent) {
        let now = unix_ms();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            *last = if now > last.0 {
                (now, 0)
            } else {
                (last.0, last.1 + 1)
            };
            event.id = format!("{}-{}", last.0, last.1);
            if event.time == 0 {
                event.time = last.0;
            }
        }
        let line = serde_json::to_string(&event).unwrap_or_default();
        tracing::info!(target: "opsdeck::audit", "{line}");
        if self.sinks.file.is_none() && self.sinks.redis.is_none() {
            return;
        }
        if self
            .queue
            .try_send(Message::Event(Box::new(event)))
            .is_err()
        {
            self.metrics.audit_failures.inc();
        }
    }

    /// Returns once every event recorded so far has been written.
    pub async fn written(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// One page of the trail, oldest first.
    pub async fn query(&self, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        if let Some((link, key, _)) = &self.sinks.redis {
            return query_redis(link, key, query).await;
        }
        match &self.sinks.file {
            Some(path) => query_file(path, query).await,
            None => Err(AuditError::NotKept),
        }
    }
}

/// `<ms>-<seq>` as numbers, for ordering.
fn order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn page(mut events: Vec<AuditEvent>, limit: usize) -> AuditPage {
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.id.clone())
    } else {
        None
    };
    AuditPage { events, next }
}

async fn query_file(path: &PathBuf, query: &AuditQuery) -> Result<AuditPage, AuditError> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuditPage::default()),
        Err(e) => return Err(AuditError::Unreadable(e.to_string())),
    };
    let after = query.after.as_deref().map(order);
    let mut lines = BufReader::new(file).lines();
    let mut found = Vec::new();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| AuditError::Unreadable(e.to_string()))?
    {
        if line.len() > MAX_LINE {
            continue;
        }
        let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
            continue;
        };
        if after.is_some_and(|after| order(&event.id) <= after) || !query.matches(&event) {
            continue;
        }
        found.push(event);
        if found.len() > query.limit {
            break;
        }
    }
    Ok(page(found, query.limit))
}

type StreamEntries = Vec<(String, Vec<(String, String)>)>;

async fn query_redis(
    link: &RedisLink,
    key: &str,
    query: &AuditQuery,
) -> Result<AuditPage, AuditError> {
    let mut conn = link
        .connection()
        .await
        .map_err(|e| AuditError::Unreadable(e.to_string()))?;
    let mut start = match &query.after {
        Some(after) => format!("({after}"),
        None => "-".to_owned(),
    };
    let mut found = Vec::new();
    loop {
        let entries: StreamEntries = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(SCAN_BATCH)
            .query_async(&mut conn)
            .await
            .map_err(|e| AuditError::Unreadable(link.unavailable(e).to_string()))?;
        let done = entries.len() < SCAN_BATCH;
        for (id, fields) in entries {
            start = format!("({id}");
            let Some((_, json)) = fields.iter().find(|(name, _)| name == "event") else {
                continue;
            };
            let Ok(mut event) = serde_json::from_str::<AuditEvent>(json) else {
                continue;
            };
            // The stream's id is the trail's: unique across relays.
            event.id = id;
            if query.matches(&event) {
                found.push(event);
                if found.len() > query.limit {
                    return Ok(page(found, query.limit));
                }
            }
        }
        if done {
            return Ok(page(found, query.limit));
        }
    }
}

async fn write(mut rx: mpsc::Receiver<Message>, sinks: Sinks, metrics: Arc<Metrics>) {
    let mut warned = false;
    let mut file: Option<tokio::fs::File> = None;
    while let Some(message) = rx.recv().await {
        let event = match message {
            Message::Event(event) => event,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let line = serde_json::to_string(&event).unwrap_or_default();
        if let Some(path) = &sinks.file
            && let Err(e) = append(&mut file, path, &line).await
        {
            file = None;
            metrics.audit_failures.inc();
            if !warned {
                warned = true;
                tracing::warn!(path = %path.display(), "cannot write the audit trail: {e}");
            }
        }
        if let Some((link, key, max_len)) = &sinks.redis {
            let added = async {
                let mut conn = link.connection().await.map_err(|e| e.to_string())?;
                redis::cmd("XADD")
                    .arg(key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(*max_len)
                    .arg("*")
                    .arg("event")
                    .arg(&line)
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|e| link.unavailable(e).to_string())
            };
            if let Err(e) = added.await {
                metrics.audit_failures.inc();
                tracing::warn!("cannot add to the audit stream: {e}");
            }
        }
    }
}

async fn append(
    file: &mut Option<tokio::fs::File>,
    path: &PathBuf,
    line: &str,
) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .await?,
        );
    }
    let Some(handle) = file.as_mut() else {
        return Ok(());
    };
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    handle.write_all(&bytes).await?;
    handle.flush().await
}
