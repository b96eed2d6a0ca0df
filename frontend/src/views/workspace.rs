//! The workspace (`#/workspace`): tabs of split panes, each pane one of the app's pages
//! (terminal, pod shell, pod logs, file tail, chat, job) with its own stream, reconnection,
//! resume and state bar.
//!
//! The layout is [`Layout`] (plain data). Every pane of every tab is rendered once, keyed by
//! its id, and placed absolutely from [`Layout::rects`]; a change of layout moves panes
//! without remounting them, so their sockets stay open (panes of hidden tabs are hidden, not
//! closed). Terminals refit through their own size observer when their pane changes size.
//!
//! The layout is saved on every change: to `sessionStorage` (this window: a reload brings
//! back the panes and their terminal sessions, resumed from the start of what the relay
//! keeps) and to `localStorage` (a new window starts from the last layout, with new
//! sessions: it takes none over unless asked, through "My sessions"). A stored layout that
//! is corrupt or of another version is ignored with a notice.
//!
//! Keys (Alt+Shift+…, caught before the terminal so they never reach the shell; no shell
//! binding uses them by default): see `Text::WorkspaceKeys` in `i18n.rs`.

use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlElement, KeyboardEvent, Storage};

use crate::api;
use crate::layout::{Dir, Layout, LayoutError, PaneId, Rect, Side};
use crate::locale::{Text, t, tr};
use crate::route::Route;
use crate::views::chat::ChatPage;
use crate::views::files::{FileGrants, FilesPage};
use crate::views::logs::LogsPage;
use crate::views::sessions::SessionsPanel;
use crate::views::terminal::TerminalPage;

/// The storage key of the layout (both storages).
const STORAGE_KEY: &str = "opsdeck.workspace";

/// The words of this view, in one place (for the catalogue).
/// Where `#/workspace?open=` puts its target.
fn side_of(place: Option<&str>) -> Option<Side> {
    match place {
        Some("right") => Some(Side::Right),
        Some("below") => Some(Side::Below),
        _ => None,
    }
}

fn session_storage() -> Option<Storage> {
    window().session_storage().ok().flatten()
}

fn local_storage() -> Option<Storage> {
    window().local_storage().ok().flatten()
}

/// The layout to start from, and why a stored one was not used.
fn load() -> (Layout, Option<LayoutError>) {
    let read = |storage: Option<Storage>| storage.and_then(|s| s.get_item(STORAGE_KEY).ok()?);
    if let Some(text) = read(session_storage()) {
        return match Layout::restore(&text) {
            Ok(layout) => (layout, None),
            Err(e) => (Layout::new(), Some(e)),
        };
    }
    match read(local_storage()).map(|text| Layout::restore(&text)) {
        None => (Layout::new(), None),
        Some(Ok(mut layout)) => {
            // Another window's sessions stay there.
            let ids: Vec<PaneId> = layout.panes().iter().map(|p| p.id).collect();
            for id in ids {
                layout.set_session(id, None);
            }
            (layout, None)
        }
        Some(Err(e)) => (Layout::new(), Some(e)),
    }
}

/// Why the stored layout was ignored, in the user's language (the detail stays as read).
fn ignored_layout(e: &LayoutError) -> String {
    let (what, detail) = match e {
        LayoutError::Corrupt(detail) => (Text::LayoutUnreadable, detail.clone()),
        LayoutError::Version(version) => (Text::LayoutOtherVersion, version.to_string()),
        LayoutError::Invalid(detail) => (Text::LayoutInconsistent, (*detail).to_owned()),
    };
    format!("{} ({detail}); {}.", t(what), t(Text::NewLayout))
}

fn store(layout: &Layout) {
    let text = layout.save();
    for storage in [session_storage(), local_storage()].into_iter().flatten() {
        let _ = storage.set_item(STORAGE_KEY, &text);
    }
}

/// Moves the browser's focus into a pane (its terminal, else the pane itself).
fn focus_pane_element(id: PaneId) {
    let document = document();
    let el = document
        .query_selector(&format!(
            "[data-pane=\"{id}\"] textarea.xterm-helper-textarea"
        ))
        .ok()
        .flatten()
        .or_else(|| {
            document
                .query_selector(&format!("[data-pane=\"{id}\"]"))
                .ok()
                .flatten()
        });
    if let Some(el) = el.and_then(|el| el.dyn_into::<HtmlElement>().ok()) {
        let _ = el.focus();
    }
}

