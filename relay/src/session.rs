//! Terminal sessions: a registry of remote shells that outlive their WebSockets.
//!
//! A session keeps its output in a ring buffer addressed by byte offset. The attached
//! WebSocket reads from the ring at its own cursor, so the ring *is* the channel to the
//! browser: when more than half of it is unsent, the session stops reading from the
//! backend, which lets the SSH window (or TCP) slow the remote program down. A dropped
//! WebSocket leaves the session running for the grace period; a reconnect that presents the
//! session id and the offset it reached gets exactly the bytes after it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use common::api::TerminalSessionInfo;
use common::server::{ServerFrame, StreamEvent};
use common::{ClientFrame, CloseCode, FLOW_WINDOW, Position, ResizeOrder, StreamKind, TermSize};
use tokio::sync::{Notify, mpsc};

use crate::auth::unix_now;
use crate::backend::{
    Attachment, BackendKind, ExitInfo, Hello, Inbound, InputRefused, Outbound, TerminalEvent,
    TerminalInput, TerminalOutput, TerminalStreams,
};
use crate::close::{Close, CloseCause};
use crate::metrics::Metrics;
use crate::recording::{Recording, RecordingTag};

/// Largest binary frame sent to a browser.
const MAX_CHUNK: usize = 64 * 1024;
/// Input frames queued for a backend before the browser is made to wait.
const INPUT_QUEUE: usize = 16;
/// Watcher notices kept for an owner who is not attached (the oldest go first).
const MAX_NOTICES: usize = 64;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("session {0} has ended or expired; open a new one")]
    Gone(String),
    #[error("session {0} belongs to another user")]
    NotOwner(String),
    #[error("session {0} is a terminal on another target")]
    OtherTarget(String),
    #[error("position {asked} is beyond the {end} bytes this session has produced")]
    BeyondEnd { asked: u64, end: u64 },
    #[error("you already have {0} open terminal sessions; close one first")]
    TooMany(usize),
}

impl CloseCause for SessionError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::Gone(_) => CloseCode::SessionExpired,
            Self::NotOwner(_) => CloseCode::Forbidden,
            Self::OtherTarget(_) | Self::BeyondEnd { .. } => CloseCode::BadRequest,
            Self::TooMany(_) => CloseCode::Forbidden,
        }
    }
}

/// What a session is, for checks on resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLabel {
    pub owner_uid: String,
    pub backend: BackendKind,
    /// The target id, e.g. `ssh:web-1`.
    pub target: String,
}

pub struct TerminalRegistry {
    sessions: Mutex<HashMap<String, Arc<TerminalSession>>>,
    /// Sessions being connected, per user: counted against the limit with the open ones,
    /// so parallel opens cannot all pass the check before any of them is registered.
    connecting: Mutex<HashMap<String, usize>>,
    grace_period: Duration,
    buffer_bytes: usize,
    max_per_user: usize,
    metrics: Arc<Metrics>,
    /// A session was removed (for a drain waiting for the last one).
    removed: Notify,
}

