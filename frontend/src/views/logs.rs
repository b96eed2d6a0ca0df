//! The log page: a live file tail or pod log, with stop/start, pause, follow, clear, a
//! filter box and a download of what was received.
//!
//! Bursts must not freeze the page, so lines are not reactive views: they are kept in a
//! [`LogBuffer`] and appended to `#log-lines` at most once per animation frame, and the page
//! shows only the last [`SHOWN`] of them.

use common::server::StreamEvent;
use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, Element, HtmlAnchorElement, Url};

use crate::locale::{Msg, Text, lang_now, msg, tr};
use crate::logbuf::{Filter, LogBuffer, LogLine, SHOWN};
use crate::nav::navigate;
use crate::route::Route;
use crate::views::{ConnStatus, near_bottom, scroll_to_bottom};
use crate::ws::{Incoming, Stream};

/// The lines and what is on screen; shared by the stream handler and the controls.
#[derive(Default)]
struct Lines {
    buffer: LogBuffer,
    filter: Filter,
    /// Received but not yet on screen.
    pending: Vec<LogLine>,
    /// The screen must be redrawn from the buffer (filter changed, or too much pending).
    rebuild: bool,
    paused: bool,
    frame_scheduled: bool,
    on_screen: usize,
    element: Option<Element>,
}

/// The page's [`Lines`] (`Copy`); gone with the page, so a late animation frame finds
/// nothing to draw.
type LinesSlot = StoredValue<Lines, LocalStorage>;

/// Signals the controls show.
#[derive(Clone, Copy)]
struct Counters {
    received: RwSignal<u64>,
    waiting: RwSignal<usize>,
    follow: RwSignal<bool>,
}

/// The log page: the stream, the toolbar, the counts and the lines.
#[component]
pub fn LogsPage(route: Route) -> impl IntoView {
    let Some(path) = route.ws_path() else {
        return view! { <p class="error">{tr(Text::NoStream)}</p> }.into_any();
    };
    let lines: LinesSlot = StoredValue::new_local(Lines::default());
    let counters = Counters {
        received: RwSignal::new(0),
        waiting: RwSignal::new(0),
        follow: RwSignal::new(true),
    };
    let paused = RwSignal::new(false);

    let stream = Stream::open(path, move |_, incoming| {
        on_incoming(lines, counters, incoming);
    });
    let closing = stream.clone();
    on_cleanup(move || closing.close());

    let list = NodeRef::<Div>::new();
    list.on_load(move |el| {
        lines.update_value(|l| l.element = Some(el.into()));
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            counters.follow.set(near_bottom(&el));
        }
    };

    view! {
        <section class="page logs-page">
            <LogToolbar stream lines counters paused route />
            <div class="log-meta muted">
                <span id="log-count">{move || msg(&Msg::LinesReceived(counters.received.get()))}</span>
                <Show when=move || { paused.get() && counters.waiting.get() > 0 }>
                    <span id="log-waiting">
                        {move || msg(&Msg::NewWhilePaused(counters.waiting.get()))}
                    </span>
                </Show>
            </div>
            <div id="log-lines" class="log-lines" node_ref=list on:scroll=on_scroll></div>
        </section>
    }
    .into_any()
}