/// Ends a terminal pane's relay session (closing the pane means ending it).
fn end_session(session: Option<String>) {
    if let Some(session) = session {
        leptos::task::spawn_local(async move {
            if let Err(e) = api::end_session(&session).await {
                leptos::logging::warn!("could not end session {session}: {e}");
            }
        });
    }
}

/// Closes a pane: it leaves the layout, and its terminal session ends.
fn close_pane(layout: RwSignal<Layout>, id: PaneId) {
    let mut closed = None;
    layout.update(|l| closed = l.close(id));
    if let Some(pane) = closed {
        end_session(pane.session);
    }
}

/// Opens `target` beside the focused pane, or in a new tab.
fn split_focused(layout: RwSignal<Layout>, side: Side) {
    layout.update(|l| {
        let target = l
            .focused()
            .and_then(|f| l.panes().into_iter().find(|p| p.id == f))
            .map(|p| p.target.clone());
        if let Some(target) = target {
            l.open_beside(side, &target);
        }
    });
}

#[component]
pub fn WorkspacePage(
    open: Option<String>,
    place: Option<String>,
    session: Option<String>,
) -> impl IntoView {
    let (mut initial, problem) = load();
    if let Some(target) = open {
        match (session, side_of(place.as_deref())) {
            (Some(session), _) => match initial.pane_with_session(&session) {
                Some(pane) => {
                    initial.focus(pane);
                }
                None => {
                    initial.open_tab(&target, Some(session));
                }
            },
            (None, Some(side)) => {
                initial.open_beside(side, &target);
            }
            (None, None) => {
                initial.open_tab(&target, None);
            }
        }
        // The query did its job; a reload must not open the target again. (No
        // `hashchange`: the page stays mounted.)
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some("#/workspace"));
        }
    }
    let layout = RwSignal::new(initial);
    let notice = RwSignal::new(problem.as_ref().map(ignored_layout));
    let show_sessions = RwSignal::new(false);
    let show_keys = RwSignal::new(false);
    let area = NodeRef::<Div>::new();
    // The pane whose header is being dragged onto another pane (to move it there).
    let dragged = RwSignal::new(None::<PaneId>);
    // Which hosts' files the user may open: one question for every pane, in the background.
    let grants = FileGrants::unknown();
    grants.load();

    Effect::new(move |_| layout.with(store));

    // Keyboard focus follows the layout's focus (after the panes are placed).
    let focused = Memo::new(move |_| layout.with(Layout::focused));
    Effect::new(move |_| {
        if let Some(id) = focused.get() {
            set_timeout(move || focus_pane_element(id), std::time::Duration::ZERO);
        }
    });

    // Alt+Shift+… in the capture phase, before xterm.js sees the key.
    let keys = Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
        if !(e.alt_key() && e.shift_key()) || e.ctrl_key() || e.meta_key() {
            return;
        }
        let handled = match e.code().as_str() {
            "ArrowRight" | "ArrowDown" => {
                layout.update(|l| {
                    l.focus_step(1);
                });
                true
            }
            "ArrowLeft" | "ArrowUp" => {
                layout.update(|l| {
                    l.focus_step(-1);
                });
                true
            }
            "BracketRight" => {
                layout.update(|l| l.tab_step(1));
                true
            }
            "BracketLeft" => {
                layout.update(|l| l.tab_step(-1));
                true
            }
            "KeyV" => {
                split_focused(layout, Side::Right);
                true
            }
            "KeyS" => {
                split_focused(layout, Side::Below);
                true
            }
            "KeyX" => {
                if let Some(id) = layout.with_untracked(Layout::focused) {
                    close_pane(layout, id);
                }
                true
            }
            _ => false,
        };
        if handled {
            e.prevent_default();
            e.stop_propagation();
        }
    });
    let _ = window().add_event_listener_with_callback_and_bool(
        "keydown",
        keys.as_ref().unchecked_ref(),
        true,
    );
    let keys = StoredValue::new_local(Some(keys));
    on_cleanup(move || {
        if let Some(Some(keys)) = keys.try_update_value(Option::take) {
            let _ = window().remove_event_listener_with_callback_and_bool(
                "keydown",
                keys.as_ref().unchecked_ref(),
                true,
            );
        }
    });

    let pane_ids = move || layout.with(|l| l.panes().iter().map(|p| p.id).collect::<Vec<_>>());
    let split_ids = move || {
        layout.with(|l| {
            l.handles(l.active)
                .iter()
                .map(|h| h.split)
                .collect::<Vec<_>>()
        })
    };
    let here = Signal::derive(move || {
        layout.with(|l| {
            l.panes()
                .iter()
                .filter_map(|p| p.session.clone())
                .collect::<Vec<_>>()
        })
    });
    let open_session = Callback::new(move |(target, session): (String, String)| {
        layout.update(|l| match l.pane_with_session(&session) {
            Some(pane) => {
                l.focus(pane);
            }
            None => {
                l.open_tab(&target, Some(session));
            }
        });
    });

    view! {
        <section class="page workspace" id="workspace">
            {move || notice.get().map(|n| view! {
                <p id="workspace-notice" class="workspace-notice" role="alert">
                    {n} " "
                    <button type="button" on:click=move |_| notice.set(None)>{tr(Text::Dismiss)}</button>
                </p>
            })}
            <nav class="workspace-tabs" aria-label=tr(Text::WorkspaceTabs)>
                <TabBar layout />
                <span class="spacer"></span>
                <a id="workspace-open" href="#/">{tr(Text::WsOpenTarget)}</a>
                <button
                    id="sessions-toggle"
                    type="button"
                    aria-expanded=move || show_sessions.get().to_string()
                    on:click=move |_| show_sessions.update(|s| *s = !*s)
                >
                    {tr(Text::MySessions)}
                </button>
                <button
                    id="workspace-keys"
                    type="button"
                    title=tr(Text::WorkspaceKeys)
                    aria-expanded=move || show_keys.get().to_string()
                    on:click=move |_| show_keys.update(|s| *s = !*s)
                >
                    "?"
                </button>
            </nav>
            <Show when=move || show_keys.get()>
                <p class="workspace-keys muted">{tr(Text::WorkspaceKeys)}</p>
            </Show>
            <div class="workspace-body">
                <div class="workspace-area" node_ref=area>
                    <Show when=move || layout.with(|l| l.tabs.is_empty())>
                        <p id="workspace-empty" class="muted workspace-empty">{tr(Text::WsEmpty)}</p>
                    </Show>
                    <For each=pane_ids key=|id| *id let:id>
                        <PaneView id layout dragged grants />
                    </For>
                    <For each=split_ids key=|id| *id let:split>
                        <SplitHandle split layout area />
                    </For>
                </div>
                <Show when=move || show_sessions.get()>
                    <SessionsPanel here on_open=open_session />
                </Show>
            </div>
        </section>
    }
}

