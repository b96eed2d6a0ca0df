//! Session recording: every terminal session the config says to record is written, as it
//! runs, to one asciicast v2 file (`common::recording`) under `recording.directory`.
//!
//! The session registry (`session.rs`) taps its two pumps: the output task hands each read
//! of the backend to [`Recording::output`] before it enters the ring, the input task each
//! keystroke and resize before it goes to the backend. The taps only queue the bytes (a
//! bounded channel, `recording.queue_events`) with the time they happened; one writer task
//! per session turns them into JSON lines and writes them, flushing at least every second
//! while there is something to flush (so a crash loses at most the last second, and an idle
//! session costs nothing). When the queue is full, `on_failure = "refuse"` makes the tap
//! wait (the backend is slowed as by a slow browser; nothing goes unrecorded), `continue`
//! drops the event, counts it and writes a marker of the lost bytes once there is room.
//!
//! Output is raw bytes and an event's data is a JSON string: a multi-byte character split
//! between two reads is carried over to the next event whole, so the events' text,
//! concatenated, is exactly the bytes the browser got (bytes that are not UTF-8 at all
//! become U+FFFD).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::TermSize;
use common::recording::{self as cast, CastEnv, CastHeader, CastMeta, RecordingInfo};
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

pub mod replay;

use crate::backend::BackendKind;
use crate::close::Close;
use crate::config::{OnRecordingFailure, RecordingConfig};
use crate::metrics::Metrics;

/// Most the writer holds before writing, between flushes.
const WRITE_CHUNK: usize = 64 * 1024;
/// How often a recording with unwritten events is flushed, at least.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most of a header read by the recordings list.
const MAX_HEADER: u64 = 16 * 1024;

/// The recorder of a relay: starts recordings and keeps the folder within its limits.
pub struct Recorder {
    metrics: Arc<Metrics>,
    /// Ids of the recordings being written (retention leaves them alone).
    active: Arc<Mutex<HashSet<String>>>,
    /// A recording was finished (for a wait on the last one).
    finished: Arc<Notify>,
}

/// Whether a new session is recorded ([`Recorder::start`]).
pub enum RecordingStart {
    /// The config does not record this target.
    NotRecorded,
    Recording(Recording),
    /// The config records this target but the recorder cannot write, and
    /// `on_failure = "continue"`: the session runs unrecorded; the text tells its user.
    Unrecorded(String),
}

/// What a new recording is of.
pub struct RecordingMeta<'a> {
    pub user: &'a str,
    pub target: &'a str,
    /// What the user's grants say about recording the target (`Grant::record`).
    pub grant_says: Option<bool>,
    pub backend: BackendKind,
    pub size: TermSize,
}

#[derive(Debug, thiserror::Error)]
#[error("the session recording cannot be written ({0})")]
pub struct RecordingFailed(String);