/// The controls: stop/start, pause, follow, clear, the filter, download and, for pod logs,
/// the log options.
#[component]
fn LogToolbar(
    stream: Stream,
    lines: LinesSlot,
    counters: Counters,
    paused: RwSignal<bool>,
    route: Route,
) -> impl IntoView {
    let running = RwSignal::new(true);
    let filter_text = RwSignal::new(String::new());

    let toggle_running = {
        let stream = stream.clone();
        move |_| {
            if running.get_untracked() {
                stream.stop();
                running.set(false);
            } else {
                stream.retry_now();
                running.set(true);
            }
        }
    };
    let toggle_pause = move |_| {
        let now = !paused.get_untracked();
        paused.set(now);
        lines.update_value(|l| l.paused = now);
        if !now {
            schedule(lines, counters);
        }
    };
    let clear = move |_| {
        lines.update_value(|l| {
            l.buffer.clear();
            l.pending.clear();
            l.on_screen = 0;
            if let Some(el) = &l.element {
                el.set_text_content(None);
            }
        });
        counters.waiting.set(0);
    };
    let on_filter = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        filter_text.set(text.clone());
        lines.update_value(|l| {
            l.filter = Filter::new(&text);
            l.rebuild = true;
        });
        flush(lines, counters, true);
    };
    let file_name = download_name(&route);
    let download = move |_| {
        let text = lines.with_value(|l| l.buffer.download_text());
        save_text(&file_name, &text);
    };
    let on_follow = move |ev: leptos::ev::Event| {
        let on = event_target_checked(&ev);
        counters.follow.set(on);
        if on {
            lines.with_value(|l| {
                if let Some(el) = &l.element {
                    scroll_to_bottom(el);
                }
            });
        }
    };

    view! {
        <div class="toolbar" role="toolbar" aria-label=tr(Text::LogTools)>
            <ConnStatus stream />
            <span class="spacer"></span>
            <button id="log-stop" type="button" on:click=toggle_running>
                {move || tr(if running.get() { Text::Stop } else { Text::Start })()}
            </button>
            <button id="log-pause" type="button" class:active=move || paused.get() on:click=toggle_pause>
                {move || tr(if paused.get() { Text::Resume } else { Text::Pause })()}
            </button>
            <label class="check">
                <input id="log-follow" type="checkbox" prop:checked=move || counters.follow.get() on:change=on_follow />
                {tr(Text::Follow)}
            </label>
            <button id="log-clear" type="button" on:click=clear>{tr(Text::Clear)}</button>
            <input
                id="log-filter"
                type="search"
                placeholder=tr(Text::FilterLines)
                aria-label=tr(Text::FilterLines)
                prop:value=move || filter_text.get()
                on:input=on_filter
            />
            <button id="log-download" type="button" on:click=download>{tr(Text::Download)}</button>
            {pod_log_options(&route)}
        </div>
    }
}

/// Timestamps / previous-container switches for pod logs (each opens a new stream).
fn pod_log_options(route: &Route) -> Option<impl IntoView + use<>> {
    let Route::K8sLogs(container, options) = route.clone() else {
        return None;
    };
    let (c1, c2) = (container.clone(), container);
    let timestamps = move |ev: leptos::ev::Event| {
        let mut o = options;
        o.timestamps = event_target_checked(&ev);
        navigate(&Route::K8sLogs(c1.clone(), o));
    };
    let previous = move |ev: leptos::ev::Event| {
        let mut o = options;
        o.previous = event_target_checked(&ev);
        navigate(&Route::K8sLogs(c2.clone(), o));
    };
    Some(view! {
        <label class="check">
            <input id="log-timestamps" type="checkbox" prop:checked=options.timestamps on:change=timestamps />
            {tr(Text::Timestamps)}
        </label>
        <label class="check">
            <input id="log-previous" type="checkbox" prop:checked=options.previous on:change=previous />
            {tr(Text::PreviousContainer)}
        </label>
    })
}

fn on_incoming(lines: LinesSlot, counters: Counters, incoming: Incoming) {
    let lang = lang_now();
    let marker = match incoming {
        Incoming::Event(StreamEvent::Lines { lines: batch, .. }) => {
            let n = batch.len();
            lines.update_value(|l| {
                l.pending.extend(batch.iter().map(|text| LogLine {
                    text: text.clone(),
                    marker: false,
                }));
                l.buffer.push_lines(batch);
                if l.pending.len() > SHOWN {
                    l.pending.clear();
                    l.rebuild = true;
                }
            });
            counters.received.update(|r| *r += n as u64);
            None
        }
        Incoming::Event(StreamEvent::Status { message, .. }) => Some(message),
        Incoming::Event(StreamEvent::Error { message, .. }) => {
            Some(Msg::LogError(&message).text(lang))
        }
        Incoming::Event(StreamEvent::Gap { message, .. }) => Some(message),
        Incoming::Event(StreamEvent::Dropped { count }) => {
            Some(Msg::LinesSkipped(count).text(lang))
        }
        Incoming::Event(StreamEvent::Exit { status, .. }) => Some(match status {
            Some(code) => Msg::StreamEndedStatus(code).text(lang),
            None => Text::StreamEnded.get(lang).to_owned(),
        }),
        Incoming::Notice(notice) => Some(notice.text),
        Incoming::Event(_) | Incoming::Bytes(_) => None,
    };
    if let Some(text) = marker {
        let text = format!("── {text} ──");
        lines.update_value(|l| {
            l.buffer.push_marker(text.clone());
            l.pending.push(LogLine { text, marker: true });
        });
    }
    schedule(lines, counters);
}

