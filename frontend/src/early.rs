//! A terminal page's socket, opened as the app starts instead of after it has rendered.
//!
//! Opening `#/ssh/box` used to wait for the `/api/me` answer, the page's first render and
//! xterm.js's set-up before the terminal's socket went out, and only then did the relay
//! start the SSH session, the longest step. Here the socket goes out as soon as the app
//! knows where the relay is; the page takes it when it mounts (see
//! `views::terminal::TerminalPage`), with whatever arrived meanwhile. The size it opens
//! with is the last one a terminal page had in this browser, or an estimate from the
//! window; the page sends its fitted size once connected. A socket nobody takes (a logged
//! out user, another page) is closed.
//!
//! On a reload or repeat visit of the same page the socket goes out sooner still: the page
//! writes which socket it opens (its [`Recipe`]) to localStorage, and on the next load
//! `static/early-socket.js` opens it before the app's code has arrived; [`open`] adopts
//! that socket when it is the one it would open, with what it received meanwhile.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::GetUntracked;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{MessageEvent, WebSocket};

use crate::route::{Route, terminal_path};
use crate::settings::storage;
use crate::ws::{Incoming, Stream};

/// Where the last terminal page's fitted size is kept (`rows,cols`).
const SIZE_KEY: &str = "opsdeck.termSize";
/// Where the last terminal page's [`Recipe`] is kept, for `static/early-socket.js`.
const RECIPE_KEY: &str = "opsdeck.earlySocket";
/// The global `static/early-socket.js` leaves its socket in.
const EARLY_SOCKET: &str = "__opsdeckEarlySocket";

/// The socket a terminal page opens, for `static/early-socket.js` to open on the next load
/// of that page before the app is in.
#[derive(Debug, Serialize)]
struct Recipe {
    /// The page's address (`location.href`).
    page: String,
    /// The socket's URL.
    url: String,
}

/// What the early socket received before the page took it, with the socket generation
/// and the session position of its end (as [`Stream::received`] said then).
pub struct Received {
    pub incoming: Incoming,
    pub generation: u64,
    pub end: u64,
}

/// An early socket the page can take.
pub struct Early {
    pub stream: Stream,
    /// The size in the socket's query, as (rows, cols).
    pub size: (u16, u16),
    pub backlog: Vec<Received>,
    pub opened_by: OpenedBy,
}

struct Waiting {
    base_path: String,
    size: (u16, u16),
    stream: Stream,
    backlog: Rc<RefCell<Vec<Received>>>,
    opened_by: OpenedBy,
}

/// Who opened an early socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedBy {
    /// `static/early-socket.js`, as the page started loading (a repeat visit).
    Page,
    /// The app, as it started.
    App,
}

impl OpenedBy {
    /// As the terminal's element says it, for the browser tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::App => "app",
        }
    }
}

thread_local! {
    static WAITING: RefCell<Option<Waiting>> = const { RefCell::new(None) };
}

/// Opens the socket of `route` if it is a terminal page (not a job's read-only output).
pub fn open(route: &Route) {
    let page_socket = PageSocket::take();
    let base_path = matches!(
        route,
        Route::Ssh { .. } | Route::Local { .. } | Route::K8sExec(_)
    )
    .then(|| route.ws_path())
    .flatten();
    let Some(base_path) = base_path else {
        if let Some(unwanted) = page_socket {
            unwanted.close();
        }
        return;
    };
    let size = remembered_size().unwrap_or_else(estimated_size);
    let path = terminal_path(&base_path, size.0, size.1);
    let backlog = Rc::new(RefCell::new(Vec::new()));
    let into = Rc::clone(&backlog);
    let keep = move |stream: &Stream, incoming| {
        let (generation, end) = stream.received();
        into.borrow_mut().push(Received {
            incoming,
            generation,
            end,
        });
    };
    let url = crate::config::ws_url(&path);
    let (stream, opened_by) = match page_socket {
        Some(page) if page.url == url && !page.closed => (
            Stream::adopt(path, page.socket, page.held, keep),
            OpenedBy::Page,
        ),
        other => {
            if let Some(unwanted) = other {
                unwanted.close();
            }
            (Stream::open(path, keep), OpenedBy::App)
        }
    };
    let replaced = WAITING.with(|w| {
        w.borrow_mut().replace(Waiting {
            base_path,
            size,
            stream,
            backlog,
            opened_by,
        })
    });
    if let Some(old) = replaced {
        old.stream.close();
    }
}