/// Links that open `page` in the workspace: in a new tab, or beside the focused pane (for
/// the list of targets).
#[component]
pub fn OpenInWorkspace(page: Route) -> impl IntoView {
    let link = |place: &str| {
        Route::Workspace {
            open: Some(page.to_hash()),
            place: Some(place.to_owned()),
            session: None,
        }
        .to_hash()
    };
    view! {
        <span class="open-in-workspace">
            <a class="open-tab" href=link("tab") title=tr(Text::NewTabTitle)>{tr(Text::NewTab)}</a>
            <a class="open-beside" href=link("right") title=tr(Text::BesideTitle)>{tr(Text::Beside)}</a>
        </span>
    }
}

/// The tabs: one button per tab, named after its focused pane.
#[component]
fn TabBar(layout: RwSignal<Layout>) -> impl IntoView {
    move || {
        layout.with(|l| {
            l.tabs
                .iter()
                .enumerate()
                .map(|(i, tab)| {
                    let title = tab
                        .root
                        .panes()
                        .into_iter()
                        .find(|p| p.id == tab.focus)
                        .map(|p| Route::parse(&p.target).title())
                        .unwrap_or_default();
                    let count = tab.root.panes().len();
                    let label = if count > 1 {
                        format!("{title} (+{})", count - 1)
                    } else {
                        title
                    };
                    let active = i == l.active;
                    view! {
                        <button
                            type="button"
                            class="workspace-tab"
                            class:active=active
                            aria-pressed=active.to_string()
                            data-tab=i
                            on:click=move |_| layout.update(|l| l.active = i)
                        >
                            {label}
                        </button>
                    }
                })
                .collect_view()
        })
    }
}

