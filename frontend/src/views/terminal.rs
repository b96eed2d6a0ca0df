//! The terminal page: an xterm.js terminal on an SSH host or a container (or, read-only,
//! a job's output). Output is written as bytes; the terminal follows its container's size
//! (debounced resize frames); copy, paste, links and search in the scrollback work.

use std::time::Duration;

use common::files::FileAccess;
use common::server::StreamEvent;
use common::{ClientFrame, TermSize};
use js_sys::Uint8Array;
use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::ResizeObserver;

use crate::early;
use crate::feed::{Chunk, Feed};
use crate::flow::Acks;
use crate::locale::{Msg, Text, lang_now, tr};
use crate::route::{Route, terminal_path};
use crate::settings;
use crate::term::Term;
use crate::views::ConnStatus;
use crate::views::files::FileGrants;
use crate::ws::{Incoming, Stream};

/// How long the size must stay still before the terminal is refitted and the relay told.
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(120);

/// The size observer and its callback, kept until the page goes away.
type SizeWatch = (ResizeObserver, Closure<dyn FnMut(JsValue)>);

/// The terminal, once it is mounted; shared (it is `Copy`) by the stream handler, the size
/// watcher and the toolbar. Gone once the page is: late callbacks find nothing.
type TermSlot = StoredValue<Option<Term>, LocalStorage>;

