//! The one reconnecting WebSocket of the terminal and log views (chat rooms use
//! `opsdeck-client`, the chat client other apps embed too).
//!
//! A [`Stream`] owns the socket to one relay endpoint for the life of a view. It
//! - reconnects after network drops and reconnectable closes, waiting per [`Backoff`]
//!   (exponential, with jitter) and showing the countdown;
//! - presents the resume token (`?session=..&position=..`) so the relay replays exactly what
//!   was missed, and drops anything shown already ([`Progress`]);
//! - turns each close code into what happens next ([`conn::on_close`]): log in again, start
//!   a new session, or stop and say why;
//! - publishes its [`ConnState`] in a signal every view shows.
//!
//! Views get [`Incoming`] values through one callback and send [`ClientFrame`]s; they never
//! touch `web_sys::WebSocket`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use common::server::StreamEvent;
use common::{ClientFrame, ServerFrame, StreamKind};
use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::*;
use opsdeck_client::backoff::Backoff;
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::config;
use crate::conn::{self, CloseAction, ConnState};
use crate::i18n::Unit;
use crate::locale::{Msg, Text, lang_now};
use crate::resume::{Connected, Progress};
use crate::route::with_query;

/// What a stream hands to its view.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// Terminal output, raw bytes (already stripped of anything shown before).
    Bytes(Uint8Array),
    /// A stream event; `lines` and `output` are already de-duplicated.
    Event(StreamEvent),
    /// Something the user should be told, e.g. that a new session was started.
    Notice(Notice),
}

/// A message for the user about the stream itself (shown in `#conn-notice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `new-session`, `lost`, `gap` or `dropped` (the `data-kind` attribute).
    pub kind: &'static str,
    pub text: String,
}

/// A handle to one stream; clones share it. It is `Send` only so Leptos closures may hold
/// it: the browser runs everything on one thread.
#[derive(Clone)]
pub struct Stream {
    shared: SendWrapper<Rc<Shared>>,
}

/// What a stream calls with everything the relay sends; it gets the stream too, to answer.
type Handler = Box<dyn FnMut(&Stream, Incoming)>;

struct Shared {
    inner: RefCell<Inner>,
    handler: RefCell<Handler>,
    state: RwSignal<ConnState>,
    notice: RwSignal<Option<Notice>>,
}

struct Inner {
    path: String,
    progress: Progress,
    backoff: Backoff,
    live: Option<Live>,
    /// Counts sockets, so events of a socket already replaced are ignored.
    generation: u64,
    timer: Option<TimeoutHandle>,
    ticker: Option<IntervalHandle>,
    /// The user (or the view going away) closed the stream: no more reconnects.
    stopped: bool,
    /// `Date.now()` when the current socket opened.
    opened_at: Option<f64>,
    /// The relay expired our session: say so when the next one is connected.
    expired: u32,
    online: Option<Closure<dyn FnMut(Event)>>,
}

/// An open (or opening) socket and the handlers attached to it.
struct Live {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Live {
    /// Detaches the handlers and closes the socket if it is still up.
    fn shut(self, code: u16, reason: &str) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let state = self.socket.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            let _ = self.socket.close_with_code_and_reason(code, reason);
        }
    }
}

impl Shared {
    fn new(
        path: String,
        session: Option<String>,
        on_incoming: impl FnMut(&Stream, Incoming) + 'static,
    ) -> Rc<Self> {
        Rc::new(Self {
            inner: RefCell::new(Inner {
                path,
                progress: session.map_or_else(Progress::new, Progress::resuming),
                backoff: Backoff::new(),
                live: None,
                generation: 0,
                timer: None,
                ticker: None,
                stopped: false,
                opened_at: None,
                expired: 0,
                online: None,
            }),
            handler: RefCell::new(Box::new(on_incoming)),
            state: RwSignal::new(ConnState::Connecting { attempt: 0 }),
            notice: RwSignal::new(None),
        })
    }
}