impl TerminalRegistry {
    pub fn new(
        grace_period: Duration,
        buffer_bytes: usize,
        max_per_user: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            grace_period,
            buffer_bytes,
            max_per_user,
            metrics,
            removed: Notify::new(),
        })
    }

    /// Returns once no session is open (a drain waits for running programs to end).
    pub async fn all_ended(&self) {
        loop {
            let removed = self.removed.notified();
            if self.len() == 0 {
                return;
            }
            removed.await;
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<TerminalSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a place for a new session of `owner_uid` while it connects, or refuses when
    /// the user has too many (checked before connecting to the backend, so a refused user
    /// costs no SSH handshake). The place is given back when the reservation is dropped.
    pub fn reserve(self: &Arc<Self>, owner_uid: &str) -> Result<Reservation, SessionError> {
        let sessions = self.sessions();
        let mut connecting = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        let open = sessions
            .values()
            .filter(|s| s.label.owner_uid == owner_uid)
            .count();
        let pending = connecting.entry(owner_uid.to_owned()).or_default();
        if open + *pending >= self.max_per_user {
            return Err(SessionError::TooMany(open + *pending));
        }
        *pending += 1;
        Ok(Reservation {
            registry: self.clone(),
            owner_uid: owner_uid.to_owned(),
        })
    }

    /// Registers a connected terminal of `size` in its reserved place and attaches the
    /// caller to it; with a `recording`, the session's output, keystrokes and resizes are
    /// tapped into it (see `recording.rs`).
    pub fn start_recorded(
        self: &Arc<Self>,
        label: SessionLabel,
        size: TermSize,
        streams: TerminalStreams,
        reservation: Reservation,
        recording: Option<Recording>,
    ) -> TerminalAttachment {
        let (commands, command_rx) = mpsc::channel(INPUT_QUEUE);
        let mut ring = RingState::new(self.buffer_bytes);
        ring.size = size;
        let session = Arc::new(TerminalSession {
            id: hex::encode(rand::random::<[u8; 16]>()),
            label,
            started: unix_now(),
            state: Mutex::new(ring),
            output_ready: Notify::new(),
            space_ready: Notify::new(),
            commands,
            recording: recording.as_ref().map(Recording::tag),
        });
        self.metrics
            .sessions
            .with_label_values(&[session.label.backend.as_str()])
            .inc();
        self.sessions().insert(session.id.clone(), session.clone());
        drop(reservation);
        tokio::spawn(pump_output(
            session.clone(),
            streams.output,
            recording.clone(),
        ));
        tokio::spawn(pump_input(streams.input, command_rx, recording));
        let generation = session.state().attach();
        TerminalAttachment::new(self.clone(), session, generation, 0, false, None)
    }

    /// Re-attaches to a session after a reconnect, replaying what came after `position`.
    pub fn resume(
        self: &Arc<Self>,
        id: &str,
        position: u64,
        label: &SessionLabel,
    ) -> Result<TerminalAttachment, SessionError> {
        let session = self
            .sessions()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::Gone(id.to_owned()))?;
        if session.label.owner_uid != label.owner_uid {
            return Err(SessionError::NotOwner(id.to_owned()));
        }
        if session.label.target != label.target {
            return Err(SessionError::OtherTarget(id.to_owned()));
        }
        let (generation, cursor, gap) = {
            let mut state = session.state();
            let end = state.end();
            if position > end {
                return Err(SessionError::BeyondEnd {
                    asked: position,
                    end,
                });
            }
            let generation = state.attach();
            let cursor = position.max(state.start);
            let gap = (position < state.start).then(|| StreamEvent::Gap {
                message: format!(
                    "{} bytes of output were no longer kept and cannot be replayed",
                    state.start - position
                ),
                position: Position::count(state.start),
            });
            state.sent = cursor;
            // A flow-controlled attachment sets it again (`with_flow_control`), from the
            // offset it resumes at.
            state.acked = None;
            (generation, cursor, gap)
        };
        self.metrics
            .resumes
            .with_label_values(&[session.label.backend.as_str()])
            .inc();
        // Wake the previous attachment (it will find itself replaced) and the backend reader
        // (the rolled-back `sent` may have changed nothing, but waking is cheap).
        session.output_ready.notify_waiters();
        session.space_ready.notify_waiters();
        Ok(TerminalAttachment::new(
            self.clone(),
            session,
            generation,
            cursor,
            true,
            gap,
        ))
    }

    /// What the running session `id` is (for a watch's permission check).
    pub fn label(&self, id: &str) -> Option<SessionLabel> {
        self.sessions().get(id).map(|s| s.label.clone())
    }

    /// Attaches `viewer` read-only to the running session `id`: what its ring holds, then
    /// its output as it comes; the owner is told who joined.
    pub fn watch(&self, id: &str, viewer: &str) -> Result<WatchAttachment, SessionError> {
        let session = self
            .sessions()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::Gone(id.to_owned()))?;
        let cursor = {
            let mut state = session.state();
            if state.ended.is_some() {
                return Err(SessionError::Gone(id.to_owned()));
            }
            state.watchers += 1;
            state.notice(viewer, true);
            state.start
        };
        session.output_ready.notify_waiters();
        Ok(WatchAttachment {
            session,
            viewer: viewer.to_owned(),
            cursor,
            exit_sent: false,
        })
    }

    /// Ends a session now: hangs up the remote program and forgets the session.
    pub fn end(&self, id: &str) {
        self.end_with(id, Close::new(CloseCode::Normal, "the session was closed"));
    }

    fn end_with(&self, id: &str, close: Close) {
        let Some(session) = self.sessions().remove(id) else {
            return;
        };
        self.metrics
            .sessions
            .with_label_values(&[session.label.backend.as_str()])
            .dec();
        if let Some(recording) = &session.recording {
            recording.end(&close.reason);
        }
        session.state().finish(close);
        // The input pump closes the backend when the command channel closes or says so.
        let _ = session.commands.try_send(Command::Close);
        session.output_ready.notify_waiters();
        session.space_ready.notify_waiters();
        self.removed.notify_waiters();
    }

    /// Ends every session (relay shutdown).
    pub fn end_all(&self) {
        let ids: Vec<String> = self.sessions().keys().cloned().collect();
        for id in ids {
            self.end_with(
                &id,
                Close::new(CloseCode::GoingAway, "the relay is shutting down"),
            );
        }
    }

    /// Waits until some session has stopped reading its backend because its browser is
    /// behind (for tests and diagnostics of backpressure); returns at once when there is no
    /// session.
    pub async fn wait_until_stalled(&self) {
        loop {
            let sessions: Vec<Arc<TerminalSession>> = self.sessions().values().cloned().collect();
            let Some(session) = sessions.first() else {
                return;
            };
            let woken = session.output_ready.notified();
            if session.state().room() == 0 {
                return;
            }
            woken.await;
        }
    }

    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// The live sessions of `owner_uid` (attached or in their grace period), oldest first.
    pub fn list(&self, owner_uid: &str) -> Vec<TerminalSessionInfo> {
        let mut list: Vec<TerminalSessionInfo> = self
            .sessions()
            .values()
            .filter(|s| s.label.owner_uid == owner_uid)
            .map(|s| {
                let state = s.state();
                TerminalSessionInfo {
                    session: s.id.clone(),
                    target: s.label.target.clone(),
                    started: s.started,
                    last_active: state.last_active.max(s.started),
                    attached: state.attached,
                    size: state.size,
                }
            })
            .collect();
        list.sort_by(|a, b| (a.started, &a.session).cmp(&(b.started, &b.session)));
        list
    }

    fn detached(self: &Arc<Self>, session: &Arc<TerminalSession>, generation: u64) {
        let finished = {
            let mut state = session.state();
            if state.generation != generation {
                return; // another connection has taken over
            }
            state.attached = false;
            state.exit.is_some() || state.ended.is_some()
        };
        if finished {
            self.end(&session.id);
            return;
        }
        let registry = self.clone();
        let session = session.clone();
        let grace = self.grace_period;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let expired = {
                let state = session.state();
                state.generation == generation && !state.attached
            };
            if expired {
                tracing::info!(session = %session.id, "grace period over; ending terminal session");
                registry.end(&session.id);
            }
        });
    }
}