/// `left/top/width/height` in percent of the area.
fn place(r: Rect) -> String {
    format!(
        "left:{:.4}%;top:{:.4}%;width:{:.4}%;height:{:.4}%",
        r.x * 100.0,
        r.y * 100.0,
        r.w * 100.0,
        r.h * 100.0
    )
}

/// One pane: a small header (title, split, close) and the page of its target.
#[component]
fn PaneView(
    id: PaneId,
    layout: RwSignal<Layout>,
    dragged: RwSignal<Option<PaneId>>,
    grants: FileGrants,
) -> impl IntoView {
    let Some((target, session)) = layout.with_untracked(|l| {
        l.panes()
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| (p.target.clone(), p.session.clone()))
    }) else {
        return ().into_any();
    };
    let route = Route::parse(&target);
    let title = route.title();
    let spot = Memo::new(move |_| {
        layout.with(|l| {
            let tab = l.tab_of(id)?;
            let rect = l.rects(tab).into_iter().find(|(p, _)| *p == id)?.1;
            Some((tab == l.active, rect, l.tabs[tab].focus == id))
        })
    });
    let style = move || match spot.get() {
        Some((true, rect, _)) => place(rect),
        _ => "display:none".to_owned(),
    };
    let focused = move || spot.get().is_some_and(|(shown, _, f)| shown && f);
    let current_session = move || {
        layout.with(|l| {
            l.panes()
                .into_iter()
                .find(|p| p.id == id)
                .and_then(|p| p.session.clone())
        })
    };
    let take_focus = move || {
        layout.maybe_update(|l| l.focused() != Some(id) && l.focus(id));
    };
    let on_session = Callback::new(move |s: String| {
        layout.maybe_update(|l| l.set_session(id, Some(s)));
    });
    let split = move |side: Side| {
        let target = target.clone();
        move |_| {
            layout.update(|l| {
                l.split(id, side, &target, None);
            });
        }
    };
    let files_here = route
        .files_place()
        .zip(route.files_here().map(|r| r.to_hash()));
    let body = match route {
        r @ (Route::Ssh { .. } | Route::Local { .. } | Route::K8sExec(_) | Route::Job { .. }) => {
            view! { <TerminalPage route=r resume=session on_session keep_session=true /> }
                .into_any()
        }
        r @ (Route::Tail { .. } | Route::K8sLogs(..)) => view! { <LogsPage route=r /> }.into_any(),
        Route::Chat { room } => view! { <ChatPage room /> }.into_any(),
        Route::Files { place, path } => view! { <FilesPage place path /> }.into_any(),
        _ => view! { <p class="error">{tr(Text::NotAPane)}</p> }.into_any(),
    };
    // "Open files here": the host's or container's files in a pane beside its terminal,
    // when the user's grants have any there.
    let files_here = files_here.map(|(place, files)| {
        let files = StoredValue::new(files);
        let offered = move || grants.allows(&place);
        view! {
            <Show when=offered>
                <button
                    type="button"
                    class="pane-files"
                    title=tr(Text::OpenFilesHereTitle)
                    aria-label=tr(Text::OpenFilesHere)
                    on:click=move |_| layout.update(|l| {
                        l.split(id, Side::Right, &files.get_value(), None);
                    })
                >
                    "📁"
                </button>
            </Show>
        }
    });
    view! {
        <div
            class="pane"
            class:focused=focused
            data-pane=id
            data-session=current_session
            tabindex="-1"
            style=style
            on:pointerdown=move |_| take_focus()
            on:focusin=move |_| take_focus()
            on:dragover=move |ev: leptos::ev::DragEvent| {
                if dragged.get_untracked().is_some_and(|d| d != id) {
                    ev.prevent_default();
                }
            }
            on:drop=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                let Some(from) = dragged.get_untracked() else { return };
                dragged.set(None);
                // Dropped on the right half: beside it; else below it.
                let side = match ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) {
                    Some(el) => {
                        let r = el.get_bounding_client_rect();
                        if f64::from(ev.client_x()) > r.left() + r.width() / 2.0 { Side::Right } else { Side::Below }
                    }
                    None => Side::Right,
                };
                layout.update(|l| {
                    l.move_pane(from, id, side);
                });
            }
        >
            <div
                class="pane-head"
                draggable="true"
                title=tr(Text::DragPane)
                on:dragstart=move |_| dragged.set(Some(id))
                on:dragend=move |_| dragged.set(None)
            >
                <span class="pane-title">{title}</span>
                <span class="spacer"></span>
                {files_here}
                <button type="button" class="pane-split-right" title=tr(Text::SplitRight) aria-label=tr(Text::SplitRight) on:click=split(Side::Right)>"◫"</button>
                <button type="button" class="pane-split-below" title=tr(Text::SplitBelow) aria-label=tr(Text::SplitBelow) on:click=split(Side::Below)>"⊟"</button>
                <button type="button" class="pane-close" title=tr(Text::ClosePane) aria-label=tr(Text::ClosePane) on:click=move |_| close_pane(layout, id)>"✕"</button>
            </div>
            <div class="pane-body">{body}</div>
        </div>
    }
    .into_any()
}