#[component]
pub fn TerminalPage(
    route: Route,
    /// A relay session to resume from its start instead of starting one (a workspace pane).
    #[prop(optional_no_strip)]
    resume: Option<String>,
    /// Told the relay session each time the terminal connects (a workspace pane keeps it).
    #[prop(optional)]
    on_session: Option<Callback<String>>,
    /// Leaving the page leaves the session waiting for a resume (a workspace pane, whose
    /// session ends when the pane is closed) instead of ending it.
    #[prop(optional)]
    keep_session: bool,
) -> impl IntoView {
    let read_only = matches!(route, Route::Job { .. });
    // "Open files here" (a workspace pane has its own button in its header), offered once
    // the relay has said the user may see this host's or this cluster's files. Asked
    // after the terminal's socket is opened, so it never delays it.
    let files_here = match (route.files_place(), route.files_here(), keep_session) {
        (Some(place), Some(files), false) => Some((place, files.to_hash())),
        _ => None,
    };
    let grants = FileGrants::unknown();
    // What the relay said of these files (`unknown` until it has; tests wait on it).
    let place = files_here.as_ref().map(|(place, _)| place.clone());
    let file_access = move || {
        place
            .as_ref()
            .map(|place| grants.of(place).map_or("unknown", FileAccess::as_str))
    };
    let wants_grants = files_here.is_some();
    let files = Signal::derive(move || {
        files_here
            .as_ref()
            .filter(|(place, _)| grants.allows(place))
            .map(|(_, href)| href.clone())
    });
    let Some(base_path) = route.ws_path() else {
        return view! { <p class="error">{tr(Text::NoStream)}</p> }.into_any();
    };
    let host = NodeRef::<Div>::new();
    let term: TermSlot = StoredValue::new_local(None);
    let exit = RwSignal::new(None::<String>);
    // Job output (read-only) is not a terminal session and takes no acks.
    let flow = (!read_only).then(|| Flow {
        acks: StoredValue::new_local(Acks::default()),
        feed: StoredValue::new_local(Feed::default()),
    });

    // The stream opens with the fitted size in its query, so it is created on mount; the
    // status bar shows "connecting" until then.
    let stream_slot = StoredValue::new_local(None::<Stream>);
    let status = RwSignal::new_local(None::<Stream>);
    let observer = StoredValue::new_local(None::<SizeWatch>);

    host.on_load(move |el| {
        early::mark("opsdeck:terminal-mount");
        let mut t = Term::open(&el, read_only, &settings::current().get_untracked());
        early::mark("opsdeck:terminal-opened");
        if read_only {
            t.set_option("convertEol", &JsValue::TRUE);
        }
        let (rows, cols) = t.size();
        // The socket the app opened as it started, if it opened this page's (a page of
        // its own, not a pane, and not a resume); else one opened now, with the size.
        let early = (!read_only && !keep_session && resume.is_none())
            .then(|| early::take(&base_path))
            .flatten();
        if !read_only && !keep_session {
            early::remember(&base_path, rows, cols);
        }
        // The early socket was opened with a guessed size: the fitted one follows each
        // time it connects.
        let resize_when_connected = early.as_ref().is_some_and(|e| e.size != (rows, cols));
        let handler = move |stream: &Stream, incoming: Incoming, at: (u64, u64)| {
            if let Incoming::Event(StreamEvent::Connected { session, .. }) = &incoming {
                if let Some(on_session) = on_session
                    && !session.is_empty()
                {
                    on_session.run(session.clone());
                }
                if resize_when_connected
                    && let Some(Some((rows, cols))) =
                        term.try_with_value(|t| t.as_ref().map(Term::size))
                {
                    send_size(stream, rows, cols);
                }
            }
            on_incoming(term, stream, incoming, at, exit, flow);
        };
        // What the early socket received before this page took it is written once the
        // terminal is in its slot below (output written before would be dropped, and its
        // unanswered write would hold back everything after it).
        let (stream, backlog) = match early {
            Some(early) => {
                // Said on the element for the browser tests, as the terminal itself is.
                let _ = js_sys::Reflect::set(
                    &el,
                    &"__opsdeckEarlySocket".into(),
                    &early.opened_by.as_str().into(),
                );
                early.stream.set_handler(move |stream, incoming| {
                    handler(stream, incoming, stream.received());
                });
                (early.stream, early.backlog)
            }
            None => {
                let path = if read_only {
                    base_path
                } else {
                    terminal_path(&base_path, rows, cols)
                };
                let stream =
                    Stream::open_resuming(path, resume.clone(), move |stream, incoming| {
                        handler(stream, incoming, stream.received());
                    });
                (stream, Vec::new())
            }
        };
        if !read_only {
            let s = stream.clone();
            t.on_data(move |data| {
                s.send(&ClientFrame::Input(data));
            });
            let s = stream.clone();
            t.on_resize(move |rows, cols| send_size(&s, rows, cols));
            t.enable_clipboard_keys();
        }
        t.focus();
        term.set_value(Some(t));
        // Before returning to the browser, so nothing that arrives later overtakes it.
        for received in backlog {
            handler(
                &stream,
                received.incoming,
                (received.generation, received.end),
            );
        }
        observer.set_value(watch_size(&el, term));
        stream_slot.set_value(Some(stream.clone()));
        status.set(Some(stream));
        if wants_grants {
            grants.load();
        }
    });

    // Settings changed while the page is open: font, theme, scrollback, copy on select.
    Effect::new(move |_| {
        let now = settings::current().get();
        term.try_with_value(|t| {
            if let Some(t) = t {
                t.apply(&now);
            }
        });
    });

    on_cleanup(move || {
        if let Some(Some(stream)) = stream_slot.try_update_value(Option::take) {
            if keep_session {
                stream.leave();
            } else {
                stream.close();
            }
        }
        if let Some(Some((observer, _callback))) = observer.try_update_value(Option::take) {
            observer.disconnect();
        }
        // Dropping the terminal disposes it and the closures that held the stream.
        drop(term.try_update_value(Option::take));
    });

    view! {
        <section
            class="page terminal-page"
            data-kind=if read_only { "job" } else { "terminal" }
            data-file-access=file_access
        >
            <TerminalToolbar term status=status.read_only() read_only files />
            {move || exit.get().map(|text| view! { <p id="term-exit" class="exit">{text}</p> })}
            <div id="terminal" class="terminal-host" role="group" aria-label=tr(Text::TerminalLabel) node_ref=host></div>
        </section>
    }
    .into_any()
}