/// A place held for a session being connected (see [`TerminalRegistry::reserve`]).
pub struct Reservation {
    registry: Arc<TerminalRegistry>,
    owner_uid: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut connecting = self
            .registry
            .connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(pending) = connecting.get_mut(&self.owner_uid) {
            *pending = pending.saturating_sub(1);
            if *pending == 0 {
                connecting.remove(&self.owner_uid);
            }
        }
    }
}

enum Command {
    Write(Bytes),
    Resize(TermSize),
    Close,
}

struct TerminalSession {
    id: String,
    label: SessionLabel,
    /// Unix seconds when it started.
    started: u64,
    state: Mutex<RingState>,
    /// New output, an exit, an end, or a new attachment.
    output_ready: Notify,
    /// The attached browser took output, so the backend reader may go on.
    space_ready: Notify,
    commands: mpsc::Sender<Command>,
    /// The session's recording, when it is recorded.
    recording: Option<RecordingTag>,
}

impl TerminalSession {
    fn state(&self) -> MutexGuard<'_, RingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends output, waiting while too much of it is unsent.
    async fn push(&self, mut bytes: Bytes) {
        while !bytes.is_empty() {
            let space = self.space_ready.notified();
            {
                let mut state = self.state();
                if state.ended.is_some() {
                    return;
                }
                let room = state.room();
                if room > 0 {
                    let n = room.min(bytes.len());
                    state.append(&bytes.split_to(n));
                    state.last_active = unix_now();
                    drop(state);
                    self.output_ready.notify_waiters();
                    continue;
                }
            }
            space.await;
        }
    }
}