/// The divider of a split, dragged to change its ratio.
#[component]
fn SplitHandle(split: u32, layout: RwSignal<Layout>, area: NodeRef<Div>) -> impl IntoView {
    let handle = Memo::new(move |_| {
        layout.with(|l| l.handles(l.active).into_iter().find(|h| h.split == split))
    });
    let style = move || match handle.get() {
        Some(h) => match h.dir {
            Dir::Row => format!(
                "left:{:.4}%;top:{:.4}%;height:{:.4}%",
                (h.area.x + h.area.w * h.ratio) * 100.0,
                h.area.y * 100.0,
                h.area.h * 100.0
            ),
            Dir::Column => format!(
                "top:{:.4}%;left:{:.4}%;width:{:.4}%",
                (h.area.y + h.area.h * h.ratio) * 100.0,
                h.area.x * 100.0,
                h.area.w * 100.0
            ),
        },
        None => "display:none".to_owned(),
    };
    let dir = move || match handle.get().map(|h| h.dir) {
        Some(Dir::Column) => "column",
        _ => "row",
    };
    let listeners = StoredValue::new_local(Vec::<WindowListenerHandle>::new());
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (Some(h), Some(el)) = (handle.get_untracked(), area.get_untracked()) else {
            return;
        };
        ev.prevent_default();
        let bounds = el.get_bounding_client_rect();
        let _ = el.class_list().add_1("dragging");
        let moved = window_event_listener(leptos::ev::pointermove, move |e| {
            let ratio = match h.dir {
                Dir::Row => {
                    ((f64::from(e.client_x()) - bounds.left()) / bounds.width() - h.area.x)
                        / h.area.w
                }
                Dir::Column => {
                    ((f64::from(e.client_y()) - bounds.top()) / bounds.height() - h.area.y)
                        / h.area.h
                }
            };
            if ratio.is_finite() {
                layout.update(|l| {
                    l.set_ratio(split, ratio);
                });
            }
        });
        let up = window_event_listener(leptos::ev::pointerup, move |_| {
            if let Some(el) = area.get_untracked() {
                let _ = el.class_list().remove_1("dragging");
            }
            for l in listeners
                .try_update_value(std::mem::take)
                .unwrap_or_default()
            {
                l.remove();
            }
        });
        listeners.update_value(|l| l.extend([moved, up]));
    };
    on_cleanup(move || {
        for l in listeners
            .try_update_value(std::mem::take)
            .unwrap_or_default()
        {
            l.remove();
        }
    });
    view! {
        <div
            class="split-handle"
            data-split=split
            data-dir=dir
            role="separator"
            aria-orientation=move || if dir() == "row" { "vertical" } else { "horizontal" }
            style=style
            on:pointerdown=on_down
        ></div>
    }
}
