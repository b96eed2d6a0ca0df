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

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::GetUntracked;

use crate::route::{Route, terminal_query, with_query};
use crate::settings::storage;
use crate::ws::{Incoming, Stream};

/// Where the last terminal page's fitted size is kept (`rows,cols`).
const SIZE_KEY: &str = "opsdeck.termSize";

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
}

struct Waiting {
    base_path: String,
    size: (u16, u16),
    stream: Stream,
    backlog: Rc<RefCell<Vec<Received>>>,
}

thread_local! {
    static WAITING: RefCell<Option<Waiting>> = const { RefCell::new(None) };
}

/// Opens the socket of `route` if it is a terminal page (not a job's read-only output).
pub fn open(route: &Route) {
    if !matches!(
        route,
        Route::Ssh { .. } | Route::Local { .. } | Route::K8sExec(_)
    ) {
        return;
    }
    let Some(base_path) = route.ws_path() else {
        return;
    };
    let size = remembered_size().unwrap_or_else(estimated_size);
    let backlog = Rc::new(RefCell::new(Vec::new()));
    let into = Rc::clone(&backlog);
    let stream = Stream::open(
        with_query(&base_path, &terminal_query(size.0, size.1)),
        move |stream, incoming| {
            let (generation, end) = stream.received();
            into.borrow_mut().push(Received {
                incoming,
                generation,
                end,
            });
        },
    );
    let replaced = WAITING.with(|w| {
        w.borrow_mut().replace(Waiting {
            base_path,
            size,
            stream,
            backlog,
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
    })
}

/// Closes an early socket no page took.
pub fn discard() {
    if let Some(old) = WAITING.with(|w| w.borrow_mut().take()) {
        old.stream.close();
    }
}

/// Remembers a terminal page's fitted size for the next early socket.
pub fn remember_size(rows: u16, cols: u16) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(SIZE_KEY, &format!("{rows},{cols}"));
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