/// The ring buffer and attachment bookkeeping of one session.
struct RingState {
    ring: VecDeque<u8>,
    capacity: usize,
    /// Offset of `ring[0]`.
    start: u64,
    /// Offset up to which output was handed to a browser.
    sent: u64,
    /// On a flow-controlled terminal, the offset the browser has acknowledged: nothing
    /// from here on is ever trimmed, so a resume from any offset the browser may have
    /// reached is exact.
    acked: Option<u64>,
    /// Bumped by each attach; an attachment with an older one has been replaced.
    generation: u64,
    attached: bool,
    exit: Option<ExitInfo>,
    ended: Option<Close>,
    /// The terminal's size, as last asked for (for `GET /api/sessions`).
    size: TermSize,
    /// Unix seconds of the last output or input.
    last_active: u64,
    /// Read-only watchers attached now.
    watchers: u32,
    /// Join/leave notices for the owner's attachment, oldest first.
    notices: VecDeque<StreamEvent>,
}

impl RingState {
    fn new(capacity: usize) -> Self {
        Self {
            ring: VecDeque::new(),
            capacity,
            start: 0,
            sent: 0,
            acked: None,
            generation: 0,
            attached: false,
            exit: None,
            ended: None,
            size: TermSize { rows: 24, cols: 80 },
            last_active: 0,
            watchers: 0,
            notices: VecDeque::new(),
        }
    }

    /// Tells the owner that `user` started or stopped watching.
    fn notice(&mut self, user: &str, joined: bool) {
        if self.notices.len() >= MAX_NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back(StreamEvent::Watcher {
            user: user.to_owned(),
            joined,
            watchers: self.watchers,
        });
    }

    fn end(&self) -> u64 {
        self.start + self.ring.len() as u64
    }