/// The connection status, copy and paste, and search in the scrollback.
#[component]
fn TerminalToolbar(
    term: TermSlot,
    /// The stream, once the terminal is mounted and it is open.
    status: ReadSignal<Option<Stream>, LocalStorage>,
    read_only: bool,
    /// The fragment of this host's or container's files page ("Open files here"), when it
    /// is offered.
    files: Signal<Option<String>>,
) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let search_result = RwSignal::new(None::<bool>);
    let copied = RwSignal::new(false);

    let copy = move |_| {
        let done = term
            .try_with_value(|t| t.as_ref().is_some_and(Term::copy_selection))
            .unwrap_or(false);
        copied.set(done);
    };
    let paste = move |_| {
        leptos::task::spawn_local(async move {
            let Some(window) = web_sys::window() else {
                return;
            };
            let promise = window.navigator().clipboard().read_text();
            if let Ok(text) = wasm_bindgen_futures::JsFuture::from(promise).await
                && let Some(text) = text.as_string()
            {
                term.try_with_value(|t| {
                    if let Some(t) = t {
                        t.paste(&text);
                        t.focus();
                    }
                });
            }
        });
    };
    let find = move |backwards: bool| {
        let found = term
            .try_with_value(|t| {
                t.as_ref()
                    .map(|t| t.find(&search.get_untracked(), backwards))
            })
            .flatten();
        search_result.set(found);
    };
    let on_search_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" {
            ev.prevent_default();
            find(ev.shift_key());
        }
    };

    view! {
        <div class="toolbar" role="toolbar" aria-label=tr(Text::TerminalTools)>
            {move || match status.get() {
                Some(stream) => view! { <ConnStatus stream /> }.into_any(),
                None => view! {
                    <div class="conn-bar">
                        <span id="conn-state" class="conn-state" data-state="connecting">{tr(Text::Connecting)}</span>
                    </div>
                }
                .into_any(),
            }}
            <span class="spacer"></span>
            {move || files.get().map(|href| view! {
                <a id="term-files" class="open-files" href=href title=tr(Text::OpenFilesHereTitle)>
                    {tr(Text::OpenFilesHere)}
                </a>
            })}
            <button id="term-copy" type="button" title=tr(Text::CopyHint) aria-keyshortcuts="Control+Shift+C" on:click=copy>
                {move || tr(if copied.get() { Text::Copied } else { Text::Copy })()}
            </button>
            <button id="term-paste" type="button" title=tr(Text::PasteHint) aria-keyshortcuts="Control+Shift+V" on:click=paste disabled=read_only>
                {tr(Text::Paste)}
            </button>
            <input
                id="term-search"
                type="search"
                placeholder=tr(Text::SearchScrollback)
                aria-label=tr(Text::SearchScrollback)
                bind:value=search
                on:keydown=on_search_key
            />
            <button
                id="term-search-prev"
                type="button"
                title=tr(Text::PreviousMatch)
                aria-label=tr(Text::PreviousMatch)
                on:click=move |_| find(true)
            >
                "↑"
            </button>
            <button
                id="term-search-next"
                type="button"
                title=tr(Text::NextMatch)
                aria-label=tr(Text::NextMatch)
                on:click=move |_| find(false)
            >
                "↓"
            </button>
            <span id="term-search-status" class="muted" role="status">
                {move || match search_result.get() {
                    Some(false) => tr(Text::NoMatch)(),
                    _ => "",
                }}
            </span>
        </div>
    }
}

/// A flow-controlled terminal's acknowledgements and the output waiting to be written.
#[derive(Clone, Copy)]
struct Flow {
    acks: StoredValue<Acks, LocalStorage>,
    feed: StoredValue<Feed<Uint8Array>, LocalStorage>,
}

/// Handles what the relay sends to a terminal, received when the stream had `generation`
/// and `end` bytes of the session; `flow` when it is flow-controlled.
fn on_incoming(
    term: TermSlot,
    stream: &Stream,
    incoming: Incoming,
    (generation, end): (u64, u64),
    exit: RwSignal<Option<String>>,
    flow: Option<Flow>,
) {
    if let Some(flow) = flow {
        let chunk = match incoming {
            Incoming::Bytes(bytes) => {
                let len = bytes.length() as usize;
                if let Some(chunk) = flow
                    .feed
                    .try_update_value(|f| f.received(bytes, len, generation, end))
                    .flatten()
                {
                    write_chunk(term, stream, chunk, flow);
                }
                return;
            }
            // Anything else is shown after the output received before it.
            _ => flow.feed.try_update_value(Feed::flush).flatten(),
        };
        if let Some(chunk) = chunk {
            write_chunk(term, stream, chunk, flow);
        }
    }
    term.try_with_value(|t| {
        if let Some(t) = t {
            show(t, stream, incoming, exit, flow.map(|f| f.acks));
        }
    });
}