impl Recorder {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            active: Arc::default(),
            finished: Arc::default(),
        })
    }

    /// Returns once no recording is being written (every file has its end marker).
    pub async fn all_finished(&self) {
        loop {
            let finished = self.finished.notified();
            if self
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                return;
            }
            finished.await;
        }
    }

    /// Starts recording a session, when `config` says to record `meta.target`; a refusal
    /// (4502) when it cannot be under `on_failure = "refuse"`.
    pub async fn start(
        &self,
        config: Option<&RecordingConfig>,
        meta: RecordingMeta<'_>,
    ) -> Result<RecordingStart, Close> {
        let Some(config) = config.filter(|c| c.records(meta.target, meta.grant_says)) else {
            return Ok(RecordingStart::NotRecorded);
        };
        match self.open(config, &meta).await {
            Ok(recording) => Ok(RecordingStart::Recording(recording)),
            Err(e) => {
                self.metrics.recording_failures.inc();
                tracing::warn!(target = meta.target, "session not recorded: {e}");
                match config.on_failure {
                    // The user is told without the recorder's details (paths are the
                    // operator's business; the log and the metric have them).
                    OnRecordingFailure::Continue => Ok(RecordingStart::Unrecorded(format!(
                        "sessions on {} are recorded, but the recorder cannot write: this session is NOT recorded (the operator is alerted)",
                        meta.target
                    ))),
                    OnRecordingFailure::Refuse => Err(Close::unavailable(format!(
                        "sessions on {} are recorded and {e}; nothing was opened: tell your operator",
                        meta.target
                    ))),
                }
            }
        }
    }

    async fn open(
        &self,
        config: &RecordingConfig,
        meta: &RecordingMeta<'_>,
    ) -> Result<Recording, RecordingFailed> {
        let failed = |what: &str, e: std::io::Error| {
            RecordingFailed(format!("{what} {}: {e}", config.directory.display()))
        };
        // Recordings hold keystrokes (typed passwords too): for the relay's user only.
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.directory)
            .await
            .map_err(|e| failed("cannot create the folder", e))?;
        self.sweep(config).await;
        let started = SystemTime::now();
        let unix = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        let id = format!(
            "{}-{}",
            unix.as_secs(),
            hex::encode(rand::random::<[u8; 8]>())
        );
        let path = config.directory.join(file_name(&id, config.compress));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| failed("cannot create a file in", e))?;
        let header = CastHeader {
            version: 2,
            width: meta.size.cols,
            height: meta.size.rows,
            timestamp: unix.as_secs(),
            title: meta.target.to_owned(),
            env: CastEnv {
                term: "xterm-256color".into(),
                user: meta.user.to_owned(),
            },
            opsdeck: CastMeta {
                id: id.clone(),
                user: meta.user.to_owned(),
                target: meta.target.to_owned(),
                backend: meta.backend.as_str().to_owned(),
            },
        };
        let mut encoder = Encoder::new(config.compress);
        // A header of our own plain fields always serialises.
        let line = serde_json::to_string(&header).unwrap_or_default();
        encoder.line(line.as_bytes());
        let mut writer = Writer {
            file,
            encoder,
            output: Utf8Carry::default(),
            input: Utf8Carry::default(),
        };
        writer
            .write_out(true)
            .await
            .map_err(|e| failed("cannot write to", e))?;
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        let (events, rx) = mpsc::channel(config.queue_events);
        let end_reason = Arc::new(Mutex::new(None));
        let task = WriterTask {
            id: id.clone(),
            rx,
            writer,
            start: Instant::now(),
            end_reason: end_reason.clone(),
            active: self.active.clone(),
            finished: self.finished.clone(),
            metrics: self.metrics.clone(),
            retention: config.clone(),
        };
        tokio::spawn(task.run());
        Ok(Recording {
            id,
            events,
            start: Instant::now(),
            policy: config.on_failure,
            lost: Arc::new(AtomicU64::new(0)),
            end_reason,
            metrics: self.metrics.clone(),
        })
    }

    /// Deletes what `config`'s retention says is too old or too much, oldest first,
    /// never a recording being written; returns how many files went.
    pub async fn sweep(&self, config: &RecordingConfig) -> usize {
        let active = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || sweep(&config, &active))
            .await
            .unwrap_or(0)
    }

    /// The recordings in `directory`, newest first (headers that do not read are left out).
    pub async fn list(&self, directory: &Path) -> Vec<RecordingInfo> {
        let active = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let directory = directory.to_owned();
        tokio::task::spawn_blocking(move || list(&directory, &active))
            .await
            .unwrap_or_default()
    }

    /// Whose session the recording at `path` is (from its header).
    pub async fn owner(path: &Path) -> Option<String> {
        let path = path.to_owned();
        let compressed = path.extension().is_some_and(|e| e == "gz");
        tokio::task::spawn_blocking(move || read_header(&path, compressed))
            .await
            .ok()
            .flatten()
            .map(|header| header.opsdeck.user)
    }

    /// The file of recording `id` in `directory`, if there is one (`id` must be valid).
    pub fn file(directory: &Path, id: &str) -> Option<PathBuf> {
        if !cast::valid_id(id) {
            return None;
        }
        [false, true]
            .into_iter()
            .map(|compressed| directory.join(file_name(id, compressed)))
            .find(|path| path.is_file())
    }
}

fn file_name(id: &str, compressed: bool) -> String {
    if compressed {
        format!("{id}.cast.gz")
    } else {
        format!("{id}.cast")
    }
}