    /// How much more output may be taken from the backend now. With acknowledgements,
    /// everything after the acknowledged offset is kept: the ring stops taking output when
    /// it holds nothing else (the backend then waits). Without, unsent output is held to
    /// half the ring, so the half behind `sent` stays for replay (what a browser had not
    /// received beyond that is reported as a `gap`).
    fn room(&self) -> usize {
        match self.acked {
            Some(acked) => {
                let unacked =
                    usize::try_from(self.end().saturating_sub(acked)).unwrap_or(usize::MAX);
                self.capacity.saturating_sub(unacked)
            }
            None => {
                let unsent = (self.end() - self.sent) as usize;
                (self.capacity / 2).saturating_sub(unsent)
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        self.ring.extend(bytes);
        let excess = self.ring.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.ring.drain(..excess);
            self.start += excess as u64;
        }
    }

    /// Up to `max` bytes (and at most one chunk) from `cursor`.
    fn read(&self, cursor: u64, max: u64) -> Bytes {
        let from = (cursor - self.start) as usize;
        let max = usize::try_from(max).unwrap_or(usize::MAX).min(MAX_CHUNK);
        let to = from.saturating_add(max).min(self.ring.len());
        let (a, b) = self.ring.as_slices();
        let mut out = BytesMut::with_capacity(to - from);
        if from < a.len() {
            out.extend_from_slice(&a[from..to.min(a.len())]);
        }
        if to > a.len() {
            out.extend_from_slice(&b[from.saturating_sub(a.len())..to - a.len()]);
        }
        out.freeze()
    }

    fn attach(&mut self) -> u64 {
        self.generation += 1;
        self.attached = true;
        self.generation
    }

    fn finish(&mut self, close: Close) {
        if self.ended.is_none() {
            self.ended = Some(close);
        }
    }
}

async fn pump_output(
    session: Arc<TerminalSession>,
    mut output: Box<dyn TerminalOutput>,
    mut recording: Option<Recording>,
) {
    loop {
        let event = tokio::select! {
            event = output.next() => event,
            // A session ended from our side (grace over, user closed) stops reading at once.
            () = ended(&session) => return,
        };
        match event {
            TerminalEvent::Output(bytes) => {
                // The recording tap: before the ring, so it holds every byte a browser can get.
                if let Some(tap) = &recording
                    && let Err(e) = tap.output(&bytes).await
                {
                    if tap.required() {
                        session.state().finish(Close::unavailable(format!(
                            "{e}; sessions on {} are recorded, so this one was ended",
                            session.label.target
                        )));
                        session.output_ready.notify_waiters();
                        return;
                    }
                    recording = None;
                }
                session.push(bytes).await
            }
            TerminalEvent::Exited(info) => {
                if let Some(recording) = &session.recording {
                    recording.end(&exit_reason(&info));
                }
                session.state().exit = Some(info);
                session.output_ready.notify_waiters();
                return;
            }
            TerminalEvent::Failed(reason) => {
                if let Some(recording) = &session.recording {
                    recording.end(&reason);
                }
                session.state().finish(Close::unavailable(reason));
                session.output_ready.notify_waiters();
                return;
            }
        }
    }
}

/// How a remote program ended, in words (the close reason, the recording's end marker).
fn exit_reason(exit: &ExitInfo) -> String {
    match (&exit.status, &exit.signal) {
        (Some(status), _) => format!("the remote program exited with status {status}"),
        (None, Some(signal)) => format!("the remote program was killed by {signal}"),
        (None, None) => "the remote program ended".to_owned(),
    }
}

/// What an attachment sends once the program has exited: the `exit` frame, then a normal
/// close with `reason`.
fn after_exit(exit: &ExitInfo, exit_sent: &mut bool, reason: String) -> Outbound {
    if std::mem::replace(exit_sent, true) {
        Outbound::Close(Close::new(CloseCode::Normal, reason))
    } else {
        Outbound::Text(ServerFrame::Event(StreamEvent::Exit {
            status: exit.status,
            signal: exit.signal.clone(),
        }))
    }
}

async fn ended(session: &TerminalSession) {
    loop {
        let woken = session.output_ready.notified();
        if session.state().ended.is_some() {
            return;
        }
        woken.await;
    }
}

async fn pump_input(
    mut input: Box<dyn TerminalInput>,
    mut commands: mpsc::Receiver<Command>,
    mut recording: Option<Recording>,
) {
    while let Some(command) = commands.recv().await {
        // The recording tap: keystrokes and resizes as they go to the backend.
        if let Some(tap) = &recording {
            let recorded = match &command {
                Command::Write(bytes) => tap.input(bytes).await,
                Command::Resize(size) => tap.resize(*size).await,
                Command::Close => Ok(()),
            };
            if recorded.is_err() {
                if tap.required() {
                    // Hanging up ends the session (its output task sees the program end).
                    break;
                }
                recording = None;
            }
        }
        let result = match command {
            Command::Write(bytes) => input.write(bytes).await,
            Command::Resize(size) => input.resize(size).await,
            Command::Close => break,
        };
        if let Err(e) = result {
            tracing::debug!("terminal input failed: {e}");
            break;
        }
    }
    input.close().await;
}

/// One WebSocket attached to a terminal session.
pub struct TerminalAttachment {
    /// How this browser orders resize pairs (`resize_order` in the query).
    resize_order: ResizeOrder,
    registry: Arc<TerminalRegistry>,
    session: Arc<TerminalSession>,
    generation: u64,
    cursor: u64,
    /// Whether this attachment resumed the session (for its hello).
    resumed: bool,
    pending: VecDeque<Outbound>,
    /// On a flow-controlled terminal, the last position the browser acknowledged.
    acked: Option<u64>,
    /// Input the backend's queue had no room for yet; the pump reads no more meanwhile.
    waiting_input: Option<Command>,
    exit_sent: bool,
    ended_by_user: bool,
}

impl TerminalAttachment {
    fn new(
        registry: Arc<TerminalRegistry>,
        session: Arc<TerminalSession>,
        generation: u64,
        cursor: u64,
        resumed: bool,
        gap: Option<StreamEvent>,
    ) -> Self {
        let pending = gap.map(|e| Outbound::Text(e.into())).into_iter().collect();
        Self {
            registry,
            session,
            generation,
            cursor,
            resumed,
            pending,
            acked: None,
            waiting_input: None,
            exit_sent: false,
            ended_by_user: false,
            resize_order: ResizeOrder::RowsCols,
        }
    }

    /// Reads `{"resize": [a, b]}` pairs in `order`.
    pub fn with_resize_order(mut self, order: ResizeOrder) -> Self {
        self.resize_order = order;
        self
    }

    /// The id of the session's recording, when it is recorded.
    pub fn recording(&self) -> Option<String> {
        self.session.recording.as_ref().map(|r| r.id().to_owned())
    }

    /// What the `connected` frame says: the session and where this attachment starts.
    pub fn hello(&self) -> Hello {
        Hello {
            stream: StreamKind::Terminal,
            session: self.session.id.clone(),
            position: Position::count(self.cursor),
            resumed: self.resumed,
        }
    }

    /// Sends at most [`FLOW_WINDOW`] bytes beyond what the browser has acknowledged.
    pub fn with_flow_control(mut self) -> Self {
        self.acked = Some(self.cursor);
        self.session.state().acked = Some(self.cursor);
        self.session.space_ready.notify_waiters();
        self
    }