/// Writes a chunk of output as one `write`; once xterm.js has processed it, acknowledges
/// its end and writes what arrived meanwhile.
fn write_chunk(term: TermSlot, stream: &Stream, chunk: Chunk<Uint8Array>, flow: Flow) {
    let Chunk {
        pieces,
        generation,
        end,
    } = chunk;
    let data = join(pieces);
    let stream = stream.clone();
    term.try_with_value(|t| {
        if let Some(t) = t {
            t.write_bytes_then(&data, move || {
                if let Some(position) = flow
                    .acks
                    .try_update_value(|a| a.displayed(generation, end))
                    .flatten()
                {
                    stream.send(&ClientFrame::Ack(position));
                }
                if let Some(next) = flow.feed.try_update_value(Feed::written).flatten() {
                    write_chunk(term, &stream, next, flow);
                }
            });
        }
    });
}

/// The pieces as one array (the piece itself when there is one).
fn join(mut pieces: Vec<Uint8Array>) -> Uint8Array {
    if pieces.len() == 1 {
        return pieces.remove(0);
    }
    let total: u32 = pieces.iter().map(Uint8Array::length).sum();
    let joined = Uint8Array::new_with_length(total);
    let mut at = 0;
    for piece in &pieces {
        joined.set(piece, at);
        at += piece.length();
    }
    joined
}

/// Shows what the relay sent in the mounted terminal (flow-controlled output went through
/// [`write_chunk`]).
fn show(
    term: &Term,
    stream: &Stream,
    incoming: Incoming,
    exit: RwSignal<Option<String>>,
    acks: Option<StoredValue<Acks, LocalStorage>>,
) {
    match incoming {
        Incoming::Bytes(bytes) => term.write_bytes(&bytes),
        Incoming::Event(StreamEvent::Connected { position, .. }) => {
            if let Some(acks) = acks {
                let (generation, _) = stream.received();
                acks.update_value(|a| a.connected(generation, position.as_count().unwrap_or(0)));
            }
            exit.set(None);
            // The relay may have a stale size after a reconnect: tell it ours.
            let (rows, cols) = term.size();
            send_size(stream, rows, cols);
        }
        Incoming::Event(StreamEvent::Output { data, .. }) => term.write_text(&data),
        Incoming::Event(StreamEvent::Exit { status, signal }) => {
            let lang = lang_now();
            let text = match (status, signal) {
                (Some(code), _) => Msg::ExitStatus(code).text(lang),
                (None, Some(signal)) => Msg::ExitSignal(&signal).text(lang),
                (None, None) => Text::ProgramEnded.get(lang).to_owned(),
            };
            term.write_text(&note(&text));
            exit.set(Some(text));
        }
        Incoming::Event(StreamEvent::Error { message, .. }) => term.write_text(&note(&message)),
        Incoming::Event(StreamEvent::Status { message, .. }) => term.write_text(&note(&message)),
        // Someone started or stopped watching this session read-only.
        Incoming::Event(StreamEvent::Watcher {
            user,
            joined,
            watchers,
        }) => term.write_text(&note(
            &Msg::Watcher {
                user: &user,
                joined,
                watchers,
            }
            .text(lang_now()),
        )),
        Incoming::Notice(notice) => term.write_text(&note(&notice.text)),
        Incoming::Event(_) => {}
    }
}

/// A local message in the terminal, dimmed so it is not mistaken for output.
fn note(text: &str) -> String {
    format!("\r\n\x1b[2;33m[opsdeck] {text}\x1b[0m\r\n")
}

fn send_size(stream: &Stream, rows: u16, cols: u16) {
    if let Ok(size) = TermSize::new(rows, cols) {
        stream.send(&ClientFrame::Resize(size));
    }
}

/// Refits the terminal when its element's size settles (xterm.js then fires `onResize`,
/// which sends the new size).
fn watch_size(el: &web_sys::HtmlDivElement, term: TermSlot) -> Option<SizeWatch> {
    let mut pending = None::<TimeoutHandle>;
    let callback = Closure::<dyn FnMut(JsValue)>::new(move |_entries: JsValue| {
        if let Some(handle) = pending.take() {
            handle.clear();
        }
        pending = set_timeout_with_handle(
            move || {
                term.try_with_value(|t| {
                    if let Some(t) = t {
                        t.fit();
                    }
                });
            },
            RESIZE_DEBOUNCE,
        )
        .ok();
    });
    let observer = ResizeObserver::new(callback.as_ref().unchecked_ref()).ok()?;
    observer.observe(el);
    Some((observer, callback))
}