/// Puts pending lines on screen at the next animation frame (once per frame).
fn schedule(lines: LinesSlot, counters: Counters) {
    let Some((waiting, start)) = lines.try_update_value(|l| {
        let waiting = l.pending.len();
        if l.paused || l.frame_scheduled {
            return (waiting, false);
        }
        l.frame_scheduled = true;
        (waiting, true)
    }) else {
        return;
    };
    counters.waiting.set(waiting);
    if start {
        request_animation_frame(move || flush(lines, counters, false));
    }
}

/// Appends pending lines (or redraws everything) and keeps the screen to [`SHOWN`] lines.
fn flush(lines: LinesSlot, counters: Counters, force: bool) {
    let drawn = lines
        .try_update_value(|l| draw(l, counters, force))
        .flatten();
    let Some((el, follow)) = drawn else { return };
    counters.waiting.set(0);
    if follow {
        scroll_to_bottom(&el);
    }
}

/// The DOM work of [`flush`]: the element drawn into and whether to follow, or `None` when
/// nothing was drawn (paused, or not mounted).
fn draw(l: &mut Lines, counters: Counters, force: bool) -> Option<(Element, bool)> {
    l.frame_scheduled = false;
    if l.paused && !force {
        return None;
    }
    let el = l.element.clone()?;
    let document = el.owner_document()?;
    let follow = counters.follow.get_untracked();
    let fragment = document.create_document_fragment();
    let append = |line: &LogLine| {
        if let Ok(div) = document.create_element("div") {
            div.set_class_name(if line.marker {
                "log-line log-marker"
            } else {
                "log-line"
            });
            div.set_text_content(Some(&line.text));
            let _ = fragment.append_child(&div);
        }
    };
    let filter = l.filter.clone();
    if std::mem::take(&mut l.rebuild) {
        l.pending.clear();
        el.set_text_content(None);
        let shown = l.buffer.tail_matching(&filter, SHOWN);
        let count = shown.len();
        for line in shown {
            append(line);
        }
        l.on_screen = count;
    } else {
        let pending = std::mem::take(&mut l.pending);
        let mut added = 0;
        for line in pending.iter().filter(|line| filter.matches(line)) {
            append(line);
            added += 1;
        }
        l.on_screen += added;
    }
    let _ = el.append_child(&fragment);
    while l.on_screen > SHOWN {
        match el.first_element_child() {
            Some(first) => first.remove(),
            None => break,
        }
        l.on_screen -= 1;
    }
    Some((el, follow))
}

fn download_name(route: &Route) -> String {
    let base = match route {
        Route::Tail { file, .. } => file.clone(),
        Route::K8sLogs(c, _) => format!("{}-{}-{}", c.namespace, c.pod, c.container),
        _ => "opsdeck".to_owned(),
    };
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.log")
}

/// Offers `text` as a file download.
fn save_text(name: &str, text: &str) {
    let parts = js_sys::Array::of1(&text.into());
    let options = BlobPropertyBag::new();
    options.set_type("text/plain;charset=utf-8");
    let Ok(blob) = Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Ok(a) = document().create_element("a")
        && let Ok(a) = a.dyn_into::<HtmlAnchorElement>()
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    set_timeout(
        move || {
            let _ = Url::revoke_object_url(&url);
        },
        std::time::Duration::from_secs(30),
    );
}