impl Stream {
    /// Opens a stream to `path` (e.g. `/ws/ssh/web1?rows=24&cols=80`) and keeps it open until
    /// [`Stream::close`]. `on_incoming` gets everything the relay sends.
    pub fn open(path: String, on_incoming: impl FnMut(&Stream, Incoming) + 'static) -> Self {
        Self::open_resuming(path, None, on_incoming)
    }

    /// Opens a stream that first resumes terminal session `session` from its start (a
    /// workspace pane after a reload, or taking over a session opened elsewhere).
    pub fn open_resuming(
        path: String,
        session: Option<String>,
        on_incoming: impl FnMut(&Stream, Incoming) + 'static,
    ) -> Self {
        let shared = Shared::new(path, session, on_incoming);
        watch_online(&shared);
        connect(&shared);
        Self::wrap(shared)
    }

    /// Takes over `socket`, opened to `path` before the app started (`early.rs`), and
    /// handles the messages it received meanwhile, `held`, as if they arrived now; from
    /// then on it is a stream like [`Stream::open`]'s (it reconnects and resumes).
    pub fn adopt(
        path: String,
        socket: WebSocket,
        held: Vec<MessageEvent>,
        on_incoming: impl FnMut(&Stream, Incoming) + 'static,
    ) -> Self {
        let shared = Shared::new(path, None, on_incoming);
        watch_online(&shared);
        let generation = {
            let mut inner = shared.inner.borrow_mut();
            inner.generation += 1;
            if socket.ready_state() == WebSocket::OPEN {
                inner.opened_at = Some(js_sys::Date::now());
            }
            inner.generation
        };
        attach(&shared, socket, generation);
        for event in held {
            on_message(&shared, event);
        }
        Self::wrap(shared)
    }

    /// Gives the stream a new handler for what arrives from now on (a terminal page taking
    /// the socket opened for it as the app started: `early.rs`).
    pub fn set_handler(&self, on_incoming: impl FnMut(&Stream, Incoming) + 'static) {
        if let Ok(mut handler) = self.shared.handler.try_borrow_mut() {
            *handler = Box::new(on_incoming);
        }
    }

    fn wrap(shared: Rc<Shared>) -> Self {
        Self {
            shared: SendWrapper::new(shared),
        }
    }

    /// The connection state, for `#conn-state`.
    pub fn state(&self) -> RwSignal<ConnState> {
        self.shared.state
    }

    /// The latest notice about the stream, for `#conn-notice`.
    pub fn notice(&self) -> RwSignal<Option<Notice>> {
        self.shared.notice
    }

    /// Sends a frame; `false` if the socket is not open right now (the frame is dropped:
    /// keystrokes typed into a dead connection must not arrive minutes later).
    /// The current socket's generation and the bytes of the session received so far (the
    /// position of the end of the output just handed to the view).
    pub fn received(&self) -> (u64, u64) {
        let inner = self.shared.inner.borrow();
        (inner.generation, inner.progress.received_bytes())
    }

    pub fn send(&self, frame: &ClientFrame) -> bool {
        let inner = self.shared.inner.borrow();
        match &inner.live {
            Some(live) if live.socket.ready_state() == WebSocket::OPEN => {
                live.socket.send_with_str(&frame.to_json()).is_ok()
            }
            _ => false,
        }
    }

    /// Reconnects right away (the "Reconnect now" button), resuming where it left off.
    pub fn retry_now(&self) {
        {
            let mut inner = self.shared.inner.borrow_mut();
            inner.stopped = false;
            inner.backoff.reset();
            inner.cancel_timers();
        }
        connect(&self.shared);
    }

    /// Stops the stream (no reconnect) and shows it as stopped.
    pub fn stop(&self) {
        self.shutdown();
        self.shared.state.try_set(ConnState::Closed {
            code: 1000,
            reason: String::new(),
            by_user: true,
        });
    }

    /// Closes the stream for good: call it when the view goes away. Also drops the
    /// handler, and with it whatever the view's handler held.
    pub fn close(&self) {
        self.shutdown();
        let online = self.shared.inner.borrow_mut().online.take();
        if let Some(online) = online {
            let _ = window()
                .remove_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        }
        if let Ok(mut handler) = self.shared.handler.try_borrow_mut() {
            *handler = Box::new(|_, _| {});
        }
    }