/// The recording id of a file name, if it is a recording's.
fn id_of(name: &str) -> Option<(&str, bool)> {
    let (id, compressed) = match name.strip_suffix(".cast.gz") {
        Some(id) => (id, true),
        None => (name.strip_suffix(".cast")?, false),
    };
    cast::valid_id(id).then_some((id, compressed))
}

struct Entry {
    path: PathBuf,
    modified: SystemTime,
    bytes: u64,
}

fn entries(directory: &Path) -> Vec<(String, bool, Entry)> {
    let Ok(dir) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (id, compressed) = id_of(&name)?;
            let meta = entry.metadata().ok().filter(|m| m.is_file())?;
            Some((
                id.to_owned(),
                compressed,
                Entry {
                    path: entry.path(),
                    modified: meta.modified().ok()?,
                    bytes: meta.len(),
                },
            ))
        })
        .collect()
}

fn sweep(config: &RecordingConfig, active: &HashSet<String>) -> usize {
    let mut files: Vec<Entry> = entries(&config.directory)
        .into_iter()
        .filter(|(id, _, _)| !active.contains(id))
        .map(|(_, _, entry)| entry)
        .collect();
    files.sort_by_key(|e| e.modified);
    let now = SystemTime::now();
    let too_old = |e: &Entry| {
        config
            .max_age
            .is_some_and(|age| now.duration_since(e.modified).unwrap_or_default() > age)
    };
    let mut total: u64 = files.iter().map(|e| e.bytes).sum();
    let mut removed = 0;
    for entry in files {
        let over = config.max_total_bytes.is_some_and(|max| total > max);
        if !over && !too_old(&entry) {
            continue;
        }
        match std::fs::remove_file(&entry.path) {
            Ok(()) => {
                total = total.saturating_sub(entry.bytes);
                removed += 1;
                tracing::info!(path = %entry.path.display(), "recording removed by retention");
            }
            Err(e) => tracing::warn!(path = %entry.path.display(), "cannot remove recording: {e}"),
        }
    }
    removed
}

fn list(directory: &Path, active: &HashSet<String>) -> Vec<RecordingInfo> {
    let mut infos: Vec<RecordingInfo> = entries(directory)
        .into_iter()
        .filter_map(|(id, compressed, entry)| {
            let header = read_header(&entry.path, compressed)?;
            Some(RecordingInfo {
                live: active.contains(&id),
                id,
                user: header.opsdeck.user,
                target: header.opsdeck.target,
                backend: header.opsdeck.backend,
                started: header.timestamp,
                modified: entry
                    .modified
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
                bytes: entry.bytes,
                compressed,
            })
        })
        .collect();
    infos.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    infos
}

fn read_header(path: &Path, compressed: bool) -> Option<CastHeader> {
    use std::io::{BufRead, BufReader, Read};
    let file = std::fs::File::open(path).ok()?;
    let reader: Box<dyn Read> = if compressed {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut line = String::new();
    BufReader::new(reader.take(MAX_HEADER))
        .read_line(&mut line)
        .ok()?;
    serde_json::from_str(&line).ok()
}

/// The taps' handle on one session's recording. Cloned into the session's output and
/// input tasks; the recording ends when every clone is dropped.
#[derive(Clone)]
pub struct Recording {
    id: String,
    events: mpsc::Sender<Event>,
    start: Instant,
    policy: OnRecordingFailure,
    /// Bytes dropped from a full queue since the last marker.
    lost: Arc<AtomicU64>,
    end_reason: Arc<Mutex<Option<String>>>,
    metrics: Arc<Metrics>,
}

/// A session's note of its recording: the id (for the audit trail) and the end reason.
#[derive(Clone)]
pub struct RecordingTag {
    id: String,
    end_reason: Arc<Mutex<Option<String>>>,
}

impl RecordingTag {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Why the session ended, for the recording's last marker (the first reason given
    /// stays).
    pub fn end(&self, reason: &str) {
        let mut slot = self.end_reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason.to_owned());
        }
    }
}

/// What a tap queues; times are seconds since the start.
enum Event {
    Output(f64, Bytes),
    Input(f64, Bytes),
    Resize(f64, TermSize),
    Lost(f64, u64),
}