/// The early socket of `base_path` (a terminal page's socket path without its query), if
/// one is waiting. The caller must give it its handler at once (before returning to the
/// browser), after handing it the backlog.
pub fn take(base_path: &str) -> Option<Early> {
    let waiting = WAITING.with(|w| {
        let mut slot = w.borrow_mut();
        if slot.as_ref().is_some_and(|w| w.base_path == base_path) {
            slot.take()
        } else {
            None
        }
    })?;
    let backlog = std::mem::take(&mut *waiting.backlog.borrow_mut());
    Some(Early {
        stream: waiting.stream,
        size: waiting.size,
        backlog,
        opened_by: waiting.opened_by,
    })
}

/// Closes an early socket no page took.
pub fn discard() {
    if let Some(old) = WAITING.with(|w| w.borrow_mut().take()) {
        old.stream.close();
    }
}

/// Remembers a terminal page's fitted size, and the socket it will open with it, for the
/// next load of the app (here, and in `static/early-socket.js`).
pub fn remember(base_path: &str, rows: u16, cols: u16) {
    let Some(storage) = storage() else { return };
    let _ = storage.set_item(SIZE_KEY, &format!("{rows},{cols}"));
    let recipe = Recipe {
        page: web_sys::window()
            .and_then(|w| w.location().href().ok())
            .unwrap_or_default(),
        url: crate::config::ws_url(&terminal_path(base_path, rows, cols)),
    };
    if let Ok(json) = serde_json::to_string(&recipe) {
        let _ = storage.set_item(RECIPE_KEY, &json);
    }
}

/// The socket `static/early-socket.js` opened, with what it received so far.
struct PageSocket {
    url: String,
    socket: WebSocket,
    held: Vec<MessageEvent>,
    closed: bool,
}

impl PageSocket {
    /// Takes the socket the page opened, if it opened one (only the app uses it from now).
    fn take() -> Option<Self> {
        let window = web_sys::window()?;
        let early = js_sys::Reflect::get(&window, &EARLY_SOCKET.into()).ok()?;
        if early.is_undefined() || early.is_null() {
            return None;
        }
        let _ = js_sys::Reflect::delete_property(&window, &EARLY_SOCKET.into());
        let field =
            |name: &str| js_sys::Reflect::get(&early, &name.into()).unwrap_or(JsValue::NULL);
        let held = field("held")
            .dyn_into::<js_sys::Array>()
            .map(|held| held.iter().filter_map(|e| e.dyn_into().ok()).collect())
            .unwrap_or_default();
        Some(Self {
            url: field("url").as_string().unwrap_or_default(),
            // An `OpsdeckSocket` (or, without workers, a WebSocket): the same interface.
            socket: Some(field("socket"))
                .filter(JsValue::is_object)?
                .unchecked_into(),
            held,
            closed: field("closed").as_bool().unwrap_or(true),
        })
    }

    /// Closes a socket the app does not want (another page, a relay moved by a deploy).
    fn close(self) {
        if !self.closed {
            self.socket.set_onmessage(None);
            self.socket.set_onclose(None);
            let _ = self
                .socket
                .close_with_code_and_reason(1000, "the app opens another socket");
        }
    }
}

fn remembered_size() -> Option<(u16, u16)> {
    let stored = storage()?.get_item(SIZE_KEY).ok()??;
    let (rows, cols) = stored.split_once(',')?;
    Some((rows.parse().ok()?, cols.parse().ok()?))
}

/// The window less the page's bars, in cells of the font size in the settings (a
/// monospace cell is about 0.6 × 1.2 of its size); the page corrects it once fitted.
fn estimated_size() -> (u16, u16) {
    let window = web_sys::window();
    let px = |v: Option<wasm_bindgen::JsValue>| v.and_then(|v| v.as_f64()).unwrap_or(0.0);
    let width = px(window.as_ref().and_then(|w| w.inner_width().ok()));
    let height = px(window.as_ref().and_then(|w| w.inner_height().ok()));
    let font = f64::from(crate::settings::current().get_untracked().font_size);
    let cols = ((width - 32.0) / (0.6 * font)).floor();
    let rows = ((height - 120.0) / (1.2 * font)).floor();
    if cols < 20.0 || rows < 5.0 {
        return (24, 80);
    }
    (rows.min(500.0) as u16, cols.min(1000.0) as u16)
}

/// A `performance.mark` for the bench's page-load breakdown (docs/BENCHMARKS.md, `browser`).
pub fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}