    /// Bytes that may be sent now, by the flow-control window.
    fn window_room(&self) -> u64 {
        self.acked.map_or(u64::MAX, |acked| {
            (acked + FLOW_WINDOW).saturating_sub(self.cursor)
        })
    }

    /// What there is to send now, if anything.
    fn ready(&mut self) -> Option<Outbound> {
        let mut state = self.session.state();
        if state.generation != self.generation {
            return Some(Outbound::Close(Close::new(
                CloseCode::Replaced,
                "this session was resumed by another connection",
            )));
        }
        if let Some(notice) = state.notices.pop_front() {
            return Some(Outbound::Text(notice.into()));
        }
        if self.cursor < state.end() {
            let room = self.window_room();
            if room == 0 {
                // Nothing else (not even the exit) may overtake the unsent output.
                return None;
            }
            let chunk = state.read(self.cursor, room);
            self.cursor += chunk.len() as u64;
            state.sent = self.cursor;
            drop(state);
            self.session.space_ready.notify_waiters();
            return Some(Outbound::Binary(chunk));
        }
        if let Some(exit) = &state.exit {
            return Some(after_exit(exit, &mut self.exit_sent, exit_reason(exit)));
        }
        state.ended.clone().map(Outbound::Close)
    }
}

#[async_trait]
impl Attachment for TerminalAttachment {
    fn resize_order(&self) -> ResizeOrder {
        self.resize_order
    }

    async fn next(&mut self) -> Outbound {
        if let Some(out) = self.pending.pop_front() {
            return out;
        }
        let session = self.session.clone();
        loop {
            let woken = session.output_ready.notified();
            if let Some(out) = self.ready() {
                return out;
            }
            if self.waiting_input.is_none() {
                woken.await;
                continue;
            }
            // Cancel-safe: the waiting input stays in place until a slot is reserved.
            tokio::select! {
                () = woken => {}
                permit = session.commands.reserve() => {
                    if let (Ok(permit), Some(command)) = (permit, self.waiting_input.take()) {
                        permit.send(command);
                    }
                    // A closed queue: the program ended, and its exit is on the way.
                    self.waiting_input = None;
                    return Outbound::InputReady;
                }
            }
        }
    }

    fn input_blocked(&self) -> bool {
        self.waiting_input.is_some()
    }

    async fn input(&mut self, input: Inbound) -> Result<(), InputRefused> {
        let command = match input {
            Inbound::Frame(ClientFrame::Input(text)) => Command::Write(Bytes::from(text)),
            Inbound::Binary(bytes) => Command::Write(bytes),
            Inbound::Frame(ClientFrame::Resize(size)) => {
                let mut state = self.session.state();
                if state.generation == self.generation {
                    state.size = size;
                }
                Command::Resize(size)
            }
            Inbound::Frame(ClientFrame::Chat(_)) => return Err(InputRefused::not_accepted("chat")),
            Inbound::Frame(ClientFrame::Ack(position)) => {
                let Some(acked) = self.acked else {
                    return Err(InputRefused::bad_frame(
                        "acks are for terminals opened with flow=1".into(),
                    ));
                };
                // Acknowledging unsent output would open the window without bound (and
                // let the ring drop what the browser never had).
                if position > self.cursor {
                    return Err(InputRefused::bad_frame(format!(
                        "ack of position {position} is beyond the {} bytes sent",
                        self.cursor
                    )));
                }
                if position < acked {
                    return Err(InputRefused::bad_frame(format!(
                        "ack of position {position} goes back before {acked}, already acknowledged"
                    )));
                }
                self.acked = Some(position);
                {
                    let mut state = self.session.state();
                    if state.generation == self.generation {
                        state.acked = Some(position);
                    }
                }
                // The ring may take more output now; the pump asks for output again after
                // every input.
                self.session.space_ready.notify_waiters();
                return Ok(());
            }
        };
        self.session.state().last_active = unix_now();
        match self.session.commands.try_send(command) {
            Err(mpsc::error::TrySendError::Full(command)) => self.waiting_input = Some(command),
            // A closed channel means the program has ended; its exit frame is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) | Ok(()) => {}
        }
        Ok(())
    }