    /// Closes the stream for good like [`Stream::close`], but leaves a terminal session
    /// waiting for a resume in its grace period (a close code other than 1000).
    pub fn leave(&self) {
        self.shutdown_with(LEAVE, "the view was left; the session waits for a resume");
        self.close();
    }

    fn shutdown(&self) {
        self.shutdown_with(1000, "closed by the user");
    }

    fn shutdown_with(&self, code: u16, reason: &str) {
        let live = {
            let mut inner = self.shared.inner.borrow_mut();
            inner.stopped = true;
            inner.cancel_timers();
            inner.generation += 1;
            inner.live.take()
        };
        if let Some(live) = live {
            live.shut(code, reason);
        }
    }
}

/// The close code of [`Stream::leave`]: any code but 1000 leaves a terminal session for a
/// resume (browsers may send only 1000 and 3000–4999).
const LEAVE: u16 = 4000;

impl Inner {
    fn cancel_timers(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.clear();
        }
        if let Some(ticker) = self.ticker.take() {
            ticker.clear();
        }
    }
}

/// Reconnects at once when the browser says the network is back.
fn watch_online(shared: &Rc<Shared>) {
    let weak = Rc::downgrade(shared);
    let online = Closure::<dyn FnMut(Event)>::new(move |_| {
        let Some(shared) = weak.upgrade() else { return };
        let waiting = {
            let inner = shared.inner.borrow();
            !inner.stopped && inner.timer.is_some()
        };
        if waiting {
            Stream::wrap(shared).retry_now();
        }
    });
    let _ = window().add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    shared.inner.borrow_mut().online = Some(online);
}

fn connect(shared: &Rc<Shared>) {
    let (url, attempt, generation, old) = {
        let mut inner = shared.inner.borrow_mut();
        if inner.stopped {
            return;
        }
        inner.cancel_timers();
        inner.generation += 1;
        inner.opened_at = None;
        let query = inner.progress.query().unwrap_or_default();
        let url = config::ws_url(&with_query(&inner.path, &query));
        (
            url,
            inner.backoff.attempt(),
            inner.generation,
            inner.live.take(),
        )
    };
    if let Some(old) = old {
        old.shut(1000, "reconnecting");
    }
    shared.state.try_set(ConnState::Connecting { attempt });
    let socket = match open_socket(&url) {
        Ok(socket) => socket,
        Err(e) => {
            let reason = e.as_string().unwrap_or_else(|| format!("{e:?}"));
            shared
                .state
                .try_set(conn::closed(1015, &format!("cannot open {url}: {reason}")));
            return;
        }
    };
    socket.set_binary_type(BinaryType::Arraybuffer);
    attach(shared, socket, generation);
}

/// A socket to `url`: an `OpsdeckSocket` (static/early-socket.js), which receives in a
/// worker so a flood of output does not wait for the page's main thread, or the page's own
/// WebSocket where that class is not defined. Both have the WebSocket interface used here.
fn open_socket(url: &str) -> Result<WebSocket, JsValue> {
    let class = web_sys::window()
        .and_then(|window| js_sys::Reflect::get(&window, &"OpsdeckSocket".into()).ok())
        .and_then(|class| class.dyn_into::<js_sys::Function>().ok());
    match class {
        Some(class) => js_sys::Reflect::construct(&class, &js_sys::Array::of1(&url.into()))
            .map(JsCast::unchecked_into),
        None => WebSocket::new(url),
    }
}