impl Recording {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Output of the backend, before it reaches the ring.
    pub async fn output(&self, bytes: &Bytes) -> Result<(), RecordingFailed> {
        self.send(Event::Output(self.now(), bytes.clone()), bytes.len())
            .await
    }

    /// Keystrokes, as they go to the backend.
    pub async fn input(&self, bytes: &Bytes) -> Result<(), RecordingFailed> {
        self.send(Event::Input(self.now(), bytes.clone()), bytes.len())
            .await
    }

    pub async fn resize(&self, size: TermSize) -> Result<(), RecordingFailed> {
        self.send(Event::Resize(self.now(), size), 0).await
    }

    /// Whether a recording that breaks ends its session (`on_failure = "refuse"`).
    pub fn required(&self) -> bool {
        self.policy == OnRecordingFailure::Refuse
    }

    /// What the session keeps: the id and where its end reason goes, not the queue (the
    /// recording ends when the taps are gone).
    pub fn tag(&self) -> RecordingTag {
        RecordingTag {
            id: self.id.clone(),
            end_reason: self.end_reason.clone(),
        }
    }

    async fn send(&self, event: Event, bytes: usize) -> Result<(), RecordingFailed> {
        let gone = || RecordingFailed("its writer stopped".into());
        match self.policy {
            OnRecordingFailure::Refuse => self.events.send(event).await.map_err(|_| gone()),
            OnRecordingFailure::Continue => {
                let lost = self.lost.load(Ordering::Relaxed);
                if lost > 0 {
                    match self.events.try_send(Event::Lost(self.now(), lost)) {
                        Ok(()) => {
                            self.lost.fetch_sub(lost, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return Err(gone()),
                    }
                }
                match self.events.try_send(event) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.lost.fetch_add(bytes as u64, Ordering::Relaxed);
                        self.metrics.recording_lost_bytes.inc_by(bytes as u64);
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(gone()),
                }
            }
        }
    }
}

/// Bytes of a stream turned into whole UTF-8 text: an incomplete character at the end of
/// one piece waits for the next.
#[derive(Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    fn text(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::with_capacity(self.pending.len());
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Checked by from_utf8 up to valid_up_to.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: keep it for the next piece.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// What is left at the end of the stream (an incomplete character), as U+FFFD.
    fn rest(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Lines, plain or through gzip, waiting to be written.
enum Encoder {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
}

impl Encoder {
    fn new(compress: bool) -> Self {
        if compress {
            Self::Gzip(GzEncoder::new(Vec::new(), Compression::fast()))
        } else {
            Self::Plain(Vec::new())
        }
    }

    fn line(&mut self, line: &[u8]) {
        // Writing into a Vec cannot fail.
        match self {
            Self::Plain(buf) => {
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
            Self::Gzip(gz) => {
                let _ = gz.write_all(line);
                let _ = gz.write_all(b"\n");
            }
        }
    }

    fn pending(&self) -> usize {
        match self {
            Self::Plain(buf) => buf.len(),
            Self::Gzip(gz) => gz.get_ref().len(),
        }
    }

    /// The bytes ready for the file; with `flush`, everything written so far (a gzip sync
    /// flush, so a reader gets every line up to here).
    fn take(&mut self, flush: bool) -> Vec<u8> {
        match self {
            Self::Plain(buf) => std::mem::take(buf),
            Self::Gzip(gz) => {
                if flush {
                    let _ = gz.flush();
                }
                std::mem::take(gz.get_mut())
            }
        }
    }

    /// The last bytes (the gzip trailer).
    fn finish(self) -> Vec<u8> {
        match self {
            Self::Plain(buf) => buf,
            Self::Gzip(gz) => gz.finish().unwrap_or_default(),
        }
    }
}

struct Writer {
    file: tokio::fs::File,
    encoder: Encoder,
    output: Utf8Carry,
    input: Utf8Carry,
}

impl Writer {
    fn event(&mut self, time: f64, code: &str, data: &str) {
        // Microseconds, as asciinema writes them.
        let time = (time * 1e6).round() / 1e6;
        let line = serde_json::to_string(&(time, code, data)).unwrap_or_default();
        self.encoder.line(line.as_bytes());
    }

    fn add(&mut self, event: Event) {
        match event {
            Event::Output(time, bytes) => {
                let text = self.output.text(&bytes);
                if !text.is_empty() {
                    self.event(time, cast::OUTPUT, &text);
                }
            }
            Event::Input(time, bytes) => {
                let text = self.input.text(&bytes);
                if !text.is_empty() {
                    self.event(time, cast::INPUT, &text);
                }
            }
            Event::Resize(time, size) => {
                self.event(time, cast::RESIZE, &format!("{}x{}", size.cols, size.rows));
            }
            Event::Lost(time, bytes) => self.event(
                time,
                cast::MARKER,
                &format!("recording lost {bytes} bytes: its queue was full"),
            ),
        }
    }

    async fn write_out(&mut self, flush: bool) -> std::io::Result<()> {
        let bytes = self.encoder.take(flush);
        if !bytes.is_empty() {
            self.file.write_all(&bytes).await?;
        }
        if flush {
            self.file.flush().await?;
        }
        Ok(())
    }

    async fn finish(mut self, time: f64, reason: &str) -> std::io::Result<()> {
        let output = self.output.rest();
        if !output.is_empty() {
            self.event(time, cast::OUTPUT, &output);
        }
        self.event(time, cast::MARKER, &format!("end: {reason}"));
        let mut rest = self.encoder.take(false);
        rest.extend(self.encoder.finish());
        self.file.write_all(&rest).await?;
        self.file.flush().await?;
        self.file.sync_data().await
    }
}

struct WriterTask {
    id: String,
    rx: mpsc::Receiver<Event>,
    writer: Writer,
    start: Instant,
    end_reason: Arc<Mutex<Option<String>>>,
    active: Arc<Mutex<HashSet<String>>>,
    finished: Arc<Notify>,
    metrics: Arc<Metrics>,
    retention: RecordingConfig,
}

impl WriterTask {
    async fn run(mut self) {
        let result = self.write().await;
        let reason = self
            .end_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "the session ended".to_owned());
        let time = self.start.elapsed().as_secs_f64();
        let result = match result {
            Ok(()) => self.writer.finish(time, &reason).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.metrics.recording_failures.inc();
            tracing::warn!(recording = %self.id, "recording failed: {e}");
        }
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        let config = self.retention;
        let active = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _ = tokio::task::spawn_blocking(move || sweep(&config, &active)).await;
        self.finished.notify_waiters();
    }

    /// Writes events until every tap is gone. An error drops the receiver (by returning),
    /// which the taps see as a failed recording.
    async fn write(&mut self) -> std::io::Result<()> {
        let mut flush_at: Option<Instant> = None;
        loop {
            let event = match flush_at {
                None => self.rx.recv().await,
                Some(at) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                    Ok(event) => event,
                    Err(_) => {
                        self.writer.write_out(true).await?;
                        flush_at = None;
                        continue;
                    }
                },
            };
            let Some(event) = event else {
                return Ok(());
            };
            self.writer.add(event);
            if flush_at.is_none() {
                flush_at = Some(Instant::now() + FLUSH_EVERY);
            }
            if self.writer.encoder.pending() >= WRITE_CHUNK {
                self.writer.write_out(false).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_reads_is_carried_whole() {
        let text = "a你😀b";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut carry = Utf8Carry::default();
            let joined = carry.text(&bytes[..cut]) + &carry.text(&bytes[cut..]);
            assert_eq!(joined, text, "cut at {cut}");
        }
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.text(b"x\xffy"), "x\u{fffd}y");
        assert_eq!(carry.text(b"\xe4\xbd"), "");
        assert_eq!(carry.rest(), "\u{fffd}");
    }

    #[test]
    fn only_valid_recording_file_names_have_ids() {
        assert_eq!(id_of("1-ab.cast"), Some(("1-ab", false)));
        assert_eq!(id_of("1-ab.cast.gz"), Some(("1-ab", true)));
        assert_eq!(id_of("notes.txt"), None);
        assert_eq!(id_of("a.b.cast"), None);
    }
}