    fn end(&mut self) {
        self.ended_by_user = true;
    }
}

impl Drop for TerminalAttachment {
    fn drop(&mut self) {
        if self.ended_by_user {
            let current = self.session.state().generation == self.generation;
            if current {
                self.registry.end(&self.session.id);
            }
            return;
        }
        self.registry.detached(&self.session, self.generation);
    }
}

/// A read-only watcher of a terminal session (`/ws/watch/{session}`). It reads the ring at
/// its own cursor and never holds the session back: a watcher that falls behind what the
/// ring keeps gets a `gap` frame and goes on from the oldest byte kept.
pub struct WatchAttachment {
    session: Arc<TerminalSession>,
    viewer: String,
    cursor: u64,
    exit_sent: bool,
}

impl WatchAttachment {
    pub fn hello(&self) -> Hello {
        Hello {
            stream: StreamKind::Terminal,
            session: self.session.id.clone(),
            position: Position::count(self.cursor),
            resumed: false,
        }
    }

    fn ready(&mut self) -> Option<Outbound> {
        let state = self.session.state();
        if self.cursor < state.start {
            let gap = StreamEvent::Gap {
                message: format!(
                    "{} bytes of output went by faster than you read them and are no longer kept",
                    state.start - self.cursor
                ),
                position: Position::count(state.start),
            };
            self.cursor = state.start;
            return Some(Outbound::Text(gap.into()));
        }
        if self.cursor < state.end() {
            let chunk = state.read(self.cursor, u64::MAX);
            self.cursor += chunk.len() as u64;
            return Some(Outbound::Binary(chunk));
        }
        if let Some(exit) = &state.exit {
            let reason = format!("the watched session ended: {}", exit_reason(exit));
            return Some(after_exit(exit, &mut self.exit_sent, reason));
        }
        state.ended.as_ref().map(|ended| {
            Outbound::Close(Close::new(
                ended.code,
                format!("the watched session ended: {}", ended.reason),
            ))
        })
    }
}

#[async_trait]
impl Attachment for WatchAttachment {
    async fn next(&mut self) -> Outbound {
        let session = self.session.clone();
        loop {
            let woken = session.output_ready.notified();
            if let Some(out) = self.ready() {
                return out;
            }
            woken.await;
        }
    }