/// Makes `socket` the stream's current one, `generation`.
fn attach(shared: &Rc<Shared>, socket: WebSocket, generation: u64) {
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut(Event)>::new(move |_| {
        if let Some(shared) = current(&weak, generation) {
            shared.inner.borrow_mut().opened_at = Some(js_sys::Date::now());
        }
    });
    let weak = Rc::downgrade(shared);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(shared) = current(&weak, generation) {
            on_message(&shared, event);
        }
    });
    let weak = Rc::downgrade(shared);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        if let Some(shared) = current(&weak, generation) {
            on_close(&shared, event.code(), &event.reason());
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    shared.inner.borrow_mut().live = Some(Live {
        socket,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
}

/// The stream, if it is still alive and `generation` is its current socket.
fn current(weak: &Weak<Shared>, generation: u64) -> Option<Rc<Shared>> {
    let shared = weak.upgrade()?;
    let is_current = {
        let inner = shared.inner.borrow();
        !inner.stopped && inner.generation == generation
    };
    is_current.then_some(shared)
}

fn on_message(shared: &Rc<Shared>, event: MessageEvent) {
    let data = event.data();
    let out = if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
        let bytes = Uint8Array::new(buffer);
        let len = bytes.length();
        let skip = shared.inner.borrow_mut().progress.on_bytes(u64::from(len));
        let skip = u32::try_from(skip).unwrap_or(len);
        if skip >= len {
            Vec::new()
        } else if skip > 0 {
            vec![Incoming::Bytes(bytes.subarray(skip, len))]
        } else {
            vec![Incoming::Bytes(bytes)]
        }
    } else if let Some(text) = data.as_string() {
        match ServerFrame::parse(&text) {
            Ok(frame) => on_frame(shared, frame),
            Err(e) => {
                leptos::logging::warn!("ignoring a frame the app does not understand: {e}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if out.is_empty() {
        return;
    }
    let stream = Stream::wrap(Rc::clone(shared));
    let Ok(mut handler) = shared.handler.try_borrow_mut() else {
        return;
    };
    for incoming in out {
        handler(&stream, incoming);
    }
}

fn on_frame(shared: &Rc<Shared>, frame: ServerFrame) -> Vec<Incoming> {
    let mut inner = shared.inner.borrow_mut();
    let mut out = Vec::new();
    match frame {
        ServerFrame::Event(StreamEvent::Connected {
            stream,
            session,
            position,
            resumed,
        }) => {
            let outcome = inner.progress.on_connected(&session, &position, resumed);
            let expired = std::mem::take(&mut inner.expired) > 0;
            let notice = match outcome {
                Connected::NewSession => Some(Notice {
                    kind: "new-session",
                    text: Text::NewSessionNotResumed.get(lang_now()).to_owned(),
                }),
                Connected::First if expired => Some(Notice {
                    kind: "new-session",
                    text: Text::NewSessionExpired.get(lang_now()).to_owned(),
                }),
                Connected::Resumed { lost } if lost > 0 => Some(Notice {
                    kind: "lost",
                    text: Msg::Lost {
                        count: lost,
                        unit: unit(stream),
                    }
                    .text(lang_now()),
                }),
                _ => None,
            };
            shared.state.try_set(ConnState::Connected { resumed });
            out.push(Incoming::Event(StreamEvent::Connected {
                stream,
                session,
                position,
                resumed,
            }));
            if let Some(notice) = notice {
                shared.notice.try_set(Some(notice.clone()));
                out.push(Incoming::Notice(notice));
            }
        }
        ServerFrame::Event(StreamEvent::Lines { position, lines }) => {
            let skip = inner.progress.on_lines(&position, lines.len());
            let lines: Vec<String> = lines.into_iter().skip(skip).collect();
            if !lines.is_empty() {
                out.push(Incoming::Event(StreamEvent::Lines { position, lines }));
            }
        }
        ServerFrame::Event(StreamEvent::Output { position, data }) => {
            if inner.progress.on_entry(&position) {
                out.push(Incoming::Event(StreamEvent::Output { position, data }));
            }
        }
        ServerFrame::Event(StreamEvent::Gap { message, position }) => {
            inner.progress.on_gap(&position);
            let notice = Notice {
                kind: "gap",
                text: message.clone(),
            };
            shared.notice.try_set(Some(notice));
            out.push(Incoming::Event(StreamEvent::Gap { message, position }));
        }
        ServerFrame::Event(StreamEvent::Dropped { count }) => {
            let notice = Notice {
                kind: "dropped",
                text: Msg::FellBehind(count).text(lang_now()),
            };
            shared.notice.try_set(Some(notice));
            out.push(Incoming::Event(StreamEvent::Dropped { count }));
        }
        ServerFrame::Event(event) => out.push(Incoming::Event(event)),
        // Chat rooms use `opsdeck-client`, not this stream.
        ServerFrame::Chat(_) => {}
    }
    out
}

fn unit(kind: StreamKind) -> Unit {
    match kind {
        StreamKind::Terminal => Unit::Bytes,
        StreamKind::Chat | StreamKind::Job => Unit::Entries,
        StreamKind::Tail | StreamKind::PodLogs => Unit::Lines,
    }
}

fn on_close(shared: &Rc<Shared>, code: u16, reason: &str) {
    let (action, never_opened) = {
        let mut inner = shared.inner.borrow_mut();
        let live = inner.live.take();
        let opened_at = inner.opened_at.take();
        let open_for = opened_at.map(|t| Duration::from_millis((js_sys::Date::now() - t) as u64));
        inner.backoff.connection_ended(open_for);
        drop(inner);
        if let Some(live) = live {
            live.shut(1000, "");
        }
        (conn::on_close(code), opened_at.is_none())
    };
    // With no reason from the relay, a reconnect countdown says what the code means.
    let reason = if reason.is_empty() {
        crate::i18n::close_summary(code, lang_now())
    } else {
        reason.to_owned()
    };
    match action {
        CloseAction::Reconnect => {
            schedule(shared, reason);
            if never_opened && shared.inner.borrow().backoff.attempt() >= 2 {
                check_login(shared);
            }
        }
        CloseAction::NewSession => {
            let again = {
                let mut inner = shared.inner.borrow_mut();
                inner.progress.forget_session();
                inner.expired += 1;
                inner.expired > 1
            };
            if again {
                schedule(shared, reason);
            } else {
                connect(shared);
            }
        }
        CloseAction::Login => {
            shared.inner.borrow_mut().stopped = true;
            shared.state.try_set(conn::closed(code, &reason));
            crate::nav::go_login();
        }
        CloseAction::Stop => {
            shared.state.try_set(conn::closed(code, &reason));
        }
    }
}

/// Waits (backoff with jitter, counting down in the state) and reconnects.
fn schedule(shared: &Rc<Shared>, reason: String) {
    let delay = shared
        .inner
        .borrow_mut()
        .backoff
        .next_delay(js_sys::Math::random());
    let attempt = shared.inner.borrow().backoff.attempt();
    let deadline = js_sys::Date::now() + delay.as_millis() as f64;
    let state = shared.state;
    let seconds_left = move || ((deadline - js_sys::Date::now()) / 1000.0).ceil().max(0.0) as u32;
    state.try_set(ConnState::Reconnecting {
        in_secs: seconds_left(),
        attempt,
        reason: reason.clone(),
    });
    let ticker = set_interval_with_handle(
        move || {
            state.try_set(ConnState::Reconnecting {
                in_secs: seconds_left(),
                attempt,
                reason: reason.clone(),
            });
        },
        Duration::from_secs(1),
    )
    .ok();
    let weak = Rc::downgrade(shared);
    let timer = set_timeout_with_handle(
        move || {
            if let Some(shared) = weak.upgrade() {
                connect(&shared);
            }
        },
        delay,
    )
    .ok();
    let mut inner = shared.inner.borrow_mut();
    inner.cancel_timers();
    inner.timer = timer;
    inner.ticker = ticker;
}

/// A socket that keeps failing before it ever opens may be refused for want of a login:
/// ask the API, and go to the login page if so.
fn check_login(shared: &Rc<Shared>) {
    let weak = Rc::downgrade(shared);
    leptos::task::spawn_local(async move {
        if let Err(crate::api::ApiFailure::Unauthorized(_)) = crate::api::me().await
            && let Some(shared) = weak.upgrade()
        {
            Stream::wrap(shared).stop();
            crate::nav::go_login();
        }
    });
}