    async fn input(&mut self, _: Inbound) -> Result<(), InputRefused> {
        Err(InputRefused {
            code: common::server::ErrorCode::NotAccepted,
            message: "you are watching this session read-only: nothing you send reaches it".into(),
            client_id: None,
        })
    }
}

impl Drop for WatchAttachment {
    fn drop(&mut self) {
        {
            let mut state = self.session.state();
            state.watchers = state.watchers.saturating_sub(1);
            state.notice(&self.viewer, false);
        }
        self.session.output_ready.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_half_for_replay_and_trims_only_sent_bytes() {
        let mut ring = RingState::new(8);
        assert_eq!(ring.room(), 4);
        ring.append(b"abcd");
        assert_eq!(ring.room(), 0);
        ring.sent = 4;
        assert_eq!(ring.room(), 4);
        ring.append(b"efgh");
        ring.sent = 8;
        ring.append(b"ij");
        assert_eq!(ring.start, 2);
        assert_eq!(ring.end(), 10);
        assert_eq!(&ring.read(2, u64::MAX)[..], b"cdefghij");
        assert_eq!(&ring.read(8, u64::MAX)[..], b"ij");
        assert_eq!(&ring.read(2, 3)[..], b"cde");

        // A writer that appends no more than `room()` (as `TerminalSession::push` does)
        // never has unsent bytes trimmed, however the reader lags.
        let mut ring = RingState::new(64);
        for step in 0..200u64 {
            let room = ring.room();
            ring.append(&vec![b'x'; room.min(7)]);
            assert!(
                ring.start <= ring.sent,
                "unsent bytes trimmed at step {step}"
            );
            ring.sent = (ring.sent + step % 5).min(ring.end());
        }
    }

    /// Output that is all there from the start, then nothing more.
    struct Preloaded(Option<Bytes>);

    #[async_trait]
    impl crate::backend::TerminalOutput for Preloaded {
        async fn next(&mut self) -> TerminalEvent {
            match self.0.take() {
                Some(bytes) => TerminalEvent::Output(bytes),
                None => std::future::pending().await,
            }
        }
    }

    struct NoInput;

    #[async_trait]
    impl crate::backend::TerminalInput for NoInput {
        async fn write(&mut self, _: Bytes) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        async fn resize(&mut self, _: TermSize) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        async fn close(&mut self) {}
    }

    /// Takes binary output until the attachment has nothing to send right now.
    fn drain(attachment: &mut TerminalAttachment) -> u64 {
        let mut sent = 0;
        while let Some(out) = attachment.ready() {
            match out {
                Outbound::Binary(bytes) => sent += bytes.len() as u64,
                other => panic!("expected output, got {other:?}"),
            }
        }
        sent
    }

    /// A flow-controlled session, in a registry of `capacity`-byte rings, whose backend
    /// has `output` ready at once; the attachment's hello is taken out.
    fn flow_controlled_session(
        capacity: usize,
        output: Vec<u8>,
    ) -> (Arc<TerminalRegistry>, SessionLabel, TerminalAttachment) {
        let registry = TerminalRegistry::new(
            Duration::from_secs(60),
            capacity,
            10,
            Arc::new(Metrics::new()),
        );
        let label = SessionLabel {
            owner_uid: "1".into(),
            backend: BackendKind::Ssh,
            target: "ssh/box".into(),
        };
        let streams = TerminalStreams {
            output: Box::new(Preloaded(Some(Bytes::from(output)))),
            input: Box::new(NoInput),
        };
        let reservation = registry.reserve("1").unwrap();
        let mut attachment = registry
            .start_recorded(
                label.clone(),
                TermSize { rows: 24, cols: 80 },
                streams,
                reservation,
                None,
            )
            .with_flow_control();
        attachment.pending.clear();
        (registry, label, attachment)
    }

    // Issue 11: with acknowledgements nothing after the acknowledged offset is trimmed;
    // the ring stops taking output instead, so a resume from there is exact.
    #[tokio::test]
    async fn unacknowledged_output_is_never_trimmed() {
        let capacity = 128 * 1024;
        let (registry, label, mut attachment) =
            flow_controlled_session(capacity, vec![b'y'; 4 * capacity]);
        let session = attachment.session.clone();
        let id = session.id.clone();
        // The ring fills up with output nobody acknowledged, and stops there.
        loop {
            let woken = session.output_ready.notified();
            if session.state().room() == 0 {
                break;
            }
            woken.await;
        }
        // The browser is sent all of it, acknowledges nothing, and drops.
        assert_eq!(drain(&mut attachment), capacity as u64);
        tokio::task::yield_now().await;
        assert_eq!(
            session.state().start,
            0,
            "unacknowledged output was trimmed"
        );
        assert_eq!(session.state().end(), capacity as u64);
        drop(attachment);
        // A resume from 0 gets every byte, with no gap.
        let mut resumed = registry.resume(&id, 0, &label).unwrap().with_flow_control();
        assert!(resumed.pending.is_empty(), "a gap was reported");
        assert_eq!(resumed.cursor, 0);
        assert!(drain(&mut resumed) > 0);
    }

    #[tokio::test]
    async fn a_flow_controlled_terminal_sends_one_window_beyond_each_ack() {
        let total = 3 * FLOW_WINDOW;
        let (_registry, _, mut attachment) =
            flow_controlled_session(8 << 20, vec![b'x'; total as usize]);
        let session = attachment.session.clone();
        loop {
            let woken = session.output_ready.notified();
            if session.state().end() == total {
                break;
            }
            woken.await;
        }

        assert_eq!(drain(&mut attachment), FLOW_WINDOW);
        // An ack beyond what was sent is refused and changes nothing.
        let refused = attachment
            .input(Inbound::Frame(ClientFrame::Ack(u64::MAX)))
            .await
            .unwrap_err();
        assert!(refused.message.contains("beyond"), "{}", refused.message);
        assert_eq!(drain(&mut attachment), 0);
        attachment
            .input(Inbound::Frame(ClientFrame::Ack(FLOW_WINDOW)))
            .await
            .unwrap();
        assert_eq!(drain(&mut attachment), FLOW_WINDOW);
        // Going back is refused too.
        assert!(
            attachment
                .input(Inbound::Frame(ClientFrame::Ack(1)))
                .await
                .is_err()
        );
        attachment
            .input(Inbound::Frame(ClientFrame::Ack(FLOW_WINDOW + 10)))
            .await
            .unwrap();
        assert_eq!(drain(&mut attachment), 10);
        attachment
            .input(Inbound::Frame(ClientFrame::Ack(2 * FLOW_WINDOW + 10)))
            .await
            .unwrap();
        assert_eq!(drain(&mut attachment), FLOW_WINDOW - 10);
        assert!(attachment.ready().is_none(), "everything was sent");
    }
}
